"""Coverage of per-layer spaces: every network's kernels are known from the probes."""

import pytest
from pathlib import Path

import numpy as np

from chamtvm.lower.coverage import arch_block_configs, block_configs, space_kernel_map
from chamtvm.lower.network import lower_arch
from chamtvm.space.layers import LayerArch
from chamtvm.space.schema import SearchSpace

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.slow
def test_per_layer_space_kernels_are_known_without_lowering():
    """Probes of a per-layer space (with shape-keeping skips, which compile to nothing)
    give exactly the kernels and call counts of lowering whole networks."""
    space = SearchSpace.load(DATA / "space_layers_tiny.json")
    kmap = space_kernel_map(space)
    noops = [c for c in block_configs(space) if c.is_noop()]
    assert noops and all(kmap.by_config[c] == () for c in noops)
    archs = [LayerArch(16, ("skip", "skip", "skip")), LayerArch(24, ("ir_k3_e3", "ir_k5_e6", "ir_k3_e3"))]
    rng = np.random.default_rng(5)
    archs += [space.sample(rng)]
    for arch in archs:
        assert len(arch_block_configs(space, arch)) == 2 + len(space.layers)
        lowered = {k.struct_hash: k.count for k in lower_arch(space, arch).kernels}
        assert dict(kmap.arch_kernel_counts(arch)) == lowered, arch
