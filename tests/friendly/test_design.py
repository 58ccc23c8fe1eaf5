"""The positions of a space and the balanced, D-optimized design (pure numpy, no TVM)."""

import numpy as np
import pytest

from chamtvm.friendly.design import (MAX_NETWORKS, balanced_design, default_design_size, design_summary,
                                     effects_model)
from chamtvm.space.schema import SearchSpace


@pytest.mark.parametrize("name, params, networks", [("macro", 17, 27), ("fashion", 34, 48), ("mobilenetv2", 51, 60)])
def test_bundled_spaces_get_an_identifiable_design_of_at_most_60_networks(name, params, networks):
    space = SearchSpace.load(name)
    model = effects_model(space)
    assert model.n_params == params
    assert default_design_size(model, space.size()) == networks <= MAX_NETWORKS


def test_positions_are_the_dimensions_with_a_choice_and_code_them():
    model = effects_model(SearchSpace.load("mobilenetv2"))
    paths = [p.path for p in model.positions]
    assert "stages[0].expansion" not in paths  # a single choice is no position
    kinds = {p.path: p.kind for p in model.positions}
    assert kinds["resolution"] == "quadratic" and kinds["stages[1].kernel"] == "treatment"
    q = next(p for p in model.positions if p.path == "resolution").coding
    assert q.shape == (4, 2) and abs(q[:, 0] @ q[:, 1]) < 1e-9 and abs(q.sum(axis=0)).max() < 1e-9


def test_design_is_balanced_distinct_orthogonal_enough_and_seeded():
    space = SearchSpace.load("macro")
    model = effects_model(space)
    d = balanced_design(model, 27, seed=3)
    s = design_summary(model, d)
    assert s["balanced"] and s["distinct_networks"] == 27 and s["residual_dof"] == 10
    assert s["orthogonality"] > 0.9
    for row in d:
        space.validate(space.from_indices(row))
    assert np.array_equal(d, balanced_design(model, 27, seed=3))
    assert not np.array_equal(d, balanced_design(model, 27, seed=4))
    # the exchange improves on a random balanced start
    rng = np.random.default_rng(0)
    rand = np.zeros_like(d)
    for p in model.positions:
        rand[:, p.dim] = rng.permutation(np.resize(np.arange(3), 27))
    assert s["orthogonality"] > design_summary(model, rand)["orthogonality"]


def test_a_design_too_small_for_the_model_is_refused():
    model = effects_model(SearchSpace.load("macro"))
    with pytest.raises(ValueError, match="cannot estimate 17 effects"):
        balanced_design(model, 17)


def test_a_small_space_is_measured_whole():
    space = SearchSpace.load(__import__("pathlib").Path(__file__).parents[1] / "data" / "space_layers_tiny.json")
    model = effects_model(space)
    assert default_design_size(model, space.size()) == 18  # lcm 6 * 3 >= 6 params + 10
    assert default_design_size(model, 12) == 12
