"""The budget-aware loop on synthetic tables whose best network under every budget is known."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.accuracy.budgeted import pick_under_budgets
from chamtvm.accuracy.synthetic import synthetic_table


@pytest.fixture(scope="module")
def table():
    """81 networks (4 layers x 3 options), additive quality, no noise: the best under each
    budget is determined by the structure, so a loop that learns it finds it."""
    return synthetic_table(0, layers=4, choices=3, interaction=0.0, noise=0.0)


@pytest.fixture(scope="module")
def run12(table):
    return pick_under_budgets(table.X, table.oracle, table.latency_ms, table.budgets(), 12, seed=0,
                              prior=table.prior)


def _random_finds_all(table, n, trials=200):
    budgets = table.budgets()
    best = [table.best_under(b) for b in budgets]
    usable = np.flatnonzero(table.latency_ms <= max(budgets))
    hits = 0
    for s in range(trials):
        looked = np.random.default_rng(s).choice(usable, n, replace=False)
        hits += all(b in looked for b in best)
    return hits / trials


@pytest.mark.parametrize("seed", [0, 1])
def test_finds_the_best_under_every_budget_in_12_lookups(table, run12, seed):
    budgets = table.budgets()
    r = run12 if seed == 0 else pick_under_budgets(table.X, table.oracle, table.latency_ms, budgets, 12,
                                                   seed=seed, prior=table.prior)
    assert [p.index for p in r.picks] == [table.best_under(b) for b in budgets]
    assert all(p.observed for p in r.picks)
    # the same 12 lookups drawn at random find all three in under 5 % of draws
    assert _random_finds_all(table, 12) < 0.05


def test_pick_is_the_best_observed_and_phases_are_reported(table, run12):
    r = run12
    assert r.n_lookups == 12 and len(set(r.lookups.tolist())) == 12
    counts = r.phase_counts()
    assert counts == {"initial": 3, "exploration": 6, "verification": 3}
    assert r.phases == ["initial"] * 3 + ["exploration"] * 6 + ["verification"] * 3
    for p in r.picks:
        feas = table.latency_ms[r.lookups] <= p.budget_ms
        assert p.accuracy == pytest.approx(r.values[feas].max())
        assert p.feasible_observed == int(feas.sum())
        assert p.latency_ms <= p.budget_ms
    # no lookup on a network that no budget admits
    assert (table.latency_ms[r.lookups] <= max(table.budgets())).all()
    s = r.summary()
    assert s["lookups_by_phase"] == counts and s["lookups"] == 12 and len(s["picks"]) == 3


def test_same_seed_same_result_and_the_seed_matters(table, run12):
    again = pick_under_budgets(table.X, table.oracle, table.latency_ms, table.budgets(), 12, seed=0,
                               prior=table.prior)
    assert again.lookups.tolist() == run12.lookups.tolist()
    assert [p.index for p in again.picks] == [p.index for p in run12.picks]
    other = pick_under_budgets(table.X, table.oracle, table.latency_ms, table.budgets(), 5, seed=7)
    assert other.lookups[:3].tolist() != run12.lookups[:3].tolist()


def test_oracle_sees_only_chosen_indices_and_failures_are_counted(table):
    asked = []
    bad = set()

    def oracle(idx):
        out = table.oracle(idx).astype(float)
        for k, i in enumerate(idx):
            asked.append(int(i))
            if len(asked) in (2, 5):  # the 2nd and 5th trainings fail
                out[k] = np.nan
                bad.add(int(i))
        return out

    r = pick_under_budgets(table.X, oracle, table.latency_ms, table.budgets(), 9, seed=3)
    assert sorted(asked) == sorted(r.lookups.tolist()) and len(asked) == 9
    assert r.summary()["failed"] == len(bad) > 0
    assert all(p.index not in bad for p in r.picks if p.index is not None)


def test_a_budget_no_network_meets_and_one_without_lookups(table):
    tight = float(table.latency_ms.min()) * 0.5
    r = pick_under_budgets(table.X, table.oracle, table.latency_ms, [tight, max(table.budgets())], 5, seed=0)
    assert r.picks[0].index is None and r.picks[0].feasible == 0
    assert r.picks[1].observed
    # a budget met only by networks never looked up: the surrogate's prediction, marked as such
    only = float(np.sort(table.latency_ms)[1])
    r = pick_under_budgets(table.X, table.oracle, table.latency_ms, [only, max(table.budgets())], 4, seed=0)
    p = r.picks[0]
    if p.feasible_observed == 0:
        assert not p.observed and p.index is not None and p.accuracy == pytest.approx(p.predicted_accuracy)


def test_batches_for_parallel_trainers(table):
    calls = []

    def oracle(idx):
        calls.append(len(idx))
        return table.oracle(idx)

    r = pick_under_budgets(table.X, oracle, table.latency_ms, table.budgets(), 11, seed=0, batch_size=3)
    assert r.n_lookups == 11 and len(set(r.lookups.tolist())) == 11
    assert calls[0] == 3 and max(calls) == 3 and sum(calls) == 11


@pytest.mark.parametrize("change, error", [
    (dict(pool_X=np.zeros(5)), "pool_X must be a non-empty"),
    (dict(pool_X=np.full((81, 4), np.nan)), "NaN"),
    (dict(oracle=42), "oracle must be callable"),
    (dict(latency_ms=np.ones(80)), "one value per pool point"),
    (dict(latency_ms=-np.ones(81)), "finite and positive"),
    (dict(budgets_ms=[]), "budgets_ms is empty"),
    (dict(budgets_ms=[0.0]), "finite and positive"),
    (dict(n_lookups=2), "at least 3"),
    (dict(n_lookups=5.0), "must be an int"),
    (dict(n_lookups=10_000), "exceeds"),
    (dict(prior=np.ones((80, 2))), "prior must be"),
])
def test_input_checks(table, change, error):
    args = dict(pool_X=table.X, oracle=table.oracle, latency_ms=table.latency_ms, budgets_ms=table.budgets(),
                n_lookups=5)
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=error):
        pick_under_budgets(**args)


def test_oracle_returning_the_wrong_count(table):
    with pytest.raises(ValueError, match="oracle returned"):
        pick_under_budgets(table.X, lambda i: [0.5], table.latency_ms, table.budgets(), 5)


def test_known_points_are_observations_never_asked_and_replace_the_initial_phase(table):
    """Known points join the fits and can be picks; the oracle never sees them, n counts only
    new lookups, and 4 known points leave the initial phase (ceil(12 / 4) = 3) nothing to draw."""
    budgets = table.budgets()
    best = [table.best_under(b) for b in budgets]
    known = np.array([i for i in np.random.default_rng(3).permutation(len(table.X)) if i not in best][:3] + [best[0]])
    asked = []

    def oracle(idx):
        asked.extend(int(i) for i in idx)
        return table.oracle(idx)

    r = pick_under_budgets(table.X, oracle, table.latency_ms, budgets, 12, seed=0, prior=table.prior,
                           known=(known, table.oracle(known)))
    assert len(asked) == 12 and not set(asked) & set(known.tolist())
    assert r.n_lookups == 12 and r.n_known == 4 and r.lookups[:4].tolist() == known.tolist()
    assert r.phase_counts() == {"known": 4, "initial": 0, "exploration": 9, "verification": 3}
    assert r.picks[0].index == best[0] and r.picks[0].observed  # a known network is a pick like a lookup
    assert [p.index for p in r.picks] == best


def test_known_points_checked(table):
    budgets = table.budgets()
    with pytest.raises(ValueError, match="repeat"):
        pick_under_budgets(table.X, table.oracle, table.latency_ms, budgets, 5, known=([1, 1], [0.5, 0.5]))
    usable = int((table.latency_ms <= max(budgets)).sum())
    feas = np.flatnonzero(table.latency_ms <= max(budgets))[:5]
    with pytest.raises(ValueError, match="not known that meet"):
        pick_under_budgets(table.X, table.oracle, table.latency_ms, budgets, usable - 2,
                           known=(feas, table.oracle(feas)))
