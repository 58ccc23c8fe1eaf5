"""``chamtvm friendliness`` through the real command line: bad inputs exit 2 with a clear
message before any measurement; on a tiny per-layer space it measures real networks end to end
(TVM, local x86), reuses them on a rerun, and writes the table, the heat map and a reduced
space that loads."""

import json
from pathlib import Path

import numpy as np
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
])
def test_bad_input_exits_2_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["friendliness", *argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing was measured or written


def _journal(path: Path, space, rows):
    """An accuracy journal of the design networks (a user's own trainings): accuracy rises with
    every block that is not a skip, by a known amount per layer."""
    from chamtvm.accuracy.journal import Journal

    gain = {"skip": 0.0, "ir_k3_e3": 0.02, "ir_k3_e1": 0.01, "ir_k5_e6": 0.015}
    j = Journal(path)
    for r in rows:
        arch = space.from_indices(r)
        acc = 0.8 + sum(gain[b] for b in arch.layers) + 0.002 * (arch.resolution == 24)
        j.append({"architecture": arch.to_dict(), "accuracy": acc, "seed": 0, "epochs": 1, "seconds": 0.0,
                  "task": "user", "space": space.name})


@pytest.mark.slow
def test_tiny_space_end_to_end_with_a_journal_and_a_rerun(tmp_path, capsys):
    from chamtvm.friendly.design import balanced_design, effects_model
    from chamtvm.space.schema import SearchSpace

    space = SearchSpace.load(LAYERS_TINY)
    rows = balanced_design(effects_model(space), 8, seed=0)
    _journal(tmp_path / "acc.jsonl", space, rows)
    argv = ["--workdir", str(tmp_path), "friendliness", "--target", "x86", "--space", str(LAYERS_TINY),
            "--networks", "8", "--task", "none", "--journal", str(tmp_path / "acc.jsonl"), "--drop", "0.4",
            "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "8 networks measured end to end (8 now, 0 from the network journal" in text
    assert "layers[1]" in text and "DROPPED" in text
    doc = json.loads((tmp_path / "out" / "friendliness.json").read_text())
    assert doc["networks"]["measured_ok"] == 8 and not doc["emulated"]
    assert all(ms > 0 for ms in doc["networks"]["latency_ms"])
    assert (tmp_path / "out" / "friendliness.png").stat().st_size > 1000
    small = SearchSpace.load(doc["reduced_space"]["path"])
    assert small.name == "layers-tiny-x86-friendly" and small.size() < space.size()
    assert "reduced for target x86" in json.loads(Path(doc["reduced_space"]["path"]).read_text())["description"]
    # the rerun measures nothing: every design network is in the network journal
    assert main(argv[:-1] + ["--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["networks"]["measured_now"] == 0 and again["networks"]["reused_from_journal"] == 8
    assert np.allclose(again["networks"]["latency_ms"], doc["networks"]["latency_ms"])
