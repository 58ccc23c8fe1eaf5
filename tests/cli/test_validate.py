"""``cli.validate``: every argument type accepts good text and rejects bad text with a clear
message; ``check`` refuses arguments that do not fit together before any work; the
extrapolation notes. (Moved here from test_bad_inputs.py: the ``--shape`` property and the
far-outside-the-table notes; the same checks through the whole command line stay there.)"""

import argparse
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chamtvm.cli import validate as v


@pytest.mark.parametrize("fn,good,want", [
    (v.positive_int, " 3 ", 3), (v.non_negative_int, "0", 0), (v.int_at_least(4), "4", 4),
    (v.positive_float, "2.5", 2.5), (v.port, "65535", 65535), (v.port, "1", 1),
    (v.tracker, "127.0.0.1:9190", ("127.0.0.1", 9190)), (v.shape, "1, 3,8,8", (1, 3, 8, 8)),
    (v.budgets, "1.5,3", (1.5, 3.0)), (v.budgets, "7", (7.0,)),
    (v.seed, "0", 0), (v.seed, "4294967295", 2**32 - 1), (v.non_negative_float, "0", 0.0),
    (v.non_negative_float, "1.5", 1.5),
])
def test_types_accept_good_text(fn, good, want):
    assert fn(good) == want


@pytest.mark.parametrize("fn,bad,msg", [
    (v.positive_int, "0", "must be a positive integer, got '0'"),
    (v.seed, "-1", "seed must be an integer in 0..4294967295, got '-1'"), (v.seed, "2**32", "seed must be an integer"),
    (v.seed, "4294967296", "seed must be an integer in 0..4294967295"),
    (v.non_negative_float, "nan", "must be a finite number >= 0, got 'nan'"),
    (v.non_negative_float, "-1", "must be a finite number >= 0"), (v.non_negative_float, "inf", "finite number"),
    (v.positive_int, "2.5", "value must be an integer, got '2.5'"),
    (v.non_negative_int, "-1", "must be an integer >= 0, got '-1'"),
    (v.int_at_least(4), "3", "must be an integer >= 4, got '3'"),
    (v.positive_float, "0", "must be a positive number (finite)"),
    (v.positive_float, "-inf", "must be a positive number (finite)"),
    (v.positive_float, "nan", "must be a positive number (finite)"),
    (v.positive_float, "fast", "must be a number, got 'fast'"),
    (v.port, "0", "port must be in 1-65535"),
    (v.port, "65536", "port must be in 1-65535"),
    (v.port, "http", "port must be an integer, got 'http'"),
    (v.tracker, "nohost", "tracker must be HOST:PORT"),
    (v.tracker, "h:70000", "port must be in 1-65535"),
    (v.shape, "1,x", "shape must be comma-separated integers, got '1,x'"),
    (v.shape, "1,0,3", "every size of a shape must be a positive integer"),
    (v.shape, "65536,65536", "more than TVM can index (2147483647)"),
    (v.budgets, "1,,2", "budgets must be comma-separated numbers of ms"),
    (v.budgets, "1,-2", "every budget must be a positive number of ms"),
    (v.budgets, "inf", "every budget must be a positive number of ms"),
])
def test_types_reject_bad_text_with_a_clear_message(fn, bad, msg):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        fn(bad)
    assert msg in str(info.value)


def test_int_at_least_is_named_for_argparse_messages():
    assert v.int_at_least(4).__name__ == "int_at_least_4"


def test_shape_at_the_index_limit_is_accepted():
    assert v.shape(f"1,{v.MAX_INPUT_ELEMENTS}") == (1, 2**31 - 1)
    with pytest.raises(argparse.ArgumentTypeError):
        v.shape(f"2,{v.MAX_INPUT_ELEMENTS}")


def _args(**kw):
    base = dict(command="tune", workdir=None, luts_dir=None, schedules_dir=None, target="x86", space="fashion",
                task="fashion-mnist", tracker=None, out=None, train_command=None)
    return SimpleNamespace(**{**base, **kw})


