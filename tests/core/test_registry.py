"""The one registry: register, decorator, lazy loaders, unknown names listed."""

import pytest

from chamtvm.core.registry import Registry, UnknownNameError


def test_register_get_and_list():
    reg = Registry("sampler")
    reg.register("random", 1)

    @reg.register("bo")
    def bo():
        return 2

    assert reg.get("random") == 1 and reg.get("bo") is bo
    assert reg.names() == ["bo", "random"] and "bo" in reg and list(reg) == ["bo", "random"]


def test_unknown_name_lists_the_valid_ones_and_is_a_value_and_key_error():
    reg = Registry("target")
    reg.register("x86", object())
    reg.register("arm", object())
    with pytest.raises(UnknownNameError) as e:
        reg.get("riscv")
    assert str(e.value) == "unknown target 'riscv'; valid targets: arm, x86"
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)


def test_double_registration_is_refused_unless_replacing():
    reg = Registry("task")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="registered already"):
        reg.register("a", 2)
    reg.register("a", 2, replace=True)
    assert reg.get("a") == 2


def test_loaders_run_once_before_the_first_lookup():
    reg = Registry("predictor")
    calls = []
    reg.add_loader(lambda: (calls.append(1), reg.register("gp", "GP")))
    assert calls == []
    assert reg.get("gp") == "GP" and reg.names() == ["gp"]
    assert calls == [1]
