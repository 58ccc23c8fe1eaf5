"""Which TVM thread count gives timings that survive a busy machine: networks timed at 1 and 2
threads, alone and beside a busy process pinned to one core, with TVM's thread binding on
(its default) and off.

    python benchmarks/bench_threads.py --workdir WD [--networks 6] [--rounds 3]

WD is a main job's working folder (its held-out networks and schedules are used). Each
condition runs in its own child process (``TVM_NUM_THREADS``, ``TVM_BIND_THREADS``); the busy
process is a Python loop pinned with ``taskset`` to one core, started by this script (so a
quiet-run record counts it as part of the job, not as other load). Conditions alternate
within every round. Per condition: the median network time, its repeat spread (IQR/median)
and the inflation against the same thread count alone. Writes
benchmarks/results/threads_x86.json."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, argument_parser, parse_args, write_results
from common.timing import compile_job_networks, loaded_networks, read_child_request, run_child, write_child_result

HOG = "import time\nwhile True:\n    pass\n"
CONDITION_TIMEOUT_S = 120


def child(request_path: str) -> None:
    import numpy as np
    import tvm

    req = read_child_request(request_path)
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    out = []
    for vm, args in loaded_networks(req["networks"], dev, rng):
        res = vm.time_evaluator("main", dev, number=1, repeat=15, min_repeat_ms=50)(*args)
        out.append([float(x) * 1e6 for x in res.results])
    write_child_result(req, {"samples_us": out})


def run_condition(nets, tmp: Path, threads: int, bind: bool, hog_cpu: int | None, tag: str) -> dict:
    env = dict(os.environ, TVM_NUM_THREADS=str(threads))
    if not bind:
        env["TVM_BIND_THREADS"] = "0"
    hog = None
    if hog_cpu is not None:
        hog = subprocess.Popen(["taskset", "-c", str(hog_cpu), sys.executable, "-c", HOG])
        time.sleep(0.5)
    try:
        return run_child(__file__, {"networks": nets}, tmp, tag, env, timeout_s=CONDITION_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # 2 bound threads beside a busy core can take minutes per network
        return {"samples_us": None, "timed_out_s": CONDITION_TIMEOUT_S}
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main(argv=None) -> int:
    import argparse

    ap = argument_parser(__doc__)
    ap.add_argument("--workdir", type=str, required=True)
    ap.add_argument("--networks", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "threads_x86.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = parse_args(ap, argv)
    if a.child:
        child(a.child)
        return 0
    import numpy as np

    from chamtvm.core.metrics import iqr_spread_pct

    ncpu = os.cpu_count() or 1
    conditions = [(t, b, h) for t in sorted({1, ncpu}) for b in (True, False) for h in (None, *range(ncpu))]
    with tempfile.TemporaryDirectory(prefix="chamtvm-threads-") as tmp:
        tmp = Path(tmp)
        nets = compile_job_networks(Path(a.workdir), a.networks, tmp)
        raw: dict = {}
        for r in range(a.rounds):
            for t, b, h in conditions:
                tag = f"t{t}-bind{int(b)}-hog{h}"
                res = run_condition(nets, tmp, t, b, h, f"{tag}-r{r}")
                raw.setdefault(tag, []).append(res)
            print(f"round {r + 1}/{a.rounds} done", flush=True)
    table = []
    for t, b, h in conditions:
        tag = f"t{t}-bind{int(b)}-hog{h}"
        alone = f"t{t}-bind{int(b)}-hogNone"
        per_net = []
        if any(res["samples_us"] is None for res in raw[tag]):
            table.append({"condition": tag, "threads": t, "bind_threads": b, "busy_core": h,
                          "timed_out": f"did not finish {len(nets)} networks x 15 repeats in {CONDITION_TIMEOUT_S} s"})
            print(f"{tag:22s} timed out")
            continue
        for i, n in enumerate(nets):
            s = [x for res in raw[tag] for x in res["samples_us"][i]]
            s0 = [x for res in raw[alone] for x in res["samples_us"][i] if res["samples_us"] is not None]
            per_net.append({"network": n["name"], "median_us": float(np.median(s)), "spread_pct": iqr_spread_pct(s),
                            "inflation_vs_alone": float(np.median(s) / np.median(s0))})
        table.append({"condition": tag, "threads": t, "bind_threads": b, "busy_core": h,
                      "runtime_threads": raw[tag][0].get("threads"),
                      "median_spread_pct": float(np.median([p["spread_pct"] for p in per_net])),
                      "median_inflation": float(np.median([p["inflation_vs_alone"] for p in per_net])),
                      "max_inflation": float(np.max([p["inflation_vs_alone"] for p in per_net])),
                      "networks": per_net})
        print(f"{tag:22s} spread {table[-1]['median_spread_pct']:5.1f} %  inflation {table[-1]['median_inflation']:.3f}"
              f" (max {table[-1]['max_inflation']:.3f})")
    write_results({"cpus": ncpu, "rounds": a.rounds, "networks": [{"name": n["name"], "arch": n["arch"]} for n in nets],
                   "conditions": table, "spread": "IQR/median of the 15 repeats x rounds, percent"}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
