"""``erase bench``: every method x every target (x the attack), one resumable command.

``cells.py`` plans the cells and decides which are done, ``cell.py`` runs one (erase, evaluate,
record), ``leaderboard.py`` turns the cell records into the tables a reader wants, ``cli.py`` is
the command.
"""
