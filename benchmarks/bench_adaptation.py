"""Evidence that the search adapts: searched networks vs MobileNetV2 width x resolution
baselines at equal *measured* latency, per target.

Per target (``x86`` locally; ``arm`` through a TVM RPC tracker, on the emulated board the
figures are EMULATION timings, labelled "emulated arm" everywhere):

1. every baseline of ``chamtvm.baselines.baseline_family(fashion)`` is compiled and
   measured end to end (one round, only to place the latency budgets);
2. three budgets are the measured latencies of baselines spread over the range the space
   can reach; ``python -m chamtvm search --latency-ms B --no-measure`` picks a network for
   each (the CLI, so the experiment runs whatever the search currently is);
3. picks and baselines are measured together in ``--rounds`` interleaved rounds (the
   same run, so a busy machine slows both alike); latency = median over all samples,
   spread = the range of the per-round medians;
4. every pick and baseline is trained with an evaluation protocol stronger than the
   search's 3-epoch proxy, ``--seeds`` seeds each (journal ``runs/adaptation/``, so an
   interrupted run resumes); the protocol is chosen by a small study (seed noise vs
   architecture spread of the search's proxy and of the evaluation protocol);
5. table: pick vs the most accurate baseline whose measured latency is at most the
   pick's (+5 %); plot: accuracy vs measured latency, one panel per target;
6. x86 vs arm: both targets' picks side by side, and the measured kernel costs per
   operator kind of both tables (``luts/x86.jsonl``, ``luts/arm.jsonl``) that explain them.

    python benchmarks/bench_adaptation.py [--quick] [--tracker HOST:PORT --key arm]

Measurements are cached per target in ``runs/adaptation/measure-<target>.json``
(``--remeasure`` redoes them). Writes ``benchmarks/results/adaptation.json`` and
``adaptation.png`` (``--out-prefix`` changes both).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common import REPO, RESULTS, RUNS, argument_parser, parse_args, pyplot, run_chamtvm, save_figure, shown_path, write_results

from chamtvm.core.metrics import iqr_spread_pct

warnings.filterwarnings("ignore")

from chamtvm.space.baselines import baseline_family  # noqa: E402
from chamtvm.space.schema import Arch, SearchSpace  # noqa: E402

WORK = RUNS / "adaptation"
SLACK = 1.05  # a baseline "matches" a pick when its measured latency <= pick * SLACK


def target_label(name: str, emulated: bool) -> str:
    return f"emulated {name} (QEMU; emulation timings, not device figures)" if emulated else name


# ------------------------------------------------------------------ measurement
def open_runner(target, tracker: str | None, key: str | None):
    if target.local:
        from chamtvm.measure.local import LocalRunner

        return LocalRunner(target)
    from chamtvm.measure.rpc import RPCRunner

    from chamtvm.core.hostport import parse_hostport

    host, port = parse_hostport(tracker, "--tracker")
    return RPCRunner(target, host, port, key or target.rpc_key)


def measure_round_robin(nets: dict[str, tuple[SearchSpace, Arch]], target, runner, rounds: int) -> dict:
    """Compile every network once, then time all of them ``rounds`` times, interleaved.

    Returns name -> {latency_ms (median of all samples), round_medians_ms, spread_pct (IQR/median
    of all samples, %, ``core.metrics.iqr_spread_pct``), round_range_pct (range of the round
    medians / latency, %), samples_us} or {error}.
    """
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.lower.network import lower_arch
    from chamtvm.tuning.schedules import ScheduleSource

    sched = ScheduleSource(target)
    out, libs = {}, {}
    with tempfile.TemporaryDirectory(prefix="chamtvm-adapt-") as tmp:
        for i, (name, (space, arch)) in enumerate(nets.items()):
            try:
                net = lower_arch(space, arch, name)
                ex = compile_network(net.fused, target, sched)
                libs[name] = (export(ex, target, Path(tmp) / f"net{i}.so"), net.inputs)
            except Exception as e:  # one bad network never stops the batch
                out[name] = {"error": f"compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        samples: dict[str, list[list[float]]] = {n: [] for n in libs}
        for r in range(rounds):
            for name, (lib, inputs) in libs.items():
                res = runner.measure_network(lib, inputs, target.network_evaluator, key=name)
                if res.ok:
                    samples[name].append(list(res.samples_us))
                else:
                    out.setdefault(name, {"error": res.error})
            print(f"  [{target.name}] round {r + 1}/{rounds} measured {len(libs)} networks", flush=True)
    for name, rs in samples.items():
        if not rs or name in out:
            continue
        allv = np.concatenate(rs)
        med = float(np.median(allv)) / 1e3
        rmed = [float(np.median(x)) / 1e3 for x in rs]
        out[name] = {"latency_ms": med, "round_medians_ms": rmed,
                     "spread_pct": iqr_spread_pct(allv),
                     "round_range_pct": float(100 * (max(rmed) - min(rmed)) / med),
                     "samples_us": [round(float(v), 2) for v in allv]}
    return out


# ----------------------------------------------------------------------- search
def run_search(target: str, space: str, budget_ms: float, tracker, key) -> dict:
    """``python -m chamtvm search ... --json --no-measure``; the parsed report or {error}."""
    out = WORK / f"search-{target}-{budget_ms:.4f}"
    cmd = ["search", "--target", target, "--space", space, "--latency-ms", f"{budget_ms:.4f}", "--no-measure",
           "--out", str(out)]
    if tracker:
        cmd += ["--tracker", tracker, "--key", key or target]
    proc = run_chamtvm(cmd, ok_codes=None, json_output=True)
    if proc["exit"] != 0:
        return {"error": (proc["stderr"].strip().splitlines() or ["(no message)"])[-1], "rc": proc["exit"]}
    return proc["json"]


def fastest_reachable_ms(target: str, space: str, tracker, key) -> float | None:
    """The search's fastest reachable latency (ms), from its refusal of a tiny budget."""
    res = run_search(target, space, 1e-4, tracker, key)
    m = re.search(r"takes ([0-9.]+) ms", res.get("error", ""))
    return float(m.group(1)) if m else None


