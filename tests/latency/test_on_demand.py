"""Missing kernels measured on demand through a real RPC tracker and x86 server on
127.0.0.1, from the command line (a small MobileNetV3-style ONNX model) and from
``chamtvm.api`` (the zoo's ShuffleNetV2): ONNX models lower and are predicted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chamtvm.zoo import real

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rpc_device():
    from chamtvm.devices import start_tracker, start_x86_server

    tracker = start_tracker()
    try:
        server = start_x86_server(tracker, "x86-ondemand", n=1)
        try:
            yield tracker.tracker, "x86-ondemand"
        finally:
            server.stop()
    finally:
        tracker.stop()


@pytest.mark.slow
def test_cli_measure_missing_through_tracker_measures_only_what_the_table_lacks(rpc_device, tmp_path, x86,
                                                                                small_onnx, capsys):
    """``predict --measure-missing`` of a user's ONNX model (conftest ``small_onnx``) as a child
    process; then a plain ``predict`` in this process (no second start-up) prices it all."""
    from chamtvm.cli.main import main
    from chamtvm.lower.network import lower_onnx
    from chamtvm.measure.local import LocalRunner
    from chamtvm.table.fill import fill_table, prepare
    from chamtvm.table.store import LatencyTable
    from chamtvm.tuning.schedules import ScheduleSource

    (host, port), key = rpc_device
    onnx_path = small_onnx
    prepared = prepare(lower_onnx(onnx_path).kernels, x86, ScheduleSource(x86, use_database=False))
    assert len(prepared) > 3
    luts = tmp_path / "luts"
    table = LatencyTable.for_target("x86", luts)
    fill_table(prepared[:3], table, LocalRunner(x86), x86)  # the table already has three of them
    before = {r["key"]: r["measured_at"] for r in table.rows()}
    assert len(before) == 3

    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "chamtvm", "predict", str(onnx_path), "--target", "x86", "--luts-dir", str(luts),
           "--measure-missing", "--tracker", f"{host}:{port}", "--key", key, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    body = json.loads(out.stdout)
    assert body["complete"] and body["latency_ms"] > 0
    assert body["calls_by_source"]["estimated"] == 0
    now = set(body["measured_now"])
    assert len(now) == len(prepared) - 3 and not now & set(before)
    by_source = {k["key"]: k["source"] for k in body["kernels"]}
    assert all(by_source[k] == "table" for k in before) and all(by_source[k] == "measured_now" for k in now)

    table = LatencyTable.for_target("x86", luts)
    assert len(table) == len(prepared)
    for r in table.rows():
        if r["key"] in before:
            assert r["measured_at"] == before[r["key"]]  # not measured again
        else:
            assert r["device_label"].startswith("rpc x86") and f"key={key}" in r["device_label"]
    # the table now has every kernel: a plain predict prices them all from it
    capsys.readouterr()
    assert main(cmd[3:-6] + ["--json"]) == 0
    body2 = json.loads(capsys.readouterr().out)
    assert body2["measured_now"] == [] and body2["calls_by_source"]["table"] == sum(p.kernel.count for p in prepared)
    assert body2["latency_ms"] == pytest.approx(body["latency_ms"])


@pytest.mark.slow
def test_api_measure_missing_prices_a_shufflenet_onnx(rpc_device, tmp_path):
    from chamtvm.api import predict_latency

    (host, port), key = rpc_device
    onnx_path = real.export_onnx("shufflenet_v2_x0_5", 32, tmp_path / "shuffle.onnx")
    pred = predict_latency(onnx_path, "x86", luts_dir=tmp_path / "luts", measure_missing=True,
                           tracker=(host, port), key=key)
    d = pred.to_dict()
    assert d["complete"] and pred.latency_ms > 0 and not pred.estimated
    assert len(d["measured_now"]) == len(d["kernels"]) > 10
    assert d["latency_ms_range"][0] == pytest.approx(pred.latency_ms)  # nothing estimated: no spread
