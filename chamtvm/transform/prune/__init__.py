"""Latency-constrained structured pruning (ALCS, Zhao et al. 2021) of a trained network.

In: a trained torch model (the teacher), a target with its vector lanes, a budget in ms, a
task. Out: a pruned torch model whose kept widths are multiples of the lane-group size, the
per-layer width-latency model it was chosen with, and its measured latency.

Modules: ``graph`` (which channels must be pruned together), ``surgery`` (remove channels),
``importance`` (which channels to keep, what each width costs in accuracy), ``pwl``
(piecewise-linear interpolation), ``latency`` (latency of every fused kernel as a function of
the widths it touches, measured through TVM), ``solve`` (the integer program and ADMM),
``finetune`` (distillation from the teacher), ``unstructured`` (the magnitude-pruning
baseline)."""

from .method import check_options, run  # noqa: F401,E402 - the method entry (``transform.methods``)
