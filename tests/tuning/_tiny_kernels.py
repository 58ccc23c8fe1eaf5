"""Tiny real kernels for the tuning tests (dense layers made with TVM's ``te``: cheap to tune,
build and time), and, run as a script, a tuning child process for the kill and concurrency
tests: ``python _tiny_kernels.py WORK_DIR TRIALS ROUND_TRIALS`` tunes the first two kernels
jointly into ``WORK_DIR`` (tiny population) and prints what it did."""

from __future__ import annotations

import sys

SIZES = [(16, 32, 16), (16, 64, 16), (32, 32, 16), (16, 48, 16), (32, 64, 16), (16, 16, 16)]


def dense_kernels(sizes=SIZES) -> list:
    """``Kernel`` objects of ``C[m, n] = sum_r A[m, r] * B[n, r]`` for each ``(m, n, k)``, all of
    one kind (``dense`` with 2-D arguments), named ``dense0``, ``dense1``, ..."""
    from tvm import te

    from chamtvm.lower.kernels import Kernel, _arg_specs, kernel_hash

    out = []
    for i, (m, n, k) in enumerate(sizes):
        a, b = te.placeholder((m, k), name="A"), te.placeholder((n, k), name="B")
        r = te.reduce_axis((0, k), name="r")
        c = te.compute((m, n), lambda x, y: te.sum(a[x, r] * b[y, r], axis=r), name="C")
        f = te.create_prim_func([a, b, c])
        out.append(Kernel(f"dense{i}", kernel_hash(f), _arg_specs(f), 2.0 * m * n * k, 1, f))
    return out


def split_trace(kernel, inner: int = 4):
    """A schedule trace of ``kernel`` that tiles its ``n`` loop (a ``SamplePerfectTile`` a
    transfer re-fits): what a tuned record's trace looks like, made without tuning."""
    from tvm import s_tir

    from chamtvm.tuning.database import workload_module

    sch = s_tir.Schedule(workload_module(kernel.func))
    loops = sch.get_loops(sch.get_sblock("C"))
    n = int(kernel.args[-1].shape[1])
    sch.split(loops[1], sch.sample_perfect_tile(loops[1], n=2, max_innermost_factor=16, decision=[n // inner, inner]))
    return sch.trace


if __name__ == "__main__":
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.policy import TuningTask, tune_tasks

    work, trials, round_trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tasks = [TuningTask(k.func, k.struct_hash, k.name, 1.0) for k in dense_kernels()[:2]]
    rep = tune_tasks(tasks, get_target("x86"), trials, work, round_trials=round_trials, population=8,
                     log=lambda s: print(s, flush=True))
    print("TRIALS", sum(rep.trials.values()), flush=True)
