"""Python hooks into existing TVM flows.

    from chamtvm.api import predict_latency
    pred = predict_latency(mod_or_onnx_path_or_torch_module, "x86", input_shape=(1, 3, 224, 224))
    pred.latency_ms, pred.kernels        # per-kernel breakdown; pred.estimated: priced by the model

Accepts a Relax ``IRModule`` (before or after fusion), an ONNX file, or a torch module; uses
the target's latency table and saved models (``luts/``) and its MetaSchedule database
(``schedules/<target>/`` or ``schedules_dir``, e.g. a database you already have).
"""

from __future__ import annotations

from pathlib import Path

from .latency.models import FullPrediction
from .table.store import LatencyTable
from .lower.network import LoweredNetwork, lower_onnx, lower_relax, lower_torch
from .tuning.schedules import ScheduleSource
from .table.fill import prepare
from .targets.spec import TargetSpec, get_target


def lower_any(model, input_shape=None, layout: str | None = None, fast_math: bool = False) -> LoweredNetwork:
    """Lower a Relax IRModule, an ONNX path, or a torch module (needs ``input_shape``), the
    way a target lowers it (``layout``, ``fast_math``: ``TargetSpec.lowering()``)."""
    import tvm

    if isinstance(model, tvm.IRModule):
        return lower_relax(model, layout=layout, fast_math=fast_math)
    if isinstance(model, (str, Path)):
        return lower_onnx(model, input_shape, layout, fast_math)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        if input_shape is None:
            raise ValueError("a torch module needs input_shape, e.g. (1, 3, 224, 224)")
        return lower_torch(model, input_shape, layout=layout, fast_math=fast_math)
    raise TypeError(f"cannot lower a {type(model).__name__}: pass a tvm.IRModule, an ONNX path or a torch module")


def predict_latency(model, target: str | TargetSpec, input_shape=None, luts_dir=None,
                    schedules_dir=None, residual_space: str | None = None, measure_missing: bool = False,
                    tracker: tuple[str, int] | None = None, key: str | None = None) -> FullPrediction:
    """Predicted latency of ``model`` on ``target`` with its per-kernel breakdown, where each
    kernel's figure came from, and a range.

    The table sum (unseen kernels priced by the kernel model, with an 80 % interval);
    ``residual_space`` also applies the residual learned on that space's networks (for models
    of that family). ``measure_missing`` first measures the kernels the table lacks, locally
    or through the RPC ``tracker`` (``(host, port)``) with device ``key``, and appends them."""
    from .latency.on_demand import predict_prepared
    from .measure.runners import make_runner

    spec = target if isinstance(target, TargetSpec) else get_target(target)
    table = LatencyTable.for_target(spec.name, luts_dir)
    net = lower_any(model, input_shape, **spec.lowering())
    sched = ScheduleSource.for_target(spec, schedules_dir)
    runner = make_runner(spec, tracker, key) if measure_missing else None
    return predict_prepared(prepare(net.kernels, spec, sched), table, spec, runner, space=residual_space)
