"""``CanvasSpec``: the names of a world of objects drawn in styles, and how prompts use them.

Data only, so that the same class describes the rendered mini-canvas world and the real
UnlearnCanvas benchmark (50 styles x 20 objects, no renderer). Everything that takes a concept
accepts any of its names, in any case, with spaces, hyphens and underscores interchangeable
("Polka-dot" is "polka dot" is "dots").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from pipelines.errors import EraseError

# UnlearnCanvas's caption (its evaluation prompts use exactly this sentence).
CANONICAL_TEMPLATE = "A {object} image in {style} style."


def _key(name: str) -> str:
    """Lookup form of a name: lower case, runs of spaces/hyphens/underscores as one space."""
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def _pattern(name: str) -> str:
    """Regex for one name as whole words: separators match any separator, plurals are allowed."""
    words = [re.escape(word) for word in _key(name).split(" ")]
    return r"\b" + r"[\s_-]+".join(words) + r"(?:s|es)?\b"


@dataclass(frozen=True)
class CanvasSpec:
    """A world of ``objects`` x ``styles`` with the names and caption templates prompts use."""

    name: str
    objects: tuple[str, ...]  # canonical object names, in class-index order
    styles: tuple[str, ...]  # canonical style names, in class-index order
    # Every name of each concept, canonical first. A concept left out is known by its
    # canonical name only (filled in on construction).
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # Caption templates with {object} and {style}; the first is the canonical one.
    templates: tuple[str, ...] = (CANONICAL_TEMPLATE,)
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        concepts = self.objects + self.styles
        unknown = sorted(set(self.synonyms) - set(concepts))
        if unknown:
            raise EraseError(f"Synonyms given for {unknown}, which are neither objects nor styles of {self.name!r}; "
                             "add them to objects or styles, or drop their synonyms.")
        synonyms = {c: tuple(self.synonyms.get(c, (c,))) for c in concepts}
        lookup: dict[str, str] = {}
        for concept, names in synonyms.items():
            if not names or names[0] != concept:
                raise EraseError(f"The names of {concept!r} in {self.name!r} must start with {concept!r} itself.")
            for n in names:
                owner = lookup.setdefault(_key(n), concept)
                if owner != concept:
                    raise EraseError(f"The name {n!r} is given to both {owner!r} and {concept!r} in {self.name!r}; "
                                     "each name must belong to one concept.")
        for template in self.templates:
            if "{object}" not in template or "{style}" not in template:
                raise EraseError(f"Caption template {template!r} needs both {{object}} and {{style}} placeholders.")
        object.__setattr__(self, "synonyms", synonyms)
        object.__setattr__(self, "_lookup", lookup)

    @property
    def concepts(self) -> tuple[str, ...]:
        """Every canonical name, objects first."""
        return self.objects + self.styles

    def canonical(self, name: str) -> str:
        """The canonical name of a concept given by any of its names."""
        concept = self._lookup.get(_key(name))
        if concept is None:
            raise EraseError(f"Unknown concept {name!r} in {self.name!r}; use one of the objects "
                             f"({', '.join(self.objects)}) or styles ({', '.join(self.styles)}), or a synonym.")
        return concept

    def kind(self, concept: str) -> Literal["object", "style"]:
        return "object" if self.canonical(concept) in self.objects else "style"

    def names(self, concept: str) -> tuple[str, ...]:
        """All names of a concept, canonical first."""
        return self.synonyms[self.canonical(concept)]

    def prompt(self, object: str, style: str) -> str:
        """The canonical caption (first template, canonical names): the evaluation prompt."""
        return self.templates[0].format(object=self._as(object, "object"), style=self._as(style, "style"))

    def caption(self, object: str, style: str, rng: np.random.Generator) -> str:
        """A training caption: a random template filled with a random name of each concept."""
        object_names, style_names = self.names(self._as(object, "object")), self.names(self._as(style, "style"))
        template = self.templates[rng.integers(len(self.templates))]
        return template.format(object=object_names[rng.integers(len(object_names))],
                               style=style_names[rng.integers(len(style_names))])

    def mentions(self, prompt: str, concept: str) -> bool:
        """Whether ``prompt`` names ``concept`` by any of its names, as whole words, any case.

        "star" is found in "Two Stars" but not in "start"; used to keep retain prompts free of
        the erased concept.
        """
        patterns = "|".join(_pattern(n) for n in self.names(concept))
        return re.search(patterns, prompt, flags=re.IGNORECASE) is not None

    def subset(self, objects: tuple[str, ...] | None = None, styles: tuple[str, ...] | None = None) -> CanvasSpec:
        """The same world restricted to some objects and styles (any names), e.g. for quick tests."""
        kept_objects = self.objects if objects is None else tuple(self._as(o, "object") for o in objects)
        kept_styles = self.styles if styles is None else tuple(self._as(s, "style") for s in styles)
        kept = set(kept_objects + kept_styles)
        return replace(self, objects=kept_objects, styles=kept_styles,
                       synonyms={c: n for c, n in self.synonyms.items() if c in kept})

    def _as(self, name: str, kind: Literal["object", "style"]) -> str:
        """The canonical name, checked to be of ``kind``."""
        concept = self.canonical(name)
        if self.kind(concept) != kind:
            choices = self.objects if kind == "object" else self.styles
            raise EraseError(f"{name!r} is a {self.kind(concept)}, not {'an' if kind == 'object' else 'a'} {kind}; "
                             f"the {kind}s of {self.name!r} are: {', '.join(choices)}.")
        return concept
