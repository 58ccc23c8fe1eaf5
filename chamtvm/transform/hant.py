"""HANT (Molchanov et al. 2021): replace a trained network's slow operations by cheaper ones.

1. **Candidates.** For every replaceable block of the teacher (``graph``), a set of other
   operations from the space's block registry (``space.blocks.BLOCKS``: other kernel sizes
   and expansions, the fused form, the layer skipped, the activation swapped to ReLU6/ReLU
   where the teacher used another), built at the block's channels and stride. The teacher's
   own block is always an option (loss 0).
2. **Latency.** Each candidate is priced on the target at the input shape it has in the
   network (``latency.TargetLatency.price_blocks``: the table, missing kernels measured);
   candidates no faster than the teacher's block are dropped (the teacher's block is then
   better in both). A network's predicted latency is the teacher's table sum with the chosen
   blocks' sums swapped in, times the teacher's measured / table-sum ratio (``context_scale``).
3. **Layer-wise distillation.** Each candidate learns to map the teacher's input feature map
   of its block to the teacher's output feature map (mean squared error, Adam, cosine
   schedule, ``distill_epochs`` over ``distill_images`` training images, one torch thread).
   Its *loss* is the held-out MSE on validation images divided by the mean square of the
   teacher's output (0 = the teacher's block). Every finished candidate is saved
   (``candidates/<layer>-<op>.pt``) and journaled (``candidates.jsonl``) at once, so an
   interrupted distillation resumes without training finished candidates again.
4. **Selection.** The integer program (``select``) minimises the summed losses under the
   budget (less ``margin``, default 5 %, against the prediction error); the chosen network is
   measured end to end on the target and chosen again under a lower budget while it measures
   over the budget (``select.select_measured``, at most 3 choices; one more, wider, when it
   measures well under).
5. **Calibration.** A few combinations (the integer program's choices at budgets between the
   fastest choice and the teacher) are assembled without fine-tuning and their validation
   accuracy measured; ``accuracy drop ~= slope * summed loss`` (least squares through the
   origin) turns the chosen network's summed loss into a predicted accuracy, reported with
   the fit.

Options (``--option key=value``): ``candidates`` (comma-separated block names, default
``DEFAULT_CANDIDATES``), ``distill_epochs`` (4), ``distill_images`` (4096, or all training
images when fewer), ``val_images`` (1000), ``calibration`` (4 combinations), ``margin`` (0.05),
``lr`` (1e-2, Adam's peak learning rate; chosen on the digits teacher's held-out feature maps:
1 epoch at 2e-3 left every candidate worse than a zero output, 4 epochs at 1e-2 reached most of
what 8 epochs reach), ``batch_size`` (32).
The driver fine-tunes the chosen network by distillation from the teacher.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .methods import MethodContext, MethodResult, OptionError, refuse_unknown_options
from .select import BudgetError, fastest, select

DEFAULT_CANDIDATES = ("skip", "ir_k3_e1", "ir_k3_e2", "ir_k3_e3", "ir_k5_e3", "ir_k3_e6", "fmb_k3_e1", "fmb_k3_e2")
TEACHER_OP = "teacher"
ACTS = ("relu6", "relu")


@dataclass
class Options:
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    distill_epochs: int = 4
    distill_images: int = 4096
    val_images: int = 1000
    calibration: int = 4
    margin: float = 0.05
    batch_size: int = 32
    lr: float = 1e-2

    @classmethod
    def from_dict(cls, d: dict) -> "Options":
        from ..space.blocks import BLOCKS

        refuse_unknown_options(cls, d, "hant")
        out = cls()
        for k, v in d.items():
            try:
                if k == "candidates":
                    names = tuple(x.strip() for x in v.split(",") if x.strip()) if isinstance(v, str) else tuple(v)
                    bad = [n for n in names if n not in BLOCKS]
                    if bad or not names:
                        raise OptionError(f"hant option candidates: unknown blocks {bad}; valid: "
                                          f"{', '.join(BLOCKS.names())}")
                    out.candidates = names
                elif k in ("margin", "lr"):
                    setattr(out, k, float(v))
                    if not (0 <= out.margin < 0.5 and out.lr > 0):
                        raise OptionError(f"hant option {k}={v!r} is out of range (margin in [0, 0.5), lr > 0)")
                else:
                    iv = int(v)
                    if iv < (0 if k == "calibration" else 1):
                        raise OptionError(f"hant option {k} must be a positive integer, got {v!r}")
                    setattr(out, k, iv)
            except (TypeError, ValueError) as e:
                if isinstance(e, OptionError):
                    raise
                raise OptionError(f"hant option {k}: cannot read {v!r} ({e})") from None
        return out

    def key(self) -> dict:
        return {"distill_epochs": self.distill_epochs, "distill_images": self.distill_images,
                "val_images": self.val_images, "batch_size": self.batch_size, "lr": self.lr}


def check_options(options: dict) -> None:
    """:class:`OptionError` for options HANT cannot take (called before any work)."""
    Options.from_dict(options)


def module_digest(module) -> str:
    """SHA-1 (16 hex digits) of a module's state: names, shapes and values."""
    h = hashlib.sha1()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def build_candidate(name: str, info):
    """The block ``name`` of the registry at layer ``info``'s channels and stride (activation:
    the teacher's when it is ReLU6/ReLU, else ReLU6)."""
    from ..space.blocks import BLOCKS

    act = info.activation if info.activation in ACTS else "relu6"
    return BLOCKS.get(name).build(info.cin, info.cout, info.stride, act)


