"""Tiny real kernels for the tuning tests (dense layers made with TVM's ``te``: cheap to tune,
build and time), kernels handed to a child process in a file, and, run as a script, the
child processes of the kill and concurrency tests:

* ``python _tiny_kernels.py WORK_DIR TRIALS ROUND_TRIALS`` tunes the first two kernels
  jointly into ``WORK_DIR`` (tiny population) and prints what it did;
* ``python _tiny_kernels.py transfer WORK_DIR KERNELS_JSON`` transfers the tuned schedules
  of ``WORK_DIR`` to the kernels of ``KERNELS_JSON`` (:func:`save_kernels`), timed by the
  measuring child (``LocalRunner``), printing each transfer."""

from __future__ import annotations

import sys
from pathlib import Path

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


def save_kernels(kernels, path) -> None:
    """Write ``kernels`` (name, flops, calls and the PrimFunc in TVM's JSON) to ``path``, so a
    child process gets a parent's lowered kernels without lowering a network again."""
    import json

    import tvm

    path.write_text(json.dumps([{"name": k.name, "flops": k.flops, "count": k.count, "func": tvm.ir.save_json(k.func)}
                                for k in kernels]))


def load_kernels(path) -> list:
    """The ``Kernel`` objects :func:`save_kernels` wrote (structural hashes computed again)."""
    import json

    import tvm

    from chamtvm.lower.kernels import Kernel, _arg_specs, kernel_hash

    out = []
    for d in json.loads(Path(path).read_text()):
        f = tvm.ir.load_json(d["func"])
        out.append(Kernel(d["name"], kernel_hash(f), _arg_specs(f), d["flops"], d["count"], f))
    return out


if __name__ == "__main__" and sys.argv[1] == "transfer":
    from chamtvm.measure.local import LocalRunner
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.transfer import transfer_schedules

    x86 = get_target("x86")
    with LocalRunner(x86) as runner:
        transfer_schedules(load_kernels(sys.argv[3]), x86, runner, sys.argv[2], log=lambda s: print(s, flush=True))
elif __name__ == "__main__":
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.policy import TuningTask, tune_tasks

    work, trials, round_trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tasks = [TuningTask(k.func, k.struct_hash, k.name, 1.0) for k in dense_kernels()[:2]]
    rep = tune_tasks(tasks, get_target("x86"), trials, work, round_trials=round_trials, population=8,
                     log=lambda s: print(s, flush=True))
    print("TRIALS", sum(rep.trials.values()), flush=True)
