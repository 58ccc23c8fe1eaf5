"""A table's latency predictor with the models saved beside it (stale or missing ones left
out, said through ``log``).

A model fitted before rows were appended to its table (``predict --measure-missing``
appends the kernels it measures) stays in use: the rows it was fitted on are unchanged, so
it is what it was; a note says how many rows it has not seen. A model whose rows changed
(re-measured kernels, another table) is stale and left out."""

from __future__ import annotations

from pathlib import Path


def load_predictor(table, log=None, space: str | None = None):
    """The table's latency predictor with its saved models (the residual of ``space``'s
    networks when given); stale or missing ones are left out (and said so through ``log``)."""
    from .models import KernelCostModel, LatencyPredictor, ResidualModel, StaleModelError, model_paths

    kernel_path, residual_path = model_paths(table, space)
    models = {}
    for name, cls, path in (("kernel model", KernelCostModel, kernel_path), ("residual", ResidualModel, residual_path)):
        if Path(str(path) + ".meta.json").exists():
            try:
                models[name] = cls.load(path, table)
            except StaleModelError as e:
                if log:
                    log(f"note: {e}; not used")
                continue
            added = getattr(models[name], "rows_added_", 0)
            if added and log:
                log(f"note: the {name} {path} was fitted before {added} row(s) were appended to {table.path} "
                    f"(e.g. by --measure-missing); used as fitted (rerun tune to refit it on them)")
    return LatencyPredictor(table, models.get("kernel model"), models.get("residual"))
