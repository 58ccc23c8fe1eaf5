"""``chamtvm transform --method prune`` on the digits task, end to end and for real (slow): the
digits teacher (trained once per session, ``digits_teacher``) reused, its width-latency model
measured on x86 through TVM, the integer program, fine-tuning by distillation, the exported
library loaded by TVM and measured; and bad prune options refused (in process) and exit 2 before
any work (fast)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _cmd(work, *args):
    return [sys.executable, "-m", "chamtvm", "--workdir", str(work), "transform", "teacher:digits", "--task", "digits",
            "--target", "x86", "--method", "prune", *args]


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
def test_prune_on_digits_end_to_end(tmp_path, digits_teacher):
    import numpy as np
    import torch
    import tvm
    from tvm import relax

    from chamtvm.targets.spec import get_target

    digits_teacher(tmp_path)
    t0 = time.time()
    out = subprocess.run(_cmd(tmp_path, "--speedup", "1.5", "--option", "widths=4", "--finetune-epochs", "2",
                              "--no-uniform", "--no-progress", "--json"),
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    seconds = time.time() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    t, a, d = report["teacher"], report["adapted"], report["details"]
    assert report["method"] == "prune" and not t["trained_now"] and t["measured"]["latency_ms"] > 0
    assert report["budget_ms"] == pytest.approx(t["measured"]["latency_ms"] / 1.5)
    # the choice: every cut group keeps a multiple of the target's lanes, within the budget
    lanes = get_target("x86").lanes
    assert d["lanes"] == d["granularity"] == lanes
    cut = {g: w for g, w in d["widths"].items() if w != d["full_widths"][g]}
    assert cut and all(w % lanes == 0 for w in cut.values())
    assert a["predicted_ms"] <= report["budget_ms"] and d["solver"]["status"] == "optimal"
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
    print(f"transform --method prune on digits, end to end: {seconds:.1f} s")
