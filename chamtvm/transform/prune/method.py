"""``transform --method prune``: ALCS's latency-constrained structured pruning as a method of
the shared transformation job (``transform.job``; interface in ``transform``'s docstring).

1. The teacher's channel groups (``graph``); each may keep a multiple of the lane-group size
   (``granularity``, default the target's ``vector_lanes``) from ``min_keep`` of its width up.
2. The width-latency model (``latency``), measured on the target at ``widths`` widths per
   group (multiples of the target's lanes), saved in the method's folder and reused.
3. Accuracy cost of each width per group: the sensitivity scan (``importance``: loss
   increase on ``calibration_images`` training images) or the group L2 norm.
4. The widths minimising the summed cost under the budget less ``margin`` (``solve``: the
   integer program), measured end to end on the target and solved again under a lower
   budget while they measure over it (``select.select_measured``, at most 3 solutions; one
   wider try when they measure well under), channels kept by group L2 norm; or (``solver=admm``) ALCS's ADMM
   (``admm``): the weights trained towards a feasible structure (the same integer program as
   the projection), then cut to it, with the same measured check (a structure that measures
   over is replaced by the trained weights' cut under a lower budget). The driver fine-tunes the result by distillation from
   the teacher.

Options (``--option key=value``): ``granularity`` (channels per lane group, default the
target's lanes), ``widths`` (measured widths per group, 4-8, default 6: 4 spread evenly, the rest one at a
time where the layer latency fitted so far can err most), ``min_keep`` (0.25),
``importance`` (``sensitivity`` or ``l2``), ``calibration_images`` (512), ``margin`` (share of
the budget kept free against the model's error; default: the model's largest error on its
calibration networks, at least 0.02 and at most 0.10), ``calibration_networks`` (networks measured end to end
for the model's calibration, the unpruned one included: 3), ``solver`` (``milp`` or ``admm``), ``admm_rounds`` (6),
``admm_steps`` (SGD steps per round, 100).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

IMPORTANCES = ("sensitivity", "l2")
SOLVERS = ("milp", "admm")


@dataclass
class Options:
    """The method's options (see the module docstring)."""

    granularity: int | None = None
    widths: int = 6
    min_keep: float = 0.25
    importance: str = "sensitivity"
    calibration_images: int = 512
    margin: float | None = None
    calibration_networks: int = 3
    solver: str = "milp"
    admm_rounds: int = 6
    admm_steps: int = 100

    @classmethod
    def from_dict(cls, d: dict) -> "Options":
        from ..methods import OptionError, refuse_unknown_options

        refuse_unknown_options(cls, d, "prune")
        out = cls()
        for k, v in d.items():
            try:
                if k in ("granularity", "widths", "calibration_images", "admm_rounds", "admm_steps",
                         "calibration_networks"):
                    setattr(out, k, int(v))
                elif k in ("min_keep", "margin"):
                    setattr(out, k, float(v))
                else:
                    setattr(out, k, str(v))
            except (TypeError, ValueError):
                raise OptionError(f"prune option {k}={v!r}: expected a number") from None
        if out.granularity is not None and out.granularity < 1:
            raise OptionError(f"prune option granularity={out.granularity}: expected a positive integer")
        if not 4 <= out.widths <= 8:
            raise OptionError(f"prune option widths={out.widths}: measure 4 to 8 widths per group")
        if not 0 < out.min_keep <= 1:
            raise OptionError(f"prune option min_keep={out.min_keep}: expected a share in (0, 1]")
        if out.importance not in IMPORTANCES:
            raise OptionError(f"prune option importance={out.importance!r}: valid: {', '.join(IMPORTANCES)}")
        if out.calibration_images < 1:
            raise OptionError(f"prune option calibration_images={out.calibration_images}: expected >= 1")
        if out.solver not in SOLVERS:
            raise OptionError(f"prune option solver={out.solver!r}: valid: {', '.join(SOLVERS)}")
        if out.calibration_networks < 1:
            raise OptionError(f"prune option calibration_networks={out.calibration_networks}: expected >= 1")
        if out.admm_rounds < 1 or out.admm_steps < 1:
            raise OptionError("prune options admm_rounds and admm_steps must be positive")
        if out.margin is not None and not 0 <= out.margin < 1:
            raise OptionError(f"prune option margin={out.margin}: expected a share in [0, 1)")
        return out


