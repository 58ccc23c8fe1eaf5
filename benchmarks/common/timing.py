"""Time deployed networks in separate processes, interleaved, with a set thread count.

Shared by the benchmarks that compare deployed libraries (``bench_codegen.py``,
``bench_deployed.py``, ``bench_deployed_arm.py``: an RPC device and an emulated Python
too): ``from common.timing import interleaved, measure``.
``library_rounds`` times measuring builds through chamtvm's own network timing instead
(``bench_prune.py``, ``bench_hant.py``). Each
measurement runs in a fresh Python process (this file run as ``--worker JSON``)
so that TVM, ONNX Runtime and torch never share a process (their thread pools and
allocators skew each other) and so that ``TVM_NUM_THREADS`` takes effect (TVM reads it
once, when its thread pool starts).

A job is a dict:
  {"kind": "tvm",    "lib": PATH, "inputs": [[shape, dtype], ...]}   Relax VM ``main``
  {"kind": "kernel", "lib": PATH, "symbol": S, "args": [[shape, dtype], ...]}
  {"kind": "ort",    "onnx": PATH, "shape": [...]}                  ONNX Runtime (CPU EP)
  {"kind": "torch",  "pt2": PATH, "shape": [...]}                   torch.export program, eager
  {"kind": "rpc",    "lib": PATH, "inputs": [...], "tracker": [HOST, PORT], "key": K}
                     Relax VM ``main`` on a device of an RPC tracker: uploaded, timed there
                     with ``time_evaluator`` in a fresh session (the device's thread pool set
                     to the job's threads; result ``remote_threads``, ``device_info``)
  {"kind": "probe"}                                               peak GFLOP/s and GB/s
  {"kind": "paired", "variants": {name: tvm/kernel job (+ "threads"), ...}}  alternated in one
                     process (result ``paired_us``: name -> per-repeat times)

Result: per-repeat mean time of one call, microseconds (each repeat lasts >= min_repeat_ms).

Scripts that time in a loop of their own (``bench_noise.py``, ``bench_threads.py``) run
themselves as the child instead: ``compile_job_networks``, ``run_child``, and in the child
``read_child_request``, ``loaded_networks``, ``write_child_result``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# importable as ``common.timing`` and runnable as a file (the worker): the checkout's root
REPO = Path(__file__).resolve().parents[2]


def _calls(fn, repeat: int, min_repeat_ms: float) -> list[float]:
    """Per-repeat mean seconds of ``fn()``; calls per repeat sized on a warm-up."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_repeat_ms * 1e-3 / one) + 1)
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return out


