"""Regret of a pick on a lookup task: the true best under the same budget, in points."""

import json
from pathlib import Path

import numpy as np
import pytest

from chamtvm.accuracy.tasks import make_trainer
from chamtvm.pipeline.regret import all_indices, contender_rows, pick_regret, regret_setup
from chamtvm.space.schema import SearchSpace


def test_regret_is_true_best_under_budget_minus_pick():
    space = SearchSpace.load("macro")
    trainer = make_trainer("nas-bench-macro")
    # a real latency stand-in computed from the architecture alone: millions of MACs
    setup = regret_setup(space, trainer, lambda idx: space.costs(idx)[:, 1] / 1e6)
    assert setup.indices.shape == (6561, 9) and len(setup.latency_ms) == 6561
    budget = float(np.median(setup.latency_ms))
    feas = setup.latency_ms <= budget
    best = np.flatnonzero(feas)[np.argmax(setup.true_accuracy[feas])]
    out = pick_regret(setup, setup.indices[best], budget, samples=10, contenders=0)
    assert out["regret_points"] == 0.0 and out["samples"] == 10
    assert out["best_true_accuracy_under_budget"] == setup.true_accuracy[best] == out["true_accuracy"]
    worse = np.flatnonzero(feas)[np.argmin(setup.true_accuracy[feas])]
    out = pick_regret(setup, setup.indices[worse], budget, 10, contenders=3,
                      measure_ms=lambda row: float(space.costs(row)[0, 1] / 1e6))
    assert out["regret_points"] == pytest.approx(100 * (setup.true_accuracy[best] - setup.true_accuracy[worse]))
    assert [c["true_accuracy"] for c in out["contenders"]] == sorted(
        [c["true_accuracy"] for c in out["contenders"]], reverse=True)
    assert all(c["meets_budget_measured"] for c in out["contenders"])
    assert out["best_true_accuracy_measured_under_budget"] == out["best_true_accuracy_under_budget"]
    # the rows a caller measures first, in one batch, are the contenders pick_regret reports
    rows = contender_rows(setup, budget, 3)
    assert [space.from_indices(r).to_dict() for r in rows] == [c["architecture"] for c in out["contenders"]]
    assert contender_rows(setup, float(setup.latency_ms.min()) / 2, 3) == []  # nothing under the budget


def test_no_regret_for_tasks_without_ground_truth_or_huge_spaces():
    space = SearchSpace.load("fashion")
    assert all_indices(space) is None
    assert regret_setup(space, make_trainer("digits"), lambda i: i[:, 0]) is None


@pytest.mark.slow  # the session's main job on the macro space (conftest macro_main_job)
def test_main_job_on_nas_bench_macro_reports_regret_per_budget(macro_main_job):
    from chamtvm.pipeline.report import format_report

    report, cfg = macro_main_job.report, macro_main_job.cfg
    assert (cfg.space, cfg.task) == ("macro", "nas-bench-macro")
    assert report["accuracy"]["kind"] == "lookup" and report["accuracy"]["pool"] == 6561
    assert report["regret"]["networks"] == 6561
    for p in report["picks"]:
        assert "error" not in p, p
        assert p["samples"] == 10
        assert 0 < p["true_accuracy"] <= p["best_true_accuracy_under_budget"] < 1
        assert p["regret_points"] == pytest.approx(100 * (p["best_true_accuracy_under_budget"] - p["true_accuracy"]))
        # the pick is the loop's observed network: its lookup is the task's true accuracy
        assert p["chosen_by"] == "observed" and p["observed_accuracy"] == pytest.approx(p["true_accuracy"])
        assert 0 <= p["p_beats_runner_up"] <= 1 and "flat" in p["front_flatness"]
        [c] = p["contenders"]
        assert c["measured_ms"] > 0 and c["true_accuracy"] == p["best_true_accuracy_under_budget"]
    text = format_report(report)
    assert "regret pts" in text and "P(beats runner-up)" in text and "(looked up)" in text
    lines = [json.loads(x) for x in (Path(cfg.runs_dir) / "accuracy-nas-bench-macro-macro.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and all(x["kind"] == "lookup" for x in lines)
