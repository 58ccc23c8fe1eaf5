"""The jobs as lists of steps: ``steps`` (the step machinery: ``Step``, ``run_steps``,
``StepInstrument``), ``instruments`` (timer, log lines, progress bars), ``state`` (the typed
fields steps read and write), ``config`` (what a job is asked), ``pricing`` (a network
predicted and measured: the one error formula), the steps themselves (``latency``: table,
tuning, models, held-out networks; ``adapt``: accuracy predictor, search, export,
measurement of picks; ``regret``), the lists (``job``: the main job, ``tune``;
``search_job``: the ``search`` command) and ``report``.

In: a target, a runner, a config. Out: the report dict. Depends on every stage package; no
stage package depends on it."""
