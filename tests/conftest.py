"""Shared fixtures: a tiny search space and the local x86 target, all real (no mocks)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

warnings.filterwarnings("ignore", category=FutureWarning)

# The whole session and every process it starts (CLI runs, measuring children, servers):
# - one fresh cache of imported architectures (``lower.cache``), so an architecture lowered
#   by one test is read back by the next instead of imported through torch.export again;
# - a nominal-speed budget of 0.5 s per item instead of the targets' 20 s (``measure.timing``):
#   a test's fresh table does not know the nominal speed yet and would sample for half the
#   budget; tests of the budget itself set their own evaluators. (2 s until 2026-12-06, when the
#   full suite reached its 20 minutes: no test checks a figure closely enough to need more.)
_SESSION_CACHE = None
if not os.environ.get("CHAMTVM_CACHE_DIR"):
    _SESSION_CACHE = tempfile.mkdtemp(prefix="chamtvm-test-relax-cache-")
    os.environ["CHAMTVM_CACHE_DIR"] = _SESSION_CACHE
os.environ.setdefault("CHAMTVM_NOMINAL_BUDGET_S", "0.5")
os.environ.setdefault("CHAMTVM_NETWORK_ROUNDS", "1")  # one round per network: rounds are tested on their own (tests/table/test_networks.py)


def pytest_unconfigure(config):
    if _SESSION_CACHE:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_space():
    from chamtvm.space.schema import SearchSpace

    return SearchSpace.load(DATA / "space_tiny3.json")


@pytest.fixture(scope="session")
def x86():
    from chamtvm.targets.spec import get_target

    return get_target("x86")


def _quick_networks(target):
    """``target`` timing whole networks without waiting for the device's nominal speed (every
    sample kept: a row is never timed again for being slow) in 3 samples of at least 10 ms:
    for tests of what a job does with its network measurements, not of the measurements
    (``tests/measure``, ``tests/table/test_networks.py``). The fingerprint, which the
    network evaluator is no part of, and so every table key stay the target's."""
    from dataclasses import replace

    return replace(target, network_evaluator=replace(target.network_evaluator, nominal_tolerance=None, repeat=3,
                                                     min_repeat_ms=10))


def _quick_kernels(target):
    """``target`` timing table rows without waiting for the device's nominal speed (every
    sample kept: a row is never timed again for having been timed slow, which on a busy
    machine makes a rerun measure again): for tests of what is done with the rows, not of
    the rows. The fingerprint holds the kernel evaluator's nominal tolerance, so its rows
    have keys of their own: give it a table of its own."""
    from dataclasses import replace

    return replace(target, evaluator=replace(target.evaluator, nominal_tolerance=None))


@pytest.fixture(scope="session")
def quick_kernels():
    """``_quick_kernels``: ``quick_kernels(target)`` times table rows without waiting for the
    nominal speed (its own table keys)."""
    return _quick_kernels


@pytest.fixture(scope="session")
def quick_networks():
    """``_quick_networks``: ``quick_networks(target)`` times whole networks without waiting for
    the nominal speed, in 3 short samples; table keys unchanged."""
    return _quick_networks


@pytest.fixture(scope="session")
def tiny_archs(tiny_space):
    import numpy as np

    rng = np.random.default_rng(0)
    return [tiny_space.sample(rng) for _ in range(3)]



@pytest.fixture(scope="session")
def tiny_kernel_map(tiny_space):
    """``lower.coverage.space_kernel_map`` of ``tiny_space``, lowered once per session
    (``.kernels``: every distinct kernel of the space)."""
    from chamtvm.lower.coverage import space_kernel_map

    return space_kernel_map(tiny_space)


@pytest.fixture(scope="session")
def tiny_space_table(tiny_kernel_map, x86, tmp_path_factory):
    """A real x86 latency table of every kernel of ``tiny_space`` (default schedules),
    measured once per session by the measuring child (``LocalRunner``, batches of 16: the
    space's 37 kernels in 3 batches) with no failure. Shared: tests read it, or copy it
    before they change it."""
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    table = LatencyTable(tmp_path_factory.mktemp("tiny-lut") / "x86.jsonl")
    prepared = prepare(tiny_kernel_map.kernels.values(), x86, ScheduleSource(x86, use_database=False))
    summary = fill_table(prepared, table, LocalRunner(x86), x86, batch_size=16)
    assert summary.failed == 0 and summary.measured == len(prepared)
    return table


