"""Wall time of the test tiers on a fresh clone, as CI runs them: the fast tier (everything
not marked ``slow``) and the full suite.

    python benchmarks/bench_test_suite.py [--tier fast|full|both] [--commit REV]
    python benchmarks/bench_test_suite.py --tier fast --compare REV_A,REV_B --repeat 2 --out FILE

Clones the checkout at ``--commit`` (default HEAD, committed work only) into a temporary
folder beside it (so ``../shared`` resolves as in the checkout), then runs in it
``python -m pytest -q -p no:cacheprovider [-m "not slow"] --durations=60 tests`` for each tier
and records pytest's own summary (passed, failed, skipped, seconds) and its slowest items.
The figures are wall times of this machine: run it through ``../shared/tools/quiet-run``, so
the record says whether anything else ran meanwhile. Writes
``benchmarks/results/test_suite_times.json``.

``--compare A,B`` times the tier (one of them) at two commits, each in its own clone,
interleaved ``--repeat`` times (A B A B ...), so a drift of this machine's speed over the run
falls on both alike; it records every run and each commit's median and range.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS, argument_parser, parse_args, write_results

SUMMARY = re.compile(r"^=*\s*(?P<body>\d+ (?:passed|failed|skipped|deselected|error).*?) in (?P<seconds>[0-9.]+)s")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)")
DURATION = re.compile(r"^(?P<s>[0-9.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)")


def parse_pytest(output: str) -> dict:
    """Counts, seconds, the tests that failed and the slowest items from pytest's output."""
    lines = [m for m in (SUMMARY.search(x) for x in output.splitlines()) if m]
    if not lines:
        return {"error": "no pytest summary line", "tail": output[-2000:]}
    last = lines[-1]
    counts = {kind.rstrip("s") if kind.startswith(("error", "warning")) else kind: int(n)
              for n, kind in COUNT.findall(last.group("body"))}
    slowest = [{"seconds": float(m.group("s")), "phase": m.group("phase"), "test": m.group("test")}
               for m in (DURATION.match(x) for x in output.splitlines()) if m]
    failed = sorted({x.split(" ", 2)[1] for x in output.splitlines() if x.startswith(("FAILED ", "ERROR "))})
    return {"counts": counts, "failed_tests": failed, "seconds": float(last.group("seconds")),
            "minutes": round(float(last.group("seconds")) / 60, 1), "slowest": slowest[:60]}


def run_tier(clone: Path, tier: str) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=60", "tests"]
    if tier == "fast":
        cmd[4:4] = ["-m", "not slow"]
    t0 = time.time()
    out = subprocess.run(cmd, cwd=clone, capture_output=True, text=True)
    res = {"command": " ".join(c if " " not in c else f'"{c}"' for c in ["python", *cmd[1:]]),
           "exit_code": out.returncode, "wall_s": round(time.time() - t0, 1),
           **parse_pytest(out.stdout + out.stderr)}
    print(f"{tier}: exit {out.returncode}, {res.get('counts')}, {res.get('seconds')} s", flush=True)
    return res


def clone_at(rev: str) -> tuple[str, Path]:
    """``(full commit, folder)``: a fresh clone of the checkout at ``rev`` beside it."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    clone = Path(tempfile.mkdtemp(prefix=".suite-clone-", dir=REPO.parent))
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=clone, check=True)
    return commit, clone


def compare(revs: list[str], tier: str, repeat: int) -> dict:
    """The tier timed at each commit of ``revs``, interleaved ``repeat`` times."""
    import statistics

    clones = [clone_at(r) for r in revs]
    try:
        runs = []
        for i in range(repeat):
            for rev, (commit, clone) in zip(revs, clones):
                res = run_tier(clone, tier)
                runs.append({"repeat": i, "rev": rev, "commit": commit, **res})
    finally:
        for _c, clone in clones:
            shutil.rmtree(clone, ignore_errors=True)
    per = {}
    for rev, (commit, _clone) in zip(revs, clones):
        secs = [r["seconds"] for r in runs if r["rev"] == rev and "seconds" in r]
        per[rev] = {"commit": commit, "seconds": secs, "median_s": statistics.median(secs) if secs else None,
                    "range_s": [min(secs), max(secs)] if secs else None,
                    "exit_codes": [r["exit_code"] for r in runs if r["rev"] == rev]}
    return {"what": f"wall time of the {tier} tier at {len(revs)} commits, fresh clones, interleaved {repeat} times "
                    "(pytest's own summary line)", "tier": tier, "order": revs, "by_commit": per,
            "runs": [{**r, "slowest": r.get("slowest", [])[:15]} for r in runs]}


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--tier", choices=("fast", "full", "both"), default="both")
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--compare", default=None, help="two commits, comma-separated: time the tier at both, interleaved")
    ap.add_argument("--repeat", type=int, default=2, help="with --compare: runs per commit")
    ap.add_argument("--out", type=Path, default=RESULTS / "test_suite_times.json")
    a = parse_args(ap, argv)
    if a.compare:
        revs = a.compare.split(",")
        if len(revs) != 2 or a.tier == "both" or a.repeat < 1:
            ap.error("--compare takes two commits, one --tier (fast or full) and --repeat >= 1")
        result = compare(revs, a.tier, a.repeat)
        write_results(result, a.out)
        return 0 if all(c == 0 for p in result["by_commit"].values() for c in p["exit_codes"]) else 1
    commit, clone = clone_at(a.commit)
    try:
        tiers = ["fast", "full"] if a.tier == "both" else [a.tier]
        result = {"what": "wall time of the test tiers on a fresh clone (pytest's own summary line)",
                  "suite_commit": commit, "goals_minutes": {"fast": 3, "full": 20},
                  "tiers": {t: run_tier(clone, t) for t in tiers}}
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    write_results(result, a.out)
    return 0 if all(t["exit_code"] == 0 for t in result["tiers"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