def choose_budgets(baseline_lat: dict[str, float], floor_ms: float | None, n: int,
                   span: float = 0.6) -> list[float]:
    """``n`` measured baseline latencies (ms) to use as budgets: the baselines at evenly
    spaced quantiles of the lower ``span`` of those the space can reach (above
    ``floor_ms``); the lower part keeps the training of the picks affordable."""
    lats = sorted(v for v in baseline_lat.values() if floor_ms is None or v >= floor_ms * 1.02)
    if not lats:
        lats = sorted(baseline_lat.values())[-1:]
    qs = [span * (2 * i + 1) / (2 * n) for i in range(n)]
    return sorted({lats[min(len(lats) - 1, int(q * len(lats)))] for q in qs})


def target_phase(tname: str, args, fam, base_space) -> dict:
    """Measure baselines, search at 3 budgets, measure picks + baselines together (cached)."""
    from chamtvm.targets.spec import get_target

    cache = WORK / f"measure-{tname}{'-quick' if args.quick else ''}.json"
    if cache.exists() and not args.remeasure:
        print(f"[{tname}] measurements read from {shown_path(cache)} (--remeasure redoes them)")
        return json.loads(cache.read_text())
    target = get_target(tname)
    runner = open_runner(target, args.tracker, args.key)
    t0 = time.time()
    with runner:
        nets = {b.name: (b.space, b.arch) for b in fam}
        print(f"[{tname}] placing budgets: {len(nets)} baselines, 1 round")
        first = measure_round_robin(nets, target, runner, 1)
        lat = {n: r["latency_ms"] for n, r in first.items() if "latency_ms" in r}
        floor = fastest_reachable_ms(tname, base_space.name, args.tracker, args.key)
        budgets = choose_budgets(lat, floor, args.budgets)
        print(f"[{tname}] search floor {floor} ms; budgets (ms) {[round(b, 4) for b in budgets]}")
        picks = []
        for b in budgets:
            rep = run_search(tname, base_space.name, b, args.tracker, args.key)
            if "error" in rep:
                print(f"[{tname}] search at {b:.4f} ms refused: {rep['error']}")
                picks.append({"budget_ms": b, "error": rep["error"]})
                continue
            best = rep["best"]
            picks.append({"name": f"pick-{tname}-{b:.4f}ms", "budget_ms": b,
                          "architecture": best["architecture"],
                          "predicted_latency_ms": best.get("predicted_latency_ms"),
                          "predicted_accuracy_proxy": best.get("predicted_accuracy")})
        both = dict(nets)
        for p in picks:
            if "architecture" in p:
                both[p["name"]] = (base_space, Arch.from_dict(p["architecture"]))
        print(f"[{tname}] measuring {len(both)} networks (picks + baselines), {args.rounds} rounds")
        joint = measure_round_robin(both, target, runner, args.rounds)
        emulated = bool(getattr(runner, "emulated", False))
        label = getattr(runner, "label", target.name)
    res = {"target": tname, "emulated": emulated, "label": target_label(tname, emulated),
           "device": label if isinstance(label, str) else str(label),
           "search_floor_ms": floor, "budgets_ms": budgets, "picks": picks,
           "placement_round": {n: r.get("latency_ms") for n, r in first.items()},
           "measured": joint, "rounds": args.rounds, "seconds": round(time.time() - t0, 1)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(res, indent=1))
    return res


