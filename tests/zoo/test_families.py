"""The out-of-space families (ResNet basic blocks, ShuffleNet split, SE, hard-swish): each
builds, runs, exports to ONNX and lowers to kernels of kinds the space never has."""

import numpy as np
import pytest

from chamtvm.zoo import families


@pytest.mark.parametrize("name", families.names())
def test_family_builds_runs_exports_and_lowers(name, tmp_path):
    import torch

    from chamtvm.lower.network import lower_onnx

    model = families.build(name)
    with torch.no_grad():
        y = model(torch.zeros(1, 3, 32, 32))
    assert y.shape[0] == 1 and torch.isfinite(y).all()
    path = families.export_onnx(name, 32, tmp_path / f"{name}.onnx")
    net = lower_onnx(path)
    assert net.kernels and all(k.count >= 1 for k in net.kernels)
    assert np.isfinite(sum(k.flops * k.count for k in net.kernels if k.flops == k.flops))


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises((KeyError, ValueError), match="resnet_basic"):
        families.build("vgg")
