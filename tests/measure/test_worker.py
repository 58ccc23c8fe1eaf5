"""``measure.worker``: the measuring process's protocol: one JSON request on stdin, one
``RESULT <json>`` line per item on stdout, a failing item reported in its own line while the
others are measured. Once through a real child process (kernels mode), and both modes
through ``main`` in this process (a child costs a TVM import, seconds on 2 cores)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def libs(tiny_net, x86, tmp_path_factory):
    from tvm.script import tirx as T

    from chamtvm.measure.compile import build_kernel_library, compile_network, export

    @T.prim_func
    def inc(A: T.Buffer((256,), "float32")):
        for i in range(256):
            A[i] = A[i] + T.float32(1)

    d = tmp_path_factory.mktemp("worker")
    return build_kernel_library([("k_inc", inc)], x86, d / "k.so"), export(compile_network(tiny_net.fused, x86),
                                                                          x86, d / "n.so")


def _kernel_request(klib, evaluator):
    from chamtvm.lower.kernels import ArgSpec
    from chamtvm.measure.base import KernelItem

    arg = (ArgSpec((256,), "float32"),)
    items = [KernelItem("one", "k_inc", arg), KernelItem("two", "k_missing", arg), KernelItem("three", "k_inc", arg)]
    return {"mode": "kernels", "library": str(klib), "device": "cpu", "evaluator": evaluator.to_dict(),
            "items": [i.to_json() for i in items]}


def _parse(stdout: str):
    from chamtvm.measure.base import MeasureResult
    from chamtvm.measure.worker import RESULT_PREFIX

    lines = [l for l in stdout.splitlines() if l.startswith(RESULT_PREFIX)]
    return [MeasureResult.from_json(json.loads(l[len(RESULT_PREFIX):])) for l in lines]


def _check_kernels(res):
    from chamtvm.measure.energy import open_meter

    assert [r.key for r in res] == ["one", "two", "three"]
    assert res[0].ok and res[2].ok and len(res[0].samples_us) == 3 and res[0].number == 2
    assert not res[1].ok and "k_missing" in res[1].error
    if open_meter("cpu") is None:
        assert res[0].energy_uj is None  # no readable counter: no figure, never a guess


def test_a_real_child_answers_one_result_line_per_item(libs, fast_evaluator):
    """... and imports neither torch nor ml_dtypes for float32 items (seconds per child)."""
    proc = subprocess.run([sys.executable, "-v", "-m", "chamtvm.measure.worker"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, input=json.dumps(_kernel_request(libs[0],
                                                                                                       fast_evaluator)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _check_kernels(_parse(proc.stdout))
    loaded = proc.stderr.replace(os.sep, "/")  # ``python -v``: every module's source file as it is read
    assert "/tvm/__init__.py" in loaded and "/torch/__init__.py" not in loaded and "/ml_dtypes/__init__.py" not in loaded


def test_network_mode_answers_one_line_with_the_key(libs, tiny_net, fast_evaluator, monkeypatch, capsys):
    from chamtvm.measure import worker

    request = {"mode": "network", "library": str(libs[1]), "device": "cpu", "evaluator": fast_evaluator.to_dict(),
               "inputs": [a.to_list() for a in tiny_net.inputs], "key": "tiny-net"}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(request)))
    assert worker.main() == 0
    [net] = _parse(capsys.readouterr().out)
    assert net.key == "tiny-net" and net.ok and len(net.samples_us) == 3 and net.number == 2


def test_kernel_mode_in_process(libs, fast_evaluator, monkeypatch, capsys):
    from chamtvm.measure import worker

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(_kernel_request(libs[0], fast_evaluator))))
    assert worker.main() == 0
    out = capsys.readouterr().out
    assert all(l.startswith("RESULT ") for l in out.splitlines())  # nothing else on stdout
    _check_kernels(_parse(out))
