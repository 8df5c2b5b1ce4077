"""The real CLIP BPE tokenizer, built offline.

Stable Diffusion 1.x uses OpenAI CLIP's byte-pair vocabulary (49,408 tokens). Nothing can be
downloaded here, but the same vocabulary ships inside ``open_clip_torch``
(``bpe_simple_vocab_16e6.txt.gz``). From it we build a ``transformers.CLIPTokenizer`` whose ids
are identical to open_clip's tokenizer and to SD 1.x's, so that the mini-canvas model and the tiny
test models speak the same token language as real checkpoints (attacks optimise over this exact
vocabulary).
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache

from transformers import CLIPTokenizer

#: CLIP's vocabulary: 256 byte symbols, the same with ``</w>``, 48,894 merges and 2 specials.
CLIP_VOCAB_SIZE = 49408
_NUM_MERGES = CLIP_VOCAB_SIZE - 256 * 2 - 2


def _bpe_file() -> str:
    import open_clip

    return os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], tuple[str, ...]]:
    from open_clip.tokenizer import bytes_to_unicode

    lines = gzip.open(_bpe_file()).read().decode("utf-8").split("\n")
    merges = tuple(lines[1 : 1 + _NUM_MERGES])  # line 0 is the "#version" header
    byte_symbols = list(bytes_to_unicode().values())
    tokens = byte_symbols + [s + "</w>" for s in byte_symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


@lru_cache(maxsize=2)
def clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` with the full CLIP vocabulary and SD 1.x's padding convention.

    Token ids are identical to open_clip's up to and including the end-of-text token (a test
    pins this); the padding after it is ``<|endoftext|>`` (49407) as in SD 1.x, where open_clip
    pads with 0. Building takes a few seconds, so the result is cached: treat it as read-only.
    """
    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=[tuple(m.split()) for m in merges],
        unk_token="<|endoftext|>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
    )


def save_tokenizer(tokenizer: CLIPTokenizer, folder: str) -> None:
    """Save ``tokenizer`` so that both transformers 5 and older releases can load the folder.

    transformers 5 writes only ``tokenizer.json``; older versions need ``vocab.json`` and
    ``merges.txt`` as well, so we write them too.
    """
    import json

    tokenizer.save_pretrained(folder)
    vocab, merges = _vocab_and_merges()
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def add_legacy_tokenizer_files(folder: str, tokenizer) -> None:
    """Write ``vocab.json``/``merges.txt`` into a saved tokenizer folder that lacks them.

    Only for tokenizers with CLIP's 49,408-token BPE vocabulary (SD 1.x and 2.x both use it),
    whose files we can rebuild exactly from open_clip's copy.
    """
    has_files = os.path.exists(os.path.join(folder, "vocab.json")) and os.path.exists(os.path.join(folder, "merges.txt"))
    if has_files or len(tokenizer) != CLIP_VOCAB_SIZE:
        return
    vocab, _ = _vocab_and_merges()
    if tokenizer.convert_tokens_to_ids("<|startoftext|>") != vocab["<|startoftext|>"]:
        return
    save_tokenizer(tokenizer, folder)
