"""``measure.compile``: kernels compiled into one exported library whose symbols compute the
right thing; a fused network compiled into a VM executable that matches torch."""

import numpy as np


def _add_one(n):
    from tvm.script import tirx as T

    @T.prim_func
    def f(A: T.Buffer((n,), "float32"), B: T.Buffer((n,), "float32")):
        for i in range(n):
            B[i] = A[i] + T.float32(1)

    return f


def _scale(n):
    from tvm.script import tirx as T

    @T.prim_func
    def f(A: T.Buffer((n,), "float32"), B: T.Buffer((n,), "float32")):
        for i in range(n):
            B[i] = A[i] * T.float32(3)

    return f


def test_kernel_library_exports_every_symbol(x86, tmp_path):
    import tvm

    from chamtvm.measure.compile import build_kernel_library

    path = build_kernel_library([("k_add", _add_one(16)), ("k_scale", _scale(8))], x86, tmp_path / "sub" / "lib.so")
    assert path == tmp_path / "sub" / "lib.so" and path.stat().st_size > 0
    lib = tvm.runtime.load_module(str(path))
    a = tvm.runtime.tensor(np.arange(16, dtype="float32"))
    b = tvm.runtime.tensor(np.zeros(16, dtype="float32"))
    lib["k_add"](a, b)
    np.testing.assert_array_equal(b.numpy(), np.arange(16) + 1)
    a8, b8 = tvm.runtime.tensor(np.full(8, 2.0, "float32")), tvm.runtime.tensor(np.zeros(8, "float32"))
    lib["k_scale"](a8, b8)
    np.testing.assert_array_equal(b8.numpy(), np.full(8, 6.0))


def test_network_compiles_exports_and_matches_torch(tiny_net, tiny_torch, x86, tmp_path):
    import torch
    import tvm
    from tvm import relax

    from chamtvm.measure.compile import compile_network, export

    ex = compile_network(tiny_net.fused, x86)
    path = export(ex, x86, tmp_path / "net" / "net.so")
    assert path.exists()
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu(0))
    x = np.random.default_rng(0).uniform(-1, 1, tiny_torch.shape).astype("float32")
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    with torch.no_grad():
        want = tiny_torch.make()(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_schedules_are_applied_to_the_module(tiny_net, x86):
    """``schedules.apply_to_module`` is what a network build compiles (duck-typed)."""
    from chamtvm.measure.compile import compile_network

    seen = []

    class Recorder:
        def apply_to_module(self, mod):
            seen.append(mod)
            return mod

    compile_network(tiny_net.fused, x86, Recorder())
    assert seen == [tiny_net.fused]


def test_a_measuring_build_is_cached_by_module_and_target(tiny_net, x86, tmp_path, monkeypatch):
    """The second build of the same network for the same target is the cached library, byte
    for byte; the reference kernel (another module) or another target is another library;
    with the cache off nothing is kept."""
    from dataclasses import replace

    from chamtvm.measure import compile as c

    monkeypatch.setenv("CHAMTVM_CACHE_DIR", str(tmp_path / "cache"))
    libs = tmp_path / "cache" / "libs"
    assert c.compile_and_export_network(tiny_net.fused, x86, tmp_path / "a.so", reference=True) is False
    assert c.compile_and_export_network(tiny_net.fused, x86, tmp_path / "b.so", reference=True) is True
    assert (tmp_path / "a.so").read_bytes() == (tmp_path / "b.so").read_bytes() and len(list(libs.iterdir())) == 1
    assert c.compile_and_export_network(tiny_net.fused, x86, tmp_path / "c.so") is False  # no reference kernel
    other = replace(x86, tvm_target={**x86.tvm_target, "mcpu": "x86-64"})
    assert c.compile_and_export_network(tiny_net.fused, other, tmp_path / "d.so", reference=True) is False
    assert len(list(libs.iterdir())) == 3
    monkeypatch.setenv("CHAMTVM_CACHE_DIR", "off")
    assert c.compile_and_export_network(tiny_net.fused, x86, tmp_path / "e.so", reference=True) is False
    assert (tmp_path / "e.so").is_file() and len(list(libs.iterdir())) == 3
