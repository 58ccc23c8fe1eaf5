"""Stage 4, the latency tables: the append-only kernel table (``store``), filling it batch by
batch through a runner (``fill``), the journal of end-to-end network measurements
(``networks``), and which deployed schedules are no faster than their default rows
(``faster_schedule``).

In: kernels with their schedules, a runner. Out: checksummed JSON-lines rows under the
working folder's ``luts/``. Depends on ``measure``, ``tuning``, ``lower``, ``targets``, ``core``."""
