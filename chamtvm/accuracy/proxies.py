"""Zero-cost proxies: scores of an untrained network that correlate with its trained
accuracy, computed before any lookup for every network of the pool (prior features of
``budgeted.pick_under_budgets``).

Per network (the space's torch model, ``space.model.build_model``, weights from seed 0):

* ``synflow`` (Tanaka et al., NeurIPS 2020; as a NAS proxy: Abdelfattah et al., ICLR
  2021): the network with every weight replaced by its absolute value, in float64, on an
  all-ones input; ``R = sum(output)``; score ``log(sum |w * dR/dw|)`` over all weights.
  Data-free. BatchNorm in eval mode (untrained statistics: an affine identity); clipped
  activations (ReLU6) are replaced by ReLU, since synflow is defined for the
  positively-homogeneous network and ReLU6 would saturate on the all-ones input.
* ``naswot`` (Mellor et al., ICML 2021): for a batch of inputs, the binary code of every
  ReLU unit's sign pattern; ``K[i, j]`` = units on which inputs i and j agree; score
  ``log|det K|``. Train-mode BatchNorm, forward only.
* ``snip`` (Lee et al., ICLR 2019; as a proxy: Abdelfattah et al.): ``log(sum |w * dL/dw|)``
  of the cross-entropy loss on one labelled batch, over conv and linear weights,
  train-mode BatchNorm.

Inputs (``proxy_batch``): the task's own training images when the task has a dataset
(``fashion-mnist``, ``digits``: the first ``batch`` images of its fixed training subset
and their labels); a lookup task whose images are not shipped (``nas-bench-macro``:
CIFAR-10 is not available offline) gets a seeded standard-normal batch of the space's
input shape with seeded labels, and the cache records which (``inputs`` field).

Cache (``ProxyCache``): JSON, one entry per architecture key (``Arch.to_json``), written
atomically, extended as networks are scored (networks whose torch modules are identical
are scored once), so a rerun scores nothing twice. The bundled ``data/proxies_macro.json``
holds all 6,561 ``macro`` networks compactly (rows in the space's index order, 4
decimals); regenerate it with ``python -m chamtvm.accuracy.proxies --space macro --out
CACHE --bundle data/proxies_macro.json`` (about an hour of one CPU core).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

PROXIES = ("synflow", "naswot", "snip")
BATCH = 16  # inputs per batch, fixed a priori by CPU cost (Mellor et al. use 128 on a GPU)
FORMAT = "chamtvm.accuracy.proxies"
VERSION = 1
BUNDLED = {"macro": Path(__file__).parent / "data" / "proxies_macro.json"}


def proxy_batch(task: str | None, space, batch: int = BATCH, seed: int = 0):
    """``(inputs (B, C, R, R) float32 tensor, labels (B,) int64 tensor, description)``: the
    batch the data-dependent proxies see (module docstring)."""
    import torch

    from ..space.model import input_shape

    if task in ("fashion-mnist", "digits"):
        from .datasets import load_split

        split = load_split(task)
        x, y = split.train_x[:batch], split.train_y[:batch]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), f"{task} training images [0:{batch}]"
    shape = list(input_shape(space, space.sample(np.random.default_rng(0))))
    shape[0] = batch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    y = torch.randint(0, space.num_classes, (batch,), generator=g)
    return x, y, f"standard normal {tuple(shape)}, seed {seed} (the task's images are not available offline)"


def _weights(model):
    from torch import nn

    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow(model, shape) -> float:
    """log synflow of ``model`` (float64 copy, |weights|, ReLU6 -> ReLU) on ones ``shape``."""
    import copy

    import torch
    from torch import nn

    net = copy.deepcopy(model).double().eval()
    for name, mod in list(net.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(mod, child_name, nn.ReLU())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones([1, *shape[1:]], dtype=torch.float64))
    out.sum().backward()
    s = sum(float((w * w.grad).abs().sum().detach()) for w in _weights(net))
    return math.log(s) if s > 0 else float("-inf")


def naswot(model, x) -> float:
    """log|det K| of the ReLU sign-pattern agreement kernel over the batch ``x``."""
    import torch
    from torch import nn

    B = len(x)
    K = torch.zeros(B, B, dtype=torch.float64)

    def hook(mod, inp, out):
        c = (out.detach().reshape(B, -1) > 0).double()
        K.add_(c @ c.T + (1 - c) @ (1 - c).T)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    model.train()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.eval()
    sign, logdet = torch.linalg.slogdet(K)
    return float(logdet) if float(sign) > 0 else float("-inf")


def snip(model, x, y) -> float:
    """log of sum |w * dL/dw| of the cross-entropy on ``(x, y)`` (conv and linear weights)."""
    import torch.nn.functional as F

    model.train()
    model.zero_grad()
    try:
        F.cross_entropy(model(x), y).backward()
        s = sum(float((w * w.grad).abs().sum().detach()) for w in _weights(model))
    finally:
        model.eval()
    return math.log(s) if s > 0 else float("-inf")


def structure(model) -> str:
    """The module structure of ``model`` without positions and identities: two networks
    that differ only in where an identity layer sits (e.g. ``skip`` before or after a
    block of the same stage) build the same modules in the same order, hence the same
    weights from the same seed and the same scores."""
    import re

    lines = [ln for ln in repr(model).splitlines() if "Identity()" not in ln]
    return "\n".join(re.sub(r"^\s*\([^)]*\):\s*", "", ln).strip() for ln in lines)


def network_proxies(model, x, y, resolution: int | None = None) -> dict[str, float]:
    """The three proxies of one torch model on the batch ``(x, y)``, the images resized
    (bilinear, as the proxy trainer does) to ``resolution`` px when given and different."""
    if resolution is not None and x.shape[-1] != resolution:
        import torch.nn.functional as F

        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return {"synflow": synflow(model, tuple(x.shape)), "naswot": naswot(model, x), "snip": snip(model, x, y)}


class ProxyCache:
    """Proxies of a space's networks on one input batch, as a JSON file (module docstring).

    ``get(space, archs, progress)`` -> ``(N, 3)`` array in the order of ``PROXIES``,
    scoring (and saving) only the networks not cached yet."""

    def __init__(self, path: str | os.PathLike, space, task: str | None = None, batch: int = BATCH):
        self.path = Path(path)
        self.space, self.task, self.batch = space, task, batch
        self.entries: dict[str, list[float]] = {}
        self.structures: dict[str, list[float]] = {}  # hash of the torch module's repr -> scores
        self.seconds = 0.0
        self.inputs = None
        if self.path.exists():
            d = json.loads(self.path.read_text())
            if d.get("format") != FORMAT or d.get("version") != VERSION:
                raise ValueError(f"{self.path}: not a proxy cache of version {VERSION}")
            if d.get("space") != space.name:
                raise ValueError(f"{self.path} holds proxies of space {d.get('space')!r}, not {space.name!r}")
            self.entries = d["networks"]
            self.structures = d.get("structures", {})
            self.seconds = float(d.get("seconds", 0.0))
            self.inputs = d.get("inputs")

    def save(self) -> None:
        from ..core.atomic import atomic_write_text

        atomic_write_text(self.path, json.dumps({
            "format": FORMAT, "version": VERSION, "space": self.space.name, "proxies": list(PROXIES),
            "inputs": self.inputs, "batch": self.batch, "seconds": round(self.seconds, 1),
            "networks_scored": len(self.entries), "distinct_structures": len(self.structures),
            "networks": self.entries, "structures": self.structures}, separators=(",", ":")))

    def get(self, archs, progress: bool = False, save_every: int = 200) -> np.ndarray:
        import torch

        keys = [a.to_json() for a in archs]
        todo = [i for i, k in enumerate(keys) if k not in self.entries]
        if todo:
            x, y, desc = proxy_batch(self.task, self.space, self.batch)
            if self.inputs is not None and self.inputs != desc:
                raise ValueError(f"{self.path}: cached on inputs {self.inputs!r}, asked for {desc!r}")
            self.inputs = desc
            bar = None
            if progress:
                from ..core.progress import progress_bar

                bar = progress_bar(len(todo), f"zero-cost proxies of {len(todo)} networks", True)
            from ..space.model import build_model

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            same = self.structures  # equal module structure (and seed): equal weights, equal scores
            try:
                for n, i in enumerate(todo, 1):
                    t0 = time.process_time()
                    model = build_model(self.space, archs[i], seed=0, randomize_bn=False)
                    res = getattr(archs[i], "resolution", None)
                    shape = hashlib.sha1(f"{res} {structure(model)}".encode()).hexdigest()[:16]
                    if shape not in same:
                        p = network_proxies(model, x, y, res)
                        same[shape] = [round(p[k], 6) for k in PROXIES]
                    self.seconds += time.process_time() - t0
                    self.entries[keys[i]] = same[shape]
                    if bar is not None:
                        bar.update(1)
                    if n % save_every == 0:
                        self.save()
            finally:
                torch.set_num_threads(threads)
                if bar is not None:
                    bar.close()
            self.save()
        return np.array([self.entries[k] for k in keys], dtype=np.float64)


def write_bundle(cache: ProxyCache, path: str | os.PathLike) -> None:
    """The compact form of a complete cache of a whole space: rows in the space's index
    order (``iter_indices``: ``itertools.product`` of the choice indices), 4 decimals."""
    from ..core.atomic import atomic_write_text

    space = cache.space
    rows = [[round(v, 4) for v in cache.entries[space.from_indices(r).to_json()]] for r in space.iter_indices()]
    atomic_write_text(path, json.dumps({
        "format": FORMAT + ".bundle", "version": VERSION, "space": space.name, "proxies": list(PROXIES),
        "inputs": cache.inputs, "batch": cache.batch, "cpu_seconds_to_compute": round(cache.seconds, 1),
        "distinct_structures": len(cache.structures), "order": "index rows of the space (itertools.product)",
        "rows": rows}, separators=(",", ":")))


def load_bundle(space) -> tuple[dict[str, list[float]], dict] | None:
    """``(architecture key -> proxies, metadata)`` of the space's bundled cache, or None."""
    path = BUNDLED.get(space.name)
    if path is None or not path.exists():
        return None
    d = json.loads(path.read_text())
    if d.get("format") != FORMAT + ".bundle" or d.get("space") != space.name:
        raise ValueError(f"{path}: not a proxy bundle of space {space.name!r}")
    keys = [space.from_indices(r).to_json() for r in space.iter_indices()]
    if len(keys) != len(d["rows"]):
        raise ValueError(f"{path}: {len(d['rows'])} rows for a space of {len(keys)} networks")
    return dict(zip(keys, d["rows"])), {k: v for k, v in d.items() if k != "rows"}


