"""Arguments several commands share: the target and where its table and schedules live, the
table statistic, the model file with its space and input shape, and known accuracies."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import validate as v


def add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="x86", help="registered target name (see `chamtvm targets`)")
    p.add_argument("--tracker", type=v.tracker, default=None,
                   help="TVM RPC tracker HOST:PORT (default: $TVM_TRACKER_HOST:$TVM_TRACKER_PORT if set)")
    p.add_argument("--key", default=None, help="RPC device key (default: the target's rpc_key)")
    p.add_argument("--luts-dir", type=Path, default=None, help="folder of latency tables (default: <workdir>/luts)")
    p.add_argument("--schedules-dir", type=Path, default=None,
                   help="root of MetaSchedule databases (default: <workdir>/schedules)")


def add_known_accuracies_arg(p: argparse.ArgumentParser, samples_flag: str) -> None:
    """``--known-accuracies JOURNAL`` of the accuracy loops (``tune``, ``accuracy``);
    ``samples_flag`` names the command's budget of new trainings, which known points do not count in."""
    p.add_argument("--known-accuracies", type=Path, default=None, metavar="JOURNAL",
                   help="an accuracy journal whose trainings of the space, or of a space it restricts (the full space "
                        "of a reduced space from `chamtvm friendliness`), under the task's protocol join the accuracy "
                        f"loop as known points: not trained again and not counted in {samples_flag}")


def add_statistic_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--statistic", default="runtime_us_p50", choices=["runtime_us_p50", "runtime_us_min", "runtime_us_mean"],
                   help="table statistic a kernel is priced by (default: the median)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="architecture JSON file or ONNX file")
    p.add_argument("--space", default="fashion", help="space of an architecture JSON without a 'space' field "
                                                      "(default: fashion; exported arch.json files name theirs)")
    p.add_argument("--shape", type=v.shape, default=None,
                   help="input shape of an ONNX model with a dynamic input, e.g. 1,3,224,224")
    p.add_argument("--json", action="store_true", help="print JSON")
