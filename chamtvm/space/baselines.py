"""MobileNetV2 width-multiplier x resolution baselines for a search space.

The baseline family is the classic way to trade accuracy for latency without a search:
one fixed MobileNetV2-style template whose channels are scaled by a width multiplier,
run at several input resolutions (Sandler et al. 2018, Table 6; ChamNet's baselines).

Template (width 1.0) of a space, from its choice lists:

* every stage: its middle channel choice (``choices[len // 2]``), MobileNetV2's block
  count ``(1, 2, 3, 4, 3, 3, 1)`` clipped into the stage's block choices, expansion 1 in
  the first stage and 6 elsewhere, depthwise kernel 3;
* stem and head: their middle channel choices.

For ``fashion`` this is stem 16, stages 16/16/24/32/48/64/96 channels with 1/2/2/3/2/2/1
blocks, head 256. A width multiplier ``w`` scales the stem, every stage and the head,
rounded to a multiple of ``divisor`` (MobileNetV2's ``_make_divisible``: nearest multiple,
never below ``divisor``, never more than 10 % below ``c * w``).

Scaled widths and resolutions fall outside the base space's choice lists, so the family
comes with a *derived* space (:func:`family_space`): the base space's dict with every
choice list extended by the baseline values. ``build_model``, ``lower_arch``,
``measure_network`` and the proxy-task trainer (which resizes inputs to
``arch.resolution``) take it unchanged, and every architecture of the base space stays
valid in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .schema import Arch, SearchSpace, StageArch

DEFAULT_WIDTHS = (0.5, 0.75, 1.0, 1.25, 1.5)
# MobileNetV2's resolutions 160/192/224/256 as fractions of 224; applied to the space's
# largest resolution (28 px for ``fashion`` -> 20/24/28/32 px).
RESOLUTION_FRACTIONS = (5 / 7, 6 / 7, 1.0, 8 / 7)
MBV2_BLOCKS = (1, 2, 3, 4, 3, 3, 1)


def make_divisible(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (channels, int), at least
    ``divisor`` and never more than 10 % below ``value`` (MobileNetV2's rule)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


def _middle(choices: Sequence[int]) -> int:
    return sorted(choices)[len(choices) // 2]


def template(space: SearchSpace) -> Arch:
    """The width-1.0 MobileNetV2-style template of ``space`` at its largest resolution."""
    stages = []
    for i, s in enumerate(space.stages):
        mbv2_blocks = MBV2_BLOCKS[i] if i < len(MBV2_BLOCKS) else 1
        blocks = min(max(mbv2_blocks, min(s.blocks)), max(s.blocks))
        stages.append(StageArch(channels=_middle(s.channels), blocks=blocks,
                                expansion=1 if i == 0 else 6, kernel=3))
    return Arch(resolution=max(space.resolution), stem_channels=_middle(space.stem_channels),
                head_channels=_middle(space.head_channels), stages=tuple(stages))


def default_resolutions(space: SearchSpace, divisor: int = 4) -> tuple[int, ...]:
    """Input sizes (px) of the family: MobileNetV2's 160/192/224/256 ratios applied to the
    space's largest resolution, rounded to ``divisor`` and at least the space's total
    stride. ``fashion``: (20, 24, 28, 32)."""
    top = max(space.resolution)
    stride = 2 * 2 ** sum(s.stride == 2 for s in space.stages)
    out = {max(stride, int(round(top * f / divisor)) * divisor) for f in RESOLUTION_FRACTIONS}
    return tuple(sorted(out))


def baseline_arch(space: SearchSpace, width: float, resolution: int, divisor: int = 4) -> Arch:
    """The template of ``space`` with channels scaled by ``width`` (rounded to
    ``divisor``) at input size ``resolution`` px. May fall outside ``space``'s choices."""
    if width <= 0:
        raise ValueError(f"width multiplier must be positive, got {width!r}")
    t = template(space)
    return Arch(
        resolution=int(resolution),
        stem_channels=make_divisible(t.stem_channels * width, divisor),
        head_channels=make_divisible(t.head_channels * width, divisor),
        stages=tuple(StageArch(make_divisible(s.channels * width, divisor), s.blocks,
                               s.expansion, s.kernel) for s in t.stages),
    )


def family_space(space: SearchSpace, archs: Sequence[Arch], name: str | None = None) -> SearchSpace:
    """``space`` with every choice list extended by the values ``archs`` use.

    Named ``<space>-mbv2`` unless ``name`` is given. Raises SpaceError when an
    architecture cannot be expressed (wrong stage count, resolution below the total stride).
    """
    d = space.to_dict()
    d["name"] = name or f"{space.name}-mbv2"

    def extend(choices: list[int], values) -> list[int]:
        return sorted(set(choices) | {int(v) for v in values})

    for field in ("resolution", "stem_channels", "head_channels"):
        d[field] = extend(d[field], (getattr(a, field) for a in archs))
    for i, stage in enumerate(d["stages"]):
        for field in ("channels", "blocks", "expansion", "kernel"):
            stage[field] = extend(stage[field], (getattr(a.stages[i], field) for a in archs
                                                 if len(a.stages) == len(d["stages"])))
    derived = SearchSpace.from_dict(d)
    for a in archs:
        derived.validate(a)
    return derived


@dataclass(frozen=True)
class Baseline:
    """One member of the family: ``width`` multiplier, input ``resolution`` (px), its
    architecture and the derived space it is valid in."""

    width: float
    resolution: int
    arch: Arch
    space: SearchSpace

    @property
    def name(self) -> str:
        """Label such as ``mbv2-w0.75-r24``."""
        return f"mbv2-w{self.width:g}-r{self.resolution}"


def baseline_family(space: SearchSpace, widths: Sequence[float] = DEFAULT_WIDTHS,
                    resolutions: Sequence[int] | None = None, divisor: int = 4) -> list[Baseline]:
    """Every width x resolution baseline of ``space`` (resolution-major order), all
    sharing one derived space (:func:`family_space`)."""
    resolutions = tuple(resolutions) if resolutions else default_resolutions(space, divisor)
    grid = [(float(w), int(r)) for r in resolutions for w in widths]
    archs = [baseline_arch(space, w, r, divisor) for w, r in grid]
    derived = family_space(space, archs)
    return [Baseline(w, r, a, derived) for (w, r), a in zip(grid, archs)]