def test_check_refuses_what_does_not_fit_together(tmp_path, monkeypatch):
    from chamtvm.targets.spec import TargetError

    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    monkeypatch.delenv("TVM_TRACKER_PORT", raising=False)
    a_file = tmp_path / "f"
    a_file.write_text("x")
    v.check(_args())  # a good tune command passes
    v.check(_args(command="targets", workdir=a_file.parent))  # other commands: folders only
    cases = [
        (_args(workdir=a_file), f"--workdir {a_file} is a file, not a folder"),
        (_args(command="targets", luts_dir=a_file), f"--luts-dir {a_file} is a file, not a folder"),
        (_args(out=tmp_path), "is a folder; it names the report JSON file"),
        (_args(task="command"), "--task command needs --command CMD"),
        (_args(command="search", no_measure=True, out=a_file, journal=None), "is an existing file; it names the "
                                                                              "output folder"),
        (_args(command="search", no_measure=True, journal=tmp_path), f"--journal {tmp_path} is not a file"),
        (_args(command="predict", model=str(tmp_path / "none.json")), "does not exist"),
        (_args(command="predict", model=str(tmp_path)), "is a folder; expected an architecture"),
        (_args(command="predict", model=str(a_file)), "unsupported model file type ''"),
    ]
    for args, msg in cases:
        with pytest.raises(v.UsageError) as info:
            v.check(args)
        assert msg in str(info.value), (msg, str(info.value))
    with pytest.raises(TargetError, match="unknown target 'riscv'"):
        v.check(_args(target="riscv"))
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")  # only its name is checked here
    v.check(_args(command="measure", model=str(onnx)))
    monkeypatch.setenv("TVM_TRACKER_HOST", "127.0.0.1")  # without TVM_TRACKER_PORT
    with pytest.raises(v.UsageError, match="go together"):
        v.check(_args(command="measure", model=str(onnx)))
    v.check(_args(command="measure", model=str(onnx), tracker=("127.0.0.1", 9190)))  # --tracker wins


def test_check_takes_the_tasks_own_space_when_none_is_given():
    args = _args(space=None, task="nas-bench-macro")
    v.check(args)
    assert args.space == "macro"


def test_no_table_message_says_how_to_build_one(tmp_path):
    msg = v.no_table_message(tmp_path / "x86.jsonl", "x86", "macro")
    assert str(tmp_path / "x86.jsonl") in msg
    assert "python -m chamtvm tune --target x86 --space macro" in msg


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text(alphabet="0123456789,-+ .xe", max_size=24))
def test_any_shape_text_is_positive_sizes_or_an_argparse_error(text):
    try:
        dims = v.shape(text)
    except argparse.ArgumentTypeError as e:
        assert str(e)
        return
    assert dims and all(isinstance(d, int) and d > 0 for d in dims) and np.prod(dims, dtype=object) <= \
        v.MAX_INPUT_ELEMENTS


def test_kernels_far_outside_the_table_are_flagged(tmp_path):
    from chamtvm.table.store import LatencyTable, ok_row

    table = LatencyTable(tmp_path / "x86.jsonl")
    assert v.extrapolation_notes([{"name": "k", "bytes": 1e9, "estimated": True}], table) == []  # empty table
    table.append([ok_row(f"fp/default/{i}", {"name": "k", "bytes": 1000.0 * (i + 1), "flops": 10.0}, [1.0], 1)
                  for i in range(3)])
    kernels = [{"name": "big", "bytes": 1e9, "flops": 1.0, "estimated": True},
               {"name": "near", "bytes": 5000.0, "flops": 10.0, "estimated": True},
               {"name": "measured", "bytes": 1e9, "flops": 1.0, "estimated": False}]
    notes = v.extrapolation_notes(kernels, table)
    assert len(notes) == 1 and "kernel big has 333333x the bytes" in notes[0]


def test_schedule_notes_say_when_no_database_is_found(tmp_path, monkeypatch, x86):
    from chamtvm.table.store import LatencyTable, ok_row
    from chamtvm.tuning.schedules import ScheduleSource

    monkeypatch.delenv("CHAMTVM_SCHEDULES_DIR", raising=False)
    table = LatencyTable(tmp_path / "x86.jsonl")
    table.append([ok_row("fp/default/1", {"name": "k", "schedule": "default"}, [1.0], 1)])
    missing = ScheduleSource.for_target(x86, tmp_path / "typo")
    assert v.schedule_notes(missing, table) == []  # nothing named, nothing tuned: the defaults are right
    named = v.schedule_notes(missing, table, tmp_path / "typo")
    assert len(named) == 1 and f"no MetaSchedule database at {tmp_path / 'typo' / 'x86'}" in named[0]
    assert "--schedules-dir names" in named[0]
    monkeypatch.setenv("CHAMTVM_SCHEDULES_DIR", str(tmp_path / "typo"))
    assert "CHAMTVM_SCHEDULES_DIR names" in v.schedule_notes(ScheduleSource.for_target(x86), table)[0]
    monkeypatch.delenv("CHAMTVM_SCHEDULES_DIR")
    table.append([ok_row("fp/ms-abc/1", {"name": "k", "schedule": "ms-abc"}, [0.5], 1)])
    assert "the table holds 1 rows of tuned schedules" in v.schedule_notes(missing, table)[0]


def test_os_errors_are_one_line_naming_the_file():
    import errno

    msg = v.os_error_message(PermissionError(errno.EPERM, "Operation not permitted", "/w/luts/x86.jsonl"))
    assert msg.startswith("/w/luts/x86.jsonl: Operation not permitted: cannot write there")
    assert v.os_error_message(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")) == "Connection refused"
