"""ALCS's ADMM: train the weights towards a latency-feasible pruned structure before cutting.

The problem is ``min_W loss(W)`` subject to ``W`` in ``S``, the weights whose channel groups
keep only a candidate width each (multiples of the lane-group size) with modelled latency
within the budget. ADMM splits it with a copy ``Z`` (in ``S``) and a scaled dual ``U``:

* W-step: a few hundred SGD steps on ``loss(W) + rho/2 ||W - Z + U||^2`` (the penalty over
  every parameter on a group's channel axes: convolution and linear weights and biases,
  BatchNorm scales and shifts);
* Z-step: ``Z = proj_S(W + U)``: the Euclidean projection onto ``S``. Keeping ``w`` channels of
  a group removes the energy (sum of squares over the group's axes) of its ``w`` weakest
  channels; the widths minimising the energy removed under the budget come from the same
  integer program as the one-shot method (``solve``), and ``Z`` is ``W + U`` with the
  removed channels zeroed;
* U-step: ``U = U + W - Z``; ``rho`` grows by ``rho_growth`` per round.

After the last round the network is cut to ``Z``'s structure (the channels ``Z`` keeps) and
fine-tuned like the one-shot result. Where that structure measures over the budget on the
target (the width model errs), ``cut_under`` gives a faster one from the trained weights: the
same projection of ``W`` under a lower modelled budget (``method`` runs it through the
measured check shared with the integer program, ``select.select_measured``). Loss: distillation from the teacher's logits when one is
given (temperature 4, weight 0.9 on the distillation term), else cross-entropy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from .graph import ChannelGraph
from .solve import LatencyTerms, solve_milp

if TYPE_CHECKING:
    import torch


@dataclass
class AdmmResult:
    """The kept channels per group (indices), the widths, and per round the projection's
    removed energy, the distance ``||W - Z||`` and the loss."""

    keep: dict[str, list[int]]
    widths: dict[str, int]
    history: list[dict] = field(default_factory=list)


def _group_params(model, graph: ChannelGraph) -> dict[str, list[tuple[str, str, int]]]:
    """Per group: ``(module, param, axis)`` of its trainable tensors (buffers left out)."""
    from torch import nn

    modules = dict(model.named_modules())
    out = {}
    for g in graph.groups:
        out[g.name] = [(ax.module, ax.param, ax.axis) for ax in g.axes
                       if isinstance(getattr(modules[ax.module], ax.param), nn.Parameter)]
    return out


def _group_tensors(model, graph: ChannelGraph):
    """``(group params, sorted (module, name) keys, {key: parameter})`` of every parameter on a
    group's channel axes."""
    modules = dict(model.named_modules())
    group_params = _group_params(model, graph)
    keys = sorted({(m, n) for ps in group_params.values() for m, n, _ in ps})
    return group_params, keys, {k: getattr(modules[k[0]], k[1]) for k in keys}


def _energies(values: Mapping[tuple[str, str], "torch.Tensor"], params, width: int) -> np.ndarray:
    import torch

    e = torch.zeros(width, dtype=torch.float64)
    for mod, name, axis in params:
        v = values[(mod, name)].detach().double().movedim(axis, 0).reshape(width, -1)
        e += (v ** 2).sum(dim=1)
    return e.numpy()


def project(values: Mapping[tuple[str, str], "torch.Tensor"], graph: ChannelGraph, group_params,
            terms: LatencyTerms, candidates: Mapping[str, Sequence[int]], budget: float):
    """``(Z, keep, widths, removed energy)``: the projection of ``values`` onto the feasible set."""
    energies = {g.name: _energies(values, group_params[g.name], g.width) for g in graph.groups}
    costs = {}
    for g, ws in candidates.items():
        s = np.sort(energies[g])  # ascending: the weakest channels go first
        costs[g] = np.array([s[:len(s) - w].sum() for w in ws])
    sol = solve_milp(terms, costs, candidates, budget)
    z = {k: v.detach().clone() for k, v in values.items()}
    keep = {}
    for g in graph.groups:
        w = sol.widths.get(g.name, g.width)
        kept = sorted(int(i) for i in np.argsort(-energies[g.name], kind="stable")[:w])
        keep[g.name] = kept
        if w == g.width:
            continue
        dropped = sorted(set(range(g.width)) - set(kept))
        for mod, name, axis in group_params[g.name]:
            idx = [slice(None)] * z[(mod, name)].dim()
            idx[axis] = dropped
            z[(mod, name)][tuple(idx)] = 0.0
    return z, keep, sol.widths, float(sol.cost)


