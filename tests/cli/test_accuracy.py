"""The ``accuracy`` subcommand (chamtvm.cli.accuracy) and the package's import cost."""

import json
import subprocess
import sys

import pytest

from chamtvm.accuracy import Journal, GPPredictor
from chamtvm.cli.accuracy import main


TINY_SPACE = {  # 128 small 28x28 networks: keeps the test to a few seconds of training
    "name": "tiny", "in_channels": 1, "num_classes": 10, "resolution": [28],
    "stem_channels": [8], "head_channels": [32, 64],
    "stages": [{"stride": s, "channels": [8, 12], "blocks": [1], "expansion": [1, 2], "kernel": [3]}
               for s in (1, 2, 2)],
}


@pytest.mark.slow  # trains 3 digits networks (~15 s contended); journal resume is fast-tested in tests/accuracy
def test_cli_digits_three_samples_then_resume(tmp_path, capsys):
    j = tmp_path / "acc.jsonl"
    space = tmp_path / "tiny.json"
    space.write_text(json.dumps(TINY_SPACE))
    argv = ["accuracy", "--task", "digits", "--samples", "3", "--epochs", "1", "--pool", "12",
            "--space", str(space), "--journal", str(j), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["samples"] == 3 and out["trained_now"] == 3 and out["failed"] == 0
    tau = out["cv"]["kendall_tau"]  # None: out-of-fold predictions were constant
    assert out["cv"]["n"] == 3 and (tau is None or -1 <= tau <= 1) and out["cv"]["rmse"] >= 0
    assert len(Journal(j).records()) == 3
    gp = GPPredictor.load(out["predictor"])
    assert gp.predict(gp.X_train_[:1]).shape == (1,) and len(gp.y_train_) == 3
    # same arguments again: every training comes from the journal, same choices
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["trained_now"] == 0 and again["resumed_from_journal"] == 3
    assert again["predicted_best"] == out["predicted_best"]


def test_cli_missing_dataset_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path))
    code = main(["accuracy", "--task", "fashion-mnist", "--samples", "3", "--pool", "5",
                 "--journal", str(tmp_path / "j.jsonl")])
    assert code == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


def test_cli_command_task_needs_a_command(tmp_path, capsys):
    assert main(["accuracy", "--task", "command", "--journal", str(tmp_path / "j.jsonl")]) == 2
    assert "--command" in capsys.readouterr().err


def test_importing_the_package_is_cheap():
    code = ("import sys, chamtvm.accuracy, chamtvm.cli.accuracy; "
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy', 'filelock', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_accuracy_defaults_to_the_nas_bench_macro_lookup(tmp_path, capsys):
    import json as _json

    from chamtvm.cli.main import main

    assert main(["accuracy", "--samples", "5", "--strategy", "random", "--journal", str(tmp_path / "j.jsonl"),
                 "--json"]) == 0
    out = _json.loads(capsys.readouterr().out)
    assert (out["task"], out["space"], out["pool"], out["samples"]) == ("nas-bench-macro", "macro", 6561, 5)
    assert 0 < out["ceiling"]["kendall_tau_between_seeds"] < 1
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 5


def test_accuracy_budgeted_on_the_table_reports_the_observed_pick_and_its_regret(tmp_path, capsys):
    from chamtvm.cli.main import main

    assert main(["accuracy", "--samples", "8", "--journal", str(tmp_path / "j.jsonl"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["strategy"] == "budgeted" and out["samples"] == 8
    assert out["lookups_by_phase"] == {"initial": 3, "exploration": 3, "verification": 2}
    (pick,) = out["picks"]  # no target: one pick, the best network of the pool
    assert pick["observed"] and pick["lookups"] == 8 and pick["architecture"]["layers"]
    assert pick["accuracy"] == max(r["accuracy"] for r in Journal(tmp_path / "j.jsonl").records())
    from chamtvm.accuracy.proxies import has_bundle
    from chamtvm.space.schema import SearchSpace

    macro = SearchSpace.load("macro")
    bundled = has_bundle(macro, "nas-bench-macro", [macro.from_indices([0] * 9)])
    # 6,561 networks: the proxies only from a bundled cache (scoring them all would take an hour)
    assert "log MACs" in out["prior_features"] and ("synflow" in out["prior_features"]) == bundled
    (regret,) = out["regret_points"]
    assert 0 <= regret < 100


def test_budgets_need_a_target(tmp_path, capsys):
    assert main(["accuracy", "--budgets-ms", "3", "--journal", str(tmp_path / "j.jsonl")]) == 2
    assert "--budgets-ms needs --target" in capsys.readouterr().err


def test_accuracy_takes_known_accuracies_from_a_full_spaces_journal(tmp_path, capsys):
    """``chamtvm accuracy --space <a restriction of macro> --known-accuracies <macro's journal>``:
    macro's lookups lying in the reduced space are known points, not looked up again; a missing
    journal is a usage error (exit 2)."""
    from chamtvm.space.restrict import restrict
    from chamtvm.space.schema import Arch, SearchSpace

    full_journal = tmp_path / "macro.jsonl"
    assert main(["accuracy", "--samples", "8", "--journal", str(full_journal), "--json"]) == 0
    capsys.readouterr()
    macro = SearchSpace.load("macro")
    looked = [Arch.from_dict(r["architecture"]) for r in Journal(full_journal).records()]
    drop = min(macro.layers[7].choices, key=lambda c: sum(a.layers[7] == c for a in looked))
    small = restrict(macro, {"layers[7]": [c for c in macro.layers[7].choices if c != drop]}, "macro-cli-reduced")
    space_file = tmp_path / "small.json"
    space_file.write_text(json.dumps(small.to_dict()))
    inside = {a.to_json() for a in looked if a.layers[7] != drop}
    own = tmp_path / "small.jsonl"
    assert main(["accuracy", "--space", str(space_file), "--samples", "4", "--journal", str(own),
                 "--known-accuracies", str(full_journal), "--no-proxies", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["known_trainings"]["used_networks"] == len(inside) >= 5 and out["trained_now"] == 4
    assert out["lookups_by_phase"]["known"] == len(inside)
    new = {Arch.from_dict(r["architecture"]).to_json() for r in Journal(own).records()}
    assert len(new) == 4 and not new & inside
    assert main(["accuracy", "--space", str(space_file), "--journal", str(own),
                 "--known-accuracies", str(tmp_path / "none.jsonl")]) == 2
    assert "no accuracy journal at" in capsys.readouterr().err
