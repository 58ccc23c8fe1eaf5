"""The development zoo of real families: every member builds and runs in torch, and one
member of every family lowers through TVM from its ONNX export (the slow half)."""

from __future__ import annotations

import pytest

from chamtvm.zoo import real


@pytest.mark.slow
def test_every_member_builds_and_runs():
    import torch

    assert len(real.FAMILIES) >= 8 and all(len(m) >= 2 for m in real.FAMILIES.values())
    assert {"resnext", "densenet", "convnext", "efficientnet_v2", "ghostnet", "mobilevit", "googlenet", "repvgg",
            "mixnet"} <= set(real.FAMILIES)
    for name in real.names():
        with torch.no_grad():
            out = real.build(name)(torch.zeros(1, 3, 64, 64))
        assert out.shape == (1, 1000), name
        assert real.family_of(name) in real.FAMILIES
    with pytest.raises(KeyError, match="choose one of"):
        real.build("nope")


@pytest.mark.slow
def test_every_family_lowers_from_onnx(tmp_path):
    """One member per family (a family's members share their operators and idioms and differ
    in widths and depths; the benchmarks lower every member)."""
    from chamtvm.lower.network import lower_onnx

    for members in real.FAMILIES.values():
        name = members[0]
        net = lower_onnx(real.export_onnx(name, 64, tmp_path / f"{name}.onnx"))
        assert len(net.kernels) >= 5, name
