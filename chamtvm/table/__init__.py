"""Stage 4, the latency tables: the append-only kernel table (``store``), filling it batch by
batch through a runner (``fill``) and the journal of end-to-end network measurements
(``networks``).

In: kernels with their schedules, a runner. Out: checksummed JSON-lines rows under the
working folder's ``luts/``. Depends on ``measure``, ``tuning``, ``lower``, ``targets``, ``core``."""
