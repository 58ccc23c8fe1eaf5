"""The main job (``python -m chamtvm tune``) as a list of steps: ``config`` (what the job
is asked to do), ``steps`` (the step interface and timer), ``latency`` (table, tuning,
models, held-out networks), ``adapt`` (accuracy predictor, search, export, measure),
``job`` (chaining them) and ``report``.

Depends on every stage package; no stage package depends on it."""
