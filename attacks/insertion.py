"""Where adversarial tokens go in a prompt: the insertion helpers shared by every prompt attack.

UnlearnDiffAtk inserts k discrete tokens, AdvUnlearn's soft-prompt attacker k continuous
embeddings; both build the text encoder's input the same way (``shared/docs/algorithms.md``
§3 and §7). A tokenized prompt of n tokens is ``[SOT, p_1..p_n, EOT, pad...]`` (77 ids); the
adversarial block ``a_1..a_k`` goes in by one of these layouts:

    prefix_k   [SOT, a, p, EOT, pad...]                 (both attacks' default)
    suffix_k   [SOT, p, a, EOT, pad...]
    mid_k      [SOT, p[:n//2], a, p[n//2:], EOT, pad...]
    insert_k   [SOT, p[:q], a_1, p[q:2q], a_2, ..., a_k, p[kq:], EOT, pad...],  q = n // (k+1)
    replace_k  [SOT, a, EOT x n, EOT, pad...]           (the prompt's tokens become padding)
    add        [SOT, p + a, EOT, pad...]                (a added to the prompt's embeddings;
                                                         k = 1 broadcasts, or k = n)

and the result is cut back to the context length, so it always has 77 positions with SOT
first. Each helper takes ``(ids, embeds, adv_ids, adv_embeds)`` for a batch whose prompts may
have different lengths, and returns the new ``(ids, embeds)``: ids only set the text encoder's
EOS pooling (the hidden states the UNet reads come from the embeddings), so a soft-prompt
attack passes ``adv_ids=None`` and the δ positions get the prompt's EOT id as AdvUnlearn does.

One deviation from the official ``split_embd``/``construct_embd``: they drop the k ids after
the prompt, which are EOT and k-1 pads; with SD 1.x's tokenizer (pad = EOT) that is the same
sequence as ours, but with a pad that is not EOT (SD 2.x pads with "!") theirs loses the EOT.
We keep it and drop k trailing pads instead.
"""

from __future__ import annotations

from typing import Callable

import torch

#: CLIP's end-of-text id (SD 1.x and 2.x); the first one after SOT ends the prompt.
EOT_ID = 49407


def prompt_lengths(ids: torch.Tensor, eot_id: int = EOT_ID) -> torch.Tensor:
    """Tokens between SOT and the first EOT of each row of ``ids`` (B, L) -> (B,)."""
    is_eot = ids[:, 1:] == eot_id  # (B, L-1)
    if not bool(is_eot.any(dim=1).all()):
        raise ValueError("every row of ids needs an end-of-text token after SOT")
    return is_eot.int().argmax(dim=1)  # first EOT position - 1


def fits(n: int, k: int, length: int = 77) -> bool:
    """Whether a prompt of ``n`` tokens keeps all its tokens and its EOT with ``k`` more."""
    return n + k + 2 <= length


# A layout lists, for every output position, where its token comes from: 0..L-1 index the
# prompt's own sequence, L + j the j-th adversarial token. P(i) is prompt token i (1-based).


def _prefix(n: int, k: int, L: int) -> list[int]:
    return [0, *range(L, L + k), *range(1, L)]


def _suffix(n: int, k: int, L: int) -> list[int]:
    return [*range(0, n + 1), *range(L, L + k), *range(n + 1, L)]


def _mid(n: int, k: int, L: int) -> list[int]:
    half = n // 2
    return [*range(0, half + 1), *range(L, L + k), *range(half + 1, L)]


def _insert(n: int, k: int, L: int) -> list[int]:
    q = n // (k + 1)
    out = [0]
    for j in range(k):
        out += [*range(1 + j * q, 1 + (j + 1) * q), L + j]
    return out + list(range(1 + k * q, L))


def _replace(n: int, k: int, L: int) -> list[int]:
    return [0, *range(L, L + k), *([n + 1] * n), *range(n + 1, L)]