def tiny_tune_args(luts, out) -> list[str]:
    """``chamtvm tune`` of ``space_tiny3`` on x86: no tuning trials, no calibration, 2 held-out
    and 2 training networks (the default task cannot train this space: the accuracy steps are
    skipped); table and models in ``luts``, the JSON report at ``out``."""
    return ["tune", "--target", "x86", "--space", str(DATA / "space_tiny3.json"), "--trials", "0", "--no-calibration",
            "--heldout", "2", "--train-networks", "2", "--luts-dir", str(luts), "--out", str(out), "--no-progress"]


@pytest.fixture(scope="session")
def tiny_tune_run(tmp_path_factory):
    """One real ``chamtvm tune`` run (``tiny_tune_args``, a child process) per session:
    ``out`` (its CompletedProcess), ``report`` (its JSON report, None when it failed),
    ``luts`` (its table and models), ``args(luts, out)`` (``tiny_tune_args``, to rerun it).
    Tests that change the table copy ``luts`` first."""
    import json
    import subprocess
    import sys
    from types import SimpleNamespace

    d = tmp_path_factory.mktemp("tiny-tune")
    out = subprocess.run([sys.executable, "-m", "chamtvm", *tiny_tune_args(d / "luts", d / "report.json")],
                         cwd=DATA.parents[1], capture_output=True, text=True, timeout=900)
    report = json.loads((d / "report.json").read_text()) if out.returncode == 0 else None
    return SimpleNamespace(out=out, report=report, luts=d / "luts", args=tiny_tune_args)

@pytest.fixture(scope="session")
def macro_main_job(tmp_path_factory, x86):
    """One real main job (``pipeline.job.run_tune``, measuring child) per session on the
    default space and task (``macro``, ``nas-bench-macro`` lookups), kept small: no tuning,
    no calibration, no held-out networks, no training networks (no residual: fitting one from
    measured networks is ``tiny_tune_run``'s; here it cost two network measurements per run),
    10 lookups of the budget-aware loop at the 3 automatic budgets, each pick exported and
    measured, 1 regret contender per budget; networks timed by ``_quick_networks`` (a rerun
    then measures no network again for having been timed slow). ``target`` (the x86 target it
    ran on), ``tmp`` (its folders), ``cfg`` (its TuneConfig: rerun it with the same folders
    and target, everything is journaled) and ``report``."""
    from types import SimpleNamespace

    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.config import TuneConfig
    from chamtvm.pipeline.job import run_tune

    tmp = tmp_path_factory.mktemp("macro-main-job")
    cfg = TuneConfig(trials=0, heldout=0, train_networks=0, calibration=False, accuracy_samples=10,
                     population=24, generations=4, contenders=1, luts_dir=tmp / "luts", runs_dir=tmp / "runs",
                     progress=False)
    target = _quick_networks(x86)
    with LocalRunner(target) as runner:
        report = run_tune(target, runner, cfg, log=lambda *a: None)
    return SimpleNamespace(target=target, tmp=tmp, cfg=cfg, report=report)


