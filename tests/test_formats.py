"""Frozen fixtures of every on-disk format (tests/data/formats/v1, written by the code of
2026-12-01): tables, the network journal, saved latency models, the MetaSchedule database
with its tuning log, the accuracy journal and the saved GP. Files of that version must still
load; a change that breaks one needs a migration (with a message), not a silent break."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

V1 = Path(__file__).resolve().parent / "data" / "formats" / "v1"


@pytest.fixture()
def v1(tmp_path, monkeypatch):
    """A working folder holding the v1 files (the kernel model unpacked)."""
    work = tmp_path / "work"
    shutil.copytree(V1, work)
    gz = work / "luts" / "x86.kernel_model.json.gz"
    (work / "luts" / "x86.kernel_model.json").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    monkeypatch.chdir(work)
    monkeypatch.setenv("CHAMTVM_HOME", str(work))
    return work


def test_v1_kernel_table_loads_with_its_distribution_fields(v1):
    from chamtvm.table.store import LatencyTable, row_checksum

    table = LatencyTable.for_target("x86", v1 / "luts")
    rows = list(table.rows())
    assert len(rows) == 38
    for row in rows:
        assert row["status"] == "ok"
        assert row["key"].count("/") == 2  # <target fingerprint>/<schedule>/<structural hash>
        assert row["runtime_us_min"] <= row["runtime_us_p50"] <= row["runtime_us_max"]
        assert len(row["runtime_us_samples"]) >= 3
        assert row["crc"] == row_checksum(row)
    assert any(r["key"].split("/")[1].startswith("ms-") for r in rows), "a tuned kernel row"


def test_v1_network_journal_loads(v1):
    from chamtvm.table.networks import network_table
    from chamtvm.targets.spec import get_target

    nets = network_table(get_target("x86"), v1 / "luts")
    rows = list(nets.rows())
    assert len(rows) == 5
    assert all(r["table_sum_us"] > 0 and r["runtime_us_p50"] > 0 and r["kernel_keys"] for r in rows)


def test_v1_saved_latency_models_load_or_are_reported_stale(v1):
    """v1 residuals load; a v1 kernel model (trained on the kernel features of v1, before the
    real-network features) is reported stale with a message and left out, never a traceback,
    and refitting it over the same table works."""
    from chamtvm.latency.loading import load_predictor
    from chamtvm.latency.models import KernelCostModel, StaleModelError
    from chamtvm.table.store import LatencyTable

    table = LatencyTable.for_target("x86", v1 / "luts")
    notes = []
    pred = load_predictor(table, log=notes.append, space="tiny3")
    assert pred.residual is not None and pred.residual.mode == "scale"
    kpath = v1 / "luts" / "x86.kernel_model.json"
    try:
        model = KernelCostModel.load(kpath, table)
    except StaleModelError as e:
        assert "refit it" in str(e) and pred.kernel_model is None
        assert len(notes) == 1 and "x86.kernel_model.json" in notes[0]
        model = KernelCostModel().fit(list(table.rows()))
        model.save(kpath, table)
        assert KernelCostModel.load(kpath, table).n_rows_ == 38
    else:
        assert notes == [] and pred.kernel_model is not None
    rows = list(table.rows())
    us = model.predict_us(rows)
    measured = np.array([r["runtime_us_p50"] for r in rows])
    assert us.shape == (38,) and np.all(us > 0)
    assert np.median(np.abs(np.log(us / measured))) < np.log(1.5)  # it was fitted on these rows


def test_v1_schedule_database_and_tuning_log_load(v1):
    from chamtvm.targets.spec import get_target
    from chamtvm.tuning.database import tuned_hashes
    from chamtvm.tuning.schedules import ScheduleSource

    x86 = get_target("x86")
    db = v1 / "schedules" / "x86"
    assert tuned_hashes(x86, db) == {"9252908509150213743"}
    sched = ScheduleSource(x86, db)
    assert sched.work_dir == db


def test_v1_accuracy_journal_and_saved_gp_load(v1):
    from chamtvm.accuracy.fit import fit_from_journal
    from chamtvm.accuracy.journal import Journal
    from chamtvm.accuracy.predictor import GPPredictor
    from chamtvm.space.schema import SearchSpace

    journal = v1 / "runs" / "accuracy-digits-tinygray.jsonl"
    records = Journal(journal).records()
    assert len(records) == 4 and all(0 < r["accuracy"] <= 1 for r in records)
    space = SearchSpace.load(v1 / "space_tiny_gray.json")
    gp, n, protocol = fit_from_journal(space, journal)
    assert n == 4 and protocol["task"] == "digits"
    saved = GPPredictor.load(v1 / "runs" / "accuracy-digits-tinygray.predictor.json")
    from chamtvm.accuracy.encoding import accuracy_features

    idx = np.array([[0] * len(space.dimensions())])
    assert np.isfinite(saved.predict(accuracy_features(space, idx))).all()
