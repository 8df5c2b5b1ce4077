"""Insertion helpers: where the adversarial tokens go, checked against the tokenizer itself."""

import pytest
import torch

from attacks.insertion import EOT_ID, INSERTIONS, add, insert, insert_k, mid_k, prefix_k, replace_k, suffix_k
from pipelines.tokenizer import clip_tokenizer

SOT = 49406


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


def ids_of(tok, *texts):
    return tok(list(texts), padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


def words(tok, text):
    return tok(text).input_ids[1:-1]


def embed(ids):
    """A stand-in token embedding: every id maps to (id, -id)."""
    return torch.stack([ids.float(), -ids.float()], dim=-1)


def run(helper, tok, prompts, adversarial):
    ids = ids_of(tok, *prompts)
    adv_ids = torch.tensor([words(tok, a) for a in adversarial])
    return helper(ids, embed(ids), adv_ids, embed(adv_ids))


def test_prefix_and_suffix_equal_tokenizing_the_joined_text(tok):
    out_ids, out_embeds = run(prefix_k, tok, ["a star image", "a big red star in stripes style"], ["red blue green", "one two three"])
    assert torch.equal(out_ids, ids_of(tok, "red blue green a star image", "one two three a big red star in stripes style"))
    assert torch.equal(out_embeds, embed(out_ids))  # embeddings travel with their ids
    out_ids, _ = run(suffix_k, tok, ["a star image"], ["red blue green"])
    assert torch.equal(out_ids, ids_of(tok, "a star image red blue green"))


def test_mid_insert_and_replace_layouts(tok):
    p = words(tok, "one two three four five six")
    a = words(tok, "red blue")
    out_ids, _ = run(mid_k, tok, ["one two three four five six"], ["red blue"])
    assert out_ids[0, :10].tolist() == [SOT, *p[:3], *a, *p[3:], EOT_ID]
    out_ids, _ = run(insert_k, tok, ["one two three four five six"], ["red blue"])  # q = 6 // 3 = 2
    assert out_ids[0, :10].tolist() == [SOT, *p[:2], a[0], *p[2:4], a[1], *p[4:], EOT_ID]
    out_ids, _ = run(replace_k, tok, ["one two three four five six"], ["red blue"])
    assert out_ids[0, :10].tolist() == [SOT, *a, *[EOT_ID] * 7]


@pytest.mark.parametrize("mode", ["prefix_k", "suffix_k", "mid_k", "insert_k", "replace_k", "add"])
def test_every_helper_gives_77_positions_sot_first_and_keeps_the_eot(tok, mode):
    k = 1 if mode == "add" else 3
    ids = ids_of(tok, "a star image in stripes style.", "x")
    adv = torch.randn(2, k, 2)
    out_ids, out_embeds = insert(mode, ids, embed(ids), None, adv)
    assert out_ids.shape == (2, 77) and out_embeds.shape == (2, 77, 2)
    assert (out_ids[:, 0] == SOT).all() and (out_ids == EOT_ID).any(dim=1).all()


def test_soft_prompts_get_eot_ids_and_add_perturbs_only_the_prompt(tok):
    ids = ids_of(tok, "a star image")
    delta = torch.ones(1, 2, 2)
    out_ids, out_embeds = prefix_k(ids, embed(ids), None, delta)
    assert out_ids[0, 1:3].tolist() == [EOT_ID, EOT_ID] and torch.equal(out_embeds[0, 1:3], delta[0])
    out_ids, out_embeds = add(ids, embed(ids), None, torch.ones(1, 1, 2))
    assert torch.equal(out_ids, ids)
    assert torch.equal(out_embeds[0, 1:4], embed(ids)[0, 1:4] + 1) and torch.equal(out_embeds[0, 4:], embed(ids)[0, 4:])


def test_a_prompt_without_room_is_refused(tok):
    ids = ids_of(tok, "star " * 73)  # 73 tokens + SOT + EOT = 75: no room for 3 more
    with pytest.raises(ValueError, match="no room"):
        prefix_k(ids, embed(ids), None, torch.zeros(1, 3, 2))
    assert set(INSERTIONS) == {"prefix_k", "suffix_k", "mid_k", "insert_k", "replace_k", "add"}


def test_inserted_embeddings_encode_like_the_joined_prompt(memory_pipe):
    """Through the text encoder: the soft path on inserted token embeddings = encoding the text."""
    from pipelines import backbone_for

    prompts = backbone_for(memory_pipe).prompts
    ids = prompts.ids(["a star image"])
    adv_ids = prompts.ids(["red blue green"])[:, 1:4]
    in_ids, in_embeds = prefix_k(ids, prompts.embed_ids(ids), adv_ids, prompts.embed_ids(adv_ids))
    with torch.no_grad():
        assert torch.allclose(prompts.encode_embeds(in_ids, in_embeds), prompts.encode(["red blue green a star image"]), atol=1e-5)
