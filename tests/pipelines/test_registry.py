"""The shared registry behind ``erase.registry`` and ``attacks.registry``."""

import pytest

from pipelines.errors import ConfigError
from pipelines.registry import Registry


class Base:
    pass


def make(name="a", summary="does a", config=Base):
    return type(f"Cls_{name}", (), {"name": name, "summary": summary, "config_class": config})


def test_register_get_and_list_sorted():
    reg = Registry("thing", Base, hint=" (see `things`)")
    b, a = reg.register(make("b")), reg.register(make("a"))
    assert reg.get("a") is a and list(reg.available()) == ["a", "b"] and reg.available()["b"] is b
    assert reg.register(a) is a  # registering the same class again is harmless
    with pytest.raises(ConfigError, match=r"unknown thing 'c'; available: a, b \(see `things`\)$"):
        reg.get("c")


def test_bad_classes_are_refused_with_the_reason():
    reg = Registry("attack", Base)
    with pytest.raises(TypeError, match="needs a `name` and a one-line `summary`"):
        reg.register(make(summary=""))
    with pytest.raises(TypeError, match="config_class must derive from Base"):
        reg.register(make(config=int))
    reg.register(make("x"))
    with pytest.raises(TypeError, match="attack name 'x' is already registered by Cls_x"):
        reg.register(make("x"))


def test_methods_and_attacks_keep_their_messages():
    from attacks.registry import get_attack
    from erase.registry import get_method

    with pytest.raises(ConfigError, match=r"unknown method 'nope'; available: .*esd.* \(see `erase methods`\)"):
        get_method("nope")
    with pytest.raises(ConfigError, match=r"unknown attack 'nope'; available: .*unlearndiffatk"):
        get_attack("nope")
