"""``search.context``: a search loaded from a real kernel map, a latency table and an
accuracy journal (``tiny_gray_search`` in conftest): per-network latency from the kernel map
agrees with lowering the whole network, the genetic search finds the best network under a
budget (checked by brute force over all 32), limits and their errors, the JSON result."""

import numpy as np
import pytest

from chamtvm.search.context import fit_accuracy_predictor, result_dict, search_context
from chamtvm.search.genetic import SearchError


@pytest.fixture(scope="module")
def ctx(tiny_gray_search, cached_kernel_map, x86):
    return search_context(tiny_gray_search.space, x86, tiny_gray_search.luts, None, tiny_gray_search.journal)


@pytest.fixture(scope="module")
def every(ctx, tiny_gray_search):
    rows = np.array(tiny_gray_search.rows, dtype=np.int64)
    return rows, ctx.accuracy(rows), ctx.batch.predict_ms(rows)


def test_context_holds_the_journal_fit_and_the_table(ctx, tiny_gray_search):
    assert ctx.n_trained == 32 and ctx.protocol == {"task": "synthetic", "epochs": 1, "protocol": None}
    assert len(ctx.table) == len(tiny_gray_search.latency_us) and ctx.batch.estimated_kernels == []
    assert ctx.latency.kernel_model is None and ctx.latency.residual is None  # none saved


def test_latency_of_a_network_is_its_lowered_table_sum(ctx, tiny_gray_search, x86):
    from chamtvm.lower.network import lower_arch

    space = tiny_gray_search.space
    for r in (tiny_gray_search.rows[0], tiny_gray_search.rows[-1]):
        net = lower_arch(space, space.from_indices(r))
        want_us = 0.0
        for k in net.kernels:
            [key] = [key for key in tiny_gray_search.latency_us if key.endswith("/" + k.struct_hash)]
            want_us += k.count * tiny_gray_search.latency_us[key]
        got = ctx.batch.predict_ms(np.array([r]))[0]
        assert got == pytest.approx(want_us / 1e3, rel=1e-9)


def test_accuracy_predictor_fits_the_journal(ctx, tiny_gray_search, every):
    rows, acc, _ = every
    true = np.array([tiny_gray_search.accuracy(tiny_gray_search.space.from_indices(r)) for r in rows])
    assert np.abs(acc - true).max() < 0.01  # every network trained: the GP reproduces them
    mf, mp = ctx.mflops(rows), ctx.mparams(rows)
    assert mf.shape == mp.shape == (32,) and (mf > 0).all() and (mp > 0).all()


def test_search_finds_the_brute_force_best_under_the_budget(ctx, every):
    rows, acc, lat = every
    budget = float(np.median(lat))
    res = ctx.search(budget, seed=0, population=24, generations=8)
    feasible = lat <= budget
    best = rows[feasible][np.argmax(acc[feasible])]
    assert res.best_indices.tolist() == best.tolist()
    assert res.best_latency_ms <= budget
    limit = float(np.median(ctx.mflops(rows)))
    capped = ctx.search(float(lat.max()) + 1, population=24, generations=8, max_mflops=limit)
    ok = ctx.mflops(rows) <= limit
    assert capped.best_indices.tolist() == rows[ok][np.argmax(acc[ok])].tolist()
    cautious = ctx.search(budget, population=24, generations=8, lcb_kappa=1.0)
    assert cautious.best_latency_ms <= budget


def test_bad_limits_and_impossible_budgets_are_search_errors(ctx, every):
    _, _, lat = every
    with pytest.raises(SearchError, match="--max-mflops must be a positive number, got 0"):
        ctx.search(1.0, max_mflops=0)
    with pytest.raises(SearchError, match="the LCB kappa must be >= 0, got -1"):
        ctx.search(1.0, lcb_kappa=-1)
    with pytest.raises(SearchError):
        ctx.search(float(lat.min()) / 2, population=8, generations=2)


def test_result_for_a_pick_chosen_elsewhere_is_exact_over_the_space(ctx, every):
    """The main job's search step for the accuracy loop's observed pick: its figures, the
    feasible count, the runner-up and the Pareto front over every network."""
    rows, acc, lat = every
    budget = float(np.median(lat))
    feasible = np.flatnonzero(lat <= budget)
    pick = feasible[np.argmin(acc[feasible])]  # any feasible network: chosen elsewhere
    res = ctx.result_for(rows[pick], budget, rows)
    assert res.best_indices.tolist() == rows[pick].tolist() and res.best_accuracy == pytest.approx(acc[pick])
    assert res.best_latency_ms == pytest.approx(lat[pick]) and (res.evaluated, res.feasible) == (32, len(feasible))
    assert res.runner_up_indices.tolist() == rows[feasible[np.argmax(acc[feasible])]].tolist()
    for a, t in zip(res.pareto_accuracy, res.pareto_latency_ms):  # non-dominated, and all of them
        assert not ((acc > a) & (lat <= t)).any()
    assert np.argmax(acc) in [int(np.flatnonzero((rows == r).all(axis=1))[0]) for r in res.pareto_indices]
    with pytest.raises(SearchError, match="not among"):
        ctx.result_for(np.full(rows.shape[1], 99), budget, rows)


def test_latency_range_samples_the_space(ctx, every):
    _, _, lat = every
    r = ctx.latency_range_ms(n=64, seed=1)
    assert r.shape == (64,) and lat.min() - 1e-12 <= r.min() and r.max() <= lat.max() + 1e-12
    np.testing.assert_array_equal(r, ctx.latency_range_ms(n=64, seed=1))


def test_result_dict_names_architectures_and_predicted_figures(ctx, every):
    _, _, lat = every
    res = ctx.search(float(np.median(lat)), population=24, generations=8)
    d = result_dict(ctx, res)
    assert d["best"]["architecture"] == ctx.space.from_indices(res.best_indices).to_dict()
    assert d["best"]["predicted_latency_ms"] == res.best_latency_ms
    assert len(d["pareto"]) == len(res.pareto_indices)
    lats = [p["predicted_latency_ms"] for p in d["pareto"]]
    accs = [p["predicted_accuracy"] for p in d["pareto"]]
    assert lats == sorted(lats) and accs == sorted(accs)  # a front: slower only when more accurate


def test_missing_journal_or_empty_table_is_a_search_error(tiny_gray_search, x86, tmp_path):
    with pytest.raises(SearchError, match="no accuracy journal at"):
        fit_accuracy_predictor(tiny_gray_search.space, tmp_path / "none.jsonl")
    with pytest.raises(SearchError, match=r"the latency table .* is empty: build it first with "
                                          r"python -m chamtvm tune --target x86 --space tinygray"):
        search_context(tiny_gray_search.space, x86, tmp_path, None, tiny_gray_search.journal)
