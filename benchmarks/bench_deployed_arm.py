"""Deployed speed on the emulated ARM board: the TVM library built for the ``arm`` target
against ONNX Runtime, both run on aarch64 under QEMU, same threads, interleaved rounds.

EMULATION figures: the "board" is a real aarch64 TVM RPC server under QEMU user-mode
emulation on this x86 host (``chamtvm device emulate-arm``), and ONNX Runtime's aarch64
wheel runs under the same emulator; every latency is QEMU's, never an ARM core's. Use the
figures to compare TVM and ONNX Runtime relative to each other on aarch64 code, never as
device latency.

Two phases, so that only timings run on a quiet machine:

  prepare   (CPU-heavy, resumable) lowers every network for the ``arm`` target
            (``target.lowering()``) and builds, cross-compiled with the target's
            ``aarch64-linux-gnu-g++``:
              tvm_default   TVM's default schedules (no database),
              tvm_tuned     with ``--schedules DIR`` (a ``schedules/arm`` folder holding an
                            arm MetaSchedule database): its tuned and transferred records;
            the ONNX files (a pick's ``model.onnx`` beside its ``arch.json`` when there,
            else exported); and, cached under ``<cache>/arm64/onnxruntime-<version>``, the
            aarch64 wheel of the host's ONNX Runtime version with an emulation prefix (see
            ``emulated_onnxruntime``), checked by running it once under QEMU.
  measure   (the timing: run it under ../shared/tools/quiet-run) starts a tracker and one
            emulated aarch64 server on 127.0.0.1 (children of this process, stopped at the
            end, also on failure), then in ``--rounds`` interleaved rounds, each job in its
            own process: every TVM library uploaded through RPC and timed on the board with
            ``time_evaluator`` (a fresh session, the board's thread pool at ``--threads``),
            and ONNX Runtime (CPU EP, all graph optimisations, ``--threads`` intra-op threads)
            in the emulated aarch64 Python; median of round medians, IQR/median spread.

    python benchmarks/bench_deployed_arm.py prepare --picks WORKDIR/runs/tune-x86/*/arch.json \\
        [--real mobilenet_v2,resnet18] [--res 128] [--schedules WORKDIR/schedules/arm]
    ../shared/tools/quiet-run --wait 3600 --record runs/quiet.jsonl -- \\
        python benchmarks/bench_deployed_arm.py measure [--rounds 3] [--threads 1]

Writes benchmarks/results/deployed_arm_emulated.json and .png (``--out``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from common import (EMULATION, RESULTS, RUNS, argument_parser, git_state, latency_bars, parse_args, pyplot,
                    save_figure, utc_now, write_results)

warnings.filterwarnings("ignore")
KINDS = ("tvm_default", "tvm_tuned", "onnxruntime")
KEY = "arm-bench-deployed"
# ONNX Runtime's cpuinfo library reads /proc/cpuinfo at import; QEMU 7.2 user mode passes the
# x86 host's file through, and the aarch64 wheel segfaults parsing it. QEMU's -L prefix also
# redirects any absolute path that exists under the prefix, so the prefix carries this file:
# Arm Neoverse-N1 cores (MIDR 0x413fd0c1), one per host core. ISA features come from the
# emulated CPU's HWCAP (getauxval), not from this text.
CPUINFO_CORE = """processor\t: {i}
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
"""


# ------------------------------------------------------------------ ONNX Runtime under QEMU
def onnxruntime_version() -> str:
    from importlib import metadata

    return metadata.version("onnxruntime")


def emulated_onnxruntime(version: str | None = None, install: bool = True, log=print) -> dict:
    """The aarch64 ONNX Runtime ``version`` (default: the host's) for the emulated Python,
    cached under ``<cache>/arm64/onnxruntime-<version>``: ``site/`` (the wheel, installed
    with pip's platform flags; numpy comes from the board's own ``site/``), ``prefix/`` (the
    arm64 userland's folders linked, plus an aarch64 ``proc/cpuinfo``: ``CPUINFO_CORE``) and
    ``python3-aarch64`` (runs the userland's python3.11 under QEMU with that prefix).
    Returns ``{"python": [wrapper], "env": {...}, "version", "root"}``; with ``install``
    False, raises ``FileNotFoundError`` when it is not there yet."""
    from chamtvm.devices.arm import QEMU, ArmEmulation

    emu = ArmEmulation.default()
    version = version or onnxruntime_version()
    root = emu.root / f"onnxruntime-{version}"
    site, prefix, wrapper = root / "site", root / "prefix", root / "python3-aarch64"
    if not (root / ".chamtvm-complete").exists():
        if not install:
            raise FileNotFoundError(f"{root}: the emulated ONNX Runtime is not set up; run the prepare phase")
        if not emu.ready():
            emu.setup(log=log)
        log(f"aarch64 onnxruntime=={version} -> {root}")
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--target", str(site), "--platform", "manylinux_2_28_aarch64", "--platform",
                        "manylinux_2_27_aarch64", "--platform", "manylinux2014_aarch64", "--only-binary=:all:",
                        "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                        f"onnxruntime=={version}"], check=True)
        (prefix / "proc").mkdir(parents=True)
        for d in sorted(emu.rootfs.iterdir()):
            if d.name not in ("proc", "dev", "tmp") and not d.name.startswith("."):
                (prefix / d.name).symlink_to(d)
        (prefix / "proc" / "cpuinfo").write_text("\n".join(CPUINFO_CORE.format(i=i)
                                                          for i in range(os.cpu_count() or 1)))
        qemu = shutil.which(QEMU) or QEMU
        wrapper.write_text(f'#!/bin/sh\nexec "{qemu}" -L "{prefix}" "{prefix}/usr/bin/python3.11" "$@"\n')
        wrapper.chmod(0o755)
        (root / ".chamtvm-complete").write_text(version + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD")}
    env.update(PYTHONPATH=f"{site}{os.pathsep}{emu.site}", PYTHONDONTWRITEBYTECODE="1", QEMU_LD_PREFIX=str(prefix))
    return {"python": [str(wrapper)], "env": env, "version": version, "root": str(root)}


# ------------------------------------------------------------------------ prepare
def _networks(args, target, work: Path) -> dict:
    """name -> (LoweredNetwork for ``target``, {"onnx", "shape"}) for the picks and the real models."""
    from chamtvm.lower.network import lower_arch, lower_onnx, read_arch
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.zoo import real

    nets = {}
    for i, path in enumerate(map(Path, args.picks)):
        space, arch = read_arch(path)
        name = f"pick_{path.parent.name or i}"
        shape = list(input_shape(space, arch))
        onnx = path.parent / "model.onnx"
        if not onnx.exists():
            import torch

            onnx = work / "models" / name / "model.onnx"
            if not onnx.exists():
                onnx.parent.mkdir(parents=True, exist_ok=True)
                torch.onnx.export(build_model(space, arch), (torch.zeros(*shape),), str(onnx), input_names=["x"],
                                  opset_version=17, dynamo=False)
        nets[name] = (lower_arch(space, arch, name, **target.lowering()), {"onnx": onnx, "shape": shape})
    for model in [m for m in args.real.split(",") if m]:
        for res in args.res:
            name = f"{model}@{res}"
            onnx = work / "models" / f"{model}_{res}" / "model.onnx"
            if not onnx.exists():
                real.export_onnx(model, res, onnx)
            net = lower_onnx(onnx, **target.lowering())
            net.name = name
            nets[name] = (net, {"onnx": onnx, "shape": [1, 3, res, res]})
    return nets


def prepare(args) -> dict:
    from chamtvm.measure.compile import compile_network, export
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.schedules import ScheduleSource

    target = get_target("arm")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"networks": {}}
    t0 = time.time()
    ort = emulated_onnxruntime()
    check = subprocess.run([*ort["python"], "-c", "import onnxruntime as o; print(o.__version__)"], env=ort["env"],
                           capture_output=True, text=True, timeout=600)
    if check.returncode != 0 or check.stdout.strip() != ort["version"]:
        raise SystemExit(f"the aarch64 onnxruntime does not run under QEMU ({ort['root']}):\n{check.stderr[-1500:]}")
    print(f"emulated onnxruntime {ort['version']} ready ({time.time() - t0:.0f} s)")
    sources = {"tvm_default": ScheduleSource(target, use_database=False)}
    if args.schedules:
        tuned = ScheduleSource(target, args.schedules)
        if tuned.has_database:
            sources["tvm_tuned"] = tuned
        else:
            print(f"{args.schedules}: no MetaSchedule database; tvm_tuned is not built")
    manifest.update(target=target.name, tvm_target=target.target_json(), conv_layout=target.conv_layout,
                    fast_math=target.fast_math, cross_compiler=target.cross_compiler,
                    threads=target.runtime_threads or 1, schedules=str(args.schedules) if args.schedules else None,
                    onnxruntime=ort["version"], prepared_at=utc_now(), prepared_git=git_state())
    for name, (net, files) in _networks(args, target, work).items():
        entry = manifest["networks"].get(name)
        if entry and set(entry["libs"]) == set(sources) and all(Path(p).exists() for p in entry["libs"].values()):
            print(f"{name}: prepared already")
            continue
        t1 = time.time()
        entry = {"onnx": str(files["onnx"]), "shape": files["shape"],
                 "inputs": [[list(a.shape), a.dtype] for a in net.inputs], "kernels": len(net.kernels),
                 "flops": float(np.nansum([k.flops * k.count for k in net.kernels])),
                 "kernel_calls": sum(k.count for k in net.kernels), "libs": {}}
        for kind, src in sources.items():
            path = work / "libs" / f"{name.replace('@', '_')}_{kind}.so"
            export(compile_network(net.fused, target, src), target, path)
            entry["libs"][kind] = str(path)
        entry["prepare_s"] = round(time.time() - t1, 1)
        manifest["networks"][name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=1))
        print(f"{name}: {len(net.kernels)} kernels, built {', '.join(entry['libs'])} in {entry['prepare_s']} s")
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


# ------------------------------------------------------------------------ measure
@contextmanager
def emulated_board(threads: int):
    """A tracker and one emulated aarch64 server on 127.0.0.1, children of this process (a
    quiet-run around the phase counts the emulator's CPU as the job's own), the server's
    sessions at ``threads`` TVM threads; stopped on exit, also on failure. Yields the tracker."""
    from chamtvm.devices.arm import ArmEmulation
    from chamtvm.devices.local import start_tracker
    from chamtvm.devices.procs import DeviceGroup

    emu = ArmEmulation.default()
    if not emu.ready():
        raise SystemExit(f"the emulated aarch64 board is not set up under {emu.root}: run the prepare phase")
    with DeviceGroup(key=KEY, emulated=True) as group:
        trk = start_tracker(host="127.0.0.1", timeout_s=300)  # patient: `import tvm` is slow under load
        group.extend(trk)
        group.tracker = trk.tracker
        before = os.environ.get("TVM_NUM_THREADS")
        os.environ["TVM_NUM_THREADS"] = str(threads)  # the server's environment, so its sessions' too
        try:
            group.extend(emu.start_servers(trk.tracker, KEY, 1, timeout_s=600))
        finally:
            if before is None:
                os.environ.pop("TVM_NUM_THREADS")
            else:
                os.environ["TVM_NUM_THREADS"] = before
        yield trk.tracker


def measure(args) -> dict:
    from common.timing import interleaved, measure as measure_job, per_network

    work = Path(args.work)
    manifest = json.loads((work / "manifest.json").read_text())
    threads = args.threads or manifest.get("threads") or 1
    ort = emulated_onnxruntime(manifest.get("onnxruntime"), install=False)
    out = {"EMULATION": EMULATION, "emulated": True,
           "prepared": {k: manifest.get(k) for k in ("target", "tvm_target", "conv_layout", "fast_math", "cross_compiler",
                                                     "schedules", "onnxruntime", "prepared_at", "prepared_git")},
           "threads": threads, "rounds": args.rounds, "repeat": args.repeat, "min_repeat_ms": args.min_repeat_ms,
           "how": "median of round medians; spread = IQR/median of all samples; each job a fresh process (TVM: a "
                  "fresh RPC session, the library uploaded and timed with time_evaluator on the emulated board; "
                  "ONNX Runtime: the aarch64 wheel in the emulated Python), jobs in a rotating order each round",
           "onnxruntime_emulation": {"version": ort["version"], "cpuinfo": "an aarch64 /proc/cpuinfo given to "
                                     "QEMU's prefix (Neoverse-N1 text; the host's x86 file crashes the wheel's "
                                     "cpuinfo); ISA features from the emulated CPU's HWCAP"},
           "networks": {}}
    t0 = time.time()
    with emulated_board(threads) as tracker:
        jobs = {}
        for name, e in manifest["networks"].items():
            for kind, lib in e["libs"].items():
                jobs[f"{name}|{kind}"] = {"kind": "rpc", "lib": lib, "inputs": e["inputs"], "tracker": list(tracker),
                                          "key": KEY}
            jobs[f"{name}|onnxruntime"] = {"kind": "ort", "onnx": e["onnx"], "shape": e["shape"]}

        def run(job, threads, repeat, min_repeat_ms):
            if job["kind"] == "ort":
                return measure_job(job, threads, repeat, min_repeat_ms, timeout_s=args.timeout_s, env=ort["env"],
                                   python=ort["python"])
            return measure_job(job, threads, repeat, min_repeat_ms, timeout_s=args.timeout_s)

        print(f"EMULATED aarch64 board at {tracker[0]}:{tracker[1]} key={KEY}; measuring {len(jobs)} jobs x "
              f"{args.rounds} rounds at {threads} threads")
        res = interleaved(jobs, threads, args.rounds, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms, run=run)
    out["networks"] = per_network(res, ("median_us", "min_us", "spread_pct", "round_spread_pct", "round_medians_us",
                                        "errors", "version", "remote_threads"))
    info = next((v["device_info"] for v in res.values() if v.get("device_info")), {})
    out["device_label"] = (f"rpc arm@{tracker[0]}:{tracker[1]} key={KEY} "
                           f"(EMULATED: {info.get('emulator') or 'qemu-aarch64-static (user mode)'})")
    for name, d in out["networks"].items():
        e = manifest["networks"][name]
        d.update({k: e[k] for k in ("kernels", "kernel_calls", "flops", "shape") if k in e})
        m = {k: (v or {}).get("median_us") for k, v in d["measured"].items()}
        ort_us = m.get("onnxruntime")
        d["over_ort"] = {k: m[k] / ort_us for k in ("tvm_default", "tvm_tuned") if m.get(k) and ort_us}
        if m.get("tvm_default") and m.get("tvm_tuned"):
            d["tuned_speedup"] = m["tvm_default"] / m["tvm_tuned"]
        print(f"{name:28s} " + "  ".join(f"{k} {v / 1e3:.2f} ms" for k, v in m.items() if v) + "  (EMULATION)")
    out["wall_s"] = round(time.time() - t0, 1)
    write_results(out, args.out, figure=plot)
    return out


def plot(out: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 2.8 + 1.4 * len(out["networks"])), 4.4))
    latency_bars(ax, out["networks"], KINDS, "latency under QEMU, ms (log; error bar = IQR/2)")
    ax.set_title(f"EMULATION: arm target under QEMU user mode on x86, {out['threads']} thread(s)\n"
                 f"QEMU timings, not ARM device latency", fontsize=9)
    save_figure(fig, path, dpi=120)


def main(argv=None) -> int:
    ap = argument_parser(__doc__)
    sub = ap.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="lower and build for arm, set up the emulated ONNX Runtime (CPU-heavy, resumable)")
    p.add_argument("--picks", nargs="*", default=[], help="the main job's exported arch.json files (any target's)")
    p.add_argument("--real", default="mobilenet_v2,resnet18", help="chamtvm.zoo.real models, comma-separated")
    p.add_argument("--res", type=lambda s: [int(x) for x in s.split(",")], default=[128])
    p.add_argument("--schedules", default=None, help="a schedules/arm folder with an arm MetaSchedule database")
    m = sub.add_parser("measure", help="time everything on the emulated board (run under quiet-run)")
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--repeat", type=int, default=5)
    m.add_argument("--min-repeat-ms", type=int, default=100)
    m.add_argument("--threads", type=int, default=None, help="default: the arm target's (1 when it sets none)")
    m.add_argument("--timeout-s", type=float, default=900, help="per job (one process)")
    for q in sub.choices.values():
        q.add_argument("--work", default=str(RUNS / "bench-deployed-arm"), help="working folder (git-ignored)")
        q.add_argument("--out", default=str(RESULTS / "deployed_arm_emulated.json"))
    args = parse_args(ap, argv)
    {"prepare": prepare, "measure": measure}[args.phase](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
