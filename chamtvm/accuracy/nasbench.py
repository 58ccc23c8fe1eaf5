"""NAS-Bench-Macro (CIFAR-10): the built-in tabular task and ground truth for predictors.

The file ``nas-bench-macro_cifar10.json`` ships as package data in
``chamtvm/accuracy/data/`` with its Apache-2.0 licence and citation (``NOTICE`` there;
Su et al., CVPR 2021, repository xiusu/NAS-Bench-Macro). 6,561 architectures: 8 layers,
each choice in {0: identity, 1: MB block expansion 3 kernel 3, 2: MB block expansion 6
kernel 5}; the bundled space ``macro`` rebuilds them exactly (its layer choices are
``skip``, ``ir_k3_e3``, ``ir_k5_e6`` in that order, so a network's key is its 8 layer
choice indices as digits).

The task ``nas-bench-macro`` (:class:`NasBenchMacroTrainer`): a "training" is a lookup of
the mean test accuracy of the benchmark's three seeds, journaled like a training with
``"kind": "lookup"``. It also looks up the networks of a *sub-space* of ``macro`` (any name;
every layer keeps a subset of macro's choices, e.g. a space reduced by ``chamtvm
friendliness``): keys come from the block names (``space_keys``), not the choice indices.

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

from .trainer import Trainer

ENCODINGS = ("ordinal", "onehot", "ops", "ops+cost")
FILENAME = "nas-bench-macro_cifar10.json"
PACKAGED = Path(__file__).parent / "data" / FILENAME
MACRO_SPACE = "macro"


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
        """The table (default: the packaged copy); keys sorted."""
        path = Path(path) if path is not None else PACKAGED
        if path == PACKAGED and path in _LOADED:
            return _LOADED[path]
        if not path.exists():
            raise FileNotFoundError(f"NAS-Bench-Macro file {path} not found (the package ships it as "
                                    f"chamtvm/accuracy/data/{FILENAME}; reinstall chamtvm)")
        data = json.loads(path.read_text())
        keys = sorted(data)
        table = cls(
            keys=keys,
            seed_acc=np.array([data[k]["test_acc"] for k in keys], dtype=np.float64),
            mean_acc=np.array([data[k]["mean_acc"] for k in keys], dtype=np.float64),
            params=np.array([data[k]["params"] for k in keys], dtype=np.float64),
            flops=np.array([data[k]["flops"] for k in keys], dtype=np.float64),
        )
        if path == PACKAGED:
            _LOADED[path] = table
        return table

    def row_of(self, keys) -> np.ndarray:
        """Row numbers ``(N,)`` of 8-digit keys (KeyError naming an unknown key)."""
        pos = getattr(self, "_pos", None)
        if pos is None:
            pos = {k: i for i, k in enumerate(self.keys)}
            object.__setattr__(self, "_pos", pos)
        try:
            return np.array([pos[k] for k in keys], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"architecture key {e.args[0]!r} is not in NAS-Bench-Macro") from None

    def true_accuracy(self, indices) -> np.ndarray:
        """Mean accuracy of the three seeds, as a fraction, ``(N,)``, of choice-index rows
        ``(N, 9)`` of the ``macro`` space (column 0: the resolution, then 8 layers)."""
        return self.mean_acc[self.row_of(index_keys(indices))] / 100.0

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


_LOADED: dict = {}


def index_keys(indices) -> list[str]:
    """8-digit keys of choice-index rows ``(N, 9)`` of the ``macro`` space."""
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    return ["".join(str(int(v)) for v in row[1:]) for row in idx]


def _macro_blocks() -> tuple[str, ...]:
    """macro's block names in digit order (every layer of ``macro`` has the same choices)."""
    from ..space.schema import SearchSpace

    return SearchSpace.load(MACRO_SPACE).layers[0].choices


def check_macro_space(space) -> None:
    """Raise ValueError unless ``space`` is NAS-Bench-Macro's space or a sub-space of it
    (the bundled ``macro`` under any name, or with some choices of some layers left out): the
    lookup is only meaningful for those networks."""
    from ..space.schema import SearchSpace

    ref = SearchSpace.load(MACRO_SPACE).to_dict()
    mine = space.to_dict()
    ok = "layers" in mine and len(mine["layers"]) == len(ref["layers"]) and all(
        {**m, "choices": r["choices"]} == r and set(m["choices"]) <= set(r["choices"])
        for m, r in zip(mine["layers"], ref["layers"]))
    if not ok or {**mine, "name": ref["name"], "layers": ref["layers"]} != ref:
        raise ValueError(f"task nas-bench-macro looks up NAS-Bench-Macro's networks: it needs space "
                         f"{MACRO_SPACE!r} or a sub-space of it, got {space.name!r} (use --space {MACRO_SPACE})")


def space_keys(space, indices) -> list[str]:
    """8-digit keys of choice-index rows ``(N, 9)`` of ``macro`` or a sub-space of it: each
    layer's digit is its block's position among macro's choices."""
    digit = {name: str(d) for d, name in enumerate(_macro_blocks())}
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    return ["".join(digit[layer.choices[int(i)]] for layer, i in zip(space.layers, row[1:])) for row in idx]


class NasBenchMacroTrainer(Trainer):
    """The tabular task: an architecture of ``macro`` -> the benchmark's mean accuracy of its
    three CIFAR-10 training seeds (fraction). No training happens (``kind = "lookup"``);
    ``seed`` is ignored (the value is already a three-seed mean)."""

    task = "nas-bench-macro"
    kind = "lookup"
    epochs = None
    protocol = "mean-of-3-seeds"

    def check(self, space):
        check_macro_space(space)

    def train(self, space, arch, seed):
        return float(self.true_accuracy(space, [space.indices(arch)])[0])

    def true_accuracy(self, space, indices) -> np.ndarray:
        """Ground truth of the lookup task: ``(N,)`` fractions of choice-index rows ``(N, 9)``
        of ``space`` (``macro`` or a sub-space of it)."""
        self.check(space)
        table = NasBenchMacro.load()
        return table.mean_acc[table.row_of(space_keys(space, indices))] / 100.0

    def ceiling(self) -> dict:
        """How well any predictor could rank: Kendall tau between two single training seeds
        of the benchmark over all 6,561 networks (mean over the three seed pairs). The task
        returns 3-seed means, whose own ceiling is higher still."""
        from .evaluate import kendall_tau

        s = NasBenchMacro.load().seed_acc
        taus = [kendall_tau(s[:, i], s[:, j]) for i, j in ((0, 1), (0, 2), (1, 2))]
        return {"kendall_tau_between_seeds": float(np.mean(taus)), "networks": int(len(s)),
                "what": "Kendall tau between two training seeds (mean of the 3 pairs), all 6,561 networks"}
