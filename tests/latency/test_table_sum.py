"""``latency.table_sum``: the sum of count x latency over the kernels found in the table, in
ms, with the chosen statistic; kernels the table lacks (never measured, or failed) listed
with why and counted as nothing."""

import pytest

from chamtvm.latency.table_sum import table_sum
from chamtvm.lower.kernels import ArgSpec, Kernel
from chamtvm.table.fill import PreparedKernel
from chamtvm.table.store import LatencyTable, failed_row, ok_row


def _prepared(key, count, name=None):
    k = Kernel(name or f"k_{key}", key, (ArgSpec((1, 8), "float32"),), flops=10.0, count=count)
    return PreparedKernel(f"fp/default/{key}", "default", k, func=None)


@pytest.fixture()
def table(tmp_path):
    t = LatencyTable(tmp_path / "x86.jsonl")
    t.append([ok_row("fp/default/a", {"name": "a"}, [10.0, 12.0, 20.0], 1),   # p50 12, min 10, mean 14
              ok_row("fp/default/b", {"name": "b"}, [2.0, 3.0, 4.0], 1),      # p50 3, min 2, mean 3
              failed_row("fp/default/c", {"name": "c"}, "compile failed: boom")])
    return t


def test_sum_of_count_times_latency(table):
    prepared = [_prepared("a", 2), _prepared("b", 5)]
    p = table_sum(prepared, table)
    assert p.latency_ms == pytest.approx((2 * 12.0 + 5 * 3.0) / 1e3)
    assert p.complete and p.statistic == "runtime_us_p50"
    assert [k["name"] for k in p.kernels] == ["k_a", "k_b"]  # largest total first
    assert p.kernels[0]["total_us"] == 24.0 and p.kernels[1]["latency_us"] == 3.0
    assert table_sum(prepared, table, "runtime_us_min").latency_ms == pytest.approx((2 * 10 + 5 * 2) / 1e3)
    assert table_sum(prepared, table, "runtime_us_mean").latency_ms == pytest.approx((2 * 14 + 5 * 3) / 1e3)
    assert table_sum([_prepared("b", 20), _prepared("a", 1)], table).kernels[0]["name"] == "k_b"  # 60 > 12


def test_missing_and_failed_kernels_are_listed_not_counted(table):
    p = table_sum([_prepared("a", 1), _prepared("c", 3), _prepared("zz", 1)], table)
    assert p.latency_ms == pytest.approx(0.012) and not p.complete
    why = {m["name"]: m["why"] for m in p.missing}
    assert why == {"k_c": "failed: compile failed: boom", "k_zz": "not in table"}
    d = p.to_dict()
    assert d["complete"] is False and d["latency_ms"] == p.latency_ms and len(d["missing"]) == 2


def test_unknown_statistic_is_refused(table):
    with pytest.raises(ValueError, match=r"unknown statistic 'runtime_us_p90'; choose one of"):
        table_sum([_prepared("a", 1)], table, "runtime_us_p90")


def test_empty_network_is_zero(table):
    p = table_sum([], table)
    assert p.latency_ms == 0.0 and p.complete and p.kernels == []
