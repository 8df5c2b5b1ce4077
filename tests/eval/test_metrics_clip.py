"""CLIP score streamed over batches equals torchmetrics over all pairs; the backbone is named."""

import numpy as np
import pytest
import torch
from PIL import Image

from eval.metrics.clip import ClipScorer
from pipelines.errors import EraseError

PROMPTS = ["A star image in dots style.", "A circle image in stripes style.", "A heart image.", "An image in solid style."] * 2


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def mini_clip_folder(tmp_path_factory):
    from eval.clip import create_mini_clip, save_mini_clip

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip") / "mini"
    save_mini_clip(create_mini_clip(), folder, {})
    return str(folder)


def test_streamed_score_equals_one_torchmetrics_call(mini_clip_folder):
    from eval.clip import clip_score, load_mini_clip

    images = _images(len(PROMPTS))
    scorer = ClipScorer.load(mini_clip_folder)
    scorer.update(images[:3], PROMPTS[:3])
    scorer.update(images[3:], PROMPTS[3:])
    model, preprocess, tokenizer = load_mini_clip(mini_clip_folder)
    cosine = clip_score(images, PROMPTS, model, preprocess, tokenizer, raw_cosine=True)
    assert scorer.compute() == pytest.approx(max(100 * cosine, 0), abs=1e-3)
    if cosine > 0:
        assert scorer.compute() == pytest.approx(clip_score(images, PROMPTS, model, preprocess, tokenizer), abs=1e-3)
    assert scorer.describe()["backbone"] == "mini-canvas-clip"
    scorer.reset()
    assert scorer.compute() is None


def test_the_mean_is_clamped_at_zero():
    assert ClipScorer.score(-3.0, 10) == 0.0 and ClipScorer.score(3.0, 10) == 30.0 and ClipScorer.score(0.0, 0) is None


@pytest.fixture(scope="module")
def hf_clip_folder(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from pipelines.tokenizer import CLIP_VOCAB_SIZE, clip_tokenizer

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                         vocab_size=CLIP_VOCAB_SIZE, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8),
        projection_dim=16)
    folder = tmp_path_factory.mktemp("hfclip") / "tiny-clip"
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32), tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return str(folder)


def test_transformers_clip_matches_its_own_cosines(hf_clip_folder):
    from transformers import CLIPModel, CLIPProcessor

    images = _images(4, seed=1)
    scorer = ClipScorer.load(hf_clip_folder)
    scorer.update(images[:2], PROMPTS[:2])
    scorer.update(images[2:], PROMPTS[2:4])
    model = CLIPModel.from_pretrained(hf_clip_folder).eval()
    inputs = CLIPProcessor.from_pretrained(hf_clip_folder)(text=PROMPTS[:4], images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    cosine = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds).mean().item()
    assert scorer.compute() == pytest.approx(max(100 * cosine, 0), abs=1e-3)
    assert scorer.describe()["backbone"] == "tiny-clip"


def test_missing_clip_folder_names_the_flag(tmp_path):
    with pytest.raises(EraseError, match="--clip-model"):
        ClipScorer.load(str(tmp_path / "nope"))
    with pytest.raises(EraseError, match="neither open_clip_config.json nor config.json"):
        ClipScorer.load(str(tmp_path))
