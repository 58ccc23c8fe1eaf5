"""Convolutions in a channel-blocked layout (``NCHW<b>c``): the layout conversion's choice per
convolution and the legalization TVM 0.27 lacks.

In ``NCHW<b>c`` an activation of shape ``(N, C, H, W)`` is stored as ``(N, C/b, H, W, b)``:
``b`` consecutive channels are innermost, so a convolution's output block is one vector of
the target's width (``b`` = 16 fp32 lanes for AVX-512) whatever the map's spatial size. A
dense convolution's weights go to ``OIHW<b>i<b>o`` (``(O/b, I/b, KH, KW, b, b)``); a
depthwise one's to ``OIHW1i<b>o`` (``(C/b, 1, KH, KW, 1, b)``). The weights are constants,
so the lowering folds their conversion at compile time: they ship pre-packed.

* ``layout_callback(block)``: for Relax's ``ConvertLayout`` (its ``layout_cb``), per
  ``conv2d`` call: blocked where every channel count it touches is a multiple of ``block``
  (dense, ``groups == 1``, and depthwise, ``groups == C``), NCHW otherwise (a network's
  first convolution on 3 input channels, grouped convolutions). Elementwise operators,
  pooling and means follow the layout of their input; Relax inserts a ``layout_transform``
  only where a blocked and a plain tensor meet.
* ``legalize_conv2d``: Relax's own legalization of ``conv2d`` refuses a layout with a
  channel chunk (``relax/transform/legalize_ops/nn.py``, "cannot be legalized by TOPI at
  this moment"); this one gives the blocked calls a TE compute of their own
  (``conv2d_nchwc``, ``depthwise_conv2d_nchwc``) and leaves every other call to TVM's.
  The dense compute reduces over two channel axes (block, then lane inside it), the
  channels in the order TVM's NCHW compute takes them (TOPI's ``conv2d_NCHWc`` has one
  axis split by division and modulo, which gives MetaSchedule's loop rules less to work with).
"""

from __future__ import annotations

import re

BLOCKED = re.compile(r"^NCHW(\d+)c$")


def block_of(layout: str | None) -> int | None:
    """The channel block ``b`` of ``"NCHW<b>c"``; None for any other layout."""
    m = BLOCKED.match(layout or "")
    return int(m.group(1)) if m else None


def layout_callback(block: int):
    """A ``ConvertLayout`` ``layout_cb``: the desired ``[data, kernel]`` layouts of each
    ``relax.nn.conv2d`` call (module docstring); other operators follow their inputs."""
    blocked = [f"NCHW{block}c", f"OIHW{block}i{block}o"]
    depthwise = [f"NCHW{block}c", f"OIHW1i{block}o"]
    plain = ["NCHW", "OIHW"]

    def callback(call):
        if getattr(call.op, "name", None) != "relax.nn.conv2d":
            return {}
        data, weight = call.args
        a = call.attrs
        if str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW":
            return {"relax.nn.conv2d": [str(a.data_layout), str(a.kernel_layout)]}
        cin, cout, groups = int(data.ty.shape[1]), int(weight.ty.shape[0]), int(a.groups)
        if groups == 1 and cin % block == 0 and cout % block == 0:
            return {"relax.nn.conv2d": blocked}
        if groups == cin == cout and cin % block == 0:
            return {"relax.nn.conv2d": depthwise}
        return {"relax.nn.conv2d": plain}

    return callback


def _out_size(size: int, pad_lo: int, pad_hi: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + pad_lo + pad_hi - (kernel - 1) * dilation - 1) // stride + 1


def conv2d_nchwc(data, kernel, strides, padding, dilation):
    """Dense convolution, data ``(N, C/b, H, W, b)``, kernel ``(O/b, C/b, KH, KW, b, b)``
    (``OIHW<b>i<b>o``), padding ``(top, left, bottom, right)``; out ``(N, O/b, OH, OW, b)``."""
    from tvm import te, topi

    n, _, h, w, _ = (int(v) for v in data.shape)
    oc_chunk, ic_chunk, kh, kw, ic_block, oc_block = (int(v) for v in kernel.shape)
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = strides, padding, dilation
    padded = topi.nn.pad(data, [0, 0, pt, pl, 0], [0, 0, pb, pr, 0], name="pad") if any(padding) else data
    oh, ow = _out_size(h, pt, pb, kh, sh, dh), _out_size(w, pl, pr, kw, sw, dw)
    icc, icb = te.reduce_axis((0, ic_chunk), "icc"), te.reduce_axis((0, ic_block), "icb")
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    return te.compute(  # two channel reduction axes (block, lane), not TOPI's one axis split by div/mod
        (n, oc_chunk, oh, ow, oc_block),
        lambda b, oc, y, x, ob: te.sum(
            padded[b, icc, y * sh + ry * dh, x * sw + rx * dw, icb] * kernel[oc, icc, ry, rx, icb, ob],
            axis=[icc, icb, ry, rx]),
        name="conv2d_NCHWc", tag="conv2d_NCHWc")


def depthwise_conv2d_nchwc(data, kernel, strides, padding, dilation):
    """Depthwise convolution, data ``(N, C/b, H, W, b)``, kernel ``(C/b, 1, KH, KW, 1, b)``
    (``OIHW1i<b>o``); out ``(N, C/b, OH, OW, b)``."""
    from tvm import te, topi

    n, c_chunk, h, w, c_block = (int(v) for v in data.shape)
    kh, kw = int(kernel.shape[2]), int(kernel.shape[3])
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = strides, padding, dilation
    padded = topi.nn.pad(data, [0, 0, pt, pl, 0], [0, 0, pb, pr, 0], name="pad") if any(padding) else data
    oh, ow = _out_size(h, pt, pb, kh, sh, dh), _out_size(w, pl, pr, kw, sw, dw)
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    return te.compute(
        (n, c_chunk, oh, ow, c_block),
        lambda b, c, y, x, k: te.sum(padded[b, c, y * sh + ry * dh, x * sw + rx * dw, k] * kernel[c, 0, ry, rx, 0, k],
                                     axis=[ry, rx]),
        name="depthwise_conv2d_NCHWc", tag="depthwise_conv2d_NCHWc")


def legalize_conv2d(bb, call):
    """Legalize one ``relax.nn.conv2d`` call: blocked layouts with ``conv2d_nchwc`` /
    ``depthwise_conv2d_nchwc``, any other with TVM's own legalization."""
    from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

    a = call.attrs
    if block_of(str(a.data_layout)) is None:
        return _nn_conv2d(bb, call)
    if str(a.out_layout) != str(a.data_layout) or (a.out_dtype and str(a.out_dtype) not in ("", "float32")):
        return call  # not produced by layout_callback: left as TVM leaves it
    ints = [[int(v) for v in a.strides], [int(v) for v in a.padding], [int(v) for v in a.dilation]]
    groups = int(a.groups)
    compute, hint = ((conv2d_nchwc, "conv2d_NCHWc") if groups == 1
                     else (depthwise_conv2d_nchwc, "depthwise_conv2d_NCHWc"))
    return bb.call_te(compute, call.args[0], call.args[1], *ints, primfunc_name_hint=hint)
