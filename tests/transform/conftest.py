"""Fixtures of the transformation tests: the digits task's default teacher, trained once per
session and shared by the end-to-end tests of every method (HANT, pruning)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TRAIN_DIGITS_TEACHER = ("from chamtvm.transform.data import load_task\n"
                        "from chamtvm.transform.teacher import train_teacher\n"
                        "t = train_teacher('digits', load_task('digits'))\n"
                        "assert t.trained_now and t.val_accuracy > 0.8, t.describe()\n")


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory):
    """The teacher ``teacher:digits`` names (``DEFAULT_TEACHERS["digits"]``), trained for real
    once per session, in a child process, into a working folder of its own. Returns
    ``into(workdir)``: copies the saved teacher (``runs/transform/teachers/``) into
    ``workdir``, so that ``chamtvm --workdir workdir transform teacher:digits ...`` reuses it
    (its report says ``"trained_now": false``) instead of training it again."""
    home = tmp_path_factory.mktemp("digits-teacher")
    out = subprocess.run([sys.executable, "-c", TRAIN_DIGITS_TEACHER], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "CHAMTVM_HOME": str(home)}, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    teachers = home / "runs" / "transform" / "teachers"
    assert list(teachers.glob("digits-*/teacher.json"))

    def into(workdir: Path) -> None:
        shutil.copytree(teachers, Path(workdir) / "runs" / "transform" / "teachers", dirs_exist_ok=True)

    return into


@pytest.fixture(scope="session")
def digits_latency(tmp_path_factory, digits_teacher, x86, quick_networks):
    """What the digits teacher costs on x86, measured once per session for real (the local
    runner: a measuring child) and shared by the HANT and prune end-to-end runs: ``into(workdir)``
    copies the table (``workdir/luts``, the one ``chamtvm --workdir workdir`` reads; the runs
    measure only the kernels they add) and the teacher's measured latency (``job.teacher_latency``
    in ``job.teacher_folder``, which the runs read instead of measuring the teacher again).
    The table is filled the way ``test_latency`` checks it: the teacher's stem, blocks and head
    priced side by side at their input shapes (``TargetLatency.price_blocks``: ``priced``;
    ``measured_now``: kernels that pricing measured), then the whole network (``whole``:
    ``price_network``). The teacher is timed end to end in a few short samples (conftest
    ``quick_networks``: the same target fingerprint, so the runs read its figure back).
    ``net``: the teacher (``layered``), ``shape``: its input shape."""
    from types import SimpleNamespace

    import torch

    from chamtvm.measure.runners import make_runner
    from chamtvm.transform.data import NUM_CLASSES, load_task
    from chamtvm.transform.graph import layered
    from chamtvm.transform.job import teacher_folder, teacher_latency
    from chamtvm.transform.latency import TargetLatency
    from chamtvm.transform.teacher import resolve_model

    home = tmp_path_factory.mktemp("digits-latency")
    digits_teacher(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHAMTVM_HOME", str(home))  # what `--workdir home` does
        data = load_task("digits")
        teacher = resolve_model("teacher:digits", "digits", data)
        assert not teacher.trained_now
        shape = tuple(data.input_shape)
        net = layered(teacher.module, shape, NUM_CLASSES)
        with torch.no_grad():
            head_in = tuple(net.features(torch.zeros(*shape)).shape)
        parts = [(net.stem, shape)] + [(b, (1, i.cin, i.in_hw, i.in_hw)) for b, i in zip(net.blocks, net.layers)] \
            + [(net.head, head_in)]
        folder = teacher_folder("digits", net)
        target = quick_networks(x86)
        with make_runner(target) as runner:
            lat = TargetLatency(target, runner)
            priced = lat.price_blocks(parts)
            measured_now = lat.measured_now
            whole = lat.price_network(net, shape)
            teacher_ms = teacher_latency(lat, net, folder, log=lambda message: None)
        luts = lat.table.path.parent

    def into(workdir: Path) -> None:
        shutil.copytree(luts, Path(workdir) / "luts", dirs_exist_ok=True)
        shutil.copytree(folder, Path(workdir) / folder.relative_to(home), dirs_exist_ok=True)

    return SimpleNamespace(net=net, shape=shape, parts=parts, priced=priced, measured_now=measured_now, whole=whole,
                           teacher_ms=teacher_ms, into=into)


def assert_measured_checks(checks: list[dict], chosen) -> dict:
    """``measured_checks`` as ``select.select_measured`` writes them: tries over the budget
    until one comes under (3 at most), then only fill tries; exactly one kept, and
    ``chosen(record)`` true of it. Returns the kept record."""
    kept = [c for c in checks if c["kept"]]
    assert len(kept) == 1 and chosen(kept[0]) and all(c["measured_ms"] > 0 for c in checks)
    first_under = next((i for i, c in enumerate(checks) if c["under_budget"]), len(checks) - 1)
    assert 1 <= first_under + 1 <= 3
    assert all(not c["under_budget"] and not c.get("fill") for c in checks[:first_under])
    assert all(c.get("fill") for c in checks[first_under + 1:])
    return kept[0]
