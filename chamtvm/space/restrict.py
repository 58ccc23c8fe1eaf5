"""Restrictions of a space: the same network skeleton with fewer choices at some positions.

``restrict(space, kept, name)`` builds one (what ``chamtvm friendliness`` writes as its
reduced space); ``is_restriction(small, big)`` says whether ``small`` is one of ``big``, so an
architecture means the same network in both (what lets a trainings journal of ``big`` be
reused for ``small``).

A position is named by its path: ``resolution``, ``stem_channels``, ``head_channels``,
``layers[i]`` (per-layer spaces) or ``stages[i].<field>`` (stage-wise spaces: ``kernel``,
``expansion``, ``blocks``, ``channels``), as ``SearchSpace.dimensions()`` names them.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from .schema import SearchSpace

_PATH = re.compile(r"^(?:(resolution|stem_channels|head_channels)|layers\[(\d+)\]|stages\[(\d+)\]\.(\w+))$")


def restrict(space: SearchSpace, kept: Mapping[str, Sequence], name: str) -> SearchSpace:
    """``space`` with only the ``kept`` choices at each position (path -> choices; positions
    not named keep all theirs), named ``name``; validated by loading it like any space file.
    Raises ValueError on an unknown path or a position left with no choice."""
    d = space.to_dict()
    for path, choices in kept.items():
        if not choices:
            raise ValueError(f"position {path}: no choice kept")
        m = _PATH.match(path)
        if m is None:
            raise ValueError(f"unknown position path {path!r}")
        glob, layer, stage, fld = m.groups()
        if glob is not None:
            d[glob] = list(choices)
        elif layer is not None:
            d["layers"][int(layer)]["choices"] = list(choices)
        else:
            d["stages"][int(stage)][fld] = list(choices)
    d["name"] = name
    return SearchSpace.from_dict(d)


def is_restriction(small: SearchSpace, big: SearchSpace) -> bool:
    """Whether ``small`` is ``big`` with a subset of its choices at every position and
    everything else equal (its name aside): then an architecture of ``small`` is the same
    network in ``big``."""
    if type(small) is not type(big):
        return False
    dims_s, dims_b = small.dimensions(), big.dimensions()
    if [p for p, _ in dims_s] != [p for p, _ in dims_b]:
        return False
    if any(not set(cs) <= set(cb) for (_, cs), (_, cb) in zip(dims_s, dims_b)):
        return False
    try:
        widened = restrict(small, {p: list(cb) for p, cb in dims_b}, big.name)
    except ValueError:  # SpaceError included: big's choices do not fit small's skeleton
        return False
    return widened.to_dict() == big.to_dict()
