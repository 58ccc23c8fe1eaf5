"""Which channels a group keeps (group L2 norm) and what a width costs (the share of the norm
removed; the sensitivity scan on a calibration batch): costs fall as the width grows and are
zero at full width."""

from __future__ import annotations

import numpy as np

from chamtvm.transform.prune.graph import trace_channel_groups


def test_scores_rank_channels_by_their_group_norm(residual_net):
    import torch

    from chamtvm.transform.prune.importance import channel_scores, keep_indices

    model, shape = residual_net
    graph = trace_channel_groups(model, shape)
    hidden = graph.group("features.2.body.0.0")
    with torch.no_grad():  # make channel 5 carry nothing anywhere in the group
        for ax in hidden.producers + hidden.consumers:
            getattr(dict(model.named_modules())[ax.module], ax.param).index_fill_(ax.axis, torch.tensor([5]), 0.0)
    scores = channel_scores(model, graph)
    assert scores[hidden.name].shape == (32,) and np.argmin(scores[hidden.name]) == 5
    assert 5 not in keep_indices(scores[hidden.name], 31)
    assert keep_indices(np.array([3.0, 1.0, 2.0]), 2) == [0, 2]  # original order kept


def test_costs_fall_with_the_width_and_vanish_at_full_width(residual_net):
    from chamtvm.transform.prune.importance import channel_scores, l2_costs, sensitivity_costs
    from chamtvm.transform.prune.latency import lane_widths

    model, shape = residual_net
    graph = trace_channel_groups(model, shape)
    scores = channel_scores(model, graph)
    cands = {g.name: lane_widths(g.width, 4) for g in graph.groups if g.width >= 16}
    for costs in (l2_costs(scores, cands),
                  sensitivity_costs(model, graph, scores, cands,
                                    np.random.default_rng(0).standard_normal((32, *shape[1:])).astype(np.float32),
                                    np.arange(32) % 10, max_points=3)):
        for g, c in costs.items():
            assert c.shape == (len(cands[g]),) and c[-1] == 0.0 and np.all(c >= 0)
            assert np.all(np.diff(c) <= 1e-12)  # narrower never costs less
    assert any(c[0] > 0 for c in l2_costs(scores, cands).values())
