"""Numeric features of kernels and networks for the learned latency models.

Everything here is computed from the fused kernels themselves (name, argument shapes,
FLOPs, bytes, schedule), so it applies to any network TVM lowers, in the space or not.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

KINDS = ("conv1x1", "depthwise", "conv_kxk", "dense", "pool", "other")

# Finer operator classes for the kernel model only (network features keep ``KINDS``, so
# saved residual models keep their width).
FINE_KINDS = ("conv1x1", "depthwise", "conv_kxk", "grouped", "dense", "batch_matmul", "pool", "reduce",
              "softmax", "layer_norm", "eltwise", "layout", "other")

# name tokens of fused epilogues whose cost differs from a plain add: transcendental gates
# (sigmoid/SiLU/GELU/softmax), divides (hard-swish/-sigmoid are clip + multiply + divide)
_TRANSCENDENTAL = ("sigmoid", "exp", "erf", "tanh", "softmax", "gelu", "silu", "swish")

def transcendental(tokens: Sequence[str]) -> int:
    """How many exact transcendental ops a kernel's name tokens list; one after ``fast`` is a
    polynomial approximation (``lower.fast_math``: ``fused_conv2d_add_fast_silu``), priced
    like the multiplies and adds it is, so it is not counted."""
    return sum(t in _TRANSCENDENTAL and (i == 0 or tokens[i - 1] != "fast") for i, t in enumerate(tokens))


KERNEL_FEATURES = (
    *[f"kind_{k}" for k in KINDS],
    "log_flops", "log_bytes", "log_intensity", "in_c", "in_hw", "out_c", "out_hw", "kernel_hw",
    "stride", "log_out_elems", "residual", "activation", "tuned", "fused_ops",
    # added for real networks: working sets far beyond the space's, grouped convolutions,
    # token-major matmuls, epilogue chains (see benchmarks/bench_real_models.py)
    *[f"fine_{k}" for k in FINE_KINDS],
    "log_in_bytes", "log_weight_bytes", "log_out_bytes", "log_reduction", "log_groups", "log_inner_dim",
    "transcendental", "divides", "multiplies", "n_args",
    # matrix products of any rank as (M, K, N): a channels-last [1, H, W, C] x [C, D] product
    # has M = H * W rows, which the NCHW reading of ``in_c``/``in_hw`` above gets wrong
    "log_matmul_m", "log_matmul_k", "log_matmul_n",
)

# Every network feature is a sum or a max over kernel calls, so a batch of networks can be
# featurized by gathering per-block contributions (see ``batch_predict``).
NETWORK_FEATURES = (
    "log_table_sum_us", "calls",
    *[f"calls_{k}" for k in KINDS],
    *[f"share_us_{k}" for k in KINDS],
    "log_flops", "log_bytes", "log_act_bytes_max", "log_act_bytes_sum", "in_hw",
)


def kernel_kind(name: str, args: Sequence[tuple]) -> str:
    """Coarse operator class of a fused kernel from its name and argument shapes
    (``args``: list of (shape, dtype))."""
    if "conv2d" in name and len(args) >= 2 and len(args[1][0]) == 4:
        out_c, in_per_group, kh, kw = args[1][0]
        in_c = args[0][0][1] if len(args[0][0]) == 4 else 0
        if in_per_group == 1 and out_c == in_c and in_c > 1:
            return "depthwise"
        return "conv1x1" if kh == kw == 1 else "conv_kxk"
    if "matmul" in name or "dense" in name:
        return "dense"
    if "mean" in name or "pool" in name:
        return "pool"
    return "other"


def fine_kind(name: str, args: Sequence[tuple]) -> str:
    """Finer operator class than ``kernel_kind`` (grouped convolutions, batch matmuls,
    normalizations, layout kernels)."""
    kind = kernel_kind(name, args)
    if kind == "conv_kxk" or kind == "conv1x1":
        w = args[1][0]
        in_c = args[0][0][1] if len(args[0][0]) == 4 else 0
        if in_c and w[1] < in_c and w[1] > 1:
            return "grouped"
        return kind
    if kind == "depthwise":
        return kind
    if "matmul" in name:
        return "batch_matmul" if len(args[0][0]) >= 3 and len(args) >= 2 and len(args[1][0]) >= 3 else "dense"
    if kind == "dense":
        return "dense"
    if "softmax" in name:
        return "softmax"
    if "layer_norm" in name or "norm" in name:
        return "layer_norm"
    if kind == "pool":
        return "pool" if "pool" in name else "reduce"
    if any(t in name for t in ("transpose", "reshape", "concatenate", "split", "strided_slice", "take", "squeeze")):
        return "layout"
    if any(t in name for t in ("add", "multiply", "divide", "subtract", "clip", "relu", "maximum", "minimum",
                               "sigmoid", "tanh", "erf", "exp")):
        return "eltwise"
    return "other"


def _nchw(shape) -> tuple[int, int]:
    """(channels, spatial size) of an NCHW shape, or (size, 1) otherwise."""
    if len(shape) == 4:
        return int(shape[1]), int(shape[2])
    return (int(shape[-1]) if shape else 1), 1


def matmul_mkn(name: str, args: Sequence[tuple]) -> tuple[int, int, int]:
    """(M, K, N) of a matrix-product kernel (``kernel_kind`` "dense"): M rows of the output
    over all leading (batch, token, spatial) axes, K the first operand's last axis, N the
    output's last axis; (0, 0, 0) for any other kernel."""
    if kernel_kind(name, args) != "dense" or len(args) < 2:
        return 0, 0, 0
    first, out = tuple(args[0][0]), tuple(args[-1][0])
    m = int(np.prod(out[:-1])) if len(out) > 1 else 1
    return m, (int(first[-1]) if first else 1), (int(out[-1]) if out else 1)


