"""The MetaSchedule design space a target's kernels are tuned in (``"schedule_rules"``).

TVM's LLVM rules tile every loop with perfect tiles sampled freely and vectorize whatever
innermost loops happen to be contiguous in every buffer, so the vector length a schedule
ends with is an accident of the sampled tiles: 9 lanes on a 288-channel NHWC convolution
(one 8-lane register and a scalar tail on AVX2), 2-8 lanes in NCHW, never the 16 of an
AVX-512 register. ``"wide-vector"`` keeps TVM's LLVM rules but replaces multi-level tiling
by TVM's wide-vector variant (``MultiLevelTilingWideVector``, written for Hexagon's HVX):
the loop over the output's innermost axis (the channels, in NHWC) is split at exactly the
target's vector length (``vector_lanes`` fp32 lanes x 32 bits) and that loop is vectorized,
so every schedule in the space fills whole registers of the target (8 lanes with AVX2, 16
with AVX-512, 4 with NEON). Nothing else changes: the same postprocessors and mutators.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

from ..targets.spec import TargetSpec

TENSOR_INTRIN = "tvm.s_tir.tensor_intrin"
# the tensor intrinsics (tensorize rules) a target kind's MetaSchedule rules can use
INTRINSICS_BY_KIND = {"hexagon": ("hexagon",), "cuda": ("cuda",), "rocm": ("rocm",), "metal": ("metal",)}
# LLVM targets by the architecture of their triple (the host's where the target names none)
LLVM_INTRINSICS = {"x86_64": ("x86",), "i686": ("x86",), "aarch64": ("arm_cpu",), "arm": ("arm_cpu",),
                   "riscv": ("riscv_cpu",), "hexagon": ("hexagon",)}


def _intrinsics(target: TargetSpec) -> tuple[str, ...] | None:
    """The ``tensor_intrin`` submodules ``target`` can use; None: unknown (all of them)."""
    import platform

    kind = str(target.tvm_target.get("kind", ""))
    if kind != "llvm":
        return INTRINSICS_BY_KIND.get(kind)
    arch = str(target.tvm_target.get("mtriple") or platform.machine()).split("-")[0].lower()
    return next((names for prefix, names in LLVM_INTRINSICS.items() if arch.startswith(prefix)), None)


def register_tensor_intrinsics(target: TargetSpec) -> None:
    """Register the tensor intrinsics ``target``'s kind can use, and only those.

    MetaSchedule's ``TuneContext`` imports ``tvm.s_tir.tensor_intrin``, which registers every
    kind's intrinsics by parsing TVMScript (CUDA's take most of that time), paid by every
    process that tunes, though a CPU tuning uses none of them. Importing the package
    here as an empty package (its submodules still importable) and then the submodules the
    kind needs makes that import free; another kind tuned later in the same process gets
    its own submodules from its own call. An unknown kind imports the whole package."""
    names = _intrinsics(target)
    if names is None:
        importlib.import_module(TENSOR_INTRIN)
        return
    if TENSOR_INTRIN not in sys.modules:
        import tvm.s_tir

        package = types.ModuleType(TENSOR_INTRIN, "Intrinsics for tensorization (only the kinds tuned here).")
        package.__path__ = [os.path.join(os.path.dirname(tvm.s_tir.__file__), "tensor_intrin")]
        package.__package__ = TENSOR_INTRIN
        sys.modules[TENSOR_INTRIN] = package
        tvm.s_tir.tensor_intrin = package
    for name in names:
        importlib.import_module(f"{TENSOR_INTRIN}.{name}")


def space_generator(target: TargetSpec):
    """MetaSchedule's ``space_generator`` argument for ``target``: ``"post-order-apply"``
    (TVM's rules for the target kind) unless the target asks for ``"wide-vector"`` rules on
    an LLVM target with known vector lanes (see the module docstring). Registers the
    kind's tensor intrinsics first (``register_tensor_intrinsics``)."""
    register_tensor_intrinsics(target)
    if target.schedule_rules != "wide-vector" or target.tvm_target.get("kind") != "llvm" or target.lanes <= 1:
        return "post-order-apply"
    from tvm.s_tir import meta_schedule as ms

    rules = [wide_vector_tiling(32 * target.lanes) if isinstance(r, ms.schedule_rule.MultiLevelTiling) else r
             for r in ms.ScheduleRule.create("llvm")]
    return ms.space_generator.PostOrderApply(sch_rules=rules, postprocs=ms.Postproc.create("llvm"),
                                             mutator_probs=ms.Mutator.create("llvm"))


def wide_vector_tiling(vector_bits: int):
    """TVM's LLVM multi-level tiling (structure SSRSRS, innermost factor <= 64, a write cache
    at tile levels 1-2 where it helps) with the output's innermost axis split at
    ``vector_bits`` / 32 lanes."""
    from tvm.s_tir import meta_schedule as ms

    return ms.schedule_rule.MultiLevelTilingWideVector(
        structure="SSRSRS", vector_length_in_bits=int(vector_bits), max_innermost_factor=64,
        reuse_write=ms.schedule_rule.ReuseType(req="may", levels=[1, 2], scope="global"))