# ------------------------------------------------------------- a tiny torch network
def tiny_torch_module():
    """Three 3x3 convolutions + ReLU (the last two of the same shape) and a spatial mean, on
    a (1, 3, 8, 8) input: lowers to 3 distinct kernels, one of them called twice."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.c3 = nn.Conv2d(4, 4, 3, padding=1, bias=False)

        def forward(self, x):
            y = torch.relu(self.c1(x))
            y = torch.relu(self.c2(y))
            return torch.relu(self.c3(y)).mean(dim=(2, 3))

    torch.manual_seed(0)
    return Tiny().eval()


TINY_INPUT = (1, 3, 8, 8)


@pytest.fixture(scope="session")
def tiny_torch():
    """``make()``: a fresh ``tiny_torch_module`` (seeded weights); ``shape``: its input shape."""
    from types import SimpleNamespace

    return SimpleNamespace(make=tiny_torch_module, shape=TINY_INPUT)


@pytest.fixture(scope="session")
def tiny_net():
    """``tiny_torch_module`` lowered (``lower.network.lower_torch``), once per session."""
    from chamtvm.lower.network import lower_torch

    return lower_torch(tiny_torch_module(), TINY_INPUT, "tiny")


@pytest.fixture(scope="session")
def fast_evaluator():
    """Few repeats and no minimum time: a real timing, kept short."""
    from chamtvm.targets.spec import Evaluator

    return Evaluator(number=2, repeat=3, min_repeat_ms=0)


@pytest.fixture(scope="session")
def in_process_runner(x86):
    """A real runner that times compiled libraries in this process (``measure.timing``), for
    tests that need measurements but not the measuring child process; counts its calls."""
    from chamtvm.measure.base import Runner

    class InProcessRunner(Runner):
        label = "in-process x86 (tests)"

        def __init__(self):
            self.target = x86
            self.network_calls = 0

        def measure_kernels(self, library, items, evaluator):
            import tvm

            from chamtvm.measure.timing import time_kernels

            yield from time_kernels(tvm.runtime.load_module(str(library)), tvm.cpu(0), items, evaluator)

        def measure_network(self, library, inputs, evaluator, key="network"):
            import tvm

            from chamtvm.measure.timing import time_network

            self.network_calls += 1
            return time_network(tvm.runtime.load_module(str(library)), tvm.cpu(0), inputs, evaluator, key=key)

    return InProcessRunner


# ------------------------------------------ a small MobileNetV3-style ONNX model
def small_mobilenet_v3():
    """A MobileNetV3-style network the size of a test (every operator kind of the zoo's
    ``mobilenet_v3_small``: conv + BN + hardswish, depthwise conv + BN + ReLU, squeeze-and-
    excitation with hardsigmoid, a 1x1 projection, global pooling, a classifier of 1000), seeded:
    one block instead of the zoo model's eleven, so far fewer kernels to time."""
    import torch
    from torch import nn

    class SqueezeExcite(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

        def forward(self, x):
            s = nn.functional.adaptive_avg_pool2d(x, 1)
            return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        SqueezeExcite(16), nn.Conv2d(16, 24, 1, bias=False), nn.BatchNorm2d(24),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 1000)).eval()


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory):
    """``small_mobilenet_v3`` as a user's ONNX file (``zoo.building.export_onnx_module``: legacy
    exporter, BN folded), input 1x3x32x32, written once per session; read it, do not change it."""
    from chamtvm.zoo.building import export_onnx_module

    return export_onnx_module(small_mobilenet_v3(), 32, tmp_path_factory.mktemp("small-onnx") / "small_mbv3.onnx")


# ----------------------------------------------- a tiny space ready to search (tinygray)
def _synthetic_accuracy(arch) -> float:
    """A made-up accuracy that grows with the channels of the last two stages."""
    return 0.5 + 0.01 * arch.stages[1].channels + 0.005 * arch.stages[2].channels + 0.002 * arch.stages[1].blocks


@pytest.fixture(scope="session")
def tiny_gray_search(tmp_path_factory, x86):
    """The 32-network ``space_tiny_gray`` with its real kernel map, a latency table holding
    every kernel of the space (real keys, made-up latencies: 1 us + FLOPs / 1e4) and an
    accuracy journal of all 32 networks (``_synthetic_accuracy``), in a fresh working folder.
    ``kmap`` is the kernel map the search would compute (``cached_kernel_map`` reuses it)."""
    import itertools
    from types import SimpleNamespace

    from chamtvm.accuracy.journal import Journal
    from chamtvm.lower.coverage import space_kernel_map
    from chamtvm.space.schema import SearchSpace
    from chamtvm.table.fill import prepare
    from chamtvm.table.store import LatencyTable, ok_row
    from chamtvm.tuning.schedules import ScheduleSource

    work = tmp_path_factory.mktemp("tinygray")
    space = SearchSpace.load(DATA / "space_tiny_gray.json")
    kmap = space_kernel_map(space)
    prepared = prepare(list(kmap.kernels.values()), x86, ScheduleSource(x86, use_database=False))
    latency_us = {p.key: 1.0 + p.kernel.flops / 1e4 for p in prepared}
    table = LatencyTable(work / "luts" / "x86.jsonl")
    table.append([ok_row(p.key, {**p.kernel.describe(), "schedule": p.schedule, "target": "x86"},
                         [latency_us[p.key]], 1) for p in prepared])
    journal = Journal(work / "runs" / "accuracy-synthetic-tinygray.jsonl")
    rows = list(itertools.product(*[range(len(c)) for _, c in space.dimensions()]))
    for r in rows:
        a = space.from_indices(r)
        journal.append({"architecture": a.to_dict(), "accuracy": _synthetic_accuracy(a), "seed": 0, "epochs": 1,
                        "seconds": 0.0, "task": "synthetic", "space": space.name})
    return SimpleNamespace(space=space, space_path=DATA / "space_tiny_gray.json", kmap=kmap, work=work,
                           luts=work / "luts", journal=journal.path,
                           latency_us=latency_us, rows=rows, accuracy=_synthetic_accuracy)