# --------------------------------------------------------------------- training
def protocols(quick: bool) -> dict[str, dict]:
    """The search's proxy and the evaluation protocol (ProxyTaskTrainer arguments)."""
    if quick:
        return {"proxy": {"train_size": 1000, "epochs": 2, "eval_size": 1000},
                "eval": {"train_size": 2000, "epochs": 2, "eval_size": 2000}}
    # eval: twice the images and the whole 10k test set (the old proxy's 2k images alone
    # add ~0.8 points of binomial noise at 85 % accuracy); 3 epochs keep it near 60 s.
    # Since this study the built-in task's default is the eval protocol; "proxy" is the
    # former default, kept for the comparison.
    return {"proxy": {"train_size": 5000, "epochs": 3, "eval_size": 2000},
            "eval": {"train_size": 10000, "epochs": 3, "eval_size": 10000}}


def train(jobs: list[tuple[str, SearchSpace, Arch]], proto_name: str, proto: dict, seeds: int,
          deadline: float | None) -> dict:
    """Train each job with ``seeds`` seeds (journaled); name -> {accuracies, seconds} or
    {not_trained: why}. Stops starting new networks after ``deadline`` (time.time())."""
    from chamtvm.accuracy.journal import Journal
    from chamtvm.accuracy.trainer import ProxyTaskTrainer, train_archs

    trainer = ProxyTaskTrainer("fashion-mnist", **proto)
    tag = f"{proto['train_size']}x{proto['epochs']}-e{proto['eval_size']}"
    journal = Journal(WORK / f"eval-{tag}.jsonl")
    out = {}
    for name, space, arch in jobs:
        if name in out:
            continue
        rs = []
        for s in range(seeds):
            cached = train_archs(space, [arch], _CacheOnly(trainer), journal, seed=s, progress=False)[0]
            if cached.accuracy is None and deadline is not None and time.time() > deadline:
                break
            rs.append(cached if cached.accuracy is not None else
                      train_archs(space, [arch], trainer, journal, seed=s, progress=False)[0])
        accs = [r.accuracy for r in rs if r.accuracy is not None]
        if len(accs) < seeds:
            out[name] = {"not_trained": "time budget (--train-minutes) reached", "accuracies": accs}
            continue
        out[name] = {"accuracies": accs, "mean": float(np.mean(accs)),
                     "half_range": float((max(accs) - min(accs)) / 2),
                     "seconds": [r.seconds for r in rs]}
        print(f"  [{proto_name}] {name}: {100 * out[name]['mean']:.2f} ± "
              f"{100 * out[name]['half_range']:.2f} % ({seeds} seeds, "
              f"{np.mean(out[name]['seconds']):.0f} s per training)", flush=True)
    return out


class _CacheOnly:
    """A trainer stand-in that fails every job: ``train_archs`` with it reads the journal
    only (so the time budget can be checked before a real training starts)."""

    def __init__(self, trainer):
        self.task, self.epochs, self.protocol = trainer.task, trainer.epochs, trainer.protocol

    def train(self, space, arch, seed):
        raise RuntimeError("not in the journal")


def noise_study(acc: dict) -> dict:
    """Seed noise (pooled sd over networks, points) vs architecture spread (sd of the
    networks' means, points) of one protocol."""
    ok = [v for v in acc.values() if "mean" in v]
    if len(ok) < 2:
        return {"networks": len(ok)}
    seed_sd = float(np.sqrt(np.mean([np.var(v["accuracies"], ddof=1) for v in ok]))) * 100
    arch_sd = float(np.std([v["mean"] for v in ok], ddof=1)) * 100
    secs = [s for v in ok for s in v["seconds"] if s is not None]
    return {"networks": len(ok), "seed_sd_points": seed_sd, "arch_sd_points": arch_sd,
            "arch_over_seed": arch_sd / seed_sd if seed_sd > 0 else None,
            "seconds_per_training_median": float(np.median(secs)) if secs else None}


