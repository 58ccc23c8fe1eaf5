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
