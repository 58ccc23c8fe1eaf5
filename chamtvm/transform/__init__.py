"""Stage 8, transformation of a trained network to a target under a latency budget
(``python -m chamtvm transform MODEL --target T --latency-ms B --task TASK --method M``).

In: a trained teacher (``teacher:<task>``, a saved ``teacher.json``, an ONNX file, or a
torch module through :func:`job.transform`), a target, a budget in ms, a task. Out: the
adapted network (torch state dict + ``torch.export`` program, ONNX, the TVM library for the
target) and a report: validation and test accuracy, predicted and measured latency, against
the teacher and the uniform width-scaling baseline at the same budget.

Modules (one job each): ``data`` (train / validation / test splits), ``graph`` (a model as
stem -> replaceable blocks -> head, run with torch; the supported families; width scaling),
``train`` (training, distillation, accuracy), ``teacher`` (default teachers, save/load, what
``MODEL`` names), ``latency`` (blocks and networks priced from the target's table, missing
kernels measured; end-to-end measurement), ``methods`` (the method registry and the
interface below), ``hant`` (HANT, Molchanov et al. 2021), ``select`` (the integer program),
``job`` (the common driver: teacher, method, fine-tuning, baseline, export, measurement,
report), ``report`` (text of the report).

The method interface (how ``--method prune`` plugs in). A method is registered in
``methods.METHODS`` as ``Method(name, description, entry)`` with ``entry`` =
``"chamtvm.transform.<module>:<function>"`` (imported when first used), and the function is

    def run(ctx: methods.MethodContext) -> methods.MethodResult

``ctx`` holds the teacher (``ctx.teacher``: a :class:`teacher.Teacher`; ``ctx.net``: the
teacher as a ``graph.LayeredNet``, eval mode, never modified), the task's images
(``ctx.data``: a ``data.TaskData``; choose on ``val_*``, never on ``test_*``), the target's
latency (``ctx.latency``: a ``latency.TargetLatency``: ``price_blocks``, ``price_network``,
``measure_module``), the teacher's calibration (``ctx.context_scale``: measured / table sum
of the teacher), the budget (``ctx.budget_ms``, measured ms on the target), a folder of its
own for journals that make it resumable (``ctx.work``), the seed, method options
(``ctx.options``, from ``--option key=value``) and ``ctx.log``. It returns the adapted torch
module (input and output as the teacher's), its predicted latency in ms (calibrated) and a
JSON-able ``details`` dict for the report; ``finetuned=False`` asks the driver to fine-tune it
by distillation from the teacher (``train.fit`` with the teacher), which every method shares.
A method's module may also define ``check_options(options: dict) -> None`` raising
``methods.OptionError``: it runs before any work, so a bad ``--option`` fails at once.
Export, end-to-end measurement, the uniform baseline, the test accuracy and the report are the
driver's, the same for every method.

Importing this package loads nothing heavy (torch, TVM, scipy load when first used).
"""
