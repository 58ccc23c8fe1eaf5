"""The one validation layer of the command line: argument types and the checks run before any work.

In: argument texts (``type=`` functions for argparse) and the parsed namespace
(:func:`check`). Out: values, or an error whose message says what is wrong; argparse turns a
type error into ``chamtvm <cmd>: error: ...`` with exit 2, :func:`check` raises
:class:`UsageError`, which ``main`` prints as ``chamtvm: error: ...`` with exit 2. Every check
here is cheap (no lowering, no TVM), so a bad argument is reported within a second, never
after the work it would have spoiled.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

# TVM indexes a buffer with 32-bit integers; beyond this an input cannot be compiled
MAX_INPUT_ELEMENTS = 2**31 - 1


class UsageError(ValueError):
    """Arguments that are wrong or do not fit together (reported like any other bad input, exit 2)."""


# ----------------------------------------------------------------- argument types
def _int(text: str, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    v = _int(text, "value")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    v = _int(text, "value")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return v


def int_at_least(low: int):
    """A type function: an integer >= ``low``."""

    def parse(text: str) -> int:
        v = _int(text, "value")
        if v < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return v

    parse.__name__ = f"int_at_least_{low}"
    return parse


def positive_float(text: str) -> float:
    """A finite number > 0 (e.g. a latency in ms, a limit in millions)."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (v > 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a positive number (finite), got {text!r}")
    return v


