"""``space.model``: the torch network of an architecture: its structure (stages, strides,
residuals), output shape, seeded weights (global RNG left as it was) and BatchNorm
statistics, and the input shape."""

import json
from pathlib import Path

import pytest

from chamtvm.space.model import build_model, input_shape
from chamtvm.space.schema import Arch

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def arch():
    d = json.loads((DATA / "arch_tiny3.json").read_text())
    d.pop("space")
    return Arch.from_dict(d)  # stem 8, stages (8 x1 e1 k3), (16 x3 e4 k5), (16 x1 e2 k3), head 32


def test_structure_follows_the_architecture(tiny_space, arch):
    import torch

    model = build_model(tiny_space, arch)
    assert not model.training
    blocks = list(model.features)[1:]
    assert len(blocks) == 1 + 3 + 1
    # residual only where the stride is 1 and the channels match: stage 1 (8->8, stride 1),
    # the 2nd and 3rd blocks of stage 2; never the first block of a stride-2 stage
    assert [b.residual for b in blocks] == [True, False, True, True, False]
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert [(m.kernel_size[0], m.stride[0], m.groups) for m in depthwise] == [
        (3, 1, 8), (5, 2, 8 * 4), (5, 1, 16 * 4), (5, 1, 16 * 4), (3, 2, 16 * 2)]  # hidden = cin x expansion
    x = torch.randn(input_shape(tiny_space, arch, batch=2))
    with torch.no_grad():
        assert model(x).shape == (2, tiny_space.num_classes)
        assert model.features(x).shape == (2, 16, 4, 4)  # stride 2 x 3 (stem, stages 2, 3): 32 / 8


def test_input_shape(tiny_space, arch):
    assert input_shape(tiny_space, arch) == (1, 3, 32, 32)
    assert input_shape(tiny_space, arch, batch=4) == (4, tiny_space.in_channels, arch.resolution, arch.resolution)


def test_weights_come_from_the_seed_and_leave_the_global_generator_alone(tiny_space, arch):
    import torch

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(tiny_space, arch, seed=5)
    assert torch.equal(torch.rand(3), expected_next)  # the global stream is untouched
    b = build_model(tiny_space, arch, seed=5)
    c = build_model(tiny_space, arch, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


def test_batchnorm_statistics_randomized_unless_asked_not_to(tiny_space, arch):
    import torch

    bns = lambda m: [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]  # noqa: E731
    for bn in bns(build_model(tiny_space, arch)):
        assert bn.running_mean.abs().max() > 0 and bn.running_mean.abs().max() <= 0.1
        assert 0.5 <= bn.running_var.min() and bn.running_var.max() <= 1.5
    for bn in bns(build_model(tiny_space, arch, randomize_bn=False)):
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))


def test_an_architecture_outside_the_space_is_refused(tiny_space, arch):
    from chamtvm.space.schema import SpaceError

    d = arch.to_dict()
    d["stages"][1]["channels"] = 17
    with pytest.raises(SpaceError):
        build_model(tiny_space, Arch.from_dict(d))