def _is_identity(module) -> bool:
    from torch import nn

    return isinstance(module, nn.Identity)


# ------------------------------------------------------------------ journal
class CandidateJournal:
    """``candidates.jsonl`` in the method's folder: one line per distilled candidate
    ``{"key", "layer", "op", "loss", "train_loss", "seconds", "weights", "sha256"}``; lines of
    another teacher or protocol (``key``) are ignored; a line whose weights file is missing
    or altered does not count (the candidate is distilled again)."""

    def __init__(self, folder: Path, key: str):
        self.folder, self.key = Path(folder), key
        self.path = self.folder / "candidates.jsonl"

    def done(self) -> dict[tuple[int, str], dict]:
        from ..core.jsonl import split_lines

        if not self.path.exists():
            return {}
        lines, tail, _ = split_lines(self.path.read_bytes())
        out = {}
        for raw in lines + ([tail] if tail is not None else []):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a damaged line is not a finished candidate
            if rec.get("key") != self.key:
                continue
            weights = self.folder / str(rec.get("weights", ""))
            if not weights.is_file() or hashlib.sha256(weights.read_bytes()).hexdigest() != rec.get("sha256"):
                continue
            out[(int(rec["layer"]), str(rec["op"]))] = rec
        return out

    def add(self, layer: int, op: str, module, loss: float, train_loss: float, seconds: float) -> dict:
        import torch

        from ..core.atomic import atomic_write_bytes
        from ..core.jsonl import append_lines

        buf = io.BytesIO()
        torch.save(module.state_dict(), buf)
        data = buf.getvalue()
        rel = f"candidates/{self.key[:10]}-L{layer}-{op}.pt"
        atomic_write_bytes(self.folder / rel, data)  # the weights first: a journal line always has them
        rec = {"key": self.key, "layer": layer, "op": op, "loss": loss, "train_loss": train_loss,
               "seconds": round(seconds, 2), "weights": rel, "sha256": hashlib.sha256(data).hexdigest()}
        append_lines(self.path, [json.dumps(rec, sort_keys=True)])
        return rec

    def load_weights(self, rec: dict, module):
        import torch

        module.load_state_dict(torch.load(str(self.folder / rec["weights"]), weights_only=True))
        return module.eval()


# ------------------------------------------------------------- distillation
def _feature_maps(net, x: np.ndarray, batch: int = 256):
    """Per block j, the (input, output) feature maps of the teacher on images ``x``,
    produced lazily one block at a time: ``(j, inputs, outputs)`` (float32 numpy)."""
    import torch

    from .train import one_thread

    def run(module, inputs):
        # no_grad is entered and left here: a generator must not hold it across ``yield``
        with one_thread(), torch.no_grad():
            return np.concatenate([module(torch.from_numpy(inputs[b:b + batch])).numpy()
                                   for b in range(0, len(inputs), batch)])

    cur = run(net.stem, x)
    for j, block in enumerate(net.blocks):
        nxt = run(block, cur)
        yield j, cur, nxt
        cur = nxt