def kernel_feature_vector(name: str, args: Sequence[tuple], flops: float, nbytes: float,
                          schedule: str = "default") -> np.ndarray:
    """Features of one kernel, ordered as ``KERNEL_FEATURES``. ``args`` = [(shape, dtype)]."""
    kind = kernel_kind(name, args)
    shapes = [tuple(a[0]) for a in args]
    in_c, in_hw = _nchw(shapes[0]) if shapes else (0, 0)
    out_c, out_hw = _nchw(shapes[-1]) if shapes else (0, 0)
    kernel_hw = shapes[1][2] if kind in ("depthwise", "conv1x1", "conv_kxk") else 0
    stride = in_hw / out_hw if out_hw else 1.0
    flops = 0.0 if flops is None or (isinstance(flops, float) and math.isnan(flops)) else float(flops)
    out_elems = float(np.prod(shapes[-1])) if shapes else 1.0
    residual = sum(1 for s in shapes[:-1] if s == shapes[-1] and s != shapes[0]) + (
        1 if len(shapes) > 2 and shapes[0] == shapes[-1] and kind != "depthwise" else 0)
    activation = 1.0 if ("clip" in name or "maximum" in name or "relu" in name) else 0.0
    fine = fine_kind(name, args)
    nbytes_of = [float(np.prod(sh)) * 4.0 if sh else 4.0 for sh in shapes]
    weight_bytes = nbytes_of[1] if len(nbytes_of) > 2 and kind in ("depthwise", "conv1x1", "conv_kxk", "dense") else 0.0
    groups = 1.0
    if kind in ("depthwise", "conv1x1", "conv_kxk") and len(shapes[1]) == 4 and shapes[1][1]:
        groups = max(in_c / shapes[1][1], 1.0)
    tokens = [t.rstrip("0123456789") for t in name.split("_")]
    return np.array([
        *[1.0 if kind == k else 0.0 for k in KINDS],
        math.log1p(flops), math.log1p(nbytes), math.log1p(flops / max(nbytes, 1.0)),
        in_c, in_hw, out_c, out_hw, kernel_hw, stride, math.log1p(out_elems),
        float(residual > 0), activation, 0.0 if schedule == "default" else 1.0,
        float(len([t for t in name.split("_") if t not in ("", "fused", "tir", "fast")])),  # ops fused
        *[1.0 if fine == k else 0.0 for k in FINE_KINDS],
        math.log1p(nbytes_of[0] if nbytes_of else 0.0), math.log1p(weight_bytes),
        math.log1p(nbytes_of[-1] if nbytes_of else 0.0), math.log1p(flops / max(out_elems, 1.0)),
        math.log(groups), math.log1p(shapes[-1][-1] if shapes and shapes[-1] else 1),
        float(transcendental(tokens)), float(tokens.count("divide")),
        float(tokens.count("multiply")), float(len(shapes)),
        *[math.log1p(d) for d in matmul_mkn(name, args)],
    ])


def network_feature_vector(kernels: Sequence[dict]) -> np.ndarray:
    """Features of a network, ordered as ``NETWORK_FEATURES``.

    ``kernels``: one dict per distinct kernel with ``name``, ``args``, ``flops``, ``bytes``,
    ``count`` and ``latency_us`` (table or estimated latency of one call).
    """
    calls = {k: 0 for k in KINDS}
    lat = {k: 0.0 for k in KINDS}
    total_us = flops = nbytes = act_max = act_sum = 0.0
    in_hw = 0
    for k in kernels:
        kind = kernel_kind(k["name"], k["args"])
        c = k["count"]
        calls[kind] += c
        lat[kind] += k["latency_us"] * c
        total_us += k["latency_us"] * c
        f = k.get("flops") or 0.0
        flops += (0.0 if isinstance(f, float) and math.isnan(f) else f) * c
        nbytes += k["bytes"] * c
        out = k["args"][-1][0]
        out_bytes = 4.0 * float(np.prod(out)) if len(out) else 4.0
        act_max = max(act_max, out_bytes)
        act_sum += out_bytes * c
        if len(k["args"][0][0]) == 4:
            in_hw = max(in_hw, int(k["args"][0][0][2]))
    total_us = max(total_us, 1e-9)
    return np.array([
        math.log(total_us), sum(calls.values()),
        *[calls[k] for k in KINDS], *[lat[k] / total_us for k in KINDS],
        math.log1p(flops), math.log1p(nbytes), math.log1p(act_max), math.log1p(act_sum), in_hw,
    ])
