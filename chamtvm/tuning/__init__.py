"""Schedules: MetaSchedule databases under the working folder's ``schedules/<target>/``:
lookup and application at build time, and tuning of single kernels (locally or through an
RPC tracker). Depends on ``targets`` and ``core``."""
