"""``chamtvm transform --method prune`` on the digits task, end to end and for real (slow,
``digits_prune_run``): the digits teacher (trained once per session, ``digits_teacher``) reused,
its width-latency model measured on x86 through TVM (by the fixture, with the job's own
function, where the job reads it), a budget the unpruned teacher misses, the integer program,
fine-tuning by distillation, the exported library loaded by TVM and measured; and bad prune
options refused (in process) and exit 2 before any work (fast)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.transform.conftest import assert_measured_checks
from tests.transform.prune.conftest import E2E_WIDTHS
from tests.transform.prune.conftest import prune_cmd as _cmd

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("option, message", [
    ({"granularity": "0"}, "granularity=0: expected a positive integer"),
    ({"widths": "3"}, "measure 4 to 8 widths"),
    ({"importance": "random"}, "importance='random'"),
    ({"solver": "greedy"}, "solver='greedy'"),
    ({"min_keep": "0"}, "min_keep=0.0"),
    ({"colour": "blue"}, "unknown prune option"),
    ({"widths": "six"}, "expected a number"),
    ({"margin": "1.5"}, "margin=1.5"),
])
def test_bad_prune_options_are_refused(option, message):
    from chamtvm.transform.methods import OptionError
    from chamtvm.transform.prune import check_options

    with pytest.raises(OptionError, match=re.escape(message)):
        check_options(option)
    check_options({"widths": "8", "granularity": "4", "solver": "admm", "margin": "0.05"})


def test_a_bad_prune_option_exits_2_before_any_work(tmp_path):
    out = subprocess.run(_cmd(tmp_path, "--latency-ms", "1", "--option", "widths=3"), cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "measure 4 to 8 widths" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()  # refused before the teacher was trained


@pytest.mark.slow
def test_prune_on_digits_end_to_end(digits_prune_run):
    import numpy as np
    import torch
    import tvm
    from tvm import relax

    from chamtvm.targets.spec import get_target

    run = digits_prune_run
    out = run.out
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    t, a, d = report["teacher"], report["adapted"], report["details"]
    assert report["method"] == "prune" and not t["trained_now"] and t["measured"]["latency_ms"] > 0
    # the budget: the width model's prediction of the unpruned teacher / 1.5, which the job read back
    assert report["budget_ms"] == pytest.approx(run.budget_ms) and run.budget_ms < run.wm.predict_ms()
    assert d["width_model"]["path"] == str(run.model_path) and d["width_model"]["alpha"] == pytest.approx(run.wm.alpha)
    # the choice: the budget demands cuts; every cut group keeps a multiple of the target's lanes
    lanes = get_target("x86").lanes
    assert d["lanes"] == d["granularity"] == lanes
    cut = {g: w for g, w in d["widths"].items() if w != d["full_widths"][g]}
    assert cut and all(w % lanes == 0 for w in cut.values())
    assert d["solver"]["status"] == "optimal"  # (a fill try may be predicted over and measure under)
    # the chosen widths were measured end to end before training; the last try is the choice
    assert_measured_checks(d["solver"]["measured_checks"],
                           lambda c: c["widths"] == {g: w for g, w in d["widths"].items() if g in c["widths"]})
    assert d["params"]["pruned"] < d["params"]["teacher"]
    assert a["measured"]["latency_ms"] > 0 and a["val_accuracy"] > 0.5
    model = json.loads(Path(d["width_model"]["path"]).read_text())
    assert len(model["calibration"]) == 3 and model["alpha"] > 0  # the unpruned + 2 diagonal networks
    # the exported library loads in plain TVM and computes what the exported torch program computes
    art = report["artifacts"]
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype("float32")
    vm = relax.VirtualMachine(tvm.runtime.load_module(art["library"]), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    program = torch.export.load(art["torch_export"])
    with torch.no_grad():
        want = program.module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    print(f"transform --method prune on digits, end to end: {run.seconds:.1f} s")


@pytest.mark.slow
def test_admm_structure_is_measured_before_training_like_the_integer_programs(digits_prune_run):
    """``solver=admm`` on the same digits teacher, width model and budget: ADMM's structure is
    measured end to end before fine-tuning and replaced while it measures over the budget
    (``measured_checks`` as for the integer program); the network it reports is the last try."""
    run = digits_prune_run
    assert run.out.returncode == 0, run.out.stderr[-3000:]
    out = subprocess.run(_cmd(run.work, "--latency-ms", repr(run.budget_ms), "--option", f"widths={E2E_WIDTHS}",
                                   "--option", "solver=admm", "--option", "admm_rounds=1", "--option", "admm_steps=10",
                                   "--finetune-epochs", "1", "--no-uniform", "--no-progress", "--json"),
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    d = report["details"]
    assert d["solver"]["method"] == "admm" and len(d["solver"]["rounds"]) == 1
    kept = assert_measured_checks(d["solver"]["measured_checks"],
                                  lambda c: c["widths"] == {g: w for g, w in d["widths"].items() if g in c["widths"]})
    if kept["under_budget"]:
        assert kept["confirm_ms"] <= report["budget_ms"]
    assert report["adapted"]["measured"]["latency_ms"] > 0

