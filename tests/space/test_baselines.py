"""MobileNetV2 width x resolution baselines: template, derived space, models build and run."""

import pytest

from chamtvm.space.baselines import (
    baseline_arch,
    baseline_family,
    default_resolutions,
    family_space,
    make_divisible,
    template,
)
from chamtvm.space.schema import SearchSpace, SpaceError


@pytest.fixture(scope="module")
def fashion():
    return SearchSpace.load("fashion")


def test_make_divisible():
    assert make_divisible(18, 4) == 20
    assert make_divisible(2, 4) == 4
    assert make_divisible(37, 8) == 40  # 32 would be > 10 % below 37
    assert all(make_divisible(v, 4) % 4 == 0 for v in range(1, 200))


def test_fashion_template_and_resolutions(fashion):
    t = template(fashion)
    assert default_resolutions(fashion) == (20, 24, 28, 32)
    assert t.resolution == 28 and t.stem_channels == 16 and t.head_channels == 256
    assert [s.channels for s in t.stages] == [16, 16, 24, 32, 48, 64, 96]
    assert [s.blocks for s in t.stages] == [1, 2, 2, 3, 2, 2, 1]
    assert [s.expansion for s in t.stages] == [1, 6, 6, 6, 6, 6, 6]
    assert {s.kernel for s in t.stages} == {3}
    fashion.validate(t)  # width 1.0 at 28 px lies inside the space


def test_family_space_holds_every_baseline_and_the_base_space(fashion):
    fam = baseline_family(fashion)
    assert len(fam) == 5 * 4 and len({b.name for b in fam}) == 20
    derived = fam[0].space
    assert all(b.space is derived for b in fam)
    assert derived.name == "fashion-mbv2"
    for b in fam:
        derived.validate(b.arch)
    rng = __import__("numpy").random.default_rng(0)
    for _ in range(5):
        derived.validate(fashion.sample(rng))
    with pytest.raises(SpaceError):
        fashion.validate(baseline_arch(fashion, 0.5, 20))
    with pytest.raises(ValueError):
        baseline_arch(fashion, 0.0, 28)
    with pytest.raises(SpaceError):  # below the total stride of 16 px
        family_space(fashion, [baseline_arch(fashion, 1.0, 12)])


def test_models_build_run_and_grow_with_width(fashion):
    import torch

    from chamtvm.space.model import build_model, input_shape

    fam = baseline_family(fashion, widths=(0.5, 1.0, 1.5), resolutions=(20, 32))
    params = {}
    for b in fam:
        model = build_model(b.space, b.arch, seed=0)
        shape = input_shape(b.space, b.arch)
        assert shape == (1, 1, b.resolution, b.resolution)
        with torch.no_grad():
            out = model(torch.zeros(2, *shape[1:]))
        assert out.shape == (2, 10)
        params[(b.width, b.resolution)] = sum(p.numel() for p in model.parameters())
    for r in (20, 32):
        assert params[(0.5, r)] < params[(1.0, r)] < params[(1.5, r)]
    assert params[(1.0, 20)] == params[(1.0, 32)]  # resolution changes no weight
