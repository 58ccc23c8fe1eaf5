"""The TVM hook against the user's own build, measured: does ``LatencyInstrument``, added as
one line to a plain deployment script, price what the user's ``tvm.compile`` produces?

    python benchmarks/bench_hook.py [--models mobilenet_v3_small,mobilenet_v2_x0_5,...]
        [--resolution 128] [--workdir DIR]

For each model (ONNX export of a zoo definition, imported as a user would with
``lower.kernels.from_onnx_file``) and each of two user pipelines:

* ``plain``: ``tvm.compile(mod, target)`` with TVM's own pipeline (no chamtvm passes);
* ``fused``: ``tvm.compile(mod, target, relax_pipeline=relax.get_default_pipeline(target))``,

the build runs inside ``PassContext(instruments=[LatencyInstrument(target, runner=...)])``: the
hook prices the kernels that build ships, measuring into a fresh table (``DIR/luts``) those it
has no row for (the target's protocol: kernels timed inside batch networks at nominal speed).
The same build (plus the reference function, ``measure.compile.with_reference``; ``main``
unchanged) is exported, and once every build is priced they are all timed end to end with
the target's network evaluator, round-robin in its ``rounds`` (as the main job times a batch
of networks). The
report gives per build the hook's price, the measured latency and the error, and the share
within +-10 % / +-5 %. Models default to three of ``chamtvm.zoo.real``; the first family
members run first. Writes ``benchmarks/results/hook_x86.json``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import RESULTS, argument_parser, parse_args, write_results

DEFAULT_MODELS = "mobilenet_v3_small,mobilenet_v2_x0_5,efficientnet_lite_x0_5"


def price_and_build(mod, pipeline_name: str, target, runner, luts: Path, work: Path) -> dict:
    """One user build: the hook's price, and the same build exported (``library``) for timing."""
    import tvm
    from tvm import relax

    from chamtvm.latency.instrument import LatencyInstrument
    from chamtvm.lower.network import network_inputs
    from chamtvm.measure.compile import export, with_reference

    def build(m, instruments=()):
        with tvm.transform.PassContext(opt_level=3, instruments=list(instruments)):
            if pipeline_name == "plain":
                return tvm.compile(m, target.tvm())
            return tvm.compile(m, target.tvm(), relax_pipeline=relax.get_default_pipeline(target.tvm()))

    t0 = time.time()
    inst = LatencyInstrument(target, luts_dir=luts, runner=runner)
    build(mod, [inst])
    if inst.error is not None:
        return {"pipeline": pipeline_name, "error": str(inst.error)}
    rep = inst.report.to_dict()
    priced_s = time.time() - t0
    return {"pipeline": pipeline_name, "hook_ms": rep["latency_ms"],
            "kernels": sum(k["count"] for k in rep["kernels"]), "distinct_kernels": len(rep["kernels"]),
            "measured_now": len(rep.get("measured_now", [])), "complete": rep.get("complete"),
            "schedules": dict(inst.schedules), "warnings": list(inst.warnings), "price_and_fill_s": priced_s,
            "library": export(build(with_reference(mod)), target, work / f"{id(mod)}-{pipeline_name}.so"),
            "inputs": network_inputs(mod, "user")}


def time_in_rounds(builds: list[dict], target, runner) -> None:
    """Every build timed end to end as the target times networks: round-robin over the builds
    in ``network_evaluator.rounds`` rounds, pooled (``measure.timing.pooled_rounds``); adds
    ``measured_ms`` (the median of the pooled samples, as a network row's ``runtime_us_p50``)
    and ``error_pct`` (or ``error``) to each. The libraries are the user's builds, not
    chamtvm's lowering, so ``table.networks.ensure_measured_all`` (which compiles and journals
    its own builds) does not apply; the rounds and the pooling are the same."""
    from chamtvm.core.metrics import iqr_spread_pct
    from chamtvm.measure.timing import pooled_rounds
    from chamtvm.table.store import summarize_samples

    todo = {str(n): b for n, b in enumerate(builds) if "library" in b}
    taken: dict[str, list] = {k: [] for k in todo}
    for _ in range(max(target.network_evaluator.rounds, 1)):
        live = [(k, b["library"], b["inputs"]) for k, b in todo.items() if "error" not in b]
        for res in runner.measure_networks(live, target.network_evaluator):
            if res.ok:
                taken[res.key].append(res)
            else:
                todo[res.key]["error"] = res.error
    for k, b in todo.items():
        del b["library"], b["inputs"]
        if "error" in b:
            continue
        samples, extra = pooled_rounds(taken[k])
        b["measured_ms"] = summarize_samples(samples)["runtime_us_p50"] / 1e3
        b["error_pct"] = 100.0 * (b["hook_ms"] / b["measured_ms"] - 1.0)
        b.update(network_rounds=extra["rounds"], network_round_medians_us=extra["round_medians_us"],
                 network_nominal=extra.get("nominal"), network_other_cores=extra.get("other_cores"),
                 network_spread_pct=iqr_spread_pct(samples))


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--target", default="x86")
    ap.add_argument("--workdir", type=Path, default=None, help="folder for the table (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=RESULTS / "hook_x86.json")
    args = parse_args(ap, argv)

    from chamtvm.core.metrics import fidelity
    from chamtvm.lower.kernels import from_onnx_file
    from chamtvm.measure.local import LocalRunner
    from chamtvm.targets.spec import get_target
    from chamtvm.zoo import real

    target = get_target(args.target)
    runner = LocalRunner(target)
    rows = []
    with tempfile.TemporaryDirectory(prefix="chamtvm-hook-") as tmp:
        work = Path(args.workdir or tmp)
        luts = work / "luts"
        for model in [m for m in args.models.split(",") if m]:
            mod = from_onnx_file(real.export_onnx(model, args.resolution, Path(tmp) / f"{model}.onnx"))
            for pipeline_name in ("plain", "fused"):
                rows.append({"model": model, "resolution": args.resolution,
                             **price_and_build(mod, pipeline_name, target, runner, luts, Path(tmp))})
                print(model, pipeline_name, "priced:", rows[-1].get("hook_ms", rows[-1].get("error")), flush=True)
        time_in_rounds(rows, target, runner)
        for row in rows:
            print(row["model"], row["pipeline"], {k: row.get(k) for k in ("hook_ms", "measured_ms", "error_pct", "error")})
    ok = [r for r in rows if "measured_ms" in r]
    result = {"target": args.target, "models": args.models.split(","), "builds": rows,
              "fidelity": fidelity([r["hook_ms"] for r in ok], [r["measured_ms"] for r in ok]) if ok else None,
              "by_pipeline": {p: fidelity([r["hook_ms"] for r in ok if r["pipeline"] == p],
                                          [r["measured_ms"] for r in ok if r["pipeline"] == p])
                              for p in ("plain", "fused") if any(r["pipeline"] == p for r in ok)}}
    write_results(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