# ----------------------------------------------------------------------- report
def compare(tres: dict, acc: dict) -> list[dict]:
    """Per budget: the pick vs the most accurate trained baseline with latency <= pick * SLACK."""
    rows = []
    meas = tres["measured"]
    base = {n: m for n, m in meas.items() if n.startswith("mbv2-") and "latency_ms" in m}
    for p in tres["picks"]:
        if "name" not in p or "latency_ms" not in meas.get(p["name"], {}):
            rows.append({"budget_ms": p["budget_ms"], "error": p.get("error") or meas.get(p.get("name"), {}).get("error")})
            continue
        pl = meas[p["name"]]["latency_ms"]
        pa = acc.get(p["name"], {})
        cands = [(acc[n]["mean"], n) for n, m in base.items()
                 if m["latency_ms"] <= pl * SLACK and "mean" in acc.get(n, {})]
        row = {"budget_ms": p["budget_ms"], "pick": p["name"], "pick_latency_ms": pl,
               "pick_latency_spread_pct": meas[p["name"]]["spread_pct"],
               "pick_accuracy": pa.get("mean"), "pick_accuracy_half_range": pa.get("half_range"),
               "pick_accuracies": pa.get("accuracies")}
        if cands:
            ba, bn = max(cands)
            row.update({"baseline": bn, "baseline_latency_ms": base[bn]["latency_ms"],
                        "baseline_latency_spread_pct": base[bn]["spread_pct"],
                        "baseline_accuracy": ba, "baseline_accuracy_half_range": acc[bn]["half_range"],
                        "baseline_accuracies": acc[bn]["accuracies"]})
            if pa.get("mean") is not None:
                row["delta_points"] = 100 * (pa["mean"] - ba)
        else:
            row["baseline"] = None
        rows.append(row)
    return rows


def print_table(label: str, rows: list[dict]) -> None:
    print(f"\n== {label}: pick vs best baseline at <= pick's measured latency (+{100 * (SLACK - 1):.0f} %) ==")
    print(f"{'budget ms':>9}  {'pick ms':>13}  {'pick acc %':>13}  {'baseline':<16}{'base ms':>13}  {'base acc %':>13}  {'delta':>6}")

    def pm(v, s, scale=100):
        return "n/a" if v is None else f"{scale * v:.2f}±{scale * s:.2f}"

    for r in rows:
        if "error" in r:
            print(f"{r['budget_ms']:9.4f}  error: {r['error']}")
            continue
        lat = f"{r['pick_latency_ms']:.4f}±{r['pick_latency_spread_pct']:.0f}%"
        if r.get("baseline"):
            blat = f"{r['baseline_latency_ms']:.4f}±{r['baseline_latency_spread_pct']:.0f}%"
            bacc = pm(r["baseline_accuracy"], r["baseline_accuracy_half_range"])
            d = f"{r['delta_points']:+.2f}" if r.get("delta_points") is not None else "n/a"
        else:
            blat, bacc, d = "-", "-", "-"
        print(f"{r['budget_ms']:9.4f}  {lat:>13}  {pm(r['pick_accuracy'], r['pick_accuracy_half_range'] or 0):>13}  "
              f"{str(r.get('baseline') or 'none faster'):<16}{blat:>13}  {bacc:>13}  {d:>6}")


# --------------------------------------------------------- x86 vs arm: why
def kernel_kind(row: dict) -> str | None:
    """Operator kind of a table row from its argument shapes: ``dw3``/``dw5``/... for
    depthwise convolutions, ``pw`` for 1x1 convolutions, ``conv3`` for dense kxk, else None."""
    args = row.get("args") or []
    if len(args) < 2 or len(args[0][0]) != 4 or len(args[1][0]) != 4 or "conv2d" not in row.get("name", ""):
        return None
    (_, c, _, _), (o, ig, kh, kw) = args[0][0], args[1][0]
    if ig == 1 and o == c and c > 1:
        return f"dw{kh}"
    if kh == 1 and kw == 1:
        return "pw"
    return f"conv{kh}"


