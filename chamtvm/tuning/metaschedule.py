"""MetaSchedule set-up for a target: the builder (a fast local build, cross-linked for a
remote device), the runner (this machine, or the devices under an RPC tracker), the search
strategy, the measuring threads and the console noise (the cost model: ``cost_model``).
What to tune and for how long is ``tuning.policy``'s business; this module only says how
MetaSchedule is wired."""

from __future__ import annotations

import contextlib
import functools
import os

from ..targets.spec import TargetSpec


def _fast_build(mod, target, _params):
    """MetaSchedule's default builder minus its ~27 s ``tensor_intrin`` import per worker."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm.tirx.build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def _cross_export(cross_compiler: str, mod) -> str:
    """MetaSchedule export step for a remote device: a shared library linked by the
    target's cross compiler (the default export writes a tar the device would have to link)."""
    import tempfile

    from tvm.support import cc

    path = os.path.join(tempfile.mkdtemp(prefix="chamtvm-ms-"), "tvm_tmp_mod.so")
    mod.export_library(path, fcompile=cc.cross_compiler(cross_compiler))
    return path


def _host_random_fill(arg) -> None:
    """Fill a (remote) tensor with seeded uniform [-1, 1) data sent from here."""
    import numpy as np

    shape, dtype = tuple(int(x) for x in arg.shape), str(arg.dtype)
    rng = np.random.default_rng(0)
    arg.copyfrom(rng.uniform(-1, 1, shape).astype(dtype) if "float" in dtype else np.zeros(shape, dtype))


def _alloc_args_host_filled(session, device, args_info, alloc_repeat):
    """MetaSchedule argument allocation that needs no ``random_fill`` on the device (TVM
    runtimes built without ``USE_RANDOM``, like the emulated aarch64 board's, lack it)."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    return alloc_argument_common(_host_random_fill, device, args_info, alloc_repeat)


def evolutionary_strategy(population: int | None):
    """MetaSchedule's evolutionary search with ``population`` per task (its own default, 512,
    when None: the string ``"evolutionary"``)."""
    from tvm.s_tir import meta_schedule as ms

    if population is None:
        return "evolutionary"
    return ms.search_strategy.EvolutionarySearch(population_size=population,
                                                 init_min_unmeasured=min(50, population))


@contextlib.contextmanager
def local_runtime_threads(target: TargetSpec, tracker=None):
    """While tuning locally, MetaSchedule's measuring processes (forked from this one) run
    candidates with the target's ``runtime_threads`` (``TVM_NUM_THREADS``), the count the
    table rows and networks are timed with; through a tracker the device decides."""
    n = target.runtime_threads if tracker is None else None
    old = os.environ.get("TVM_NUM_THREADS")
    if n is not None:
        os.environ["TVM_NUM_THREADS"] = str(n)
    try:
        yield
    finally:
        if n is not None:
            if old is None:
                os.environ.pop("TVM_NUM_THREADS", None)
            else:
                os.environ["TVM_NUM_THREADS"] = old


# builds a pool of worker processes serves before it is replaced (MetaSchedule starts a pool
# per build because of a memory leak "after a couple times of usage" of its workers)
BUILDS_PER_POOL = 8


@functools.lru_cache(maxsize=None)
def _reusing_builder_class():
    """MetaSchedule's ``LocalBuilder`` whose worker processes serve several builds.

    MetaSchedule's own starts a new pool of workers for every ``build`` (one per task and
    iteration of the task scheduler: ``tasks x rounds`` pools in a joint tuning); each worker
    imports TVM (and torch, which tvm_ffi imports when it can) before it builds anything,
    about 4 s on 2 cores. This one keeps its pool for ``BUILDS_PER_POOL`` builds (then starts
    a fresh one, for the leak MetaSchedule's note mentions) or until ``close()``
    (:func:`ms_builder_runner` closes it when a tuning ends)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderResult
    from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class ReusingLocalBuilder(ms.builder.LocalBuilder._cls):
        _pool = None
        _builds = 0

        def _sanity_check(self) -> None:
            # MetaSchedule checks on a pool of its own that the worker finds the build and export
            # functions, then stops it; here the check's pool is the one the builds then use
            from tvm.s_tir.meta_schedule.utils import get_global_func_with_default_on_worker

            def check(f_build, f_export) -> None:
                get_global_func_with_default_on_worker(name=f_build, default=None)
                get_global_func_with_default_on_worker(name=f_export, default=None)

            self._new_pool()
            self._pool.submit(check, self.f_build, self.f_export).result()

        def _new_pool(self) -> None:
            self.close()
            self._pool = PopenPoolExecutor(max_workers=self.max_workers, timeout=self.timeout_sec,
                                           initializer=self.initializer)

        def close(self) -> None:
            """Stop the worker processes (the next build starts new ones)."""
            pool, self._pool, self._builds = self._pool, None, 0
            if pool is not None:
                pool.shutdown()

        def build(self, build_inputs):
            if self._pool is None or self._builds >= BUILDS_PER_POOL:
                self._new_pool()
            self._builds += 1
            work = [(self.f_build, self.f_export, b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
            results = []
            for res in self._pool.map_with_error_catching(lambda x: _worker_func(*x), work):
                if res.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(res.value, None))
                elif res.status == StatusKind.TIMEOUT:
                    results.append(BuilderResult(None, f"LocalBuilder: Timeout, killed after {self.timeout_sec} seconds"))
                else:
                    results.append(BuilderResult(None, "LocalBuilder: An exception occurred\n" + str(res.value)))
            return results

    return ReusingLocalBuilder


@functools.lru_cache(maxsize=None)
def _local_builder(cross_compiler: str | None):
    """The local builder, one per cross compiler and process (its workers serve several
    builds: :func:`_reusing_builder_class`); making one starts and checks a pool of workers,
    seconds each time a tuning began."""
    f_export = functools.partial(_cross_export, cross_compiler) if cross_compiler else None
    return _reusing_builder_class()(f_build=_fast_build, f_export=f_export, timeout_sec=120)


@contextlib.contextmanager
def ms_builder_runner(target: TargetSpec, tracker: tuple[str, int, str] | None = None):
    """``(builder, runner)`` for MetaSchedule while the block runs: local build (cross-linked
    for a remote target) and the local machine, or the devices under ``tracker = (host, port,
    key)``. On leaving, the builder's worker processes are stopped (idle processes holding TVM
    and torch in memory while the job goes on to measure)."""
    from tvm.s_tir import meta_schedule as ms

    builder = _local_builder(target.cross_compiler)
    try:
        if tracker is None:
            # one runner for every round of a tuning: MetaSchedule would start (and check) a new
            # measuring process per ``tune_tasks`` call, seconds each. Its process is started now,
            # so with the target's thread count, as a restarted one is (rounds run in that context).
            with local_runtime_threads(target):
                runner = ms.runner.LocalRunner()
        else:
            host, port, key = tracker
            runner = ms.runner.RPCRunner(
                ms.runner.RPCConfig(tracker_host=host, tracker_port=int(port), tracker_key=key,
                                    session_timeout_sec=300),
                ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=0, enable_cpu_cache_flush=False),
                f_alloc_argument=_alloc_args_host_filled, max_workers=1)
        yield builder, runner
    finally:
        builder.close()


class quiet_ms_logs:
    """MetaSchedule logs every trial at INFO to the console; keep it to the work_dir logs."""

    def __enter__(self):
        import logging

        self._logger = logging.getLogger("tvm.s_tir.meta_schedule")
        self._level = self._logger.level
        self._logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)