def seed(text: str) -> int:
    """A random seed: an integer in 0 .. 2**32 - 1 (what NumPy and scikit-learn accept)."""
    v = _int(text, "seed")
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"seed must be an integer in 0..{2**32 - 1}, got {text!r}")
    return v


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (e.g. the ``--lcb`` kappa: std deviations below the mean)."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (v >= 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    from ..core.hostport import check_port

    v = _int(text, "port")
    try:
        return check_port(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def tracker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` of an RPC tracker (port 1-65535)."""
    from ..core.hostport import parse_hostport

    try:
        return parse_hostport(text, "tracker")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def shape(text: str) -> tuple[int, ...]:
    """An input shape ``N,C,H,W``: positive integers, at most ``MAX_INPUT_ELEMENTS`` elements."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be comma-separated integers, got {text!r}") from None
    if any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"every size of a shape must be a positive integer, got {text!r}")
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise argparse.ArgumentTypeError(
            f"shape {text!r} has {math.prod(dims):.3g} elements, more than TVM can index "
            f"({MAX_INPUT_ELEMENTS}); no table could price it")
    return dims


def budgets(text: str) -> tuple[float, ...]:
    """Comma-separated positive latency budgets in ms."""
    try:
        values = tuple(float(x) for x in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"budgets must be comma-separated numbers of ms, got {text!r}") from None
    if not values or any(not (v > 0) or not math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"every budget must be a positive number of ms, got {text!r}")
    return values


def width_multipliers(text: str) -> tuple[float, ...]:
    """Comma-separated width multipliers, each in (0, 1], returned sorted without repeats."""
    try:
        values = tuple(float(x) for x in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated numbers in (0, 1], got {text!r}") from None
    if not values or any(not (0 < v <= 1) for v in values):
        raise argparse.ArgumentTypeError(f"every width multiplier must be in (0, 1], got {text!r}")
    return tuple(sorted(set(values)))


# ------------------------------------------------------------- checks before work
def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _folder_arg(value, flag: str) -> None:
    """A folder argument (or variable, ``flag`` = ``NAME=``) that is not a file and not under one."""
    if value is None:
        return
    where = f"{flag}{value}" if flag.endswith("=") else f"{flag} {value}"
    if Path(value).exists() and not Path(value).is_dir():
        raise UsageError(f"{where} is a file, not a folder")
    up = _existing_ancestor(Path(value))
    if not up.is_dir():
        raise UsageError(f"{where}: {up} is a file, so the folder cannot be made under it")


def _writable(folder: Path, what: str) -> None:
    """``folder`` (made later if missing) can be written: its nearest existing ancestor is a
    writable folder. Checked before any work, so a read-only working folder is reported now,
    not after minutes of measuring."""
    import os

    up = _existing_ancestor(folder)
    if not up.is_dir():
        raise UsageError(f"{what} {folder}: {up} is a file, so the folder cannot be made under it")
    if not os.access(up, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {folder} cannot be written ({up} is read-only); pass --workdir (or "
                         f"--luts-dir/--schedules-dir) to a folder you can write")


def _output_file(path, flag: str) -> None:
    """An output file: not a folder, and its folder can be made and written."""
    if path is None:
        return
    if Path(path).is_dir():
        raise UsageError(f"{flag} {path} is a folder; it names the report JSON file")
    _writable(Path(path).expanduser().absolute().parent, f"{flag} {path}: its folder")


def _environment(args) -> None:
    """Folders named by the environment: not files (a missing one is made when needed)."""
    import os

    if getattr(args, "workdir", None) is None:
        _folder_arg(os.environ.get("CHAMTVM_HOME") or None, "CHAMTVM_HOME=")
    _folder_arg(os.environ.get("CHAMTVM_SCHEDULES_DIR") or None, "CHAMTVM_SCHEDULES_DIR=")


def _writes(args) -> list[tuple[Path, str]]:
    """The folders a command will write: ``[(folder, what)]``."""
    from ..core import workdir

    cmd, home = args.command, getattr(args, "workdir", None)  # main sets $CHAMTVM_HOME after the checks
    luts = (getattr(args, "luts_dir", None) or workdir.luts_dir(home), "the latency tables' folder")
    sched = (getattr(args, "schedules_dir", None) or workdir.schedules_root(home), "the schedules folder")
    runs = (workdir.runs_dir(home), "the runs folder")
    if cmd == "tune":
        return [luts, sched, runs]
    if cmd == "predict" and getattr(args, "measure_missing", False):
        return [luts]
    if cmd == "accuracy":
        journal = getattr(args, "journal", None)
        journal = Path(journal).expanduser().absolute().parent if journal else runs[0]
        return [(journal, "the accuracy journal's folder"), runs]
    if cmd == "search":
        out = getattr(args, "out", None)
        return [runs] if out is None else [(Path(out).expanduser().absolute().parent, f"--out {out}: its folder")]
    return []


def _model(args) -> None:
    path = Path(args.model)
    if not path.exists():
        raise UsageError(f"model file {path} does not exist")
    if path.is_dir():
        raise UsageError(f"model {path} is a folder; expected an architecture .json or an .onnx file")
    if path.suffix not in (".json", ".onnx"):
        raise UsageError(f"{path}: unsupported model file type {path.suffix!r}; expected .json "
                         f"(architecture) or .onnx")
    if path.suffix == ".json" and getattr(args, "shape", None) is not None:
        raise UsageError(f"--shape applies to ONNX models only; the input of architecture {path} comes "
                         f"from its space (its 'resolution' and the space's in_channels)")
    if path.suffix == ".json":
        from ..lower.network import read_arch

        read_arch(path, args.space)  # SpaceError naming the field, before any table or lowering
    elif getattr(args, "shape", None) is None:
        _onnx_static_input(path)


def _onnx_static_input(path: Path) -> None:
    """An ONNX model's static input is held to the same limit as ``--shape``."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return  # an unreadable file: lowering reports it
    inits = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if dims and None not in dims and math.prod(dims) > MAX_INPUT_ELEMENTS:
            raise UsageError(f"{path}: input {inp.name!r} has the static shape {'x'.join(map(str, dims))} = "
                             f"{math.prod(dims):.3g} elements, more than TVM can index ({MAX_INPUT_ELEMENTS}); "
                             "no table could price it")


def _tvm_target(target) -> None:
    """The target's TVM target builds (a bad ``kind`` or attribute is a ``TargetError``, exit 2)."""
    from ..targets.spec import TargetError

    try:
        target.tvm()
    except TargetError:
        raise
    except Exception as e:  # TVM's own error for an unknown kind or attribute
        lines = str(e).strip().splitlines()
        raise TargetError(f"target {target.name!r} ({target.source or 'built in'}): TVM cannot build its "
                          f"target {target.target_json()}: {lines[-1][:200] if lines else type(e).__name__}") from None


def _tracker_env(args) -> None:
    from ..core.hostport import tracker_from_env

    if getattr(args, "tracker", None) is None:
        try:
            tracker_from_env()
        except ValueError as e:
            raise UsageError(str(e)) from None


def _space(args) -> None:
    from ..space.schema import SearchSpace

    if args.space is None and getattr(args, "task", None) is not None:
        from ..accuracy.tasks import default_space

        args.space = default_space(args.task)  # tune: the task's own space (macro, fashion, ...)
    from ..pipeline.config import DEFAULT_SPACE

    # search keeps None (the search job resolves it to DEFAULT_SPACE and tells users of the old default)
    SearchSpace.load(DEFAULT_SPACE if args.space is None else args.space)  # SpaceError (exit 2): no usable space


def check(args) -> None:
    """Checks of ``args`` that need more than one argument or the file system, run before any
    work; raises :class:`UsageError` (or ``SpaceError``/``TargetError``, also exit 2)."""
    cmd = getattr(args, "command", None)
    if getattr(args, "workdir", None) is not None:
        _folder_arg(args.workdir, "--workdir")
    _environment(args)
    for flag in ("luts_dir", "schedules_dir"):
        _folder_arg(getattr(args, flag, None), "--" + flag.replace("_", "-"))
    if cmd == "tune":
        _output_file(args.out, "--out")
    for folder, what in _writes(args):
        _writable(folder, what)
    if cmd not in ("tune", "predict", "measure", "search", "tune-model"):
        return
    from ..targets.spec import get_target

    target = get_target(args.target)  # TargetError listing the registered targets
    target.runtime_threads  # noqa: B018 - a bad $CHAMTVM_THREADS is a TargetError now, not after lowering
    if cmd in ("measure", "tune"):
        _tvm_target(target)
    if cmd in ("predict", "measure", "tune-model"):
        _model(args)
    if cmd in ("tune", "search"):
        _space(args)
    if cmd in ("measure", "tune", "tune-model") or (cmd == "search" and not args.no_measure):
        _tracker_env(args)
    if cmd == "tune":
        known = getattr(args, "known_accuracies", None)
        if known is not None and not Path(known).is_file():
            raise UsageError(f"--known-accuracies {known} is not a file: give an accuracy journal "
                             f"(runs/accuracy-<task>-<space>.jsonl, written by tune, accuracy or friendliness)")
        if args.task == "command" and not args.train_command:
            raise UsageError("--task command needs --command CMD (a trainer that gets the architecture JSON "
                             "path and prints the accuracy)")
    if cmd == "search":
        from ..pipeline.config import DEFAULT_SPACE

        if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
            raise UsageError(f"--out {args.out} is an existing file; it names the output folder "
                             f"(arch.json, model.onnx, the library, report.json)")
        if args.journal is not None and not Path(args.journal).is_file():
            raise UsageError(f"--journal {args.journal} is not a file; build it with "
                             f"python -m chamtvm accuracy --space {args.space or DEFAULT_SPACE} --journal {args.journal}")


def os_error_message(e: OSError) -> str:
    """One line for an ``OSError`` that reached the command line (no traceback): the file,
    the system's reason and, for a file that could not be written, what to check."""
    import errno

    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    why = e.strerror or str(e) or type(e).__name__
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR):
        return (f"{where}{why}: cannot write there (a read-only or full working folder, or a file where a "
                f"folder belongs?); pass --workdir to a folder you can write")
    return f"{where}{why}"


def no_table_message(table_path: Path, target: str, space: str | None = None) -> str:
    """What ``predict`` says when the target has no (or an empty) latency table (``space``:
    the one to build it for, default ``tune``'s: its default task's space)."""
    if space is None:
        from ..accuracy.tasks import default_space

        space = default_space("nas-bench-macro")  # tune's default --task
    return (f"there is no latency table at {table_path} (or it has no measured kernels); build it "
            f"with: python -m chamtvm tune --target {target} --space {space} (or pass --luts-dir / "
            f"--workdir where one was built)")


def schedule_notes(schedules, table, schedules_dir=None) -> list[str]:
    """Notes when ``predict`` finds no MetaSchedule database for the target (its kernels are
    then priced with their default schedules): always when the folder was named
    (``--schedules-dir`` / ``$CHAMTVM_SCHEDULES_DIR``), else when the table holds rows of tuned
    schedules (it was built with a database that is not here)."""
    import os

    if schedules.has_database:
        return []
    named = ("--schedules-dir" if schedules_dir is not None else
             "CHAMTVM_SCHEDULES_DIR" if os.environ.get("CHAMTVM_SCHEDULES_DIR") else None)
    tuned_rows = sum(1 for r in table.rows() if r.get("schedule", "default") != "default")
    if named is None and not tuned_rows:
        return []
    why = (f"{named} names {schedules.work_dir.parent}" if named else
           f"the table holds {tuned_rows} rows of tuned schedules")
    return [f"note: no MetaSchedule database at {schedules.work_dir} ({why}): every kernel is priced with its "
            f"default schedule; point --schedules-dir (or CHAMTVM_SCHEDULES_DIR) at the folder holding "
            f"<target>/database_tuning_record.json"]


def extrapolation_notes(kernels, table, factor: float = 4.0) -> list[str]:
    """Notes for kernels priced by the kernel model that are far outside the measured table:
    more than ``factor`` times the bytes or FLOPs of the largest measured kernel. ``kernels``:
    dicts with ``name``, ``bytes``, ``flops`` and ``estimated`` (``FullPrediction.kernels``)."""
    rows = list(table.rows())
    if not rows:
        return []
    top = {f: max((r.get(f) or 0) for r in rows) for f in ("bytes", "flops")}
    notes = []
    for k in kernels:
        if not k.get("estimated"):
            continue
        over = {f: (k.get(f) or 0) / top[f] for f in top if top[f] > 0 and (k.get(f) or 0) > factor * top[f]}
        if over:
            f, x = max(over.items(), key=lambda kv: kv[1])
            notes.append(f"note: kernel {k['name']} has {x:.0f}x the {f} of the largest measured kernel in "
                         f"{table.path}; its latency is an extrapolation of the kernel model, expect a large "
                         f"error (measure it: python -m chamtvm measure MODEL)")
    return notes
