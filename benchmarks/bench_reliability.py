"""What crash safety and input validation cost: a durable table append (lock, tail
repair, fsync), a claim of a batch under the table lock, the line-by-line check of a
MetaSchedule database, and how fast a bad argument is refused by the real CLI.

    python benchmarks/bench_reliability.py [--repeats N]

Prints median and spread (IQR/median, %) and writes benchmarks/results/reliability.json.
Timings on a shared machine are contended: read the provenance block's noise record.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, RESULTS, argument_parser, chamtvm_env, parse_args, write_results

from chamtvm.core.metrics import iqr_spread_pct


def _stats(samples_s, unit_scale=1e3, unit="ms"):
    s = np.asarray(samples_s) * unit_scale
    return {f"median_{unit}": float(np.median(s)), "spread_pct": iqr_spread_pct(list(s)),
            f"samples_{unit}": [round(float(x), 4) for x in s]}


def bench_append(d: Path, n: int) -> dict:
    from chamtvm.table.store import LatencyTable, ok_row

    t = LatencyTable(d / "x86.jsonl")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        t.append([ok_row(f"fp/default/{i}", {"name": "k", "args": [[[1, 8, 32, 32], "float32"]]}, [1.0, 1.1, 0.9], 1)])
        times.append(time.perf_counter() - t0)
    return _stats(times)


def bench_claim(d: Path, n: int) -> dict:
    from chamtvm.table.fill import TableClaims
    from chamtvm.table.store import LatencyTable

    class P:
        def __init__(self, key):
            self.key = key

    t = LatencyTable(d / "x86.jsonl").load()
    claims = TableClaims(t)
    times = []
    for i in range(n):
        batch = [P(f"fp/claim/{i}/{j}") for j in range(48)]
        t0 = time.perf_counter()
        claims.claim(batch, lambda k: k in t)
        claims.release()
        times.append(time.perf_counter() - t0)
    return _stats(times)


def bench_database_check(d: Path, n_records: int, repeats: int) -> dict:
    import tvm
    from tvm import te
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.database import check_database, workload_module

    work = d / "db"
    work.mkdir()
    db = ms.database.JSONDatabase(work_dir=str(work))
    for i in range(n_records):
        a = te.placeholder((8 + i, 16), name="A")
        mod = workload_module(te.create_prim_func([a, te.compute((8 + i, 16), lambda x, y: a[x, y] * 2.0, name="B")]))
        sch = tvm.s_tir.Schedule(mod)
        sch.split(sch.get_loops(sch.get_sblock("B"))[0], [None, 2])
        db.commit_tuning_record(ms.database.TuningRecord(sch.trace, db.commit_workload(mod), [1e-6],
                                                         get_target("x86").tvm()))
    check_database(work)  # warm: imports
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        assert check_database(work)[2] == []
        times.append(time.perf_counter() - t0)
    return {"records": n_records, **_stats(times), "per_record_ms": float(np.median(times)) * 1e3 / n_records}


def bench_cli_refusal(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "chamtvm", "search", "--latency-ms", "-1"], cwd=REPO,
                             capture_output=True, text=True, env=chamtvm_env())
        times.append(time.perf_counter() - t0)
        assert out.returncode == 2 and "Traceback" not in out.stderr
    return _stats(times, 1.0, "s")


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", type=Path, default=RESULTS / "reliability.json")
    args = parse_args(ap, argv)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        res = {
            "what": "cost of crash safety and input validation",
            "table_append_one_row": bench_append(d, args.repeats),
            "claim_and_release_48_kernels": bench_claim(d, args.repeats),
            "metaschedule_database_check": bench_database_check(d, 20, max(5, args.repeats // 3)),
            "cli_refuses_bad_latency_ms": bench_cli_refusal(max(5, args.repeats // 3)),
        }
    for k, v in res.items():
        if isinstance(v, dict):
            med = {kk: vv for kk, vv in v.items() if kk.startswith("median")}
            print(f"{k:<32} {med}  spread {v['spread_pct']:.1f} %")
    write_results(res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
