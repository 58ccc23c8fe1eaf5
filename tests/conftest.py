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
