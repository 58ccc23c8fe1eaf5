"""What both kinds of space share: the field checks of loading and the choice arithmetic.

A space (stage-wise ``schema.SearchSpace`` or per-layer ``layers.LayerSpace``) is a list of
dimensions, each a tuple of allowed values; an architecture picks one value per dimension.
:class:`ChoiceSpace` turns that into sampling, choice indices, the ``[0, 1]`` encoding,
mutation and crossover, given the subclass's ``dimensions()``, ``validate(arch)`` and
``_arch_from_values(values)``. :class:`ChoiceArch` gives architectures their JSON text form.
The ``check_*`` functions are the validations both spaces' ``from_dict`` run (each raises
``SpaceError`` naming the field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import SpaceError


def check_positive_int(value: Any, where: str) -> int:
    """``value`` when it is a positive int (not a bool); else SpaceError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpaceError(f"{where}: expected a positive integer, got {value!r}")
    return value


def check_positive_int_choices(value: Any, where: str) -> tuple[int, ...]:
    """A non-empty list of distinct positive ints, returned sorted as a tuple."""
    if not isinstance(value, (list, tuple)) or not value:
        raise SpaceError(f"{where}: expected a non-empty list of choices, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise SpaceError(f"{where}: every choice must be a positive integer, got {v!r}")
        out.append(v)
    if len(set(out)) != len(out):
        raise SpaceError(f"{where}: duplicate choices in {value!r}")
    return tuple(sorted(out))


def check_stride(value: Any, where: str) -> int:
    """A stride: 1 or 2."""
    if value not in (1, 2):
        raise SpaceError(f"{where}: must be 1 or 2, got {value!r}")
    return int(value)


def check_object_list(value: Any, where: str, what: str) -> list:
    """A non-empty JSON list (of ``what``, named in the message)."""
    if not isinstance(value, list) or not value:
        raise SpaceError(f"{where}: expected a non-empty list of {what}")
    return value


def check_space_header(d: Mapping[str, Any], known: Iterable[str]) -> None:
    """No field of ``d`` outside ``known``; ``in_channels`` and ``num_classes`` positive ints."""
    known = set(known)
    unknown = set(d) - known
    if unknown:
        raise SpaceError(f"space: unknown fields {sorted(unknown)}; known: {sorted(known)}")
    for field in ("in_channels", "num_classes"):
        check_positive_int(d.get(field), f"space.{field}")


def check_total_stride(resolution: Sequence[int], total_stride: int) -> None:
    """The smallest input resolution (px) must be at least the network's total stride."""
    if min(resolution) < total_stride:
        raise SpaceError(f"space.resolution: {min(resolution)} px is smaller than the total stride {total_stride}")


@dataclass(frozen=True)
class ChoiceSpace:
    """Fields every space has (``resolution``: input sizes in px, sorted) and the choice
    arithmetic over ``self.dimensions()`` (list of (path, choices), encoding order).

    Subclasses (frozen dataclasses) add their fields and define ``dimensions()``,
    ``validate(arch)`` (SpaceError on a field the space does not allow) and
    ``_arch_from_values(values)`` (one value per dimension -> arch)."""

    name: str
    in_channels: int
    num_classes: int
    resolution: tuple[int, ...]

    @property
    def encoding_length(self) -> int:
        return len(self.dimensions())

    def size(self) -> int:
        """Number of distinct architectures in the space."""
        return int(np.prod([len(c) for _, c in self.dimensions()], dtype=object))

    def iter_indices(self) -> Iterator[tuple[int, ...]]:
        """Every architecture's choice indices (a tuple of D ints), lazily, the last dimension
        varying fastest (``itertools.product`` order): the space's one enumeration order."""
        import itertools

        return itertools.product(*[range(len(c)) for _, c in self.dimensions()])

    def all_indices(self) -> np.ndarray:
        """Every architecture as choice-index rows ``(size, D)`` int64 in ``iter_indices``
        order; mind ``size()`` before calling."""
        return np.array(list(self.iter_indices()), dtype=np.int64)

    def sample(self, rng: np.random.Generator):
        """One architecture drawn uniformly per dimension."""
        return self.from_indices([int(rng.integers(len(c))) for _, c in self.dimensions()])

    def from_indices(self, indices: Sequence[int]):
        """The architecture that picks ``choices[indices[j]]`` in dimension j."""
        dims = self.dimensions()
        if len(indices) != len(dims):
            raise SpaceError(f"expected {len(dims)} choice indices, got {len(indices)}")
        return self._arch_from_values([choices[int(i)] for (_, choices), i in zip(dims, indices)])

    def indices(self, arch) -> list[int]:
        """Choice index of every dimension of ``arch`` (validates it)."""
        self.validate(arch)
        return [choices.index(v) for (_, choices), v in zip(self.dimensions(), arch.values())]

    def _check_values(self, arch) -> None:
        """SpaceError naming the first value of ``arch`` outside its dimension's choices."""
        for (path, choices), v in zip(self.dimensions(), arch.values()):
            if v not in choices:
                raise SpaceError(f"architecture field {path}={v!r} is not allowed in space "
                                 f"{self.name!r}; choices: {list(choices)}")

    def encode(self, arch) -> np.ndarray:
        """Fixed-length vector in [0, 1]: choice index / (number of choices - 1).

        Shape ``(encoding_length,)``, float64. Single-choice dimensions encode as 0.
        """
        idx = self.indices(arch)
        sizes = [len(c) for _, c in self.dimensions()]
        return np.array([i / (n - 1) if n > 1 else 0.0 for i, n in zip(idx, sizes)])

    def decode(self, vector: Sequence[float]):
        """Inverse of :meth:`encode` (rounds to the nearest choice)."""
        sizes = [len(c) for _, c in self.dimensions()]
        if len(vector) != len(sizes):
            raise SpaceError(f"expected a vector of length {len(sizes)}, got {len(vector)}")
        idx = [int(round(float(x) * (n - 1))) if n > 1 else 0 for x, n in zip(vector, sizes)]
        return self.from_indices([min(max(i, 0), n - 1) for i, n in zip(idx, sizes)])

    def mutate(self, arch, rng: np.random.Generator, prob: float = 0.1):
        """Resample each dimension with probability ``prob``; at least one always changes
        when the space has a dimension with more than one choice."""
        idx = self.indices(arch)
        dims = self.dimensions()
        free = [j for j, (_, c) in enumerate(dims) if len(c) > 1]
        if not free:
            return arch
        flips = [j for j in free if rng.random() < prob] or [free[int(rng.integers(len(free)))]]
        for j in flips:
            n = len(dims[j][1])
            idx[j] = (idx[j] + 1 + int(rng.integers(n - 1))) % n  # a different choice
        return self.from_indices(idx)

    def crossover(self, a, b, rng: np.random.Generator):
        """Uniform crossover: each dimension is taken from ``a`` or ``b`` with equal odds."""
        ia, ib = self.indices(a), self.indices(b)
        pick = rng.random(len(ia)) < 0.5
        return self.from_indices([x if p else y for x, y, p in zip(ia, ib, pick)])


class ChoiceArch:
    """JSON text form of an architecture class with ``to_dict`` and ``from_dict``."""

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise SpaceError(f"architecture is not valid JSON: {e}") from None
