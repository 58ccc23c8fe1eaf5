"""``latency.report``: the text of a prediction: figure, range, sources, top kernels, missing."""


def _kernels(n):
    return [{"name": f"fused_conv2d_{i}", "count": 2, "latency_us": 10.0 + i, "source": "table"} for i in range(n)]


def test_table_sum_text_lists_kernels_as_count_times_latency():
    from chamtvm.latency.report import format_prediction

    out = {"latency_ms": 0.0625, "kernels": _kernels(2), "missing": []}
    text = format_prediction("net", "x86", out, table_sum_only=True)
    lines = text.splitlines()
    assert lines[0] == "net: predicted 0.062 ms on x86 (table sum, 2 kernels)"
    assert "fused_conv2d_1" in lines[2] and "x2" in lines[2] and "22.0 us" in lines[2]  # 2 x 11 us
    assert "MISSING" not in text and "more" not in text


def test_full_prediction_text_has_range_sources_intervals_and_missing():
    from chamtvm.latency.report import format_prediction

    kernels = [{"name": "a", "count": 3, "latency_us": 5.0, "source": "estimated",
                "latency_us_low": 4.0, "latency_us_high": 7.0},
               {"name": "b", "count": 1, "latency_us": 2.0, "source": "measured_now"}] + _kernels(12)
    out = {"latency_ms": 1.5, "latency_ms_range": [1.2, 1.9], "table_sum_ms": 1.4, "residual": "scale",
           "kernels": kernels, "calls_by_source": {"table": 24, "measured_now": 1, "estimated": 3},
           "estimated_share": 0.25, "missing_kernels": [{"name": "x"}]}
    text = format_prediction("m", "arm", out, top=3)
    lines = text.splitlines()
    assert lines[0] == ("m: predicted 1.500 ms on arm, range 1.200-1.900 ms (table sum 1.400 ms, residual scale, "
                        "14 kernels)")
    assert lines[1] == "  kernel calls: 24 from the table, 1 measured now, 3 estimated (25 % of the time)"
    assert "estimated, 80 % interval 12.0-21.0 us" in lines[2]  # 3 calls x 4..7 us
    assert lines[3].endswith("measured now")
    assert "... 11 more (--json lists all)" in text  # 14 kernels, 3 shown
    assert "MISSING (1 kernels not in the table" in text


def test_no_range_when_it_is_a_single_point():
    from chamtvm.latency.report import format_prediction

    out = {"latency_ms": 1.0, "latency_ms_range": [1.0, 1.0], "table_sum_ms": 1.0, "residual": "none",
           "kernels": []}
    assert "range" not in format_prediction("m", "x86", out).splitlines()[0]
