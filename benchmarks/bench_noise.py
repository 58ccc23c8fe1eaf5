"""How noisy is this machine's timing, and does a reference kernel timed beside each network
measurement remove the noise? The noise floor of every fidelity figure.

    python benchmarks/bench_noise.py --workdir WD [--minutes 10] [--threads 1] [--session NAME]

WD is a main job's working folder: its last ``--networks`` measured networks and its
schedules are compiled once. One child process (``TVM_NUM_THREADS``) then loops for
``--minutes``: for each network in turn, the reference kernel (``lower.batchnet.reference_func``,
a fixed matmul), the network (``vm.time_evaluator``, as network rows are timed), the reference
again. Each session is appended to ``--out`` (so two sessions an hour apart can be compared:
``--session``); the report gives, per network, the spread of the raw network times over the
session and of the times divided by the reference's (IQR/median), and across sessions the
share of networks whose median moved by more than 5 / 10 %, raw and reference-normalised,
and (``against_job``) the job's own network timings and table sums against each session,
as medians and as fastest-state medians (the noise floor of the fidelity figures).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from common import RESULTS, argument_parser, parse_args, write_results
from common.timing import compile_job_networks, loaded_networks, read_child_request, run_child, write_child_result

from chamtvm.core.metrics import fidelity


def child(request_path: str) -> None:
    import numpy as np
    import tvm

    from chamtvm.lower.batchnet import REFERENCE_ARGS, REFERENCE_SYMBOL
    from chamtvm.measure.timing import random_tensor

    req = read_child_request(request_path)
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    ref_lib = tvm.runtime.load_module(req["reference_lib"])
    ref_args = [random_tensor(a, dev, rng) for a in REFERENCE_ARGS]
    ref = ref_lib.time_evaluator(REFERENCE_SYMBOL, dev, number=1, repeat=7, min_repeat_ms=10)
    nets = [(vm.time_evaluator("main", dev, number=1, repeat=7, min_repeat_ms=50), args)
            for vm, args in loaded_networks(req["networks"], dev, rng)]
    rows = []
    t_end = time.time() + 60 * req["minutes"]
    while time.time() < t_end:
        for i, (timer, args) in enumerate(nets):
            r1 = ref(*ref_args).median * 1e6
            t = timer(*args).median * 1e6
            r2 = ref(*ref_args).median * 1e6
            rows.append({"t": time.time(), "net": i, "net_us": t, "ref_us": [r1, r2]})
    write_child_result(req, {"rows": rows})


def compile_all(workdir: Path, n: int, tmp: Path) -> tuple[list[dict], str]:
    """The job's last ``n`` networks (``compile_job_networks``) and the reference kernel's library."""
    from chamtvm.lower.batchnet import reference_func, REFERENCE_SYMBOL
    from chamtvm.measure.compile import build_kernel_library
    from chamtvm.targets.spec import get_target

    nets = compile_job_networks(workdir, n, tmp)
    ref = build_kernel_library([(REFERENCE_SYMBOL, reference_func())], get_target("x86"), tmp / "ref.so")
    return nets, str(ref)


def summarise(sessions: list[dict]) -> dict:
    import numpy as np

    from chamtvm.core.metrics import iqr_spread_pct

    per_session = []
    for s in sessions:
        rows = s["rows"]
        nets = sorted({r["net"] for r in rows})
        stats = []
        for i in nets:
            raw = [r["net_us"] for r in rows if r["net"] == i]
            norm = [r["net_us"] / (0.5 * sum(r["ref_us"])) for r in rows if r["net"] == i]
            stats.append({"net": i, "samples": len(raw), "median_us": float(np.median(raw)),
                          "median_over_reference": float(np.median(norm)),
                          "raw_spread_pct": iqr_spread_pct(raw), "normalised_spread_pct": iqr_spread_pct(norm),
                          "raw_range_pct": float(100 * np.ptp(raw) / np.median(raw)),
                          "normalised_range_pct": float(100 * np.ptp(norm) / np.median(norm))})
        ref = [x for r in rows for x in r["ref_us"]]
        per_session.append({"session": s["session"], "started": s["started"], "minutes": s["minutes"],
                            "reference_spread_pct": iqr_spread_pct(ref), "reference_median_us": float(np.median(ref)),
                            "median_raw_spread_pct": float(np.median([x["raw_spread_pct"] for x in stats])),
                            "median_normalised_spread_pct": float(np.median([x["normalised_spread_pct"] for x in stats])),
                            "networks": stats})
    across = []
    for a in range(len(per_session)):
        for b in range(a + 1, len(per_session)):
            A, B = per_session[a]["networks"], per_session[b]["networks"]
            raw = fidelity([y["median_us"] for y in B], [x["median_us"] for x in A])
            norm = fidelity([y["median_over_reference"] for y in B], [x["median_over_reference"] for x in A])
            across.append({"sessions": [per_session[a]["session"], per_session[b]["session"]],
                           "raw_moved": raw, "normalised_moved": norm,
                           "raw_within_5pct": raw["within_5pct"], "raw_within_10pct": raw["within_10pct"],
                           "normalised_within_5pct": norm["within_5pct"], "normalised_within_10pct": norm["within_10pct"]})
    return {"sessions": per_session, "across_sessions": across}


def against_job(sessions: list[dict], workdir: Path) -> list[dict]:
    """Per session, the job's own figures for the same networks against the session's:
    the job's network measurement and its table sum (rows of ``<workdir>/luts/x86.jsonl``),
    each as the median of all samples and as the median of the fastest state's samples
    (``measure.timing.fastest_state`` at 5 %), so the noise floor of both statistics is read
    across the hour between the job and the session."""
    import numpy as np

    from chamtvm.measure.timing import fastest_state
    from chamtvm.table.store import LatencyTable

    luts = workdir / "luts"
    if not (luts / "x86.networks.jsonl").exists():
        return []
    table = LatencyTable(luts / "x86.jsonl").load()
    job = {json.dumps(r["arch"], sort_keys=True): r
           for r in LatencyTable(luts / "x86.networks.jsonl").load().rows() if "arch" in r}

    def fast(xs):
        return float(np.median(fastest_state(xs, 0.05)))

    def table_sum(r, stat):
        rows = [(table.get(k), c) for k, c in zip(r["kernel_keys"], r["kernel_counts"])]
        if any(row is None for row, _ in rows):
            return None
        return sum(stat(row.get("runtime_us_samples") or [row["runtime_us_p50"]]) * c for row, c in rows)

    out = []
    for s in sessions:
        per: dict[int, list[float]] = {}
        for x in s["rows"]:
            per.setdefault(x["net"], []).append(x["net_us"])
        pairs = [(job.get(json.dumps(n["arch"], sort_keys=True)), per.get(i))
                 for i, n in enumerate(s.get("networks", []))]
        pairs = [(j, xs) for j, xs in pairs if j is not None and xs]
        if len(pairs) < 3:
            continue
        entry = {"session": s["session"], "networks": len(pairs)}
        for name, stat in (("median", lambda xs: float(np.median(xs))), ("fast_state", fast)):
            sess = [stat(xs) for _, xs in pairs]
            entry[f"job_vs_session_{name}"] = fidelity([stat(j["runtime_us_samples"]) for j, _ in pairs], sess)
            sums = [table_sum(j, stat) for j, _ in pairs]
            ok = [(t, y) for t, y in zip(sums, sess) if t is not None]
            if len(ok) >= 3:
                entry[f"table_sum_vs_session_{name}"] = fidelity([t for t, _ in ok], [y for _, y in ok])
        out.append(entry)
    return out


def main(argv=None) -> int:
    import argparse

    ap = argument_parser(__doc__)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--networks", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--session", default=time.strftime("%H%M"))
    ap.add_argument("--out", type=Path, default=RESULTS / "noise_x86.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = parse_args(ap, argv)
    if a.child:
        child(a.child)
        return 0
    old = json.loads(a.out.read_text()) if a.out.exists() else {"raw_sessions": []}
    if old["raw_sessions"] and "provenance" in old and "provenance" not in old["raw_sessions"][-1]:
        old["raw_sessions"][-1]["provenance"] = old["provenance"]  # the last session's own run, kept
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="chamtvm-noise-") as tmp:
        tmp = Path(tmp)
        nets, ref = compile_all(a.workdir, a.networks, tmp)
        got = run_child(__file__, {"networks": nets, "reference_lib": ref, "minutes": a.minutes}, tmp, "session",
                        dict(os.environ, TVM_NUM_THREADS=str(a.threads)))
    sessions = old["raw_sessions"] + [{"session": a.session, "started": started, "minutes": a.minutes,
                                       "threads": got["threads"], "rows": got["rows"],
                                       "networks": [{"name": n["name"], "arch": n["arch"]} for n in nets]}]
    result = {"raw_sessions": sessions, **summarise(sessions), "against_job": against_job(sessions, a.workdir)}
    write_results(result, a.out)
    for s in result["sessions"]:
        print(f"session {s['session']}: raw spread {s['median_raw_spread_pct']:.1f} %, normalised "
              f"{s['median_normalised_spread_pct']:.1f} %, reference {s['reference_spread_pct']:.1f} %")
    for x in result["across_sessions"]:
        print(f"{x['sessions']}: within 5/10 % raw {x['raw_within_5pct']:.2f}/{x['raw_within_10pct']:.2f}, "
              f"normalised {x['normalised_within_5pct']:.2f}/{x['normalised_within_10pct']:.2f}")
    for x in result["against_job"]:
        for k, f in x.items():
            if isinstance(f, dict):
                print(f"{x['session']} {k}: within 5/10 % {f['within_5pct']:.2f}/{f['within_10pct']:.2f}, "
                      f"MAPE {f['mape_pct']:.2f} %, mean error {f['mean_error_pct']:+.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
