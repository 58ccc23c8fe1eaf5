"""The unstructured baseline: the asked share of conv and linear weights is zero, stays zero
through training, and the network compiles to exactly the dense network's kernels."""

from __future__ import annotations

import pytest


def test_magnitude_pruning_zeros_the_smallest_weights_and_keeps_them_zero(tiny_space):
    import torch

    from chamtvm.space.model import build_model, input_shape
    from chamtvm.transform.prune.unstructured import magnitude_prune, make_permanent, weight_sparsity

    arch = tiny_space.sample(__import__("numpy").random.default_rng(0))
    model, shape = build_model(tiny_space, arch), input_shape(tiny_space, arch)
    magnitude_prune(model, 0.6)
    assert weight_sparsity(model) == pytest.approx(0.6, abs=0.01)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = model(torch.randn(4, *shape[1:])).square().mean()
    loss.backward()
    opt.step()
    assert weight_sparsity(model) == pytest.approx(0.6, abs=0.01)  # the masks hold the zeros
    make_permanent(model)
    assert not any(n.endswith("_orig") for n, _ in model.named_parameters())
    assert weight_sparsity(model) == pytest.approx(0.6, abs=0.01)
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(model, 1.0)


@pytest.mark.slow
def test_sparse_weights_compile_to_the_dense_kernels(tiny_space):
    from chamtvm.lower.network import lower_torch
    from chamtvm.space.model import build_model, input_shape
    from chamtvm.transform.prune.unstructured import magnitude_prune, make_permanent

    arch = tiny_space.sample(__import__("numpy").random.default_rng(1))
    dense, shape = build_model(tiny_space, arch), input_shape(tiny_space, arch)
    sparse = make_permanent(magnitude_prune(build_model(tiny_space, arch), 0.8))
    keys = lambda m: sorted((k.struct_hash, k.count) for k in lower_torch(m, shape).kernels)
    assert keys(sparse) == keys(dense)  # TVM runs 80 % zeros at dense speed
