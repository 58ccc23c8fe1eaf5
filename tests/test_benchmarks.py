"""The benchmark harness (``benchmarks/common``): every script imports and answers
``--help``; results carry a provenance block with the noise record measured the way
``quiet-run`` measures it; scripts share pieces through ``common``, never through each other."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SCRIPTS = sorted(BENCH.glob("*.py"))


@pytest.fixture(scope="module")
def harness():
    """``benchmarks/`` on the path as a script run from it has it; the environment and the
    warning filters the scripts set at import restored afterwards."""
    env = dict(os.environ)
    sys.path.insert(0, str(BENCH))
    try:
        with warnings.catch_warnings():
            import common

            yield common
    finally:
        sys.path.remove(str(BENCH))
        os.environ.clear()
        os.environ.update(env)


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_benchmarks_and_each_is_a_bench_script():
    assert len(SCRIPTS) >= 15
    assert all(p.name.startswith("bench_") for p in SCRIPTS), [p.name for p in SCRIPTS]


@pytest.mark.parametrize("path", SCRIPTS + [BENCH / "common" / "timing.py"], ids=lambda p: p.stem)
def test_every_benchmark_imports_and_answers_help(harness, path, capsys):
    module = load(path)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    first_line = module.__doc__.strip().splitlines()[0]
    assert first_line[:40] in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_scripts_use_the_harness_and_not_each_other(path):
    src = path.read_text()
    assert "def main(argv=None)" in src and re.search(r"(raise SystemExit|sys\.exit)\(main\(\)\)", src)
    assert "parse_args(" in src and "write_results(" in src, "results go through common.write_results"
    for pattern, why in ((r"sys\.path", "common puts the checkout on the path"),
                         (r"parents\[", "common.REPO is the checkout"),
                         (r"^\s*(from|import) (bench_\w+|deployed_timing)", "shared pieces live in common"),
                         (r"getloadavg|\buptime\b", "the load is common.load_average, under one spelling"),
                         (r"kendalltau|<= *10\)", "fidelity is chamtvm.core.metrics.fidelity"),
                         (r"\.parse_args\(", "common.parse_args starts the run's provenance")):
        assert not re.search(pattern, src, flags=re.M), f"{path.name}: {pattern!r} ({why})"


def test_noise_monitor_counts_other_processes_only(harness):
    mon = harness.NoiseMonitor(root_pid=100, max_other=0.15, window_s=10)

    def snap(t):  # init, our parent 50, us 100 and our child 101 (busy), another process 200
        return {1: (0, 0.0), 50: (1, 5.0 * t), 100: (50, 1.0 * t), 101: (100, 1.0 * t), 200: (1, 0.5 * t)}

    for t in range(0, 31):
        mon.observe(float(t), snap(t))
    rec = mon.record()
    assert rec["other_cores_mean"] == pytest.approx(0.5) and rec["other_cores_max_10s"] == pytest.approx(0.5)
    assert rec["quiet"] is False and rec["wall_s"] == 30.0
    quiet = harness.NoiseMonitor(root_pid=100)
    for t in range(0, 25):
        quiet.observe(float(t), {100: (50, 1.0 * t), 200: (1, 0.2 * t if t < 12 else 2.4)})
    rec = quiet.record()  # 2.4 s of others' CPU in the first window, none after
    assert rec["other_cores_max_10s"] == pytest.approx(0.2) and rec["quiet"] is True
    assert rec["other_cores_mean"] == pytest.approx(2.4 / 24, abs=1e-3)


def test_a_process_seen_in_our_tree_stays_ours_after_it_is_reparented(harness):
    mon = harness.NoiseMonitor(root_pid=100)
    mon.observe(0.0, {100: (50, 0.0), 101: (100, 0.0)})
    mon.observe(20.0, {100: (50, 0.0), 101: (1, 20.0)})  # a detached server we started
    assert mon.record()["other_cores_mean"] == 0.0


def test_results_carry_the_provenance_block(harness, tmp_path, capsys):
    harness.start_run(["--x", "1"])
    path = harness.write_results({"figure": 1.5, "where": str(REPO / "runs" / "x")}, tmp_path / "r.json")
    out = json.loads(path.read_text())
    prov = out["provenance"]
    assert out["figure"] == 1.5 and out["where"] == "runs/x"  # no machine paths
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]) and isinstance(prov["dirty"], bool)
    assert prov["command"].endswith("--x 1")
    assert prov["started_utc"] <= prov["ended_utc"] and prov["started_utc"].endswith("Z")
    assert prov["versions"]["tvm"].startswith("0.27") and prov["versions"]["torch"]
    assert prov["host"]["cores"] == os.cpu_count() and "runtime_num_threads" in prov["tvm_threads"]
    assert set(prov["load_average_1_5_15"]) == {"start", "end"}
    noise = prov["quiet_run_measure"]
    assert {"other_cores_mean", "other_cores_max_10s", "quiet", "under_quiet_run"} <= set(noise)
    assert noise["under_quiet_run"] == (os.environ.get("QUIET_RUN") == "1")
    assert "r.json" in capsys.readouterr().out
    again = harness.write_results({"figure": 2}, tmp_path / "s.json", measurements_from=path)
    assert json.loads(again.read_text())["provenance"]["measurements_from"]["provenance"] == prov
    old = tmp_path / "old.json"
    old.write_text('{"figure": 3}')
    third = harness.write_results({"figure": 3}, tmp_path / "t.json", measurements_from=old)
    assert json.loads(third.read_text())["provenance"]["measurements_from"]["provenance"] == \
        "older file, no provenance"


def provenance_problems(path: Path) -> list[str]:
    """Why the results file at ``path`` lacks a usable provenance block (empty: it has one):
    the commit (hex) and the time (``started_utc`` of the harness, ``utc`` of a block written
    by hand or reconstructed from git, ISO 8601 in UTC) it was measured at, and its command."""
    from datetime import datetime, timedelta

    data = json.loads(path.read_text())
    prov = data.get("provenance") if isinstance(data, dict) else None
    if not isinstance(prov, dict):
        return [f"{path.name}: no provenance block"]
    problems = []
    if not re.fullmatch(r"[0-9a-f]{7,40}", str(prov.get("commit"))):
        problems.append(f"{path.name}: provenance without a commit ({prov.get('commit')!r})")
    when = prov.get("started_utc") or prov.get("utc")
    try:
        utc = datetime.fromisoformat(str(when).replace("Z", "+00:00")).utcoffset() == timedelta(0)
    except ValueError:
        utc = False
    if not utc:
        problems.append(f"{path.name}: provenance without a UTC time ({when!r})")
    if "command" not in prov:
        problems.append(f"{path.name}: provenance without its command")
    if prov.get("reconstructed") is True and ("utc" not in prov or prov.get("quiet_run_measure") is not None):
        problems.append(f"{path.name}: a reconstructed block has its commit's utc and no noise record")
    return problems


def test_every_results_file_carries_a_provenance_block(tmp_path):
    results = sorted((BENCH / "results").glob("*.json"))
    assert results
    problems = [p for path in results for p in provenance_problems(path)]
    assert not problems, "\n".join(problems)
    # the check itself: a file without the block, or with a block that names no commit or time, fails
    for name, text in (("bare.json", '{"figure": 1}'), ("list.json", "[1, 2]"),
                       ("nocommit.json", '{"provenance": {"command": null, "utc": "2026-12-01T08:00:00Z"}}'),
                       ("notime.json", '{"provenance": {"commit": "9c4f2b1", "command": null}}')):
        (tmp_path / name).write_text(text)
        assert provenance_problems(tmp_path / name), name
    (tmp_path / "ok.json").write_text('{"provenance": {"reconstructed": true, "commit": "9c4f2b1", '
                                      '"utc": "2026-12-01T13:27:15Z", "command": null, "quiet_run_measure": null}}')
    assert provenance_problems(tmp_path / "ok.json") == []


def test_a_replicated_comparison_takes_the_replicate_as_its_unit(harness):
    from common.paired import replicated

    # three replicates of 4 seeds: means -1, -2 and 0; one replicate left empty is left out
    got = replicated([[-1.0, -1.5, -0.5, -1.0], [-2.0, -2.0, -2.5, -1.5], [0.0, 0.0, 0.0, 0.0], [None, None]])
    assert got["replicates"] == 3 and len(got["per_replicate"]) == 3
    across = got["across_replicates"]
    assert across["n"] == 3 and across["mean"] == pytest.approx(-1.0)
    assert (across["below_zero"], across["zero"], across["above_zero"]) == (2, 1, 0)
    # t over 3 means (-1, -2, 0): sd 1, half-width t(0.975, 2) / sqrt(3) = 2.484
    assert across["ci95"] == pytest.approx([-1.0 - 2.4841, -1.0 + 2.4841], abs=1e-3)
    # pooled: 12 differences, a far narrower interval that ignores the replicates
    assert got["pooled"]["n"] == 12
    assert got["pooled"]["ci95"][1] - got["pooled"]["ci95"][0] < across["ci95"][1] - across["ci95"][0]
    assert replicated([[None], []]) == {"replicates": 0}


@pytest.mark.slow
def test_deployed_arm_times_tvm_and_onnxruntime_on_the_emulated_board(harness, tmp_path):
    """``bench_deployed_arm.py`` on one tiny network, for real: prepare builds it for ``arm``
    and sets up the aarch64 ONNX Runtime, measure starts a tracker and an emulated server on
    127.0.0.1, times both there, labels every figure EMULATION and stops the board."""
    import shutil
    import socket
    from importlib import metadata

    from chamtvm.devices.arm import ArmEmulation

    missing = ArmEmulation.missing_tools(for_setup=False)
    if missing or not ArmEmulation.default().ready():
        pytest.skip(f"needs {', '.join(missing) or 'the arm64 cache'}: run scripts/setup-arm-emulation.sh")
    pick = tmp_path / "tiny-pick"
    pick.mkdir()
    shutil.copy(REPO / "tests" / "data" / "arch_tiny3.json", pick / "arch.json")
    shutil.copy(REPO / "tests" / "data" / "space_tiny3.json", pick)
    bench = load(BENCH / "bench_deployed_arm.py")
    out = tmp_path / "arm.json"
    common = ["--work", str(tmp_path / "work"), "--out", str(out)]
    assert bench.main(["prepare", "--picks", str(pick / "arch.json"), "--real", "", *common]) == 0
    assert bench.main(["measure", "--rounds", "2", "--repeat", "2", "--min-repeat-ms", "10", *common]) == 0
    res = json.loads(out.read_text())
    assert res["emulated"] is True and "EMULATION" in res["EMULATION"]
    assert res["device_label"].startswith("rpc arm@127.0.0.1:") and "(EMULATED: qemu-aarch64-static" in res["device_label"]
    measured = res["networks"]["pick_tiny-pick"]["measured"]
    assert set(measured) == {"tvm_default", "onnxruntime"}
    for m in measured.values():
        assert not m["errors"] and len(m["round_medians_us"]) == 2 and m["median_us"] > 0
    assert measured["tvm_default"]["remote_threads"] == 1
    assert measured["onnxruntime"]["version"] == metadata.version("onnxruntime")
    assert set(res["networks"]["pick_tiny-pick"]["over_ort"]) == {"tvm_default"}
    assert out.with_suffix(".png").exists()
    port = int(res["device_label"].split("@127.0.0.1:")[1].split()[0])
    with pytest.raises(OSError):  # the tracker was stopped with the board
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
