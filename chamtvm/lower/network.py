"""A network from any source (architecture, ONNX file, torch module, Relax module), lowered
to fused kernels.

In: an architecture of a space, an ONNX file, a torch module or a Relax module. Out: a
``LoweredNetwork``: the fused Relax module, its kernels (deduplicated, with call counts)
and its input specs. Measuring it end to end is ``measure.network``'s job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.jsonfile import read_json
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


def lower_relax(mod, name: str = "relax", layout: str | None = None, fast_math: bool = False) -> LoweredNetwork:
    """Fuse a Relax module (convolutions in ``layout``, a target's ``conv_layout``; None:
    NCHW; ``fast_math``: a target's ``fast_math``, ``lower.fast_math``) and extract its kernels and input specs. A module TVM cannot lower,
    one without a ``main`` function, or one whose ``main`` takes a dynamic shape is a
    ``ModelError`` saying so."""
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        raise ModelError(f"{name}: the Relax module has no 'main' function "
                         f"(functions: {', '.join(sorted(gv.name_hint for gv in mod.get_global_vars())) or 'none'})")
    try:
        fused = fuse(mod, layout, fast_math)
    except Exception as e:  # TVM raises assorted types on graphs its passes cannot handle
        from ..core.interrupt import reraise_if_interrupted

        reraise_if_interrupted()  # a Ctrl-C inside TVM surfaces as a TVM error: it is the interrupt
        msg = str(e).strip().splitlines()
        raise ModelError(f"{name}: TVM could not lower the model: {type(e).__name__}: "
                         f"{msg[-1] if msg else ''}") from None
    inputs = network_inputs(fused, name)  # before extracting kernels: a dynamic shape is the clearer error
    return LoweredNetwork(name, fused, extract_kernels(fused), inputs)


def lower_torch(module, input_shape, name: str = "torch", layout: str | None = None,
                fast_math: bool = False) -> LoweredNetwork:
    return lower_relax(from_torch(module, tuple(input_shape)), name, layout, fast_math)


def lower_arch(space: SearchSpace, arch: Arch, name: str = "arch", layout: str | None = None,
               fast_math: bool = False) -> LoweredNetwork:
    """``arch`` of ``space`` lowered (its torch model, weights from seed 0, imported once per
    machine: ``lower.cache``)."""
    from ..space.model import build_model, input_shape
    from .cache import arch_key, cached_module

    space.validate(arch)
    shape = input_shape(space, arch)
    key = arch_key(space.to_dict(), arch.to_dict(), 0, shape)
    mod = cached_module(key, lambda: from_torch(build_model(space, arch, seed=0), shape))
    net = lower_relax(mod, name, layout, fast_math)
    net.space = space.name
    return net


def lower_onnx(path: str | Path, shape=None, layout: str | None = None, fast_math: bool = False) -> LoweredNetwork:
    return lower_relax(from_onnx_file(path, shape), Path(path).stem, layout, fast_math)


def load_model(path: str | Path, space: str | SearchSpace = "fashion", shape=None,
               layout: str | None = None, fast_math: bool = False) -> LoweredNetwork:
    """Lower a model file: an architecture JSON (of ``space``, or the space it names in a
    ``"space"`` field) or an ONNX file (``shape``: its input shape, needed only when the file's
    is dynamic). A missing, unreadable or malformed file, or a ``shape`` that does not apply,
    is a ``ModelError``/``SpaceError`` saying so."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelError(f"model {path} is a folder; expected an architecture .json or an .onnx file")
    if shape is not None:
        shape = tuple(shape)
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
            raise ModelError(f"input shape must be positive integers, got {shape}")
    if path.suffix == ".onnx":
        if shape is not None:
            _check_onnx_shape(path, shape)
        return lower_onnx(path, shape, layout, fast_math)
    if path.suffix == ".json":
        if shape is not None:
            raise ModelError(f"--shape applies to ONNX models only; the input of architecture {path} "
                             f"comes from its space (its 'resolution' and the space's in_channels)")
        sp, arch = read_arch(path, space)
        return lower_arch(sp, arch, path.stem, layout, fast_math)
    raise ModelError(f"{path}: unsupported model file type {path.suffix!r}; expected .json (architecture) or .onnx")


def read_arch(path: str | Path, space: str | SearchSpace = "fashion") -> tuple[SearchSpace, Arch]:
    """``(space, architecture)`` of an architecture JSON file, validated (cheap: no lowering).
    The file's ``"space"`` field wins over ``space``; a space file it names is looked up
    beside the architecture file too."""
    path = Path(path)
    data = read_json(path, "architecture file", SpaceError)
    if isinstance(data, dict) and "space" in data:
        space = data["space"]
        if not isinstance(space, str) or not space.strip():
            raise SpaceError(f"{path}: 'space' must be a bundled space name or a space JSON path, "
                             f"got {space!r}")
        beside = path.parent / space
        if space.endswith(".json") and not Path(space).exists() and beside.exists():
            space = beside  # a space file named relative to the architecture file
    sp = SearchSpace.load(space) if isinstance(space, (str, Path)) else space  # or a LayerSpace
    arch = Arch.from_dict(data)
    sp.validate(arch)
    return sp, arch


def _check_onnx_shape(path: Path, shape: tuple[int, ...]) -> None:
    """A ``ModelError`` when ``shape`` contradicts the ONNX file's input (rank, or a static size)."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return  # an unreadable file: from_onnx_file reports it
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        return
    dims = inputs[0].type.tensor_type.shape.dim
    static = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(static) != len(shape) or any(s is not None and s != x for s, x in zip(static, shape)):
        have = ",".join("?" if s is None else str(s) for s in static)
        raise ModelError(f"{path}: --shape {','.join(map(str, shape))} does not fit the model's input "
                         f"{inputs[0].name!r} of shape {have}" +
                         ("; its shape is static: drop --shape" if None not in static else ""))


def network_inputs(fused_mod, name: str = "relax") -> list[ArgSpec]:
    """Input specs of the ``main`` function of a Relax module. An input that is not a tensor
    of static shape (a symbolic dimension such as ``"n"``) is a ``ModelError`` naming it."""
    import tvm

    specs = []
    for p in fused_mod["main"].params:
        shape = getattr(p.ty, "shape", None)
        if shape is None:
            raise ModelError(f"{name}: input {p.name!r} of 'main' is not a tensor of known shape "
                             f"({p.ty}); only static-shape tensor inputs can be lowered")
        for axis, d in enumerate(shape):
            if not isinstance(d, tvm.tirx.IntImm):
                raise ModelError(f"{name}: input {p.name!r} of 'main' has dynamic dimension "
                                 f"{d} (axis {axis}); only static shapes can be lowered")
        specs.append(ArgSpec(tuple(int(d) for d in shape), str(p.ty.dtype)))
    return specs
