"""Latency-constrained structured pruning (ALCS, #23): accuracy against measured latency.

The teacher is ``teacher:fashion-mnist`` (the transform command's default, trained here once).
Every latency is measured through TVM on the target; on ``arm`` the target is the emulated
board (QEMU user-mode aarch64 behind a tracker: EMULATION figures, never ARM timings).

Stages (each resumes from ``runs/bench_prune/<target>/``; timings run under quiet-run,
trainings under a heavy-work wrapper (not beside a timing)):

1. ``model`` (timing): the width-latency model of the teacher (``widths`` lane-multiple
   widths per channel group), its layer latencies at *held-out* widths (lane multiples that
   were not measured) against the piecewise-linear interpolation, and ``networks`` random
   width choices measured end to end against the model's prediction.
2. ``train`` (training): pruning at 3 budgets (shares of the teacher's measured latency) with
   the integer program (its widths measured end to end and solved again while they measure
   over the budget, as ``transform --method prune`` does), ADMM at the middle budget, uniform
   width scaling (every group cut to the same share, lane-rounded, the same channel choice and
   fine-tuning) at 6 shares,
   unstructured magnitude pruning at the sparsity of the middle budget's network, and the
   lane-group size ablation (1, 4, 8, 16 channels) at the middle budget. Every network is
   fine-tuned by distillation from the teacher (the transform job's protocol) and compiled.
   With ``--reuse-from x86``, the uniform and unstructured networks of that target are
   reused (they do not depend on the target) and only the pruned ones are made anew.
3. ``measure`` (timing): every network rebuilt from its weights as a measuring library and
   timed end to end as chamtvm times every network (the target's network evaluator at the
   device's nominal speed), ``--rounds`` interleaved rounds, each call in the runner's
   process (x86) or through the tracker (arm).
4. ``report``: ``benchmarks/results/prune_<target>.json`` and the accuracy-vs-latency plot.
5. ``all``: the four in one process (one quiet-run job whose provenance covers them all;
   the model stage is skipped when the folder has one).

    python benchmarks/bench_prune.py --stage model --target x86
    python benchmarks/bench_prune.py --stage train --target x86
    python benchmarks/bench_prune.py --stage measure --target x86 --rounds 3
    python benchmarks/bench_prune.py --stage report --target x86
    ../shared/tools/quiet-run -- python benchmarks/bench_prune.py --stage all --task digits --networks 4
    (arm: add --tracker HOST:PORT --key KEY; the emulated board: chamtvm device emulate-arm)

Goals (#23): at 50 % of the teacher's measured latency, more accuracy than uniform width
scaling at the same measured latency; each pruned network's measured latency within ±10 %
of its prediction and under its budget; layer latencies within ±5 % on held-out widths.
Accuracy: validation images choose nothing here (every network's settings are fixed in
advance); validation and test accuracy are both reported, the test set read at the end.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from common import EMULATION, RESULTS, RUNS, argument_parser, parse_args, pyplot, save_figure, summary, write_results
from common.timing import library_rounds

TASK = "fashion-mnist"
BUDGETS = (0.35, 0.5, 0.7)          # shares of the teacher's measured latency
MIDDLE = 0.5
UNIFORM = (0.3, 0.4, 0.5, 0.6, 0.7, 0.85)
GROUP_SIZES = (1, 4, 8, 16)


def work_dir(target: str) -> Path:
    return RUNS / "bench_prune" / (target if TASK == "fashion-mnist" else f"{target}-{TASK}")


def teacher_architecture():
    """The task's default teacher, untrained, and its input shape (the width-latency model
    depends on the architecture only, so it is measured before the teacher is trained)."""
    from chamtvm.transform.teacher import default_architecture

    return default_architecture(TASK)


def load_state(target: str) -> dict:
    p = work_dir(target) / "state.json"
    return json.loads(p.read_text()) if p.exists() else {}


def save_state(target: str, state: dict) -> None:
    from chamtvm.core.atomic import atomic_write_text

    p = work_dir(target) / "state.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, json.dumps(state, indent=1))


def teacher_and_data(log=print):
    from chamtvm.transform.data import load_task
    from chamtvm.transform.teacher import resolve_model

    data = load_task(TASK)
    teacher = resolve_model(f"teacher:{TASK}", TASK, data, log, False)
    return teacher, data


def runner_for(args):
    from chamtvm.measure.runners import make_runner
    from chamtvm.targets.spec import get_target

    return make_runner(get_target(args.target), args.tracker, args.key)


# ------------------------------------------------------------------------------ model
def stage_model(args) -> None:
    import numpy as np

    from chamtvm.core.metrics import fidelity
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.transform.prune.graph import trace_channel_groups
    from chamtvm.transform.prune.latency import (build_width_model, grid_widths, lane_widths, make_config,
                                                 plan_measurement)
    from chamtvm.transform.prune.method import FIRST_PASS_WIDTHS
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target(args.target)
    module, shape = teacher_architecture()
    graph = trace_channel_groups(module, shape)
    lanes = target.lanes
    full = graph.widths
    lane_cands = {g: lane_widths(w, lanes, args.min_keep) for g, w in full.items()}
    first = min(args.widths, FIRST_PASS_WIDTHS)
    grid = {g: grid_widths(c, first) for g, c in lane_cands.items()}
    table = LatencyTable(work_dir(args.target) / "luts" / f"{target.name}.jsonl").load()
    t0 = time.time()
    with runner_for(args) as runner:
        wm, probe = build_width_model(module, graph, target, table, runner, grid,
                                      ScheduleSource(target, use_database=False), refine=lane_cands,
                                      extra_widths=args.widths - first, log=print)
        seconds_model = time.time() - t0
        grid = wm.grid
        plan = plan_measurement(probe, grid)
        # held-out widths: lane multiples not measured (the two nearest the middle of the
        # widest gaps), else an off-lane width between two measured ones
        held = {}
        for g, ws in grid.items():
            if not ws:
                continue
            pts = sorted(ws + [full[g]])
            unmeasured = [w for w in lane_cands[g][:-1] if w not in ws]
            gaps = sorted(zip(pts, pts[1:]), key=lambda ab: ab[0] - ab[1])[:2]
            picks = []
            for a, b in gaps:
                inside = [w for w in unmeasured if a < w < b]
                mid = (a + b) / 2
                if inside:
                    picks.append(min(inside, key=lambda w: abs(w - mid)))
                elif b - a > 1:
                    picks.append(int(mid))
            held[g] = sorted(set(picks))
        held_configs = plan.colour_configs(full, held)
        probe.measure(held_configs)
        layer_checks = []
        for cfg in held_configs:
            times = probe.times_us(cfg)
            for g, w in cfg:
                measured = sum(t for t, touch in zip(times, plan.touches) if g in touch)
                pred = wm.layer_us(g, w)
                layer_checks.append({"group": g, "width": w, "on_lane": w % lanes == 0, "measured_us": measured,
                                     "predicted_us": pred, "error_pct": 100 * (pred - measured) / measured})
        # random networks end to end
        rng = np.random.default_rng(args.seed)
        net_checks = []
        for i in range(args.networks):
            widths = {g: int(rng.choice(c)) for g, c in lane_cands.items()}
            cfg = make_config(widths, full)
            probe.measure([cfg])
            row = probe.measure_network_us(cfg)
            net_checks.append({"widths": widths, "measured_ms": row["runtime_us_p50"] / 1e3,
                               "spread_pct": _spread(row), "predicted_ms": wm.predict_ms(widths),
                               "kernel_sum_measured_us": sum(probe.times_us(cfg)),
                               "kernel_sum_modelled_us": wm.kernel_sum_us(widths)})
    errs = np.array([c["error_pct"] for c in layer_checks])
    state = load_state(args.target)
    state["model"] = {
        "target": target.name, "lanes": lanes, "emulated": wm.emulated, "device_label": runner.label,
        "grid": grid, "min_keep": args.min_keep, "seconds_to_model": round(seconds_model, 1),
        "lowerings": len(probe.layouts), "kernels_in_table": len(table),
        "width_model": wm.to_dict(),
        "teacher_measured_ms": wm.calibration[0]["measured_us"] / 1e3,
        "heldout_layers": {"checks": layer_checks, "n": len(layer_checks),
                           "within_5pct": float(np.mean(np.abs(errs) <= 5)) if len(errs) else None,
                           "median_abs_error_pct": float(np.median(np.abs(errs))) if len(errs) else None,
                           "max_abs_error_pct": float(np.max(np.abs(errs))) if len(errs) else None},
        "networks": {"checks": net_checks,
                     "fidelity": fidelity([c["predicted_ms"] for c in net_checks],
                                          [c["measured_ms"] for c in net_checks]) if net_checks else None,
                     "kernel_model_fidelity": fidelity([c["kernel_sum_modelled_us"] for c in net_checks],
                                                       [c["kernel_sum_measured_us"] for c in net_checks])
                     if net_checks else None},
        "quiet_run": _quiet(),
    }
    save_state(args.target, state)
    h = state["model"]["heldout_layers"]
    print(f"width model: {seconds_model:.0f} s, {len(probe.layouts)} lowerings; held-out layers within ±5 %: "
          f"{h['within_5pct']}, median |error| {h['median_abs_error_pct']} %")


def _spread(row) -> float:
    from chamtvm.core.metrics import spread_pct

    return float(spread_pct(row))


def _quiet() -> dict:
    import os

    from common import load_average

    return {"under_quiet_run": os.environ.get("QUIET_RUN") == "1", "load_average_1_5_15": load_average()}


# ------------------------------------------------------------------------------ train
def stage_train(args) -> None:
    with runner_for(args) as runner:  # one runner for every measured check
        _train(args, runner)


def _train(args, runner) -> None:
    import numpy as np
    import torch

    from chamtvm.targets.spec import get_target
    from chamtvm.transform.job import _finetune_protocol
    from chamtvm.transform.latency import TargetLatency
    from chamtvm.transform.prune.admm import admm_prune
    from chamtvm.transform.prune.graph import trace_channel_groups
    from chamtvm.transform.prune.importance import channel_scores, prune_to_widths, sensitivity_costs
    from chamtvm.transform.prune.latency import WidthLatencyModel, lane_widths
    from chamtvm.transform.prune.method import admm_and_check, solve_and_check
    from chamtvm.transform.prune.solve import latency_terms
    from chamtvm.transform.prune.surgery import select_channels
    from chamtvm.transform.prune.unstructured import (conv_linear_weights, magnitude_prune, make_permanent,
                                                      weight_sparsity)
    from chamtvm.transform.train import accuracy, fit

    torch.set_num_threads(1)
    state = load_state(args.target)
    if "model" not in state:
        raise SystemExit("run --stage model first")
    target = get_target(args.target)
    teacher, data = teacher_and_data()
    module = copy.deepcopy(teacher.module).eval()
    graph = trace_channel_groups(module, data.input_shape)
    wm = WidthLatencyModel.from_dict(state["model"]["width_model"])
    lanes, full = state["model"]["lanes"], graph.widths
    t_ms = state["model"]["teacher_measured_ms"]
    scores = channel_scores(module, graph)
    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(data.train_y), size=512, replace=False)
    calib = (data.train_x[idx], data.train_y[idx])
    proto = _finetune_protocol(TASK, None, args.seed)
    lat = TargetLatency(target, runner, work_dir(args.target) / "luts")
    nets = state.setdefault("networks", {})
    folder = work_dir(args.target) / "nets"
    folder.mkdir(parents=True, exist_ok=True)
    margin = max(0.02, wm.calibration_error_pct / 100)

    def finish(name: str, net, info: dict, finetune=True):
        if name in nets and (folder / f"{name}.pt").exists():
            return
        t0 = time.time()
        if finetune:
            net = fit(net, data.train_x, data.train_y, proto, teacher=teacher.module, desc=name)
        if info.get("unstructured"):
            make_permanent(net)
            info["weight_sparsity"] = weight_sparsity(net)
        torch.save(net.state_dict(), folder / f"{name}.pt")
        lib = lat.build_library(net, data.input_shape, folder / f"{name}_{target.name}.so", name)
        nets[name] = {**info, "val_accuracy": accuracy(net, data.val_x, data.val_y),
                      "test_accuracy": accuracy(net, data.test_x, data.test_y),
                      "params": sum(int(p.numel()) for p in net.parameters()),
                      "library": str(lib.relative_to(RUNS.parent)), "finetune_s": round(time.time() - t0, 1),
                      "finetune": proto.to_dict() if finetune else None}
        save_state(args.target, state)
        print(f"{name}: val {nets[name]['val_accuracy']:.4f} predicted {info.get('predicted_ms')}")

    finish("teacher", copy.deepcopy(module), {"kind": "teacher", "widths": full, "predicted_ms": wm.predict_ms()},
           finetune=False)

    cost_cache: dict[int, tuple] = {}

    def pruned(share: float, granularity: int, name: str, kind: str):
        if name in nets:
            return nets[name]["widths"]
        if granularity not in cost_cache:
            cands = {g: lane_widths(w, granularity, state["model"]["min_keep"]) for g, w in full.items()}
            cands = {g: c for g, c in cands.items() if len(c) > 1 and state["model"]["grid"].get(g)}
            cost_cache[granularity] = (cands, sensitivity_costs(module, graph, scores, cands, *calib))
        cands, costs = cost_cache[granularity]
        budget_ms = share * t_ms
        budget_us = (budget_ms * 1e3 * (1 - margin) - wm.beta_us) / wm.alpha
        sol, checks = solve_and_check(lat, module, graph, wm, latency_terms(wm, cands), costs, cands, budget_ms,
                                      budget_us, print)
        widths = {**full, **sol.widths}
        net = prune_to_widths(module, graph, scores, sol.widths)
        finish(name, net, {"kind": kind, "share": share, "budget_ms": budget_ms, "granularity": granularity,
                           "widths": widths, "predicted_ms": wm.predict_ms(widths), "margin": margin,
                           "measured_checks": checks, "solver_s": sol.seconds,
                           "off_lane_groups": sum(w % lanes != 0 for w in widths.values())})
        return widths

    for share in BUDGETS:
        pruned(share, lanes, f"prune-{share:g}", "prune")
    if args.reuse_from:
        other = load_state(args.reuse_from).get("networks", {})
        for name, info in other.items():
            if info["kind"] in ("uniform", "unstructured") and name not in nets:
                src = work_dir(args.reuse_from) / "nets" / f"{name}.pt"
                net = select_channels(module, graph, {g: range(w) for g, w in info["widths"].items()
                                                      if w != full[g]})
                net.load_state_dict(torch.load(str(src), weights_only=True))
                nets.pop(name, None)
                info = {k: v for k, v in info.items() if k not in ("val_accuracy", "test_accuracy", "library",
                                                                   "finetune_s", "unstructured")}
                info["predicted_ms"] = wm.predict_ms(info["widths"])  # this target's model
                finish(name, net, info, finetune=False)
                nets[name]["reused_from"] = args.reuse_from
        save_state(args.target, state)
        return
    for share in UNIFORM:
        if f"uniform-{share:g}" in nets:
            continue
        widths = {g: max(min(lanes, w), min(w, int(round(share * w / lanes)) * lanes)) for g, w in full.items()}
        net = prune_to_widths(module, graph, scores, {g: w for g, w in widths.items() if w != full[g]})
        finish(f"uniform-{share:g}", net, {"kind": "uniform", "share": share, "widths": widths,
                                           "predicted_ms": wm.predict_ms(widths)})
    for g_size in GROUP_SIZES:
        if g_size != lanes:
            pruned(MIDDLE, g_size, f"groups-{g_size}", "ablation")
    mid = nets[f"prune-{MIDDLE:g}"]
    kept = 1 - (mid["params"] / nets["teacher"]["params"])
    if "unstructured" not in nets:
        sparsity = kept * sum(p.numel() for p in module.parameters()) / conv_linear_weights(module)
        net = magnitude_prune(copy.deepcopy(module), min(sparsity, 0.95))
        finish("unstructured", net, {"kind": "unstructured", "unstructured": True, "target_sparsity": sparsity,
                                     "widths": full, "predicted_ms": wm.predict_ms(),
                                     "params_removed_by_structured": kept})
    if "admm-0.5" not in nets:
        cands = {g: lane_widths(w, lanes, state["model"]["min_keep"]) for g, w in full.items()}
        cands = {g: c for g, c in cands.items() if len(c) > 1 and state["model"]["grid"].get(g)}
        budget_ms = MIDDLE * t_ms
        budget_us = (budget_ms * 1e3 * (1 - margin) - wm.beta_us) / wm.alpha
        trained = copy.deepcopy(module)
        t0 = time.time()
        terms = latency_terms(wm, cands)
        res = admm_prune(trained, graph, terms, cands, budget_us, data.train_x, data.train_y,
                         teacher=teacher.module, rounds=args.admm_rounds, steps_per_round=args.admm_steps,
                         seed=args.seed, log=print)
        admm_s = round(time.time() - t0, 1)
        cut, checks = admm_and_check(lat, module, graph, wm, trained, res, terms, cands, budget_ms, budget_us, print)
        widths = {**full, **cut.widths}
        net = select_channels(trained, graph, {g: k for g, k in cut.keep.items() if len(k) < full[g]})
        finish("admm-0.5", net, {"kind": "admm", "share": MIDDLE, "budget_ms": budget_ms, "granularity": lanes,
                                 "widths": widths, "predicted_ms": wm.predict_ms(widths), "margin": margin,
                                 "measured_checks": checks, "admm_own_widths": {**full, **res.widths},
                                 "admm_s": admm_s, "admm_history": res.history,
                                 "admm_steps": args.admm_rounds * args.admm_steps})


# ----------------------------------------------------------------------------- measure
def stage_measure(args) -> None:
    state = load_state(args.target)
    nets = state.get("networks", {})
    if not nets:
        raise SystemExit("run --stage train first")
    import numpy as np
    import torch

    from chamtvm.core.metrics import iqr_spread_pct
    from chamtvm.targets.spec import get_target
    from chamtvm.transform.latency import TargetLatency
    from chamtvm.transform.prune.graph import trace_channel_groups
    from chamtvm.transform.prune.surgery import select_channels

    # every network rebuilt from its weights as a measuring library (the reference kernel
    # beside it) and timed as chamtvm times every network (``TargetLatency.measure_library``:
    # the target's network evaluator at the device's nominal speed learnt in the luts folder,
    # as the width model's calibration and the measured check were), each call in the
    # runner's process (x86) or on the board through the tracker (arm)
    target = get_target(args.target)
    teacher, data = teacher_and_data()
    module = teacher.module.eval()
    graph = trace_channel_groups(module, data.input_shape)
    full, folder = graph.widths, work_dir(args.target) / "nets"
    names = list(nets)
    with runner_for(args) as runner:
        lat = TargetLatency(target, runner, work_dir(args.target) / "luts")
        libs = {}
        for n in names:
            net = select_channels(module, graph, {g: range(w) for g, w in nets[n]["widths"].items() if w != full[g]})
            net.load_state_dict(torch.load(str(folder / f"{n}.pt"), weights_only=True))
            libs[n] = lat.build_library(net.eval(), data.input_shape, folder / f"{n}_{target.name}_measuring.so", n,
                                        reference=True)
        got = library_rounds(lat, libs, data.input_shape, args.rounds)
        label, emulated = runner.label, bool(runner.emulated)
    for n in names:
        rounds = [float(np.median(s)) for s in got[n]]
        flat = [x for s in got[n] for x in s]
        nets[n]["measured"] = {"latency_ms": float(np.median(rounds)) / 1e3 if rounds else None,
                               "spread_pct": iqr_spread_pct(flat) if flat else None,
                               "round_medians_ms": [x / 1e3 for x in rounds], "device_label": label,
                               "emulated": emulated, "how": "TargetLatency.measure_library of a measuring build"}
    state["measure"] = {"rounds": args.rounds, "quiet_run": _quiet()}
    save_state(args.target, state)


# ------------------------------------------------------------------------------ report
def _model_goals(state) -> dict:
    """The width-latency model's goals: held-out widths (all, on and off the lanes), its own
    lane-multiple widths left out in turn."""
    import numpy as np

    from chamtvm.transform.prune.latency import WidthLatencyModel

    goals = {}
    h = state["model"]["heldout_layers"]
    goals["heldout_layers_within_5pct"] = h["within_5pct"]
    # the same interpolation checked on the model's own lane-multiple widths, each left out in turn
    wm = WidthLatencyModel.from_dict(state["model"]["width_model"])
    loo = [c for g in wm.full for c in wm.layer_leave_one_out(g)]
    loo_errs = np.array([abs(c["error_pct"]) for c in loo])
    goals["layers_leave_one_out_within_5pct"] = {
        "n": len(loo), "within_5pct": float(np.mean(loo_errs <= 5)) if loo else None,
        "median_abs_error_pct": float(np.median(loo_errs)) if loo else None, "checks": loo}
    for lane in (True, False):  # the solver chooses lane multiples; the ablation's granularities others
        errs = [abs(c["error_pct"]) for c in h["checks"] if c["on_lane"] == lane]
        goals[f"heldout_layers_within_5pct_{'on' if lane else 'off'}_lane"] = \
            {"n": len(errs), "within_5pct": float(np.mean(np.array(errs) <= 5)) if errs else None,
             "max_abs_error_pct": float(np.max(errs)) if errs else None}
    return goals


def _report_model_only(args, state) -> None:
    """``prune_<target>[_task]_width_model.json``: the model stage alone (no networks trained
    or measured yet): the width model's held-out checks and its random networks end to end."""
    result = {**_model_part(args, state), "goals": _model_goals(state), "networks": []}
    write_results(result, RESULTS / f"{_results_name(args, state)}_width_model.json", figure=plot_width_model,
                  measurements_from=work_dir(args.target))


