"""A non-editable install works from another folder: targets and spaces ship as package
data, and tables and runs go under the working folder, never into site-packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_runs_targets_and_predict_from_another_folder(tmp_path):
    # copy the tracked sources, so building the wheel leaves nothing in the checkout
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    venv = tmp_path / "venv"
    # system site-packages supply torch/TVM (installed by scripts/install.sh); chamtvm itself is installed anew
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(src)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    shutil.rmtree(src)  # nothing may still read the sources

    work = tmp_path / "elsewhere"
    work.mkdir()
    # the tests' nominal-speed budget (tests/conftest.py), so the table below samples 2 s per item at most,
    # and the session's cache of imported modules and built libraries (tests/conftest.py)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "CHAMTVM_NOMINAL_BUDGET_S": os.environ["CHAMTVM_NOMINAL_BUDGET_S"],
           "CHAMTVM_CACHE_DIR": os.environ["CHAMTVM_CACHE_DIR"]}

    def run(*args, timeout=600):
        return subprocess.run([str(py), "-m", "chamtvm", *map(str, args)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([str(py), "-c", "import chamtvm; print(chamtvm.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert str(venv) in where, f"chamtvm was imported from {where}, not from the fresh install"

    out = run("targets", "--json")
    assert out.returncode == 0, out.stderr
    assert {"x86", "arm", "cuda", "hexagon"} <= set(json.loads(out.stdout))

    # a tiny table, then a prediction, all under the working folder; the space is tiny3 narrowed
    # to the one architecture predicted (its kernels are the table: a dozen, not the space's 37)
    space = work / "tiny.json"
    arch = json.loads((REPO / "tests" / "data" / "arch_tiny3.json").read_text())
    one = json.loads((REPO / "tests" / "data" / "space_tiny3.json").read_text())
    one.update(name="tiny3-one", resolution=[arch["resolution"]], stem_channels=[arch["stem_channels"]],
               head_channels=[arch["head_channels"]])
    for stage, chosen in zip(one["stages"], arch["stages"]):
        stage.update({k: [chosen[k]] for k in ("channels", "blocks", "expansion", "kernel")})
    space.write_text(json.dumps(one))
    arch["space"] = "tiny.json"
    (work / "net.json").write_text(json.dumps(arch))
    tune = run("tune", "--target", "x86", "--space", space, "--trials", "0", "--heldout", "0",
               "--train-networks", "0", "--task", "none", "--no-calibration", "--no-progress")
    assert tune.returncode == 0, tune.stderr[-3000:]
    assert (work / "luts" / "x86.jsonl").exists()
    site = Path(where).parent
    assert not list(site.rglob("*.jsonl")), "a table was written inside the installed package"

    pred = run("predict", "net.json", "--target", "x86", "--json")
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert json.loads(pred.stdout)["latency_ms"] > 0

    # --workdir chooses another folder
    other = tmp_path / "other"
    pred2 = run("--workdir", other, "predict", "net.json", "--target", "x86", "--json", "--table-sum-only")
    assert pred2.returncode == 2  # no table there: said, with the command that builds one
    assert f"there is no latency table at {other / 'luts' / 'x86.jsonl'}" in pred2.stderr, pred2.stderr
