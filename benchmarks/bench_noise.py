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
share of networks whose median moved by more than 5 / 10 %, raw and reference-normalised.
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
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="chamtvm-noise-") as tmp:
        tmp = Path(tmp)
        nets, ref = compile_all(a.workdir, a.networks, tmp)
        got = run_child(__file__, {"networks": nets, "reference_lib": ref, "minutes": a.minutes}, tmp, "session",
                        dict(os.environ, TVM_NUM_THREADS=str(a.threads)))
    sessions = old["raw_sessions"] + [{"session": a.session, "started": started, "minutes": a.minutes,
                                       "threads": got["threads"], "rows": got["rows"],
                                       "networks": [{"name": n["name"], "arch": n["arch"]} for n in nets]}]
    result = {"raw_sessions": sessions, **summarise(sessions)}
    write_results(result, a.out)
    for s in result["sessions"]:
        print(f"session {s['session']}: raw spread {s['median_raw_spread_pct']:.1f} %, normalised "
              f"{s['median_normalised_spread_pct']:.1f} %, reference {s['reference_spread_pct']:.1f} %")
    for x in result["across_sessions"]:
        print(f"{x['sessions']}: within 5/10 % raw {x['raw_within_5pct']:.2f}/{x['raw_within_10pct']:.2f}, "
              f"normalised {x['normalised_within_5pct']:.2f}/{x['normalised_within_10pct']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
