"""User-facing errors.

Every mistake a user can make (a wrong path, a bad config value, a concept the world does not
know) is raised as an :class:`EraseError` whose message names the problem *and* the fix. The
CLI prints the message on one line and exits with code 2; nothing else a user does should end
in a traceback.
"""


class EraseError(Exception):
    """A problem the user can fix; the message says how."""


class ModelLoadError(EraseError):
    """A base model could not be found or read."""


class BaseMismatchError(EraseError):
    """An erasure artifact was applied to a base model it was not made from."""


class ConfigError(EraseError):
    """A method or command configuration is invalid."""


class TrainingDiverged(EraseError):
    """A loss or gradient became NaN/inf; the last good state was kept."""