def _assemble(layout: Callable[[int, int, int], list[int]], ids: torch.Tensor, embeds: torch.Tensor,
              adv_ids: torch.Tensor | None, adv_embeds: torch.Tensor, eot_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather each row's layout from ``[prompt sequence ; adversarial block]``."""
    batch, length = ids.shape
    k = adv_embeds.shape[1]
    lengths = prompt_lengths(ids, eot_id)  # (B,)
    if adv_ids is None:  # soft prompt: the δ positions carry the prompt's EOT id (pooling only)
        adv_ids = ids.gather(1, (lengths + 1).unsqueeze(1)).expand(batch, k)  # (B, k)
    source_ids = torch.cat([ids, adv_ids.to(ids)], dim=1)  # (B, L + k)
    source_embeds = torch.cat([embeds, adv_embeds.to(embeds)], dim=1)  # (B, L + k, D)
    rows = []
    for b, n in enumerate(lengths.tolist()):
        if not fits(n, k, length):
            raise ValueError(f"a prompt of {n} tokens has no room for {k} adversarial tokens in {length}")
        rows.append(layout(n, k, length)[:length])
    index = torch.tensor(rows, device=ids.device)  # (B, L)
    out_ids = source_ids.gather(1, index)  # (B, L)
    out_embeds = source_embeds.gather(1, index.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))  # (B, L, D)
    return out_ids, out_embeds


def prefix_k(ids, embeds, adv_ids, adv_embeds, eot_id: int = EOT_ID):
    """``[SOT, a, p, EOT, pad...]``: the adversarial tokens right after SOT."""
    return _assemble(_prefix, ids, embeds, adv_ids, adv_embeds, eot_id)


def suffix_k(ids, embeds, adv_ids, adv_embeds, eot_id: int = EOT_ID):
    """``[SOT, p, a, EOT, pad...]``: the adversarial tokens after the prompt."""
    return _assemble(_suffix, ids, embeds, adv_ids, adv_embeds, eot_id)


def mid_k(ids, embeds, adv_ids, adv_embeds, eot_id: int = EOT_ID):
    """``[SOT, p[:n//2], a, p[n//2:], EOT, pad...]``."""
    return _assemble(_mid, ids, embeds, adv_ids, adv_embeds, eot_id)


def insert_k(ids, embeds, adv_ids, adv_embeds, eot_id: int = EOT_ID):
    """The k tokens spread through the prompt, one after every ``n // (k+1)`` prompt tokens."""
    return _assemble(_insert, ids, embeds, adv_ids, adv_embeds, eot_id)


def replace_k(ids, embeds, adv_ids, adv_embeds, eot_id: int = EOT_ID):
    """``[SOT, a, EOT x n, EOT, pad...]``: the adversarial tokens instead of the prompt."""
    return _assemble(_replace, ids, embeds, adv_ids, adv_embeds, eot_id)


def add(ids, embeds, adv_ids, adv_embeds, eot_id: int = EOT_ID):
    """``[SOT, p + a, EOT, pad...]``: ``adv_embeds`` (B, 1 or n, D) added to the prompt's tokens.

    The ids stay the prompt's (``adv_ids`` is ignored): only the embeddings move.
    """
    lengths = prompt_lengths(ids, eot_id)  # (B,)
    out = embeds.clone()
    for b, n in enumerate(lengths.tolist()):
        if adv_embeds.shape[1] not in (1, n):
            raise ValueError(f"'add' needs 1 or {n} (the prompt length) adversarial vectors, got {adv_embeds.shape[1]}")
        out[b, 1:1 + n] = embeds[b, 1:1 + n] + adv_embeds[b].to(embeds)  # (n, D)
    return ids, out


INSERTIONS = {"prefix_k": prefix_k, "suffix_k": suffix_k, "mid_k": mid_k, "insert_k": insert_k,
              "replace_k": replace_k, "add": add}
#: Layouts that place whole tokens, so that a discrete attack's ids decode to a prompt.
TOKEN_INSERTIONS = ("prefix_k", "suffix_k", "mid_k", "insert_k", "replace_k")


def insert(mode: str, ids: torch.Tensor, embeds: torch.Tensor, adv_ids: torch.Tensor | None,
           adv_embeds: torch.Tensor, eot_id: int = EOT_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the insertion named ``mode`` (see the module docstring)."""
    try:
        helper = INSERTIONS[mode]
    except KeyError:
        raise ValueError(f"unknown insertion {mode!r}; choose from {', '.join(INSERTIONS)}") from None
    return helper(ids, embeds, adv_ids, adv_embeds, eot_id)