@pytest.fixture(scope="module")
def cached_kernel_map(tiny_gray_search):
    """``lower.coverage.space_kernel_map`` answering the tinygray space from the fixture's
    real map (computing it costs seconds per call); any other space is lowered as usual.
    Module-scoped: undone after the module's last test."""
    from chamtvm.lower import coverage

    real = coverage.space_kernel_map

    def cached(space, progress=None, lowering=None):
        same_lowering = not (lowering or {}).get("layout")  # the space has no exponential: fast math changes nothing
        if space.name == tiny_gray_search.space.name and same_lowering:
            return tiny_gray_search.kmap
        return real(space, progress, lowering)

    mp = pytest.MonkeyPatch()
    mp.setattr(coverage, "space_kernel_map", cached)
    try:
        yield cached
    finally:
        mp.undo()


class _Payload:
    """Unpickling this creates the file ``path`` (what a malicious pickle could do instead)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="session")
def pickled_cost_model_tar():
    """``make(tar_path, marker) -> marker``: writes TVM's pickle-based cost-model format
    (``cost_model_xgb.tar`` holding ``data.npy``, an object array) whose unpickling creates the
    file ``marker``; a test asserts ``marker`` never appears."""
    import io
    import tarfile

    import numpy as np

    def make(tar_path, marker):
        tar_path, marker = Path(tar_path), Path(marker)
        arr = np.empty(1, dtype=object)
        arr[0] = ("group", [_Payload(marker)], np.zeros(1))
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar_path, "w") as tar:
            info = tarfile.TarInfo("data.npy")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
        return marker

    return make


@pytest.fixture(scope="session")
def tiny_dense_kernels():
    """The module ``tests/tuning/_tiny_kernels.py`` (tiny dense kernels, a split trace, and a
    tuning child process as a script), loaded by path: the tests run with
    ``--import-mode=importlib``, so a test folder is not on ``sys.path``."""
    import importlib.util

    path = Path(__file__).parent / "tuning" / "_tiny_kernels.py"
    spec = importlib.util.spec_from_file_location("_tiny_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kernel_with_record():
    """``make(db, target, m, n, vector)``: a real ``Kernel`` (``b = 2 a`` on an ``m x n``
    tensor) and a MetaSchedule record of it (inner loop split by ``vector`` and vectorized,
    outer loop parallel) committed to the JSON database ``db``. Kernels given different
    ``vector`` get different traces, so different schedule tags (a tag hashes the trace, which
    does not hold the extents)."""

    def make(db, target, m: int, n: int, vector: int):
        from tvm import s_tir, te
        from tvm.s_tir import meta_schedule as ms

        from chamtvm.lower.kernels import Kernel, _arg_specs, kernel_hash
        from chamtvm.tuning.database import workload_module

        a = te.placeholder((m, n), name="a")
        b = te.compute((m, n), lambda i, j: a[i, j] * 2.0, name="b")
        func = te.create_prim_func([a, b])
        mod = workload_module(func)
        sch = s_tir.Schedule(mod)
        i, j = sch.get_loops(sch.get_sblock("b"))
        _, inner = sch.split(j, factors=[None, vector])
        sch.parallel(i)
        sch.vectorize(inner)
        db.commit_tuning_record(ms.database.TuningRecord(
            trace=sch.trace, workload=db.commit_workload(mod), run_secs=[1e-6], target=target.tvm(),
            args_info=ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
        return Kernel(f"scale{m}x{n}", kernel_hash(func), _arg_specs(func), float(m * n), 1, func)

    return make
