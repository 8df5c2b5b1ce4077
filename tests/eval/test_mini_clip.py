"""The mini-canvas CLIP: file round trip, CLIP score conventions, training that learns, clear errors."""

from __future__ import annotations

import json
import math
import re

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from eval.canvas import mini_canvas
from eval.clip import MODEL_CFG, clip_score, create_mini_clip, load_mini_clip, save_mini_clip, train_mini_clip
from eval.clip.captions import describes
from eval.clip.mini import CONFIG_FILE, WEIGHTS_FILE, preprocess_for
from eval.clip.train import contrastive_loss
from pipelines.errors import EraseError

# The default design at a fraction of the width, for speed; the tokenizer and its 49,408-token
# vocabulary stay standard.
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def world():
    return mini_canvas()


@pytest.fixture(scope="module")
def pairs(world):
    """One render per object (all in "dots") and its canonical prompt."""
    images = [world.render(o, "dots", seed) for seed, o in enumerate(world.objects)]
    return images, [world.prompt(o, "dots") for o in world.objects]


def _embeddings(model, images, prompts):
    preprocess, tokenizer = preprocess_for(model), open_clip.SimpleTokenizer()
    with torch.no_grad():
        return model.encode_image(torch.stack([preprocess(i) for i in images])), model.encode_text(tokenizer(prompts))


def test_default_architecture_fits_the_size_budget():
    model = create_mini_clip()
    assert sum(t.numel() for t in model.state_dict().values()) * 2 < 8_000_000  # bytes in fp16
    assert model.vocab_size == 49408 and model.context_length == 77 and MODEL_CFG["vision_cfg"]["image_size"] == 32


def test_save_load_round_trip_gives_identical_embeddings_from_fp16_storage(tmp_path, pairs):
    torch.manual_seed(0)
    model = create_mini_clip(TINY_CFG).eval()
    with torch.no_grad():  # make every weight exactly representable in fp16, so the round trip is lossless
        for p in model.parameters():
            p.copy_(p.half().float())
    folder = save_mini_clip(model, tmp_path / "clip", {"note": "test"}, TINY_CFG)

    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        dtypes = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes.keys() == model.state_dict().keys()
    assert {k for k, dtype in dtypes.items() if dtype != "F16"} == \
        {k for k in dtypes if k.endswith("num_batches_tracked")}  # BatchNorm step counters stay integers
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["model_cfg"] == TINY_CFG and config["mini_canvas"]["note"] == "test"

    loaded, preprocess, tokenizer = load_mini_clip(folder)
    assert not loaded.training and all(p.dtype == torch.float32 for p in loaded.parameters())
    images, prompts = pairs
    for before, after in zip(_embeddings(model, images, prompts), _embeddings(loaded, images, prompts)):
        assert torch.equal(before, after)
    assert torch.equal(tokenizer(prompts), open_clip.SimpleTokenizer()(prompts))  # the standard CLIP BPE


def test_clip_score_is_100_cosine_clamped_at_0_and_raw_cosine_is_not(pairs):
    torch.manual_seed(0)
    model = create_mini_clip(TINY_CFG).eval()
    preprocess, tokenizer = preprocess_for(model), open_clip.SimpleTokenizer()
    images, prompts = pairs
    image_features, text_features = _embeddings(model, images, prompts)
    cosine = F.cosine_similarity(image_features, text_features).mean().item()  # the independent oracle

    raw = clip_score(images, prompts, model, preprocess, tokenizer, raw_cosine=True)
    score = clip_score(images, prompts, model, preprocess, tokenizer)
    with torch.no_grad():
        model.text_projection.neg_()  # every text embedding flips, so every cosine changes sign
    flipped_raw = clip_score(images, prompts, model, preprocess, tokenizer, raw_cosine=True)
    flipped_score = clip_score(images, prompts, model, preprocess, tokenizer)

    assert raw == pytest.approx(cosine, abs=1e-5) and flipped_raw == pytest.approx(-cosine, abs=1e-5)
    positive, negative = (score, flipped_score) if cosine > 0 else (flipped_score, score)
    assert positive == pytest.approx(100 * abs(cosine), rel=1e-4)  # x100
    assert negative == 0.0  # a negative mean is clamped at 0; the raw cosine is not