def has_bundle(space, task: str | None, archs) -> bool:
    """Whether the bundled cache answers ``pool_proxies`` for these networks without scoring."""
    if task in ("fashion-mnist", "digits"):
        return False
    bundle = load_bundle(space)
    return bundle is not None and all(a.to_json() in bundle[0] for a in archs)


def pool_proxies(space, archs, task: str | None = None, cache_dir: str | os.PathLike | None = None,
                 progress: bool = False) -> np.ndarray:
    """``(N, 3)`` proxies of ``archs`` (order of ``PROXIES``): from the bundled cache of the
    space when it has one and the task has no images of its own (``macro``), else from
    ``<cache_dir>/proxies-<space>-<task>.json`` (scored and saved as needed). Non-finite
    scores (a network whose sign patterns are degenerate) are replaced by the pool's
    smallest finite score."""
    if task not in ("fashion-mnist", "digits"):
        bundle = load_bundle(space)
        if bundle is not None and all(a.to_json() in bundle[0] for a in archs):
            return _finite(np.array([bundle[0][a.to_json()] for a in archs], dtype=np.float64))
    if cache_dir is None:
        from ..core.workdir import runs_dir

        cache_dir = runs_dir()
    path = Path(cache_dir) / f"proxies-{space.name}-{task or 'none'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return _finite(ProxyCache(path, space, task).get(archs, progress=progress))


