"""``pipeline.config``: TuneConfig's defaults, its folders resolved under the working folder
at construction (given folders kept, as paths), and the defaults tune and search share."""

from pathlib import Path


def test_defaults_and_folders_under_the_working_folder(tmp_path, monkeypatch):
    from chamtvm.pipeline.config import TuneConfig

    monkeypatch.setenv("CHAMTVM_HOME", str(tmp_path))
    cfg = TuneConfig()
    assert (cfg.space, cfg.task, cfg.statistic, cfg.residual_mode) == ("macro", "nas-bench-macro",
                                                                      "runtime_us_p50", "scale")
    assert cfg.trials == 64 and cfg.heldout == 20 and cfg.accuracy_samples == 20 and cfg.contenders == 2
    assert cfg.calibration is True and cfg.real_calibration is False and cfg.progress is True
    assert cfg.luts_dir == tmp_path / "luts" and cfg.runs_dir == tmp_path / "runs"
    assert cfg.schedules_dir is None  # resolved later (ScheduleSource, $CHAMTVM_SCHEDULES_DIR)
    assert cfg.budgets_ms is None and cfg.lcb_kappa is None and cfg.executor is None


def test_folders_resolve_at_construction_not_later(tmp_path, monkeypatch):
    from chamtvm.pipeline.config import TuneConfig

    monkeypatch.setenv("CHAMTVM_HOME", str(tmp_path / "a"))
    cfg = TuneConfig()
    monkeypatch.setenv("CHAMTVM_HOME", str(tmp_path / "b"))
    assert cfg.luts_dir == tmp_path / "a" / "luts"
    assert TuneConfig().luts_dir == tmp_path / "b" / "luts"


def test_given_folders_become_paths(tmp_path):
    from chamtvm.pipeline.config import TuneConfig

    cfg = TuneConfig(luts_dir=str(tmp_path / "l"), runs_dir=str(tmp_path / "r"), schedules_dir=str(tmp_path / "s"))
    assert cfg.luts_dir == tmp_path / "l" and isinstance(cfg.luts_dir, Path)
    assert cfg.runs_dir == tmp_path / "r" and isinstance(cfg.runs_dir, Path)
    assert cfg.schedules_dir == tmp_path / "s" and isinstance(cfg.schedules_dir, Path)


def test_search_and_tune_share_their_defaults():
    from chamtvm.accuracy.tasks import default_space
    from chamtvm.cli.main import build_parser
    from chamtvm.latency.models import DEFAULT_RESIDUAL_MODE, ResidualModel
    from chamtvm.pipeline.config import DEFAULT_SPACE, DEFAULT_TASK, SearchConfig, TuneConfig

    assert default_space(DEFAULT_TASK) == DEFAULT_SPACE == TuneConfig().space
    assert SearchConfig().space is None  # resolved to DEFAULT_SPACE by the search job
    assert TuneConfig().residual_mode == ResidualModel().mode == DEFAULT_RESIDUAL_MODE
    args = build_parser().parse_args(["tune"])
    assert args.residual == DEFAULT_RESIDUAL_MODE and args.task == DEFAULT_TASK
    assert build_parser().parse_args(["search", "--latency-ms", "1"]).space is None