def _model_part(args, state) -> dict:
    """What every report says of the target and the width model."""
    emulated = state["model"]["emulated"]
    return {"target": args.target, "emulated": emulated, "label": EMULATION if emulated else "device (this host's CPU)",
            "task": TASK, "model": {k: v for k, v in state["model"].items() if k != "width_model"},
            "width_model": {k: state["model"]["width_model"][k] for k in ("alpha", "beta_us", "calibration")},
            "layer_curves": _layer_curves(state)}


def _results_name(args, state) -> str:
    """``prune_<target>[_<task>][_emulated]``: the results file's name without suffix."""
    emulated = state["model"]["emulated"]
    return f"prune_{args.target}{'' if TASK == 'fashion-mnist' else '_' + TASK}{'_emulated' if emulated else ''}"


def stage_report(args) -> None:
    import numpy as np

    state = load_state(args.target)
    if "networks" not in state:
        return _report_model_only(args, state)
    nets = state["networks"]
    teacher_ms = nets["teacher"]["measured"]["latency_ms"]
    rows = []
    for n, info in nets.items():
        m = (info.get("measured") or {}).get("latency_ms")
        row = {"name": n, **{k: v for k, v in info.items() if k not in ("admm_history",)}}
        if m:
            row["measured_share_of_teacher"] = m / teacher_ms
            if info.get("predicted_ms"):
                row["prediction_error_pct"] = 100 * (info["predicted_ms"] - m) / m
            if info.get("budget_ms"):
                row["under_budget"] = m <= info["budget_ms"]
                # against the teacher measured in the same rounds: the machine's speed between
                # the model stage (the budget's base) and the measure stage cancels
                row["under_budget_share"] = m / teacher_ms <= info["share"]
        rows.append(row)
    uni = sorted([r for r in rows if r["kind"] == "uniform" and r.get("measured_share_of_teacher")],
                 key=lambda r: r["measured"]["latency_ms"])
    goals = {}
    if uni:
        xs = [r["measured"]["latency_ms"] for r in uni]
        for r in rows:
            if r["kind"] in ("prune", "admm", "ablation") and r.get("measured"):
                ms = r["measured"]["latency_ms"]
                if xs[0] <= ms <= xs[-1]:
                    for key in ("val_accuracy", "test_accuracy"):
                        r[f"uniform_{key}_at_same_latency"] = float(np.interp(ms, xs, [u[key] for u in uni]))
    mid = next(r for r in rows if r["name"] == f"prune-{MIDDLE:g}")
    if "uniform_val_accuracy_at_same_latency" in mid:
        goals["accuracy_over_uniform_at_50pct"] = {
            "pruned_val": mid["val_accuracy"], "uniform_val_interpolated": mid["uniform_val_accuracy_at_same_latency"],
            "pruned_test": mid["test_accuracy"], "uniform_test_interpolated": mid["uniform_test_accuracy_at_same_latency"],
            "met_val": mid["val_accuracy"] > mid["uniform_val_accuracy_at_same_latency"],
            "met_test": mid["test_accuracy"] > mid["uniform_test_accuracy_at_same_latency"]}
    pruned = [r for r in rows if r["kind"] in ("prune", "admm") and "prediction_error_pct" in r]
    goals["pruned_within_10pct_of_prediction"] = {r["name"]: abs(r["prediction_error_pct"]) <= 10 for r in pruned}
    goals["pruned_under_budget"] = {r["name"]: r["under_budget"] for r in pruned}
    goals["pruned_under_budget_share"] = {r["name"]: r["under_budget_share"] for r in pruned}
    goals["teacher_drift_pct"] = 100 * (teacher_ms / state["model"]["teacher_measured_ms"] - 1)
    goals.update(_model_goals(state))
    result = {**_model_part(args, state), "budgets_share_of_teacher": list(BUDGETS), "goals": goals, "networks": rows,
              "measure": state.get("measure")}
    write_results(result, RESULTS / f"{_results_name(args, state)}.json", figure=plot,
                  measurements_from=None if args.stage == "all" else work_dir(args.target))


