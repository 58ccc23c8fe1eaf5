"""Per-layer search spaces (FBNet / NAS-Bench-Macro style) as data plus pure functions.

Every searchable layer has fixed output channels and stride and picks one block from its
``choices`` (names in ``blocks.BLOCKS``, ``skip`` among them); the input resolution may
be searched too. Stem and head are fixed. The stage-wise spaces (``schema.SearchSpace``)
stay as they are; ``SearchSpace.from_dict`` returns a :class:`LayerSpace` for a dict with
``"layers"`` and ``Arch.from_dict`` a :class:`LayerArch` for an architecture with
``"layers"``, so both kinds load, validate, sample, mutate, encode and build alike.

space (JSON)::

    {"name": "macro", "in_channels": 3, "num_classes": 10, "resolution": [32],
     "activation": "relu", "stem": {"channels": 32, "kernel": 3, "stride": 1},
     "layers": [{"channels": 64, "stride": 2, "choices": ["skip", "ir_k3_e3", "ir_k5_e6"]},
                ...],
     "head": {"channels": 1280}}

architecture (JSON)::

    {"resolution": 32, "layers": ["skip", "ir_k3_e3", ...]}

Dimensions, in encoding order: ``resolution``, then ``layers[i]`` for every layer. Every
random choice takes an explicit ``np.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .blocks import ACTIVATIONS, BLOCKS
from .choices import (ChoiceArch, ChoiceSpace, check_object_list, check_positive_int, check_positive_int_choices,
                      check_space_header, check_stride, check_total_stride)
from .errors import SpaceError


@dataclass(frozen=True)
class LayerChoice:
    """One searchable layer: output ``channels``, ``stride`` and the block names allowed."""

    channels: int
    stride: int
    choices: tuple[str, ...]


@dataclass(frozen=True)
class LayerSpace(ChoiceSpace):
    """A per-layer space: fixed stem and head, one block choice per layer (after the
    fields of :class:`choices.ChoiceSpace`)."""

    stem_channels: int
    stem_kernel: int
    stem_stride: int
    head_channels: int
    layers: tuple[LayerChoice, ...]
    activation: str = "relu6"

    kind = "layers"

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LayerSpace":
        """Validate and build a per-layer space from its JSON form; raises SpaceError."""
        check_space_header(d, {"name", "description", "in_channels", "num_classes", "resolution", "activation",
                               "stem", "layers", "head"})
        res = check_positive_int_choices(d.get("resolution"), "space.resolution")
        act = d.get("activation", "relu6")
        if act not in ACTIVATIONS:
            raise SpaceError(f"space.activation: {act!r} is not one of {list(ACTIVATIONS)}")
        stem = d.get("stem")
        if not isinstance(stem, Mapping) or "channels" not in stem:
            raise SpaceError("space.stem: expected an object with 'channels' (and optional 'kernel', 'stride')")
        head = d.get("head")
        if not isinstance(head, Mapping) or "channels" not in head:
            raise SpaceError("space.head: expected an object with 'channels'")
        stem_kernel = check_positive_int(stem.get("kernel", 3), "space.stem.kernel")
        if stem_kernel % 2 == 0:
            raise SpaceError(f"space.stem.kernel: must be odd, got {stem_kernel}")
        stem_stride = check_stride(stem.get("stride", 2), "space.stem.stride")
        layers = []
        for i, layer in enumerate(check_object_list(d.get("layers"), "space.layers", "layer objects")):
            where = f"space.layers[{i}]"
            if not isinstance(layer, Mapping) or set(layer) - {"channels", "stride", "choices"}:
                raise SpaceError(f"{where}: expected an object with 'channels', 'stride', 'choices'; got {layer!r}")
            stride = check_stride(layer.get("stride", 1), f"{where}.stride")
            choices = check_object_list(layer.get("choices"), f"{where}.choices", "block names")
            for c in choices:
                if c not in BLOCKS:
                    raise SpaceError(f"{where}.choices: unknown block {c!r}; valid: {', '.join(BLOCKS.names())}")
            if len(set(choices)) != len(choices):
                raise SpaceError(f"{where}.choices: duplicate blocks in {choices}")
            layers.append(LayerChoice(check_positive_int(layer.get("channels"), f"{where}.channels"),
                                      stride, tuple(choices)))
        space = cls(name=str(d.get("name", "unnamed")), in_channels=int(d["in_channels"]),
                    num_classes=int(d["num_classes"]), resolution=res,
                    stem_channels=check_positive_int(stem["channels"], "space.stem.channels"),
                    stem_kernel=stem_kernel, stem_stride=stem_stride,
                    head_channels=check_positive_int(head["channels"], "space.head.channels"),
                    layers=tuple(layers), activation=act)
        check_total_stride(res, space.stem_stride * 2 ** sum(layer.stride == 2 for layer in space.layers))
        return space

    def to_dict(self) -> dict:
        return {"name": self.name, "in_channels": self.in_channels, "num_classes": self.num_classes,
                "resolution": list(self.resolution), "activation": self.activation,
                "stem": {"channels": self.stem_channels, "kernel": self.stem_kernel, "stride": self.stem_stride},
                "layers": [{"channels": layer.channels, "stride": layer.stride, "choices": list(layer.choices)}
                           for layer in self.layers],
                "head": {"channels": self.head_channels}}

    # -------------------------------------------------------------- dimensions
    def dimensions(self) -> list[tuple[str, tuple]]:
        """Every searchable dimension as (path, choices), in encoding order."""
        return [("resolution", self.resolution)] + [(f"layers[{i}]", layer.choices)
                                                    for i, layer in enumerate(self.layers)]

    def layer_io(self, resolution: int) -> list[tuple[int, int, int, int]]:
        """(cin, cout, stride, input size px) of every layer at input ``resolution``."""
        out = []
        h = -(-resolution // self.stem_stride)
        cin = self.stem_channels
        for layer in self.layers:
            out.append((cin, layer.channels, layer.stride, h))
            h, cin = -(-h // layer.stride), layer.channels
        return out

    def head_input(self, resolution: int) -> tuple[int, int]:
        """(channels, size px) entering the head at input ``resolution``."""
        cin, cout, stride, h = self.layer_io(resolution)[-1]
        return cout, -(-h // stride)

    # ---------------------------------------------------------- architectures
    def _arch_from_values(self, values: Sequence) -> "LayerArch":
        return LayerArch(resolution=int(values[0]), layers=tuple(str(v) for v in values[1:]))

    def validate(self, arch) -> None:
        """Raise SpaceError naming the first field of ``arch`` that the space does not allow."""
        if not isinstance(arch, LayerArch):
            raise SpaceError(f"space {self.name!r} is a per-layer space; the architecture has no 'layers'")
        if len(arch.layers) != len(self.layers):
            raise SpaceError(f"architecture has {len(arch.layers)} layers, space {self.name!r} has {len(self.layers)}")
        self._check_values(arch)

    # ------------------------------------------------------------------- costs
    def cost_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closed-form costs: ``fixed (R, 2)`` (stem + head per resolution choice) and
        ``per_layer (R, L, C, 2)`` (layer l with choice c; C = most choices, unused
        entries 0), as (parameters, MACs); plus ``sizes (L,)`` choices per layer."""
        from .blocks import conv_cost, head_cost

        n_choice = max(len(layer.choices) for layer in self.layers)
        fixed = np.zeros((len(self.resolution), 2))
        per = np.zeros((len(self.resolution), len(self.layers), n_choice, 2))
        for ri, res in enumerate(self.resolution):
            p, m, _ = conv_cost(self.in_channels, self.stem_channels, self.stem_kernel, self.stem_stride, res)
            cin, h = self.head_input(res)
            hp, hm = head_cost(cin, self.head_channels, self.num_classes, h)
            fixed[ri] = (p + hp, m + hm)
            for li, (ci, co, s, hh) in enumerate(self.layer_io(res)):
                for bi, name in enumerate(self.layers[li].choices):
                    per[ri, li, bi] = BLOCKS.get(name).cost(ci, co, s, hh)
        return fixed, per, np.array([len(layer.choices) for layer in self.layers])

    def costs(self, indices) -> np.ndarray:
        """``(N, 2)`` float64 (parameters, MACs at batch 1) of choice-index rows ``(N, D)``."""
        idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
        fixed, per, _ = self._cost_cache()
        out = fixed[idx[:, 0]].copy()
        for li in range(len(self.layers)):
            out += per[idx[:, 0], li, idx[:, 1 + li]]
        return out

    def _cost_cache(self):
        cache = _COST_CACHE.get(self)
        if cache is None:
            cache = _COST_CACHE[self] = self.cost_tables()
        return cache


_COST_CACHE: dict = {}


@dataclass(frozen=True)
class LayerArch(ChoiceArch):
    """One network of a per-layer space: input resolution and one block name per layer."""

    resolution: int
    layers: tuple[str, ...]

    def values(self) -> list:
        return [self.resolution, *self.layers]

    def to_dict(self) -> dict:
        return {"resolution": self.resolution, "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, d: Any) -> "LayerArch":
        """Parse a per-layer architecture; raises SpaceError naming what is wrong."""
        if not isinstance(d, Mapping):
            raise SpaceError(f"architecture: expected a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"resolution", "layers", "space"}
        if unknown:
            raise SpaceError(f"architecture: unknown fields {sorted(unknown)}")
        if "resolution" not in d:
            raise SpaceError("architecture: missing fields ['resolution']")
        res = check_positive_int(d["resolution"], "architecture field resolution")
        layers = d["layers"]
        if not isinstance(layers, list) or not layers or not all(isinstance(x, str) for x in layers):
            raise SpaceError(f"architecture field layers: expected a non-empty list of block names, got {layers!r}")
        return cls(res, tuple(layers))
