"""Shared fixtures: a tiny search space and the local x86 target, all real (no mocks)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="session")
def tiny_space():
    from chamtvm.space.schema import SearchSpace

    return SearchSpace.load(DATA / "space_tiny3.json")


@pytest.fixture(scope="session")
def x86():
    from chamtvm.targets.spec import get_target

    return get_target("x86")


@pytest.fixture(scope="session")
def tiny_archs(tiny_space):
    import numpy as np

    rng = np.random.default_rng(0)
    return [tiny_space.sample(rng) for _ in range(3)]


# ------------------------------------------------------------- a tiny torch network
def tiny_torch_module():
    """Three 3x3 convolutions + ReLU (the last two of the same shape) and a spatial mean, on
    a (1, 3, 8, 8) input: lowers to 3 distinct kernels, one of them called twice."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.c3 = nn.Conv2d(4, 4, 3, padding=1, bias=False)

        def forward(self, x):
            y = torch.relu(self.c1(x))
            y = torch.relu(self.c2(y))
            return torch.relu(self.c3(y)).mean(dim=(2, 3))

    torch.manual_seed(0)
    return Tiny().eval()


TINY_INPUT = (1, 3, 8, 8)


@pytest.fixture(scope="session")
def tiny_torch():
    """``make()``: a fresh ``tiny_torch_module`` (seeded weights); ``shape``: its input shape."""
    from types import SimpleNamespace

    return SimpleNamespace(make=tiny_torch_module, shape=TINY_INPUT)


@pytest.fixture(scope="session")
def tiny_net():
    """``tiny_torch_module`` lowered (``lower.network.lower_torch``), once per session."""
    from chamtvm.lower.network import lower_torch

    return lower_torch(tiny_torch_module(), TINY_INPUT, "tiny")


@pytest.fixture(scope="session")
def fast_evaluator():
    """Few repeats and no minimum time: a real timing, kept short."""
    from chamtvm.targets.spec import Evaluator

    return Evaluator(number=2, repeat=3, min_repeat_ms=0)


@pytest.fixture(scope="session")
def in_process_runner(x86):
    """A real runner that times compiled libraries in this process (``measure.timing``), for
    tests that need measurements but not the measuring child process; counts its calls."""
    from chamtvm.measure.base import Runner

    class InProcessRunner(Runner):
        label = "in-process x86 (tests)"

        def __init__(self):
            self.target = x86
            self.network_calls = 0

        def measure_kernels(self, library, items, evaluator):
            import tvm

            from chamtvm.measure.timing import time_kernels

            yield from time_kernels(tvm.runtime.load_module(str(library)), tvm.cpu(0), items, evaluator)

        def measure_network(self, library, inputs, evaluator, key="network"):
            import tvm

            from chamtvm.measure.timing import time_network

            self.network_calls += 1
            return time_network(tvm.runtime.load_module(str(library)), tvm.cpu(0), inputs, evaluator, key=key)

    return InProcessRunner
