"""Stage 5, latency models: network features, table-sum prediction, the unseen-kernel and
residual models, batch prediction from per-block contributions, and loading a table's
saved predictor.

In: a kernel table and prepared kernels (or architectures). Out: latency predictions in
ms with per-kernel breakdowns. Depends on ``table``, ``lower``, ``space``, ``core``."""