def _layer_curves(state) -> dict:
    """Per group: the measured (grid) and interpolated layer latency at each lane width."""
    from chamtvm.transform.prune.latency import WidthLatencyModel

    wm = WidthLatencyModel.from_dict(state["model"]["width_model"])
    out = {}
    for g, ws in state["model"]["grid"].items():
        if ws:
            out[g] = {"grid": ws + [wm.full[g]], "layer_us": [wm.layer_us(g, w) for w in ws + [wm.full[g]]]}
    return out


def plot_width_model(result: dict, path: Path) -> None:
    """Held-out layer latencies, predicted against measured (the ±5 % band), on and off the
    lanes; and every group's measured curve with its held-out widths."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    checks = result["model"]["heldout_layers"]["checks"]
    for lane, fmt, label in ((True, "bo", "lane multiple (what pruning chooses)"),
                             (False, "x", "between lane multiples")):
        sel = [c for c in checks if c["on_lane"] == lane]
        ax.plot([c["measured_us"] for c in sel], [c["predicted_us"] for c in sel], fmt, ms=5, label=label,
                color=None if lane else "tab:orange")
    lo = min(c["measured_us"] for c in checks) * 0.8
    hi = max(c["measured_us"] for c in checks) * 1.2
    for f, ls in ((1.0, "-"), (1.05, ":"), (0.95, ":")):
        ax.plot([lo, hi], [lo * f, hi * f], "k" + ls, lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured layer latency at a held-out width (us)" + (" EMULATION" if result["emulated"] else ""))
    ax.set_ylabel("piecewise-linear model (us)")
    ax.set_title(f"held-out widths on {result['target']} ({result['task']}): ±5 % dotted")
    ax.legend(fontsize=7)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (g, c) in enumerate(result["layer_curves"].items()):
        col = colours[i % len(colours)]
        bx.plot(c["grid"], c["layer_us"], "o-", color=col, ms=3, lw=1)
        held = [k for k in checks if k["group"] == g]
        bx.plot([k["width"] for k in held], [k["measured_us"] for k in held], "x", color=col, ms=6)
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.xaxis.set_minor_formatter(plt.NullFormatter())
    bx.set_xlabel("kept width (channels)")
    bx.set_ylabel("layer latency (us)")
    bx.set_title("each group: measured widths (lines), held-out widths (x)")
    save_figure(fig, path)


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    style = {"teacher": ("k*", "teacher"), "prune": ("ro", "pruned (integer program)"), "admm": ("mD", "pruned (ADMM)"),
             "uniform": ("bs-", "uniform width scaling"), "unstructured": ("gx", "unstructured magnitude"),
             "ablation": ("c^", "lane-group size ablation")}
    for kind, (fmt, label) in style.items():
        rs = sorted([r for r in result["networks"] if r["kind"] == kind and r.get("measured")],
                    key=lambda r: r["measured"]["latency_ms"])
        if not rs:
            continue
        ax.plot([r["measured"]["latency_ms"] for r in rs], [100 * r["test_accuracy"] for r in rs], fmt, label=label)
        for r in rs:
            if kind in ("ablation",):
                ax.annotate(f"g={r['granularity']}", (r["measured"]["latency_ms"], 100 * r["test_accuracy"]), fontsize=7)
    ax.set_xlabel("measured latency (ms)" + (" EMULATION" if result["emulated"] else ""))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"pruning on {result['target']} ({result['task']})" + (" — EMULATION" if result["emulated"] else ""))
    ax.legend(fontsize=7)
    for g, c in list(result["layer_curves"].items())[:8]:
        bx.plot(c["grid"], c["layer_us"], "o-", label=g, ms=3)
    for chk in result["model"]["heldout_layers"]["checks"]:
        bx.plot(chk["width"], chk["measured_us"], "kx", ms=4)
    bx.set_xlabel("kept width (channels)")
    bx.set_ylabel("layer latency (us)")
    bx.set_title("layer latency vs width: measured grid (lines), held-out (x)")
    bx.legend(fontsize=6)
    save_figure(fig, path)


def main(argv=None) -> int:
    global TASK
    from chamtvm.cli.validate import tracker

    ap = argument_parser(__doc__)
    ap.add_argument("--stage", choices=("model", "train", "measure", "report", "all"), required=True)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--tracker", type=tracker, default=None)
    ap.add_argument("--key", default=None)
    ap.add_argument("--widths", type=int, default=8, help="measured widths per group (4-8): 4 evenly, the "
                                                         "rest one at a time where the fitted model can err most")
    ap.add_argument("--min-keep", type=float, default=0.25)
    ap.add_argument("--networks", type=int, default=8, help="random width choices measured end to end")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--admm-rounds", type=int, default=6)
    ap.add_argument("--admm-steps", type=int, default=150)
    ap.add_argument("--reuse-from", default=None, help="target whose uniform/unstructured networks to reuse")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", default=TASK, choices=("digits", "fashion-mnist"), help="digits: a quick check of the stages")
    args = parse_args(ap, argv)
    TASK = args.task
    if args.stage == "all":
        if "model" not in load_state(args.target):
            stage_model(args)
        for stage in (stage_train, stage_measure, stage_report):
            stage(args)
        return 0
    {"model": stage_model, "train": stage_train, "measure": stage_measure, "report": stage_report}[args.stage](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
