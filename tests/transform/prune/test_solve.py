"""The integer program finds the known optimum: on random tiny instances (checked by
enumerating every choice) and on a hand-made one whose answer is known; an impossible budget
says the fastest latency reachable."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.transform.prune.latency import PositionModel, WidthLatencyModel
from chamtvm.transform.prune.pwl import PiecewiseLinear
from chamtvm.transform.prune.solve import BudgetError, LatencyTerms, latency_terms, solve_brute_force, solve_milp
from chamtvm.transform.select import select_measured


def test_known_optimum_of_a_hand_made_instance():
    # two groups, widths {8, 16}; the pair costs 4 * (wa/8) * (wb/8); budget 10 allows one of them at 16
    cand = {"a": [8, 16], "b": [8, 16]}
    terms = LatencyTerms(1.0, {"a": np.array([1.0, 2.0]), "b": np.array([1.0, 2.0])},
                         {("a", "b"): np.array([[4.0, 8.0], [8.0, 16.0]])})
    costs = {"a": [0.5, 0.0], "b": [0.3, 0.0]}  # cutting a hurts more: keep a whole
    sol = solve_milp(terms, costs, cand, budget=12.0)
    assert sol.widths == {"a": 16, "b": 8} and sol.latency == pytest.approx(1 + 2 + 1 + 8)
    assert sol.cost == pytest.approx(0.3) and sol.status == "optimal"
    with pytest.raises(BudgetError, match="fastest reachable is about 7"):
        solve_milp(terms, costs, cand, budget=6.5)


@pytest.mark.parametrize("seed", range(6))
def test_milp_matches_brute_force_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    groups = ["g0", "g1", "g2", "g3"]
    cand = {g: sorted(rng.choice(np.arange(8, 65, 8), size=int(rng.integers(2, 5)), replace=False).tolist())
            for g in groups}
    unary = {g: rng.uniform(0.5, 2.0) * np.asarray(cand[g], float) / 8 for g in groups}
    pairs = {("g0", "g1"): np.outer(cand["g0"], cand["g1"]) / 64.0 * rng.uniform(0.5, 2),
             ("g1", "g2"): np.outer(cand["g1"], cand["g2"]) / 64.0 * rng.uniform(0.5, 2)}
    terms = LatencyTerms(float(rng.uniform(0, 3)), unary, pairs)
    costs = {g: np.sort(rng.uniform(0, 1, len(cand[g])))[::-1] * (np.asarray(cand[g]) < max(cand[g]))
             for g in groups}
    lo = terms.value({g: 0 for g in groups})
    hi = terms.value({g: len(cand[g]) - 1 for g in groups})
    budget = lo + rng.uniform(0.2, 0.8) * (hi - lo)
    exact = solve_brute_force(terms, costs, cand, budget)
    sol = solve_milp(terms, costs, cand, budget)
    assert sol.cost == pytest.approx(exact.cost, abs=1e-9)
    assert sol.latency <= budget + 1e-9


def test_terms_of_a_width_model_agree_with_its_prediction():
    lin = lambda pts: PiecewiseLinear().fit(*zip(*pts))
    model = WidthLatencyModel("x86", {"a": 32, "b": 16}, [
        PositionModel("k_const", (), 5.0),
        PositionModel("k_a", ("a",), 10.0, {"a": lin([(8, 3.0), (16, 5.0), (32, 10.0)])}),
        PositionModel("k_ab", ("a", "b"), 20.0, {"a": lin([(8, 6.0), (32, 20.0)]), "b": lin([(8, 11.0), (16, 20.0)])},
                      offset_us=2.0),
    ])
    cand = {"a": [8, 16, 32], "b": [8, 16]}
    terms = latency_terms(model, cand)
    for ia, wa in enumerate(cand["a"]):
        for ib, wb in enumerate(cand["b"]):
            assert terms.value({"a": ia, "b": ib}) == pytest.approx(model.kernel_sum_us({"a": wa, "b": wb}))
    # the pair model is bilinear with an offset: exact at full width, offset kept at the corner
    assert model.positions[2].predict_us({"a": 32, "b": 16}) == pytest.approx(20.0)
    assert model.positions[2].predict_us({"a": 8, "b": 8}) == pytest.approx(2 + (6 - 2) * (11 - 2) / 18)


def test_measured_check_lowers_the_budget_until_the_choice_measures_under_it():
    # two groups, latency = 10 + width/4 each (us); the "target" runs 8 % slower than the model
    cands = {"a": [8, 16, 24, 32], "b": [8, 16, 24, 32]}
    terms = LatencyTerms(10.0, {g: np.array(ws) / 4 for g, ws in cands.items()})
    costs = {g: [3.0, 2.0, 1.0, 0.0] for g in cands}  # wider keeps more accuracy
    slow = lambda sol: 1.08 * (10 + sum(sol.widths.values()) / 4) / 1e3  # ms
    solve = lambda budget_us: solve_milp(terms, costs, cands, budget_us)
    widths = lambda sol: {"widths": sol.widths}
    budget_ms = 0.0235
    sol, checks = select_measured(solve, slow, budget_ms, 23.5, 1e-3, describe=widths, fill=1.0)
    assert len(checks) >= 2 and not checks[0]["under_budget"] and checks[-1]["under_budget"]
    assert slow(sol) <= budget_ms * 0.99 and checks[-1]["widths"] == sol.widths and checks[-1]["kept"]
    assert not any(c["kept"] for c in checks[:-1])
    assert checks[1]["model_budget"] < checks[0]["modelled"] <= checks[0]["model_budget"]
    # measured under at once: one solution, the budget untouched
    sol1, one = select_measured(solve, lambda s: 0.9 * s.latency / 1e3, budget_ms, 23.5, 1e-3, fill=1.0)
    assert len(one) == 1 and sol1.widths == solve(23.5).widths
    # no lower budget is feasible: the last solution is kept, marked over the budget
    sol2, over = select_measured(solve, lambda s: 1.0, budget_ms, 23.5, 1e-3, tries=3, describe=widths)
    assert not over[-1]["under_budget"] and sol2.widths == over[-1]["widths"]
    # a choice that measures under is timed again and the second timing decides: the first
    # choice's lucky low timing (0.8x) is not believed, its confirmation (1.08x) is over, so
    # the program is solved again; every choice's timings are in its record
    lucky = lambda sol: 0.8 * slow(sol)
    sol3, noisy = select_measured(solve, lucky, budget_ms, 23.5, 1e-3, describe=widths, confirm_ms=slow, fill=1.0)
    assert noisy[0]["measured_ms"] == pytest.approx(lucky(solve(23.5)))
    assert noisy[0]["confirm_ms"] == pytest.approx(slow(solve(23.5))) and not noisy[0]["under_budget"]
    assert len(noisy) >= 2 and noisy[-1]["under_budget"] and slow(sol3) <= budget_ms * 0.99
    assert [c["widths"] for c in noisy] == [c["widths"] for c in checks]  # as if measured right at once
    assert all("confirm_ms" not in c for c in checks if not c["under_budget"])
    with pytest.raises(BudgetError):  # infeasible from the start: the solver's error
        select_measured(solve, slow, budget_ms, 5.0, 1e-3)
    with pytest.raises(ValueError):
        select_measured(solve, slow, budget_ms, 23.5, 0.0)


def test_measured_check_spends_a_budget_the_model_left_unused():
    """A choice that confirms well under the limit (the model over-predicts) is followed by
    one chosen under a budget raised by the shortfall; it is kept only if it also measures
    under, else the first stays."""
    cands = {"a": [8, 16, 24, 32], "b": [8, 16, 24, 32]}
    terms = LatencyTerms(10.0, {g: np.array(ws) / 4 for g, ws in cands.items()})
    costs = {g: [3.0, 2.0, 1.0, 0.0] for g in cands}
    solve = lambda budget_us: solve_milp(terms, costs, cands, budget_us)
    widths = lambda sol: {"widths": sol.widths}
    fast = lambda sol: 0.8 * sol.latency / 1e3  # the target runs 20 % faster than the model (ms)
    budget_ms = 0.0235
    first = solve(23.5)
    sol, checks = select_measured(solve, fast, budget_ms, 23.5, 1e-3, describe=widths)
    assert [c.get("fill", False) for c in checks] == [False, True]
    assert checks[1]["model_budget"] > checks[0]["model_budget"] and checks[1]["under_budget"]
    assert sol.latency > first.latency and fast(sol) <= budget_ms * 0.99 and sol.widths == checks[1]["widths"]
    assert all("confirm_ms" in c for c in checks)  # both timed twice
    assert [c["kept"] for c in checks] == [False, True]
    # the wider choice measures over (the target is only fast on narrow networks): the first stays
    kinked = lambda sol: (0.8 if sol.latency <= first.latency else 1.2) * sol.latency / 1e3
    sol2, checks2 = select_measured(solve, kinked, budget_ms, 23.5, 1e-3, describe=widths)
    assert sol2.widths == first.widths and checks2[-1]["fill"] and not checks2[-1]["under_budget"]
    assert [c["kept"] for c in checks2] == [True, False]
    assert "confirm_ms" not in checks2[-1]
    # within the fill share of the limit: nothing more is tried
    near = lambda sol: 0.97 * budget_ms * 0.99 if sol.latency <= first.latency else 1.0
    sol3, checks3 = select_measured(solve, near, budget_ms, 23.5, 1e-3)
    assert len(checks3) == 1 and sol3.widths == first.widths
