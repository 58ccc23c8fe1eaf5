"""The shared MetaSchedule cost model of a target, saved and loaded without running code.

MetaSchedule's ``XGBModel.save``/``load`` write a tar whose ``data.npy`` is a NumPy *object*
array read back with ``allow_pickle=True``: loading one unpickles it, so a schedules folder
copied from someone else could run any code during ``tune``. Here the model is saved as one
``cost_model_xgb.npz`` of plain arrays, read with ``allow_pickle=False``:

* ``booster_json``: the XGBoost booster in XGBoost's own JSON format (uint8 bytes; empty when
  the model was never trained),
* ``group_hashes`` (unicode strings), ``group_sizes`` (candidates per workload group),
  ``rows`` (feature rows per candidate), ``features`` (float32, every candidate's per-store
  feature rows stacked), ``costs`` (float64, one per candidate): the training data XGBModel
  retrains on.

A file that is not such an archive (an object array included: NumPy refuses it unread) is
ignored with a note and the tuning starts cold. TVM's old ``cost_model_xgb.tar`` is never
opened: a note says it is ignored. The file is written atomically (``core.atomic``), under the
database lock of the tuning run that trained it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

COST_MODEL_FILE = "cost_model_xgb.npz"
PICKLED_COST_MODEL_FILE = "cost_model_xgb.tar"  # TVM's own format: never loaded
FORMAT_VERSION = 1


class CostModelFileError(ValueError):
    """A saved cost model that is not the plain-array archive this module writes."""


# XGBoost threads of the cost model. One: the model is small (a few thousand schedules' feature
# rows) and cheap to train on one core, while with one OpenMP thread per core its threads spin at
# every barrier whenever anything else runs on the machine (the builder's or the runner's
# processes, a device server), which stalled trainings by seconds in an informal test-suite
# investigation on a loaded 2-core host (no benchmark measures it).
COST_MODEL_THREADS = 1


def new_cost_model(threads: int = COST_MODEL_THREADS):
    """An untrained MetaSchedule XGBoost cost model (per-store features) training on
    ``threads`` threads."""
    from tvm.s_tir import meta_schedule as ms

    return ms.cost_model.XGBModel(num_tuning_cores=threads, verbose_eval=0)


def cost_model_arrays(model) -> dict:
    """The arrays :func:`save_cost_model` writes (module docstring) of an ``XGBModel``."""
    import numpy as np

    groups = list(model.data.values())
    feats = [np.asarray(f, dtype="float32") for g in groups for f in g.features]
    width = feats[0].shape[1] if feats and feats[0].ndim == 2 else 0
    booster = bytes(model.booster.save_raw(raw_format="json")) if model.booster is not None else b""
    return {
        "format": np.array(FORMAT_VERSION, dtype="int64"),
        "booster_json": np.frombuffer(booster, dtype="uint8"),
        "group_hashes": np.array([str(g.group_hash) for g in groups], dtype=str),
        "group_sizes": np.array([len(g.features) for g in groups], dtype="int64"),
        "rows": np.array([f.shape[0] for f in feats], dtype="int64"),
        "features": np.concatenate(feats).reshape(-1, width) if feats else np.zeros((0, 0), "float32"),
        "costs": np.concatenate([np.asarray(g.costs, dtype="float64") for g in groups]) if groups
        else np.zeros(0, "float64"),
    }


def save_cost_model(model, work_dir: str | Path) -> Path | None:
    """Write ``model`` into ``<work_dir>/cost_model_xgb.npz`` atomically; None (nothing
    written) for a model that has seen no candidate yet."""
    import numpy as np

    from ..core.atomic import atomic_write_bytes

    if not model.data:
        return None
    buf = io.BytesIO()
    np.savez(buf, **cost_model_arrays(model))
    return atomic_write_bytes(Path(work_dir) / COST_MODEL_FILE, buf.getvalue())


def _read_arrays(path: Path) -> dict:
    """The archive's arrays, checked; raises :class:`CostModelFileError` saying why not."""
    import zipfile

    import numpy as np

    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise CostModelFileError("a single array, not an .npz archive")
        with z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # NumPy's refusal of an object (pickled) array lands here too
        raise CostModelFileError(str(e).splitlines()[0] if str(e) else "unreadable") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CostModelFileError(f"not a NumPy .npz archive ({type(e).__name__})") from None
    want = {"format": "i", "booster_json": "u", "group_hashes": "U", "group_sizes": "i", "rows": "i",
            "features": "f", "costs": "f"}
    for name, kind in want.items():
        if name not in arrays:
            raise CostModelFileError(f"no {name!r} array")
        if arrays[name].dtype.kind != kind:
            raise CostModelFileError(f"{name!r} holds {arrays[name].dtype} values")
    if int(arrays["format"]) != FORMAT_VERSION:
        raise CostModelFileError(f"format {int(arrays['format'])}, expected {FORMAT_VERSION}")
    sizes, rows, feats = arrays["group_sizes"], arrays["rows"], arrays["features"]
    if (len(sizes) != len(arrays["group_hashes"]) or int(sizes.sum()) != len(rows) or len(rows) != len(arrays["costs"])
            or (rows < 0).any() or (sizes < 0).any() or feats.ndim != 2 or int(rows.sum()) != feats.shape[0]):
        raise CostModelFileError("its array sizes do not agree")
    return arrays


def load_cost_model(work_dir: str | Path, log: Callable[[str], None] | None = None):
    """The target's cost model, warm from ``<work_dir>/cost_model_xgb.npz`` when one was
    saved there, else cold. Nothing is unpickled; a file that cannot be used is named through
    ``log`` and ignored (so is TVM's pickle-based ``cost_model_xgb.tar``)."""
    import numpy as np

    model = new_cost_model()
    work_dir = Path(work_dir)
    old = work_dir / PICKLED_COST_MODEL_FILE
    if old.exists() and log:
        log(f"note: {old}: a cost model in TVM's pickle-based format is ignored (never unpickled); "
            f"the tuning saves {COST_MODEL_FILE} instead")
    path = work_dir / COST_MODEL_FILE
    if not path.exists():
        return model
    try:
        arrays = _read_arrays(path)
        booster = None
        if arrays["booster_json"].size:
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(arrays["booster_json"].tobytes()))
    except Exception as e:  # CostModelFileError, or XGBoost refusing its JSON: start cold, say why
        if log:
            log(f"note: {path}: saved cost model ignored ({e}); the tuning starts with a cold cost model")
        return model
    from tvm.s_tir.meta_schedule.cost_model.xgb_model import FeatureGroup

    ends = np.cumsum(arrays["rows"])
    per_candidate = np.split(arrays["features"], ends[:-1]) if len(ends) else []
    data, start = {}, 0
    for h, n in zip(arrays["group_hashes"], arrays["group_sizes"]):
        n = int(n)
        if n:
            data[str(h)] = FeatureGroup(group_hash=str(h), features=list(per_candidate[start:start + n]),
                                        costs=arrays["costs"][start:start + n].copy())
        start += n
    model.data.update(data)
    model.data_size = sum(len(g.costs) for g in data.values())
    model.booster = booster
    return model
