"""Channel groups of real networks of the stage-wise spaces: residual stages form one group,
depthwise convolutions and BatchNorms follow their input, the input and the classes stay
fixed, and operations the tracer does not know fix the channels they touch."""

from __future__ import annotations

import numpy as np
import pytest

from chamtvm.transform.prune.graph import PruneGraphError, trace_channel_groups


def test_groups_of_a_residual_network(residual_net):
    model, shape = residual_net
    graph = trace_channel_groups(model, shape)
    names = [g.name for g in graph.groups]
    # stem and stage 1 (stride 1, 8 -> 8) are joined by the residual add: one group
    stem = graph.group("features.0.0")
    assert stem.width == 8 and "features.1.body.1.0" in {p.module for p in stem.producers}
    # stage 2: three blocks with residual adds between them: one 16-channel group produced 3 times
    stage2 = graph.group("features.2.body.2.0")
    assert stage2.width == 16 and len({p.module for p in stage2.producers}) == 3
    assert len({c.module for c in stage2.consumers}) == 3  # blocks 2, 3 expand and stage 3 reads it
    # each expansion is its own group: expand conv -> BN -> depthwise -> BN -> project input
    hidden = graph.group("features.2.body.0.0")
    assert hidden.width == 32
    assert {p.module for p in hidden.passthrough} == {"features.2.body.0.1", "features.2.body.1.0",
                                                      "features.2.body.1.1"}
    assert hidden.bn_after == {"features.2.body.0.0": "features.2.body.0.1",
                               "features.2.body.1.0": "features.2.body.1.1"}
    assert names[-1] == "head.conv.0"  # the head conv's output; the 10 classes stay fixed
    assert graph.fixed_channels == 3 + 10
    # stem+stage 1, 3 hidden of stage 2, stage 2, the hidden of stage 3, stage 3, head
    assert len(names) == len(set(names)) == 1 + 3 + 1 + 1 + 1 + 1


def test_unknown_operations_fix_their_channels_and_nothing_prunable_is_an_error():
    import torch
    from torch import nn

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 8, 1)
            self.c = nn.Conv2d(16, 12, 3)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            y = self.c(torch.cat([self.a(x), self.b(x)], dim=1))
            return self.fc(y.mean(dim=(2, 3)))

    graph = trace_channel_groups(Concat(), (1, 3, 8, 8))
    assert [g.name for g in graph.groups] == ["c"]  # a and b feed a concatenation: fixed
    with pytest.raises(PruneGraphError, match="no prunable channel group"):
        trace_channel_groups(nn.Sequential(nn.Conv2d(3, 4, 1)), (1, 3, 8, 8))

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(PruneGraphError, match="cannot trace"):
        trace_channel_groups(Branchy(), (1, 3, 8, 8))
