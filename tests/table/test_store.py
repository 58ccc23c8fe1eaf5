"""Latency table: append-only rows with checksums, unfinished tails, corruption, resume."""

import json

import pytest

from chamtvm.table.store import LatencyTable, TableError, failed_row, ok_row


def _row(i):
    return ok_row(f"fp/default/{i}", {"struct_hash": str(i), "name": f"k{i}"}, [10.0 + i, 11.0 + i, 12.0 + i], 1)


def test_rows_have_distribution_and_survive_reload(tmp_path):
    t = LatencyTable(tmp_path / "x.jsonl")
    t.append([_row(1), _row(2)])
    t2 = LatencyTable(tmp_path / "x.jsonl").load()
    assert len(t2) == 2
    r = t2.get("fp/default/1")
    assert r["runtime_us_p50"] == 12.0 and r["runtime_us_min"] == 11.0 and r["runtime_us_max"] == 13.0
    assert r["runtime_us_samples"] == [11.0, 12.0, 13.0] and r["repeat"] == 3
    assert r["measured_at"].endswith("Z")


def test_unfinished_last_line_is_never_data_and_is_cut_before_next_append(tmp_path):
    path = tmp_path / "x.jsonl"
    t = LatencyTable(path)
    t.append([_row(1)])
    with open(path, "ab") as f:  # a writer killed mid-line
        f.write(json.dumps(_row(2))[:40].encode())
    t2 = LatencyTable(path).load()
    assert len(t2) == 1 and t2.read_report.truncated_tail
    t2.append([_row(3)])
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert LatencyTable(path).load().get("fp/default/3") is not None


def test_corrupt_complete_line_gives_clear_error(tmp_path):
    path = tmp_path / "x.jsonl"
    LatencyTable(path).append([_row(1), _row(2)])
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"runtime_us_p50": 13.0', '"runtime_us_p50": 1.0')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match=r"x.jsonl:2: corrupt latency-table row \(checksum mismatch"):
        LatencyTable(path).load()
    path.write_text(lines[0] + "\n{garbage\n")
    with pytest.raises(TableError, match=r"x.jsonl:2: corrupt latency-table row \(not JSON"):
        LatencyTable(path).load()


def test_failed_rows_are_kept_apart_and_a_later_success_wins(tmp_path):
    t = LatencyTable(tmp_path / "x.jsonl")
    t.append([failed_row("fp/default/9", {"name": "k9"}, "boom")])
    assert "fp/default/9" not in t and t.failed("fp/default/9")["error"] == "boom"
    t.append([ok_row("fp/default/9", {"name": "k9"}, [5.0], 1)])
    assert t.get("fp/default/9")["runtime_us_p50"] == 5.0 and t.failed("fp/default/9") is None
