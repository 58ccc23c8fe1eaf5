"""What both kinds of space share: field checks of loading and the choice arithmetic."""

from pathlib import Path

import numpy as np
import pytest

from chamtvm.space.choices import (ChoiceSpace, check_object_list, check_positive_int, check_positive_int_choices,
                                   check_space_header, check_stride, check_total_stride)
from chamtvm.space.errors import SpaceError
from chamtvm.space.schema import SearchSpace

DATA = Path(__file__).resolve().parents[1] / "data"


def test_field_checks_name_the_field_and_the_value():
    assert check_positive_int(3, "x") == 3
    for bad in (0, -1, True, 2.0, "3"):
        with pytest.raises(SpaceError, match=r"^space\.x: expected a positive integer"):
            check_positive_int(bad, "space.x")
    assert check_positive_int_choices([96, 64], "r") == (64, 96)
    with pytest.raises(SpaceError, match="duplicate choices"):
        check_positive_int_choices([64, 64], "r")
    with pytest.raises(SpaceError, match="non-empty list"):
        check_positive_int_choices([], "r")
    with pytest.raises(SpaceError, match=r"unknown fields \['extra'\]"):
        check_space_header({"in_channels": 3, "num_classes": 10, "extra": 1}, {"in_channels", "num_classes"})
    with pytest.raises(SpaceError, match="space.num_classes"):
        check_space_header({"in_channels": 3, "num_classes": 0}, {"in_channels", "num_classes"})
    assert check_stride(2, "s") == 2
    with pytest.raises(SpaceError, match=r"^space\.s: must be 1 or 2, got 3"):
        check_stride(3, "space.s")
    assert check_object_list([{}], "l", "things") == [{}]
    with pytest.raises(SpaceError, match="space.l: expected a non-empty list of things"):
        check_object_list({}, "space.l", "things")
    check_total_stride((32, 64), 32)
    with pytest.raises(SpaceError, match="16 px is smaller than the total stride 32"):
        check_total_stride((16, 64), 32)


@pytest.mark.parametrize("space_file", ["space_tiny3.json", "space_layers_tiny.json"])
def test_both_kinds_share_the_choice_arithmetic(space_file):
    space = SearchSpace.load(DATA / space_file)
    assert isinstance(space, ChoiceSpace)
    assert SearchSpace.load(space) is space  # a loaded space of either kind passes through
    dims = space.dimensions()
    assert space.encoding_length == len(dims)
    assert space.size() == int(np.prod([len(c) for _, c in dims]))
    rng = np.random.default_rng(0)
    a, b = space.sample(rng), space.sample(rng)
    assert space.from_indices(space.indices(a)) == a
    assert space.decode(space.encode(a)) == a
    child = space.crossover(a, b, rng)
    assert all(c in (x, y) for c, x, y in zip(space.indices(child), space.indices(a), space.indices(b)))
    assert space.mutate(a, rng) != a
    with pytest.raises(SpaceError, match=f"expected {len(dims)} choice indices"):
        space.from_indices([0])


@pytest.mark.parametrize("name", ["macro", "fashion"])
def test_the_enumeration_visits_every_architecture_once_in_one_order(name):
    """``iter_indices`` (lazy) and ``all_indices`` (an array) list each architecture of the space
    exactly once, in the same order, the last dimension varying fastest; the lazy one starts
    without materialising the space."""
    import itertools

    space = SearchSpace.load(name)
    first = list(itertools.islice(space.iter_indices(), 3))
    dims = len(space.dimensions())
    assert first[0] == (0,) * dims and first[1] == (0,) * (dims - 1) + (1,)
    if space.size() > 100_000:
        return
    rows = space.all_indices()
    assert rows.shape == (space.size(), dims)
    assert [tuple(r) for r in rows[:3]] == first
    assert len({space.from_indices(r).to_json() for r in rows}) == space.size()
