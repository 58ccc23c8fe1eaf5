"""Lower a network to Relax and list its fused kernels.

Pipeline (the one chamtvm deploys with on every target):
    torch.export or ONNX -> Relax -> [the target's conv_layout, fast_math]
    -> FoldBatchnormToConv2D + FoldConstant
    -> LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR  ("fusion")
    -> [MetaScheduleApplyDatabase when a database exists]
    -> the target's Relax pipeline (``relax.get_default_pipeline(target)``) -> build.

Each PrimFunc left after fusion is one *kernel*. Its structural hash (without the
``global_symbol`` attribute) identifies it across networks: identical kernels in
different networks share one hash, weights are arguments and do not enter it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tvm

DTYPE_BYTES = {"float32": 4, "float16": 2, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}


class ModelError(ValueError):
    """A model file could not be read or converted; the message says why."""


@dataclass(frozen=True)
class ArgSpec:
    """One kernel argument: shape and dtype."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        n = DTYPE_BYTES.get(self.dtype, 4)
        for d in self.shape:
            n *= d
        return n

    def to_list(self) -> list:
        return [list(self.shape), self.dtype]


@dataclass
class Kernel:
    """A fused kernel (PrimFunc) of a network.

    ``struct_hash`` is the structural hash of the PrimFunc without its symbol; ``flops`` is
    TVM's estimate of floating-point operations per call; ``bytes`` the sum of argument
    sizes (bytes read and written once, a lower bound on memory traffic); ``count`` how many
    times the network calls it.
    """

    name: str
    struct_hash: str
    args: tuple[ArgSpec, ...]
    flops: float
    count: int = 1
    func: Any = field(default=None, repr=False, compare=False)
    n_inputs: int | None = field(default=None, compare=False)  # leading args read; the rest are outputs

    @property
    def bytes(self) -> int:
        return sum(a.nbytes for a in self.args)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "struct_hash": self.struct_hash,
            "args": [a.to_list() for a in self.args],
            "flops": self.flops,
            "bytes": self.bytes,
            "count": self.count,
        }


# ------------------------------------------------------------------ importers
def fold_batchnorm(module):
    """Copy of ``module`` (eval mode) with every Conv2d directly followed by a BatchNorm2d
    inside an ``nn.Sequential`` replaced by one biased Conv2d.

    Folding in torch is ~10x cheaper than Relax's FoldBatchnormToConv2D + FoldConstant
    (which compiles every folded constant) and gives the same conv+bias+activation kernels
    as the ONNX exporter's folding.
    """
    import copy

    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(mod):
        if not isinstance(mod, torch.nn.Sequential):
            for name, child in mod.named_children():
                setattr(mod, name, fold(child))
            return mod
        layers, i = [], 0
        while i < len(mod):
            a, b = mod[i], mod[i + 1] if i + 1 < len(mod) else None
            if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
                layers.append(fuse_conv_bn_eval(a, b))
                i += 2
            else:
                layers.append(fold(a))
                i += 1
        return torch.nn.Sequential(*layers)

    return fold(copy.deepcopy(module).eval())


def from_torch(module, input_shape) -> "tvm.IRModule":
    """Relax module of a torch ``nn.Module`` through torch.export (BatchNorm folded,
    weights bound as constants). ``input_shape`` is one NCHW shape, or a list of shapes
    for a module with several inputs."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    shapes = [tuple(input_shape)] if isinstance(input_shape[0], int) else [tuple(s) for s in input_shape]
    examples = tuple(torch.zeros(*s) for s in shapes)
    with torch.no_grad():
        exported = torch.export.export(fold_batchnorm(module), examples)
    return from_exported_program(exported, unwrap_unit_return_tuple=True)


def from_onnx_file(path: str | Path, shape: tuple[int, ...] | None = None) -> "tvm.IRModule":
    """Relax module of an ONNX file. Needs static input shapes (from the file or ``shape``)."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    path = Path(path)
    if not path.exists():
        raise ModelError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, ... per failure
        raise ModelError(f"{path} is not a valid ONNX model: {type(e).__name__}: {e}") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise ModelError(f"{path}: expected one graph input, found {[i.name for i in inputs]}")
    name = inputs[0].name
    if shape is None:
        dims = inputs[0].type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            raise ModelError(
                f"{path}: input {name!r} has a dynamic shape; pass a static shape (e.g. --shape 1,3,224,224)"
            )
        shape = tuple(d.dim_value for d in dims)
    from .onnx_simplify import failing_node, simplify, unsupported_ops

    try:
        model = simplify(model, {name: list(shape)})
    except Exception as e:  # a graph the folding cannot walk: import it as it is
        import warnings

        warnings.warn(f"{path}: ONNX simplification skipped: {type(e).__name__}: {e}")
    missing = unsupported_ops(model)
    if missing:
        listed = ", ".join(f"{op} (node {node!r})" for op, node in missing[:5])
        raise ModelError(f"{path}: TVM's ONNX importer has no converter for {len(missing)} node(s): {listed}")
    try:
        return from_onnx(model, shape_dict={name: list(shape)})
    except Exception as e:  # the frontend raises many types on unsupported graphs
        from ..core.interrupt import reraise_if_interrupted

        reraise_if_interrupted()
        where = failing_node(e.__traceback__)
        at = f" at {where[0]} node {where[1]!r}" if where else ""
        msg = str(e).strip().splitlines()
        raise ModelError(f"{path}: TVM could not import the model{at}: {type(e).__name__}: "
                         f"{msg[-1] if msg else ''}") from None