def distill_block(module, xin: np.ndarray, xout: np.ndarray, vin: np.ndarray, vout: np.ndarray,
                  opts: Options, seed: int) -> tuple[float, float]:
    """Train ``module`` to map ``xin`` to ``xout`` (MSE); returns (held-out relative loss on
    ``vin``/``vout``, last epoch's relative training loss)."""
    import torch
    import torch.nn.functional as F

    from .train import one_thread

    scale = float(np.mean(xout.astype(np.float64) ** 2)) or 1.0
    vscale = float(np.mean(vout.astype(np.float64) ** 2)) or 1.0
    with one_thread():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        xt, yt = torch.from_numpy(xin), torch.from_numpy(xout)
        train_loss = 0.0
        if any(p.requires_grad for p in module.parameters()):
            steps = math.ceil(len(xt) / opts.batch_size)
            total = steps * opts.distill_epochs
            opt = torch.optim.Adam(module.parameters(), lr=opts.lr)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
            module.train()
            for _ in range(opts.distill_epochs):
                perm = torch.randperm(len(xt), generator=gen)
                run, count = 0.0, 0
                for b in range(steps):
                    idx = perm[b * opts.batch_size:(b + 1) * opts.batch_size]
                    loss = F.mse_loss(module(xt[idx]), yt[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    run += float(loss.detach()) * len(idx)
                    count += len(idx)
                train_loss = run / count / scale
        module.eval()
        with torch.no_grad():
            err = 0.0
            for b in range(0, len(vin), 256):
                out = module(torch.from_numpy(vin[b:b + 256]))
                err += float(((out - torch.from_numpy(vout[b:b + 256])) ** 2).sum())
        val_loss = err / vout.size / vscale
    return val_loss, train_loss


# ------------------------------------------------------------------- method
def _assemble(net, layers: list[int], ops: list[list[str]], modules: dict, choice) -> object:
    """A copy of the teacher ``net`` with block ``layers[i]`` replaced by option ``choice[i]``."""
    out = copy.deepcopy(net)
    for li, j in enumerate(layers):
        op = ops[li][choice[li]]
        if op != TEACHER_OP:
            out.blocks[j] = copy.deepcopy(modules[(j, op)])
    return out.eval()


@dataclass
class Priced:
    """The candidates of every replaceable layer with their table sums (ms): ``layers[i]`` is
    the block index of option list ``ops[i]`` (``TEACHER_OP`` first) with latencies ``lat[i]``;
    ``fixed_ms`` is the table sum of everything else (stem, head, other blocks)."""

    layers: list[int]
    ops: list[list[str]]
    lat: list[list[float]]
    fixed_ms: float
    teacher_sum_ms: float
    built: dict
    seconds: float


def price_candidates(ctx: MethodContext, opts: Options) -> Priced:
    """Build every candidate of every replaceable layer and price it on the target (kernels
    the table lacks are measured); candidates no faster than the teacher's block are dropped."""
    net = ctx.net
    infos = net.layers
    layers = [i for i, info in enumerate(infos) if info.replaceable]
    shapes = [(1, info.cin, info.in_hw, info.in_hw) for info in infos]
    t0 = time.time()
    built = {(j, n): build_candidate(n, infos[j]) for j in layers for n in opts.candidates}
    keys = [(j, n) for j in layers for n in opts.candidates]
    pricing = [(net.blocks[j], shapes[j]) for j in range(len(infos))] + [(built[k], shapes[k[0]]) for k in keys]
    ctx.log(f"hant: pricing {len(pricing)} blocks ({len(layers)} replaceable layers x {len(opts.candidates)} "
            f"candidates, and the teacher's {len(infos)} blocks) on {ctx.latency.target.name}")
    priced = ctx.latency.price_blocks(pricing)
    teacher_block_ms = [p.latency_ms for p in priced[:len(infos)]]
    cand_ms = {k: p.latency_ms for k, p in zip(keys, priced[len(infos):])}
    teacher_sum = ctx.latency.price_network(net, net.input_shape, "teacher").table_sum_ms
    ops, lat = [], []
    for j in layers:
        keep = [n for n in opts.candidates if cand_ms[(j, n)] < teacher_block_ms[j]]
        ops.append([TEACHER_OP, *keep])
        lat.append([teacher_block_ms[j], *[cand_ms[(j, n)] for n in keep]])
    fixed_ms = teacher_sum - sum(teacher_block_ms[j] for j in layers)
    return Priced(layers, ops, lat, fixed_ms, teacher_sum, built, time.time() - t0)


def _select_and_check(ctx: MethodContext, layers, ops, modules, cost, lat, target_table: float):
    """The integer program's choice under ``target_table`` (table ms of the replaceable
    layers), assembled and measured end to end on the target before fine-tuning, and chosen
    again under a lower budget while it measures over ``ctx.budget_ms``
    (``select.select_measured``: a choice that measures under is timed again from the same
    measuring build); without a runner, chosen once, unchecked. Returns ``(selection, the
    measured checks)``."""
    import tempfile

    from .latency import measured_ms
    from .select import select_measured

    if ctx.latency.runner is None:
        return select(cost, lat, target_table), []
    shape = ctx.net.input_shape

    with tempfile.TemporaryDirectory(prefix="chamtvm-hant-check-") as tmp:
        libraries: dict[tuple, Path] = {}  # one measuring build per choice, timed once or twice

        def timed(sel, what: str) -> float:
            if sel.choice not in libraries:
                net = _assemble(ctx.net, layers, ops, modules, sel.choice)
                libraries[sel.choice] = ctx.latency.build_library(net, shape, Path(tmp) / f"{len(libraries)}.so",
                                                                  "hant-choice", reference=True)
            m = measured_ms(ctx.latency.measure_library(libraries[sel.choice], shape, "hant-choice"))
            if m["latency_ms"] is None:
                raise RuntimeError(f"measuring the chosen network on {ctx.latency.target.name} failed: {m['error']}")
            ctx.log(f"hant: the chosen network {what} {m['latency_ms']:.4g} ms end to end "
                    f"(budget {ctx.budget_ms:.4g} ms)")
            return m["latency_ms"]

        return select_measured(lambda budget: select(cost, lat, budget), lambda sel: timed(sel, "measures"),
                               ctx.budget_ms, target_table, ctx.context_scale,
                               describe=lambda sel: {"choice": list(sel.choice)},
                               confirm_ms=lambda sel: timed(sel, "timed again:"))


def run(ctx: MethodContext) -> MethodResult:
    """HANT on ``ctx`` (see the module docstring)."""
    from ..core.progress import progress_bar
    from .train import accuracy

    log = ctx.log
    opts = Options.from_dict(ctx.options)
    net = ctx.net
    infos = net.layers

    # 1-2. candidates and their latency on the target
    pc = price_candidates(ctx, opts)
    layers, ops, lat, fixed_ms, teacher_sum, built = pc.layers, pc.ops, pc.lat, pc.fixed_ms, pc.teacher_sum_ms, pc.built
    pricing_s = pc.seconds
    scale = ctx.context_scale

    def predicted(table_ms: float) -> float:
        return scale * table_ms

    fastest_ms = predicted(fixed_ms + fastest(lat))
    target_table = ctx.budget_ms * (1 - opts.margin) / scale - fixed_ms
    if fastest_ms > ctx.budget_ms * (1 - opts.margin):
        raise BudgetError(f"budget {ctx.budget_ms:g} ms is below the fastest network HANT can build from these "
                          f"candidates: {fastest_ms:.3f} ms predicted (teacher {predicted(teacher_sum):.3f} ms; "
                          f"{opts.margin:.0%} margin kept)")
    log(f"hant: {sum(len(o) - 1 for o in ops)} candidates faster than the teacher's blocks; predicted latency "
        f"from {fastest_ms:.3f} ms (all fastest) to {predicted(teacher_sum):.3f} ms (teacher)")

    # 3. layer-wise distillation, journaled
    key_src = json.dumps({"teacher": module_digest(net), "data": ctx.data.protocol, "opts": opts.key(),
                          "seed": ctx.seed}, sort_keys=True)
    journal = CandidateJournal(ctx.work, hashlib.sha1(key_src.encode()).hexdigest()[:16])
    done = journal.done()
    rng = np.random.default_rng(ctx.seed)
    n_tr = min(opts.distill_images, len(ctx.data.train_y))
    n_val = min(opts.val_images, len(ctx.data.val_y))
    tr_idx = np.sort(rng.permutation(len(ctx.data.train_y))[:n_tr])
    xd, xv = ctx.data.train_x[tr_idx], ctx.data.val_x[:n_val]
    todo = [(j, n) for j, o in zip(layers, ops) for n in o[1:] if (j, n) not in done]
    from_journal = sum(1 for j, o in zip(layers, ops) for n in o[1:] if (j, n) in done)
    log(f"hant: distilling {len(todo)} candidates ({from_journal} from {journal.path}), {opts.distill_epochs} "
        f"epochs on {n_tr} images")
    losses: dict[tuple[int, str], float] = {}
    modules: dict[tuple[int, str], object] = {}
    bar = progress_bar(len(todo), "hant distillation", enabled=ctx.progress)
    t1 = time.time()
    try:
        last = max([j for j, _ in todo], default=-1)
        feats_tr = _feature_maps(net, xd) if todo else iter(())
        feats_val = _feature_maps(net, xv) if todo else iter(())
        for (j, xin, xout), (_, vin, vout) in zip(feats_tr, feats_val):
            if j > last:
                break
            for n in ops[layers.index(j)][1:] if j in layers else []:
                if (j, n) in done:
                    continue
                module = built[(j, n)]
                s0 = time.time()
                val_loss, tr_loss = distill_block(module, xin, xout, vin, vout, opts, ctx.seed)
                done[(j, n)] = journal.add(j, n, module, val_loss, tr_loss, time.time() - s0)
                bar.update(1)
                bar.set_postfix(layer=j, op=n, loss=f"{val_loss:.3f}")
    finally:
        bar.close()
    distill_s = time.time() - t1
    for j, o in zip(layers, ops):
        for n in o[1:]:
            rec = done[(j, n)]
            losses[(j, n)] = float(rec["loss"])
            modules[(j, n)] = journal.load_weights(rec, built[(j, n)])
    cost = [[0.0] + [losses[(j, n)] for n in o[1:]] for j, o in zip(layers, ops)]

    # 4. selection under the budget, the choice measured on the target
    sel, checks = _select_and_check(ctx, layers, ops, modules, cost, lat, target_table)
    adapted = _assemble(net, layers, ops, modules, sel.choice)
    pred_ms = predicted(fixed_ms + sel.latency)

    # 5. calibration on validation images, without fine-tuning
    t2 = time.time()
    teacher_val = accuracy(net, ctx.data.val_x, ctx.data.val_y)
    lo, hi = fastest(lat), sum(t[0] for t in lat)
    combos = [sel]
    for f in np.linspace(0.15, 0.85, opts.calibration):
        s = select(cost, lat, lo + f * (hi - lo))
        if s.choice not in [c.choice for c in combos]:
            combos.append(s)
    calib = []
    for s in combos:
        acc = accuracy(_assemble(net, layers, ops, modules, s.choice), ctx.data.val_x, ctx.data.val_y)
        calib.append({"summed_loss": s.cost, "predicted_ms": predicted(fixed_ms + s.latency), "val_accuracy": acc,
                      "val_drop": teacher_val - acc})
    x = np.array([c["summed_loss"] for c in calib])
    y = np.array([c["val_drop"] for c in calib])
    slope = float(x @ y / (x @ x)) if float(x @ x) > 0 else 0.0
    resid = y - slope * x
    calib_s = time.time() - t2
    choice_ops = {infos[j].index: ops[li][sel.choice[li]] for li, j in enumerate(layers)}
    details = {
        "layers": [infos[j].to_dict() | {"options": [{"op": op, "table_ms": t, "loss": c}
                                                     for op, t, c in zip(o, tl, cl)],
                                         "chosen": o[s]}
                   for j, o, tl, cl, s in zip(layers, ops, lat, cost, sel.choice)],
        "choice": choice_ops,
        "replaced": sum(op != TEACHER_OP for op in choice_ops.values()),
        "summed_loss": sel.cost,
        "table_sum_ms": fixed_ms + sel.latency,
        "teacher_table_sum_ms": teacher_sum,
        "fastest_predicted_ms": fastest_ms,
        "selection_budget_table_ms": target_table + fixed_ms,
        "margin": opts.margin,
        "milp": {"status": sel.status, "seconds": sel.seconds, "variables": sum(len(o) for o in ops)},
        "measured_checks": checks,
        "calibration": {"combinations": calib, "slope_drop_per_loss": slope,
                        "rmse_points": float(np.sqrt(np.mean(resid ** 2)) * 100) if len(calib) else None,
                        "predicted_val_accuracy_before_finetune": teacher_val - slope * sel.cost},
        "candidates": {"distilled_now": len(todo), "from_journal": from_journal, "journal": str(journal.path)},
        "options": {"candidates": list(opts.candidates), **opts.key(), "calibration": opts.calibration},
        "seconds": {"pricing": round(pricing_s, 1), "distillation": round(distill_s, 1),
                    "calibration": round(calib_s, 1)},
    }
    log(f"hant: chose {details['replaced']} of {len(layers)} layers replaced, summed loss {sel.cost:.4f}, "
        f"predicted {pred_ms:.3f} ms (budget {ctx.budget_ms:g} ms)")
    return MethodResult(adapted, pred_ms, details, finetuned=False)
