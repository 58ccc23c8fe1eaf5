"""The whole main job for real (the session's run on the default ``macro`` space and the
``nas-bench-macro`` lookup task, conftest ``macro_main_job``): latency table and predictor,
the budget-aware accuracy loop at automatic budgets, the best observed network under each,
export, measurement; then a rerun that looks up, measures and exports nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

# full main-job runs: minutes on 2 cores
pytestmark = pytest.mark.slow


def test_main_job_chains_budgets_accuracy_loop_export_and_measure(macro_main_job):
    report = macro_main_job.report
    acc = report["accuracy"]
    assert acc["status"] == "ok" and acc["samples"] == 10 and acc["trained_now"] == 10
    assert acc["pool"] == 6561 and sum(acc["lookups_by_phase"].values()) == 10
    assert acc["lookups_by_phase"]["verification"] >= 1
    assert 0.0 < acc["measured_accuracy"]["min"] <= acc["measured_accuracy"]["max"] <= 1.0
    picks = report["picks"]
    assert len(picks) == 3 and all("error" not in p for p in picks)
    budgets = [p["budget_ms"] for p in picks]
    assert budgets == sorted(budgets) and budgets[0] < budgets[-1]
    # the loop ran at the job's budgets, and its best observed network is the job's pick
    assert [p["budget_ms"] for p in acc["picks"]] == budgets
    for p, loop in zip(picks, acc["picks"]):
        assert p["chosen_by"] == "observed" and loop["observed"]
        assert p["architecture"] == loop["architecture"] and p["observed_accuracy"] == loop["accuracy"]
        # the pick meets its budget by the batch prediction the loop used, and the network
        # predictor agrees with it on the chosen network
        assert p["search_latency_ms"] <= p["budget_ms"]
        assert p["search_latency_ms"] == pytest.approx(loop["latency_ms"], rel=1e-9)
        assert p["predicted_latency_ms"] == pytest.approx(p["search_latency_ms"], rel=1e-6)
        assert p["measured_ms"] and p["measured_ms"] > 0
        assert p["exported_now"]
        for key in ("arch", "onnx", "torch_export", "library"):
            assert Path(p["artifacts"][key]).exists()
    # a larger budget never buys a less accurate observed network (nested feasible sets)
    seen = [p["observed_accuracy"] for p in picks]
    assert all(a <= b for a, b in zip(seen, seen[1:]))
    assert Path(report["picks_plot"]).exists()
    assert "accuracy" not in report["skipped_steps"] and "search" not in report["skipped_steps"]


def test_faster_schedules_is_a_step_after_the_tuned_table_and_skipped_without_tuning(macro_main_job):
    """``--trials 0``: the step that sets aside schedules no faster in the network than the
    default is listed as skipped by the tuning step's reason, and the report says none was."""
    from chamtvm.pipeline.job import TUNE_STEPS

    names = [s.name for s in TUNE_STEPS]
    assert names.index("tuned table") + 1 == names.index("faster schedules") < names.index("models")
    report = macro_main_job.report
    assert report["skipped_steps"]["tuning"] == "--trials 0"
    assert report["skipped_steps"]["faster schedules"] == "step 'tuning' skipped (--trials 0)"
    assert report["tuning"]["set_aside_in_network"] == 0 and report["tuning"]["set_aside_kernels"] == []


