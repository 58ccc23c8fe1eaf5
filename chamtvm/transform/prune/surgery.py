"""Remove channels: a copy of a network with some channels of its channel groups taken out.

``select_channels`` returns the network with, for each named group, only the channel indices
given kept (in the order given) on every parameter axis of the group (``graph``), and every
layer's size attributes updated to match. Indices may repeat: a group can then be *wider* than
in the original network (channels duplicated), which the latency measurement uses to give each
group a width no other tensor has.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Mapping, Sequence

from .graph import ChannelGraph

if TYPE_CHECKING:
    import torch


def select_channels(model: "torch.nn.Module", graph: ChannelGraph,
                    keep: Mapping[str, Sequence[int]]) -> "torch.nn.Module":
    """A copy of ``model`` keeping, for each group named in ``keep``, the channel indices given
    (groups not named keep all their channels). An unknown group name, an empty selection or an
    index outside the group's width is a ``ValueError``."""
    import torch
    from torch import nn

    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    known = {g.name: g for g in graph.groups}
    for name, idx in keep.items():
        if name not in known:
            raise ValueError(f"no channel group {name!r}; groups: {sorted(known)}")
        g = known[name]
        index = torch.as_tensor(list(idx), dtype=torch.long)
        if index.numel() == 0:
            raise ValueError(f"group {name!r}: keeping no channel would cut the network")
        if int(index.min()) < 0 or int(index.max()) >= g.width:
            raise ValueError(f"group {name!r}: channel indices must lie in [0, {g.width}), got "
                             f"{int(index.min())}..{int(index.max())}")
        for ax in g.axes:
            mod = modules[ax.module]
            t = getattr(mod, ax.param)
            new = t.detach().index_select(ax.axis, index).clone()
            if isinstance(t, nn.Parameter):
                setattr(mod, ax.param, nn.Parameter(new, requires_grad=t.requires_grad))
            else:
                mod.register_buffer(ax.param, new)
    for mod in out.modules():
        _resize_attributes(mod)
    return out


def _resize_attributes(mod) -> None:
    """Make a layer's size attributes agree with its (possibly cut) weights."""
    from torch import nn

    if isinstance(mod, nn.Conv2d):
        depthwise = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
        mod.out_channels = int(mod.weight.shape[0])
        if depthwise:
            mod.groups = mod.in_channels = mod.out_channels
        else:
            mod.in_channels = int(mod.weight.shape[1]) * mod.groups
    elif isinstance(mod, nn.BatchNorm2d):
        mod.num_features = int(mod.weight.shape[0]) if mod.weight is not None else int(mod.running_mean.shape[0])
    elif isinstance(mod, nn.Linear):
        mod.out_features, mod.in_features = (int(d) for d in mod.weight.shape)


def kept_widths(model: "torch.nn.Module", graph: ChannelGraph) -> dict[str, int]:
    """The width each group of ``graph`` (traced on the unpruned network) has in ``model``."""
    modules = dict(model.named_modules())
    out = {}
    for g in graph.groups:
        ax = g.producers[0]
        out[g.name] = int(getattr(modules[ax.module], ax.param).shape[ax.axis])
    return out