# ------------------------------------------------------------------- fusion
def _fold_constants_in_numpy(mod: "tvm.IRModule") -> "tvm.IRModule":
    """Compute in numpy the calls whose tensor arguments are all constants (or variables bound
    to constants), for the ops ``folds`` lists: ``reshape(constant)`` (conv biases from both
    frontends) and the ``where(isnan(bound), inf, bound)`` the ONNX importer wraps around
    every constant Clip bound (ReLU6: two per activation).

    Relax's FoldConstant does the same but builds and runs one kernel per call (seconds for a
    network with a few dozen of them), versus milliseconds here. The folded constants are the
    ones FoldConstant would compute, so the kernels, and their table keys, are unchanged.
    """
    import numpy as np
    from tvm import ir, relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    folds = {
        "relax.reshape": lambda call, a: a[0].reshape([int(d) for d in call.ty.shape]),
        "relax.isnan": lambda call, a: np.isnan(a[0]),
        "relax.where": lambda call, a: np.where(a[0], a[1], a[2]),
    }

    @mutator
    class _Folder(PyExprMutator):
        def _constant(self, expr):
            if isinstance(expr, relax.Var):
                expr = self.lookup_binding(expr)
            return expr.value.numpy() if isinstance(expr, ir.expr.Constant) else None

        def visit_call_(self, call):
            call = super().visit_call_(call)
            fold = folds.get(getattr(call.op, "name", None))
            dtype = str(getattr(call.ty, "dtype", ""))
            if fold is None or not isinstance(call.ty, relax.TensorType) or dtype in ("", "void"):
                return call
            if call.op.name == "relax.reshape":
                args = [self._constant(call.args[0])]  # its second argument is the shape
            else:
                args = [self._constant(a) for a in call.args]
            if any(a is None for a in args):
                return call
            return relax.const(np.asarray(fold(call, args)).astype(dtype), dtype)

    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gv] = _Folder(mod).visit_expr(func)
    return mod


def fuse(mod: "tvm.IRModule", layout: str | None = None, fast_math: bool = False) -> "tvm.IRModule":
    """Fold BatchNorm into convolutions and fuse operators into PrimFunc kernels, the
    convolutions in ``layout`` (``lower.layout``; None: NCHW as imported), exponential-based
    activations approximated when ``fast_math`` (``lower.fast_math``)."""
    import tvm
    from tvm import relax

    from .fast_math import fast_math as approximate
    from .layout import convert_layout, legalize_map

    mod = convert_layout(_fold_constants_in_numpy(mod), layout)
    if fast_math:
        mod = approximate(mod)
    seq = tvm.transform.Sequential(
        [
            relax.transform.FoldBatchnormToConv2D(),
            relax.transform.FoldConstant(),
            relax.transform.LegalizeOps(legalize_map(layout)),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
            relax.transform.DeadCodeElimination(),
        ]
    )
    return seq(mod)


def kernel_hash(prim_func) -> str:
    """Canonical structural hash of a PrimFunc (symbol removed), as a decimal string."""
    import tvm_ffi

    return str(tvm_ffi.structural_hash(prim_func.without_attr("global_symbol")))


def _arg_specs(prim_func) -> tuple[ArgSpec, ...]:
    specs = []
    for p in prim_func.params:
        ty = p.ty
        specs.append(ArgSpec(tuple(int(d) for d in ty.shape), str(ty.dtype)))
    return tuple(specs)


def _call_counts(fused_mod) -> tuple[Counter, dict[str, int]]:
    """How many times each PrimFunc (by GlobalVar name) is called from Relax functions, and
    how many of its leading parameters each call passes as inputs (the rest are outputs)."""
    from tvm import relax

    counts: Counter = Counter()
    n_inputs: dict[str, int] = {}
    for gv, func in fused_mod.functions.items():
        if not isinstance(func, relax.Function):
            continue

        def visit(expr):
            if isinstance(expr, relax.Call) and getattr(expr.op, "name", None) == "relax.call_tir":
                name = expr.args[0].name_hint
                counts[name] += 1
                args = expr.args[1]
                n_inputs[name] = len(args.fields) if isinstance(args, relax.Tuple) else 1

        relax.analysis.post_order_visit(func.body, visit)
    return counts, n_inputs


def extract_kernels(fused_mod) -> list[Kernel]:
    """The kernels of a fused module, one entry per distinct structural hash.

    Kernels that differ only in name are merged and their call counts added.
    """
    import tvm
    from tvm import tirx
    from tvm.s_tir.analysis import estimate_tir_flops

    counts, n_inputs = _call_counts(fused_mod)
    by_hash: dict[str, Kernel] = {}
    for gv, func in fused_mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        name = gv.name_hint
        if counts[name] == 0:
            continue
        h = kernel_hash(func)
        if h in by_hash:
            by_hash[h].count += counts[name]
            continue
        try:
            flops = float(estimate_tir_flops(tvm.IRModule({"main": func.with_attr("global_symbol", "main")})))
        except Exception:  # estimate fails on some opaque ops; FLOPs are then unknown
            flops = float("nan")
        by_hash[h] = Kernel(name, h, _arg_specs(func), flops, counts[name], func, n_inputs.get(name))
    return sorted(by_hash.values(), key=lambda k: k.name)