def _finite(P: np.ndarray) -> np.ndarray:
    P = np.array(P, dtype=np.float64)
    for j in range(P.shape[1]):
        bad = ~np.isfinite(P[:, j])
        if bad.any():
            P[bad, j] = P[~bad, j].min() if (~bad).any() else 0.0
    return P


def main(argv=None) -> int:
    """Regenerate a proxy cache: ``python -m chamtvm.accuracy.proxies --space macro --out FILE``."""
    import argparse
    import itertools

    from ..space.schema import SearchSpace

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--space", default="macro")
    ap.add_argument("--task", default=None, help="task whose images the proxies see (default: none, seeded noise)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="score only the first N networks (chunks: the "
                                                            "cache resumes)")
    ap.add_argument("--bundle", type=Path, default=None,
                    help="then write the compact bundle of the whole space to this file")
    args = ap.parse_args(argv)
    space = SearchSpace.load(args.space)
    archs = [space.from_indices(r) for r in itertools.islice(space.iter_indices(), args.limit)]
    cache = ProxyCache(args.out, space, args.task)
    cache.get(archs, progress=True)
    print(f"{len(cache.entries)} networks in {args.out} ({cache.seconds:.0f} s of CPU)")
    if args.bundle:
        write_bundle(cache, args.bundle)
        print(f"bundle written to {args.bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
