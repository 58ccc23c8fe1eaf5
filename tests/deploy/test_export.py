"""Deployment: exported libraries, the search CLI end to end (the API hooks, ``lower_any`` and
``predict_latency``, are tested in ``tests/test_api.py``)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chamtvm.deploy.export import export_network
from chamtvm.space.model import build_model, input_shape

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests/data/space_tiny3.json")


@pytest.mark.slow
def test_exported_library_runs_with_plain_tvm(tiny_space, tiny_archs, x86, tmp_path):
    """The .so loads with tvm.runtime.load_module + relax.VirtualMachine, no chamtvm, and
    computes what the torch model computes; ONNX and torch.export artefacts are written."""
    import torch

    arch = tiny_archs[2]
    paths = export_network(tiny_space, arch, x86, tmp_path / "out")
    assert Path(paths["onnx"]).stat().st_size > 0 and Path(paths["torch_export"]).stat().st_size > 0
    x = np.random.default_rng(0).standard_normal(input_shape(tiny_space, arch)).astype("float32")
    code = (
        "import sys, numpy as np, tvm\n"
        "from tvm import relax\n"
        "vm = relax.VirtualMachine(tvm.runtime.load_module(sys.argv[1]), tvm.cpu())\n"
        "x = np.load(sys.argv[2])\n"
        "np.save(sys.argv[3], vm['main'](tvm.runtime.tensor(x, tvm.cpu())).numpy())\n"
    )
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", code, paths["library"], str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "chamtvm" not in out.stderr
    ref = build_model(tiny_space, arch)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, rtol=1e-4, atol=1e-4)
    assert json.loads(Path(paths["arch"]).read_text())["resolution"] == arch.resolution


@pytest.mark.slow
def test_search_cli_end_to_end(tiny_space, tiny_tune_run, tmp_path, capsys):
    """tune (table: the session's run, conftest ``tiny_tune_run``) -> journal of trained archs
    -> search: constraint met, artefacts, measured; a parameter limit respected; an unmet
    budget is exit 2. (Bad numbers on the command line: ``tests/cli/test_bad_inputs.py``.)"""
    import shutil

    from chamtvm.accuracy.journal import Journal

    assert tiny_tune_run.out.returncode == 0, tiny_tune_run.out.stderr[-2000:]
    luts = tmp_path / "luts"
    shutil.copytree(tiny_tune_run.luts, luts)
    journal = Journal(tmp_path / "acc.jsonl")
    rng = np.random.default_rng(0)
    for _ in range(8):  # accuracies of a synthetic task: wider networks are better
        a = tiny_space.sample(rng)
        journal.append({"architecture": a.to_dict(), "accuracy": 0.5 + 0.02 * a.stages[1].channels / 8,
                        "seed": 0, "epochs": 1, "seconds": 0.0, "task": "synthetic", "space": tiny_space.name})
    args = ["search", "--space", TINY, "--luts-dir", luts, "--journal", tmp_path / "acc.jsonl",
            "--out", tmp_path / "s", "--population", "16", "--generations", "3", "--json"]
    fast = subprocess.run([sys.executable, "-m", "chamtvm", *map(str, args), "--latency-ms", "1000"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert fast.returncode == 0, fast.stderr[-2000:]
    rep = json.loads(fast.stdout)
    assert rep["best"]["predicted_latency_ms"] <= 1000 and rep["measured"]["latency_ms"] > 0
    assert Path(rep["artifacts"]["library"]).exists() and Path(rep["artifacts"]["pareto_plot"]).exists()
    assert rep["search"]["evaluated"] == 16 * 4
    # a parameter limit below the unconstrained pick's size is respected
    from chamtvm.accuracy.encoding import arch_costs
    from chamtvm.space.schema import Arch

    free_params = arch_costs(tiny_space, [tiny_space.indices(Arch.from_dict(rep["best"]["architecture"]))])[0, 0]
    small_params = arch_costs(tiny_space, [[0] * tiny_space.encoding_length])[0, 0]
    limit = (small_params + free_params) / 2e6
    from chamtvm.cli.main import main  # in this process: no second start-up (the command's own run is above)

    capsys.readouterr()
    code = main([*map(str, args), "--latency-ms", "1000", "--no-measure", "--max-mparams", str(limit),
                 "--out", str(tmp_path / "s2")])
    lim = capsys.readouterr()
    assert code == 0, lim.err[-2000:]
    best = Arch.from_dict(json.loads(lim.out)["best"]["architecture"])
    assert arch_costs(tiny_space, [tiny_space.indices(best)])[0, 0] <= limit * 1e6 < free_params
    assert main([*map(str, args), "--latency-ms", "0.000001", "--out", str(tmp_path / "s3")]) == 2
    assert "no evaluated network meets the constraints" in capsys.readouterr().err
    assert not (tmp_path / "s3").exists()
