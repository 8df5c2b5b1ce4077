"""The mini-canvas world: deterministic pixels, every pair drawable, colours blind to style."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from eval.canvas import mini_canvas
from eval.canvas.layout import COLOUR_PAIRS, draw_layout, luma
from eval.canvas.world import SEED_PURPOSES, render_array, seed_range
from pipelines.errors import EraseError

WORLD = mini_canvas()

# The diffusion model and the judge are trained on these pixels: if this changes, both must be
# retrained and this digest updated on purpose.
GOLDEN_ITEMS = [("star", "dots", 0), ("crescent", "outline", 1), ("house", "gradient", 2), ("heart", "rings", 3),
                ("arrow", "zigzag", 4), ("diamond", "checker", 5), ("cross", "grid", 6), ("circle", "split", 7)]
GOLDEN_SHA256 = "db8299e669d9cfd1bb14bd731874701992c65ba0c96b8c5b99449461b8fad22a"


def test_world_is_at_least_ten_by_ten():
    assert len(WORLD.objects) >= 10 and len(WORLD.styles) >= 10


def test_same_seed_same_pixels_and_pinned_digest():
    first = WORLD.render_batch(GOLDEN_ITEMS)
    second = WORLD.render_batch(GOLDEN_ITEMS)
    assert np.array_equal(first, second)
    assert hashlib.sha256(first.tobytes()).hexdigest() == GOLDEN_SHA256


def test_different_seeds_give_different_images():
    images = WORLD.render_batch([("star", "stripes", seed) for seed in range(20)])
    distinct = {image.tobytes() for image in images}
    assert len(distinct) == 20


@pytest.mark.parametrize("size", [32, 64])
def test_every_pair_renders_an_rgb_image_with_a_visible_shape(size):
    for object in WORLD.objects:
        for style in WORLD.styles:
            image = WORLD.render(object, style, seed=11, size=size)
            assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (size, size)
            pixels = np.asarray(image).reshape(-1, 3).astype(int)
            background = np.array(draw_layout(11).background)
            drawn = np.abs(pixels - background).sum(axis=1) > 30
            assert 0.04 < drawn.mean() < 0.7, (object, style, drawn.mean())


def test_render_batch_matches_single_renders_and_accepts_synonyms():
    items = [("plus sign", "Polka-Dot", 3), ("moon", "striped", 4)]
    batch = WORLD.render_batch(items)
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == np.uint8
    assert np.array_equal(batch[0], render_array("cross", "dots", 3))
    assert np.array_equal(batch[1], np.asarray(WORLD.render("crescent", "stripes", 4)))


def test_objects_differ_with_same_seed_and_style():
    images = WORLD.render_batch([(object, "solid", 5) for object in WORLD.objects])
    assert len({image.tobytes() for image in images}) == len(WORLD.objects)


def test_colour_draw_does_not_depend_on_style():
    """For one seed every style shows the same background and paints with the same two colours."""
    for seed in range(20):
        layout = draw_layout(seed)
        for style in WORLD.styles:
            pixels = {tuple(p) for p in WORLD.render_batch([("square", style, seed)])[0].reshape(-1, 3)}
            image = np.asarray(WORLD.render("square", style, seed))
            assert tuple(image[0, 0]) == layout.background, (seed, style)
            assert layout.foreground in pixels, (seed, style)
            if style not in ("solid", "outline"):  # the two styles that use one colour only
                assert layout.texture in pixels, (seed, style)


def test_colours_vary_with_the_seed():
    layouts = [draw_layout(seed) for seed in range(200)]
    assert len({(l.foreground, l.texture) for l in layouts}) > 40
    assert len({l.background for l in layouts}) > 150


def test_colour_pairs_contrast_and_are_symmetric():
    assert all(abs(luma(a) - luma(b)) >= 60 for a, b in COLOUR_PAIRS)
    assert set(COLOUR_PAIRS) == {(b, a) for a, b in COLOUR_PAIRS}


def test_seed_ranges_never_overlap():
    ranges = [seed_range(purpose) for purpose in SEED_PURPOSES]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert a.stop <= b.start or b.stop <= a.start
    with pytest.raises(EraseError, match="judge-train"):
        seed_range("judge")


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_bad_seed_is_a_clear_error(seed):
    with pytest.raises(EraseError, match="non-negative integer"):
        WORLD.render("star", "dots", seed)
