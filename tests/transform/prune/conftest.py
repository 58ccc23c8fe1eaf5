"""Fixtures of the pruning tests: a small residual network of ``tiny_space`` (module scope:
a test module may change its weights, the next module gets a fresh one)."""

from __future__ import annotations

import pytest


def _residual_net(space, stage2_kernel: int):
    """``(model, input shape)``: 32 px input, stem 8, stages 8 (1 block), 16 (3 residual
    blocks, expansion 4, ``stage2_kernel``), 24 (1 block, expansion 2)."""
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.space.schema import Arch

    arch = Arch.from_dict({"resolution": 32, "stem_channels": 8, "head_channels": 32, "stages": [
        {"channels": 8, "blocks": 1, "expansion": 1, "kernel": 3},
        {"channels": 16, "blocks": 3, "expansion": 4, "kernel": stage2_kernel},
        {"channels": 24, "blocks": 1, "expansion": 2, "kernel": 3}]})
    return build_model(space, arch), input_shape(space, arch)


@pytest.fixture(scope="module")
def residual_net(tiny_space):
    """The small residual network, 3x3 kernels throughout: ``(model, input shape)``."""
    return _residual_net(tiny_space, 3)


@pytest.fixture(scope="module")
def residual_net_k5(tiny_space):
    """The small residual network with 5x5 depthwise kernels in its residual stage."""
    return _residual_net(tiny_space, 5)
