"""Training loops of the transformations: a network from its labels, a network distilled from a
teacher's logits, and accuracy. One torch thread (two were measured 4-8x slower on the
2-core machines this runs on); seeded; an interrupted training resumes from its last
finished epoch when it is given a checkpoint path.

Loss with a teacher (Hinton et al.): ``alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) +
(1 - alpha) * cross-entropy(s, y)``. Optimiser: AdamW (weight decay 1e-4) with a cosine
schedule over all steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Protocol:
    """How a network is trained: epochs, batch size, peak learning rate, seed, and (with a
    teacher) the distillation weight ``alpha`` and temperature."""

    epochs: int
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    alpha: float = 0.9
    temperature: float = 4.0

    @property
    def name(self) -> str:
        return f"e{self.epochs}-b{self.batch_size}-lr{self.lr:g}-s{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


class one_thread:
    """Context: torch runs on one thread inside, the previous count is restored after."""

    def __enter__(self):
        import torch

        self.prev = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.prev)


def _save_checkpoint(path: Path, state: dict) -> None:
    import torch

    from ..core.atomic import atomic_path

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, str(tmp))


def fit(module, x: np.ndarray, y: np.ndarray, protocol: Protocol, teacher=None,
        checkpoint: str | Path | None = None, log: Callable[[str], None] | None = None, desc: str = "training",
        progress: bool = False):
    """Train ``module`` (in place; returned in eval mode) on images ``x`` ``(N, C, H, W)`` and
    labels ``y`` ``(N,)``; with ``teacher`` (a module), by distillation from its logits.
    ``checkpoint``: a file the state is saved to after every epoch (torch's native format,
    loaded with ``weights_only``), so a rerun continues from the last finished epoch; it is
    removed when the training ends. ``progress``: show a progress bar."""
    import torch
    import torch.nn.functional as F

    from ..core.progress import progress_bar

    ckpt = Path(checkpoint) if checkpoint else None
    with one_thread():
        torch.manual_seed(protocol.seed)
        gen = torch.Generator().manual_seed(protocol.seed)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        steps = math.ceil(len(yt) / protocol.batch_size)
        total = steps * protocol.epochs
        opt = torch.optim.AdamW(module.parameters(), lr=protocol.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        start = 0
        if ckpt is not None and ckpt.exists():
            state = torch.load(str(ckpt), weights_only=True)
            module.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            start = int(state["epoch"])
            if log:
                log(f"{desc}: resumed after epoch {start} of {protocol.epochs} ({ckpt})")
        if teacher is not None:
            teacher.eval()
        bar = progress_bar(total - start * steps, desc, enabled=progress)
        try:
            for epoch in range(start, protocol.epochs):
                module.train()
                perm = torch.randperm(len(yt), generator=gen)
                for b in range(steps):
                    idx = perm[b * protocol.batch_size:(b + 1) * protocol.batch_size]
                    out = module(xt[idx])
                    loss = F.cross_entropy(out, yt[idx])
                    if teacher is not None:
                        with torch.no_grad():
                            t_out = teacher(xt[idx])
                        T = protocol.temperature
                        kd = F.kl_div(F.log_softmax(out / T, 1), F.log_softmax(t_out / T, 1), reduction="batchmean",
                                      log_target=True) * T * T
                        loss = protocol.alpha * kd + (1 - protocol.alpha) * loss
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.update(1)
                if ckpt is not None and epoch + 1 < protocol.epochs:
                    _save_checkpoint(ckpt, {"model": module.state_dict(), "optimizer": opt.state_dict(),
                                            "scheduler": sched.state_dict(), "generator": gen.get_state(),
                                            "epoch": epoch + 1})
        finally:
            bar.close()
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    return module.eval()


def logits(module, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """``module``'s outputs ``(N, classes)`` on images ``x`` (eval mode, no gradients)."""
    import torch

    module.eval()
    outs = []
    with one_thread(), torch.no_grad():
        for b in range(0, len(x), batch):
            outs.append(module(torch.from_numpy(x[b:b + batch])).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def accuracy(module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy (fraction) of ``module`` on images ``x`` and labels ``y``."""
    return float((logits(module, x).argmax(1) == y).mean())
