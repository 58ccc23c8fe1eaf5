"""``pipeline.search_job``: ``run_search`` on the tiny searchable space (``tiny_gray_search`` in
conftest): the best network under the budget exported into the output folder (renamed into
place whole), the report and the plot written. (Measuring the chosen network, ``--no-measure``
off, lowers and compiles it once more: left out here to keep the fast tier fast; the measuring
itself is ``measure.network``'s, tested in ``measure/test_network.py``.)"""

import pytest
import json

import numpy as np

from chamtvm.pipeline.config import SearchConfig
from chamtvm.pipeline.search_job import run_search


@pytest.mark.slow
def test_search_exports_and_reports(tiny_gray_search, cached_kernel_map, x86, in_process_runner, tmp_path):
    from chamtvm.lower.network import read_arch
    from chamtvm.search.context import search_context

    ctx = search_context(tiny_gray_search.space, x86, tiny_gray_search.luts, None, tiny_gray_search.journal)
    rows = np.array(tiny_gray_search.rows)
    lat, acc = ctx.batch.predict_ms(rows), ctx.accuracy(rows)
    budget = float(np.quantile(lat, 0.4))
    best = ctx.space.from_indices(rows[lat <= budget][np.argmax(acc[lat <= budget])])

    out = tmp_path / "runs" / "pick"
    cfg = SearchConfig(space=str(tiny_gray_search.space_path), latency_ms=budget, journal=tiny_gray_search.journal,
                       population=24, generations=8, out=out, luts_dir=tiny_gray_search.luts, measure=False)
    runner = in_process_runner()
    report = run_search(cfg, x86, runner)

    assert report["best"]["architecture"] == best.to_dict() and report["best"]["predicted_latency_ms"] <= budget
    assert report["target"] == "x86" and report["space"] == "tinygray" and report["latency_budget_ms"] == budget
    assert report["device_label"] == runner.label and report["emulated"] is False
    assert report["accuracy_predictor"]["trained_architectures"] == 32
    assert report["accuracy_predictor"]["task"] == "synthetic"
    assert report["latency_predictor"] == {"residual": "none", "estimated_kernels": []}
    assert report["search"]["population"] == 24 and report["search"]["feasible"] >= 1
    # artefacts as they read after the rename, all present; nothing left of the staging folder
    art = report["artifacts"]
    for k in ("arch", "onnx", "torch_export", "library", "pareto_plot"):
        assert art[k].startswith(str(out)) and (out / art[k][len(str(out)) + 1:]).exists(), k
    assert [p.name for p in out.parent.iterdir()] == ["pick"]
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    sp, arch = read_arch(out / "arch.json")
    assert arch == best and sp.name == "tinygray"
    assert "measured" not in report and runner.network_calls == 0
    assert "p_beats_runner_up" in report["uncertainty"] and "front_flatness" in report["uncertainty"]


def test_config_defaults():
    cfg = SearchConfig()
    assert cfg.space is None and cfg.population == 200 and cfg.generations == 60 and cfg.measure is True
    assert cfg.journal is None and cfg.out is None and cfg.max_mflops is None


def test_default_space_is_tunes_and_a_user_of_the_old_default_is_told(tmp_path, monkeypatch):
    import pytest

    from chamtvm.pipeline.search_job import search_journal
    from chamtvm.search.genetic import SearchError
    from chamtvm.space.schema import SearchSpace

    monkeypatch.setenv("CHAMTVM_HOME", str(tmp_path))
    macro, fashion = SearchSpace.load("macro"), SearchSpace.load("fashion")
    assert search_journal(SearchConfig(), macro) == tmp_path / "runs" / "accuracy-nas-bench-macro-macro.jsonl"
    assert search_journal(SearchConfig(space="fashion"), fashion) == tmp_path / "runs" / "accuracy-fashion-mnist-fashion.jsonl"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "accuracy-fashion-mnist-fashion.jsonl").write_text("")
    with pytest.raises(SearchError, match="default space is now 'macro', as for tune .* pass --space fashion"):
        search_journal(SearchConfig(), macro)
    assert search_journal(SearchConfig(journal=tmp_path / "j.jsonl"), macro) == tmp_path / "j.jsonl"
