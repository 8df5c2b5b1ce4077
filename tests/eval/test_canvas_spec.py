"""CanvasSpec: names, synonyms, prompts and mention matching."""

import numpy as np
import pytest

from eval.canvas import CanvasSpec, mini_canvas
from pipelines.errors import EraseError

WORLD = mini_canvas()


def test_every_concept_has_two_names_and_templates_are_enough():
    for concept in WORLD.concepts:
        names = WORLD.names(concept)
        assert names[0] == concept and len(names) >= 2
    assert WORLD.templates[0] == "A {object} image in {style} style." and len(WORLD.templates) >= 4


def test_every_name_resolves_to_its_concept_in_any_case():
    for concept in WORLD.concepts:
        for name in WORLD.names(concept):
            assert WORLD.canonical(name) == concept
            assert WORLD.canonical(f"  {name.upper()} ") == concept
    assert WORLD.canonical("polka_dot") == WORLD.canonical("Polka-Dot") == "dots"
    assert WORLD.canonical("zig zag") == "zigzag"


def test_kind():
    assert WORLD.kind("moon") == "object" and WORLD.kind("striped") == "style"
    assert {WORLD.kind(c) for c in WORLD.objects} == {"object"}
    assert {WORLD.kind(c) for c in WORLD.styles} == {"style"}


def test_unknown_concept_error_lists_the_known_ones():
    with pytest.raises(EraseError) as error:
        WORLD.canonical("banana")
    message = str(error.value)
    assert "banana" in message
    assert all(concept in message for concept in WORLD.concepts)


def test_prompt_is_canonical_and_checks_kinds():
    assert WORLD.prompt("moon", "polka dot") == "A crescent image in dots style."
    with pytest.raises(EraseError, match="is a style, not an object"):
        WORLD.prompt("dots", "star")


def test_mentions_whole_words_any_case_plurals_and_separators():
    assert WORLD.mentions("A star image in dots style.", "star")
    assert WORLD.mentions("two STARS", "star")
    assert not WORLD.mentions("the start of a starry night", "star")
    assert WORLD.mentions("a polka-dot scarf", "dots") and WORLD.mentions("polka  dots", "dots")
    assert not WORLD.mentions("a dotless i", "dots")
    assert WORLD.mentions("a plus sign", "cross") and WORLD.mentions("crosses", "cross")
    assert not WORLD.mentions("a crossing", "cross")


def test_names_and_templates_never_mention_another_concept():
    """So a retain prompt built for one concept never mentions the erased one."""
    for concept in WORLD.concepts:
        for other in WORLD.concepts:
            if other != concept:
                assert not any(WORLD.mentions(name, other) for name in WORLD.names(concept)), (concept, other)
        for template in WORLD.templates:
            assert not WORLD.mentions(template.format(object="", style=""), concept), (template, concept)


def test_captions_mention_exactly_their_two_concepts():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        object, style = WORLD.objects[rng.integers(10)], WORLD.styles[rng.integers(10)]
        caption = WORLD.caption(object, style, rng)
        seen.add(caption)
        assert [c for c in WORLD.concepts if WORLD.mentions(caption, c)] == [object, style], caption
    assert len(seen) > 100  # templates and synonyms really vary


def test_spec_rejects_a_name_shared_by_two_concepts():
    with pytest.raises(EraseError, match="given to both"):
        CanvasSpec("bad", ("circle", "ring"), ("solid",),
                   synonyms={"circle": ("circle", "round"), "ring": ("ring", "Round")})


def test_spec_without_synonyms_uses_canonical_names():
    spec = CanvasSpec("unlearncanvas-like", ("Dogs", "Cats"), ("Van_Gogh", "Crayon"))
    assert spec.names("dogs") == ("Dogs",) and spec.canonical("van gogh") == "Van_Gogh"
    assert spec.prompt("Cats", "Crayon") == "A Cats image in Crayon style."


def test_subset_keeps_order_and_synonyms():
    small = WORLD.subset(objects=("box", "circle"), styles=("dotted",))
    assert small.objects == ("square", "circle") and small.styles == ("dots",)
    assert small.names("square") == WORLD.names("square")
    with pytest.raises(EraseError):
        small.canonical("star")
