"""The unstructured baseline: global magnitude pruning (zeros anywhere in the weights).

The smallest-magnitude weights of every convolution and linear layer, together, are set to
zero until ``sparsity`` of them are zero; the zeros stay zero while it is fine-tuned (torch's
pruning masks) and are then made permanent. The network keeps every shape, so TVM compiles it
to exactly the kernels of the dense network (a kernel's identity does not include its
weights): the same latency. That is what the benchmark shows next to structured pruning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def prunable_weights(model: "torch.nn.Module") -> list[tuple["torch.nn.Module", str]]:
    """``(module, "weight")`` of every Conv2d and Linear layer."""
    from torch import nn

    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def magnitude_prune(model: "torch.nn.Module", sparsity: float) -> "torch.nn.Module":
    """``model`` (changed in place and returned) with the ``sparsity`` share of its conv and
    linear weights with the smallest magnitudes masked to zero, globally. The masks stay
    attached (training keeps the zeros) until :func:`make_permanent`."""
    import torch.nn.utils.prune as tprune

    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    tprune.global_unstructured(prunable_weights(model), pruning_method=tprune.L1Unstructured, amount=float(sparsity))
    return model


def make_permanent(model: "torch.nn.Module") -> "torch.nn.Module":
    """Fold the masks into the weights (zeros become plain zeros of plain parameters)."""
    import torch.nn.utils.prune as tprune

    for module, name in prunable_weights(model):
        if tprune.is_pruned(module) and hasattr(module, name + "_mask"):
            tprune.remove(module, name)
    return model


def weight_sparsity(model: "torch.nn.Module") -> float:
    """Share of the conv and linear weights that are exactly zero."""
    total = zeros = 0
    for module, name in prunable_weights(model):
        w = getattr(module, name).detach()
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


def conv_linear_weights(model: "torch.nn.Module") -> int:
    """Number of conv and linear weights (the count sparsity is a share of)."""
    return sum(getattr(m, n).numel() for m, n in prunable_weights(model))
