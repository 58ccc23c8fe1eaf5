"""``latency.loading``: a table's predictor with the models saved beside it: both used when
they match the table (or rows were only appended since), a residual only for its own space, and
a model whose rows changed left out with a note (never a traceback)."""

import numpy as np

from chamtvm.latency.features import NETWORK_FEATURES
from chamtvm.latency.loading import load_predictor
from chamtvm.latency.models import KernelCostModel, ResidualModel, model_paths
from chamtvm.table.store import LatencyTable, ok_row


def _rows(n, start=0):
    rows = []
    for i in range(start, start + n):
        c = 8 * (i + 1)
        rows.append(ok_row(f"fp/default/{i}", {"name": "fused_conv2d_add", "args": [[[1, c, 14, 14], "float32"]],
                                               "flops": 1000.0 * c, "bytes": 4.0 * c * 196}, [5.0 + i], 1))
    return rows


def _saved(tmp_path):
    table = LatencyTable(tmp_path / "x86.jsonl")
    table.append(_rows(10))
    kpath, rpath = model_paths(table, "tiny")
    KernelCostModel(n_estimators=10).fit(list(table.rows())).save(kpath, table)
    X = np.random.default_rng(0).uniform(size=(4, len(NETWORK_FEATURES)))
    ResidualModel("ratio", n_estimators=5).fit(X, np.full(4, 10.0), np.array([11.0, 12, 13, 14])).save(
        rpath, table, ["a", "b", "c", "d"])
    return table


def test_no_saved_models_gives_the_plain_table(tmp_path):
    table = LatencyTable(tmp_path / "x86.jsonl")
    table.append(_rows(3))
    notes = []
    pred = load_predictor(table, log=notes.append, space="tiny")
    assert pred.kernel_model is None and pred.residual is None and notes == []
    assert pred.table is table


def test_saved_models_load_and_a_residual_only_for_its_space(tmp_path):
    table = _saved(tmp_path)
    pred = load_predictor(table, space="tiny")
    assert pred.kernel_model is not None and pred.kernel_model.n_rows_ == 10
    assert pred.residual is not None and pred.residual.mode == "ratio"
    other = load_predictor(table, space="fashion")
    assert other.kernel_model is not None and other.residual is None  # learned on another family
    assert load_predictor(table).residual is None


def test_models_stay_in_use_when_rows_were_only_appended(tmp_path):
    """What ``predict --measure-missing`` does (append the kernels it measured) keeps the saved
    models: they were fitted on rows that are unchanged; a note says they have not seen the new ones."""
    table = _saved(tmp_path)
    table.append(_rows(2, start=10))  # kernels measured since the models were fitted
    notes = []
    pred = load_predictor(table, log=notes.append, space="tiny")
    assert pred.kernel_model is not None and pred.residual is not None
    assert pred.kernel_model.rows_added_ == 2 and pred.residual.rows_added_ == 2
    assert len(notes) == 2 and all("fitted before 2 row(s) were appended" in n and "used as fitted" in n
                                   for n in notes)
    fresh = _saved(tmp_path / "b")
    assert load_predictor(fresh).kernel_model.rows_added_ == 0


def test_models_of_a_table_whose_rows_changed_are_left_out_with_a_note(tmp_path):
    table = _saved(tmp_path)
    table.append([ok_row("fp/default/3", {"name": "fused_conv2d_add", "args": [[[1, 32, 14, 14], "float32"]],
                                          "flops": 32000.0, "bytes": 4.0 * 32 * 196}, [99.0], 1)])  # re-measured
    notes = []
    pred = load_predictor(table, log=notes.append, space="tiny")
    assert pred.kernel_model is None and pred.residual is None
    assert len(notes) == 2 and all(n.startswith("note: ") and n.endswith("; not used") for n in notes)
    assert any("kernel_model.json" in n for n in notes) and any("tiny.residual.json" in n for n in notes)
    assert load_predictor(table, space="tiny").kernel_model is None  # and silently without a log
