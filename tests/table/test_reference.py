"""table.reference: the device's nominal reference time, learnt from measurements and kept per target."""

from __future__ import annotations

import pytest

from chamtvm.table.reference import ReferenceBaseline


def test_the_baseline_only_goes_down_and_is_kept_per_fingerprint_and_kind(tmp_path):
    b = ReferenceBaseline(tmp_path, "x86", "fp1")
    assert b.baseline_us("vm") is None
    b.learn("vm", 20.0)
    b.learn("vm", 25.0)  # a slower spell never raises it
    assert b.baseline_us("vm") == 20.0
    b.learn("vm", 14.0)
    assert b.baseline_us("vm") == 14.0 and b.baseline_us("lib") is None
    other = ReferenceBaseline(tmp_path, "x86", "fp2")
    assert other.baseline_us("vm") is None  # another codegen or thread count: learnt apart
    with pytest.raises(ValueError, match="unknown reference kind"):
        b.learn("gpu", 1.0)


def test_rows_are_nominal_by_their_own_verdict_and_against_the_baseline_known_now(tmp_path):
    b = ReferenceBaseline(tmp_path, "x86", "fp")
    b.learn("vm", 10.0)
    assert b.is_nominal({"reference_us": 11.0, "nominal": True}, "vm", 0.15)
    assert not b.is_nominal({"reference_us": 12.0, "nominal": True}, "vm", 0.15)  # slower than nominal now
    assert not b.is_nominal({"reference_us": 10.5, "nominal": False}, "vm", 0.15)
    assert b.is_nominal({"runtime_us_p50": 3.0}, "vm", 0.15)  # rows without reference figures
    assert b.is_nominal({"reference_us": 99.0}, "vm", None)  # no tolerance: not checked


def test_an_unreadable_file_is_relearnt_with_a_note(tmp_path):
    notes = []
    (tmp_path / "x86.reference.json").write_text("{torn")
    b = ReferenceBaseline(tmp_path, "x86", "fp", log=notes.append)
    assert b.baseline_us("vm") is None and "unreadable" in notes[0]
    b.learn("vm", 9.0)
    assert ReferenceBaseline(tmp_path, "x86", "fp").baseline_us("vm") == 9.0


def test_the_slow_factor_is_the_median_of_the_ratios_seen_and_needs_three(tmp_path):
    b = ReferenceBaseline(tmp_path, "x86", "fp")
    b.learn("vm", 10.0)
    for r in (1.2, 1.25):
        b.learn_slow("vm", r)
    assert b.slow_factor("vm") is None  # two ratios are not enough to trust
    b.learn_slow("vm", 1.18)
    b.learn_slow("vm", 0.5)  # faster than nominal is not a slow spell: ignored
    assert b.slow_factor("vm") == 1.2 and b.baseline_us("vm") == 10.0  # learning one keeps the other