def _worker(job: dict, threads: int, repeat: int, min_repeat_ms: float) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    kind = job["kind"]
    if kind == "paired":
        return _paired(job, repeat, min_repeat_ms)
    if kind == "probe":
        return _probe(repeat, min_repeat_ms)
    if kind in ("tvm", "kernel"):
        import tvm
        from tvm import relax

        dev = tvm.cpu(0)
        lib = tvm.runtime.load_module(job["lib"])
        specs = job["inputs"] if kind == "tvm" else job["args"]
        args = [tvm.runtime.tensor(rng.uniform(-1, 1, s).astype(d), dev) for s, d in specs]
        if kind == "tvm":
            vm = relax.VirtualMachine(lib, dev)
            vm["main"](*args)
            timer = vm.time_evaluator("main", dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
        else:
            timer = lib.time_evaluator(job["symbol"], dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
        secs = list(timer(*args).results)
        return {"samples_us": [float(s) * 1e6 for s in secs]}
    if kind == "rpc":
        return _rpc(job, threads, repeat, min_repeat_ms, rng)
    if kind == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(job["onnx"], so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x = rng.uniform(-1, 1, job["shape"]).astype("float32")
        secs = _calls(lambda: sess.run(None, {name: x}), repeat, min_repeat_ms)
        return {"samples_us": [s * 1e6 for s in secs], "version": ort.__version__}
    if kind == "torch":
        import torch

        torch.set_num_threads(threads)
        model = torch.export.load(job["pt2"]).module()
        x = torch.from_numpy(rng.uniform(-1, 1, job["shape"]).astype("float32"))
        with torch.inference_mode():
            secs = _calls(lambda: model(x), repeat, min_repeat_ms)
        return {"samples_us": [s * 1e6 for s in secs], "version": torch.__version__}
    raise ValueError(f"unknown job kind {kind!r}")


def _rpc(job: dict, threads: int, repeat: int, min_repeat_ms: float, rng) -> dict:
    """A network library timed on a device of the tracker (``job["tracker"]``, ``job["key"]``):
    one session (the device serves it in a fresh process), the library uploaded and loaded
    there, the device's thread pool set to ``threads``, one warm-up call, then
    ``time_evaluator`` on the device."""
    import tvm
    from tvm import relax, rpc

    host, port = job["tracker"]
    remote = rpc.connect_tracker(host, int(port)).request(job["key"], priority=1,
                                                          session_timeout=int(job.get("session_timeout_s", 900)))
    remote.upload(job["lib"])
    lib = remote.load_module(Path(job["lib"]).name)
    remote.get_function("runtime.config_threadpool")(0, int(threads))
    remote_threads = int(remote.get_function("runtime.NumThreads")())
    try:
        info = json.loads(str(remote.get_function("chamtvm.device_info")()))
    except Exception:  # a plain TVM server says nothing about itself
        info = {}
    dev = remote.cpu(0)
    args = [tvm.runtime.tensor(rng.uniform(-1, 1, s).astype(d), dev) for s, d in job["inputs"]]
    vm = relax.VirtualMachine(lib, dev)
    vm["main"](*args)
    timer = vm.time_evaluator("main", dev, number=1, repeat=repeat, min_repeat_ms=int(min_repeat_ms))
    secs = list(timer(*args).results)
    return {"samples_us": [float(s) * 1e6 for s in secs], "remote_threads": remote_threads, "device_info": info}


def _probe(repeat: int, min_repeat_ms: float) -> dict:
    """This machine's peak, roughly: float32 GFLOP/s of a 1024^3 matmul (numpy's BLAS, at
    the process's thread count) and GB/s of a 64 MiB copy (read + write counted)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (1024, 1024)).astype("float32")
    b = rng.uniform(-1, 1, (1024, 1024)).astype("float32")
    mm = min(_calls(lambda: a @ b, repeat, min_repeat_ms))
    src = np.ones(16 << 20, dtype="float32")
    dst = np.empty_like(src)
    cp = min(_calls(lambda: np.copyto(dst, src), repeat, min_repeat_ms))
    return {"gflops": 2 * 1024 ** 3 / mm / 1e9, "copy_gbytes_s": 2 * src.nbytes / cp / 1e9,
            "how": "best of repeats: numpy float32 1024^3 matmul; 64 MiB copy (read+write)"}


def _paired(job: dict, repeat: int, min_repeat_ms: float) -> dict:
    """TVM variants (``job["variants"]``: name -> tvm/kernel job plus optional "threads")
    timed alternately in one process, one repeat each in turn, so that load from other
    work hits every variant alike; the thread pool is resized per variant."""
    import numpy as np
    import tvm
    from tvm import relax

    rng = np.random.default_rng(0)
    dev = tvm.cpu(0)
    config = tvm.get_global_func("runtime.config_threadpool")
    timers = {}
    for name, v in job["variants"].items():
        lib = tvm.runtime.load_module(v["lib"])
        specs = v["inputs"] if v["kind"] == "tvm" else v["args"]
        args = [tvm.runtime.tensor(rng.uniform(-1, 1, s).astype(d), dev) for s, d in specs]
        if v["kind"] == "tvm":
            vm = relax.VirtualMachine(lib, dev)
            vm["main"](*args)
            t = vm.time_evaluator("main", dev, number=1, repeat=1, min_repeat_ms=min_repeat_ms)
            timers[name] = (t, args, v.get("threads"), vm)
        else:
            t = lib.time_evaluator(v["symbol"], dev, number=1, repeat=1, min_repeat_ms=min_repeat_ms)
            timers[name] = (t, args, v.get("threads"), lib)
    out = {n: [] for n in timers}
    for _ in range(repeat):
        for name, (t, args, threads, _keep) in timers.items():
            if threads:
                config(0, int(threads))
            out[name].append(float(t(*args).results[0]) * 1e6)
    return {"paired_us": out}


def measure(job: dict, threads: int, repeat: int = 15, min_repeat_ms: float = 50,
            timeout_s: float = 300, env: dict | None = None, python: list[str] | None = None) -> dict:
    """Run ``job`` in a fresh process with ``threads`` threads; ``{"samples_us": [...]}`` or
    ``{"error": msg}``. ``python``: the interpreter's command line (default this one), e.g. an
    emulated aarch64 Python; with it, ``env`` is the child's whole environment (none of this
    process's: its paths point at x86 files), the thread variables added."""
    threads_env = {"TVM_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    if python is None:
        e = {**os.environ, **threads_env,
             "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    else:
        e = {**(env or {}), **threads_env}
    arg = json.dumps({"job": job, "threads": threads, "repeat": repeat, "min_repeat_ms": min_repeat_ms})
    try:
        p = subprocess.run([*(python or [sys.executable]), __file__, "--worker", arg], capture_output=True,
                           text=True, timeout=timeout_s, env=e)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1][:400]}


def interleaved(jobs: dict[str, dict], threads: int, rounds: int, repeat: int = 15,
                min_repeat_ms: float = 50, log=print, run=None) -> dict[str, dict]:
    """Measure every job once per round, jobs in a rotating order; per job all rounds'
    samples, the median of the round medians and the spread (IQR/median %) of the samples,
    and the other fields of its last result (``version``, ...). ``run(job, threads, repeat,
    min_repeat_ms)``: how one job is measured (default ``measure``)."""
    import numpy as np

    from chamtvm.core.metrics import iqr_spread_pct

    run = run or measure

    names = list(jobs)
    got: dict[str, dict] = {n: {"round_medians_us": [], "samples_us": [], "errors": []} for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            res = run(jobs[n], threads, repeat, min_repeat_ms)
            if "error" in res:
                got[n]["errors"].append(res["error"])
                log(f"  round {r} {n}: ERROR {res['error']}")
                continue
            got[n]["samples_us"] += res["samples_us"]
            got[n]["round_medians_us"].append(float(np.median(res["samples_us"])))
            got[n].update({k: v for k, v in res.items() if k != "samples_us"})
    for n in names:
        g = got[n]
        if g["round_medians_us"]:
            g["median_us"] = float(np.median(g["round_medians_us"]))
            g["min_us"] = float(np.min(g["samples_us"]))
            g["spread_pct"] = float(iqr_spread_pct(g["samples_us"]))
            g["round_spread_pct"] = float(iqr_spread_pct(g["round_medians_us"])) if len(g["round_medians_us"]) > 1 else 0.0
        log(f"  {n:40s} {g.get('median_us', float('nan')):10.1f} us  spread {g.get('spread_pct', float('nan')):5.1f} %")
    return got


def manifest_jobs(networks: dict[str, dict], torch: bool = True) -> dict[str, dict]:
    """Timing jobs of a prepare phase's manifest (``networks``: name -> its ``libs`` by kind,
    ``inputs``, ``onnx``, ``shape`` and, for ``torch``, ``pt2``): every TVM library, ONNX Runtime
    on the network's ONNX file and (``torch``) its torch.export program, keyed ``name|kind``."""
    jobs = {}
    for name, e in networks.items():
        for kind, lib in e["libs"].items():
            jobs[f"{name}|{kind}"] = {"kind": "tvm", "lib": lib, "inputs": e["inputs"]}
        jobs[f"{name}|onnxruntime"] = {"kind": "ort", "onnx": e["onnx"], "shape": e["shape"]}
        if torch:
            jobs[f"{name}|torch"] = {"kind": "torch", "pt2": e["pt2"], "shape": e["shape"]}
    return jobs


def per_network(res: dict[str, dict], fields: tuple[str, ...]) -> dict[str, dict]:
    """``interleaved``'s results keyed ``name|kind`` regrouped as name -> ``{"measured": {kind:
    its fields}}``."""
    out: dict[str, dict] = {}
    for key, v in res.items():
        name, kind = key.split("|")
        out.setdefault(name, {"measured": {}})["measured"][kind] = {k: v.get(k) for k in fields}
    return out


def library_rounds(lat, libs: dict[str, Path], input_shape, rounds: int, log=print) -> dict[str, list[list[float]]]:
    """Every network library of ``libs`` timed as chamtvm times every network
    (``lat.measure_library``, a ``TargetLatency``: the target's network evaluator at the
    device's nominal speed, in the runner's process or on the board) once per round, names in
    a rotating order; per name, each successful round's samples (us)."""
    names = list(libs)
    got: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            res = lat.measure_library(libs[n], input_shape, n)
            if res.ok:
                got[n].append(list(res.samples_us))
            log(f"round {r} {n}: {res.median_us / 1e3 if res.ok else res.error}")
    return got


def paired_rounds(variants: dict[str, dict], rounds: int, repeat: int = 15, min_repeat_ms: float = 20,
                  threads: int | None = None, log=print) -> dict:
    """``rounds`` fresh processes, each timing ``variants`` alternately; per variant the
    samples, median and spread, and per pair ``a/b`` the median of the per-repeat ratios
    (the figure load swings between rounds disturb least)."""
    import numpy as np

    from chamtvm.core.metrics import iqr_spread_pct

    threads = threads or max(int(v.get("threads") or 1) for v in variants.values())
    samples = {n: [] for n in variants}
    errors = []
    for r in range(rounds):
        names = list(variants)
        order = names[r % len(names):] + names[: r % len(names)]
        res = measure({"kind": "paired", "variants": {n: variants[n] for n in order}}, threads, repeat, min_repeat_ms)
        if "error" in res:
            errors.append(res["error"])
            log(f"  round {r}: ERROR {res['error']}")
            continue
        for n, xs in res["paired_us"].items():
            samples[n] += xs
    out = {"variants": {}, "errors": errors}
    for n, xs in samples.items():
        if xs:
            out["variants"][n] = {"median_us": float(np.median(xs)), "min_us": float(np.min(xs)),
                                  "spread_pct": float(iqr_spread_pct(xs)), "samples_us": xs}
            log(f"  {n:40s} {np.median(xs):10.1f} us  spread {iqr_spread_pct(xs):5.1f} %")
    return out


def paired_ratio(res: dict, a: str, b: str) -> dict:
    """Median and IQR/median spread of the per-repeat ratios time(b)/time(a) (> 1: a is faster)."""
    import numpy as np

    from chamtvm.core.metrics import iqr_spread_pct

    xa, xb = res["variants"][a]["samples_us"], res["variants"][b]["samples_us"]
    r = np.asarray(xb) / np.asarray(xa)
    return {"speedup": float(np.median(r)), "spread_pct": float(iqr_spread_pct(r)), "n": int(len(r)),
            "meaning": f"time({b}) / time({a}); > 1 means {a} is faster"}


# ------------------------------------------------------------------ a script's own timing child
# For scripts whose measuring loop is their own (``bench_noise.py``, ``bench_threads.py``): the
# script runs itself as ``SCRIPT --workdir - --child REQUEST`` (``run_child``), and the child
# reads the request, loads the networks (``loaded_networks``), times them its own way and
# writes what it found (``write_child_result``).
def compile_job_networks(workdir: Path, n: int, folder: Path) -> list[dict]:
    """The last ``n`` networks a main job measured on x86 (rows with an architecture of
    ``<workdir>/luts/x86.networks.jsonl``), lowered with the job's schedules
    (``<workdir>/schedules/x86``) and exported to ``folder/net<i>.so``:
    ``[{"name", "arch", "lib", "inputs": [[shape, dtype], ...]}]``, a child request's
    ``networks``."""
    from chamtvm.lower.network import lower_arch
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.space.schema import Arch, SearchSpace
    from chamtvm.table.store import LatencyTable
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target("x86")
    rows = [r for r in LatencyTable(workdir / "luts" / "x86.networks.jsonl").load().rows() if "arch" in r][-n:]
    schedules = ScheduleSource(target, workdir / "schedules" / "x86")
    nets = []
    for i, row in enumerate(rows):
        space = SearchSpace.load(row.get("space", "macro"))
        net = lower_arch(space, Arch.from_dict(row["arch"]), f"net{i}")
        lib = export(compile_network(net.fused, target, schedules), target, folder / f"net{i}.so")
        nets.append({"name": f"net{i}", "arch": row["arch"], "lib": str(lib), "inputs": [a.to_list() for a in net.inputs]})
    return nets


def run_child(script: str | Path, request: dict, folder: Path, tag: str, env: dict,
              timeout_s: float | None = None) -> dict:
    """Run ``script`` as its own timing child (``--workdir - --child REQUEST``) in a fresh
    process with environment ``env``: ``request`` plus ``"out"`` is written to
    ``folder/req-<tag>.json``, the child's result read back from ``folder/out-<tag>.json``.
    A failing child raises ``CalledProcessError``, one past ``timeout_s`` ``TimeoutExpired``."""
    req = folder / f"req-{tag}.json"
    out = folder / f"out-{tag}.json"
    req.write_text(json.dumps({**request, "out": str(out)}))
    subprocess.run([sys.executable, str(script), "--workdir", "-", "--child", str(req)], env=env, check=True,
                   timeout=timeout_s)
    return json.loads(out.read_text())


def read_child_request(request_path: str | Path) -> dict:
    """In the child: the request ``run_child`` wrote."""
    return json.loads(Path(request_path).read_text())


def loaded_networks(networks: list[dict], dev, rng):
    """In the child: for each of ``networks`` (``compile_job_networks``'s entries), in turn,
    ``(vm, args)``: its library in a Relax VM on ``dev``, random inputs drawn from ``rng``
    (``chamtvm.measure.timing.random_tensor``), ``main`` called once (warm-up). A generator:
    each network is loaded when the caller's loop reaches it."""
    import tvm
    from tvm import relax

    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.timing import random_tensor

    for n in networks:
        vm = relax.VirtualMachine(tvm.runtime.load_module(n["lib"]), dev)
        args = [random_tensor(ArgSpec(tuple(s), t), dev, rng) for s, t in n["inputs"]]
        vm["main"](*args)
        yield vm, args


def write_child_result(request: dict, result: dict) -> None:
    """In the child: ``result`` plus ``"threads"`` (the TVM thread pool's size, as it ran)
    written where ``run_child`` reads it."""
    import tvm

    Path(request["out"]).write_text(json.dumps({**result, "threads": int(tvm.get_global_func("runtime.NumThreads")())}))


def main(argv=None) -> int:
    """The worker: run one job (``--worker JSON``, as ``measure`` passes it) and print its
    result as one JSON line; a failing job is reported as ``{"error": ...}``, exit 0."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", metavar="JSON", required=True,
                    help='{"job": ..., "threads": N, "repeat": N, "min_repeat_ms": MS}')
    spec = json.loads(ap.parse_args(argv).worker)
    try:
        out = _worker(spec["job"], spec["threads"], spec["repeat"], spec["min_repeat_ms"])
    except Exception as ex:  # reported as data: one failing job never stops the run
        out = {"error": f"{type(ex).__name__}: {str(ex).splitlines()[0][:400] if str(ex) else ''}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
