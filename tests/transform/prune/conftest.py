"""Fixtures of the pruning tests: a small residual network of ``tiny_space`` (module scope:
a test module may change its weights, the next module gets a fresh one), and the pruning job
on digits, end to end, once per session (``digits_prune_run``: its width-latency model, measured
in this process, serves the width-model checks too)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _residual_net(space, stage2_kernel: int):
    """``(model, input shape)``: 32 px input, stem 8, stages 8 (1 block), 16 (3 residual
    blocks, expansion 4, ``stage2_kernel``), 24 (1 block, expansion 2)."""
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.space.schema import Arch

    arch = Arch.from_dict({"resolution": 32, "stem_channels": 8, "head_channels": 32, "stages": [
        {"channels": 8, "blocks": 1, "expansion": 1, "kernel": 3},
        {"channels": 16, "blocks": 3, "expansion": 4, "kernel": stage2_kernel},
        {"channels": 24, "blocks": 1, "expansion": 2, "kernel": 3}]})
    return build_model(space, arch), input_shape(space, arch)


@pytest.fixture(scope="module")
def residual_net(tiny_space):
    """The small residual network, 3x3 kernels throughout: ``(model, input shape)``."""
    return _residual_net(tiny_space, 3)


@pytest.fixture(scope="module")
def residual_net_k5(tiny_space):
    """The small residual network with 5x5 depthwise kernels in its residual stage."""
    return _residual_net(tiny_space, 5)


def prune_cmd(work, *args) -> list[str]:
    """``chamtvm --workdir work transform teacher:digits --method prune`` on x86, with ``args``."""
    import sys

    return [sys.executable, "-m", "chamtvm", "--workdir", str(work), "transform", "teacher:digits", "--task", "digits",
            "--target", "x86", "--method", "prune", *args]


# the end-to-end run's options: 4 widths per group (no refinement pass), the default calibration
E2E_WIDTHS, E2E_SPEEDUP = 4, 1.5


@pytest.fixture(scope="session")
def digits_prune_run(tmp_path_factory, digits_teacher, digits_latency, x86, quick_networks):
    """``chamtvm transform --method prune`` on digits, end to end, for real, once per session.

    First, in this process, the digits teacher's width-latency model is measured on x86
    (``prune.method.measure_width_model``, the job's own function and options:
    ``widths=E2E_WIDTHS``, 3 calibration networks, timed in a few short samples: conftest
    ``quick_networks``, the same target fingerprint) into the folder where the job reads it
    (``wm``, ``probe``, ``graph``, ``model_path``), starting from the session's table of the
    teacher's kernels and its measured latency (``digits_latency``). The budget is then the model's prediction
    of the unpruned teacher divided by ``E2E_SPEEDUP`` (``budget_ms``): below what the teacher
    costs by construction, however busy the machine was when the teacher was measured, so the
    job must cut. The job (a child process, ``--latency-ms budget_ms``) reuses that model.
    ``out``: its CompletedProcess; ``seconds``: the job's wall time."""
    import copy
    import subprocess
    import time
    from types import SimpleNamespace

    from chamtvm.measure.runners import make_runner
    from chamtvm.transform.data import NUM_CLASSES, load_task
    from chamtvm.transform.graph import layered
    from chamtvm.transform.job import teacher_folder
    from chamtvm.transform.latency import TargetLatency
    from chamtvm.transform.prune.graph import trace_channel_groups
    from chamtvm.transform.prune.method import Options, measure_width_model
    from chamtvm.transform.teacher import resolve_model

    work = tmp_path_factory.mktemp("prune-digits")
    digits_teacher(work)
    digits_latency.into(work)
    opts = Options.from_dict({"widths": str(E2E_WIDTHS)})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHAMTVM_HOME", str(work))  # what `--workdir work` does
        data = load_task("digits")
        teacher = resolve_model("teacher:digits", "digits", data)
        assert not teacher.trained_now
        folder = teacher_folder("digits", layered(teacher.module, data.input_shape, NUM_CLASSES))
        module = copy.deepcopy(teacher.module).eval()
        graph = trace_channel_groups(module, data.input_shape)
        target = quick_networks(x86)
        with make_runner(target) as runner:
            lat = TargetLatency(target, runner)
            wm, probe, model_path = measure_width_model(module, graph, lat, x86.lanes, opts.widths, opts.min_keep,
                                                        folder / "prune", opts.calibration_networks)
    budget_ms = wm.predict_ms() / E2E_SPEEDUP
    t0 = time.time()
    out = subprocess.run(prune_cmd(work, "--latency-ms", repr(budget_ms), "--option", f"widths={E2E_WIDTHS}",
                                   "--option", "calibration_images=128", "--finetune-epochs", "2", "--no-uniform",
                                   "--no-progress", "--json"),
                         cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=900)
    return SimpleNamespace(work=work, wm=wm, probe=probe, graph=graph, model_path=model_path, budget_ms=budget_ms,
                           out=out, seconds=time.time() - t0)
