"""HANT on Fashion-MNIST: the teacher, HANT at 3 budgets, uniform width scaling of the teacher and
the ChamNet search's pick at the same budgets; accuracy against measured latency.

Budgets: ``--fractions`` (default 0.4, 0.5, 0.65) of the teacher's measured latency on the
target (0.65: a 1.54x speed-up). Every choice is made on validation images (5,000 of the
training images, apart from the 10,000 training images); the test set (10,000 images) is read
once, in the report phase. Trainings that compete share one protocol: the teacher's (uniform
baselines and ChamNet picks are trained like the teacher, from scratch; HANT starts from the
teacher and fine-tunes by distillation).

Phases (run in this order; trainings under a heavy-work wrapper (not beside a timing), timings under quiet-run)::

    heavy python benchmarks/bench_hant.py teacher            # trains the benchmark's teacher (once)
    quiet-run -- python benchmarks/bench_hant.py price       # teacher measured, candidates/widths priced
    heavy python benchmarks/bench_hant.py chamnet-journal    # ChamNet's accuracy predictor trainings (val)
    quiet-run -- python benchmarks/bench_hant.py chamnet-table  # the fashion space's x86 table (search)
    heavy python benchmarks/bench_hant.py adapt              # HANT, uniform, ChamNet picks; libraries
    quiet-run -- python benchmarks/bench_hant.py measure     # every library, interleaved rounds
    python benchmarks/bench_hant.py report                   # test accuracy once; JSON + plot

``--task digits`` runs the same phases at the scale of the tests (the digits task's default
teacher and fixed splits, 1,200 / 298 / 299 images; no ChamNet pick: the ChamNet journal is a
fashion-mnist one); its results go to ``hant_<target>_digits.json``.

``--target arm --tracker HOST:PORT --key KEY`` runs the price/adapt/measure/report phases on
the emulated ARM board (every figure labelled EMULATION; no ChamNet pick there: its space table
under QEMU is not built). Everything is kept under ``--workdir`` (default
``runs/bench_hant``, not in git); the results go to
``benchmarks/results/hant_<target>.json`` and ``.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import EMULATION, REPO, RESULTS, argument_parser, parse_args, pyplot, save_figure, write_results
from common.timing import library_rounds

TRAIN, VAL = 10000, 5000


def _env(args):
    os.environ["CHAMTVM_HOME"] = str(Path(args.workdir).resolve())


TASK = "fashion-mnist"  # set from --task by main()


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _data():
    from chamtvm.transform.data import load_task

    if TASK == "digits":
        return load_task("digits")
    return load_task(TASK, TRAIN, VAL)


def _teacher(data):
    """The task's default teacher (``chamtvm.transform.teacher.DEFAULT_TEACHERS``; for
    fashion-mnist the largest blocks of the fashion space, 8 epochs), trained once."""
    from chamtvm.transform.teacher import train_teacher

    return train_teacher(TASK, data, log=_log)


def _state(args) -> dict:
    path = Path(args.workdir) / f"bench-{args.target}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(args, state: dict) -> None:
    from chamtvm.core.atomic import atomic_write_text

    atomic_write_text(Path(args.workdir) / f"bench-{args.target}.json", json.dumps(state, indent=1))


def _runner(args):
    from chamtvm.measure.runners import make_runner
    from chamtvm.targets.spec import get_target

    return make_runner(get_target(args.target), args.tracker, args.key)


def _latency(args, runner):
    from chamtvm.targets.spec import get_target
    from chamtvm.transform.latency import TargetLatency

    return TargetLatency(get_target(args.target), runner, log=_log)


def _net(teacher, data):
    from chamtvm.transform.graph import layered

    return layered(teacher.module, data.input_shape, 10)


# ------------------------------------------------------------------ phases
def phase_teacher(args):
    data = _data()
    t = _teacher(data)
    _log(f"teacher {t.path}: validation accuracy {t.val_accuracy:.4f}")


def phase_price(args):
    """Quiet: the teacher measured end to end, HANT's candidates and the uniform widths priced
    (their kernels measured into the table)."""
    from chamtvm.transform import hant
    from chamtvm.transform.job import UNIFORM_WIDTHS, teacher_folder, teacher_latency
    from chamtvm.transform.graph import folded, width_scaled
    from chamtvm.transform.methods import MethodContext

    data = _data()
    teacher = _teacher(data)
    net = _net(teacher, data)
    folder = teacher_folder(TASK, net)
    with _runner(args) as runner:
        lat = _latency(args, runner)
        t0 = time.time()
        t_lat = teacher_latency(lat, net, folder, _log)
        scale = t_lat["latency_ms"] / t_lat["table_sum_ms"]
        ctx = MethodContext(teacher, net, data, lat, scale, t_lat["latency_ms"], folder / "hant", log=_log)
        hant.price_candidates(ctx, hant.Options())
        lat.price_blocks([(folded(width_scaled(net, w)), net.input_shape) for w in UNIFORM_WIDTHS])
        state = _state(args)
        state.update(teacher_latency=t_lat, context_scale=scale, price_seconds=round(time.time() - t0, 1),
                     budgets_ms=[round(f * t_lat["latency_ms"], 4) for f in args.fractions],
                     fractions=list(args.fractions), kernels_measured=lat.measured_now,
                     device_label=runner.label, emulated=bool(runner.emulated))
        _save_state(args, state)
    _log(f"teacher measured {t_lat['latency_ms']:.3f} ms (table sum {t_lat['table_sum_ms']:.3f} ms); budgets "
         f"{state['budgets_ms']} ms")


def phase_chamnet_journal(args):
    """ChamNet's accuracy predictor: 20 fashion-space networks chosen by Sobol + BO, trained with
    the task's default 3-epoch protocol on the training images and judged on the validation
    images (never the test set)."""
    from chamtvm.accuracy.fit import build_predictor
    from chamtvm.accuracy.journal import Journal
    from chamtvm.accuracy.trainer import ProxyTaskTrainer
    from chamtvm.core.workdir import runs_dir
    from chamtvm.space.schema import SearchSpace

    space = SearchSpace.load("fashion")
    trainer = ProxyTaskTrainer("fashion-mnist", train_size=TRAIN, eval_size=VAL, eval_split="val")
    journal = Journal(runs_dir() / "accuracy-fashion-mnist-fashion-val.jsonl")
    built = build_predictor(space, trainer, journal, args.chamnet_samples, 200, "bo", 0, progress=False)
    _log(f"ChamNet accuracy predictor: {len(built.chosen)} networks, cross-validated {built.cv}")


def phase_chamnet_table(args):
    """Quiet: the fashion space's kernel table on the target (default schedules) and the scale
    residual from 4 measured networks: what ``search`` prices networks with."""
    cmd = [sys.executable, "-m", "chamtvm", "--workdir", str(Path(args.workdir).resolve()), "tune", "--target",
           args.target, "--space", "fashion", "--task", "none", "--trials", "0", "--heldout", "0",
           "--train-networks", "4", "--no-calibration", "--no-progress"]
    subprocess.run(cmd, check=True, cwd=REPO)


def _arch_key(arch, proto) -> str:
    import hashlib

    return f"{hashlib.sha1(arch.to_json().encode()).hexdigest()[:12]}-{proto.name}-{TRAIN}"


def _chamnet_pick(args, budget_ms: float) -> dict:
    from chamtvm.core.workdir import runs_dir

    out = Path(args.workdir) / "chamnet" / f"{args.target}-{budget_ms:g}ms"
    if not (out / "report.json").exists():
        cmd = [sys.executable, "-m", "chamtvm", "--workdir", str(Path(args.workdir).resolve()), "search",
               "--target", args.target, "--latency-ms", f"{budget_ms}", "--space", "fashion", "--journal",
               str(runs_dir() / "accuracy-fashion-mnist-fashion-val.jsonl"), "--no-measure", "--out", str(out),
               "--json"]
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads((out / "report.json").read_text())


def phase_adapt(args):
    """Heavy: per budget, HANT (distillation once, selection + fine-tuning per budget), the
    uniform baseline and the ChamNet pick trained like the teacher; every library built."""
    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.transform.job import TransformConfig, baseline_protocol, trained_once, transform
    from chamtvm.transform.select import BudgetError
    from chamtvm.transform.train import accuracy, fit

    state = _state(args)
    if "budgets_ms" not in state:
        raise SystemExit("run the price phase first")
    data = _data()
    teacher = _teacher(data)
    net = _net(teacher, data)
    libs = Path(args.workdir) / "libs" / args.target
    libs.mkdir(parents=True, exist_ok=True)
    entries = state.setdefault("networks", {})
    with _runner(args) as runner:
        lat = _latency(args, runner)
        if "teacher" not in entries:
            lat.build_library(net, data.input_shape, libs / "teacher.so", "teacher")
            entries["teacher"] = {"kind": "teacher", "library": str(libs / "teacher.so"),
                                  "val_accuracy": accuracy(net, data.val_x, data.val_y),
                                  "predicted_ms": state["teacher_latency"]["latency_ms"]}
        for f, budget in zip(state["fractions"], state["budgets_ms"]):
            name = f"hant-{f:g}"
            if name in entries or name in state.get("infeasible", {}):
                continue
            t0 = time.time()
            sizes = {} if TASK == "digits" else {"train_size": TRAIN, "val_size": VAL}
            cfg = TransformConfig(teacher.path, TASK, args.target, budget, **sizes,
                                  measure=False, progress=False, tracker=args.tracker, key=args.key,
                                  out=Path(args.workdir) / "hant" / f"{args.target}-{f:g}")
            try:
                rep = transform(cfg, log=_log, runner=runner)
            except BudgetError as e:  # below the fastest network HANT can build: said in the results
                state.setdefault("infeasible", {})[name] = str(e)
                _log(f"{name}: {e}")
                _save_state(args, state)
                continue
            u = rep.get("uniform") or {}
            entries[name] = {"kind": "hant", "fraction": f, "budget_ms": budget, "library": rep["artifacts"]["library"],
                             "onnx": rep["artifacts"]["onnx"], "val_accuracy": rep["adapted"]["val_accuracy"],
                             "predicted_ms": rep["adapted"]["predicted_ms"], "replaced": rep["details"]["replaced"],
                             "choice": rep["details"]["choice"], "calibration": rep["details"]["calibration"],
                             "candidates": rep["details"]["candidates"], "seconds": round(time.time() - t0, 1),
                             "report": rep["artifacts"]["report"]}
            if u.get("width"):
                entries[f"uniform-{f:g}"] = {"kind": "uniform", "fraction": f, "budget_ms": budget, "width": u["width"],
                                             "library": rep["artifacts"]["uniform_library"],
                                             "weights": rep["artifacts"]["uniform_weights"],
                                             "val_accuracy": u["val_accuracy"], "predicted_ms": u["predicted_ms"]}
            _save_state(args, state)
        if args.target == "x86" and TASK == "fashion-mnist" and not args.no_chamnet:
            space = SearchSpace.load("fashion")
            proto = baseline_protocol(teacher)
            for f, budget in zip(state["fractions"], state["budgets_ms"]):
                name = f"chamnet-{f:g}"
                if name in entries:
                    continue
                rep = _chamnet_pick(args, budget)
                arch = Arch.from_dict(rep["best"]["architecture"])
                model = build_model(space, arch, seed=0, randomize_bn=False)
                model, _ = trained_once(Path(args.workdir) / "chamnet" / "trained", _arch_key(arch, proto), model,
                                        lambda: fit(model, data.train_x, data.train_y, proto, log=_log), _log)
                lib = libs / f"chamnet-{f:g}.so"
                lat.build_library(model, data.input_shape, lib, "chamnet")
                entries[name] = {"kind": "chamnet", "fraction": f, "budget_ms": budget, "library": str(lib),
                                 "architecture": arch.to_dict(), "val_accuracy": accuracy(model, data.val_x, data.val_y),
                                 "predicted_ms": rep["best"]["predicted_latency_ms"],
                                 "predicted_val_accuracy": rep["best"]["predicted_accuracy"]}
                _save_state(args, state)
    _save_state(args, state)


def phase_measure(args):
    """Quiet: every network rebuilt from its weights as a measuring library (the reference
    kernel beside it) and timed end to end as chamtvm times every network
    (``TargetLatency.measure_library``: the target's network evaluator at the device's
    nominal speed learnt in the luts folder, as the teacher's pricing-time timing and HANT's
    measured check were), ``--rounds`` interleaved rounds, each call in the runner's process."""
    state = _state(args)
    data = _data()
    teacher = _teacher(data)
    modules = _modules(args, state, data, teacher, _net(teacher, data))
    names = sorted(state["networks"])
    folder = Path(args.workdir) / "libs" / args.target / "measuring"
    folder.mkdir(parents=True, exist_ok=True)
    with _runner(args) as runner:
        lat = _latency(args, runner)
        libs = {n: lat.build_library(modules[n], data.input_shape, folder / f"{n}.so", n, reference=True)
                for n in names}
        samples = {n: [[x / 1e3 for x in s] for s in rounds]
                   for n, rounds in library_rounds(lat, libs, data.input_shape, args.rounds, _log).items()}
        state["measure"] = {"rounds": args.rounds, "samples_ms": samples, "device_label": runner.label,
                            "emulated": bool(runner.emulated), "quiet_run": os.environ.get("QUIET_RUN") == "1",
                            "how": "TargetLatency.measure_library of a measuring build",
                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _save_state(args, state)
    # the measurements with this run's provenance (how busy the machine was), for the report
    write_results({"measure": state["measure"], "networks": sorted(samples)}, _measure_file(args))


def _measure_file(args) -> Path:
    return Path(args.workdir) / f"measure-{args.target}{_suffix()}.json"


def _modules(args, state, data, teacher, net) -> dict:
    """Every network of the state as a torch module with its weights (eval mode)."""
    import torch

    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.transform.graph import folded, layered_from_graph, read_onnx, width_scaled
    from chamtvm.transform.job import baseline_protocol

    out = {}
    for name, e in state["networks"].items():
        if e["kind"] == "teacher":
            m = net
        elif e["kind"] == "hant":
            m = layered_from_graph(read_onnx(e["onnx"], data.input_shape))
        elif e["kind"] == "uniform":
            m = folded(width_scaled(net, e["width"]))
            m.load_state_dict(torch.load(e["weights"], weights_only=True))
        else:  # chamnet
            arch = Arch.from_dict(e["architecture"])
            m = build_model(SearchSpace.load("fashion"), arch, randomize_bn=False)
            path = Path(args.workdir) / "chamnet" / "trained" / f"{_arch_key(arch, baseline_protocol(teacher))}.pt"
            m.load_state_dict(torch.load(str(path), weights_only=True))
        out[name] = m.eval()
    return out


def _test_accuracy(args, state, data, teacher, net):
    """The test set, once: every network's test accuracy."""
    from chamtvm.transform.train import accuracy

    modules = _modules(args, state, data, teacher, net)
    return {name: accuracy(m, data.test_x, data.test_y) for name, m in modules.items()}


def phase_report(args):
    import numpy as np

    from chamtvm.core.metrics import iqr_spread_pct

    state = _state(args)
    data = _data()
    teacher = _teacher(data)
    net = _net(teacher, data)
    test = _test_accuracy(args, state, data, teacher, net)
    meas = state["measure"]
    rows = {}
    for name, e in state["networks"].items():
        per_round = [float(np.median(s)) for s in meas["samples_ms"].get(name, [])]
        flat = [x for s in meas["samples_ms"].get(name, []) for x in s]
        m = float(np.median(per_round)) if per_round else None
        rows[name] = {**{k: v for k, v in e.items() if k not in ("library", "onnx", "weights")},
                      "test_accuracy": test.get(name), "measured_ms": m, "measured_round_medians_ms": per_round,
                      "spread_iqr_pct": iqr_spread_pct(flat) if flat else None}
    t_ms = rows["teacher"]["measured_ms"]
    t_priced = state["teacher_latency"]["latency_ms"]  # the budgets' base, measured in the price phase
    for r in rows.values():
        if r["measured_ms"]:
            r["speedup"] = t_ms / r["measured_ms"]
            if r.get("budget_ms"):
                r["under_budget"] = r["measured_ms"] <= r["budget_ms"]
                # in the teacher's units of this phase: the machine's speed between phases cancels
                r["under_budget_share"] = r["measured_ms"] / t_ms <= r["budget_ms"] / t_priced
            if r.get("predicted_ms"):
                r["prediction_error_pct"] = 100 * (r["predicted_ms"] / r["measured_ms"] - 1)
                r["prediction_error_share_pct"] = 100 * ((r["predicted_ms"] / t_priced) / (r["measured_ms"] / t_ms) - 1)
        r["drop_points_val"] = 100 * (rows["teacher"]["val_accuracy"] - r["val_accuracy"])
        if r.get("test_accuracy") is not None:
            r["drop_points_test"] = 100 * (rows["teacher"]["test_accuracy"] - r["test_accuracy"])
    goals = {}
    if "hant-0.5" in rows and "uniform-0.5" in rows:
        h, u = rows["hant-0.5"], rows["uniform-0.5"]
        goals["half_latency_hant_beats_uniform"] = {
            "hant": [h["val_accuracy"], h["test_accuracy"], h["measured_ms"]],
            "uniform": [u["val_accuracy"], u["test_accuracy"], u["measured_ms"]],
            "met_test": h["test_accuracy"] > u["test_accuracy"], "met_val": h["val_accuracy"] > u["val_accuracy"]}
    fast = [r for r in rows.values() if r["kind"] == "hant" and (r.get("speedup") or 0) >= 1.5]
    goals["within_1_point_at_1.5x"] = {"candidates": [[r["fraction"], r["speedup"], r["drop_points_test"]]
                                                      for r in fast],
                                       "met": any(r["drop_points_test"] <= 1.0 for r in fast)}
    hrows = [r for r in rows.values() if r["kind"] == "hant"]
    goals["prediction_within_10pct_and_under_budget"] = {
        "per_network": [[r["fraction"], r.get("prediction_error_pct"), r.get("under_budget")] for r in hrows],
        "met": all(abs(r.get("prediction_error_pct") or 1e9) <= 10 and r.get("under_budget") for r in hrows),
        # the same, as shares of the teacher measured in the same phase as each network (the
        # absolute figures also hold the machine's change of speed between the price and
        # measure phases: the teacher's drift below)
        "teacher_drift_pct": 100 * (t_ms / t_priced - 1),
        "per_network_share": [[r["fraction"], r.get("prediction_error_share_pct"), r.get("under_budget_share")]
                              for r in hrows],
        "met_share": all(abs(r.get("prediction_error_share_pct") or 1e9) <= 10 and r.get("under_budget_share")
                         for r in hrows)}
    result = {
        "what": f"HANT vs uniform width scaling vs the ChamNet search's pick, {TASK}, accuracy against "
                "measured latency" + (" (EMULATION: QEMU user-mode ARM, not device timings)" if meas["emulated"] else ""),
        "target": args.target, "emulated": meas["emulated"], "device_label": meas["device_label"],
        "task": TASK, "data": data.protocol, "teacher": {"path": str(teacher.path), "architecture": teacher.source.get("architecture"),
                                           "protocol": teacher.protocol},
        "budgets_ms": state["budgets_ms"], "fractions": state["fractions"], "context_scale": state["context_scale"],
        "infeasible_budgets": state.get("infeasible", {}),
        "teacher_latency_at_pricing": state["teacher_latency"], "networks": rows, "goals": goals,
        "measure": {k: v for k, v in meas.items() if k != "samples_ms"},
        "quiet_run_records": _quiet_records(args),
    }
    if meas["emulated"]:
        result["emulation"] = EMULATION
    name = f"hant_{args.target}" + ("_emulated" if meas["emulated"] else "") + _suffix()
    write_results(result, RESULTS / f"{name}.json", figure=_plot, measurements_from=_measure_file(args))


def _suffix() -> str:
    return "_digits" if TASK == "digits" else ""


def _quiet_records(args):
    path = Path(args.workdir) / "quiet_records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plot(result, png):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    rows = result["networks"]
    style = {"hant": ("o-", "HANT"), "uniform": ("s--", "uniform width scaling"), "chamnet": ("^:", "ChamNet pick")}
    for kind, (fmt, label) in style.items():
        pts = sorted((r["measured_ms"], 100 * r["test_accuracy"]) for r in rows.values()
                     if r["kind"] == kind and r.get("measured_ms") and r.get("test_accuracy") is not None)
        if pts:
            ax.plot(*zip(*pts), fmt, label=label)
    t = rows["teacher"]
    ax.plot([t["measured_ms"]], [100 * t["test_accuracy"]], "k*", markersize=12, label="teacher")
    for b in result["budgets_ms"]:
        ax.axvline(b, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("measured latency (ms)" + (" - EMULATION" if result["emulated"] else ""))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result['task']} on {result['target']}" + (" (EMULATION)" if result["emulated"] else ""))
    ax.legend()
    save_figure(fig, png)


PHASES = {"teacher": phase_teacher, "price": phase_price, "chamnet-journal": phase_chamnet_journal,
          "chamnet-table": phase_chamnet_table, "adapt": phase_adapt, "measure": phase_measure,
          "report": phase_report}


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("phase", choices=list(PHASES))
    ap.add_argument("--task", choices=["fashion-mnist", "digits"], default="fashion-mnist")
    ap.add_argument("--workdir", default=None, help="default: runs/bench_hant (runs/bench_hant_digits with --task digits)")
    ap.add_argument("--target", default="x86")
    ap.add_argument("--tracker", default=None, help="HOST:PORT of the RPC tracker (emulated ARM board)")
    ap.add_argument("--key", default=None)
    ap.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")], default=[0.4, 0.5, 0.65])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chamnet-samples", type=int, default=20)
    ap.add_argument("--no-chamnet", action="store_true")
    args = parse_args(ap, argv)
    if args.tracker:
        host, port = args.tracker.rsplit(":", 1)
        args.tracker = (host, int(port))
    global TASK
    TASK = args.task
    args.workdir = args.workdir or str(REPO / "runs" / ("bench_hant" + _suffix()))
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    _env(args)
    PHASES[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
