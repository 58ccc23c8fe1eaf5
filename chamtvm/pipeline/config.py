"""What the jobs are asked to do: ``TuneConfig`` (the main job, ``tune``) and ``SearchConfig``
(the ``search`` command), filled by the CLI (or by Python callers); the defaults both share.

Folders left as ``None`` resolve under the working folder (``core.workdir``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.workdir import luts_dir, runs_dir
from ..latency.models import DEFAULT_RESIDUAL_MODE
from .tuned_residual import NEIGHBOURS_PER_PICK

DEFAULT_TASK = "nas-bench-macro"  # the accuracy task of the main job
DEFAULT_SPACE = "macro"           # its space (accuracy.tasks.default_space(DEFAULT_TASK)), for tune and search
PICK_TRIALS = 256                 # MetaSchedule trials per distinct pick, one campaign over their kernels (step "tune picks")


@dataclass
class TuneConfig:
    """Settings of ``run_tune``; counts are numbers of kernels, networks or trials."""

    space: str = DEFAULT_SPACE
    trials: int = 64
    trials_per_kernel: int = 16
    tuning_population: int = 128     # MetaSchedule's evolutionary population per kernel (its own default: 512)
    pick_trials: int | None = None   # per pick, on its own kernels; None: PICK_TRIALS, or 0 with trials 0
    pick_neighbours: int = NEIGHBOURS_PER_PICK  # per tuned pick, timed with it to refit the residual (tuned_residual)
    heldout: int = 20
    heldout_seed: int = 2026
    train_networks: int = 20
    train_seed: int = 101
    residual_mode: str = DEFAULT_RESIDUAL_MODE
    calibration: bool = True
    real_calibration: bool | str = False  # also the real-network sweep: True/"uniform" or "adaptive" (latency.adaptive)
    statistic: str = "runtime_us_p50"
    batch_size: int = 48
    luts_dir: Path | None = None       # None: <workdir>/luts
    schedules_dir: Path | None = None  # None: <workdir>/schedules (or $CHAMTVM_SCHEDULES_DIR)
    progress: bool = True
    # the adaptation steps (pipeline.adapt)
    task: str = DEFAULT_TASK          # a registered task (accuracy.tasks), or "none"
    train_command: str | None = None  # with task "command"
    accuracy_samples: int = 20
    accuracy_pool: int | None = None  # None: the whole space up to 10,000 networks, else 200
    accuracy_seed: int = 0
    accuracy_proxies: bool = True     # zero-cost proxies among the loop's prior features (accuracy.proxies)
    accuracy_known: Path | None = None  # a journal whose trainings of the space (or of a space it restricts) are known points
    budgets_ms: tuple | None = None   # None: quantiles of the space's predicted latencies
    search_seed: int = 0
    lcb_kappa: float | None = None    # search on mean - kappa * GP std (None: on the mean)
    executor: object = None           # a concurrent.futures executor for trainings (None: in-process)
    contenders: int = 2               # lookup tasks: top true networks under each budget measured end to end
    population: int = 200
    generations: int = 60
    runs_dir: Path | None = None      # None: <workdir>/runs

    def __post_init__(self):
        if self.pick_trials is None:  # --trials 0 means no tuning at all, unless picks' trials are asked for
            self.pick_trials = PICK_TRIALS if self.trials > 0 else 0
        self.luts_dir = Path(self.luts_dir) if self.luts_dir is not None else luts_dir()
        self.runs_dir = Path(self.runs_dir) if self.runs_dir is not None else runs_dir()
        if self.schedules_dir is not None:
            self.schedules_dir = Path(self.schedules_dir)


@dataclass
class SearchConfig:
    """What ``chamtvm search`` is asked: a space (None: ``DEFAULT_SPACE``, as for tune), a
    budget in ms, optional limits (millions of multiply-accumulates / parameters), the GA's
    size and seed, folders (``None``: under the working folder) and whether to measure the
    chosen network."""

    space: str | None = None
    latency_ms: float = 0.0
    journal: Path | None = None
    max_mflops: float | None = None
    max_mparams: float | None = None
    population: int = 200
    generations: int = 60
    seed: int = 0
    out: Path | None = None
    luts_dir: Path | None = None
    schedules_dir: Path | None = None
    measure: bool = True
    pick_trials: int = 0             # MetaSchedule trials on the pick's own kernels before export (0: none)
    pick_neighbours: int = 2 * NEIGHBOURS_PER_PICK  # after a pick's tuning, timed with it to refit the residual
    trials_per_kernel: int = 16
    tuning_population: int = 128
    statistic: str = "runtime_us_p50"
