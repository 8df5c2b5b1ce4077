"""Prompt templates shipped with the package as versioned text files.

A template file holds one template per line with ``{}`` where the concept goes; lines starting
with ``#`` are comments (the first says which version of the list it is). Files:

* ``fewshot_object.txt``, ``fewshot_style.txt``: the textual-inversion templates few-shot
  erasure fills with the concept on real models (27 object, 19 style templates);
* ``fewshot_canvas_object.txt``, ``fewshot_canvas_style.txt``: the same idea in the mini-canvas
  world's own vocabulary.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from pipelines.errors import EraseError


@lru_cache(maxsize=None)
def templates(name: str) -> tuple[str, ...]:
    """The templates of ``<name>.txt``, in file order (repeats kept: they weight random draws)."""
    resource = resources.files(__name__).joinpath(f"{name}.txt")
    if not resource.is_file():
        raise EraseError(f"no template list '{name}' ships with erase; reinstall the package")
    lines = [line.strip() for line in resource.read_text(encoding="utf-8").splitlines()]
    chosen = tuple(line for line in lines if line and not line.startswith("#"))
    broken = [t for t in chosen if t.count("{}") != 1]
    if broken or not chosen:
        raise EraseError(f"template list '{name}' is damaged (each line needs exactly one {{}}): {broken[:3]}")
    return chosen
