"""NAS-Bench-Macro (CIFAR-10) ground truth for measuring accuracy predictors.

The file ``nas-bench-macro_cifar10.json`` lives in the team's shared data folder
(``../shared/data`` beside the repository, or ``$CHAMTVM_SHARED_DATA``); it is never
copied into the project. 6,561 architectures: 8 layers, each choice in {0: identity,
1: MB block expansion 3 kernel 3, 2: MB block expansion 6 kernel 5}.

Encodings (``encode(keys, name)`` -> ``(N, D)`` float64):

* ``ordinal``: the choice digit / 2 per layer (D = 8); larger = more capable;
* ``onehot``: three indicators per layer (D = 24);
* ``ops``: per layer (is a block, expansion / 6, kernel / 5) (D = 24);
* ``ops+cost``: ``ops`` plus log FLOPs and log parameters, each min-max scaled to [0, 1]
  (D = 26): both follow from the architecture alone, no training needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENCODINGS = ("ordinal", "onehot", "ops", "ops+cost")
FILENAME = "nas-bench-macro_cifar10.json"


def shared_data_dir() -> Path:
    """``$CHAMTVM_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("CHAMTVM_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class NasBenchMacro:
    """Keys ``(N,)`` str, per-seed accuracies ``(N, 3)`` and mean accuracy ``(N,)`` in %."""

    keys: list[str]
    seed_acc: np.ndarray
    mean_acc: np.ndarray
    params: np.ndarray
    flops: np.ndarray

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "NasBenchMacro":
        path = Path(path) if path is not None else shared_data_dir() / FILENAME
        if not path.exists():
            raise FileNotFoundError(
                f"NAS-Bench-Macro file {path} not found; set CHAMTVM_SHARED_DATA to the folder "
                f"holding {FILENAME}"
            )
        data = json.loads(path.read_text())
        keys = sorted(data)
        return cls(
            keys=keys,
            seed_acc=np.array([data[k]["test_acc"] for k in keys], dtype=np.float64),
            mean_acc=np.array([data[k]["mean_acc"] for k in keys], dtype=np.float64),
            params=np.array([data[k]["params"] for k in keys], dtype=np.float64),
            flops=np.array([data[k]["flops"] for k in keys], dtype=np.float64),
        )

    def encode(self, name: str = "ops+cost") -> np.ndarray:
        """``(N, D)`` features of every architecture (see the module docstring)."""
        if name == "ops+cost":
            def unit(v):
                v = np.log(v)
                return (v - v.min()) / (v.max() - v.min())
            return np.c_[encode(self.keys, "ops"), unit(self.flops), unit(self.params)]
        return encode(self.keys, name)


def encode(keys, name: str = "ordinal") -> np.ndarray:
    """Feature matrix of 8-digit keys (see the module docstring; ``ops+cost`` needs the
    benchmark's FLOPs and parameters: use :meth:`NasBenchMacro.encode`)."""
    digits = np.array([[int(c) for c in k] for k in keys], dtype=np.int64)
    if name == "ordinal":
        return digits / 2.0
    if name == "onehot":
        return np.eye(3)[digits].reshape(len(keys), -1)
    if name == "ops":
        table = np.array([[0.0, 0.0, 0.0], [1.0, 3 / 6, 3 / 5], [1.0, 1.0, 1.0]])
        return table[digits].reshape(len(keys), -1)
    raise ValueError(f"unknown encoding {name!r}; valid: {list(ENCODINGS)}")
