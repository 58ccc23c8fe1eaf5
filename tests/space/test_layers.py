"""Per-layer spaces (FBNet / NAS-Bench-Macro style): schema, block registry, torch build."""

import json
from pathlib import Path

import numpy as np
import pytest

from chamtvm.core.registry import UnknownNameError
from chamtvm.space.blocks import BLOCKS
from chamtvm.space.layers import LayerArch, LayerSpace
from chamtvm.space.schema import Arch, SearchSpace, SpaceError

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def layers_tiny():
    return SearchSpace.load(DATA / "space_layers_tiny.json")


def test_a_dict_with_layers_loads_as_a_per_layer_space(layers_tiny):
    assert isinstance(layers_tiny, LayerSpace)
    assert layers_tiny.size() == 2 * 2 * 3 * 2
    assert SearchSpace.from_dict(layers_tiny.to_dict()) == layers_tiny
    assert [p for p, _ in layers_tiny.dimensions()] == ["resolution", "layers[0]", "layers[1]", "layers[2]"]


def test_per_layer_arch_round_trips_encodes_and_is_seeded(layers_tiny):
    rng = np.random.default_rng(3)
    archs = [layers_tiny.sample(rng) for _ in range(30)]
    assert archs == [layers_tiny.sample(r) for r in [np.random.default_rng(3)] for _ in range(30)]
    for a in archs:
        assert isinstance(a, LayerArch)
        assert Arch.from_json(a.to_json()) == a  # Arch.from_dict dispatches on "layers"
        v = layers_tiny.encode(a)
        assert v.shape == (layers_tiny.encoding_length,) and ((v >= 0) & (v <= 1)).all()
        assert layers_tiny.decode(v) == a
        m = layers_tiny.mutate(a, rng)
        assert m != a
        layers_tiny.validate(m)
        layers_tiny.validate(layers_tiny.crossover(a, m, rng))
    assert len({a.to_json() for a in archs}) > 10


def test_unknown_block_lists_the_registry():
    d = json.loads((DATA / "space_layers_tiny.json").read_text())
    d["layers"][0]["choices"] = ["skip", "ir_k9_e3"]
    with pytest.raises(SpaceError, match=r"unknown block 'ir_k9_e3'; valid: .*ir_k3_e3.*skip"):
        SearchSpace.from_dict(d)
    with pytest.raises(UnknownNameError, match="unknown block 'nope'; valid blocks: "):
        BLOCKS.get("nope")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["layers"][1].update(stride=3), r"layers\[1\].stride: must be 1 or 2"),
    (lambda d: d.update(activation="gelu"), "activation"),
    (lambda d: d.update(resolution=[2]), "smaller than the total stride 4"),
    (lambda d: d["layers"][2].update(choices=["skip", "skip"]), "duplicate blocks"),
    (lambda d: d.pop("head"), "space.head"),
])
def test_invalid_per_layer_space_is_refused_with_reason(edit, message):
    d = json.loads((DATA / "space_layers_tiny.json").read_text())
    edit(d)
    with pytest.raises(SpaceError, match=message):
        SearchSpace.from_dict(d)


def test_invalid_per_layer_architecture_names_the_field(layers_tiny):
    with pytest.raises(SpaceError, match=r"layers\[1\]='ir_k3_e3' is not allowed"):
        layers_tiny.validate(LayerArch(16, ("skip", "ir_k3_e3", "skip")))
    with pytest.raises(SpaceError, match="has 2 layers"):
        layers_tiny.validate(LayerArch(16, ("skip", "skip")))
    with pytest.raises(SpaceError, match="no 'layers'"):
        layers_tiny.validate(SearchSpace.load("small").sample(np.random.default_rng(0)))
    with pytest.raises(SpaceError, match="list of block names"):
        Arch.from_dict({"resolution": 16, "layers": [1, 2, 3]})


def test_torch_build_matches_the_closed_form_costs_and_runs(layers_tiny):
    """Every architecture of the tiny per-layer space: torch parameter and MAC counts equal
    the closed form (``LayerSpace.costs``); the output has the right shape; a shape-keeping
    skip adds no module with parameters."""
    import itertools

    import torch

    from chamtvm.accuracy.encoding import arch_costs, model_cost
    from chamtvm.space.model import build_model, input_shape

    sizes = [len(c) for _, c in layers_tiny.dimensions()]
    for idx in itertools.product(*[range(n) for n in sizes]):
        arch = layers_tiny.from_indices(idx)
        params, macs = model_cost(layers_tiny, arch)
        assert tuple(arch_costs(layers_tiny, [idx])[0]) == (params, macs), arch
    arch = LayerArch(24, ("ir_k3_e3", "skip", "ir_k3_e3"))
    model = build_model(layers_tiny, arch)
    assert type(model.features[1]).__name__ == "Identity"
    with torch.no_grad():
        out = model(torch.zeros(input_shape(layers_tiny, arch)))
    assert out.shape == (1, 10)


def test_stage_wise_space_still_builds_the_same_network():
    """The stage-wise builder is unchanged by the per-layer one: same parameter count as
    the closed form and ReLU6 activations."""
    from torch import nn

    from chamtvm.accuracy.encoding import arch_costs, model_cost
    from chamtvm.space.model import build_model

    space = SearchSpace.load("small")
    arch = space.sample(np.random.default_rng(4))
    assert tuple(arch_costs(space, [space.indices(arch)])[0]) == model_cost(space, arch)
    acts = {type(m) for m in build_model(space, arch).modules() if isinstance(m, (nn.ReLU, nn.ReLU6))}
    assert acts == {nn.ReLU6}
