"""The transformation job, the same for every method: teacher -> latency on the target ->
method -> fine-tuning by distillation -> uniform width-scaling baseline -> export ->
end-to-end measurement -> test accuracy (once, at the end) -> report.

    from chamtvm.transform.job import TransformConfig, transform
    report = transform(TransformConfig("teacher:digits", "digits", "x86", 0.5, method="hant"))

Resumable: the teacher, the teacher's measured latency, the method's journals (HANT's
distilled candidates), the fine-tuned network and the trained baselines are saved under
``<workdir>/runs/transform/<teacher digest>/`` and reused by a rerun with the same settings.
The adapted network goes to ``out`` (default ``<workdir>/runs/transform-<task>-<method>-
<target>-<budget>ms/``): ``weights.pt`` (torch state dict) with ``adapted.json`` (how to
rebuild it: the teacher and the block replacements), ``model.pt2`` (``torch.export``),
``model.onnx``, ``network_<target>.so`` (Relax VM library; load with
``relax.VirtualMachine(tvm.runtime.load_module(path), dev)``) and ``report.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .data import NUM_CLASSES, load_task
from .latency import measured_ms
from .train import Protocol

UNIFORM_WIDTHS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)


@dataclass
class TransformConfig:
    """What ``chamtvm transform`` is asked (see the command's help). ``model``: a
    ``teacher:<task>`` name, a path, or a torch module; ``target``: a name or ``TargetSpec``;
    ``budget_ms``: measured ms on the target (or None with ``speedup``: the teacher's
    measured latency divided by it); ``finetune_epochs``: None = the task's default;
    ``uniform``: also build the uniform width-scaling baseline; ``uniform_widths``: the width
    multipliers it may take (None = ``UNIFORM_WIDTHS``); ``uniform_epochs``: its training
    epochs (None = the teacher's protocol); ``measure``: measure the networks end to end
    (False: predictions only, e.g. when a benchmark measures apart)."""

    model: Any
    task: str
    target: Any
    budget_ms: float | None
    method: str = "hant"
    seed: int = 0
    options: dict = field(default_factory=dict)
    finetune_epochs: int | None = None
    uniform: bool = True
    uniform_widths: tuple[float, ...] | None = None
    uniform_epochs: int | None = None
    measure: bool = True
    out: Path | None = None
    luts_dir: Path | None = None
    schedules_dir: Path | None = None
    tracker: tuple[str, int] | None = None
    key: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    progress: bool = True
    speedup: float | None = None


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _finetune_protocol(task: str, epochs: int | None, seed: int) -> Protocol:
    default = 3 if task == "fashion-mnist" else 4
    return Protocol(epochs=epochs or default, batch_size=64 if task == "fashion-mnist" else 32, lr=1e-3, seed=seed)


def baseline_protocol(teacher, epochs: int | None = None) -> Protocol:
    """How the uniform baseline is trained: the teacher's protocol (its epochs, or ``epochs``)."""
    from .teacher import DEFAULT_TEACHERS

    p = teacher.protocol or DEFAULT_TEACHERS[teacher.task]["protocol"]
    p = {k: v for k, v in p.items() if k in Protocol.__dataclass_fields__}
    if epochs is not None:
        p["epochs"] = epochs
    return Protocol(**p)


def _save_weights(path: Path, module) -> str:
    import io

    import torch

    from ..core.atomic import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _load_weights(path: Path, module, sha256: str | None = None) -> bool:
    """Load a saved state dict into ``module``; False when the file is missing or altered."""
    import torch

    if not path.is_file() or (sha256 and hashlib.sha256(path.read_bytes()).hexdigest() != sha256):
        return False
    module.load_state_dict(torch.load(str(path), weights_only=True))
    module.eval()
    return True


def trained_once(folder: Path, name: str, module, train: Callable[[], Any], log=None) -> tuple[Any, bool]:
    """``module`` with the weights saved as ``folder/name.pt`` (recorded in ``name.json``), or
    ``train()`` run and its result saved; returns (module, trained now)."""
    meta = folder / f"{name}.json"
    if meta.exists():
        rec = json.loads(meta.read_text())
        if _load_weights(folder / f"{name}.pt", module, rec.get("sha256")):
            if log:
                log(f"reusing {folder / name}.pt")
            return module, False
    from ..core.atomic import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    module = train()
    sha = _save_weights(folder / f"{name}.pt", module)
    atomic_write_text(meta, json.dumps({"sha256": sha, "seconds": round(time.time() - t0, 1)}))
    return module, True


def teacher_folder(task: str, net) -> Path:
    """``<workdir>/runs/transform/<task>-<teacher digest>/``: where the job keeps what it
    learns of the teacher ``net`` (a ``layered`` network) on ``task`` (its measured latency,
    the methods' folders, the uniform baselines), reused by every rerun."""
    from ..core.workdir import runs_dir
    from .hant import module_digest

    return runs_dir() / "transform" / f"{task}-{module_digest(net)}"


def teacher_latency(lat, net, folder: Path, log) -> dict:
    """The teacher's table sum and measured latency on the target, measured once and kept in
    ``folder/latency-<target fingerprint>.json`` (with whether the machine was quiet)."""
    from ..core.atomic import atomic_write_text

    path = folder / f"latency-{lat.target.name}-{_digest(lat.target.fingerprint)}.json"
    pred = lat.price_network(net, net.input_shape, "teacher")
    if path.exists():
        rec = json.loads(path.read_text())
        if rec.get("latency_ms"):
            rec["table_sum_ms"] = pred.table_sum_ms
            return rec
    if lat.runner is None:
        raise RuntimeError("the teacher's latency was never measured on this target and no runner was given")
    log(f"measuring the teacher end to end on {lat.runner.label}")
    m = measured_ms(lat.measure_module(net, net.input_shape, "teacher"))
    if m["latency_ms"] is None:
        raise RuntimeError(f"the teacher could not be measured: {m['error']}")
    rec = {**m, "table_sum_ms": pred.table_sum_ms, "device_label": lat.runner.label,
           "emulated": bool(lat.runner.emulated), "quiet_run": os.environ.get("QUIET_RUN") == "1",
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(rec, indent=1))
    return rec


def uniform_width(lat, net, budget_ms: float, scale: float, margin: float, widths=UNIFORM_WIDTHS):
    """The widest width multiplier of ``widths`` whose scaled teacher is predicted within the
    budget (less ``margin``), found by bisection (latency grows with the width; about
    log2(len(widths)) networks priced, their kernels measured); returns (width or None,
    [(width, predicted ms)] of the widths priced)."""
    from .graph import folded, width_scaled

    limit = budget_ms * (1 - margin)
    priced: dict[float, float] = {}

    def ms(w: float) -> float:
        if w not in priced:
            p = lat.price_blocks([(folded(width_scaled(net, w)), net.input_shape)])[0]
            priced[w] = scale * p.latency_ms
        return priced[w]

    ws = sorted(widths)
    lo, hi = 0, len(ws) - 1  # invariant: widths above hi do not fit; below lo fit (once checked)
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if ms(ws[mid]) <= limit:
            best, lo = ws[mid], mid + 1
        else:
            hi = mid - 1
    return best, sorted(priced.items())


def export_adapted(module, input_shape, lat, out: Path, adapted_meta: dict) -> dict:
    """Write the adapted network's artefacts into ``out`` (see the module docstring)."""
    import warnings

    import torch

    from ..core.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    sha = _save_weights(out / "weights.pt", module)
    atomic_write_text(out / "adapted.json", json.dumps({**adapted_meta, "weights": "weights.pt",
                                                      "weights_sha256": sha}, indent=1))
    paths["weights"], paths["adapted"] = str(out / "weights.pt"), str(out / "adapted.json")
    example = torch.zeros(*input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(out / "model.onnx"), input_names=["x"], output_names=["logits"],
                          opset_version=17, dynamo=False)
        torch.export.save(torch.export.export(module, (example,)), str(out / "model.pt2"))
    paths["onnx"], paths["torch_export"] = str(out / "model.onnx"), str(out / "model.pt2")
    paths["library"] = str(lat.build_library(module, input_shape, out / f"network_{lat.target.name}.so", "adapted"))
    paths["input_shape"] = list(input_shape)
    paths["runtime_threads"] = lat.target.runtime_threads
    return paths


def transform(cfg: TransformConfig, log: Callable[[str], None] = print, runner=None) -> dict:
    """Run the job (module docstring); returns the report dict (also in ``out/report.json``)."""
    from ..core.atomic import atomic_write_text
    from ..core.workdir import runs_dir
    from ..measure.runners import make_runner
    from ..targets.spec import TargetSpec, get_target
    from .graph import folded, layered, width_scaled
    from .hant import module_digest
    from .latency import TargetLatency
    from .methods import METHODS, MethodContext
    from .teacher import resolve_model
    from .train import accuracy, fit

    t_start = time.time()
    if (cfg.budget_ms is None) == (cfg.speedup is None) or (cfg.budget_ms or cfg.speedup) <= 0:
        raise ValueError("give one positive budget: budget_ms or speedup")
    target = cfg.target if isinstance(cfg.target, TargetSpec) else get_target(cfg.target)
    method = METHODS.get(cfg.method)
    run_method = method.load()  # MethodUnavailableError before any work
    method.check_options(cfg.options)  # OptionError before any work
    data = load_task(cfg.task, cfg.train_size, cfg.val_size)
    teacher = resolve_model(cfg.model, cfg.task, data, log, cfg.progress)
    net = layered(teacher.module, data.input_shape, NUM_CLASSES)
    digest = module_digest(net)
    folder = teacher_folder(cfg.task, net)
    own_runner = runner is None  # kernels the table lacks are measured even when networks are not
    if own_runner:
        runner = make_runner(target, cfg.tracker, cfg.key)
    seconds: dict[str, float] = {}
    try:
        lat = TargetLatency(target, runner, cfg.luts_dir, cfg.schedules_dir, log)
        t0 = time.time()
        t_lat = teacher_latency(lat, net, folder, log)
        scale = t_lat["latency_ms"] / t_lat["table_sum_ms"]
        seconds["teacher_latency"] = time.time() - t0
        budget_ms = cfg.budget_ms if cfg.budget_ms is not None else t_lat["latency_ms"] / cfg.speedup
        ctx = MethodContext(teacher, net, data, lat, scale, budget_ms, folder / cfg.method, cfg.seed,
                            dict(cfg.options), log, cfg.progress)
        ctx.work.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        result = run_method(ctx)
        seconds["method"] = time.time() - t0

        # fine-tuning by distillation from the teacher
        t0 = time.time()
        ft = _finetune_protocol(cfg.task, cfg.finetune_epochs, cfg.seed)
        adapted = result.module
        finetuned_now = False
        if not result.finetuned and ft.epochs > 0:
            name = f"finetuned-{module_digest(adapted)[:12]}-{ft.name}"
            adapted, finetuned_now = trained_once(
                ctx.work, name, adapted,
                lambda: fit(adapted, data.train_x, data.train_y, ft, teacher=net,
                            checkpoint=ctx.work / f"{name}.checkpoint.pt", log=log, desc="fine-tuning",
                            progress=cfg.progress), log)
        seconds["finetune"] = time.time() - t0
        adapted_val = accuracy(adapted, data.val_x, data.val_y)
        teacher_val = accuracy(net, data.val_x, data.val_y)

        # the uniform width-scaling baseline at the same budget
        uniform = None
        if cfg.uniform:
            t0 = time.time()
            margin = float(cfg.options.get("margin", 0.05)) if cfg.method == "hant" else 0.05
            width, widths = uniform_width(lat, net, budget_ms, scale, margin, cfg.uniform_widths or UNIFORM_WIDTHS)
            uniform = {"width": width, "predicted_by_width": [{"width": w, "predicted_ms": ms} for w, ms in widths]}
            if width is None:
                uniform["note"] = "no width multiplier of the teacher fits the budget"
            else:
                proto = baseline_protocol(teacher, cfg.uniform_epochs)
                base = width_scaled(net, width, seed=cfg.seed)
                base, trained = trained_once(
                    folder / "uniform", f"w{width:g}-{proto.name}-{data.protocol}", base,
                    lambda: fit(base, data.train_x, data.train_y, proto,
                                checkpoint=folder / "uniform" / f"w{width:g}.checkpoint.pt",
                                log=log, desc=f"uniform width {width:g}", progress=cfg.progress), log)
                base = folded(base)
                uniform.update(module=base, trained_now=trained, protocol=proto.to_dict(),
                               predicted_ms=dict(widths)[width], val_accuracy=accuracy(base, data.val_x, data.val_y))
            seconds["uniform"] = time.time() - t0

        # export and end-to-end measurement
        t0 = time.time()
        out = Path(cfg.out or runs_dir() / f"transform-{cfg.task}-{cfg.method}-{target.name}-{budget_ms:.4g}ms")
        meta = {"format": "chamtvm-adapted/1", "method": cfg.method, "task": cfg.task, "teacher": teacher.describe(),
                "teacher_digest": digest, "details": result.details}
        artifacts = export_adapted(adapted, data.input_shape, lat, out, meta)
        if uniform and uniform.get("module") is not None:
            _save_weights(out / "uniform.pt", uniform["module"])
            artifacts["uniform_weights"] = str(out / "uniform.pt")
            artifacts["uniform_library"] = str(lat.build_library(uniform["module"], data.input_shape,
                                                                 out / f"uniform_{target.name}.so", "uniform"))
        seconds["export"] = time.time() - t0
        measured = {}
        if cfg.measure:
            t0 = time.time()
            # measuring builds of the exported networks (the reference kernel beside them), timed
            # like the teacher: at the device's nominal speed
            measured["adapted"] = measured_ms(lat.measure_module(adapted, data.input_shape, "adapted"))
            if uniform and uniform.get("module") is not None:
                measured["uniform"] = measured_ms(lat.measure_module(uniform["module"], data.input_shape, "uniform"))
            seconds["measure"] = time.time() - t0

        # the test images, once
        report = {
            "task": cfg.task, "data": data.protocol, "target": target.name, "method": cfg.method,
            "budget_ms": budget_ms, "speedup_asked": cfg.speedup, "seed": cfg.seed,
            "device_label": runner.label if runner is not None else None,
            "emulated": bool(runner is not None and runner.emulated),
            "context_scale": scale,
            "teacher": {**teacher.describe(), "digest": digest, "val_accuracy": teacher_val,
                        "test_accuracy": accuracy(net, data.test_x, data.test_y), "table_sum_ms": t_lat["table_sum_ms"],
                        "measured": {k: t_lat.get(k) for k in ("latency_ms", "spread_iqr_pct", "repeat",
                                                               "quiet_run", "measured_at")}},
            "adapted": {"val_accuracy": adapted_val, "test_accuracy": accuracy(adapted, data.test_x, data.test_y),
                        "predicted_ms": result.predicted_ms, "finetune": ft.to_dict(), "finetuned_now": finetuned_now,
                        "measured": measured.get("adapted")},
            "details": result.details,
            "artifacts": artifacts,
        }
        if uniform is not None:
            mod = uniform.pop("module", None)
            if mod is not None:
                uniform["test_accuracy"] = accuracy(mod, data.test_x, data.test_y)
            uniform["measured"] = measured.get("uniform")
            report["uniform"] = uniform
        _summarise(report, budget_ms)
        report["seconds"] = {k: round(v, 1) for k, v in seconds.items()} | {"total": round(time.time() - t_start, 1)}
        atomic_write_text(out / "report.json", json.dumps(report, indent=1))
        report["artifacts"]["report"] = str(out / "report.json")
        return report
    finally:
        if own_runner and runner is not None:
            runner.close()


def _summarise(report: dict, budget_ms: float) -> None:
    """Speed-ups, prediction errors and the goals' yes/no, from the measured figures."""
    t_ms = (report["teacher"]["measured"] or {}).get("latency_ms")
    for part in ("adapted", "uniform"):
        r = report.get(part)
        if not r:
            continue
        m = (r.get("measured") or {}).get("latency_ms")
        if m is None:
            continue
        r["speedup_vs_teacher"] = t_ms / m if t_ms else None
        r["under_budget"] = m <= budget_ms
        if r.get("predicted_ms"):
            r["prediction_error_pct"] = 100.0 * (r["predicted_ms"] / m - 1.0)
        r["accuracy_drop_points_val"] = 100.0 * (report["teacher"]["val_accuracy"] - r["val_accuracy"])
        if r.get("test_accuracy") is not None:
            r["accuracy_drop_points_test"] = 100.0 * (report["teacher"]["test_accuracy"] - r["test_accuracy"])
