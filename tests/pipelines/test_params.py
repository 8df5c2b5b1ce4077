import pytest

from pipelines import backbone_for
from pipelines.errors import ConfigError
from pipelines.params import ALIASES, preset_components, resolve_tensors, select_parameters


def names(pipe, preset):
    return set(select_parameters(backbone_for(pipe).components, preset))


def test_unet_presets(tiny_pipe):
    everything = names(tiny_pipe, "full")
    x = names(tiny_pipe, "esd-x")
    strict = names(tiny_pipe, "esd-x-strict")
    u = names(tiny_pipe, "esd-u")
    assert x and all(".attn2." in n for n in x)
    assert strict < x and all((".to_k." in n or ".to_v." in n) for n in strict)
    assert x | u == everything and not (x & u)
    assert all(n.startswith("unet.") for n in everything)


def test_text_encoder_presets(tiny_pipe):
    full = names(tiny_pipe, "te-full")
    assert full and all(n.startswith("text_encoder.text_model.encoder.layers.") for n in full)
    assert not any("embedding" in n for n in full)
    ffn, attn = names(tiny_pipe, "te-ffn"), names(tiny_pipe, "te-attn")
    assert all(".mlp." in n for n in ffn) and all(".self_attn." in n for n in attn)
    final = names(tiny_pipe, "te-mlp-final-attn")  # the tiny encoder has 2 layers: 0 and 1
    assert ffn < final and all(".layers.1." in n for n in final - ffn)
    assert names(tiny_pipe, "te-layers:1-1") == {n for n in full if ".layers.1." in n}


def test_aliases_patterns_and_errors(tiny_pipe):
    assert names(tiny_pipe, "xattn") == names(tiny_pipe, "esd-x")
    assert names(tiny_pipe, "mlp-final-attn") == names(tiny_pipe, "te-mlp-final-attn")
    assert set(ALIASES.values()) <= {"esd-x", "esd-u", "full", "esd-x-strict", "te-full", "te-ffn", "te-attn", "te-mlp-attn", "te-mlp-final-attn"}
    assert names(tiny_pipe, r"unet:attn2\.to_q\.weight$") == {n for n in names(tiny_pipe, "esd-x") if n.endswith("to_q.weight")}
    assert preset_components("noxattn") == ("unet",) and preset_components("te-ffn") == ("text_encoder",)
    assert preset_components("te-full+xattn") == ("text_encoder", "unet")
    assert names(tiny_pipe, "te-full+xattn") == names(tiny_pipe, "te-full") | names(tiny_pipe, "esd-x")
    assert names(tiny_pipe, r"unet:attn2\.to_(k|v)+\.weight$")  # a pattern's + is the regex's
    with pytest.raises(ConfigError, match="a 'unet:REGEX' pattern stands alone"):
        names(tiny_pipe, "te-full+unet:attn2")
    with pytest.raises(ConfigError, match="unknown parameter preset"):
        names(tiny_pipe, "nope")
    with pytest.raises(ConfigError, match="selects no tensors"):
        names(tiny_pipe, "unet:does-not-exist")


def test_resolve_accepts_both_text_encoder_namings(tiny_pipe):
    components = backbone_for(tiny_pipe).components
    name = next(iter(names(tiny_pipe, "te-ffn")))
    short = name.replace("text_encoder.text_model.", "text_encoder.")
    a, b = resolve_tensors(components, [name])[name], resolve_tensors(components, [short])[short]
    assert a is b
