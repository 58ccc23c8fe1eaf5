"""A network from any source (architecture, ONNX file, torch module, Relax module), lowered
to fused kernels.

In: an architecture of a space, an ONNX file, a torch module or a Relax module. Out: a
``LoweredNetwork``: the fused Relax module, its kernels (deduplicated, with call counts)
and its input specs. Measuring it end to end is ``measure.network``'s job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..space.schema import Arch, SearchSpace, SpaceError
from .kernels import (
    ArgSpec,
    Kernel,
    ModelError,
    extract_kernels,
    from_onnx_file,
    from_torch,
    fuse,
)


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
    from ..space.model import build_model, input_shape

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
        sp = SearchSpace.load(space) if isinstance(space, (str, Path)) else space  # or a LayerSpace
        arch = Arch.from_dict(data)
        sp.validate(arch)
        return lower_arch(sp, arch, path.stem)
    raise ModelError(f"{path}: unsupported model file type {path.suffix!r}; expected .json (architecture) or .onnx")


def network_inputs(fused_mod) -> list[ArgSpec]:
    """Input specs of the ``main`` function of a Relax module."""
    main = fused_mod["main"]
    return [ArgSpec(tuple(int(d) for d in p.ty.shape), str(p.ty.dtype)) for p in main.params]
