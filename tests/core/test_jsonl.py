"""Durable JSON-lines appends: a finished last line is kept, a torn one is set aside (never
dropped), and a writer killed with SIGKILL mid-append loses nothing it had finished."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chamtvm.core.jsonl import append_lines, split_lines

ROOT = Path(__file__).resolve().parents[2]


def _side_files(path):
    return sorted(path.parent.glob(path.name + ".torn-*"))


def test_valid_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}')  # the finished record lacks only its newline
    lines, tail, torn = split_lines(path.read_bytes())
    assert tail == b'{"a": 2}' and not torn
    notes = []
    append_lines(path, [json.dumps({"a": 3})], log=notes.append)
    assert [json.loads(x)["a"] for x in path.read_text().splitlines()] == [1, 2, 3]
    assert not _side_files(path) and not notes


def test_torn_tail_is_set_aside_and_reported(tmp_path):
    path = tmp_path / "j.jsonl"
    torn = b'{"a": 2, "b": [1, 2'
    path.write_bytes(b'{"a": 1}\n' + torn)
    assert split_lines(path.read_bytes())[2]
    notes = []
    append_lines(path, [json.dumps({"a": 3})], log=notes.append)
    assert [json.loads(x)["a"] for x in path.read_text().splitlines()] == [1, 3]
    sides = _side_files(path)
    assert len(sides) == 1 and sides[0].read_bytes() == torn
    assert len(notes) == 1 and str(sides[0]) in notes[0]


def test_custom_completeness_rule(tmp_path):
    # a JSON object that fails the file's own rule (e.g. a bad checksum) is not a finished record
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    append_lines(path, ['{"a": 3}'], is_complete=lambda raw: b'"ok"' in raw, log=None)
    assert path.read_text().splitlines() == ['{"a": 1}', '{"a": 3}']
    assert _side_files(path)[0].read_bytes() == b'{"a": 2}'


WRITER = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
kind, path, i = sys.argv[3], sys.argv[1], int(sys.argv[4])
pad = [0.5] * 20000  # long lines: a kill often lands inside a write
if kind == "table":
    from chamtvm.table.store import LatencyTable, ok_row
    t = LatencyTable(path)
    write = lambda i: t.append([ok_row(f"fp/default/{i}", {"name": "k", "pad": pad}, [1.0, 2.0], 1)])
elif kind == "journal":
    from chamtvm.accuracy.journal import Journal
    j = Journal(path)
    write = lambda i: j.append({"architecture": {"i": i, "pad": pad}, "accuracy": 0.5, "seed": i, "epochs": 1,
                                "seconds": 1.0, "task": "t"})
else:  # the tuning log, appended the way tune_kernel appends it
    from chamtvm.core.jsonl import append_lines
    from chamtvm.tuning.database import _is_tuning_line
    write = lambda i: append_lines(path, [json.dumps({"struct_hash": str(i), "pad": pad})],
                                   is_complete=_is_tuning_line, log=None)
while True:
    write(i)
    print(i, flush=True)  # only after the append returned: this record is finished
    i += 1
"""


def _finished_ids(kind, path):
    if kind == "table":
        from chamtvm.table.store import LatencyTable

        return {int(r["key"].rsplit("/", 1)[1]) for r in LatencyTable(path).load().rows()}
    if kind == "journal":
        from chamtvm.accuracy.journal import Journal

        return {r["seed"] for r in Journal(path).records()}
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.database import tuned_hashes

    return {int(h) for h in tuned_hashes(get_target("x86"), path.parent, log=None)}


@pytest.mark.parametrize("kind", ["table", "journal", "tuning_log"])
def test_sigkill_mid_append_loses_no_finished_record(tmp_path, kind):
    path = tmp_path / "tuned_kernels.jsonl"
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ROOT), kind, str(1000 * round_)],
                                stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        finished = []
        while len(finished) < 3 and time.time() < deadline:
            finished.append(int(proc.stdout.readline()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished += [int(x) for x in proc.stdout.read().split()]
        # every record whose append returned is read back by the file's own reader
        assert set(finished) <= _finished_ids(kind, path), round_
    # and the next writer proceeds; every complete line is a record
    append_lines(path, [json.dumps({"struct_hash": "x", "key": "k", "crc": "", "seed": 0})], log=None)
    lines, tail, torn = split_lines(path.read_bytes())
    assert tail is None and not torn
    assert all(isinstance(json.loads(x), dict) for x in lines if x.strip())
    sides = list(tmp_path.glob(path.name + ".torn-*"))
    assert all(s.read_bytes() and b"\n" not in s.read_bytes() for s in sides)