def check_options(options: dict) -> None:
    """Bad options fail before any work (``methods.OptionError``)."""
    Options.from_dict(options)


FIRST_PASS_WIDTHS = 4  # measured evenly first; the rest one at a time where the fitted model can err most


def _width_model_plan(module, graph, latency, lanes: int, n_widths: int, min_keep: float, folder: Path,
                      calibration_networks: int):
    """``(candidate widths per group, first-pass grid, path of the saved model)`` of
    :func:`width_model_for`: the path is keyed by the network's structure, the target, the
    runner, the widths, the calibration and where the call times come from."""
    from .latency import _structure_digest, grid_widths, lane_widths

    candidates = {g.name: lane_widths(g.width, lanes, min_keep) for g in graph.groups}
    first = {g: grid_widths(c, min(n_widths, FIRST_PASS_WIDTHS)) for g, c in candidates.items()}
    key = hashlib.sha1(json.dumps([_structure_digest(module, graph), latency.target.fingerprint,
                                   latency.runner.label if latency.runner else None, first, n_widths,
                                   calibration_networks, _timing(latency)], sort_keys=True).encode()).hexdigest()[:12]
    return candidates, first, Path(folder) / f"width-model-{latency.target.name}-{key}.json"


def _timing(latency) -> str:
    """Where the width model's call times come from on ``latency``'s runner (``WidthProbe``)."""
    return "network" if latency.runner is not None and latency.runner.times_in_network() else "table"


def measure_width_model(module, graph, latency, lanes: int, n_widths: int, min_keep: float, folder: Path,
                        calibration_networks: int = 3, log=None, progress=None):
    """Measure the width-latency model of :func:`width_model_for` now (whether or not it was
    saved before) and save it where :func:`width_model_for` reads it; returns
    ``(model, probe, path)`` (the probe: its lowerings and times, for checks)."""
    from ...core.atomic import atomic_write_text
    from .latency import build_width_model

    if latency.runner is None:
        raise RuntimeError("pruning measures the network at several widths on the target; no runner was given")
    candidates, first, path = _width_model_plan(module, graph, latency, lanes, n_widths, min_keep, folder,
                                                calibration_networks)
    model, probe = build_width_model(module, graph, latency.target, latency.table, latency.runner, first,
                                     latency.schedules, calibration_networks=calibration_networks,
                                     refine=candidates, extra_widths=n_widths - min(n_widths, FIRST_PASS_WIDTHS),
                                     log=log, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(model.to_dict(), indent=1))
    return model, probe, path


def width_model_for(module, graph, latency, lanes: int, n_widths: int, min_keep: float, folder: Path,
                    calibration_networks: int = 3, log=None, progress=None):
    """The width-latency model of ``module`` on ``latency.target`` (a ``TargetLatency``):
    read from ``folder`` when this network, target, widths and calibration were modelled
    before, else measured and saved there (:func:`measure_width_model`). Each group is
    measured at ``n_widths`` lane multiples: 4 spread evenly, the rest one at a time where its
    fitted layer latency can err most. Returns ``(model, its grid, path)``."""
    from .latency import WidthLatencyModel

    path = _width_model_plan(module, graph, latency, lanes, n_widths, min_keep, folder, calibration_networks)[2]
    if path.exists():
        model = WidthLatencyModel.from_dict(json.loads(path.read_text()))
        return model, model.grid, path
    model, _probe, path = measure_width_model(module, graph, latency, lanes, n_widths, min_keep, folder,
                                              calibration_networks, log, progress)
    return model, model.grid, path


