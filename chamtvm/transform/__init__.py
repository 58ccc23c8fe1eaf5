"""Transformations of a trained network for a target under a latency budget.

In: a trained torch model (the teacher), a target, a budget in ms, a task. Out: the
transformed model (torch, ONNX, the TVM library) and a report. ``prune``: latency-constrained
structured pruning (ALCS)."""
