"""Numeric features of architectures of a :class:`~chamtvm.space.SearchSpace` for the predictor.

``pool_features(space, archs)`` -> ``(N, D + 2)``: ``space.encode`` (choice index scaled
to [0, 1]) plus log parameter count and log multiply-accumulates of the torch model, each
min-max scaled over the given archs. The two cost columns follow from the architecture
alone (no training) and lifted Kendall tau on NAS-Bench-Macro (encoding ``ops+cost`` vs
``ops`` in ``benchmarks/results/accuracy_nasbench.json``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..space import Arch, SearchSpace


def model_cost(space: SearchSpace, arch: Arch) -> tuple[int, int]:
    """(parameters, multiply-accumulates of one forward pass at batch 1) of ``arch``."""
    import torch
    from torch import nn

    from ..model import build_model, input_shape

    model = build_model(space, arch, seed=0, randomize_bn=False)
    params = sum(p.numel() for p in model.parameters())
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs += out.numel() * k
        elif isinstance(mod, nn.Linear):
            macs += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape(space, arch)))
    finally:
        for h in handles:
            h.remove()
    return int(params), int(macs)


def pool_features(space: SearchSpace, archs: Sequence[Arch], cost: bool = True) -> np.ndarray:
    """``(N, D)`` float64 predictor features of ``archs`` (see the module docstring)."""
    enc = np.array([space.encode(a) for a in archs], dtype=np.float64)
    if not cost:
        return enc
    c = np.log(np.array([model_cost(space, a) for a in archs], dtype=np.float64))
    lo, hi = c.min(axis=0), c.max(axis=0)
    c = (c - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.c_[enc, c]


def sample_pool(space: SearchSpace, n: int, rng: np.random.Generator, max_tries: int = 100) -> list[Arch]:
    """``n`` distinct architectures drawn uniformly (raises when the space is too small)."""
    seen: dict[str, Arch] = {}
    tries = 0
    while len(seen) < n:
        a = space.sample(rng)
        if a.to_json() in seen:
            tries += 1
            if tries > max_tries * n:
                raise ValueError(f"could not draw {n} distinct architectures from space {space.name!r}")
            continue
        seen[a.to_json()] = a
    return list(seen.values())
