"""Export a chosen network as deployable artefacts for its target.

Writes into one folder:
  arch.json      the architecture (with its space), rebuildable by ``model.build_model``
  model.onnx     the torch model as ONNX (opset 17)
  model.pt2      the torch model as a ``torch.export`` ExportedProgram
  <name>.so      the TVM library for the target: Relax VM executable built with the
                 target's pipeline and the schedules in ``schedules/<target>/``,
                 cross-compiled where the target says so. On the device it loads with
                 plain TVM: ``relax.VirtualMachine(tvm.runtime.load_module(path), dev)``.
                 Where the target names ``threads``, run it with ``TVM_NUM_THREADS`` set to
                 that count (``runtime_threads`` in the returned paths): the latency the
                 search predicted was measured so.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..measure.compile import compile_network, export
from ..space.model import build_model, input_shape
from ..lower.network import lower_arch
from ..tuning.schedules import ScheduleSource
from ..space.schema import Arch, SearchSpace
from ..targets.spec import TargetSpec


def export_network(space: SearchSpace, arch: Arch, target: TargetSpec, out_dir: str | Path,
                   schedules: ScheduleSource | None = None, space_ref: str | None = None) -> dict:
    """Write the artefacts of ``arch`` for ``target`` into ``out_dir``; returns their paths."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    arch_path = out / "arch.json"
    from ..core.atomic import atomic_write_text

    atomic_write_text(arch_path, json.dumps({**arch.to_dict(), "space": space_ref or space.name}, indent=1))
    paths["arch"] = str(arch_path)

    model = build_model(space, arch)
    example = torch.zeros(*input_shape(space, arch))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(out / "model.onnx"), input_names=["x"],
                          opset_version=17, dynamo=False)
        torch.export.save(torch.export.export(model, (example,)), str(out / "model.pt2"))
    paths["onnx"] = str(out / "model.onnx")
    paths["torch_export"] = str(out / "model.pt2")

    net = lower_arch(space, arch, **target.lowering())
    import tvm

    # built as it was measured (opt level 3, chamtvm's settings); the caller's pass instruments see it
    instruments = tvm.transform.PassContext.current().instruments
    lib = export(compile_network(net.fused, target, schedules, instruments=instruments), target,
                 out / f"network_{target.name}.so")
    paths["library"] = str(lib)
    paths["input_shape"] = list(input_shape(space, arch))
    paths["runtime_threads"] = target.runtime_threads
    return paths
