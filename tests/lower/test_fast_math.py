"""lower.fast_math: the fast exponential matches numpy's over float32's range, and a network
with sigmoid, SiLU, GELU, exp, tanh and softmax lowered with ``fast_math`` computes what its exact lowering
computes, with no exponential left for LLVM to scalarise; a target's ``fast_math`` is a JSON
boolean and reaches the lowering."""

from __future__ import annotations

import numpy as np
import pytest


def _build(fused):
    import tvm
    from tvm import relax

    return relax.VirtualMachine(tvm.compile(fused, "llvm"), tvm.cpu())


def _elementwise(fn, x):
    """``fn`` (a float32 TIR expression -> expression) applied to ``x`` by a built kernel."""
    import tvm
    from tvm import te

    a = te.placeholder(x.shape, "float32", name="a")
    b = te.compute(x.shape, lambda i: fn(a[i]), name="b")
    f = tvm.compile(te.create_prim_func([a, b]), "llvm")
    out = tvm.runtime.tensor(np.zeros_like(x))
    f(tvm.runtime.tensor(x), out)
    return out.numpy()


def test_fast_exp_and_sigmoid_match_numpy_over_the_float32_range():
    from chamtvm.lower.fast_math import fast_exp_f32, fast_sigmoid_f32

    x = np.concatenate([np.linspace(-87, 88, 20001), [-200.0, -100.0, 0.0, 1e-8, -1e-8, 100.0]]).astype("float32")
    got = _elementwise(fast_exp_f32, x)
    want = np.exp(x.astype("float64"))
    normal = (x > -87) & (x < 88)
    rel = np.abs(got[normal] - want[normal]) / want[normal]
    assert rel.max() < 5e-6, rel.max()  # the largest near the top of the range (range reduction)
    assert rel[np.abs(x[normal]) < 20].max() < 2e-6
    assert np.all(np.isfinite(got[x < 88])) and np.all(got >= 0)
    assert got[x == 100.0][0] == np.inf  # overflows as float32's exp does
    sig = _elementwise(fast_sigmoid_f32, x)
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-x.astype("float64"))), rtol=5e-6, atol=1e-30)
    assert sig[x == 100.0][0] == 1.0 and sig[x == -200.0][0] < 1e-37  # saturates, never NaN


class _Activations:
    """A small network with every activation fast math rewrites (built lazily: torch import)."""

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
                self.head = torch.nn.Linear(8, 5)

            def forward(self, x):
                y = torch.nn.functional.silu(self.conv(x))
                y = y * torch.sigmoid(y) + torch.tanh(y) + torch.nn.functional.gelu(y)
                z = self.head(y.mean(dim=(2, 3)))
                return torch.softmax(z, dim=1) + torch.exp(-z.abs())

        return Net().eval()


def test_network_with_fast_math_computes_the_same_and_calls_no_exp():
    from chamtvm.lower.network import lower_torch

    net = _Activations.build()
    exact = lower_torch(net, (1, 3, 12, 12), "exact")
    fast = lower_torch(net, (1, 3, 12, 12), "fast", fast_math=True)
    x = np.random.default_rng(0).uniform(-3, 3, (1, 3, 12, 12)).astype("float32")

    def run(lowered):
        import tvm

        return _build(lowered.fused)["main"](tvm.runtime.tensor(x)).numpy()

    np.testing.assert_allclose(run(fast), run(exact), rtol=1e-5, atol=1e-6)
    scripts = {k.name: k.func.script() for k in fast.kernels}
    exact_calls = ("T.exp(", "T.sigmoid(", "T.tanh(", "T.erf(")
    assert not [n for n, s in scripts.items() if any(c in s for c in exact_calls)], scripts.keys()
    exact_scripts = " ".join(k.func.script() for k in exact.kernels)
    assert "T.sigmoid(" in exact_scripts and "T.exp(" in exact_scripts  # the rewrite had something to do
    # different loop bodies, so different kernels: rows of the exact lowering never price these
    changed = {k.struct_hash for k in fast.kernels} - {k.struct_hash for k in exact.kernels}
    assert changed
    from chamtvm.lower.fast_math import approximated_kernels, fast_math_note

    assert approximated_kernels(fast.kernels) and not approximated_kernels(exact.kernels)
    assert fast_math_note("x86", exact.kernels) is None and "fast math" in fast_math_note("x86", fast.kernels)


def test_target_fast_math_is_a_boolean_and_reaches_the_lowering():
    from chamtvm.targets.spec import TargetError, TargetSpec, get_target

    d = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
         "evaluator": {"number": 1, "repeat": 3, "min_repeat_ms": 1}}
    assert TargetSpec.from_dict(d).lowering() == {"layout": None, "fast_math": False}
    assert TargetSpec.from_dict({**d, "fast_math": True}).lowering()["fast_math"] is True
    with pytest.raises(TargetError, match="fast_math must be true or false"):
        TargetSpec.from_dict({**d, "fast_math": "yes"})
    assert get_target("x86").lowering()["fast_math"] in (True, False)
