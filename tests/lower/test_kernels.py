"""Lowering through TVM: numerics against torch, kernel keys, dedup across networks, ONNX
import errors (model files and the ONNX frontend as a whole: ``test_network.py``)."""

import numpy as np
import pytest

from chamtvm.lower.coverage import space_kernels
from chamtvm.lower.kernels import ModelError, from_onnx_file
from chamtvm.space.model import build_model, input_shape
from chamtvm.lower.network import lower_arch
from chamtvm.space.schema import Arch


def test_compiled_network_matches_torch(tiny_space, tiny_archs, x86):
    import torch
    import tvm
    from tvm import relax

    from chamtvm.measure.compile import compile_network

    arch = tiny_archs[0]
    net = lower_arch(tiny_space, arch)
    ex = compile_network(net.fused, x86)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    x = np.random.default_rng(0).standard_normal(input_shape(tiny_space, arch)).astype("float32")
    out = vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()
    ref = build_model(tiny_space, arch)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_kernels_have_shapes_flops_bytes_and_counts(tiny_space, tiny_archs):
    net = lower_arch(tiny_space, tiny_archs[0])
    assert net.kernels, "no kernels extracted"
    names = {k.name for k in net.kernels}
    assert any("conv2d" in n for n in names)
    for k in net.kernels:
        assert k.count >= 1 and k.bytes > 0 and k.args
        assert int(k.struct_hash) >= 0
    convs = [k for k in net.kernels if "conv2d" in k.name]
    assert all(k.flops > 0 for k in convs)
    # BN folded, bias and ReLU6 fused: no batch_norm kernel survives
    assert not any("batch_norm" in n for n in names)


def test_identical_kernels_share_one_key_across_networks(tiny_space):
    rng = np.random.default_rng(11)
    a = tiny_space.sample(rng)
    d = a.to_dict()
    # b differs from a only in the last stage: stem and first stages give identical kernels
    d["stages"][-1]["channels"] = 24 if d["stages"][-1]["channels"] == 16 else 16
    b = Arch.from_dict(d)
    ka = {k.struct_hash: k for k in lower_arch(tiny_space, a).kernels}
    kb = {k.struct_hash: k for k in lower_arch(tiny_space, b).kernels}
    shared = set(ka) & set(kb)
    assert shared, "identical stem/blocks must share kernel keys"
    assert set(ka) != set(kb), "a different last stage must give different kernels"
    for h in shared:
        assert ka[h].args == kb[h].args


def test_repeated_block_kernels_are_counted_not_duplicated(tiny_space):
    d = tiny_space.sample(np.random.default_rng(0)).to_dict()
    d["stages"][1]["blocks"] = 3  # blocks 2 and 3 are identical
    net = lower_arch(tiny_space, Arch.from_dict(d))
    hashes = [k.struct_hash for k in net.kernels]
    assert len(hashes) == len(set(hashes))
    assert max(k.count for k in net.kernels) >= 2


@pytest.mark.slow
def test_space_coverage_contains_every_network_kernel(tiny_space):
    covered = {k.struct_hash for k in space_kernels(tiny_space)}
    rng = np.random.default_rng(3)
    for _ in range(4):
        net = lower_arch(tiny_space, tiny_space.sample(rng))
        missing = [k.name for k in net.kernels if k.struct_hash not in covered]
        assert not missing


def test_bad_onnx_file_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        from_onnx_file(bad)


@pytest.mark.slow
def test_kernels_of_an_architecture_are_known_without_lowering_it(tiny_space, tiny_kernel_map):
    """The block -> kernels map from the probes (``space_kernel_map``, the session's:
    conftest) gives exactly the kernels and call counts that lowering the whole network
    gives (what fast search relies on)."""
    kmap = tiny_kernel_map
    rng = np.random.default_rng(8)
    for _ in range(4):
        arch = tiny_space.sample(rng)
        lowered = {k.struct_hash: k.count for k in lower_arch(tiny_space, arch).kernels}
        assert dict(kmap.arch_kernel_counts(arch)) == lowered


@pytest.mark.slow
def test_calibration_sweep_covers_operator_kinds_outside_the_space():
    from chamtvm.lower.calibration import calibration_kernels
    from chamtvm.latency.features import kernel_kind

    kernels = calibration_kernels()
    kinds = {kernel_kind(k.name, [a.to_list() for a in k.args]) for k in kernels}
    assert {"conv_kxk", "conv1x1", "depthwise", "pool", "other"} <= kinds
    dense3x3 = [k for k in kernels if kernel_kind(k.name, [a.to_list() for a in k.args]) == "conv_kxk"
                and k.args[0].shape[1] >= 48]
    assert len(dense3x3) >= 10  # the ResNet-style convolutions the space never has
    assert any("sigmoid" in k.name for k in kernels) and len({k.struct_hash for k in kernels}) == len(kernels)
