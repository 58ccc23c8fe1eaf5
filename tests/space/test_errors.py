"""``space.errors``: the one error type of the space package is a ValueError, raised with
a message naming what and where (here by loading a damaged space)."""

import json

import pytest


def test_space_error_is_a_value_error_raised_for_a_bad_space(tmp_path):
    from chamtvm.space.errors import SpaceError
    from chamtvm.space.schema import SearchSpace
    from chamtvm.space import schema

    assert issubclass(SpaceError, ValueError)
    assert schema.SpaceError is SpaceError  # the same type, whichever module raises it
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"name": "x"}))
    with pytest.raises(SpaceError) as info:
        SearchSpace.load(bad)
    assert "in_channels" in str(info.value)  # names the field at fault
