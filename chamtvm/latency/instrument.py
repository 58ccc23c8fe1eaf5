"""chamtvm inside a user's own TVM build: a ``PassInstrument`` and a module pass that price
the module being compiled on a target from its latency table (and kernel model).

One line in an existing deployment script::

    from chamtvm.latency.instrument import LatencyInstrument
    inst = LatencyInstrument("arm")
    with tvm.transform.PassContext(opt_level=3, instruments=[inst]):   # the added line
        ex = tvm.compile(mod, target)
    inst.report.latency_ms, inst.report.to_dict()["kernels"]            # per-kernel breakdown

``LatencyInstrument`` prices the Relax module as it enters the pipeline (a copy, lowered
with chamtvm's fusion, the pipeline the table was measured with) and never changes what the
user's pipeline builds. ``PriceModule(target)`` is a module pass for a pipeline that already
has fused PrimFuncs (after ``FuseTIR``): it returns the module with each PrimFunc annotated
(``chamtvm.latency_us``, ``chamtvm.source``) and the network figure as the module attribute
``chamtvm.latency_ms``.
"""

from __future__ import annotations

from ..targets.spec import TargetSpec, get_target


def _spec(target) -> TargetSpec:
    return target if isinstance(target, TargetSpec) else get_target(target)


def _predictor(spec: TargetSpec, luts_dir=None):
    from ..table.store import LatencyTable
    from .loading import load_predictor

    return load_predictor(LatencyTable.for_target(spec.name, luts_dir))


def _schedules(spec: TargetSpec, schedules_dir=None):
    from ..tuning.schedules import ScheduleSource

    return ScheduleSource.for_target(spec, schedules_dir)


def price_fused_module(fused_mod, target, luts_dir=None, schedules_dir=None):
    """``FullPrediction`` of a module whose kernels are PrimFuncs called from Relax."""
    from ..lower.kernels import extract_kernels
    from ..table.fill import prepare

    spec = _spec(target)
    prepared = prepare(extract_kernels(fused_mod), spec, _schedules(spec, schedules_dir))
    return _predictor(spec, luts_dir).predict(prepared)


def _has_relax_ops(mod) -> bool:
    """True while the module still has Relax operators that are not PrimFunc calls."""
    from tvm import relax

    found = []

    def visit(e):
        if isinstance(e, relax.Call) and hasattr(e.op, "name") and e.op.name.startswith("relax.") \
                and e.op.name not in ("relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed"):
            found.append(e.op.name)

    for _, f in mod.functions.items():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f.body, visit)
            if found:
                return True
    return False


def _make_instrument_class():
    import tvm

    @tvm.instrument.pass_instrument
    class LatencyInstrument:
        """Prices the Relax module entering the user's pipeline; the result is ``report``
        (a ``FullPrediction``: latency, range, per-kernel breakdown with sources), or
        ``error`` (a message) when the module could not be priced. The build itself is never
        changed or stopped by it."""

        def __init__(self, target, luts_dir=None, schedules_dir=None):
            self.spec = _spec(target)
            self.luts_dir, self.schedules_dir = luts_dir, schedules_dir
            self.report = None
            self.error = None
            self._busy = False

        def run_before_pass(self, mod, info):
            if self._busy or self.report is not None or self.error is not None:
                return
            if not _has_relax_ops(mod):
                return
            self._busy = True  # chamtvm's own fusion passes run under this context too
            try:
                from ..lower.network import lower_relax

                net = lower_relax(mod, name=str(info.name))
                self.report = price_fused_module(net.fused, self.spec, self.luts_dir, self.schedules_dir)
            except Exception as e:  # pricing must never break the user's build
                self.error = f"{type(e).__name__}: {e}"
            finally:
                self._busy = False

    return LatencyInstrument


def LatencyInstrument(target, luts_dir=None, schedules_dir=None):  # noqa: N802 - reads as a class
    """A ``tvm.instrument.PassInstrument`` pricing the module on ``target`` (see module doc)."""
    return _make_instrument_class()(target, luts_dir, schedules_dir)


def PriceModule(target, luts_dir=None, schedules_dir=None):  # noqa: N802 - a TVM pass, named like one
    """Module pass: annotate each PrimFunc of a fused module with its latency on ``target``
    (``chamtvm.latency_us`` per call, ``chamtvm.source`` table/estimated/missing, and
    ``chamtvm.calls``) and the module with ``chamtvm.latency_ms``; the IR is otherwise unchanged."""
    import tvm
    from tvm import tirx

    from ..lower.kernels import kernel_hash

    spec = _spec(target)

    @tvm.transform.module_pass(opt_level=0, name="chamtvm.PriceModule")
    def price(mod, ctx):
        pred = price_fused_module(mod, spec, luts_dir, schedules_dir)
        by_hash = {k["key"].rsplit("/", 1)[-1]: k for k in pred.kernels}
        missing = set(pred.missing)
        out = mod.clone()
        for gv, f in mod.functions.items():
            if isinstance(f, tirx.PrimFunc):
                k = by_hash.get(kernel_hash(f))
                if k is not None:
                    f = f.with_attr("chamtvm.latency_us", tvm.tirx.FloatImm("float64", float(k["latency_us"])))
                    f = f.with_attr("chamtvm.source", "estimated" if k["estimated"] else "table")
                    f = f.with_attr("chamtvm.calls", int(k["count"]))
                elif gv.name_hint in missing:
                    f = f.with_attr("chamtvm.source", "missing")
            out.update_func(gv, f)
        return out.with_attr("chamtvm.latency_ms", tvm.tirx.FloatImm("float64", float(pred.latency_ms)))

    return price