def test_exported_pick_runs_with_plain_tvm(macro_main_job):
    """The exported library of a pick computes what its torch model computes."""
    import torch
    import tvm
    from tvm import relax

    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace

    cfg, report = macro_main_job.cfg, macro_main_job.report
    p = report["picks"][0]
    space = SearchSpace.load(cfg.space)
    model = build_model(space, Arch.from_dict(p["architecture"]))
    x = np.random.default_rng(0).standard_normal(p["artifacts"]["input_shape"]).astype("float32")
    vm = relax.VirtualMachine(tvm.runtime.load_module(p["artifacts"]["library"]), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape == (1, 10)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


def test_rerun_is_up_to_date(macro_main_job):
    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.job import run_tune
    from chamtvm.table.store import LatencyTable

    cfg, first, target = macro_main_job.cfg, macro_main_job.report, macro_main_job.target
    nets = LatencyTable(Path(cfg.luts_dir) / "x86.networks.jsonl").load()
    n_nets, n_rows = len(nets), len(LatencyTable(Path(cfg.luts_dir) / "x86.jsonl").load())
    journaled = (Path(cfg.luts_dir) / "x86.networks.jsonl").read_text()
    with LocalRunner(target) as runner:
        again = run_tune(target, runner, cfg, log=lambda *a: None)
    assert again["table"]["measured_now"] == 0 and again["skipped_steps"]["table"] == "up to date"
    assert again["accuracy"]["trained_now"] == 0 and again["accuracy"]["resumed_from_journal"] == 10
    assert [p["budget_ms"] for p in again["picks"]] == [p["budget_ms"] for p in first["picks"]]
    assert [p["architecture"] for p in again["picks"]] == [p["architecture"] for p in first["picks"]]
    assert not any(p["exported_now"] for p in again["picks"])
    assert len(LatencyTable(Path(cfg.luts_dir) / "x86.networks.jsonl").load()) == n_nets
    assert (Path(cfg.luts_dir) / "x86.networks.jsonl").read_text() == journaled  # no network timed again
    assert len(LatencyTable(Path(cfg.luts_dir) / "x86.jsonl").load()) == n_rows
    journal = Path(cfg.runs_dir) / "accuracy-nas-bench-macro-macro.jsonl"
    assert len(journal.read_text().splitlines()) == 10


def test_a_reduced_space_reuses_the_main_jobs_lookups_as_known_points(macro_main_job, tmp_path):
    """``tune --space <a restriction of macro> --known-accuracies <macro's journal>``: the
    main job's lookups that lie in the reduced space join its loop as known points (not looked
    up again, not counted), and the job runs to its picks."""
    import dataclasses
    from collections import Counter

    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.job import run_tune
    from chamtvm.space.restrict import restrict
    from chamtvm.space.schema import Arch, SearchSpace

    cfg, target = macro_main_job.cfg, macro_main_job.target
    journal = Path(cfg.runs_dir) / "accuracy-nas-bench-macro-macro.jsonl"
    looked = [Arch.from_dict(json.loads(line)["architecture"]) for line in journal.read_text().splitlines()]
    macro = SearchSpace.load("macro")
    rare = Counter(a.layers[7] for a in looked)  # drop layers[7]'s least looked-up choice
    drop = min(macro.layers[7].choices, key=lambda c: rare.get(c, 0))
    small = restrict(macro, {"layers[7]": [c for c in macro.layers[7].choices if c != drop]}, "macro-test-reduced")
    inside = {a.to_json() for a in looked if a.layers[7] != drop}
    path = tmp_path / "macro-test-reduced.json"
    path.write_text(json.dumps(small.to_dict()))
    red = dataclasses.replace(cfg, space=str(path), accuracy_samples=4, accuracy_known=journal)
    with LocalRunner(target) as runner:
        report = run_tune(target, runner, red, log=lambda *a: None)
    acc = report["accuracy"]
    assert acc["status"] == "ok" and acc["known_trainings"]["used_networks"] == len(inside) >= 6
    assert acc["lookups_by_phase"]["known"] == len(inside) and acc["trained_now"] == 4
    assert acc["samples"] == len(inside) + 4
    own = Path(cfg.runs_dir) / "accuracy-nas-bench-macro-macro-test-reduced.jsonl"
    new = {Arch.from_dict(json.loads(line)["architecture"]).to_json() for line in own.read_text().splitlines()}
    assert len(new) == 4 and not new & inside  # the known networks were not looked up again
    assert report["picks"] and all("error" not in p for p in report["picks"])


def test_task_that_cannot_train_the_space_stops_after_latency(tmp_path, x86, tiny_space):
    from chamtvm.pipeline.adapt import trainer_for

    trainer, reason = trainer_for("digits", tiny_space)
    assert trainer is None and "3 channels" in reason
    trainer, reason = trainer_for("none", tiny_space)
    assert trainer is None and "--task none" in reason


def test_cli_refuses_bad_budgets(capsys):
    from chamtvm.cli.main import main

    for bad in ("-1", "0", "abc", "1,nan"):
        with pytest.raises(SystemExit) as e:
            main(["tune", "--budgets-ms", bad])
        assert e.value.code == 2
        assert "budget" in capsys.readouterr().err


def test_tune_picks_tunes_each_picks_own_kernels_and_reports_before_and_after(macro_main_job, tmp_path):
    """Step ``tune picks`` (``pick_trials``): real MetaSchedule trials on the picks' own kernels
    after the search, one campaign of ``pick_trials`` per distinct pick over their distinct
    kernels (a shared kernel tuned once: the same line in every pick that has it); the pick is re-priced, exported with the schedules that result and
    measured, and the report holds its latency before (predicted and measured) and after.
    Neighbours of the picks (``pick_neighbours``) are timed beside them, end to end and call by
    call; the picks' kernels are priced by their times inside those networks and the residual
    is refitted on them, never on a pick (``pipeline.tuned_residual``). The
    regret's contenders are not measured again with the tuned schedules (``contenders=0``): the
    regret step is checked on the first run (``tests/pipeline/test_regret.py``)."""
    import dataclasses
    import shutil

    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.job import run_tune
    from chamtvm.pipeline.report import format_report

    first, target = macro_main_job.report, macro_main_job.target
    assert first["skipped_steps"]["tune picks"].startswith("--trials 0")
    for folder in ("luts", "runs"):
        shutil.copytree(macro_main_job.tmp / folder, tmp_path / folder)
    cfg = dataclasses.replace(macro_main_job.cfg, luts_dir=tmp_path / "luts", runs_dir=tmp_path / "runs",
                              schedules_dir=tmp_path / "schedules", pick_trials=4, trials_per_kernel=4,
                              tuning_population=16, contenders=0, pick_neighbours=4)
    with LocalRunner(target) as runner:
        report = run_tune(target, runner, cfg, log=lambda *a: None)
    assert "tune picks" not in report["skipped_steps"]
    picks = report["picks"]
    assert [p["architecture"] for p in picks] == [p["architecture"] for p in first["picks"]]
    distinct = len({json.dumps(p["architecture"], sort_keys=True) for p in picks})
    refit = report["residual_after_pick_tuning"]
    tuning_archs = {json.dumps(a, sort_keys=True) for a in refit["archs"]}
    assert len(tuning_archs) == 4 * distinct  # no training networks in this job: 4 neighbours per pick
    assert not tuning_archs & {json.dumps(p["architecture"], sort_keys=True) for p in picks}
    journal = [json.loads(line) for line in (tmp_path / "luts" / "x86.networks.jsonl").read_text().splitlines()]
    assert tuning_archs <= {json.dumps(r.get("arch"), sort_keys=True) for r in journal}  # kept in the journal
    assert refit["networks"] == 4 * distinct
    if 4 * distinct >= 8:
        assert refit["chosen"] is not None and "cv_mape_pct" in refit
    # each tuning network also timed call by call; the picks' kernels priced from those times
    inn = refit["in_network"]
    assert inn["networks_timed_now"] == 4 * distinct
    rows = [json.loads(line) for line in Path(inn["table"]).read_text().splitlines()]
    assert len({r["network_key"] for r in rows}) == 4 * distinct and all(r["runtime_us_p50"] > 0 for r in rows)
    for (priced, total), p in zip(inn["picks_kernels_priced_in_network"], picks):
        assert 0 < priced <= total  # neighbours share most of a pick's kernels
    joint: dict[str, dict] = {}
    for p in picks:
        for k in p["tuning"]["kernels"]:
            if k["policy"] == "joint":
                assert joint.setdefault(k["struct_hash"], k) == k  # one tuning of a shared kernel
    assert joint
    for p, before in zip(picks, first["picks"]):
        t = p["tuning"]
        assert t["trials_budget"] == 4 * distinct and t["campaign_networks"] == distinct
        assert 1 <= t["trials_spent"] <= t["trials_budget"]
        # before: the pick as the first run priced and measured it (default schedules)
        assert t["predicted_before_ms"] == pytest.approx(before["predicted_latency_ms"], rel=1e-9)
        assert t["measured_before_ms"] == pytest.approx(before["measured_ms"], rel=1e-9)  # from the journal
        # after: never above the default schedules kernel by kernel (slower records set aside)
        assert t["table_sum_after_ms"] <= t["table_sum_default_ms"] * (1 + 1e-9)
        # the search had no residual; the picks are priced by the one refitted on the tuning networks
        assert t["predicted_with_search_residual_ms"] == pytest.approx(t["table_sum_after_ms"], rel=1e-6)
        assert t["within_budget_after"] == (p["predicted_latency_ms"] <= p["budget_ms"])
        assert p["measured_ms"] > 0
        # the export ships what was priced: re-exported exactly when a schedule changed
        changed = t["provenance_after"] != t["provenance_before"]
        assert p["exported_now"] == changed
        stamp = json.loads((Path(p["artifacts"]["library"]).parent / "export.json").read_text())["stamp"]
        assert stamp["arch"] == p["architecture"]
    assert "the picks' own kernels tuned before export" in format_report(report)
