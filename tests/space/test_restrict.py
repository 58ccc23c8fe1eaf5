"""``space.restrict``: a restriction keeps the skeleton and a subset of the choices, loads like
any space, and is recognised as one of its parent (and only of its parent)."""

import pytest

from chamtvm.space.restrict import is_restriction, restrict
from chamtvm.space.schema import SearchSpace


@pytest.fixture(scope="module")
def macro():
    return SearchSpace.load("macro")


def test_a_per_layer_restriction_keeps_the_skeleton_and_drops_choices(macro):
    small = restrict(macro, {"layers[0]": ["ir_k3_e3", "ir_k5_e6"], "layers[5]": ["skip"]}, "macro-small")
    assert small.name == "macro-small" and small.size() == macro.size() * 2 // 9
    assert dict(small.dimensions())["layers[0]"] == ("ir_k3_e3", "ir_k5_e6")
    again = SearchSpace.from_dict(small.to_dict())  # loads like any space file
    assert again.size() == small.size()
    assert is_restriction(small, macro) and not is_restriction(macro, small)
    assert is_restriction(macro, macro)


def test_a_stagewise_restriction_is_recognised():
    fashion = SearchSpace.load("fashion")
    small = restrict(fashion, {"stages[1].kernel": [3], "resolution": [fashion.dimensions()[0][1][0]]}, "f")
    assert is_restriction(small, fashion) and small.size() < fashion.size()


def test_another_skeleton_or_kind_is_no_restriction(macro):
    d = macro.to_dict()
    d["layers"][1]["channels"] = 48  # the same choices, another network for the same architecture
    d["name"] = "other"
    other = SearchSpace.from_dict(d)
    assert not is_restriction(restrict(other, {"layers[0]": ["skip"]}, "o"), macro)
    assert not is_restriction(SearchSpace.load("fashion"), macro)


def test_bad_positions_are_refused(macro):
    with pytest.raises(ValueError, match="no choice kept"):
        restrict(macro, {"layers[0]": []}, "x")
    with pytest.raises(ValueError, match="unknown position path"):
        restrict(macro, {"layer0": ["skip"]}, "x")
