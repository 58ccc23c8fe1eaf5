"""One network priced by the latency predictor and measured end to end on the target: the one
place where "predicted, measured, error %" is computed (held-out networks, training
networks, the picks of a search, the contenders of the regret, the ``search`` command and
the benchmarks all call ``price_and_measure``, or ``price_and_measure_all`` for a batch of
networks, which a target that times networks in rounds times round-robin).

Measurements go through the target's network journal (``table.networks.ensure_measured_all``:
a build already measured is never measured again); the error is
``core.metrics.error_pct`` (predicted / measured - 1, in percent).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.metrics import error_pct, spread_pct
from ..latency.models import FullPrediction, LatencyPredictor
from ..latency.table_sum import table_sum
from ..table.networks import NetworkToMeasure, ensure_measured_all


@dataclass
class PricedNetwork:
    """A network's prediction and its end-to-end measurement row (``row``: the journal row,
    status ok or failed; None when never measured). Latencies in ms."""

    name: str
    prepared: list          # the network's PreparedKernel list (schedules included)
    prediction: FullPrediction
    table_sum_ms: float     # the plain table sum (with the job's table statistic)
    row: dict | None

    @property
    def ok(self) -> bool:
        return self.row is not None and self.row.get("status") == "ok"

    @property
    def predicted_ms(self) -> float:
        return self.prediction.latency_ms

    @property
    def measured_ms(self) -> float | None:
        return self.row["runtime_us_p50"] / 1e3 if self.ok else None

    @property
    def spread_pct(self) -> float | None:
        """Repeat spread of the measurement (IQR/median, %), None when not measured."""
        return spread_pct(self.row) if self.ok else None

    @property
    def error_pct(self) -> float | None:
        """Prediction error against the measurement (%), None when not measured."""
        return error_pct(self.predicted_ms, self.measured_ms) if self.ok else None

    @property
    def measure_error(self) -> str | None:
        """Why the measurement failed, None when it succeeded."""
        return None if self.ok else (self.row or {}).get("error", "not measured")


def price_network(net, prepared, predictor: LatencyPredictor, statistic: str = "runtime_us_p50"
                  ) -> tuple[FullPrediction, float]:
    """``(prediction, table_sum_ms)`` of a lowered network's prepared kernels: the predictor's
    figure and the plain table sum (kernels priced by the table's ``statistic``)."""
    prediction = predictor.predict(prepared)
    if statistic == "runtime_us_p50":
        return prediction, prediction.table_sum_ms
    return prediction, table_sum(prepared, predictor.table, statistic).latency_ms


def price_and_measure(net, prepared, predictor: LatencyPredictor, target, runner, schedules, nets_table,
                      identity: dict, statistic: str = "runtime_us_p50") -> PricedNetwork:
    """Price ``net`` (a ``LoweredNetwork`` and its ``prepared`` kernels) with ``predictor`` and
    measure it end to end on ``target`` through ``runner`` unless ``nets_table`` (the
    network journal) has it; ``identity`` (e.g. ``{"arch": ..., "space": ...}``) names the
    network in the journal."""
    return price_and_measure_all([(net, prepared, identity)], predictor, target, runner, schedules, nets_table,
                                 statistic)[0]


def price_and_measure_all(nets: list[tuple], predictor: LatencyPredictor, target, runner, schedules, nets_table,
                          statistic: str = "runtime_us_p50", on_done=None, builds=None) -> list[PricedNetwork]:
    """``price_and_measure`` of a batch: ``nets`` holds ``(net, prepared, identity)`` tuples, or
    ``(net, prepared, identity, schedules)`` for a network built with schedules other than
    ``schedules`` (e.g. a snapshot of before a tuning, ``ScheduleSource.frozen``); the
    measurements are one ``table.networks.ensure_measured_all`` (round-robin where the target
    times networks in rounds). ``on_done(index)`` as each network's row is final. ``builds``: an
    open ``measure.network.NetworkBuilds`` to compile in and keep the libraries for a later use."""
    priced = [(net, prepared, identity, rest[0] if rest else None, *price_network(net, prepared, predictor, statistic))
              for net, prepared, identity, *rest in nets]
    rows = ensure_measured_all([NetworkToMeasure(net, prepared, identity, sum_ms * 1e3, own)
                                for net, prepared, identity, own, _p, sum_ms in priced],
                               target, runner, schedules, nets_table,
                               on_done=None if on_done is None else (lambda i, _row: on_done(i)), builds=builds)
    return [PricedNetwork(net.name, prepared, prediction, sum_ms, row)
            for (net, prepared, _identity, _own, prediction, sum_ms), row in zip(priced, rows)]
