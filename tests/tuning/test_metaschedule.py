"""``tuning.metaschedule``: how MetaSchedule is set up (search strategy from a population, a
builder whose workers serve several builds)."""

import pytest


def test_population_sets_the_evolutionary_search_and_none_keeps_metaschedules_default():
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.tuning.metaschedule import evolutionary_strategy as _strategy

    assert _strategy(None) == "evolutionary"  # MetaSchedule's own, population 512
    small = _strategy(16)
    assert isinstance(small, ms.search_strategy.EvolutionarySearch)
    assert small.population_size == 16 and small.init_min_unmeasured == 16
    assert _strategy(512).init_min_unmeasured == 50


def _build_workers() -> set[int]:
    """PIDs of this process's MetaSchedule worker processes."""
    import os

    import psutil

    return {p.pid for p in psutil.Process(os.getpid()).children()
            if "tvm.exec.popen_worker" in " ".join(p.cmdline())}


@pytest.mark.slow  # starts worker processes (TVM imported in each)
def test_the_builder_keeps_its_workers_across_builds_until_closed_or_spent(x86, monkeypatch):
    """MetaSchedule starts a pool of workers (each importing TVM first) for every build; this
    builder's pool serves ``BUILDS_PER_POOL`` builds, then a fresh one, and ``close`` stops it."""
    import os

    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from chamtvm.tuning import metaschedule
    from chamtvm.tuning.database import workload_module
    from tests.tuning._tiny_kernels import dense_kernels

    monkeypatch.setattr(metaschedule, "BUILDS_PER_POOL", 2)
    others = _build_workers()  # workers of runners an earlier test of this process may still hold
    builder = metaschedule._reusing_builder_class()(f_build=metaschedule._fast_build, timeout_sec=60, max_workers=1)
    try:
        first = _build_workers() - others  # the start-up check ran in the pool the builds use
        assert len(first) == 1
        inp = [BuilderInput(workload_module(dense_kernels()[0].func), x86.tvm())]
        for _ in range(2):
            (res,) = builder.build(inp)
            assert res.error_msg is None and os.path.exists(res.artifact_path), res.error_msg
            assert _build_workers() - others == first
        builder.build(inp)  # the pool has served its builds: a fresh one
        second = _build_workers() - others
        assert len(second) == 1 and not second & first
    finally:
        builder.close()
    assert not _build_workers() - others
