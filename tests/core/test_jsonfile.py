"""One JSON reader for user files: each way a file can be unusable is a clear error."""

import pytest

from chamtvm.core.jsonfile import read_json


class BadInput(ValueError):
    pass


def test_read_json_and_its_errors(tmp_path):
    good = tmp_path / "a.json"
    good.write_text('{"x": 1}')
    assert read_json(good, "space file", BadInput) == {"x": 1}
    (tmp_path / "b.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "c.json").write_text("{nope")
    cases = [(tmp_path / "b.json", "is not UTF-8 text"), (tmp_path / "c.json", "is not valid JSON"),
             (tmp_path / "missing.json", "cannot be read"), (tmp_path, "cannot be read")]
    for path, msg in cases:
        with pytest.raises(BadInput, match=msg) as e:
            read_json(path, "space file", BadInput)
        assert str(e.value).startswith(f"space file {path}")
