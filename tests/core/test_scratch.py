"""``core.scratch``: a scratch folder is removed on exit, and one a killed process left is
removed by the next run of the same prefix (never one of a live process)."""

import os
import subprocess
import sys

import pytest


def test_scratch_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    from chamtvm.core.scratch import remove_stale, scratch_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left = tmp_path / f"chamtvm-x-{dead_pid}-abc"
        running = tmp_path / f"chamtvm-x-{live.pid}-abc"
        other = tmp_path / f"chamtvm-y-{dead_pid}-abc"  # another prefix: not ours to remove
        for d in (left, running, other):
            (d / "lib.so").parent.mkdir()
            (d / "lib.so").write_bytes(b"x")
        with scratch_dir("chamtvm-x-", tmp_path) as mine:
            assert mine.is_dir() and mine.name.startswith(f"chamtvm-x-{os.getpid()}-")
            assert not left.exists() and running.exists() and other.exists()
            assert remove_stale("chamtvm-x-", tmp_path) == []  # its own folder stays while it runs
        assert not mine.exists()
    finally:
        live.kill()
        live.wait()
    assert remove_stale("chamtvm-x-", tmp_path) == [running]


def test_scratch_folder_is_removed_when_the_block_raises(tmp_path):
    from chamtvm.core.scratch import scratch_dir

    with pytest.raises(KeyboardInterrupt):
        with scratch_dir("chamtvm-x-", tmp_path) as d:
            raise KeyboardInterrupt
    assert not d.exists()