def check_measured(latency, module, graph, wm, solve, budget_ms: float, budget_us: float, log=None):
    """``solve(kernel_budget_us)`` (a choice with ``.widths`` and ``.latency`` in kernel-sum us)
    measured end to end on ``latency``'s target (a ``TargetLatency``: its runner and
    schedules, as the result deploys) before any training, and solved again under a lower
    budget while it measures over ``budget_ms`` (``select.select_measured``: widths that
    measure under are timed once more, anew, and that timing decides); without a runner,
    solved once, unchecked. Returns ``(choice, the measured checks)``."""
    from ..select import select_measured
    from .latency import WidthProbe, make_config

    log = log or (lambda msg: None)
    if latency.runner is None:
        return solve(budget_us), []
    probe = WidthProbe(module, graph, latency.target, latency.table, latency.runner, latency.schedules,
                       frontend=wm.frontend, log=log)

    def config(choice):
        return make_config({**graph.widths, **choice.widths}, graph.widths)

    def measure_ms(choice) -> float:
        ms = probe.network_us(config(choice)) / 1e3
        log(f"prune: the chosen widths measure {ms:.4g} ms end to end (budget {budget_ms:.4g} ms)")
        return ms

    def confirm_ms(choice) -> float:
        ms = probe.time_network_now(config(choice)) / 1e3
        log(f"prune: timed again, {ms:.4g} ms")
        return ms

    return select_measured(solve, measure_ms, budget_ms, budget_us, wm.alpha / 1e3,
                           describe=lambda c: {"widths": dict(c.widths)}, confirm_ms=confirm_ms)


def solve_and_check(latency, module, graph, wm, terms, costs, candidates, budget_ms: float, budget_us: float,
                    log=None):
    """The integer program's widths under ``budget_us`` (kernel-sum us of ``terms``) through
    ``check_measured``. Returns ``(solution, the measured checks)``."""
    from .solve import solve_milp

    return check_measured(latency, module, graph, wm, lambda kb: solve_milp(terms, costs, candidates, kb),
                          budget_ms, budget_us, log)


def admm_and_check(latency, module, graph, wm, trained, result, terms, candidates, budget_ms: float,
                   budget_us: float, log=None):
    """ADMM's structure (``result`` of ``admm_prune`` on ``trained``) through
    ``check_measured``: first the structure ADMM converged to; while it measures over the
    budget, ``admm.cut_under`` the trained weights at a lower modelled budget. Returns
    ``(admm.Cut, the measured checks)``."""
    from .admm import Cut, cut_under, structure_latency

    own = Cut(result.keep, result.widths, structure_latency(terms, candidates, result.widths))

    def solve(kernel_budget_us: float):
        if kernel_budget_us >= budget_us:
            return own
        return cut_under(trained, graph, terms, candidates, kernel_budget_us)

    return check_measured(latency, module, graph, wm, solve, budget_ms, budget_us, log)


