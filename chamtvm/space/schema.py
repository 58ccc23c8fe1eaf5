"""ChamNet's MobileNetV2-style search space as data plus pure functions.

A *space* lists the allowed choices of every dimension; an *architecture* picks one value
per dimension. Both are plain JSON-compatible dicts wrapped in small frozen classes:

space (JSON)::

    {"name": "small", "in_channels": 3, "num_classes": 10,
     "resolution": [64, 96], "stem_channels": [16], "head_channels": [256],
     "stages": [{"stride": 1, "channels": [8, 16], "blocks": [1], "expansion": [1],
                 "kernel": [3]}, ... seven stages ...]}

architecture (JSON)::

    {"resolution": 64, "stem_channels": 16, "head_channels": 256,
     "stages": [{"channels": 8, "blocks": 1, "expansion": 1, "kernel": 3}, ...]}

Every random choice takes an explicit ``np.random.Generator``. Sampling, encoding, mutation
and the field checks of loading are shared with the per-layer spaces (``choices``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

STAGE_FIELDS = ("channels", "blocks", "expansion", "kernel")
GLOBAL_FIELDS = ("resolution", "stem_channels", "head_channels")
SPACES_DIR = Path(__file__).parent / "spaces"


from .choices import (ChoiceArch, ChoiceSpace, check_object_list, check_positive_int,  # noqa: E402
                      check_positive_int_choices, check_space_header, check_stride, check_total_stride)
from .errors import SpaceError  # noqa: E402 - re-exported: chamtvm.space.schema.SpaceError


@dataclass(frozen=True)
class StageSpace:
    """Choices of one inverted-residual stage; ``stride`` applies to its first block."""

    stride: int
    channels: tuple[int, ...]
    blocks: tuple[int, ...]
    expansion: tuple[int, ...]
    kernel: tuple[int, ...]


@dataclass(frozen=True)
class SearchSpace(ChoiceSpace):
    """A MobileNetV2-style space: resolution, stem, stages and head choices (after the
    fields of :class:`choices.ChoiceSpace`)."""

    stem_channels: tuple[int, ...]
    head_channels: tuple[int, ...]
    stages: tuple[StageSpace, ...]

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchSpace":
        """Validate and build a space from its JSON form; raises SpaceError. A dict with
        ``"layers"`` is a per-layer space (``layers.LayerSpace``)."""
        if not isinstance(d, Mapping):
            raise SpaceError(f"space: expected a JSON object, got {type(d).__name__}")
        if "layers" in d:
            from .layers import LayerSpace

            return LayerSpace.from_dict(d)
        check_space_header(d, {"name", "in_channels", "num_classes", "stages", *GLOBAL_FIELDS, "description"})
        stages = []
        for i, s in enumerate(check_object_list(d.get("stages"), "space.stages", "stage objects")):
            where = f"space.stages[{i}]"
            if not isinstance(s, Mapping):
                raise SpaceError(f"{where}: expected an object, got {s!r}")
            missing = {"stride", *STAGE_FIELDS} - set(s)
            if missing:
                raise SpaceError(f"{where}: missing fields {sorted(missing)}")
            stride = check_stride(s["stride"], f"{where}.stride")
            kernels = check_positive_int_choices(s["kernel"], f"{where}.kernel")
            if any(k % 2 == 0 for k in kernels):
                raise SpaceError(f"{where}.kernel: depthwise kernels must be odd, got {kernels}")
            stages.append(
                StageSpace(
                    stride=stride,
                    channels=check_positive_int_choices(s["channels"], f"{where}.channels"),
                    blocks=check_positive_int_choices(s["blocks"], f"{where}.blocks"),
                    expansion=check_positive_int_choices(s["expansion"], f"{where}.expansion"),
                    kernel=kernels,
                )
            )
        space = cls(
            name=str(d.get("name", "unnamed")),
            in_channels=int(d["in_channels"]),
            num_classes=int(d["num_classes"]),
            resolution=check_positive_int_choices(d.get("resolution"), "space.resolution"),
            stem_channels=check_positive_int_choices(d.get("stem_channels"), "space.stem_channels"),
            head_channels=check_positive_int_choices(d.get("head_channels"), "space.head_channels"),
            stages=tuple(stages),
        )
        check_total_stride(space.resolution, 2 * 2 ** sum(s.stride == 2 for s in space.stages))
        return space

    @classmethod
    def load(cls, name_or_path: str | Path) -> "SearchSpace":
        """Load a bundled space by name (``small``, ``mobilenetv2``, ...) or a JSON file.

        A bare name of a bundled space always means the bundled one (a file or folder of
        that name in the working directory does not shadow it; write ``./fashion.json`` for
        a local file). Anything that is not a usable name or JSON file is a ``SpaceError``."""
        import os

        if isinstance(name_or_path, ChoiceSpace):  # a space already (either kind)
            return name_or_path
        if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
            raise SpaceError(f"a space is a bundled space name {bundled_spaces()} or the path of a space "
                             f"JSON file, got {name_or_path!r}")
        text = str(name_or_path)
        bare = not Path(text).suffix and os.sep not in text and "/" not in text
        if bare and text in bundled_space_registry():
            path = bundled_space_registry().get(text)
        else:
            path = Path(text).expanduser()
            if not path.exists():
                if bare:
                    raise SpaceError(f"unknown space {text!r}; bundled spaces: {bundled_spaces()}")
                raise SpaceError(f"space file {path} does not exist; bundled spaces: {bundled_spaces()}")
            if path.is_dir():
                raise SpaceError(f"space {text!r} is a folder, not a space JSON file; "
                                 f"bundled spaces: {bundled_spaces()}")
        from ..core.jsonfile import read_json

        return cls.from_dict(read_json(path, "space file", SpaceError))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "resolution": list(self.resolution),
            "stem_channels": list(self.stem_channels),
            "head_channels": list(self.head_channels),
            "stages": [
                {"stride": s.stride, **{f: list(getattr(s, f)) for f in STAGE_FIELDS}}
                for s in self.stages
            ],
        }

    # -------------------------------------------------------------- dimensions
    def dimensions(self) -> list[tuple[str, tuple[int, ...]]]:
        """Every searchable dimension as (path, choices), in encoding order."""
        dims = [(f, getattr(self, f)) for f in GLOBAL_FIELDS]
        for i, s in enumerate(self.stages):
            dims += [(f"stages[{i}].{f}", getattr(s, f)) for f in STAGE_FIELDS]
        return dims

    def _arch_from_values(self, values: Sequence[int]) -> "Arch":
        g = len(GLOBAL_FIELDS)
        stages = []
        for i in range(len(self.stages)):
            chunk = values[g + 4 * i : g + 4 * i + 4]
            stages.append(dict(zip(STAGE_FIELDS, (int(v) for v in chunk))))
        return Arch(
            resolution=int(values[0]),
            stem_channels=int(values[1]),
            head_channels=int(values[2]),
            stages=tuple(StageArch(**s) for s in stages),
        )

    def validate(self, arch: "Arch") -> None:
        """Raise SpaceError naming the first field of ``arch`` that the space does not allow."""
        if len(arch.stages) != len(self.stages):
            raise SpaceError(
                f"architecture has {len(arch.stages)} stages, space {self.name!r} has "
                f"{len(self.stages)}"
            )
        self._check_values(arch)


@dataclass(frozen=True)
class StageArch:
    channels: int
    blocks: int
    expansion: int
    kernel: int


@dataclass(frozen=True)
class Arch(ChoiceArch):
    """One network of a space. Hashable; ``to_dict``/``from_dict`` round-trip through JSON."""

    resolution: int
    stem_channels: int
    head_channels: int
    stages: tuple[StageArch, ...]

    def values(self) -> list[int]:
        out = [self.resolution, self.stem_channels, self.head_channels]
        for s in self.stages:
            out += [s.channels, s.blocks, s.expansion, s.kernel]
        return out

    def to_dict(self) -> dict:
        return {
            "resolution": self.resolution,
            "stem_channels": self.stem_channels,
            "head_channels": self.head_channels,
            "stages": [{f: getattr(s, f) for f in STAGE_FIELDS} for s in self.stages],
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Arch":
        """Parse an architecture; raises SpaceError naming what is missing or malformed.
        An architecture with ``"layers"`` is one of a per-layer space (``layers.LayerArch``)."""
        if not isinstance(d, Mapping):
            raise SpaceError(f"architecture: expected a JSON object, got {type(d).__name__}")
        if "layers" in d:
            from .layers import LayerArch

            return LayerArch.from_dict(d)
        missing = {*GLOBAL_FIELDS, "stages"} - set(d)
        if missing:
            raise SpaceError(f"architecture: missing fields {sorted(missing)}")
        unknown = set(d) - {*GLOBAL_FIELDS, "stages", "space"}
        if unknown:
            raise SpaceError(f"architecture: unknown fields {sorted(unknown)}")

        def as_int(v: Any, where: str) -> int:
            return check_positive_int(v, f"architecture field {where}")

        if not isinstance(d["stages"], list) or not d["stages"]:
            raise SpaceError("architecture field stages: expected a non-empty list")
        stages = []
        for i, s in enumerate(d["stages"]):
            if not isinstance(s, Mapping) or set(s) != set(STAGE_FIELDS):
                raise SpaceError(
                    f"architecture field stages[{i}]: expected an object with exactly "
                    f"{list(STAGE_FIELDS)}, got {s!r}"
                )
            stages.append(StageArch(**{f: as_int(s[f], f"stages[{i}].{f}") for f in STAGE_FIELDS}))
        return cls(
            resolution=as_int(d["resolution"], "resolution"),
            stem_channels=as_int(d["stem_channels"], "stem_channels"),
            head_channels=as_int(d["head_channels"], "head_channels"),
            stages=tuple(stages),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Arch":
        try:
            return cls.from_json(Path(path).read_text())
        except FileNotFoundError:
            raise SpaceError(f"architecture file {path} does not exist") from None


def bundled_space_registry():
    """The bundled spaces (``spaces/*.json``) by name -> file path, as a ``core.registry.Registry``."""
    from ..core.registry import Registry

    reg: Registry = Registry("space")
    for path in sorted(SPACES_DIR.glob("*.json")):
        reg.register(path.stem, path)
    return reg


def bundled_spaces() -> list[str]:
    """Names of the spaces shipped in chamtvm/space/spaces/."""
    return bundled_space_registry().names()