def test_clip_score_rejects_unpaired_inputs(pairs):
    model = create_mini_clip(TINY_CFG).eval()
    images, prompts = pairs
    with pytest.raises(EraseError, match="one prompt per image"):
        clip_score(images, prompts[:-1], model, preprocess_for(model), open_clip.SimpleTokenizer())


def test_captions_that_fit_other_images_are_not_used_as_negatives():
    # Item 0: "a circle" (object only); item 1: a circle in style 1; item 2: a square in style 1.
    objects, styles = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    fits = describes(objects, styles, names_object=torch.tensor([True, True, True]),
                     names_style=torch.tensor([False, True, True]))
    assert fits.tolist() == [[True, False, False],  # [image i, caption j]
                             [True, True, False],  # "a circle" also fits image 1
                             [False, False, True]]
    # Items 0 and 1 show the same pair with full captions: each one's caption fits the other's image.
    both = torch.tensor([True, True, True])
    fits = describes(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), both, both)
    features = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)  # a perfect model
    scale = torch.tensor(math.log(100))
    assert contrastive_loss(features, features, scale, fits) < 1e-6
    unmasked = contrastive_loss(features, features, scale, torch.eye(3, dtype=torch.bool))
    assert unmasked > 0.4  # without the mask, the fitting caption counts as a negative: (2/3) ln 2


def test_training_is_deterministic_given_the_seed(world):
    small = world.subset(objects=("circle", "square"), styles=("solid", "stripes"))
    runs = [train_mini_clip(small, seed=3, steps=3, batch_size=4, images_per_pair=2, heldout_per_pair=1,
                            model_cfg=TINY_CFG, progress=False)[0].state_dict() for _ in range(2)]
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_matching_prompts_score_higher_than_mismatched_after_short_training(world):
    small = world.subset(objects=("circle", "cross"), styles=("solid", "stripes"))
    model, report = train_mini_clip(small, seed=0, steps=120, batch_size=16, lr=3e-3, images_per_pair=16,
                                    heldout_per_pair=8, model_cfg=TINY_CFG, progress=False)
    preprocess, tokenizer = preprocess_for(model), open_clip.SimpleTokenizer()
    pairs = [(o, s) for o in small.objects for s in small.styles]
    seeds = small.seed_range("diffusion-heldout")[:8]  # fresh renders
    images = [small.render(o, s, seed) for seed in seeds for o, s in pairs]
    matching = [small.prompt(o, s) for _ in seeds for o, s in pairs]
    # the opposite pair: both the object and the style are wrong
    mismatched = [small.prompt(*pairs[len(pairs) - 1 - i]) for _ in seeds for i in range(len(pairs))]
    # Raw cosines: after so little training both means may still be negative, which the clamp would hide.
    assert clip_score(images, matching, model, preprocess, tokenizer, raw_cosine=True) > \
        clip_score(images, mismatched, model, preprocess, tokenizer, raw_cosine=True) + 0.1
    assert report["pair_accuracy"] > 50  # chance is 25


def test_bad_folders_raise_errors_that_name_the_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(EraseError, match=re.escape(str(missing))):
        load_mini_clip(missing)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EraseError, match=re.escape(str(empty))):
        load_mini_clip(empty)

    torch.manual_seed(0)
    folder = save_mini_clip(create_mini_clip(TINY_CFG), tmp_path / "clip", {}, TINY_CFG)
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(EraseError, match=re.escape(str(folder))):
        load_mini_clip(folder)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(EraseError, match=re.escape(str(folder))):
        load_mini_clip(folder)

    with pytest.raises(EraseError, match="architecture"):
        save_mini_clip(create_mini_clip(TINY_CFG), tmp_path / "other", {}, MODEL_CFG)
