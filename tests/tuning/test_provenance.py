"""``tuning.provenance``: a row's schedule tag is default, tuned or transferred, read from the
transfer log (only committed transfers count; a torn last line is skipped)."""

import json


def test_transferred_tags_keeps_committed_transfers_and_skips_a_torn_line(tmp_path):
    from chamtvm.tuning.provenance import TRANSFER_LOG, transferred_tags

    lines = [json.dumps({"tag": "ms-aaa", "source_hash": "h1", "committed": True}),
             json.dumps({"tag": "ms-bbb", "source_hash": "h2", "committed": False}),
             json.dumps({"tag": "ms-ccc", "source_hash": "h3", "committed": True}),
             '{"tag": "ms-ddd", "source_ha']  # an interrupted run's unfinished last line
    (tmp_path / TRANSFER_LOG).write_text("\n".join(lines))
    assert transferred_tags(tmp_path) == {"ms-aaa": "h1", "ms-ccc": "h3"}


def test_no_transfer_log_means_no_transfers(tmp_path):
    from chamtvm.tuning.provenance import transferred_tags

    assert transferred_tags(tmp_path) == {}
    assert transferred_tags(tmp_path / "missing-folder") == {}


def test_provenance_of_tags():
    from chamtvm.tuning.provenance import provenance

    moved = {"ms-aaa": "h1"}
    assert provenance("default", moved) == "default"
    assert provenance("default", {"default": "h"}) == "default"  # default wins
    assert provenance("ms-aaa", moved) == "transferred"
    assert provenance("ms-zzz", moved) == "tuned"
