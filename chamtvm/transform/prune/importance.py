"""Which channels a group keeps, and what keeping ``w`` of them costs in accuracy.

* ``channel_scores``: the group L2 norm of each channel: the squared norm of everything the
  channel owns, summed over the group: each producing filter (scaled by the BatchNorm that
  follows it, as it deploys once BatchNorm is folded), each depthwise filter (likewise), and
  each consuming layer's input column. A group keeps its ``w`` highest-scoring channels.
* ``l2_costs``: the share of the group's score removed at each width (a weights-only cost).
* ``sensitivity_costs``: the short sensitivity scan: the increase of the cross-entropy on a
  calibration batch of *training* images when only that group is cut to each width (the
  other groups whole). Costs are made non-increasing in the width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .graph import ChannelGraph
from .surgery import select_channels

if TYPE_CHECKING:
    import torch


def _bn_scale(modules, bn_name: str | None):
    import torch

    if bn_name is None:
        return None
    bn = modules[bn_name]
    return (bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)).abs()


def channel_scores(model: "torch.nn.Module", graph: ChannelGraph) -> dict[str, np.ndarray]:
    """Per group, the group L2 score of each of its channels (shape ``(width,)``)."""
    import torch

    modules = dict(model.named_modules())
    out = {}
    with torch.no_grad():
        for g in graph.groups:
            score = torch.zeros(g.width, dtype=torch.float64)
            for ax in g.producers + g.passthrough + g.consumers:
                mod = modules[ax.module]
                if ax.param != "weight" or type(mod).__name__.startswith("BatchNorm"):
                    continue  # biases and BatchNorm statistics: the scale is folded in below
                w = getattr(mod, ax.param).detach().double().movedim(ax.axis, 0).reshape(g.width, -1)
                sq = (w ** 2).sum(dim=1)
                is_output_axis = ax in g.producers or ax in g.passthrough
                scale = _bn_scale(modules, g.bn_after.get(ax.module)) if is_output_axis else None
                score += sq * (scale.double() ** 2 if scale is not None else 1.0)
            out[g.name] = score.numpy()
    return out


def keep_indices(scores: np.ndarray, width: int) -> list[int]:
    """The ``width`` highest-scoring channels, in their original order (``width`` above the
    group's width repeats channels: only the latency probe widens groups)."""
    n = len(scores)
    if width > n:
        return [i % n for i in range(width)]
    top = np.argsort(-scores, kind="stable")[:width]
    return sorted(int(i) for i in top)


def prune_to_widths(model: "torch.nn.Module", graph: ChannelGraph, scores: Mapping[str, np.ndarray],
                    widths: Mapping[str, int]) -> "torch.nn.Module":
    """``model`` with each group of ``widths`` cut to its highest-scoring channels."""
    full = graph.widths
    keep = {g: keep_indices(scores[g], w) for g, w in widths.items() if w != full[g]}
    return select_channels(model, graph, keep)


def l2_costs(scores: Mapping[str, np.ndarray], candidates: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
    """Per group, the share of its score removed at each candidate width."""
    out = {}
    for g, ws in candidates.items():
        s = np.sort(np.asarray(scores[g], dtype=float))[::-1]
        total = s.sum() or 1.0
        out[g] = np.array([1.0 - s[:w].sum() / total for w in ws])
    return out


def _monotone(costs: np.ndarray) -> np.ndarray:
    """Non-increasing in width (candidates ascending), never negative."""
    c = np.maximum(np.asarray(costs, dtype=float), 0.0)
    return np.maximum.accumulate(c[::-1])[::-1]


def sensitivity_costs(model: "torch.nn.Module", graph: ChannelGraph, scores: Mapping[str, np.ndarray],
                      candidates: Mapping[str, Sequence[int]], images: np.ndarray, labels: np.ndarray,
                      max_points: int = 8) -> dict[str, np.ndarray]:
    """Per group, the cross-entropy increase on ``images``/``labels`` (a calibration batch of
    training data, ``(N, C, H, W)`` and ``(N,)``) at each candidate width, only that group cut.
    At most ``max_points`` widths per group are evaluated; the rest are interpolated."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(images, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)

    def loss(m) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(m.eval()(x), y))

    base = loss(model)
    full = graph.widths
    out = {}
    for g, ws in candidates.items():
        ws = list(ws)
        if len(ws) <= max_points:
            probe = ws
        else:
            probe = sorted({ws[int(i)] for i in np.round(np.linspace(0, len(ws) - 1, max_points))})
        vals = [0.0 if w == full[g] else loss(prune_to_widths(model, graph, scores, {g: w})) - base for w in probe]
        out[g] = _monotone(np.interp(ws, probe, vals))
    return out
