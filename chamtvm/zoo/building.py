"""What both model zoos (``families``, ``real``) share: torch parts, seeded building, ONNX export.

``torch_parts()`` gives the conv + BN + activation unit ``cba`` and the ResNet basic block
``Basic`` (torch is imported on first call, not with this module). ``build_seeded`` builds a
zoo member with weights from seed 0 and randomized BN statistics (the caller's torch RNG
state is restored), ``export_onnx_module`` writes a module as ONNX at input ``1x3xRxR``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping


@cache
def torch_parts() -> SimpleNamespace:
    """``cba(cin, cout, k=3, s=1, groups=1, act=nn.ReLU)``: conv + BN + ``act`` (None: linear);
    ``Basic(cin, cout, s)``: two 3x3 ``cba`` with a 1x1 projection shortcut when ``s != 1``
    or the channels change, ReLU after the sum."""
    import torch
    from torch import nn

    from ..space.model import conv_bn

    def cba(cin, cout, k=3, s=1, groups=1, act=nn.ReLU):
        """Conv + BN + ``act`` (None: linear)."""
        return conv_bn(cin, cout, k, s, groups=groups, act=act)

    class Basic(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.body = nn.Sequential(cba(cin, cout, 3, s), cba(cout, cout, 3, 1, act=None))
            self.down = cba(cin, cout, 1, s, act=None) if (s != 1 or cin != cout) else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.down(x))

    return SimpleNamespace(cba=cba, Basic=Basic)


def build_seeded(models: Mapping[str, Callable], name: str, zoo: str, names: list[str]):
    """The torch module ``models[name]()`` in eval mode, weights from seed 0, randomized BN
    statistics; the torch RNG state is left as it was. KeyError naming ``zoo``'s members
    ``names`` for an unknown ``name``."""
    import torch

    from ..space.model import randomize_batchnorm

    if name not in models:
        raise KeyError(f"unknown {zoo} model {name!r}; choose one of {names}")
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        m = models[name]()
        randomize_batchnorm(m)
    finally:
        torch.random.set_rng_state(state)
    return m.eval()


def export_onnx_module(module, resolution: int, path: str | Path) -> Path:
    """Write ``module`` with input ``1x3xRxR`` as ONNX (legacy exporter, opset 17, input
    named ``x``, BN folded by the exporter); returns the path."""
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, resolution, resolution),), str(path),
                          input_names=["x"], opset_version=17, dynamo=False)
    return path
