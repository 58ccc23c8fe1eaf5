"""``tuning.metaschedule``: how MetaSchedule is set up (search strategy from a population)."""


def test_population_sets_the_evolutionary_search_and_none_keeps_metaschedules_default():
    from tvm.s_tir import meta_schedule as ms

    from chamtvm.tuning.metaschedule import evolutionary_strategy as _strategy

    assert _strategy(None) == "evolutionary"  # MetaSchedule's own, population 512
    small = _strategy(16)
    assert isinstance(small, ms.search_strategy.EvolutionarySearch)
    assert small.population_size == 16 and small.init_min_unmeasured == 16
    assert _strategy(512).init_min_unmeasured == 50
