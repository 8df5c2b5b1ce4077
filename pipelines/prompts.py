"""Prompt encoding: token ids, a cache for frozen text encoders, and a soft-prompt path.

Attacks (UnlearnDiffAtk) and AdvUnlearn optimise *token embeddings* rather than token ids, so
besides ``encode(prompts)`` there is ``encode_embeds(ids, inputs_embeds)``: the same CLIP
forward (position embeddings, causal mask, final layer norm, EOS pooling by ids) with the token
embedding lookup replaced by the given embeddings. It is implemented with a forward hook on the
token embedding, so it works with every transformers version without re-implementing CLIP.
"""

from __future__ import annotations

from typing import Sequence

import torch


class PromptEncoder:
    """Encodes prompts with one text encoder and its tokenizer."""

    def __init__(self, text_encoder: torch.nn.Module, tokenizer) -> None:
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def max_length(self) -> int:
        return self.tokenizer.model_max_length

    @property
    def token_embedding(self) -> torch.nn.Embedding:
        return self.text_encoder.get_input_embeddings()

    @property
    def device(self) -> torch.device:
        return self.token_embedding.weight.device

    def ids(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token ids ``(B, 77)``: SOT, tokens, EOT, padding; truncated to the context length."""
        return self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.device)

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Last hidden states ``(B, 77, D)``; gradients flow if the encoder's weights require them."""
        return self.text_encoder(self.ids(prompts))[0]

    def cached(self, prompts: Sequence[str]) -> torch.Tensor:
        """Like :meth:`encode` without gradients, memoised per prompt.

        Only for a text encoder whose weights do not change while the cache lives; a method
        that trains the text encoder uses :meth:`encode` (or calls :meth:`clear_cache`).
        """
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            with torch.no_grad():
                for p, e in zip(missing, self.encode(missing)):
                    self._cache[p] = e
        return torch.stack([self._cache[p] for p in prompts])

    def clear_cache(self) -> None:
        self._cache.clear()

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, L, D)`` of ids (no position embeddings)."""
        return self.token_embedding(ids)

    def encode_embeds(self, ids: torch.Tensor, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Encode given token embeddings ``(B, L, D)``; ``ids`` only set the EOS pooling position.

        ``encode_embeds(ids, embed_ids(ids))`` equals ``encode`` of the same prompt.
        """

        def replace(_module, _inputs, _output):
            return inputs_embeds.to(_output.dtype)

        handle = self.token_embedding.register_forward_hook(replace)
        try:
            return self.text_encoder(ids)[0]
        finally:
            handle.remove()
