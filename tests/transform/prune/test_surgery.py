"""Cutting lane groups keeps shapes consistent: a residual network still runs, equals the
unpruned one when nothing is cut, and has exactly the widths asked for."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.transform.prune.graph import trace_channel_groups
from chamtvm.transform.prune.surgery import kept_widths, select_channels


@pytest.fixture(scope="module")
def net(residual_net_k5):
    model, shape = residual_net_k5
    return model, shape, trace_channel_groups(model, shape)


def test_keeping_every_channel_changes_nothing(net):
    import torch

    model, shape, graph = net
    same = select_channels(model, graph, {g.name: range(g.width) for g in graph.groups})
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        assert torch.equal(same(x), model(x))


def test_cut_in_lane_groups_runs_with_the_asked_widths(net):
    import torch

    from chamtvm.transform.prune.importance import channel_scores, prune_to_widths

    model, shape, graph = net
    lanes = 8
    widths = {g.name: max(lanes, (g.width // 2) // lanes * lanes) for g in graph.groups}
    cut = prune_to_widths(model, graph, channel_scores(model, graph), widths)
    assert kept_widths(cut, graph) == widths
    with torch.no_grad():
        assert cut(torch.randn(2, *shape[1:])).shape == (2, 10)
    params = lambda m: sum(p.numel() for p in m.parameters())
    assert params(cut) < params(model)
    # every layer's attributes agree with its weights (a torch.export of the cut model works)
    torch.export.export(cut, (torch.zeros(*shape),))


def test_a_residual_stage_keeps_the_same_channels_in_every_block(net):
    import torch

    model, shape, graph = net
    stage = graph.group("features.2.body.2.0")
    keep = [1, 4, 6, 7, 9, 10, 12, 15]
    cut = select_channels(model, graph, {stage.name: keep})
    mods, cmods = dict(model.named_modules()), dict(cut.named_modules())
    for ax in stage.axes:  # the same indices on every axis of the group
        before = getattr(mods[ax.module], ax.param).detach()
        after = getattr(cmods[ax.module], ax.param).detach()
        assert torch.equal(after, before.index_select(ax.axis, torch.tensor(keep)))


def test_widening_repeats_channels_and_bad_selections_are_refused(net):
    import torch

    model, shape, graph = net
    g = graph.groups[1]
    wide = select_channels(model, graph, {g.name: [i % g.width for i in range(g.width + 3)]})
    assert kept_widths(wide, graph)[g.name] == g.width + 3
    with torch.no_grad():
        assert wide(torch.zeros(*shape)).shape == (1, 10)
    with pytest.raises(ValueError, match="no channel group 'nope'"):
        select_channels(model, graph, {"nope": [0]})
    with pytest.raises(ValueError, match="keeping no channel"):
        select_channels(model, graph, {g.name: []})
    with pytest.raises(ValueError, match=r"must lie in \[0, "):
        select_channels(model, graph, {g.name: [g.width]})
