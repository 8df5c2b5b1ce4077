"""From token ids to the prompt text an attack reports, and back.

An attack optimises ids, but what it reports (and what regenerates its image) is text, as in
the official UnlearnDiffAtk: the ids after SOT, without EOT and padding, decoded. BPE decoding
is not always invertible (a sub-word token glues onto its neighbour), so :func:`tokenizes_to`
says whether the text tokenizes back to the same ids; the records keep both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def decode_prompt(tokenizer, ids: torch.Tensor | Sequence[int]) -> str:
    """The text of one id sequence: every id after SOT that is not EOT or padding, decoded."""
    values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    dropped = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    return tokenizer.decode([i for i in values[1:] if i not in dropped]).strip()


def tokenizes_to(tokenizer, text: str, ids: Sequence[int]) -> bool:
    """Whether ``text`` tokenizes to exactly ``ids`` (SOT to the first EOT)."""
    return tokenizer(text, truncation=True).input_ids == list(ids)
