"""Compile kernel batches into one library and whole networks into a VM executable.

Both use the target's deployment path: the kernels go through the same schedules
(database or the target default, dlight rules on GPUs) and the same TIR lowering as in a
network build, and libraries are linked with the target's cross compiler. The libraries built
for measuring are kept in the disk cache (``lower.cache.cached_file``) under a hash of the
module compiled, the target, its cross compiler and TVM's version (``library_key``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..lower.cache import cached_file
from ..targets.spec import TargetSpec


def _gpu_default_schedule(mod, target):
    """The dlight rules ``relax.get_default_pipeline`` applies to unscheduled GPU kernels."""
    from tvm.s_tir import dlight as dl

    with target:
        return dl.ApplyDefaultSchedule(
            dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
            dl.gpu.Fallback(),
        )(mod)


def export(lib, target: TargetSpec, path: Path) -> Path:
    """Write ``lib`` (runtime module or VM executable) as a shared library for the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if target.cross_compiler:
        from tvm.support import cc

        lib.export_library(str(path), fcompile=cc.cross_compiler(target.cross_compiler))
    else:
        lib.export_library(str(path))
    return path


def library_key(mod, target: TargetSpec, kind: str) -> str:
    """The cache key of the library ``kind`` ("kernels", "relax") built from IRModule ``mod``
    for ``target``: a hash of the module's text and structural hash (its constants too), the
    TVM target, the cross compiler and TVM's version."""
    import hashlib
    import json

    import tvm
    import tvm_ffi

    blob = json.dumps({"kind": kind, "tvm": tvm.__version__, "target": str(target.tvm()),
                       "cross_compiler": target.cross_compiler, "hash": int(tvm_ffi.structural_hash(mod)),
                       "text": mod.script(show_meta=False)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def own_pass_context(instruments=()):
    """A fresh ``PassContext`` (opt level 3, only the given ``instruments``) for chamtvm's own
    builds: a measurement made while the user's ``tvm.compile`` runs (the hook measuring a
    missing kernel) must not fire the user's pass instruments or inherit their settings, and
    an exported library is built with the very settings its kernels were measured with."""
    import tvm

    return tvm.transform.PassContext(opt_level=3, instruments=list(instruments))


def build_kernel_library(funcs: Sequence[tuple[str, object]], target: TargetSpec, path: Path) -> Path:
    """Compile ``(symbol, PrimFunc)`` pairs into one shared library at ``path``, with the
    reference kernel (``lower.batchnet.reference_func``) as ``chamtvm_reference``.

    The PrimFuncs are already scheduled where a database applies; GPU kernels without a
    schedule get the target's default dlight schedule, as in a network build.
    """
    import tvm

    from ..lower.batchnet import REFERENCE_SYMBOL, reference_func

    tvm_target = target.tvm()
    if target.device == "cpu":  # the device's speed, beside every kernel (a CPU schedule)
        funcs = [*funcs, (REFERENCE_SYMBOL, reference_func())]
    mod = tvm.IRModule({sym: f.with_attr("global_symbol", sym) for sym, f in funcs})
    if target.device == "cuda":
        mod = _gpu_default_schedule(mod, tvm_target)

    def build(dest: Path) -> None:
        with own_pass_context():
            lib = tvm.tirx.build(mod, target=tvm_target)
        export(lib, target, dest)

    cached_file(library_key(mod, target, "kernels"), path, build)
    return path


def build_batch_network(kernels, target: TargetSpec, path: Path) -> list:
    """Compile the batch network (``lower.batchnet``) of ``(symbol, scheduled PrimFunc,
    Kernel)`` triples with the target's Relax pipeline and export it to ``path``; the input
    specs of its ``main``."""
    from ..lower.batchnet import batch_network

    mod, inputs = batch_network(kernels)
    if target.device == "cpu":
        mod = with_reference(mod)
    mod = opaque_kernels(mod)
    if target.device == "cuda":
        mod = _gpu_default_schedule(mod, target.tvm())
    _cached_relax_library(mod, target, path)
    return inputs


OPAQUE = 8  # relax.OpPatternKind.kOpaque: FuseOps leaves such a call alone


def opaque_kernels(mod):
    """``mod`` with every PrimFunc marked opaque (``op_pattern``), so the target's pipeline
    keeps each call of a batch network a kernel of its own: a producer and an element-wise
    kernel it feeds (an unfused ``add`` of a plain build) would otherwise be fused into a
    kernel nobody deploys, or fail to fuse (FuseTIR's inconsistent buffers)."""
    import tvm

    out = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
    for gv, f in mod.functions.items():
        if isinstance(f, tvm.tirx.PrimFunc):
            out[gv] = f.with_attr("op_pattern", OPAQUE)
    return out


def with_reference(fused_mod):
    """``fused_mod`` plus a Relax function ``chamtvm_reference`` running the reference kernel
    (``lower.batchnet.reference_func``), so a measurement of the network can time the device's
    speed beside it (``measure.timing.time_network``); ``main`` is untouched."""
    import tvm
    from tvm import relax

    from ..lower.batchnet import REFERENCE_ARGS, REFERENCE_SYMBOL, reference_func

    bb = relax.BlockBuilder(tvm.IRModule(dict(fused_mod.functions.items()), attrs=fused_mod.attrs))
    params = [relax.Var(f"r{i}", relax.TensorType(list(a.shape), a.dtype)) for i, a in enumerate(REFERENCE_ARGS[:2])]
    with bb.function(REFERENCE_SYMBOL, params):
        gv = bb.add_func(reference_func().with_attr("global_symbol", f"{REFERENCE_SYMBOL}_kernel"),
                         f"{REFERENCE_SYMBOL}_kernel")
        out = bb.emit(relax.call_tir(gv, params, relax.TensorType(list(REFERENCE_ARGS[2].shape), REFERENCE_ARGS[2].dtype)))
        bb.emit_func_output(out)
    return bb.get()


def compile_network(fused_mod, target: TargetSpec, schedules=None, reference: bool = False,
                    instruments=()):
    """Relax VM executable of a fused module with the target's pipeline and schedules; with
    ``reference``, carrying the reference kernel too (``with_reference``: for measuring; CPU
    targets, whose reference kernel has a CPU schedule). ``instruments``: pass instruments
    for this build (an export passes its caller's, so a user's instrument sees the build)."""
    return _compile(network_module(fused_mod, target, schedules, reference), target, instruments)


def network_module(fused_mod, target: TargetSpec, schedules=None, reference: bool = False):
    """The module ``compile_network`` compiles: ``fused_mod`` with the schedules applied and,
    with ``reference``, the reference kernel (CPU targets)."""
    if schedules is not None:
        fused_mod = schedules.apply_to_module(fused_mod)
    if reference and target.device == "cpu":
        fused_mod = with_reference(fused_mod)
    return fused_mod


def compile_and_export_network(fused_mod, target: TargetSpec, path: Path, schedules=None,
                               reference: bool = False) -> bool:
    """``compile_network`` exported to ``path``, through the disk cache of built libraries;
    True when the library came from the cache."""
    return _cached_relax_library(network_module(fused_mod, target, schedules, reference), target, Path(path))


def _cached_relax_library(mod, target: TargetSpec, path: Path) -> bool:
    """``mod`` compiled with the Relax pipeline and exported to ``path``, or the cached copy of
    that library; True when it came from the cache."""
    return cached_file(library_key(mod, target, "relax"), path, lambda dest: export(_compile(mod, target), target, dest))


def _compile(mod, target: TargetSpec, instruments=()):
    """Relax VM executable of ``mod`` with the target's default Relax pipeline."""
    import tvm
    from tvm import relax

    tvm_target = target.tvm()
    with own_pass_context(instruments):
        return tvm.compile(mod, tvm_target, relax_pipeline=relax.get_default_pipeline(tvm_target))
