"""Fast approximations of the exponential-based activations, for targets that ask for them
(``"fast_math": true``).

TVM lowers ``exp`` (and ``sigmoid`` as ``1 / (1 + exp(-x))``) to LLVM's ``exp`` intrinsic,
which LLVM turns into one scalar ``expf`` call per element when no vector math library is
linked: on x86 a SiLU after a convolution then costs more than the convolution
(EfficientNet-B0's first expansion 1x1 convolution with its SiLU: 1.74 ms with the default
schedule, tuned records no faster; docs/deployed-speed.md). ONNX Runtime computes these
activations with vectorised polynomial approximations.

``fast_math(mod)`` rewrites, before legalization:

* ``relax.sigmoid`` and ``relax.nn.silu`` (float32) into one elementwise computation each
  that uses :func:`fast_exp_f32`, and ``relax.nn.gelu`` into one that uses ``topi.fast_erf``;
  :func:`fast_exp_f32` is TVM's own ``topi.fast_exp`` polynomial written as an
  expression (range reduction to ``2^n * exp(f)``, a degree-7 polynomial for ``exp(f)``,
  ``2^n`` built in the exponent bits), so it fuses and vectorises like any elementwise op;
* ``exp``, ``tanh``, ``erf`` and ``softmax`` through TVM's ``relax.transform.FastMathTransform``.

The fast exponential is within 5e-6 (relative) of the exact one over float32's range (2e-6
for arguments within ±20), and a
network lowered with it computes what its exact lowering does to 1e-5 (relative; both checked
in ``tests/lower/test_fast_math.py``)."""

from __future__ import annotations

# TVM's fast_exp_float32 (include/tvm/topi/elemwise.h): clamp, range reduction, polynomial.
_X_HI, _X_LO = 88.3762626647950, -88.3762626647949
_LOG2E, _LN2 = 1.44269504088896341, 0.6931471805599453
_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


def fast_exp_f32(x):
    """``exp(x)`` of a float32 TIR expression by TVM's fast_exp polynomial (float32 expression)."""
    from tvm import tirx

    f32 = "float32"
    c = lambda v: tirx.const(v, f32)  # noqa: E731
    xc = tirx.max(tirx.min(x, c(_X_HI)), c(_X_LO))
    n = tirx.floor(xc * c(_LOG2E) + c(0.5))
    f = xc - n * c(_LN2)
    y = c(_P[0])
    for p in _P[1:]:
        y = y * f + c(p)
    y = y * f * f + f + c(1.0)
    two_n = tirx.reinterpret(f32, tirx.shift_left(tirx.Cast("int32", n + c(127.0)), tirx.const(23, "int32")))
    return tirx.max(two_n * y, x)


def fast_sigmoid_f32(x):
    """``1 / (1 + exp(-x))`` of a float32 TIR expression with :func:`fast_exp_f32`."""
    from tvm import tirx

    one = tirx.const(1.0, "float32")
    return one / (one + fast_exp_f32(-x))


def _te_sigmoid(x):
    from tvm import te

    return te.compute(x.shape, lambda *i: fast_sigmoid_f32(x(*i)), name="fast_sigmoid", tag="elemwise")


def _te_silu(x):
    from tvm import te

    return te.compute(x.shape, lambda *i: x(*i) * fast_sigmoid_f32(x(*i)), name="fast_silu", tag="elemwise")


def _te_gelu(x):
    """GELU, ``x / 2 * (1 + erf(x / sqrt 2))``, with TVM's ``topi.fast_erf``."""
    from tvm import topi

    half = topi.multiply(x, 0.5)
    return topi.add(half, topi.multiply(half, topi.fast_erf(topi.multiply(x, 0.7071067811865476))))


def fast_math(mod):
    """``mod`` with its float32 sigmoid, SiLU, GELU, exp, tanh, erf and softmax replaced by fast
    approximations (module docstring); a module without them comes back unchanged."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    rewrites = {"relax.sigmoid": (_te_sigmoid, "fast_sigmoid"), "relax.nn.silu": (_te_silu, "fast_silu"),
                "relax.nn.gelu": (_te_gelu, "fast_gelu")}

    @mutator
    class _FastActivations(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            rule = rewrites.get(getattr(call.op, "name", None))
            ty = getattr(call, "ty", None)
            if rule is None or not isinstance(ty, relax.TensorType) or str(ty.dtype) != "float32":
                return call
            fn, hint = rule
            return self.builder_.call_te(fn, call.args[0], primfunc_name_hint=hint)

    rewriter = _FastActivations(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(func))
    mod = rewriter.builder_.get()
    return relax.transform.FastMathTransform()(mod)


def approximated_kernels(kernels) -> list[str]:
    """Names of the kernels (``lower.kernels.Kernel``) that compute an activation by a fast
    approximation (their fused names carry ``fast_``: ``fused_conv2d_add_fast_silu``)."""
    return sorted(k.name for k in kernels if "fast_" in k.name)


def fast_math_note(target_name: str, kernels) -> str | None:
    """What ``predict`` says when a network's price includes fast-math kernels, else None."""
    fast = approximated_kernels(kernels)
    if not fast:
        return None
    return (f"note: target {target_name} lowers with fast math: {len(fast)} kernel(s) compute sigmoid, SiLU, GELU, "
            "exp, tanh, erf or softmax by polynomial approximations (lower.fast_math), as chamtvm exports them; "
            "a build without them (a plain tvm.compile) computes those with one expf call per element")
