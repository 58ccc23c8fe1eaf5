"""Schedules: MetaSchedule databases under the working folder's ``schedules/<target>/``.

One module per role: ``schedules`` (the schedule source: look a kernel up, apply its record
at build time), ``database`` (the database files, their checks and repair, the lock and the
tuning log), ``metaschedule`` (builder, runner, search strategy and cost model for this
machine or an RPC tracker), ``policy`` (which kernels are tuned, in rounds within a trial
budget, and whether the tuned or the default schedule is deployed), ``transfer`` (a tuned
trace re-fitted to similar kernels) and ``provenance`` (the logs saying where a schedule came
from). In: kernels (``lower``), a target (``targets``), default-schedule times; out: records
in the database. Depends on ``measure``, ``lower``, ``targets`` and ``core``."""
