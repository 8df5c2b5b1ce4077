"""Which weights a method trains: named presets, patterns, and canonical tensor names.

One vocabulary for every method (``shared/docs/contracts.md``); the official repositories'
names are accepted as aliases and mapped in :data:`ALIASES`, the only such table.

UNet presets
    ``esd-x``         every tensor of cross-attention (``attn2``: q, k, v, out)   (alias ``xattn``)
    ``esd-x-strict``  only ``attn2.to_k`` and ``attn2.to_v``                     (DoCo's ``cross-attn``)
    ``esd-u``         every UNet tensor not under ``attn2``                       (alias ``noxattn``)
    ``full``          the whole UNet                                             (alias ``esd-all``)
Text-encoder presets (token and position embeddings are never trained)
    ``te-full``            every ``encoder.layers.*`` tensor   (AdvUnlearn ``text_encoder_full``, few-shot ``all``)
    ``te-ffn``             the MLPs                            (few-shot ``mlp-only``)
    ``te-attn``            the self-attentions                 (few-shot ``attn-only``)
    ``te-mlp-attn``        MLPs and self-attentions            (few-shot ``mlp-attn``)
    ``te-mlp-final-attn``  every MLP plus the last layer's self-attention (few-shot default)
    ``te-layers:I-J``      every tensor of layers I..J (inclusive)
Patterns
    ``unet:REGEX`` or ``text_encoder:REGEX`` selects the tensors whose name matches REGEX.
Unions
    ``te-full+esd-x`` joins named presets (not patterns, whose REGEX may hold a ``+``): both
    components train together, as AdvUnlearn's text encoder with ESD's cross-attention.

Artifact tensor names are ``<component>.<name>``. Text-encoder names are canonicalised to the
``text_model.``-prefixed form that SD checkpoints in the wild use (transformers 5 drops the
prefix in memory), so artifacts move between transformers versions.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Mapping

import torch

from .errors import ConfigError

ALIASES = {
    "xattn": "esd-x",
    "noxattn": "esd-u",
    "esd-all": "full",
    "cross-attn": "esd-x-strict",
    "text_encoder_full": "te-full",
    "all": "te-full",
    "mlp-only": "te-ffn",
    "attn-only": "te-attn",
    "mlp-attn": "te-mlp-attn",
    "mlp-final-attn": "te-mlp-final-attn",
}

_LAYER = r"(?:^|\.)encoder\.layers\.(\d+)\."
PRESETS = ("esd-x", "esd-x-strict", "esd-u", "full", "te-full", "te-ffn", "te-attn", "te-mlp-attn", "te-mlp-final-attn", "te-layers:I-J")
_TE_PREFIX = "text_model."


def _te_layer(name: str) -> int | None:
    m = re.search(_LAYER, name)
    return int(m.group(1)) if m else None


def _te_count_layers(names: list[str]) -> int:
    layers = [_te_layer(n) for n in names]
    return max((l for l in layers if l is not None), default=-1) + 1


def _rule(preset: str):
    """``(component, predicate(name, all_names) -> bool)`` for a canonical preset."""
    if preset == "esd-x":
        return "unet", lambda n, _: ".attn2." in n
    if preset == "esd-x-strict":
        return "unet", lambda n, _: bool(re.search(r"\.attn2\.to_[kv]\.", n))
    if preset == "esd-u":
        return "unet", lambda n, _: ".attn2." not in n
    if preset == "full":
        return "unet", lambda n, _: True
    if preset == "te-full":
        return "text_encoder", lambda n, _: _te_layer(n) is not None
    if preset == "te-ffn":
        return "text_encoder", lambda n, _: _te_layer(n) is not None and ".mlp." in n
    if preset == "te-attn":
        return "text_encoder", lambda n, _: _te_layer(n) is not None and ".self_attn." in n
    if preset == "te-mlp-attn":
        return "text_encoder", lambda n, _: _te_layer(n) is not None and (".mlp." in n or ".self_attn." in n)
    if preset == "te-mlp-final-attn":
        return "text_encoder", lambda n, names: _te_layer(n) is not None and (
            ".mlp." in n or (".self_attn." in n and _te_layer(n) == _te_count_layers(names) - 1)
        )
    m = re.fullmatch(r"te-layers:(\d+)-(\d+)", preset)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        return "text_encoder", lambda n, _: (l := _te_layer(n)) is not None and lo <= l <= hi
    m = re.fullmatch(r"(unet|text_encoder):(.+)", preset)
    if m:
        try:
            pattern = re.compile(m.group(2))
        except re.error as e:
            raise ConfigError(f"parameter pattern '{m.group(2)}' is not a valid regular expression ({e})") from None
        return m.group(1), lambda n, _: bool(pattern.search(n))
    raise ConfigError(
        f"unknown parameter preset '{preset}'; use one of {', '.join(PRESETS)}, an official alias "
        f"({', '.join(sorted(ALIASES))}), or a pattern 'unet:REGEX' / 'text_encoder:REGEX'"
    )


def canonical_preset(preset: str) -> str:
    return ALIASES.get(preset, preset)


def _parts(preset: str) -> list[str]:
    """The named presets a union joins (``a+b``); a pattern, or a single preset, is one part."""
    if re.match(r"(unet|text_encoder):", preset) or "+" not in preset:
        return [canonical_preset(preset)]
    parts = [canonical_preset(p.strip()) for p in preset.split("+")]
    if any(not p or re.match(r"(unet|text_encoder):", p) for p in parts):
        raise ConfigError(f"parameter preset '{preset}': a union joins named presets (e.g. te-full+esd-x); "
                          "a 'unet:REGEX' pattern stands alone")
    return parts


def preset_components(preset: str) -> tuple[str, ...]:
    """Which components (``unet``, ``text_encoder``) a preset trains, sorted."""
    return tuple(sorted({_rule(p)[0] for p in _parts(preset)}))


def qualified_name(component: str, name: str) -> str:
    """``<component>.<canonical name>`` as stored in artifacts."""
    if component == "text_encoder" and not name.startswith(_TE_PREFIX):
        name = _TE_PREFIX + name
    return f"{component}.{name}"


def select_parameters(components: Mapping[str, torch.nn.Module], preset: str) -> dict[str, torch.nn.Parameter]:
    """The parameters a preset selects, keyed by qualified name, in module order (a union: each
    part's, in the order written)."""
    chosen: dict[str, torch.nn.Parameter] = {}
    for part in _parts(preset):
        component, keep = _rule(part)
        module = components[component]
        names = [n for n, _ in module.named_parameters()]
        selected = {qualified_name(component, n): p for n, p in module.named_parameters() if keep(n, names)}
        if not selected:
            raise ConfigError(f"parameter preset '{part}' selects no tensors of the {component}; choose another preset")
        chosen.update(selected)
    return chosen


def resolve_tensors(components: Mapping[str, torch.nn.Module], names: list[str]) -> dict[str, torch.Tensor]:
    """Live parameters/buffers for qualified names, accepting either text-encoder naming."""
    out: dict[str, torch.Tensor] = {}
    states: dict[str, dict[str, torch.Tensor]] = {}
    for qualified in names:
        component, _, name = qualified.partition(".")
        if component not in components:
            raise ConfigError(f"tensor '{qualified}' names a component '{component}' this pipeline does not have")
        if component not in states:
            module = components[component]
            states[component] = {**dict(module.named_buffers()), **dict(module.named_parameters())}
        state = states[component]
        candidates = [name, name[len(_TE_PREFIX):]] if name.startswith(_TE_PREFIX) else [name, _TE_PREFIX + name]
        found = next((state[c] for c in candidates if c in state), None)
        if found is None:
            raise ConfigError(f"tensor '{qualified}' does not exist in this pipeline's {component}")
        out[qualified] = found
    return out


@contextmanager
def swapped(params: Mapping[str, torch.Tensor], values: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily give ``params`` the ``values`` (same names), e.g. the frozen originals.

    Swapping ``.data`` costs nothing and lets one UNet serve as both the trained and the frozen
    model (as ESD's diffusers code does), instead of keeping a second full copy in memory.
    Use under ``torch.no_grad()``.
    """
    saved = {n: p.data for n, p in params.items()}
    try:
        for n, p in params.items():
            p.data = values[n]
        yield
    finally:
        for n, p in params.items():
            p.data = saved[n]


def count(params: Mapping[str, torch.Tensor]) -> int:
    return sum(p.numel() for p in params.values())
