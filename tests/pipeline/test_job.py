"""The whole main job on a tiny space and the digits task, for real: latency table and
predictor, accuracy predictor, search at automatic budgets, export, measurement; then a
rerun that trains, measures and exports nothing twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# real trackers, servers and full main-job runs: minutes on 2 cores
pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[1] / "data"


def _config(tmp_path, **kw):
    from chamtvm.pipeline.config import TuneConfig

    base = dict(space=str(DATA / "space_tiny_gray.json"), trials=0, heldout=2, train_networks=2,
                calibration=False, task="digits", accuracy_samples=4, accuracy_pool=12,
                population=24, generations=6, luts_dir=tmp_path / "luts", runs_dir=tmp_path / "runs",
                progress=False)
    base.update(kw)
    return TuneConfig(**base)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, x86):
    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.job import run_tune

    tmp = tmp_path_factory.mktemp("mainjob")
    cfg = _config(tmp)
    with LocalRunner(x86) as runner:
        report = run_tune(x86, runner, cfg, log=lambda *a: None)
    return tmp, cfg, report


def test_main_job_chains_accuracy_search_export_and_measure(first_run):
    tmp, cfg, report = first_run
    acc = report["accuracy"]
    assert acc["status"] == "ok" and acc["samples"] == 4 and acc["trained_now"] == 4
    assert 0.0 < acc["measured_accuracy"]["min"] <= acc["measured_accuracy"]["max"] <= 1.0
    picks = report["picks"]
    assert len(picks) == 3 and all("error" not in p for p in picks)
    budgets = [p["budget_ms"] for p in picks]
    assert budgets == sorted(budgets) and budgets[0] < budgets[-1]
    for p in picks:
        # the search respects each budget by its own (batch) prediction, and the network
        # predictor agrees with it on the chosen network
        assert p["search_latency_ms"] <= p["budget_ms"]
        assert p["predicted_latency_ms"] == pytest.approx(p["search_latency_ms"], rel=1e-6)
        assert p["measured_ms"] and p["measured_ms"] > 0
        assert p["exported_now"]
        for key in ("arch", "onnx", "torch_export", "library"):
            assert Path(p["artifacts"][key]).exists()
    # a larger budget never buys a less accurate predicted network
    accs = [p["predicted_accuracy"] for p in picks]
    assert all(a <= b + 1e-12 for a, b in zip(accs, accs[1:]))
    assert Path(report["picks_plot"]).exists()


def test_exported_pick_runs_with_plain_tvm(first_run):
    """The exported library of a pick computes what its torch model computes."""
    import torch
    import tvm
    from tvm import relax

    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace

    _, cfg, report = first_run
    p = report["picks"][0]
    space = SearchSpace.load(cfg.space)
    model = build_model(space, Arch.from_dict(p["architecture"]))
    x = np.random.default_rng(0).standard_normal(p["artifacts"]["input_shape"]).astype("float32")
    vm = relax.VirtualMachine(tvm.runtime.load_module(p["artifacts"]["library"]), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == (1, 10)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


def test_rerun_is_up_to_date(first_run, x86):
    from chamtvm.table.store import LatencyTable
    from chamtvm.measure.local import LocalRunner
    from chamtvm.pipeline.job import run_tune

    tmp, cfg, first = first_run
    nets = LatencyTable(Path(cfg.luts_dir) / "x86.networks.jsonl").load()
    n_nets, n_rows = len(nets), len(LatencyTable(Path(cfg.luts_dir) / "x86.jsonl").load())
    with LocalRunner(x86) as runner:
        again = run_tune(x86, runner, cfg, log=lambda *a: None)
    assert again["table"]["measured_now"] == 0
    assert again["accuracy"]["trained_now"] == 0 and again["accuracy"]["resumed_from_journal"] == 4
    assert [p["budget_ms"] for p in again["picks"]] == [p["budget_ms"] for p in first["picks"]]
    assert [p["architecture"] for p in again["picks"]] == [p["architecture"] for p in first["picks"]]
    assert not any(p["exported_now"] for p in again["picks"])
    assert len(LatencyTable(Path(cfg.luts_dir) / "x86.networks.jsonl").load()) == n_nets
    assert len(LatencyTable(Path(cfg.luts_dir) / "x86.jsonl").load()) == n_rows
    journal = Path(cfg.runs_dir) / "accuracy-digits-tinygray.jsonl"
    assert len(journal.read_text().splitlines()) == 4


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
