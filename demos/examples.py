"""The example prompts a first-time visitor clicks: one pair shows what erasure removes and keeps."""

from __future__ import annotations

from eval.canvas.spec import CanvasSpec
from pipelines.errors import EraseError

#: The concept the examples are about when no saved erasure names one; the Erase form starts on it.
DEFAULT_CONCEPT = "stripes"
#: Objects that fill enough of a 32-pixel image to show a style, and styles that show an object's
#: outline; the world's first names stand in for any that are missing.
SHOWCASE_OBJECTS = ("star", "heart")
SHOWCASE_STYLES = ("solid", "dots")


def example_prompts(world: CanvasSpec, concept: str = DEFAULT_CONCEPT) -> list[tuple[str, int]]:
    """``(prompt, seed)`` rows: two prompts that name ``concept`` and one that does not.

    The erased image should change for the first two and stay the same for the third: the
    effect and the side effect of erasure, in three clicks. A concept the world does not know
    (a real model's "Van Gogh") gets its own name as the only example.
    """
    known = canonical_or_none(world, concept)
    if known is None:
        return [(concept, 0)]
    concept = known
    objects = _showcase(world.objects, SHOWCASE_OBJECTS, concept)
    styles = _showcase(world.styles, SHOWCASE_STYLES, concept)
    if world.kind(concept) == "style":
        return [(world.prompt(objects[0], concept), 0), (world.prompt(objects[1], concept), 1),
                (world.prompt(objects[0], styles[0]), 0)]
    return [(world.prompt(concept, styles[0]), 0), (world.prompt(concept, styles[1]), 1),
            (world.prompt(objects[0], styles[0]), 0)]


def canonical_or_none(world: CanvasSpec, name: str) -> str | None:
    """The world's canonical name for ``name``, or None for a concept of another world."""
    try:
        return world.canonical(name)
    except EraseError:
        return None


def _showcase(names: tuple[str, ...], preferred: tuple[str, ...], concept: str) -> list[str]:
    """The preferred names the world has, then its others, never ``concept`` itself."""
    ordered = [n for n in preferred if n in names] + [n for n in names if n not in preferred]
    return [n for n in ordered if n != concept]
