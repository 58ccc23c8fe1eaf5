"""``tuning.cost_model``: the shared XGBoost cost model round-trips through plain arrays and
XGBoost's JSON; nothing in a schedules folder is ever unpickled (a payload planted in TVM's
tar format or in the archive itself never runs)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest


def _trained_model(rng):
    """An XGBModel holding two workload groups of per-store features and a booster trained
    on them (xgboost itself, as XGBModel._train would)."""
    import xgboost as xgb
    from tvm.s_tir.meta_schedule.cost_model.xgb_model import FeatureGroup

    from chamtvm.tuning.cost_model import new_cost_model

    model = new_cost_model(1)
    for h, n in (("g0", 3), ("g1", 2)):
        feats = [rng.standard_normal((int(rng.integers(1, 4)), 6)).astype("float32") for _ in range(n)]
        model.data[h] = FeatureGroup(group_hash=h, features=feats, costs=rng.uniform(1, 2, n))
    x = np.concatenate([f.sum(0, keepdims=True) for g in model.data.values() for f in g.features])
    y = np.concatenate([g.costs for g in model.data.values()])
    model.booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, y), num_boost_round=3)
    model.data_size = len(y)
    return model, xgb.DMatrix(x)


def test_cost_model_round_trips_through_plain_arrays(tmp_path):
    from chamtvm.tuning.cost_model import COST_MODEL_FILE, load_cost_model, save_cost_model

    model, probe = _trained_model(np.random.default_rng(0))
    path = save_cost_model(model, tmp_path)
    assert path == tmp_path / COST_MODEL_FILE and not list(tmp_path.glob("*.tmp*"))
    with np.load(path, allow_pickle=False) as z:  # every array readable without pickle
        assert all(z[k].dtype != object for k in z.files)
    notes = []
    back = load_cost_model(tmp_path, log=notes.append)
    assert notes == [] and back.data_size == model.data_size == 5
    assert list(back.data) == list(model.data)
    for h, g in model.data.items():
        np.testing.assert_array_equal(back.data[h].costs, g.costs)
        assert [f.shape for f in back.data[h].features] == [f.shape for f in g.features]
        for a, b in zip(back.data[h].features, g.features):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(back.booster.predict(probe), model.booster.predict(probe))
    assert save_cost_model(load_cost_model(tmp_path / "none"), tmp_path / "none") is None  # untrained: nothing


def test_tvms_pickled_cost_model_is_never_opened(tmp_path, pickled_cost_model_tar):
    from chamtvm.tuning.cost_model import PICKLED_COST_MODEL_FILE, load_cost_model, new_cost_model

    # the payload is real: TVM's own loader runs it
    marker = pickled_cost_model_tar(tmp_path / "theirs" / PICKLED_COST_MODEL_FILE, tmp_path / "ran-in-tvm")
    with pytest.raises(Exception):  # after unpickling, the planted tuple is no feature group
        new_cost_model(1).load(str(tmp_path / "theirs" / PICKLED_COST_MODEL_FILE))
    assert marker.exists()

    marker = pickled_cost_model_tar(tmp_path / "ours" / PICKLED_COST_MODEL_FILE, tmp_path / "ran-here")
    notes = []
    model = load_cost_model(tmp_path / "ours", log=notes.append)
    assert not marker.exists() and model.data_size == 0 and model.booster is None
    assert len(notes) == 1 and "pickle-based format is ignored (never unpickled)" in notes[0]


def test_an_object_array_in_the_archive_is_refused_unread(tmp_path):
    from chamtvm.tuning.cost_model import COST_MODEL_FILE, cost_model_arrays, load_cost_model

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    model, _ = _trained_model(np.random.default_rng(1))
    arrays = cost_model_arrays(model)
    bad = np.empty(1, dtype=object)
    bad[0] = Payload()
    arrays["features"] = bad
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # np.savez pickles the object array
    (tmp_path / COST_MODEL_FILE).write_bytes(buf.getvalue())
    notes = []
    cold = load_cost_model(tmp_path, log=notes.append)
    assert not (tmp_path / "ran").exists() and cold.data_size == 0 and cold.booster is None
    assert len(notes) == 1 and f"{tmp_path / COST_MODEL_FILE}: saved cost model ignored" in notes[0]
    assert "allow_pickle" in notes[0]


@pytest.mark.parametrize("damage", ["not a zip", "missing array", "sizes disagree", "bad booster", "npy"])
def test_a_damaged_cost_model_is_ignored_with_a_note(tmp_path, damage):
    from chamtvm.tuning.cost_model import COST_MODEL_FILE, cost_model_arrays, load_cost_model

    arrays = cost_model_arrays(_trained_model(np.random.default_rng(2))[0])
    path = tmp_path / COST_MODEL_FILE
    if damage == "not a zip":
        path.write_bytes(b"PK\x03\x04 torn")
    elif damage == "npy":
        np.save(open(path, "wb"), np.zeros(3))
    else:
        if damage == "missing array":
            del arrays["costs"]
        elif damage == "sizes disagree":
            arrays["rows"] = arrays["rows"][:-1]
        else:
            arrays["booster_json"] = np.frombuffer(b"{not json", dtype="uint8")
        with zipfile.ZipFile(path, "w") as z:
            for k, v in arrays.items():
                buf = io.BytesIO()
                np.save(buf, v)
                z.writestr(f"{k}.npy", buf.getvalue())
    notes = []
    model = load_cost_model(tmp_path, log=notes.append)
    assert model.data_size == 0 and len(notes) == 1 and "saved cost model ignored" in notes[0], notes
