"""The working folder: $CHAMTVM_HOME or the current directory, resolved at call time."""

from chamtvm.core import workdir


def test_workdir_follows_the_environment_and_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("CHAMTVM_HOME", raising=False)
    monkeypatch.delenv("CHAMTVM_SCHEDULES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert workdir.workdir() == tmp_path
    assert workdir.luts_dir() == tmp_path / "luts" and workdir.runs_dir() == tmp_path / "runs"
    assert workdir.schedules_root() == tmp_path / "schedules"
    home = tmp_path / "home"
    monkeypatch.setenv("CHAMTVM_HOME", str(home))
    assert workdir.luts_dir() == home / "luts"
    monkeypatch.setenv("CHAMTVM_SCHEDULES_DIR", str(tmp_path / "db"))
    assert workdir.schedules_root() == tmp_path / "db"
    # one place builds a target's table path and schedules folder; an explicit root wins
    assert workdir.table_path("x86") == home / "luts" / "x86.jsonl"
    assert workdir.table_path("x86", tmp_path / "l") == tmp_path / "l" / "x86.jsonl"
    assert workdir.target_schedules_dir("arm") == tmp_path / "db" / "arm"
    assert workdir.target_schedules_dir("arm", tmp_path / "s") == tmp_path / "s" / "arm"