@dataclass
class Cut:
    """A structure to cut the trained network to: the kept channels per group (indices), the
    widths, and its modelled latency (the terms' unit, e.g. kernel-sum us)."""

    keep: dict[str, list[int]]
    widths: dict[str, int]
    latency: float


def structure_latency(terms: LatencyTerms, candidates: Mapping[str, Sequence[int]], widths: Mapping[str, int]) -> float:
    """Modelled latency of ``widths`` (group -> kept channels; every group of ``candidates``
    at one of its candidate widths) under ``terms``."""
    return terms.value({g: list(ws).index(widths[g]) for g, ws in candidates.items()})


def cut_under(model: "torch.nn.Module", graph: ChannelGraph, terms: LatencyTerms,
              candidates: Mapping[str, Sequence[int]], budget: float) -> Cut:
    """The projection of ``model``'s weights (after ``admm_prune``: trained towards a cut)
    onto the structures with modelled latency within ``budget``: each group keeps its
    strongest channels, the widths minimise the energy removed (``solve_milp``; a budget no
    structure meets is its ``BudgetError``)."""
    import torch

    group_params, keys, tensors = _group_tensors(model, graph)
    with torch.no_grad():
        _, keep, _, _ = project({k: tensors[k].detach() for k in keys}, graph, group_params, terms, candidates, budget)
    widths = {g.name: len(keep[g.name]) for g in graph.groups}
    return Cut(keep, widths, structure_latency(terms, candidates, widths))


def admm_prune(model: "torch.nn.Module", graph: ChannelGraph, terms: LatencyTerms,
               candidates: Mapping[str, Sequence[int]], budget: float, images: np.ndarray, labels: np.ndarray,
               teacher: "torch.nn.Module | None" = None, rounds: int = 6, steps_per_round: int = 100,
               rho: float = 1e-3, rho_growth: float = 2.0, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
               log: Callable[[str], None] | None = None) -> AdmmResult:
    """Run ADMM on ``model`` (trained in place) and return the structure it converged to
    (see the module docstring). ``terms``/``budget``: the latency model over ``candidates``
    and its limit, as for ``solve_milp``."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    group_params, keys, tensors = _group_tensors(model, graph)
    z, keep, widths, removed = project(tensors, graph, group_params, terms, candidates, budget)
    u = {k: torch.zeros_like(t) for k, t in tensors.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)
    history = []
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for r in range(rounds):
            model.train()
            losses = []
            for _ in range(steps_per_round):
                idx = torch.randint(len(y_all), (batch_size,), generator=gen)
                out = model(x_all[idx])
                loss = F.cross_entropy(out, y_all[idx])
                if teacher is not None:
                    with torch.no_grad():
                        t_out = teacher(x_all[idx])
                    kd = F.kl_div(F.log_softmax(out / 4.0, 1), F.log_softmax(t_out / 4.0, 1), reduction="batchmean",
                                  log_target=True) * 16.0
                    loss = 0.9 * kd + 0.1 * loss
                penalty = sum(((tensors[k] - z[k] + u[k]) ** 2).sum() for k in keys)
                total = loss + 0.5 * rho * penalty
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                losses.append(loss.item())
            with torch.no_grad():
                v = {k: tensors[k].detach() + u[k] for k in keys}
                z, keep, widths, removed = project(v, graph, group_params, terms, candidates, budget)
                gap = math.sqrt(sum(float(((tensors[k] - z[k]) ** 2).sum()) for k in keys))
                for k in keys:
                    u[k] += tensors[k].detach() - z[k]
            history.append({"round": r + 1, "rho": rho, "loss": float(np.mean(losses)), "removed_energy": removed,
                            "distance_w_z": gap, "widths": dict(widths)})
            if log:
                log(f"admm round {r + 1}/{rounds}: loss {np.mean(losses):.4f}, ||W - Z|| {gap:.4f}, rho {rho:.2g}")
            rho *= rho_growth
    finally:
        torch.set_num_threads(prev)
    model.eval()
    return AdmmResult(keep, {g.name: len(keep[g.name]) for g in graph.groups}, history)
