"""The command line, run as a user runs it: clear errors on bad input, JSON output."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests/data/space_tiny3.json")


def chamtvm(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "chamtvm", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def arch_file(tiny_space, tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / "net.json"
    arch = tiny_space.sample(np.random.default_rng(7))
    path.write_text(json.dumps({**arch.to_dict(), "space": TINY}))
    return path


def test_targets_lists_all_registered_targets():
    out = chamtvm("targets")
    assert out.returncode == 0
    for name in ("x86", "arm", "cuda", "hexagon"):
        assert name in out.stdout


def test_unknown_target_lists_valid_ones(arch_file):
    out = chamtvm("predict", arch_file, "--target", "riscv")
    assert out.returncode == 2
    listed = out.stderr.split("unknown target 'riscv'; valid targets: ", 1)[1].split("\n")[0].split(", ")
    assert {"arm", "cuda", "hexagon", "x86", "rpi4"} <= set(listed) and listed == sorted(listed)  # + targets/


def test_malformed_architecture_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resolution": 32, "stem_channels": 8, "head_channels": 32,
                               "stages": [{"channels": 8, "blocks": 1, "expansion": 1}]}))
    out = chamtvm("predict", bad, "--space", TINY)
    assert out.returncode == 2 and "stages[0]: expected an object with exactly" in out.stderr
    bad.write_text("{not json")
    out = chamtvm("predict", bad)
    assert out.returncode == 2 and "not valid JSON" in out.stderr


@pytest.mark.slow
def test_bad_onnx_file_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    out = chamtvm("measure", bad, "--json")
    assert out.returncode == 2 and "is not a valid ONNX model" in out.stderr


@pytest.mark.slow
def test_predict_and_measure_print_json(arch_file, tmp_path, capsys):
    from chamtvm.cli.main import main

    luts = tmp_path / "luts"
    # no table: nothing is guessed; it says where it looked and how to build one (exit 2);
    # in this process (the measurement below starts one)
    for extra in ([], ["--table-sum-only"]):
        code = main(["predict", str(arch_file), "--luts-dir", str(luts), "--json", *extra])
        out = capsys.readouterr()
        pred = json.loads(out.out)
        assert code == 2 and pred["latency_ms"] is None
        assert f"no latency table at {luts / 'x86.jsonl'}" in out.err and "chamtvm tune" in out.err
    out = chamtvm("measure", arch_file, "--json")
    meas = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert meas["latency_ms"] > 0 and meas["latency_ms_min"] <= meas["latency_ms"] <= meas["latency_ms_max"]
    assert meas["emulated"] is False


def test_corrupt_table_line_is_reported_with_its_line(arch_file, tmp_path):
    luts = tmp_path / "luts"
    luts.mkdir()
    (luts / "x86.jsonl").write_text('{"key": "a", "crc": "0"}\n')
    out = chamtvm("predict", arch_file, "--luts-dir", luts)
    assert out.returncode == 2 and "x86.jsonl:1: corrupt latency-table row" in out.stderr


@pytest.mark.slow
def test_remote_target_without_tracker_says_what_to_pass(arch_file):
    out = chamtvm("measure", arch_file, "--target", "arm")
    assert out.returncode == 2 and "--tracker HOST:PORT" in out.stderr


@pytest.mark.slow
def test_tune_end_to_end_on_tiny_space(tiny_tune_run, tmp_path, capsys):
    """The main job on the tiny space (the session's run, conftest ``tiny_tune_run``, a child
    process): table, held-out report, JSON; ``predict`` with its models and a rerun on a copy
    of its table (both in this process: no second start-up) resume."""
    import shutil

    from chamtvm.cli.main import main

    out = tiny_tune_run.out
    assert out.returncode == 0, out.stderr[-2000:]
    report = tiny_tune_run.report
    assert report["table"]["measured_now"] == report["table"]["space_kernels"] > 0
    assert len(report["networks"]) == 2 and report["fidelity"]["n"] == 2
    assert "within ±10%" in out.stdout and "Kendall tau" in out.stdout
    assert report["predictor"]["training_networks"] == 2 and report["fidelity_table_sum"]["n"] == 2
    assert report["skipped_steps"]["calibration"] == "--no-calibration"
    assert report["accuracy"]["status"].startswith("skipped: ") and "space latency" in report["skipped_steps"]
    luts = tmp_path / "luts"
    shutil.copytree(tiny_tune_run.luts, luts)
    # the saved models price any model on this target, unseen kernels included
    capsys.readouterr()
    code = main(["predict", str(REPO / "tests/data/arch_tiny3.json"), "--luts-dir", str(luts), "--json"])
    pred = capsys.readouterr()
    assert code == 0, pred.err[-2000:]
    body = json.loads(pred.out)
    # the residual the job chose (auto: with 2 training networks nothing to cross-validate, so none)
    assert body["residual"] == report["predictor"]["residual_mode"] == "none"
    assert body["latency_ms"] > 0 and not body["missing_kernels"]
    code = main(tiny_tune_run.args(luts, tmp_path / "report.json"))
    assert code == 0, capsys.readouterr().err[-2000:]
    report2 = json.loads((tmp_path / "report.json").read_text())
    assert report2["table"]["measured_now"] == 0
    # a network is timed again only where its row was not at the nominal speed known then
    # (``table.networks.ensure_measured``), at most MAX_TIMINGS times; the others are reused
    from chamtvm.table.networks import MAX_TIMINGS

    lines = [json.loads(x) for x in (luts / "x86.networks.jsonl").read_text().splitlines() if x.strip()]
    by_key = {}
    for row in lines:
        by_key.setdefault(row["key"], []).append(row)
    retimed = {k: rows for k, rows in by_key.items() if len(rows) > 1}
    assert all(len(rows) <= MAX_TIMINGS for rows in retimed.values())
    changed = sum(a["measured_ms"] != b["measured_ms"] for a, b in zip(report["networks"], report2["networks"]))
    assert changed <= len(retimed)  # the journal also holds the training networks


def test_tune_defaults_to_nas_bench_macro_and_the_space_follows_the_task():
    from chamtvm.accuracy.tasks import TASKS, default_space
    from chamtvm.cli.main import build_parser

    args = build_parser().parse_args(["tune"])
    assert (args.task, args.space) == ("nas-bench-macro", None)
    assert default_space(args.task) == "macro" and default_space("fashion-mnist") == "fashion"
    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["tune"]._actions
                   if a.dest == "task").choices
    assert choices == [*TASKS.names(), "none"]


def test_tune_real_calibration_and_tuning_population_options():
    from chamtvm.cli.main import build_parser

    parse = lambda *a: build_parser().parse_args(["tune", *a])  # noqa: E731
    assert parse().real_calibration is False
    assert parse("--real-calibration").real_calibration == "uniform"
    assert parse("--real-calibration", "adaptive").real_calibration == "adaptive"
    assert parse().tuning_population == 128 and parse("--tuning-population", "64").tuning_population == 64
    with pytest.raises(SystemExit):
        parse("--real-calibration", "bogus")
    with pytest.raises(SystemExit):
        parse("--tuning-population", "0")


def test_search_without_a_table_says_how_to_build_one(tmp_path, capsys):
    """``search`` runs the search job's steps (``pipeline.search_job``); with no table it stops at
    the search context with exit 2 and the tune command to run (default space: macro, as tune)."""
    from chamtvm.cli.main import main

    assert main(["--workdir", str(tmp_path), "search", "--latency-ms", "5", "--no-measure"]) == 2
    err = capsys.readouterr().err
    assert "chamtvm: error: the latency table" in err and "is empty: build it first with" in err
    assert "python -m chamtvm tune --target x86 --space macro" in err
