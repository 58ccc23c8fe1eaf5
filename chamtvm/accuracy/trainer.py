"""Trainers (``arch -> accuracy``) and a journaled, executor-agnostic training runner.

A *trainer* turns one architecture of a space into an accuracy (fraction in [0, 1]):

* :class:`FunctionTrainer` wraps a user function ``fn(arch) -> accuracy``;
* :class:`CommandTrainer` runs a user shell command with the arch JSON file path as its
  last argument and reads the accuracy from the last line it prints;
* :class:`ProxyTaskTrainer` is the built-in offline CPU task (Fashion-MNIST subset, or
  digits for smoke tests), one torch thread per training;
* ``nasbench.NasBenchMacroTrainer`` looks accuracies up (the tabular task).

Tasks by name: ``tasks.TASKS`` (``tasks.make_trainer``).

:func:`train_archs` runs independent jobs through any ``concurrent.futures.Executor``
(default: :class:`SequentialExecutor`, in-process) so a Ray or Dask executor can replace
it unchanged; every finished training is appended to a :class:`~.journal.Journal` at
once, and architectures already in the journal are not trained again. A failing job
comes back as a :class:`TrainResult` with ``error`` set; it never stops the batch.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..space.schema import Arch, SearchSpace
from .journal import Journal


class Trainer:
    """Base: ``train(space, arch, seed) -> accuracy`` in [0, 1]; ``task``/``epochs`` label it."""

    task: str = "custom"
    epochs: int | None = None
    protocol: str | None = None  # what else defines an accuracy (data sizes); part of the journal key
    kind: str = "training"       # "lookup" for tabular tasks: journaled with "kind": "lookup"

    def train(self, space: SearchSpace, arch: Arch, seed: int) -> float:  # pragma: no cover
        raise NotImplementedError

    def check(self, space: SearchSpace) -> None:
        """Raise before any job starts when the trainer cannot work (e.g. data missing)."""


class FunctionTrainer(Trainer):
    """Wrap ``fn(arch) -> accuracy``; module-level functions also work in process pools."""

    def __init__(self, fn: Callable[[Arch], float], task: str = "function", epochs: int | None = None):
        self.fn, self.task, self.epochs = fn, task, epochs

    def train(self, space, arch, seed):
        return float(self.fn(arch))


class CommandTrainer(Trainer):
    """Run ``command ARCH_JSON_PATH``; the last non-empty stdout line is the accuracy.

    The JSON file holds the architecture dict plus ``"space"`` (its name) and ``"seed"``.
    A printed value above 1 is read as a percentage (92.5 -> 0.925). ``timeout_s`` bounds
    one training; a non-zero exit or unparsable output raises (the runner records it).
    """

    def __init__(self, command: str, timeout_s: float | None = None, task: str = "command"):
        self.command, self.timeout_s, self.task = command, timeout_s, task

    def train(self, space, arch, seed):
        with tempfile.TemporaryDirectory(prefix="chamtvm-arch-") as tmp:
            path = os.path.join(tmp, "arch.json")
            with open(path, "w") as f:
                json.dump({**arch.to_dict(), "space": space.name, "seed": seed}, f)
            proc = subprocess.run(
                [*shlex.split(self.command), path], capture_output=True, text=True,
                timeout=self.timeout_s,
            )
        if proc.returncode != 0:
            raise RuntimeError(
                f"trainer command exited with {proc.returncode}: {proc.stderr.strip()[-500:]}"
            )
        lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
        if not lines:
            raise RuntimeError("trainer command printed nothing; expected the accuracy")
        try:
            value = float(lines[-1])
        except ValueError:
            raise RuntimeError(f"trainer command's last line is not a number: {lines[-1]!r}") from None
        value = value / 100.0 if value > 1.0 else value
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise RuntimeError(f"trainer command printed accuracy {lines[-1]!r} outside [0, 1] / [0, 100]")
        return value


class ProxyTaskTrainer(Trainer):
    """Built-in offline proxy task: train on a fixed subset, accuracy on a fixed eval subset.

    ``task``: ``fashion-mnist`` (defaults: 10,000 train images, the 10,000 test images for
    evaluation, 3 epochs, batch 64; ``datasets.load_split`` says why) or ``digits`` (smoke
    tests: 1,200 / 597 images, 4 epochs, batch 32). ``protocol`` names the data sizes,
    epochs and batch (e.g. ``10000x3-e10000-b64``); journaled results of another protocol
    are never reused. AdamW
    (lr ``lr``, weight decay 1e-4) with a cosine schedule; the seed sets weights and
    shuffling. ``eval_split="val"``: accuracy on a validation split of the training images
    (protocol suffix ``-val``), never the test set. Uses one torch thread (two were measured 4-8x slower on 2-core machines).
    Inputs are resized when ``arch.resolution`` is not 28.
    """

    def __init__(self, task: str = "fashion-mnist", epochs: int | None = None,
                 train_size: int | None = None, eval_size: int | None = None,
                 batch_size: int | None = None, lr: float = 3e-3, eval_split: str = "test"):
        from .datasets import TASKS

        if task not in TASKS:
            raise ValueError(f"unknown proxy task {task!r}; valid: {list(TASKS)}")
        self.task = task
        fashion = task == "fashion-mnist"
        self.epochs = epochs if epochs is not None else (3 if fashion else 4)
        self.train_size, self.eval_size = train_size, eval_size
        self.batch_size = batch_size if batch_size is not None else (64 if fashion else 32)
        self.lr = lr
        from .datasets import FASHION_DEFAULTS

        n_tr = train_size if train_size is not None else (FASHION_DEFAULTS[0] if fashion else 1200)
        n_ev = eval_size if eval_size is not None else (FASHION_DEFAULTS[1] if fashion else "rest")
        self.eval_split = eval_split
        self.protocol = (f"{n_tr}x{self.epochs}-e{n_ev}-b{self.batch_size}" + (f"-lr{lr:g}" if lr != 3e-3 else "")
                         + ("-val" if eval_split == "val" else ""))

    def check(self, space):
        from .datasets import load_split

        load_split(self.task, self.train_size, self.eval_size, self.eval_split)  # raises DatasetMissingError
        if space.in_channels != 1 or space.num_classes != 10:
            raise ValueError(
                f"task {self.task} has 1x28x28 inputs and 10 classes; space {space.name!r} has "
                f"{space.in_channels} channels and {space.num_classes} classes (use --space fashion)"
            )

    def train(self, space, arch, seed):
        import torch
        import torch.nn.functional as F

        from ..space.model import build_model
        from .datasets import load_split

        self.check(space)
        split = load_split(self.task, self.train_size, self.eval_size, self.eval_split)
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model = build_model(space, arch, seed=seed, randomize_bn=False).train()
            gen = torch.Generator().manual_seed(seed)
            xt, yt = torch.from_numpy(split.train_x), torch.from_numpy(split.train_y)
            xe, ye = torch.from_numpy(split.eval_x), torch.from_numpy(split.eval_y)
            res = arch.resolution

            def fit_res(x):
                return x if x.shape[-1] == res else F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)

            steps_per_epoch = math.ceil(len(yt) / self.batch_size)
            total = steps_per_epoch * self.epochs
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
            for _ in range(self.epochs):
                perm = torch.randperm(len(yt), generator=gen)
                for b in range(steps_per_epoch):
                    idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
                    loss = F.cross_entropy(model(fit_res(xt[idx])), yt[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for b in range(0, len(ye), 500):
                    correct += int((model(fit_res(xe[b:b + 500])).argmax(1) == ye[b:b + 500]).sum())
            return correct / len(ye)
        finally:
            torch.set_num_threads(prev_threads)


class SequentialExecutor(cf.Executor):
    """Runs each job in the calling process at ``submit`` time (returns a done Future)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - the job's failure becomes its result
            fut.set_exception(e)
        return fut