def kernel_costs(tables: dict[str, object]) -> dict:
    """Measured cost per operator kind on each target, from kernels both tables hold
    (same structural hash, default schedule): median ns per FLOP and the median arm/x86
    time ratio per kind; and the dw5/dw3 time ratio on same-shape pairs."""
    rows = {}
    for t, table in tables.items():
        for r in table.rows():
            if r.get("status") == "ok" and r.get("schedule") == "default" and r.get("flops"):
                rows.setdefault(t, {})[r["struct_hash"]] = r
    if len(rows) < 2:
        return {}
    ta, tb = list(rows)
    common = set(rows[ta]) & set(rows[tb])
    out = {"targets": [ta, tb], "common_kernels": len(common), "kinds": {}}
    for h in common:
        kind = kernel_kind(rows[ta][h])
        if kind is None:
            continue
        k = out["kinds"].setdefault(kind, {"n": 0, f"ns_per_flop_{ta}": [], f"ns_per_flop_{tb}": [], "ratio": []})
        k["n"] += 1
        for t in (ta, tb):
            k[f"ns_per_flop_{t}"].append(rows[t][h]["runtime_us_p50"] * 1e3 / rows[t][h]["flops"])
        k["ratio"].append(rows[tb][h]["runtime_us_p50"] / rows[ta][h]["runtime_us_p50"])
    for kind, k in out["kinds"].items():
        for f in list(k):
            if isinstance(k[f], list):
                k[f] = float(np.median(k[f]))
        k[f"{tb}_over_{ta}_time"] = k.pop("ratio")
    # dw5 vs dw3 at the same input shape and stride, per target
    for t in (ta, tb):
        by_shape = {}
        for h in common:
            r = rows[t][h]
            kind = kernel_kind(r)
            if kind in ("dw3", "dw5"):
                key = (tuple(r["args"][0][0]), tuple(r["args"][-1][0]))
                by_shape.setdefault(key, {})[kind] = r["runtime_us_p50"]
        ratios = [v["dw5"] / v["dw3"] for v in by_shape.values() if len(v) == 2]
        out[f"dw5_over_dw3_{t}"] = {"median": float(np.median(ratios)) if ratios else None, "pairs": len(ratios)}
    # depthwise vs pointwise per FLOP, per target: how much a FLOP in a depthwise conv costs
    for t in (ta, tb):
        dw = [out["kinds"][k][f"ns_per_flop_{t}"] for k in ("dw3", "dw5") if k in out["kinds"]]
        pw = out["kinds"].get("pw", {}).get(f"ns_per_flop_{t}")
        out[f"dw_over_pw_per_flop_{t}"] = float(np.mean(dw) / pw) if dw and pw else None
    return out


def describe_arch(a: dict) -> str:
    st = a["stages"]
    return (f"r{a['resolution']} stem{a['stem_channels']} head{a['head_channels']} | "
            + " ".join(f"{s['channels']}x{s['blocks']}e{s['expansion']}k{s['kernel']}" for s in st))


def arch_traits(a: dict) -> dict:
    st = a["stages"][1:]
    return {"blocks": sum(s["blocks"] for s in a["stages"]),
            "k5_stages": sum(s["kernel"] == 5 for s in st),
            "e6_stages": sum(s["expansion"] == 6 for s in st),
            "channels_sum": sum(s["channels"] for s in a["stages"])}


