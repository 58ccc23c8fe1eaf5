"""``chamtvm transform``: adapt a trained network to a target under a latency budget.

    python -m chamtvm transform teacher:digits --target x86 --latency-ms 0.3 --task digits --method hant

MODEL: ``teacher:<task>`` (the task's default teacher, trained here once and reused), a
``teacher.json`` written by chamtvm, or an ``.onnx`` file of a trained MobileNetV2 /
EfficientNet-style network (1x28x28 images, 10 classes). The budget is measured latency on
the target (ms). Writes the adapted network (torch state dict and ``torch.export`` program,
ONNX, the TVM library) and ``report.json`` into ``--out`` and prints validation and test
accuracy and measured latency against the teacher and the uniform width-scaling baseline.
Methods: ``hant`` (replace operations, #22), ``prune`` (structured pruning, #23). See
docs/transform.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"an option is KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    if not k.strip():
        raise argparse.ArgumentTypeError(f"an option is KEY=VALUE, got {text!r}")
    return k.strip(), v.strip()


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``transform`` subcommand on an ``argparse`` subparsers object."""
    from ..transform.data import TASK_NAMES
    from ..transform.methods import METHODS
    from . import validate as v

    p = subparsers.add_parser("transform", help="adapt a trained network to a target under a latency budget "
                                                "(HANT, pruning)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="teacher:<task>, a teacher.json, or an .onnx file")
    p.add_argument("--target", default="x86", help="registered target name (see `chamtvm targets`)")
    p.add_argument("--tracker", type=v.tracker, default=None, help="TVM RPC tracker HOST:PORT")
    p.add_argument("--key", default=None, help="RPC device key (default: the target's rpc_key)")
    p.add_argument("--luts-dir", type=Path, default=None, help="folder of latency tables (default: <workdir>/luts)")
    p.add_argument("--schedules-dir", type=Path, default=None,
                   help="root of MetaSchedule databases (default: <workdir>/schedules)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--latency-ms", type=v.positive_float, default=None,
                        help="latency budget: measured ms on the target")
    budget.add_argument("--speedup", type=v.positive_float, default=None,
                        help="or: the budget is the teacher's measured latency divided by this (e.g. 1.5)")
    p.add_argument("--task", required=True, choices=TASK_NAMES, help="images the network is trained and judged on")
    p.add_argument("--method", default="hant", choices=METHODS.names(),
                   help="; ".join(f"{n}: {m.description}" for n, m in METHODS.items()))
    p.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. candidates=skip,ir_k3_e1 or distill_epochs=2 (repeatable)")
    p.add_argument("--finetune-epochs", type=v.non_negative_int, default=None,
                   help="epochs of fine-tuning by distillation (default 3 for fashion-mnist, 4 for digits)")
    p.add_argument("--train-images", type=v.positive_int, default=None, help="fashion-mnist training images "
                                                                             "(default 10000)")
    p.add_argument("--val-images", type=v.positive_int, default=None, help="fashion-mnist validation images "
                                                                           "(default 5000)")
    p.add_argument("--no-uniform", action="store_true", help="skip the uniform width-scaling baseline")
    p.add_argument("--uniform-widths", type=v.width_multipliers, default=None, metavar="W1,W2,...",
                   help="width multipliers the uniform baseline may take (default 0.25, 0.3, ..., 1.0 in "
                        "steps of 0.05; fewer: fewer networks priced)")
    p.add_argument("--uniform-epochs", type=v.positive_int, default=None,
                   help="training epochs of the uniform baseline (default: the teacher's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default <workdir>/runs/transform-<task>-<method>-<target>-<budget>ms)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)
    return p


def _check(args) -> None:
    """Cheap checks before any work (``UsageError``, exit 2)."""
    from ..targets.spec import get_target
    from .validate import UsageError

    get_target(args.target)  # TargetError listing the targets
    model = str(args.model)
    if model.startswith("teacher:"):
        name = model.split(":", 1)[1]
        if name != args.task:
            raise UsageError(f"{model} is the default teacher of task {name!r}; with --task {args.task} use "
                             f"teacher:{args.task}")
    else:
        path = Path(model)
        if not path.exists():
            raise UsageError(f"model {path} does not exist (give teacher:<task>, a teacher.json or an .onnx file)")
        if path.is_dir() and not (path / "teacher.json").exists():
            raise UsageError(f"model {path} is a folder without a teacher.json")
        if path.is_file() and path.suffix not in (".json", ".onnx"):
            raise UsageError(f"{path}: unsupported model file type {path.suffix or '(none)'!r}; give a teacher.json "
                             f"written by chamtvm, an .onnx file, or teacher:<task>")
    if args.task == "digits" and (args.train_images or args.val_images):
        raise UsageError("task digits has fixed splits; --train-images/--val-images apply to fashion-mnist")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; it names the output folder")
    if args.tracker is None:
        from ..core.hostport import tracker_from_env

        try:
            tracker_from_env()
        except ValueError as e:
            raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    """Execute the subcommand; returns the process exit code."""
    from ..core.registry import UnknownNameError
    from ..transform.data import TaskError
    from ..transform.graph import UnsupportedModelError
    from ..transform.job import TransformConfig, transform
    from ..transform.methods import MethodUnavailableError, OptionError
    from ..transform.report import format_report
    from ..transform.select import BudgetError
    from ..transform.teacher import TeacherError

    _check(args)
    cfg = TransformConfig(model=args.model, task=args.task, target=args.target, budget_ms=args.latency_ms,
                          speedup=args.speedup,
                          method=args.method, seed=args.seed, options=dict(args.option),
                          finetune_epochs=args.finetune_epochs, uniform=not args.no_uniform,
                          uniform_widths=args.uniform_widths, uniform_epochs=args.uniform_epochs, out=args.out,
                          luts_dir=args.luts_dir, schedules_dir=args.schedules_dir, tracker=args.tracker,
                          key=args.key, train_size=args.train_images, val_size=args.val_images,
                          progress=not args.no_progress)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    try:
        report = transform(cfg, log=log)
    except (TaskError, TeacherError, UnsupportedModelError, BudgetError, MethodUnavailableError, OptionError,
            UnknownNameError) as e:
        print(f"chamtvm: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0
