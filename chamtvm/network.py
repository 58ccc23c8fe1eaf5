"""A network from any source (architecture, ONNX file, torch module, Relax module),
lowered to fused kernels, and its end-to-end measurement on a target."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .lowering import ArgSpec, Kernel, ModelError, extract_kernels, from_onnx_file, from_torch, fuse
from .measure.base import MeasureResult, Runner
from .measure.build import compile_network, export
from .schedules import ScheduleSource
from .space import Arch, SearchSpace, SpaceError
from .table_builder import network_inputs
from .targets import TargetSpec


@dataclass
class LoweredNetwork:
    """A fused Relax module with its kernels (deduplicated, with call counts) and inputs."""

    name: str
    fused: object
    kernels: list[Kernel]
    inputs: list[ArgSpec]
    space: str | None = None  # the space name when built from an architecture


def lower_relax(mod, name: str = "relax") -> LoweredNetwork:
    try:
        fused = fuse(mod)
    except Exception as e:  # TVM raises assorted types on graphs its passes cannot handle
        msg = str(e).strip().splitlines()
        raise ModelError(f"{name}: TVM could not lower the model: {type(e).__name__}: "
                         f"{msg[-1] if msg else ''}") from None
    return LoweredNetwork(name, fused, extract_kernels(fused), network_inputs(fused))


def lower_torch(module, input_shape, name: str = "torch") -> LoweredNetwork:
    return lower_relax(from_torch(module, tuple(input_shape)), name)


def lower_arch(space: SearchSpace, arch: Arch, name: str = "arch") -> LoweredNetwork:
    from .model import build_model, input_shape

    net = lower_torch(build_model(space, arch), input_shape(space, arch), name)
    net.space = space.name
    return net


def lower_onnx(path: str | Path, shape=None) -> LoweredNetwork:
    return lower_relax(from_onnx_file(path, shape), Path(path).stem)


def load_model(path: str | Path, space: str | SearchSpace = "small", shape=None) -> LoweredNetwork:
    """Lower a model file: an architecture JSON (of ``space``, or the space it names in a
    ``"space"`` field) or an ONNX file."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if path.suffix == ".onnx":
        return lower_onnx(path, shape)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SpaceError(f"{path} is not valid JSON: {e}") from None
        if isinstance(data, dict) and "space" in data:
            space = data["space"]
            beside = path.parent / str(space)
            if str(space).endswith(".json") and not Path(space).exists() and beside.exists():
                space = beside  # a space file named relative to the architecture file
        sp = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
        arch = Arch.from_dict(data)
        sp.validate(arch)
        return lower_arch(sp, arch, path.stem)
    raise ModelError(f"{path}: unsupported model file type {path.suffix!r}; expected .json (architecture) or .onnx")


def measure_network(net: LoweredNetwork, target: TargetSpec, runner: Runner,
                    schedules: ScheduleSource | None = None, work_dir: str | Path | None = None,
                    key: str | None = None) -> MeasureResult:
    """Compile ``net`` with the target's pipeline and schedules and time it end to end."""
    key = key or net.name
    try:
        ex = compile_network(net.fused, target, schedules)
    except Exception as e:
        return MeasureResult(key, error=f"compile failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    with tempfile.TemporaryDirectory(prefix="chamtvm-net-", dir=work_dir) as tmp:
        lib = export(ex, target, Path(tmp) / "net.so")
        return runner.measure_network(lib, net.inputs, target.network_evaluator, key=key)
