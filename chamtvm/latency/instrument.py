"""chamtvm inside a user's own TVM build: a ``PassInstrument`` and a module pass that price
the module being compiled on a target from its latency table (and kernel model).

One line in an existing deployment script::

    from chamtvm.latency.instrument import LatencyInstrument
    inst = LatencyInstrument("arm")
    with tvm.transform.PassContext(opt_level=3, instruments=[inst]):   # the added line
        ex = tvm.compile(mod, target)
    inst.report.latency_ms, inst.report.to_dict()["kernels"]            # per-kernel breakdown
    inst.schedules, inst.warnings                                       # what the build applied

``LatencyInstrument`` prices **the module the user's pipeline produces**: it watches the
passes go by and takes the module just before ``CallTIRRewrite`` (the pass every Relax
pipeline runs once the kernels are final: after the user's legalization, fusion or none,
and the schedules the user applied), so a plain ``tvm.compile`` (no fusion: convolution,
batch norm and clip each a kernel) and ``relax.get_default_pipeline`` (fused kernels) are
priced each as built. Each kernel is priced with the schedule it carries in that build:
default (no schedule), a schedule of the target's database (recognised by applying the
database to the same kernel taken before scheduling), or a schedule of the user's own (priced
as it is: measured with ``measure_missing``, else estimated). ``schedules`` counts them and
``warnings`` says when the build runs default schedules for kernels the database has tuned
(or carries schedules chamtvm does not know). It never changes or stops the build.

``PriceModule(target)`` is a module pass for a pipeline that already has its PrimFuncs (after
``FuseTIR``, or ``LegalizeOps`` without fusion): each PrimFunc annotated (``chamtvm.latency_us``,
``chamtvm.source``, ``chamtvm.calls``), the module with ``chamtvm.latency_ms`` and
``chamtvm.complete`` (False when kernels could be priced neither from the table nor by the
model: ``chamtvm.missing`` names them). A module that still has Relax operators, whose input
has a symbolic dimension, or a target with an empty table (and no ``runner`` to measure
with) is a ``PricingError`` that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..targets.spec import TargetSpec, get_target

FINAL_PASS = "CallTIRRewrite"  # the kernels are final when this pass starts (both Relax pipelines)
SCHEDULED_ATTR = "tirx.is_scheduled"


class PricingError(ValueError):
    """The module cannot be priced as it stands (Relax operators left, symbolic shapes, no
    table); the message says what to do."""


def _spec(target) -> TargetSpec:
    return target if isinstance(target, TargetSpec) else get_target(target)


def _predictor(spec: TargetSpec, luts_dir=None, measuring: bool = False):
    """The target's predictor; an empty table is a ``PricingError`` unless kernels will be
    measured (``measuring``: a runner fills the table first)."""
    from ..table.store import LatencyTable
    from .loading import load_predictor

    table = LatencyTable.for_target(spec.name, luts_dir)
    if len(table) == 0 and not measuring:
        raise PricingError(f"the latency table {table.path} has no measured kernel: build one with "
                           f"`python -m chamtvm tune --target {spec.name}` (or pass luts_dir)")
    return load_predictor(table)


def _schedules(spec: TargetSpec, schedules_dir=None):
    from ..tuning.schedules import ScheduleSource

    return ScheduleSource.for_target(spec, schedules_dir)


def _relax_ops(mod) -> list[str]:
    """Names of the Relax operators left in ``mod`` that are not kernel calls."""
    from tvm import relax

    found: list[str] = []

    def visit(e):
        if isinstance(e, relax.Call) and hasattr(e.op, "name") and e.op.name.startswith("relax.") \
                and e.op.name not in ("relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed",
                                      "relax.call_pure_packed", "relax.reshape", "relax.null_value"):
            found.append(e.op.name)

    for _, f in mod.functions.items():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f.body, visit)
    return found


def _check_static(mod) -> None:
    from tvm import tirx

    main = mod["main"] if "main" in [gv.name_hint for gv in mod.get_global_vars()] else None
    if main is None:
        return
    for p in main.params:
        for axis, d in enumerate(getattr(p.ty, "shape", None) or []):
            if not isinstance(d, tirx.IntImm):
                raise PricingError(f"input {p.name_hint if hasattr(p, 'name_hint') else p} of 'main' has the symbolic "
                                   f"dimension {d} (axis {axis}): a latency is priced for static shapes; bind it "
                                   f"first (e.g. relax.transform.BindSymbolicVars)")


@dataclass
class BuildPrice:
    """What the user's build costs on the target: ``prediction`` (``FullPrediction``),
    ``schedules`` (kernels by the schedule they carry: default / database / own) and
    ``warnings`` (plain sentences)."""

    prediction: object
    schedules: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _called_primfuncs(mod) -> dict:
    """GlobalVar name -> PrimFunc, for the PrimFuncs ``main`` (or any Relax function) calls."""
    from tvm import relax, tirx

    called: set[str] = set()

    def visit(e):
        if isinstance(e, relax.Call) and getattr(e.op, "name", None) in ("relax.call_tir", "relax.call_tir_inplace"):
            called.add(e.args[0].name_hint)

    for _, f in mod.functions.items():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f.body, visit)
    return {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc) and gv.name_hint in called}


def price_build(final_mod, target, before_schedules=None, luts_dir=None, schedules_dir=None, runner=None,
                log=None) -> BuildPrice:
    """Price the kernels of ``final_mod`` (PrimFuncs as the user's pipeline left them) with the
    schedule each carries. ``before_schedules``: the same module before the user's pipeline
    scheduled it (GlobalVar names matching), so a scheduled kernel can be recognised as the
    target database's. With a ``runner``, kernels the table lacks are measured first."""
    import tvm_ffi

    from ..lower.kernels import extract_kernels, kernel_hash
    from ..table.fill import PreparedKernel
    from ..table.store import make_key
    from ..tuning.schedules import DEFAULT_TAG
    from .on_demand import predict_prepared

    spec = _spec(target)
    _check_static(final_mod)
    left = _relax_ops(final_mod)
    if left:
        raise PricingError(f"the module still has {len(left)} Relax operators ({', '.join(sorted(set(left))[:5])}) "
                           f"that are not kernels yet: price it after LegalizeOps (and FuseOps/FuseTIR if the "
                           f"build fuses)")
    predictor = _predictor(spec, luts_dir, measuring=runner is not None)
    source = _schedules(spec, schedules_dir)
    early = _called_primfuncs(before_schedules) if before_schedules is not None else {}
    counts = {"default": 0, "database": 0, "own": 0}
    untuned_but_known = []
    prepared = []
    for k in extract_kernels(final_mod):
        f = k.func
        scheduled = bool(f.attrs is not None and SCHEDULED_ATTR in f.attrs and bool(f.attrs[SCHEDULED_ATTR]))
        if not scheduled:
            ours, tag = source.apply(f)
            if tag != DEFAULT_TAG:
                untuned_but_known.append(k.name)
            prepared.append(PreparedKernel(make_key(spec.fingerprint, DEFAULT_TAG, k.struct_hash), DEFAULT_TAG, k, f))
            counts["default"] += k.count
            continue
        plain = early.get(k.name)
        tag = DEFAULT_TAG
        if plain is not None:
            ours, tag = source.apply(plain)
            if tag != DEFAULT_TAG and not tvm_ffi.structural_equal(ours.without_attr("global_symbol"),
                                                                   f.without_attr("global_symbol"), map_free_vars=True):
                tag = DEFAULT_TAG
        if tag != DEFAULT_TAG:
            prepared.append(PreparedKernel(make_key(spec.fingerprint, tag, kernel_hash(plain)), tag, k, ours,
                                           source.provenance(tag)))
            counts["database"] += k.count
        else:  # a schedule of the user's own: priced as it is, under a key of its own
            own = f"own-{k.struct_hash[:10]}"
            prepared.append(PreparedKernel(make_key(spec.fingerprint, own, k.struct_hash), own, k, f, "own"))
            counts["own"] += k.count
    table = predictor.table
    prediction = predict_prepared(prepared, table, spec, runner, log=log) if runner is not None \
        else predictor.predict(prepared)
    warnings = []
    if untuned_but_known:
        warnings.append(f"{len(untuned_but_known)} kernels of this build run their default schedule although "
                        f"{source.work_dir} has tuned ones for them: apply the database "
                        f"(relax.transform.MetaScheduleApplyDatabase) to deploy them tuned")
    if counts["own"]:
        warnings.append(f"{counts['own']} kernel calls carry schedules that are not in {source.work_dir}; "
                        f"they are priced as built ({'measured' if runner is not None else 'estimated by the kernel model'})")
    if prediction.missing:
        warnings.append(f"{len(prediction.missing)} kernels could be priced neither from the table nor by the model; "
                        f"the figure is incomplete")
    return BuildPrice(prediction, counts, warnings)


def _make_instrument_class():
    import tvm

    @tvm.instrument.pass_instrument
    class LatencyInstrument:
        """Prices the module the user's pipeline produces (module docstring). After the build:
        ``report`` (a ``FullPrediction``), ``schedules`` and ``warnings``, or ``error`` (a
        message) when it could not be priced. The build itself is never changed or stopped."""

        def __init__(self, target, luts_dir=None, schedules_dir=None, runner=None):
            self.spec = _spec(target)
            self.luts_dir, self.schedules_dir, self.runner = luts_dir, schedules_dir, runner
            self.report = None
            self.schedules: dict = {}
            self.warnings: list[str] = []
            self.error = None
            self._before_schedules = None
            self._done = False

        def run_after_pass(self, mod, info):
            # the first module whose kernels are all PrimFuncs, none scheduled yet: kept to
            # recognise the database's schedules in the final module
            if self._before_schedules is None and not self._done and _called_primfuncs(mod) \
                    and not _relax_ops(mod) and not any(
                        f.attrs is not None and SCHEDULED_ATTR in f.attrs for f in _called_primfuncs(mod).values()):
                self._before_schedules = mod

        def run_before_pass(self, mod, info):
            if self._done or str(info.name) != FINAL_PASS:
                return
            self._done = True
            try:
                priced = price_build(mod, self.spec, self._before_schedules, self.luts_dir, self.schedules_dir,
                                     self.runner)
                self.report, self.schedules, self.warnings = priced.prediction, priced.schedules, priced.warnings
            except Exception as e:  # pricing must never break the user's build
                from ..core.interrupt import reraise_if_interrupted

                reraise_if_interrupted()
                self.error = f"{type(e).__name__}: {e}"

    return LatencyInstrument


def LatencyInstrument(target, luts_dir=None, schedules_dir=None, runner=None):  # noqa: N802 - reads as a class
    """A ``tvm.instrument.PassInstrument`` pricing the module on ``target`` (see module doc);
    with a ``runner`` (``measure.runners.make_runner``) kernels the table lacks are measured."""
    return _make_instrument_class()(target, luts_dir, schedules_dir, runner)


def price_fused_module(fused_mod, target, luts_dir=None, schedules_dir=None):
    """``FullPrediction`` of a module whose kernels are PrimFuncs called from Relax, each with
    the schedule the target's database gives it (the way chamtvm deploys it)."""
    from ..lower.kernels import extract_kernels
    from ..table.fill import prepare

    spec = _spec(target)
    _check_static(fused_mod)
    left = _relax_ops(fused_mod)
    if left:
        raise PricingError(f"the module still has {len(left)} Relax operators ({', '.join(sorted(set(left))[:5])}) "
                           f"that are not kernels yet: price it after LegalizeOps (and FuseOps/FuseTIR if the "
                           f"build fuses)")
    predictor = _predictor(spec, luts_dir)
    prepared = prepare(extract_kernels(fused_mod), spec, _schedules(spec, schedules_dir))
    if not prepared:
        raise PricingError("the module calls no kernel: nothing to price")
    return predictor.predict(prepared)


def PriceModule(target, luts_dir=None, schedules_dir=None):  # noqa: N802 - a TVM pass, named like one
    """Module pass: annotate each PrimFunc of a lowered module with its latency on ``target``
    (``chamtvm.latency_us`` per call, ``chamtvm.source`` table/estimated/missing, and
    ``chamtvm.calls``) and the module with ``chamtvm.latency_ms``, ``chamtvm.complete`` and
    ``chamtvm.missing``; the IR is otherwise unchanged. An empty table is a ``PricingError``
    here; a module that cannot be priced (module docstring) fails the pass with the
    ``PricingError``'s message (TVM re-raises errors of a Python pass as its own type)."""
    import tvm
    from tvm import tirx

    from ..lower.kernels import kernel_hash

    spec = _spec(target)
    _predictor(spec, luts_dir)  # an empty table is said now, not from inside TVM's pass call

    @tvm.transform.module_pass(opt_level=0, name="chamtvm.PriceModule")
    def price(mod, ctx):
        pred = price_fused_module(mod, spec, luts_dir, schedules_dir)
        by_hash = {k["key"].rsplit("/", 1)[-1]: k for k in pred.kernels}
        missing = set(pred.missing)
        out = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
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
        out = out.with_attr("chamtvm.latency_ms", tvm.tirx.FloatImm("float64", float(pred.latency_ms)))
        out = out.with_attr("chamtvm.complete", bool(not pred.missing))
        return out.with_attr("chamtvm.missing", [str(m) for m in pred.missing])

    return price
