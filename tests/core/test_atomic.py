"""Atomic writes: a reader (or the next run after a kill -9) sees the old file or the new one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chamtvm.core.atomic import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parents[2]


def test_replace_and_failure_leave_no_half_file(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


WRITER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from chamtvm.core.atomic import atomic_write_text
i = 0
while True:
    atomic_write_text(sys.argv[1], str(i % 10) * 2_000_000)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_during_rewrites_leaves_a_whole_file(tmp_path):
    path = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ROOT)], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and int(proc.stdout.readline()) < 3:
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    text = path.read_text()
    assert len(text) == 2_000_000 and len(set(text)) == 1  # one whole version, never a mix or a cut


def test_atomic_dir_renames_at_the_end_and_leaves_nothing_on_failure(tmp_path):
    from chamtvm.core.atomic import atomic_dir, relocate

    out = tmp_path / "search-x86-5ms"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as stage:
            (stage / "arch.json").write_text("{}")
            raise KeyboardInterrupt  # Ctrl-C halfway through the export
    assert list(tmp_path.iterdir()) == []  # no half-written folder, no temporary
    with atomic_dir(out) as stage:
        (stage / "arch.json").write_text("{}")
        paths = {"arch": str(stage / "arch.json"), "shape": [1, 3]}
    assert (out / "arch.json").exists() and relocate(paths, stage, out) == {"arch": str(out / "arch.json"),
                                                                           "shape": [1, 3]}
    with atomic_dir(out) as stage:  # a rerun replaces the old folder whole
        (stage / "report.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["report.json"] and [p.name for p in tmp_path.iterdir()] == [out.name]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        with atomic_dir(tmp_path / "file"):
            pass
