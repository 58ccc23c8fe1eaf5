"""The data layout convolutions are lowered in, as a target asks (``"conv_layout"``).

Networks arrive in NCHW (torch, ONNX). In NCHW a convolution's output channels are the
outermost axis after the batch, so a schedule can vectorize only over the output's spatial
extent (``W``, or ``H x W`` where a whole row is one tile): 2-8 lanes for the 2x2-7x7 maps of
small networks, whatever the CPU's vector width. In NHWC, with weights HWIO, the output
channels are the innermost axis of the output, the weights and the bias, so a schedule can
vectorize over channels at the target's full width (``tuning.space``'s wide-vector rule).

``convert_layout`` rewrites a Relax module before fusion: Relax's ``ConvertLayout`` turns
each conv2d into its NHWC form and carries the layout through the operators that have a
layout rule (elementwise, pooling, mean). The ReLU6 ``clip`` has none (it would get a
transpose on each side), so it is first rewritten as ``minimum(maximum(x, lo), hi)``, which
computes the same and does have one. The result has one transpose at the input and none
inside for the networks of the bundled spaces.

``NCHW<b>c`` (channel-blocked, ``lower.blocked``): each convolution whose channels allow it
in blocks of ``b`` channels innermost, the others in NCHW; Relax's conv2d legalization
refuses such layouts, so ``legalize_map`` gives the lowering ``lower.blocked``'s own."""

from __future__ import annotations

# layout name (a target's ``conv_layout``, ``targets.spec.CONV_LAYOUTS``) -> (data layout,
# kernel layout) given to ConvertLayout; NCHW: no conversion; blocked layouts: per call
# (``lower.blocked.layout_callback``)
CONV_LAYOUTS: dict[str, tuple[str, str] | None] = {"NCHW": None, "NHWC": ("NHWC", "HWIO"),
                                                   "NCHW8c": ("NCHW8c", "OIHW8i8o"),
                                                   "NCHW16c": ("NCHW16c", "OIHW16i16o")}


class LayoutError(ValueError):
    """A layout name that is not one of ``CONV_LAYOUTS``."""


def check_layout(layout: str | None) -> str:
    """``layout`` (``None`` is NCHW) if it is one of ``CONV_LAYOUTS``; else a ``LayoutError``
    listing the valid names."""
    layout = layout or "NCHW"
    if layout not in CONV_LAYOUTS:
        raise LayoutError(f"unknown conv layout {layout!r}; expected one of {sorted(CONV_LAYOUTS)}")
    return layout


def _clip_as_min_max(mod):
    """``mod`` with every ``clip(x, lo, hi)`` of its Relax functions replaced by
    ``minimum(maximum(x, lo), hi)`` (same values; binary operators carry a layout)."""
    import tvm
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class _ClipToMinMax(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if getattr(call.op, "name", None) != "relax.clip":
                return call
            x, lo, hi = call.args
            dtype = call.ty.dtype
            return relax.op.minimum(relax.op.maximum(x, relax.const(float(lo.value), dtype)),
                                    relax.const(float(hi.value), dtype))

    out = tvm.IRModule(mod.functions, attrs=mod.attrs)
    for gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            out[gv] = _ClipToMinMax(out).visit_expr(func)
    return out


def convert_layout(mod, layout: str | None):
    """``mod`` (a Relax module before fusion) with its convolutions in ``layout`` (see the
    module docstring); NCHW or ``None`` returns ``mod`` unchanged."""
    from .blocked import block_of, layout_callback

    pair = CONV_LAYOUTS[check_layout(layout)]
    if pair is None:
        return mod
    from tvm import relax

    block = block_of(layout)
    if block is not None:
        mod = relax.transform.ConvertLayout({}, layout_cb=layout_callback(block))(_clip_as_min_max(mod))
        return relax.transform.EliminateCommonSubexpr()(mod)  # one transform of a tensor two blocked ops read
    return relax.transform.ConvertLayout({"relax.nn.conv2d": list(pair)})(_clip_as_min_max(mod))


def legalize_map(layout: str | None) -> dict | None:
    """``LegalizeOps``' ``customize_legalize_map`` the lowering needs for ``layout``: the
    blocked convolutions' legalization (``lower.blocked.legalize_conv2d``) for ``NCHW<b>c``,
    None (TVM's own) for any other layout."""
    from .blocked import block_of, legalize_conv2d

    return {"relax.nn.conv2d": legalize_conv2d} if block_of(check_layout(layout)) is not None else None
