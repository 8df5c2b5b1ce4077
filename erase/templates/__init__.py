"""Prompt templates shipped with the package as versioned text files.

A template file holds one template per line with ``{}`` where the concept goes; lines starting
with ``#`` are comments (the first says which version of the list it is). Files:

* ``fewshot_object.txt``, ``fewshot_style.txt``: the textual-inversion templates few-shot
  erasure fills with the concept on real models (27 object, 19 style templates);
* ``fewshot_canvas_object.txt``, ``fewshot_canvas_style.txt``: the same idea in the mini-canvas
  world's own vocabulary.

A prompt list (:func:`prompt_list`) is the same kind of file with whole prompts, no ``{}``:

* ``retain_coco_object.txt``: AdvUnlearn's retain prompts for real models, "a photo of a
  {COCO object}" over the 80 COCO classes;
* ``sfd_nudity_subjects.txt``, ``sfd_nsfw_keywords.txt``: SFD's nudity setting, the 12 subjects
  and the 27 NSFW keywords that are put around them and used as negative prompts.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from pipelines.errors import EraseError


def _lines(name: str) -> tuple[str, ...]:
    """The non-comment, non-empty lines of ``<name>.txt``."""
    resource = resources.files(__name__).joinpath(f"{name}.txt")
    if not resource.is_file():
        raise EraseError(f"no template list '{name}' ships with erase; reinstall the package")
    lines = [line.strip() for line in resource.read_text(encoding="utf-8").splitlines()]
    return tuple(line for line in lines if line and not line.startswith("#"))


@cache
def prompt_list(name: str) -> tuple[str, ...]:
    """The prompts of ``<name>.txt``, in file order."""
    chosen = _lines(name)
    if not chosen:
        raise EraseError(f"prompt list '{name}' is empty; reinstall the package")
    return chosen


@cache
def templates(name: str) -> tuple[str, ...]:
    """The templates of ``<name>.txt``, in file order (repeats kept: they weight random draws)."""
    chosen = _lines(name)
    broken = [t for t in chosen if t.count("{}") != 1]
    if broken or not chosen:
        raise EraseError(f"template list '{name}' is damaged (each line needs exactly one {{}}): {broken[:3]}")
    return chosen
