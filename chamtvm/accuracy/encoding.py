"""Numeric features of architectures of a :class:`~chamtvm.space.SearchSpace` for the predictor.

``accuracy_features(space, indices)`` -> ``(N, D + 2)``: ``space.encode`` (choice index
scaled to [0, 1]) plus log parameter count and log multiply-accumulates of the network,
each scaled to [0, 1] between the space's smallest and largest architecture (so the
columns mean the same for a training pool and for the search's candidates). The two cost
columns follow from the architecture alone (no training) and lifted Kendall tau on
NAS-Bench-Macro (encoding ``ops+cost`` vs ``ops`` in
``benchmarks/results/accuracy_nasbench.json``). Costs are computed in closed form for a
whole batch of choice-index rows (``arch_costs``, about a microsecond per architecture);
``model_cost`` counts them on the torch model and the tests check both agree.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..space.layers import LayerSpace
from ..space.schema import Arch, SearchSpace


def model_cost(space: SearchSpace, arch: Arch) -> tuple[int, int]:
    """(parameters, multiply-accumulates of one forward pass at batch 1) of ``arch``."""
    import torch
    from torch import nn

    from ..space.model import build_model, input_shape

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


def arch_costs(space: SearchSpace, indices) -> np.ndarray:
    """``(N, 2)`` float64: (parameters, multiply-accumulates at batch 1) of each row of
    choice indices ``indices`` ``(N, D)`` -- the closed form of ``model.build_model``
    (BatchNorm weight and bias counted as parameters, as torch does); per-layer spaces:
    ``LayerSpace.costs``."""
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    if isinstance(space, LayerSpace):
        return space.costs(idx)
    cols = [np.asarray(choices, dtype=np.float64)[idx[:, j]] for j, (_, choices) in enumerate(space.dimensions())]
    res, stem, head = cols[0], cols[1], cols[2]

    def out_size(h, stride):  # 'same' padding, odd kernel
        return np.floor((h - 1) / stride) + 1

    h = out_size(res, 2)
    params = 9 * space.in_channels * stem + 2 * stem
    macs = h * h * stem * 9 * space.in_channels
    cin = stem
    for i, stage in enumerate(space.stages):
        cout, blocks, expansion, kernel = cols[3 + 4 * i: 7 + 4 * i]
        for b in range(max(stage.blocks)):
            live = blocks > b
            stride = stage.stride if b == 0 else 1
            hidden = cin * expansion
            expand = expansion != 1
            h_out = out_size(h, stride)
            p = (np.where(expand, cin * hidden + 2 * hidden, 0) + hidden * kernel * kernel + 2 * hidden
                 + hidden * cout + 2 * cout)
            m = (np.where(expand, h * h * hidden * cin, 0) + h_out * h_out * hidden * kernel * kernel
                 + h_out * h_out * cout * hidden)
            params = params + np.where(live, p, 0)
            macs = macs + np.where(live, m, 0)
            h = np.where(live, h_out, h)
            cin = np.where(live, cout, cin)
    params = params + cin * head + 2 * head + head * space.num_classes + space.num_classes
    macs = macs + h * h * head * cin + head * space.num_classes
    return np.column_stack([params, macs])


def _extreme_indices(space: SearchSpace) -> np.ndarray:
    """Rows of the smallest and the largest architecture (every choice first / last)."""
    return np.array([[0] * space.encoding_length, [len(c) - 1 for _, c in space.dimensions()]])


def accuracy_features(space: SearchSpace, indices, cost: bool = True) -> np.ndarray:
    """``(N, D + 2)`` (``(N, D)`` without ``cost``) float64 predictor features of the
    choice-index rows ``indices`` ``(N, D)`` (see the module docstring)."""
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    sizes = np.array([len(c) for _, c in space.dimensions()], dtype=np.float64)
    enc = idx / np.maximum(sizes - 1, 1)
    if not cost:
        return enc
    bounds = np.log(arch_costs(space, _extreme_indices(space)))
    lo, hi = bounds[0], bounds[1]
    c = (np.log(arch_costs(space, idx)) - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.c_[enc, c]


def pool_features(space: SearchSpace, archs: Sequence[Arch], cost: bool = True) -> np.ndarray:
    """``(N, D + 2)`` float64 predictor features of ``archs`` (see the module docstring)."""
    return accuracy_features(space, [space.indices(a) for a in archs], cost)


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
