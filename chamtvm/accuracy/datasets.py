"""Offline image data for the built-in proxy tasks (nothing is ever downloaded).

* ``fashion-mnist``: the Debian package ``dataset-fashion-mnist`` installs the original
  idx ``.gz`` files under ``/usr/share/datasets/fashion-mnist/`` (override the folder
  with the environment variable ``CHAMTVM_FASHION_MNIST_DIR``); read with gzip + numpy.
* ``digits``: scikit-learn's ``load_digits`` (8x8, 1,797 images), nearest-upsampled to
  28x28 so the ``fashion`` space fits it. Smoke tests only: almost every candidate reaches
  97-99 %, so it cannot rank architectures.

Arrays: images ``(N, 1, 28, 28)`` float32 standardised, labels ``(N,)`` int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
TASKS = ("fashion-mnist", "digits")
FASHION_DEFAULTS = (10000, 10000)  # training images, evaluation images


class DatasetMissingError(FileNotFoundError):
    """The offline dataset is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Split:
    """A fixed train subset and a fixed held-out evaluation subset of one task."""

    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray


def _read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (gzip'ed): big-endian magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(tuple(dims))


def fashion_dir() -> Path:
    return Path(os.environ.get("CHAMTVM_FASHION_MNIST_DIR", FASHION_DIR))


def load_fashion_mnist() -> dict[str, np.ndarray]:
    """The four raw Fashion-MNIST arrays (uint8 images (N, 28, 28), uint8 labels (N,))."""
    root = fashion_dir()
    missing = [n for n in FASHION_FILES.values() if not (root / n).exists()]
    if missing:
        raise DatasetMissingError(
            f"Fashion-MNIST files {missing} not found in {root}. Install them with "
            f"`sudo apt-get install dataset-fashion-mnist` (or point "
            f"CHAMTVM_FASHION_MNIST_DIR at a folder holding the idx .gz files)."
        )
    return {k: _read_idx(root / n) for k, n in FASHION_FILES.items()}


_CACHE: dict[tuple, Split] = {}


def load_split(task: str, train_size: int | None = None, eval_size: int | None = None,
               eval_split: str = "test") -> Split:
    """The fixed subsets of ``task``; the same arguments always give the same images.

    ``eval_split="val"`` (fashion-mnist): the evaluation images are a validation split,
    drawn from the 60k *training* images disjoint from the training subset, so protocols
    and predictors can be chosen without ever looking at the test set.

    fashion-mnist defaults: 10,000 training images drawn (fixed seed 0) from the 60k
    training set, evaluation on the whole 10k test set (a 2,000-image evaluation alone
    has a binomial standard deviation of ~0.8 points at 85 %; the measured seed noise of
    the whole protocol fell from 1.67 to 0.60 points over 4 networks x 2 seeds,
    ``protocol_study`` in ``benchmarks/results/adaptation.json``).
    digits: 1,200 train / the remaining 597 for evaluation.
    """
    if eval_split not in ("test", "val"):
        raise ValueError(f"eval_split must be 'test' or 'val', got {eval_split!r}")
    key = (task, train_size, eval_size, eval_split)
    if key in _CACHE:
        return _CACHE[key]
    rng = np.random.default_rng(0)  # the subset is part of the task definition, not a seed
    if task == "fashion-mnist":
        raw = load_fashion_mnist()
        n_tr = FASHION_DEFAULTS[0] if train_size is None else train_size
        n_ev = FASHION_DEFAULTS[1] if eval_size is None else eval_size
        perm = rng.permutation(len(raw["train_labels"]))
        tr = perm[:n_tr]
        ev = rng.permutation(len(raw["test_labels"]))[:n_ev]
        mean, std = 0.2860, 0.3530
        def prep(x):
            return ((x.astype(np.float32) / 255.0 - mean) / std)[:, None]
        if eval_split == "val":
            val = perm[len(perm) - n_ev:]  # the end of the same permutation: disjoint from tr
            ex, ey = raw["train_images"][val], raw["train_labels"][val]
        else:
            ex, ey = raw["test_images"][ev], raw["test_labels"][ev]
        split = Split(prep(raw["train_images"][tr]), raw["train_labels"][tr].astype(np.int64),
                      prep(ex), ey.astype(np.int64))
    elif task == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = d.images.astype(np.float32) / 16.0
        # nearest upsampling 8 -> 28 (index map), so 28x28 spaces run unchanged
        idx = (np.arange(28) * 8) // 28
        x = x[:, idx][:, :, idx]
        x = ((x - x.mean()) / x.std())[:, None].astype(np.float32)
        y = d.target.astype(np.int64)
        perm = rng.permutation(len(y))
        n_tr = 1200 if train_size is None else train_size
        rest = perm[n_tr:]
        n_ev = len(rest) if eval_size is None else eval_size
        split = Split(x[perm[:n_tr]], y[perm[:n_tr]], x[rest[:n_ev]], y[rest[:n_ev]])
    else:
        raise ValueError(f"unknown proxy task {task!r}; valid: {list(TASKS)}")
    _CACHE[key] = split
    return split
