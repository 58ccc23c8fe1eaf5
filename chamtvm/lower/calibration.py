"""Calibration kernels: a fixed sweep of operators outside the MobileNetV2 space.

The space's own kernels teach the unseen-kernel model little about operators the space
never uses: dense kxk convolutions with many input channels (ResNet), grouped
convolutions, sigmoid/hard-swish epilogues, pooling and concatenation. Tree models do not
extrapolate, so such kernels were predicted 80-90 % too fast (out-of-space benchmark,
before this sweep). Measuring this sweep once per target (about a hundred kernels, a
minute on 2 cores) puts those operator kinds into the table; the kernel model then prices
them from neighbours of the same kind. The sweep is generic (operators and shapes on a
grid), not taken from any network the benchmarks test.
"""

from __future__ import annotations

import numpy as np

from .kernels import Kernel

CHANNELS = (16, 48, 128)
SIZES = (7, 14, 28)


def _probe_modules():
    """(torch module, input shapes) pairs whose kernels make the sweep."""
    import torch
    from torch import nn

    from ..space.model import conv_bn, randomize_batchnorm

    class Multi(nn.Module):
        def __init__(self, blocks, where):
            super().__init__()
            self.blocks = nn.ModuleList(blocks)
            self.where = where

        def forward(self, *xs):
            return tuple(b(xs[i]) for b, i in zip(self.blocks, self.where))

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.a, self.b = nn.Conv2d(c, max(c // 4, 4), 1), nn.Conv2d(max(c // 4, 4), c, 1)

        def forward(self, x):
            return x * torch.sigmoid(self.b(torch.relu(self.a(x.mean(dim=(2, 3), keepdim=True)))))

    class Residual(nn.Module):
        def __init__(self, c, k):
            super().__init__()
            self.body = conv_bn(c, c, k, 1, act=None)

        def forward(self, x):
            return torch.relu(self.body(x) + x)

    class SplitShuffle(nn.Module):
        def forward(self, x):
            h = x.shape[1] // 2
            y = torch.cat([x[:, h:], x[:, :h]], dim=1)
            n, c, hh, ww = y.shape
            return y.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)

    out = []
    for size in SIZES:
        shapes = [(1, c, size, size) for c in CHANNELS]
        blocks, where = [], []
        for i, cin in enumerate(CHANNELS):
            for cout in CHANNELS:
                for k, s in ((3, 1), (3, 2), (1, 2)):
                    blocks.append(conv_bn(cin, cout, k, s, act="relu"))
                    where.append(i)
            blocks += [Residual(cin, 3), conv_bn(cin, cin, 3, 1, groups=max(cin // 8, 1), act="relu"),
                       conv_bn(cin, cin, 5, 1, groups=cin, act="hardswish"),
                       conv_bn(cin, 2 * cin, 1, 1, act="hardswish"),
                       SE(cin), SplitShuffle(), nn.MaxPool2d(3, 2, 1)]
            where += [i] * 7
        torch.manual_seed(0)
        m = Multi(blocks, where)
        randomize_batchnorm(m)
        out.append((m.eval(), shapes))
    return out


def calibration_kernels() -> list[Kernel]:
    """The distinct kernels of the sweep (counts 1)."""
    from .kernels import extract_kernels, from_torch, fuse

    kernels: dict[str, Kernel] = {}
    for module, shapes in _probe_modules():
        for k in extract_kernels(fuse(from_torch(module, shapes))):
            if k.struct_hash not in kernels:
                k.count = 1
                kernels[k.struct_hash] = k
    return sorted(kernels.values(), key=lambda k: (k.name, k.struct_hash))


# ------------------------------------------------------------ real-network sweep
# Spatial sizes and channel ranges of real networks at 128-224 px inputs (stride-2 pyramids
# 112/56/28/14/7 and 64/32/16/8/4), sampled log-uniformly: the space's 28 px kernels and the
# grid above never reach the working sets of a MobileNetV2 at 128 px, and a tree model
# does not extrapolate (it priced them with the cache-resident time per byte: 10-36 % low).
REAL_SIZES = (4, 7, 8, 14, 16, 28, 32, 56, 64, 112)
EPILOGUES = ("relu", "relu6", "hardswish", "silu", "none")
REAL_KINDS = ("conv1x1", "depthwise", "conv_kxk", "grouped", "linear", "pool", "se", "concat_split",
              "shuffle", "softmax", "layer_norm", "attention", "eltwise")
MAX_MFLOPS = 400.0  # per kernel: bounds the untuned measurement time (~50 ms on 2 cores)


def _log_int(rng, lo: int, hi: int, mult: int = 8) -> int:
    v = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return max(mult, int(round(v / mult)) * mult) if v >= mult else max(1, int(round(v)))


def real_sweep_specs(n_per_kind: int = 24, seed: int = 0) -> list[dict]:
    """The sampled probes: one dict per probe (``kind`` and its shape parameters).

    Seeded and generic (log-uniform over the ranges above, FLOPs capped at MAX_MFLOPS), not
    taken from any network the benchmarks test."""
    rng = np.random.default_rng(seed)
    specs: list[dict] = []
    for kind in REAL_KINDS:
        made, tries = 0, 0
        while made < n_per_kind and tries < 50 * n_per_kind:
            tries += 1
            hw = int(rng.choice(REAL_SIZES))
            act = str(rng.choice(EPILOGUES))
            s = {"kind": kind, "hw": hw, "act": act}
            if kind == "conv1x1":
                s.update(cin=_log_int(rng, 8, 1024), cout=_log_int(rng, 8, 1280), k=1,
                         stride=int(rng.choice([1, 1, 1, 2])), residual=bool(rng.random() < 0.3))
            elif kind == "depthwise":
                c = _log_int(rng, 16, 1152)
                s.update(cin=c, cout=c, k=int(rng.choice([3, 5, 7])), stride=int(rng.choice([1, 2])), groups=c)
            elif kind == "conv_kxk":
                k = int(rng.choice([3, 3, 3, 5, 7]))
                s.update(cin=3 if rng.random() < 0.15 else _log_int(rng, 8, 512), cout=_log_int(rng, 8, 512), k=k,
                         stride=int(rng.choice([1, 2])), residual=bool(rng.random() < 0.3))
            elif kind == "grouped":
                gw = int(rng.choice([8, 16, 24]))
                c = gw * int(rng.integers(2, 48))
                s.update(cin=c, cout=c, k=3, stride=int(rng.choice([1, 2])), groups=c // gw)
            elif kind in ("linear", "attention", "layer_norm", "softmax"):
                s.update(tokens=_log_int(rng, 4, 256, 4), dim=_log_int(rng, 32, 768, 16),
                         dout=_log_int(rng, 32, 3072, 16), heads=int(rng.choice([1, 2, 3, 4, 6])),
                         act=str(rng.choice(["gelu", "none", "relu"])), residual=bool(rng.random() < 0.4))
                s["dim"] = max(s["heads"] * 16, s["dim"] // s["heads"] * s["heads"])
            else:  # pool, se, concat_split, shuffle, eltwise
                s.update(cin=_log_int(rng, 8, 1280), pool=str(rng.choice(["gap", "max3s2", "avg3s2"])),
                         gate=str(rng.choice(["sigmoid", "hardsigmoid"])))
            if s.get("residual") and "k" in s:  # a residual add needs matching input and output
                s.update(stride=1, cin=s["cout"])
            if _probe_mflops(s) > MAX_MFLOPS:
                continue
            specs.append(s)
            made += 1
    return specs


def _probe_mflops(s: dict) -> float:
    if "tokens" in s:
        n, d = s["tokens"], s["dim"]
        return 2 * n * d * max(s["dout"], 3 * d) / 1e6 + 4 * n * n * d / 1e6
    if "k" in s:
        ho = -(-s["hw"] // s["stride"])
        return 2 * ho * ho * s["cout"] * (s["cin"] // s.get("groups", 1)) * s["k"] ** 2 / 1e6
    return s["hw"] * s["hw"] * s["cin"] * 8 / 1e6


def _real_probe(s: dict):
    """(torch module, input shape) of one probe."""
    import torch
    from torch import nn

    from ..space.blocks import conv_bn, torch_activation

    class Res(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x) + x

    kind, hw = s["kind"], s["hw"]
    if kind in ("conv1x1", "depthwise", "conv_kxk", "grouped"):
        m = conv_bn(s["cin"], s["cout"], s["k"], s["stride"], s.get("groups", 1), s["act"])
        return (Res(m) if s.get("residual") else m), (1, s["cin"], hw, hw)
    if "tokens" in s:
        n, d = s["tokens"], s["dim"]
        act = torch_activation(s["act"])

        class Tok(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(d, s["dout"])
                self.act = act() if act else nn.Identity()
                self.ln = nn.LayerNorm(d)
                self.qkv = nn.Linear(d, 3 * d)

            def forward(self, x):
                if kind == "linear":
                    y = self.act(self.fc(x))
                    return y + x[..., :1] if s["residual"] else y
                if kind == "layer_norm":
                    return self.ln(x + x) if s["residual"] else self.ln(x)
                h = s["heads"]
                q = x.reshape(1, n, h, d // h).permute(0, 2, 1, 3)
                if kind == "softmax":
                    return torch.softmax(q @ q.transpose(-2, -1), dim=-1)
                qkv = self.qkv(x).reshape(1, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
                a = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * (d // h) ** -0.5, dim=-1)
                return (a @ qkv[2]).transpose(1, 2).reshape(1, n, d)

        return Tok(), (1, n, d)
    c = s["cin"]

    class Misc(nn.Module):
        def __init__(self):
            super().__init__()
            sq = max(8, c // 4)
            self.fc1, self.fc2 = nn.Conv2d(c, sq, 1), nn.Conv2d(sq, c, 1)
            self.gate = nn.Sigmoid() if s["gate"] == "sigmoid" else nn.Hardsigmoid()
            self.act = (torch_activation(s["act"]) or nn.Identity)()

        def forward(self, x):
            if kind == "pool":
                if s["pool"] == "gap":
                    return nn.functional.adaptive_avg_pool2d(x, 1)
                pool = nn.functional.max_pool2d if s["pool"] == "max3s2" else nn.functional.avg_pool2d
                return pool(x, 3, 2, 1)
            if kind == "se":
                return x * self.gate(self.fc2(self.act(self.fc1(nn.functional.adaptive_avg_pool2d(x, 1)))))
            if kind == "concat_split":
                a, b = x.chunk(2, dim=1)
                return torch.cat([self.act(b), a, x], dim=1)
            if kind == "shuffle":
                n_, cc, h, w = x.shape
                return x.view(n_, 2, cc // 2, h, w).transpose(1, 2).reshape(n_, cc, h, w)
            return self.act(x * self.gate(x) + x)  # eltwise chain with broadcast-free epilogue

    return Misc(), (1, c - c % 2, hw, hw)


def real_calibration_kernels(n_per_kind: int = 24, seed: int = 0, group: int = 24) -> list[Kernel]:
    """The distinct kernels of the real-network sweep (counts 1), ``group`` probes lowered
    per torch.export call."""
    import torch

    from ..space.model import randomize_batchnorm
    from .kernels import extract_kernels, from_torch, fuse

    class Multi(torch.nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.blocks = torch.nn.ModuleList(blocks)

        def forward(self, *xs):
            return tuple(b(x) for b, x in zip(self.blocks, xs))

    probes = [_real_probe(s) for s in real_sweep_specs(n_per_kind, seed)]
    kernels: dict[str, Kernel] = {}
    for start in range(0, len(probes), group):
        chunk = probes[start:start + group]
        torch.manual_seed(start)
        m = Multi([p[0] for p in chunk])
        randomize_batchnorm(m)
        for k in extract_kernels(fuse(from_torch(m.eval(), [p[1] for p in chunk]))):
            if k.struct_hash not in kernels:
                k.count = 1
                kernels[k.struct_hash] = k
    return sorted(kernels.values(), key=lambda k: (k.name, k.struct_hash))


def real_sweep_pool(n_per_kind: int, seeds, exclude=()) -> list[Kernel]:
    """Candidate kernels for adaptive sampling: the distinct kernels of the real-network
    sweep drawn with each of ``seeds`` (the same generator as ``real_calibration_kernels``,
    other seeds), without the structural hashes in ``exclude`` (e.g. the initial sweep's)."""
    seen = set(exclude)
    pool: list[Kernel] = []
    for seed in seeds:
        for k in real_calibration_kernels(n_per_kind, seed=seed):
            if k.struct_hash not in seen:
                seen.add(k.struct_hash)
                pool.append(k)
    return pool
