"""The real UnlearnCanvas benchmark as a ``CanvasSpec``: 50 styles (+ the photo domain) x 20 objects.

Names and their order are UnlearnCanvas's own (``machine_unlearning/evaluation/constants/
const.py`` at OPTML-Group/UnlearnCanvas@920cfd1, ``theme_available`` and ``class_available``):
the order is the class index of its style (51-way) and object (20-way) classifiers. Canonical
names use spaces because its samplers write ``style.replace('_', ' ')`` into the prompt
("A Bears image in Van Gogh style."); the underscore spellings resolve to the same concepts.

``Seed Images`` is the photo domain: a style of the answer set and of the style classifier (so
the answer set is 51 x 20 prompts) but not an erasure target and never a member of a style
average (``PHOTO_STYLE``; see ``eval.metrics.accuracy``).

Its evaluation settings (``SEEDS``, ``SAMPLING``) are those of ``sampling_unlearned_models/``:
DDIM, 100 steps, guidance 9, eta 0, seeds 188, 288, 588, 688, 888, one image per seed, 512x512.
"""

from __future__ import annotations

from eval.canvas.spec import CANONICAL_TEMPLATE, CanvasSpec

_THEMES = (
    "Abstractionism Artist_Sketch Blossom_Season Bricks Byzantine Cartoon Cold_Warm Color_Fantasy Comic_Etch "
    "Crayon Cubism Dadaism Dapple Defoliation Early_Autumn Expressionism Fauvism French Glowing_Sunset "
    "Gorgeous_Love Greenfield Impressionism Ink_Art Joy Liquid_Dreams Magic_Cube Meta_Physics Meteor_Shower "
    "Monet Mosaic Neon_Lines On_Fire Pastel Pencil_Drawing Picasso Pop_Art Red_Blue_Ink Rust Seed_Images "
    "Sketch Sponge_Dabbed Structuralism Superstring Surrealism Ukiyoe Van_Gogh Vibrant_Flow Warm_Love "
    "Warm_Smear Watercolor Winter"
)
_CLASSES = (
    "Architectures Bears Birds Butterfly Cats Dogs Fishes Flame Flowers Frogs Horses Human Jellyfish Rabbits "
    "Sandwiches Sea Statues Towers Trees Waterfalls"
)

#: The 51 style classes in classifier order (50 styles and the photo domain), prompt spelling.
STYLES: tuple[str, ...] = tuple(name.replace("_", " ") for name in _THEMES.split())
#: The 20 object classes in classifier order.
OBJECTS: tuple[str, ...] = tuple(_CLASSES.split())
#: The photo domain: in the answer set, never a target, never in a style average.
PHOTO_STYLE = "Seed Images"
#: The dataset folder of the photo domain is "Seed_Image"; both spellings name it.
_PHOTO_NAMES = (PHOTO_STYLE, "Seed Image", "Photo")

SEEDS: tuple[int, ...] = (188, 288, 588, 688, 888)
SAMPLING = {"steps": 100, "guidance": 9.0}
#: The classifiers' timm architecture (head replaced by Linear(1024, classes)).
CLASSIFIER_ARCH = "vit_large_patch16_224.augreg_in21k"


def unlearncanvas() -> CanvasSpec:
    """The UnlearnCanvas spec: 20 objects x 51 styles, its caption as the only template."""
    return CanvasSpec(name="unlearncanvas", objects=OBJECTS, styles=STYLES,
                      synonyms={PHOTO_STYLE: _PHOTO_NAMES}, templates=(CANONICAL_TEMPLATE,))
