"""Hardware-friendly search spaces (Mills et al., CIKM'21): which choice suits a target where.

In: a space, networks of it measured end to end on the target (the network journal
``luts/<target>.networks.jsonl``; only the missing ones are measured) and, where the task
gives them, their accuracies (counted lookups or trainings through the accuracy journal).
Out: per searchable position (a layer, or a stage's kernel / expansion / depth / width,
resolution, stem, head) and choice, its latency and accuracy contribution from a regression
on choice indicators with confidence intervals, its friendliness (accuracy share per
latency share), and a reduced space file (same schema) that drops the least friendly choices.

Modules: ``design`` (positions, coding, a balanced seeded design), ``regression`` (least
squares with confidence intervals), ``friendliness`` (shares, friendliness, the reduction
rule, the reduced space), ``profile`` (measuring and looking up the design), ``plot``.
"""
