"""``chamtvm friendliness`` through the real command line: bad inputs exit 2 with a clear
message before any measurement or file. What it measures, writes and prints is tested in
tests/friendly/test_profile.py (real networks measured once and reused; the table, heat map
and reduced space written; the printed table)."""

from pathlib import Path

import pytest

from chamtvm.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "data"
LAYERS_TINY = DATA / "space_layers_tiny.json"


@pytest.mark.parametrize("argv, message", [
    (["--space", "no-such-space"], "unknown space"),
    (["--target", "no-such-target"], "no-such-target"),
    (["--space", "fashion", "--networks", "20"], "has 34 effects"),
    (["--space", str(LAYERS_TINY), "--networks", "30"], "has only 24 networks"),
    (["--space", str(LAYERS_TINY), "--task", "none", "--journal", "missing.jsonl"], "is not a file"),
    (["--space", str(LAYERS_TINY), "--task", "nas-bench-macro"], "--task nas-bench-macro"),
    (["--drop", "1"], "fraction in [0, 1)"),
    (["--networks", "two"], "must be an integer"),
    (["--seed", "-1"], "seed must be an integer in 0.."),
])
def test_bad_input_exits_2_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["friendliness", *argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing was measured or written
