"""How much of a deployed network's run is not its kernels: the Relax VM's own share.

The issue that asked for "fewer kernel launches and builtins per run where the VM overhead
shows" needs first the size of that overhead on the libraries we ship. For every TVM library
of one kind (``--kind``, default ``tvm_tuned``: after ``tune-model``) in the manifests of
``bench_deployed.py prepare`` runs, a fresh process (``TVM_NUM_THREADS=--threads``) runs
``chamtvm.measure.insitu.time_calls``: plain runs of ``main`` alternate with runs under the
VM instrument, which times every call (kernels and ``vm.builtin.*``) and estimates its own
share of each window from the builtins that do almost no work. Per network:

  e2e_us          median plain run of ``main`` (one Python call), microseconds
  kernels_us      the kernels' windows summed, the instrument's share removed
  outside_us      e2e_us - kernels_us: builtins, the VM's dispatch of every instruction and
                  the Python call; the most that fewer builtins and launches could save
  builtins_us     the builtins' windows summed, the instrument's share removed
  calls           kernel calls and builtin calls per run, builtin calls by name

Every network is timed in ``--rounds`` rounds, a new process each time, networks in a
rotating order; figures are medians over rounds (the spread: IQR/median of the round values).

    ../shared/tools/quiet-run --record runs/quiet_records.jsonl -- python benchmarks/bench_vm_overhead.py \\
        --manifests runs/bench-deployed-r15/manifest.json runs/bench-deployed-r14/manifest.json [--rounds 3]

Writes ``benchmarks/results/vm_overhead_<target>.json`` (``--results-name``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path

from common import REPO, RESULTS, argument_parser, parse_args, utc_now, write_results
from common.timing import read_child_request, run_child, write_child_result

FIELDS = ("e2e_us", "kernels_us", "outside_us", "builtins_us")


def child(request_path: str) -> None:
    """In a fresh process: one library timed call by call (``time_calls``)."""
    import numpy as np
    import tvm
    from tvm import relax

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.insitu import BUILTIN_PREFIX, time_calls
    from chamtvm.measure.timing import random_tensor

    req = read_child_request(request_path)
    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(req["lib"]), dev)
    rng = np.random.default_rng(0)
    args = [random_tensor(ArgSpec(tuple(s), t), dev, rng) for s, t in req["inputs"]]
    ct = time_calls(vm, args, runs=req["runs"], warmup=5)
    kernels = [max(w - ct.overhead_us, 0.0) for s, w in zip(ct.symbols, ct.window_us) if not s.startswith(BUILTIN_PREFIX)]
    builtins = [(s, max(w - ct.overhead_us, 0.0)) for s, w in zip(ct.symbols, ct.window_us) if s.startswith(BUILTIN_PREFIX)]
    write_child_result(req, {
        "e2e_us": ct.e2e_plain_us, "e2e_instrumented_us": ct.e2e_instrumented_us, "instrument_overhead_us": ct.overhead_us,
        "kernels_us": sum(kernels), "outside_us": ct.e2e_plain_us - sum(kernels), "builtins_us": sum(w for _, w in builtins),
        "kernel_calls": len(kernels), "builtin_calls": len(builtins),
        "builtins_by_name": dict(Counter(s for s, _ in builtins))})


def libraries(manifests: list[Path], kind: str) -> dict[str, dict]:
    """name -> {"lib", "inputs", "manifest"}: every network of ``manifests`` with a ``kind`` library
    (a name already taken by an earlier manifest is kept from that one)."""
    out: dict[str, dict] = {}
    for m in manifests:
        nets = json.loads(Path(m).read_text())["networks"]
        for name, e in nets.items():
            lib = e.get("libs", {}).get(kind)
            if lib and name not in out:
                path = Path(lib) if Path(lib).is_absolute() else REPO / lib
                if not path.exists():
                    raise SystemExit(f"{m}: library {lib} of {name} is missing (run bench_deployed.py prepare again)")
                out[name] = {"lib": str(path), "inputs": e["inputs"], "manifest": str(m)}
    if not out:
        raise SystemExit(f"no {kind} library in {', '.join(map(str, manifests))}")
    return out


def summarise(rounds: dict[str, list[dict]]) -> dict[str, dict]:
    """Per network: the medians of ``FIELDS`` over rounds, their spread, the share outside the
    kernels and the call counts (the same in every round)."""
    from chamtvm.core.metrics import iqr_spread_pct

    out = {}
    for name, rs in rounds.items():
        row = {f: statistics.median(r[f] for r in rs) for f in FIELDS}
        row.update({f"{f}_spread_pct": float(iqr_spread_pct([r[f] for r in rs])) if len(rs) > 1 else 0.0
                    for f in ("e2e_us", "outside_us")})
        row["outside_pct"] = 100.0 * row["outside_us"] / row["e2e_us"]
        row["builtins_pct"] = 100.0 * row["builtins_us"] / row["e2e_us"]
        row.update({k: rs[0][k] for k in ("kernel_calls", "builtin_calls", "builtins_by_name", "threads")})
        row["rounds"] = len(rs)
        out[name] = row
    return out


def plot(summary: dict[str, dict], path_png: Path, title: str) -> None:
    from common import pyplot, save_figure

    plt = pyplot()
    names = list(summary)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    kern = [summary[n]["kernels_us"] / 1e3 for n in names]
    outside = [summary[n]["outside_us"] / 1e3 for n in names]
    ax.barh(names, kern, label="kernels")
    ax.barh(names, outside, left=kern, label="outside the kernels (VM, builtins)")
    for i, n in enumerate(names):
        ax.text(kern[i] + outside[i], i, f" {summary[n]['outside_pct']:.1f} %", va="center", fontsize=8)
    ax.set_xlabel("ms per run (median over rounds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path_png)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--manifests", nargs="+", type=Path, default=[])
    ap.add_argument("--kind", default="tvm_tuned", help="which library of each network (tvm_default, tvm_main, tvm_tuned)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=50, help="instrumented and plain runs per process")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--results-name", default=None)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)  # run_child's convention, unused here
    args = parse_args(ap, argv)
    if args.child:  # (its noise monitor samples /proc twice a second, on the other core)
        child(args.child)
        return 0
    if not args.manifests:
        ap.error("--manifests: at least one bench_deployed.py manifest")
    libs = libraries(args.manifests, args.kind)
    env = {**os.environ, "TVM_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": "1"}
    got: dict[str, list[dict]] = {n: [] for n in libs}
    names = list(libs)
    with tempfile.TemporaryDirectory(prefix="chamtvm-vm-overhead-") as tmp:
        for r in range(args.rounds):
            for i, name in enumerate(names[r % len(names):] + names[:r % len(names)]):
                res = run_child(__file__, {**libs[name], "runs": args.runs}, Path(tmp), f"{r}-{i}", env)
                got[name].append(res)
                print(f"round {r} {name:32s} run {res['e2e_us']:9.1f} us, outside the kernels "
                      f"{res['outside_us']:7.1f} us ({100 * res['outside_us'] / res['e2e_us']:.1f} %)", flush=True)
    summary = summarise(got)
    name = args.results_name or f"vm_overhead_{args.target}"
    result = {"what": "share of a deployed network's run outside its kernels (Relax VM, builtins, the Python call)",
              "target": args.target, "kind": args.kind, "threads": args.threads, "runs": args.runs,
              "rounds": args.rounds, "measured_at": utc_now(),
              "libraries": {n: {k: v for k, v in e.items() if k != "inputs"} for n, e in libs.items()},
              "networks": summary, "raw_rounds": got}
    write_results(result, RESULTS / f"{name}.json",
                  figure=lambda _out, png: plot(summary, png, f"{args.kind} libraries, {args.threads} thread(s), {args.target}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