# ------------------------------------------------------------------------- plot
def plot(results: dict, acc: dict, fam, path: Path) -> None:
    plt = pyplot()
    ts = list(results)
    fig, axes = plt.subplots(1, len(ts), figsize=(6.5 * len(ts), 4.8), squeeze=False)
    for ax, t in zip(axes[0], ts):
        res = results[t]
        meas = res["measured"]
        for r in sorted({b.resolution for b in fam}):
            pts = [(meas[b.name]["latency_ms"], 100 * acc[b.name]["mean"], b.width) for b in fam
                   if b.resolution == r and "latency_ms" in meas.get(b.name, {}) and "mean" in acc.get(b.name, {})]
            pts.sort()
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=4, label=f"MobileNetV2 r{r} (w {pts[0][2]:g}-{pts[-1][2]:g})")
        for p in res["picks"]:
            n = p.get("name")
            if n and "latency_ms" in meas.get(n, {}) and "mean" in acc.get(n, {}):
                a = acc[n]
                ax.errorbar(meas[n]["latency_ms"], 100 * a["mean"], yerr=100 * a["half_range"], fmt="*",
                            ms=15, color="crimson", mec="k", capsize=3,
                            label="search picks" if p is res["picks"][0] else None)
                ax.axvline(p["budget_ms"], color="crimson", lw=0.6, ls=":")
        unit = "measured latency (ms, QEMU emulation)" if res["emulated"] else "measured latency (ms)"
        ax.set_xlabel(unit)
        ax.set_ylabel("accuracy (%), evaluation protocol, mean ± half range")
        ax.set_title(res["label"] if res["emulated"] else f"{t} (local CPU)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)


# ------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 baselines, 1 budget, tiny trainings")
    ap.add_argument("--targets", default="x86,arm")
    ap.add_argument("--space", default="fashion")
    ap.add_argument("--tracker", default=None, help="HOST:PORT of the TVM RPC tracker (arm)")
    ap.add_argument("--key", default=None, help="RPC key of the arm devices (default: arm)")
    ap.add_argument("--widths", default="0.5,0.75,1.0,1.25,1.5")
    ap.add_argument("--resolutions", default=None, help="px, default: the family's (fashion: 20,24,28,32)")
    ap.add_argument("--budgets", type=int, default=3, help="latency budgets per target")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--study", type=int, default=4, help="networks of the protocol study")
    ap.add_argument("--train-minutes", type=float, default=None,
                    help="stop starting new trainings after this long (default: train everything)")
    ap.add_argument("--no-train", action="store_true", help="measure and search only")
    ap.add_argument("--remeasure", action="store_true", help="ignore cached measurements")
    ap.add_argument("--out-prefix", type=Path, default=RESULTS / "adaptation")
    args = parse_args(ap, argv)
    t_start = time.time()
    deadline = t_start + 60 * args.train_minutes if args.train_minutes else None

    base_space = SearchSpace.load(args.space)
    widths = [float(w) for w in args.widths.split(",")]
    resolutions = [int(r) for r in args.resolutions.split(",")] if args.resolutions else None
    if args.quick:
        widths, resolutions = [0.5, 1.0], [20, 28]
        args.budgets, args.rounds, args.seeds, args.study = 1, 2, 2, 2
    fam = baseline_family(base_space, widths, resolutions)
    WORK.mkdir(parents=True, exist_ok=True)

    targets = []
    for t in args.targets.split(","):
        if t != "x86" and not args.tracker:
            print(f"[{t}] skipped: no --tracker HOST:PORT given (start one with `python -m chamtvm "
                  f"device emulate-arm --start-tracker --tracker 127.0.0.1:9290 --key arm`)")
            continue
        targets.append(t)
    results = {t: target_phase(t, args, fam, base_space) for t in targets}

    # ---- training: protocol study first, then picks, then baselines by latency
    protos = protocols(args.quick)
    jobs = []
    for t in targets:
        for p in results[t]["picks"]:
            if "architecture" in p:
                jobs.append((p["name"], base_space, Arch.from_dict(p["architecture"])))
    meas0 = results[targets[0]]["measured"] if targets else {}
    fam_sorted = sorted(fam, key=lambda b: meas0.get(b.name, {}).get("latency_ms", 1e9))
    jobs += [(b.name, b.space, b.arch) for b in fam_sorted]
    # study: picks of the first target interleaved with the baseline nearest each in latency
    study_jobs = []
    for name, space, arch in jobs:
        if name.startswith("pick-") and targets and name in meas0 and "latency_ms" in meas0[name]:
            pl = meas0[name]["latency_ms"]
            near = min(fam, key=lambda b: abs(meas0.get(b.name, {}).get("latency_ms", 1e9) - pl))
            study_jobs += [(name, space, arch), (near.name, near.space, near.arch)]
    study_jobs = study_jobs[:args.study]

    acc, study = {}, {}
    if not args.no_train and jobs:
        print(f"\nprotocol study on {len(study_jobs)} networks x {args.seeds} seeds: "
              + ", ".join(f"{k}={v}" for k, v in protos.items()))
        for pname, proto in protos.items():
            study_acc = train(study_jobs, pname, proto, args.seeds, deadline)
            study[pname] = {"protocol": proto, **noise_study(study_acc),
                            "accuracies": {n: v.get("accuracies") for n, v in study_acc.items()}}
            if pname == "eval":
                acc.update(study_acc)
        print(f"\nevaluation protocol {protos['eval']} on {len(jobs)} networks x {args.seeds} seeds")
        acc.update(train([j for j in jobs if j[0] not in acc], "eval", protos["eval"], args.seeds, deadline))

    # ---- report
    print("\n== protocol study (seed noise vs architecture spread, accuracy points) ==")
    for pname, s in study.items():
        if "seed_sd_points" in s:
            print(f"  {pname:5} {s['protocol']}: seed sd {s['seed_sd_points']:.2f}, arch sd "
                  f"{s['arch_sd_points']:.2f}, ratio {s['arch_over_seed']:.2f}, "
                  f"{s['seconds_per_training_median']:.0f} s per training ({s['networks']} networks)")
    tables = {}
    for t in targets:
        rows = compare(results[t], acc)
        tables[t] = rows
        print_table(results[t]["label"], rows)

    why = {}
    if len(targets) >= 2:
        from chamtvm.table.store import LatencyTable

        luts = {t: LatencyTable.for_target(t, REPO / "luts") for t in targets}
        why = kernel_costs(luts)
        print("\n== x86 vs emulated arm: picks side by side ==")
        by_budget = [[p for p in results[t]["picks"] if "architecture" in p] for t in targets]
        for i in range(max(len(b) for b in by_budget)):
            for t, ps in zip(targets, by_budget):
                if i < len(ps):
                    p = ps[i]
                    lab = "emulated arm" if results[t]["emulated"] else t
                    print(f"  {lab:>12} budget {p['budget_ms']:.4f} ms: {describe_arch(p['architecture'])}  {arch_traits(p['architecture'])}")
        if why:
            ta, tb = why["targets"]
            print(f"\n  measured kernel costs, {why['common_kernels']} kernels in both tables "
                  f"({tb} = {'EMULATED (QEMU) ' if results.get(tb, {}).get('emulated') else ''}timings):")
            for kind, k in sorted(why["kinds"].items()):
                print(f"    {kind:6} n={k['n']:3}  ns/FLOP {ta} {k[f'ns_per_flop_{ta}']:.3f}  {tb} "
                      f"{k[f'ns_per_flop_{tb}']:.3f}  {tb}/{ta} time x{k[f'{tb}_over_{ta}_time']:.1f}")
            for t in (ta, tb):
                d = why[f"dw5_over_dw3_{t}"]
                r = why[f"dw_over_pw_per_flop_{t}"]
                print(f"    {t}: dw5x5 / dw3x3 same shape x{d['median'] or float('nan'):.2f} ({d['pairs']} pairs); "
                      f"a depthwise FLOP costs x{r or float('nan'):.1f} a 1x1-conv FLOP")
        same = [p["architecture"] == by_budget[1][i]["architecture"]
                for i, p in enumerate(by_budget[0][:len(by_budget[1])])]
        why["picks_identical_per_budget_rank"] = same
        print(f"  identical picks per budget rank: {same}")

    out = {
        "what": "search picks vs MobileNetV2 width x resolution baselines at equal measured latency",
        "quick": args.quick, "space": base_space.name, "family_space": fam[0].space.to_dict(),
        "baselines": {b.name: {"width": b.width, "resolution": b.resolution, "architecture": b.arch.to_dict()} for b in fam},
        "latency": "median over all samples of --rounds interleaved rounds; spread_pct = IQR/median of all samples; round_range_pct = range of round medians",
        "accuracy": f"mean over {args.seeds} seeds ± half range, evaluation protocol",
        "protocols": protos, "protocol_study": study,
        "targets": {t: {k: v for k, v in results[t].items() if k != "measured"} |
                    {"measured": {n: {k: v for k, v in m.items() if k != "samples_us"} for n, m in results[t]["measured"].items()}}
                    for t in targets},
        "accuracy_by_network": acc, "comparison": tables, "x86_vs_arm": why,
        "seconds": round(time.time() - t_start, 1),
        "note": "arm figures come from the emulated board (QEMU user mode): emulation timings, not device figures",
    }
    prefix = args.out_prefix if not args.quick else args.out_prefix.with_name(args.out_prefix.name + "_quick")
    figure = (lambda _out, png: plot(results, acc, fam, png)) if targets and acc else None
    write_results(out, Path(f"{prefix}.json"), figure=figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
