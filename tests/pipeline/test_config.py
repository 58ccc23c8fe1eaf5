"""``pipeline.config``: TuneConfig's defaults, and its folders resolved under the working
folder at construction (given folders kept, as paths)."""

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
