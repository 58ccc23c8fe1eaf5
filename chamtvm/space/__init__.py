"""Stage 1, the search space: architectures as data (``schema``), their torch models
(``model``), the bundled spaces (``spaces/*.json``) and MobileNetV2 baselines.

In: a space JSON (bundled name or path). Out: ``SearchSpace`` / ``Arch`` values and
``torch.nn.Module`` builds. Depends on ``core`` only."""
