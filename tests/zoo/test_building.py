"""Shared zoo building: torch parts, seeded building (RNG state kept), ONNX export."""

import onnx
import pytest
import torch

from chamtvm.zoo.building import build_seeded, export_onnx_module, torch_parts


def test_basic_block_projects_only_when_shape_changes():
    parts = torch_parts()
    assert isinstance(parts.Basic(8, 8, 1).down, torch.nn.Identity)
    block = parts.Basic(8, 16, 2).eval()
    assert not isinstance(block.down, torch.nn.Identity)
    y = block(torch.randn(1, 8, 12, 12))
    assert y.shape == (1, 16, 6, 6) and (y >= 0).all()  # ReLU after the sum


def test_seeded_build_is_repeatable_keeps_the_rng_and_names_unknown_members(tmp_path):
    parts = torch_parts()
    models = {"one": lambda: torch.nn.Sequential(parts.cba(3, 4, 3, 2), parts.Basic(4, 8, 2))}
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = build_seeded(models, "one", "test", ["one"])
    assert torch.equal(torch.rand(3), before)  # the caller's RNG stream is untouched
    b = build_seeded(models, "one", "test", ["one"])
    assert not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(KeyError, match=r"unknown test model 'two'; choose one of \['one'\]"):
        build_seeded(models, "two", "test", ["one"])
    path = export_onnx_module(a, 16, tmp_path / "sub" / "one.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["x"]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 16]