def run(ctx):
    """Prune ``ctx.teacher`` to ``ctx.budget_ms`` (see the module docstring)."""
    import copy

    import numpy as np

    from ..methods import MethodResult
    from .graph import trace_channel_groups
    from .importance import channel_scores, l2_costs, prune_to_widths, sensitivity_costs
    from .latency import lane_widths
    from .solve import BudgetError, latency_terms

    opts = Options.from_dict(ctx.options)
    target = ctx.latency.target
    lanes = target.lanes
    granularity = opts.granularity or lanes
    module = copy.deepcopy(ctx.teacher.module).eval()
    shape = ctx.data.input_shape
    graph = trace_channel_groups(module, shape)
    ctx.log(f"prune: {len(graph.groups)} channel groups; {target.name} has {lanes} fp32 lanes; "
            f"widths kept in multiples of {granularity}")
    wm, grid, model_path = width_model_for(module, graph, ctx.latency, lanes, opts.widths, opts.min_keep,
                                           ctx.work, opts.calibration_networks, ctx.log)
    candidates = {g.name: lane_widths(g.width, granularity, opts.min_keep) for g in graph.groups}
    candidates = {g: ws for g, ws in candidates.items() if len(ws) > 1 and grid[g]}
    scores = channel_scores(module, graph)
    margin = opts.margin if opts.margin is not None else min(0.10, max(0.02, wm.calibration_error_pct / 100))
    if wm.calibration_error_pct > 10:
        ctx.log(f"prune: warning: the width model is off by up to {wm.calibration_error_pct:.0f} % on its own "
                f"calibration networks (a busy machine?); predictions are that uncertain")
    budget_us = (ctx.budget_ms * 1e3 * (1 - margin) - wm.beta_us) / wm.alpha
    terms = latency_terms(wm, candidates)
    if opts.solver == "admm":
        from .admm import admm_prune
        from .surgery import select_channels

        trained = copy.deepcopy(module)
        result = admm_prune(trained, graph, terms, candidates, budget_us, ctx.data.train_x, ctx.data.train_y,
                            teacher=ctx.net, rounds=opts.admm_rounds, steps_per_round=opts.admm_steps,
                            seed=ctx.seed, log=ctx.log)
        cut, checks = admm_and_check(ctx.latency, module, graph, wm, trained, result, terms, candidates,
                                     ctx.budget_ms, budget_us, ctx.log)
        widths = {**graph.widths, **cut.widths}
        pruned = select_channels(trained, graph, {g: k for g, k in cut.keep.items() if len(k) < graph.widths[g]})
        solved = {"method": "admm", "rounds": result.history, "kernel_sum_us": wm.kernel_sum_us(widths),
                  "budget_kernel_sum_us": budget_us, "measured_checks": checks}
    else:
        if opts.importance == "sensitivity":
            rng = np.random.default_rng(ctx.seed)
            n = min(opts.calibration_images, len(ctx.data.train_y))
            idx = rng.choice(len(ctx.data.train_y), size=n, replace=False)
            costs = sensitivity_costs(module, graph, scores, candidates, ctx.data.train_x[idx],
                                      ctx.data.train_y[idx])
        else:
            costs = l2_costs(scores, candidates)
        try:
            solution, checks = solve_and_check(ctx.latency, module, graph, wm, terms, costs, candidates,
                                               ctx.budget_ms, budget_us, ctx.log)
        except BudgetError:
            fastest_ms = wm.predict_ms({g: min(ws) for g, ws in candidates.items()})
            raise BudgetError(f"the budget {ctx.budget_ms:.4g} ms (less the {100 * margin:.0f} % margin) is below the "
                              f"fastest pruned network, {fastest_ms:.4g} ms predicted (every group at its narrowest "
                              f"allowed width, min_keep={opts.min_keep:g})") from None
        widths = {**graph.widths, **solution.widths}
        pruned = prune_to_widths(module, graph, scores, solution.widths)
        solved = {"method": solution.method, "status": solution.status, "seconds": solution.seconds,
                  "cost": solution.cost, "budget_kernel_sum_us": budget_us, "kernel_sum_us": solution.latency,
                  "measured_checks": checks}
    predicted_ms = wm.predict_ms(widths)
    details = {
        "lanes": lanes, "granularity": granularity, "options": asdict(opts), "margin": margin,
        "widths": widths, "full_widths": graph.widths,
        "kept_channels_pct": 100 * sum(widths.values()) / sum(graph.widths.values()),
        "solver": solved,
        "width_model": {"path": str(model_path), "alpha": wm.alpha, "beta_us": wm.beta_us,
                        "calibration_error_pct": wm.calibration_error_pct, "grid": grid,
                        "calibration": wm.calibration},
        "params": {"teacher": sum(p.numel() for p in module.parameters()),
                   "pruned": sum(p.numel() for p in pruned.parameters())},
    }
    ctx.log(f"prune: predicted {predicted_ms:.3f} ms for budget {ctx.budget_ms:.3f} ms "
            f"(margin {100 * margin:.1f} %), {details['kept_channels_pct']:.0f} % of the channels kept")
    return MethodResult(pruned, predicted_ms, details, finetuned=False)
