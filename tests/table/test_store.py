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


def test_unfinished_last_line_is_never_data_and_is_set_aside_before_next_append(tmp_path):
    path = tmp_path / "x.jsonl"
    t = LatencyTable(path)
    t.append([_row(1)])
    torn = json.dumps(_row(2))[:40].encode()
    with open(path, "ab") as f:  # a writer killed mid-line
        f.write(torn)
    t2 = LatencyTable(path).load()
    assert len(t2) == 1 and t2.read_report.truncated_tail
    t2.append([_row(3)])
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert LatencyTable(path).load().get("fp/default/3") is not None
    sides = list(tmp_path.glob("x.jsonl.torn-*"))
    assert len(sides) == 1 and sides[0].read_bytes() == torn  # kept aside, not dropped


def test_finished_last_row_lacking_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "x.jsonl"
    LatencyTable(path).append([_row(1), _row(2)])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # crash between the row and its newline
    t = LatencyTable(path).load()
    assert "fp/default/2" in t and t.read_report.unterminated_row and not t.read_report.truncated_tail
    t.append([_row(3)])
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == [f"fp/default/{i}" for i in (1, 2, 3)]
    assert len(LatencyTable(path).load()) == 3 and len(t) == 3
    assert not list(tmp_path.glob("x.jsonl.torn-*"))


def test_unterminated_row_with_bad_checksum_is_not_data(tmp_path):
    path = tmp_path / "x.jsonl"
    LatencyTable(path).append([_row(1)])
    bad = json.dumps({**_row(2), "crc": "000000000000"}).encode()
    with open(path, "ab") as f:
        f.write(bad)
    t = LatencyTable(path).load()
    assert "fp/default/2" not in t and t.read_report.truncated_tail
    t.append([_row(3)])
    assert list(tmp_path.glob("x.jsonl.torn-*"))[0].read_bytes() == bad


def test_ok_row_without_runtime_is_a_clear_error(tmp_path):
    from chamtvm.table.store import row_checksum

    path = tmp_path / "x.jsonl"
    LatencyTable(path).append([_row(1)])
    row = {**_row(2), "measured_at": "2026-01-01T00:00:00Z"}
    del row["runtime_us_p50"]
    row["crc"] = row_checksum(row)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(TableError, match=r"x.jsonl:2: .*lacks a valid runtime_us_p50"):
        LatencyTable(path).load()


def test_a_directory_is_a_clear_error(tmp_path):
    (tmp_path / "x.jsonl").mkdir()
    with pytest.raises(TableError, match="is a directory"):
        LatencyTable(tmp_path / "x.jsonl").load()


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