@dataclass
class TrainResult:
    """One training job. ``accuracy`` is None when it failed (``error`` says why)."""

    arch: Arch
    seed: int
    task: str
    epochs: int | None
    accuracy: float | None = None
    seconds: float | None = None
    error: str | None = None
    cached: bool = False  # True: read from the journal, not trained in this call
    extra: dict = field(default_factory=dict)


def _train_job(trainer: Trainer, space: SearchSpace, arch: Arch, seed: int) -> tuple[float, float]:
    """Top-level (picklable) job: (accuracy, wall seconds)."""
    t0 = time.perf_counter()
    acc = float(trainer.train(space, arch, seed))
    if not 0.0 <= acc <= 1.0 or math.isnan(acc):
        raise ValueError(f"trainer returned accuracy {acc!r}; expected a fraction in [0, 1]")
    return acc, time.perf_counter() - t0


def _record_key(task: str, space: str, arch_json: str, seed: int, epochs, protocol=None) -> tuple:
    return (task, space, arch_json, int(seed), epochs, protocol)


def train_archs(space: SearchSpace, archs: Sequence[Arch], trainer: Trainer,
                journal: Journal | None = None, seed: int = 0,
                executor: cf.Executor | None = None, progress: bool = True) -> list[TrainResult]:
    """Train every arch (once per distinct arch), reusing journaled results; one result per arch.

    Results come back in the order of ``archs``. Each newly finished training is appended
    to ``journal`` as soon as it completes (fields: architecture, accuracy, seed, epochs,
    seconds, task, space), so an interrupted call loses at most the jobs in flight.
    """
    known: dict[tuple, dict] = {}
    if journal is not None:  # a rejected record (accuracy NaN, ...) is a failed training, not retried
        for rec in journal.rejected() + journal.records():
            arch_json = json.dumps(rec["architecture"], sort_keys=True)
            known[_record_key(rec["task"], rec.get("space", ""), arch_json, rec["seed"], rec["epochs"],
                              rec.get("protocol"))] = rec
    results: dict[str, TrainResult] = {}
    todo: list[Arch] = []
    for arch in archs:
        key_json = arch.to_json()
        if key_json in results:
            continue
        rec = known.get(_record_key(trainer.task, space.name, key_json, seed, trainer.epochs, trainer.protocol))
        if rec is not None and "error" in rec:
            results[key_json] = TrainResult(arch, seed, trainer.task, trainer.epochs, None, rec["seconds"],
                                            error=rec["error"], cached=True)
        elif rec is not None:
            results[key_json] = TrainResult(arch, seed, trainer.task, trainer.epochs,
                                            float(rec["accuracy"]), rec["seconds"], cached=True)
        else:
            results[key_json] = TrainResult(arch, seed, trainer.task, trainer.epochs)
            todo.append(arch)

    if todo:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"training ({trainer.task})", unit="arch")
        executor = executor or SequentialExecutor()
        futures: dict[cf.Future, Arch] = {}

        def finish(done):
            for fut in done:
                arch = futures.pop(fut)
                res = results[arch.to_json()]
                try:
                    res.accuracy, res.seconds = fut.result()
                except Exception as e:  # noqa: BLE001 - one bad candidate never stops the batch
                    res.error = f"{type(e).__name__}: {e}"
                else:
                    if journal is not None:
                        journal.append({
                            "architecture": arch.to_dict(), "accuracy": res.accuracy,
                            "seed": int(seed), "epochs": trainer.epochs,
                            "seconds": round(res.seconds, 3), "task": trainer.task,
                            "space": space.name,
                            **({"protocol": trainer.protocol} if trainer.protocol else {}),
                            **({"kind": trainer.kind} if trainer.kind != "training" else {}),
                        })
                if bar is not None:
                    bar.update(1)
                    if res.accuracy is not None:
                        bar.set_postfix(acc=f"{res.accuracy:.4f}")

        try:
            for arch in todo:
                futures[executor.submit(_train_job, trainer, space, arch, seed)] = arch
                finish([f for f in list(futures) if f.done()])
            while futures:
                done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
                finish(done)
        finally:
            if bar is not None:
                bar.close()
    return [results[a.to_json()] for a in archs]
