"""Deployment targets as data, registered by name.

Each JSON file of the target folders (``target_dirs``) describes one target: the TVM
target (JSON form), its host, the cross compiler used to link libraries, the default RPC
key, the Relax pipeline and the evaluator settings used when timing kernels and networks.
Adding a target means adding such a file (the checkout's top-level ``targets/`` holds
examples to copy and edit).

``kernel_timing`` (optional, ``"isolated"`` by default): ``"in_network"`` times the table's
kernels inside batch networks (``lower.batchnet``, ``measure.insitu``) where the runner can,
so a row is what the kernel costs inside a network; part of the fingerprint.

``threads`` (optional: a count, or ``"auto"`` for all of this machine's cores but one: with
every core busy, one other process doubles a timing; with one core left free it does not,
``benchmarks/bench_threads.py``) is the number of
threads TVM's runtime runs each kernel with, for table rows and end-to-end measurements
alike (``TVM_NUM_THREADS`` of the measuring process). Without it TVM picks its own default,
which on x86 is half the hardware concurrency (1 on a 2-vCPU machine). It is part of the
fingerprint, so rows timed at one thread count never mix with rows timed at another.
``CHAMTVM_THREADS=<n>`` overrides it for every target (e.g. 1 on a machine shared with
other jobs, where a 2-thread timing doubles whenever another process takes a core).

``CHAMTVM_NOMINAL_BUDGET_S=<seconds>`` overrides every target's ``nominal_budget_s`` (how long
one item may sample while waiting for the device's nominal speed, ``measure.timing``): a
smaller budget finishes a quick run or a test suite sooner, rows then more often say they are
not nominal. Not part of the fingerprint (the rows are the same kind of measurement).

``network_evaluator.rounds`` (optional, 1 by default) times each network of a batch in that
many rounds, round-robin over the batch, and pools them (``table.networks``);
``CHAMTVM_NETWORK_ROUNDS=<n>`` overrides it for every target (1 for a quick run or a test
suite). Not part of the fingerprint: a network row says how many rounds it pooled, and a row of
fewer rounds than asked is measured again.

``vector_lanes`` (optional: a count, or ``"host"``) is how many fp32 values one vector
instruction of the target processes (x86 AVX-512 16, AVX2 8, ARM NEON 4): the granularity
channel pruning keeps widths at (``transform --method prune``). ``"host"`` resolves it from
the LLVM features of the target's resolved CPU (``targets.host.fp32_lanes``), as
``"mcpu": "host"`` resolves the CPU. Code generation does not depend on it, so it is not
part of the fingerprint.

``conv_layout`` (optional: ``"NCHW"``, ``"NHWC"``, ``"NCHW8c"``, ``"NCHW16c"``) is the data
layout convolutions are lowered in for the target (``lower.layout``; NHWC puts the channels
innermost, where a schedule can vectorize them at the target's width; ``NCHW<b>c`` blocks
of ``b`` channels innermost, weights pre-packed at compile time, ``lower.blocked``). ``schedule_rules`` (optional: ``"default"``,
``"wide-vector"``) is the MetaSchedule design space its kernels are tuned in: TVM's rules
for the target kind, or with the output's innermost axis always split at ``vector_lanes``
(``tuning.metaschedule.space_generator``). Absent means NCHW and TVM's rules. Neither is in
the fingerprint: both change the kernels or schedules themselves, which have their own keys.

``fast_math`` (optional, default false): lower sigmoid, SiLU, exp, tanh, erf and softmax to
fast polynomial approximations (``lower.fast_math``; relative error under 5e-6) instead of one
scalar ``expf`` call per element. It changes the kernels (their own keys), not the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..core.registry import Registry, UnknownNameError
from ..core.workdir import workdir

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
THREADS_ENV = "CHAMTVM_THREADS"
NOMINAL_BUDGET_ENV = "CHAMTVM_NOMINAL_BUDGET_S"
EVALUATOR_FIELDS = ("number", "repeat", "min_repeat_ms", "cooldown_interval_ms")
CONV_LAYOUTS = ("NCHW", "NHWC", "NCHW8c", "NCHW16c")
SCHEDULE_RULES = ("default", "wide-vector")
# how kernels are timed for the table: inside a batch network (each kernel right after a
# producer of its input, weights wherever the rest of the batch left them: ``lower.batchnet``)
# or alone in a loop (``time_evaluator`` on the kernel)
KERNEL_TIMINGS = ("in_network", "isolated")
BUSY_FIELDS = ("busy_other_cores", "busy_retries", "busy_wait_s")
NOMINAL_FIELDS = ("nominal_tolerance", "nominal_samples", "nominal_budget_s", "fast_state_tolerance", "rounds")
NETWORK_ROUNDS_ENV = "CHAMTVM_NETWORK_ROUNDS"


class TargetError(ValueError):
    """Unknown or malformed target; the message lists the valid names or the bad field."""


@dataclass(frozen=True)
class Evaluator:
    """``time_evaluator`` settings: each of ``repeat`` measurements runs the function
    ``number`` times (raised until one measurement lasts ``min_repeat_ms``).

    ``cache_flush`` (CPU kernels only): flush the CPU caches of every argument but the first
    before each measurement (TVM's ``cache_flush_cpu_non_first_arg``), so a kernel's weights
    and output come from memory as inside a network whose other kernels evicted them; use it
    with ``number`` 1 and ``min_repeat_ms`` 0 (each call cold). Part of the fingerprint."""

    number: int = 1
    repeat: int = 9
    min_repeat_ms: int = 10
    cooldown_interval_ms: int = 0
    cache_flush: bool = False
    # a busy machine (local CPU targets): an item timed while other processes used more than
    # ``busy_other_cores`` cores is timed again, after waiting up to ``busy_wait_s`` seconds
    # for a quieter machine, at most ``busy_retries`` times; the least busy attempt is kept
    # and its figure stored with the row (``measure.busy``). None: not checked.
    busy_other_cores: float | None = None
    busy_retries: int = 2
    busy_wait_s: float = 20.0
    # timing at the device's nominal speed: each sample is taken between two timings of a
    # fixed reference kernel and kept only when both ran within ``nominal_tolerance`` of the
    # device's nominal reference time (its fastest sustained speed: a slower reference means a
    # throttled clock, another tenant on the host, another process on the core); sampling goes
    # on until ``nominal_samples`` such samples are in or ``nominal_budget_s`` has passed (the
    # row then says it is not nominal). None: every sample kept (``measure.timing``).
    nominal_tolerance: float | None = None
    nominal_samples: int = 7
    nominal_budget_s: float = 20.0
    # of the samples kept, only those within ``fast_state_tolerance`` of the measurement's
    # fastest sample count (``measure.timing.fastest_state``): the device in its fastest state,
    # for kernel rows and networks alike. None: every kept sample counts.
    fast_state_tolerance: float | None = None
    # networks only: how many rounds each network of a batch is timed in, round-robin over the
    # batch (``table.networks.ensure_measured_all``): the device's speed drifts over minutes
    # (a virtual machine's host, a governor), so one network's figure pools ``rounds`` short
    # measurements spread over the whole batch's time instead of one taken in whatever state
    # the device was in at that moment (``measure.timing.pooled_rounds``). 1: one measurement.
    rounds: int = 1
    # the nominal reference time (us) the caller knows for this device and kind of library
    # (``table.reference``); None: the measurement finds it itself. Not from target files.
    reference_baseline_us: float | None = None
    # how much slower than nominal the device's slow spells make a sample (learnt from samples
    # taken on both sides of a measurement: ``table.reference``); used only for a measurement
    # that saw no nominal sample within its budget. None: unknown. Not from target files.
    slow_factor: float | None = None

    def for_ranking(self) -> "Evaluator":
        """These settings without the nominal-speed sampling: for timings that only rank
        candidates of one kernel against each other (schedule transfers), where a slow spell
        slows every candidate of a batch alike and waiting for nominal speed costs up to
        ``nominal_budget_s`` per candidate."""
        return replace(self, nominal_tolerance=None)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> "Evaluator":
        if not isinstance(d, Mapping):
            raise TargetError(f"{where}: expected an object with fields {[*EVALUATOR_FIELDS, 'cache_flush']}, "
                              f"got {d!r}")
        unknown = set(d) - set(EVALUATOR_FIELDS) - {"cache_flush"} - set(BUSY_FIELDS) - set(NOMINAL_FIELDS) \
            - {"reference_baseline_us", "slow_factor"}
        if unknown:
            raise TargetError(f"{where}: unknown evaluator fields {sorted(unknown)}")
        for k, v in d.items():
            if k == "cache_flush":
                if not isinstance(v, bool):
                    raise TargetError(f"{where}.cache_flush: expected true or false, got {v!r}")
            elif k in ("busy_other_cores", "busy_wait_s", "nominal_tolerance", "nominal_budget_s", "fast_state_tolerance",
                       "reference_baseline_us", "slow_factor"):
                if (v is not None or k in ("busy_wait_s", "nominal_budget_s")) and (isinstance(v, bool) or not isinstance(v, (int, float))
                                                            or not 0 <= v < float("inf")):
                    raise TargetError(f"{where}.{k}: expected a non-negative number, got {v!r}")
            elif k == "rounds":
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise TargetError(f"{where}.rounds: expected a positive integer, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise TargetError(f"{where}.{k}: expected a non-negative integer, got {v!r}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in EVALUATOR_FIELDS}, "cache_flush": self.cache_flush,
                **{f: getattr(self, f) for f in (*BUSY_FIELDS, *NOMINAL_FIELDS, "reference_baseline_us",
                                                 "slow_factor")}}


@dataclass(frozen=True)
class TargetSpec:
    """One deployment target (see the module docstring for the fields)."""

    name: str
    description: str
    tvm_target: Mapping[str, Any]
    host: Mapping[str, Any] | None
    num_cores: int | str | None
    device: str
    cross_compiler: str | None
    rpc_key: str
    relax_pipeline: str
    local: bool
    measurement: str
    evaluator: Evaluator
    network_evaluator: Evaluator
    threads: int | str | None = None
    vector_lanes: int | str | None = None
    conv_layout: str | None = None
    schedule_rules: str | None = None
    kernel_timing: str = "isolated"
    fast_math: bool = False
    source: str = field(default="", compare=False)

    def lowering(self) -> dict:
        """How networks are lowered for this target: keyword arguments of ``lower.network``'s
        ``lower_*`` and ``load_model`` (``layout``, ``fast_math``)."""
        return {"layout": self.conv_layout, "fast_math": self.fast_math}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "") -> "TargetSpec":
        if not isinstance(d, Mapping):
            raise TargetError(f"target file {source}: expected a JSON object describing one target, "
                              f"got a {type(d).__name__}")
        where = f"target {d.get('name', source)!r}"
        required = {"name", "tvm_target", "device", "rpc_key", "evaluator"}
        missing = required - set(d)
        if missing:
            raise TargetError(f"{where} ({source}): missing fields {sorted(missing)}")
        if not isinstance(d["tvm_target"], Mapping) or "kind" not in d["tvm_target"]:
            raise TargetError(f"{where}: tvm_target must be a TVM target JSON object with a 'kind'")
        if d.get("host") is not None and not isinstance(d["host"], Mapping):
            raise TargetError(f"{where}: host must be a TVM target JSON object (e.g. {{\"kind\": \"llvm\"}}) "
                              f"or null, got {d['host']!r}")
        if "local" in d and not isinstance(d["local"], bool):  # bool("false") would be True
            raise TargetError(f"{where}: local must be true or false (a JSON boolean), got {d['local']!r}")
        if d["device"] not in ("cpu", "cuda"):
            raise TargetError(f"{where}: device must be 'cpu' or 'cuda', got {d['device']!r}")
        ev = _with_budget_override(Evaluator.from_dict(d["evaluator"], f"{where}.evaluator"))
        threads = d.get("threads")
        if threads is not None and threads != "auto" and (
                isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise TargetError(f"{where}: threads must be a positive integer or 'auto', got {threads!r}")
        lanes = d.get("vector_lanes")
        if lanes is not None and lanes != "host" and (
                isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1):
            raise TargetError(f"{where}: vector_lanes must be a positive integer or 'host', got {lanes!r}")
        for name, allowed in (("conv_layout", CONV_LAYOUTS), ("schedule_rules", SCHEDULE_RULES)):
            if name in d and d[name] not in allowed:
                raise TargetError(f"{where}: {name} must be one of {list(allowed)}, got {d[name]!r}")
        if "fast_math" in d and not isinstance(d["fast_math"], bool):
            raise TargetError(f"{where}: fast_math must be true or false (a JSON boolean), got {d['fast_math']!r}")
        kernel_timing = d.get("kernel_timing", "isolated")
        if kernel_timing not in KERNEL_TIMINGS:
            raise TargetError(f"{where}: kernel_timing must be one of {list(KERNEL_TIMINGS)}, got {kernel_timing!r}")
        return cls(
            name=str(d["name"]),
            description=str(d.get("description", "")),
            tvm_target=dict(d["tvm_target"]),
            host=dict(d["host"]) if d.get("host") else None,
            num_cores=d.get("num_cores"),
            device=d["device"],
            cross_compiler=d.get("cross_compiler"),
            rpc_key=str(d["rpc_key"]),
            relax_pipeline=str(d.get("relax_pipeline", "default")),
            local=bool(d.get("local", False)),
            measurement=str(d.get("measurement", "device")),
            evaluator=ev,
            network_evaluator=_with_rounds_override(_with_budget_override(Evaluator.from_dict(
                d.get("network_evaluator", d["evaluator"]), f"{where}.network_evaluator"
            ))),
            threads=threads,
            vector_lanes=lanes,
            conv_layout=d.get("conv_layout"),
            schedule_rules=d.get("schedule_rules"),
            kernel_timing=kernel_timing,
            fast_math=bool(d.get("fast_math", False)),
            source=source,
        )

    def target_json(self) -> dict:
        """The TVM target JSON with ``num-cores`` resolved (``auto`` = this machine's cores)
        and ``"mcpu": "host"`` resolved to this machine's CPU (see ``targets.host``)."""
        from .host import HostCpuError, resolve_mcpu

        try:
            t = resolve_mcpu(dict(self.tvm_target))
        except HostCpuError as e:
            raise TargetError(f"target {self.name!r}: {e}") from None
        if self.num_cores == "auto":
            t["num-cores"] = os.cpu_count() or 1
        elif isinstance(self.num_cores, int):
            t["num-cores"] = self.num_cores
        return t

    @property
    def runtime_threads(self) -> int | None:
        """Threads per kernel the measuring process runs with (``TVM_NUM_THREADS``), or None
        where the target leaves it to TVM's default."""
        pinned = os.environ.get(THREADS_ENV)
        if pinned:
            if not (pinned.isascii() and pinned.isdigit()) or int(pinned) < 1:
                raise TargetError(f"{THREADS_ENV}={pinned!r}: expected a positive integer")
            return int(pinned)
        if self.threads == "auto":  # all cores but one: a timing survives one busy process
            return max(1, (os.cpu_count() or 1) - 1)
        return self.threads

    @property
    def lanes(self) -> int:
        """fp32 vector lanes of the target (``vector_lanes``, ``"host"`` resolved; 1 when unset)."""
        if self.vector_lanes is None:
            return 1
        if self.vector_lanes == "host":
            from .host import fp32_lanes

            return fp32_lanes(self.target_json())
        return int(self.vector_lanes)

    def tvm(self):
        """The ``tvm.target.Target`` (with host where one is given)."""
        from tvm.target import Target

        if self.host:
            return Target(self.target_json(), host=self.host)
        return Target(self.target_json())

    @property
    def fingerprint(self) -> str:
        """Short hash of the compiled-code identity (TVM target + host); part of table keys."""
        ident = {"target": self.target_json(), "host": self.host}
        if self.runtime_threads is not None:
            ident["threads"] = self.runtime_threads
        if self.evaluator.cache_flush:
            ident["cold_cache_kernels"] = True
        if self.kernel_timing != "isolated":
            ident["kernel_timing"] = self.kernel_timing
        if self.evaluator.nominal_tolerance is not None:
            ident["nominal_tolerance"] = self.evaluator.nominal_tolerance
        if self.evaluator.fast_state_tolerance is not None:
            ident["fast_state_tolerance"] = self.evaluator.fast_state_tolerance
        blob = json.dumps(ident, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    def tvm_device(self, session=None):
        """The TVM device to run on: local, or of an RPC ``session``."""
        import tvm

        if session is None:
            return tvm.cuda(0) if self.device == "cuda" else tvm.cpu(0)
        return session.cuda(0) if self.device == "cuda" else session.cpu(0)


def _with_budget_override(ev: Evaluator) -> Evaluator:
    """``ev`` with ``nominal_budget_s`` from ``CHAMTVM_NOMINAL_BUDGET_S`` where that is set."""
    value = os.environ.get(NOMINAL_BUDGET_ENV)
    if not value:
        return ev
    try:
        budget = float(value)
    except ValueError:
        budget = -1.0
    if not 0 <= budget < float("inf"):
        raise TargetError(f"{NOMINAL_BUDGET_ENV}={value!r}: expected a non-negative number of seconds")
    return replace(ev, nominal_budget_s=budget)


def _with_rounds_override(ev: Evaluator) -> Evaluator:
    """``ev`` (a network evaluator) with ``rounds`` from ``CHAMTVM_NETWORK_ROUNDS`` where that is set."""
    value = os.environ.get(NETWORK_ROUNDS_ENV)
    if not value:
        return ev
    if not value.strip().isdigit() or int(value) < 1:
        raise TargetError(f"{NETWORK_ROUNDS_ENV}={value!r}: expected a positive whole number of rounds")
    return replace(ev, rounds=int(value))


def checkout_targets_dir() -> Path | None:
    """The top-level ``targets/`` of the source checkout chamtvm runs from (beside the
    package and ``setup.py``); None for an installed package, which has no checkout."""
    root = Path(__file__).resolve().parents[2]
    folder = root / "targets"
    return folder if (root / "setup.py").is_file() and folder.is_dir() else None


def target_dirs() -> list[Path]:
    """The folders target files are read from, in this order; a file defines its target
    by name, and a later folder's file replaces an earlier one of the same name:

    1. the built-in targets (``builtin/``, package data);
    2. the checkout's ``targets/`` (only when chamtvm runs from a source checkout);
    3. the working folder's ``targets/`` (``<workdir>/targets``: ``$CHAMTVM_HOME`` or the
       current directory; the only project folder an installed package reads);
    4. ``$CHAMTVM_TARGETS_DIR`` (a user's own folder, last word).

    A folder that does not exist is skipped; one reached twice is read once."""
    dirs = [BUILTIN_DIR]
    extra = os.environ.get("CHAMTVM_TARGETS_DIR")
    if extra and not Path(extra).expanduser().is_dir():
        raise TargetError(f"CHAMTVM_TARGETS_DIR={extra} is not a folder (of target JSON files)")
    for d in (checkout_targets_dir(), workdir() / "targets", Path(extra).expanduser() if extra else None):
        if d is not None and d.is_dir() and all(d.resolve() != seen.resolve() for seen in dirs):
            dirs.append(d)
    return dirs


def target_registry() -> Registry:
    """Every target file, read now, as a registry (later folders override earlier ones)."""
    reg: Registry = Registry("target")
    for d in target_dirs():
        for path in sorted(d.glob("*.json")):
            if path.is_dir():
                raise TargetError(f"{path} is a folder, not a target file (in {d}); rename or move it")
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise TargetError(f"target file {path} is not valid JSON: {e}") from None
            except OSError as e:
                raise TargetError(f"target file {path} cannot be read ({e.strerror or e})") from None
            spec = TargetSpec.from_dict(data, source=str(path))
            reg.register(spec.name, spec, replace=True)
    return reg


def available_targets() -> dict[str, TargetSpec]:
    """All registered targets by name."""
    return dict(target_registry().items())


def get_target(name: str) -> TargetSpec:
    """The target registered as ``name``; an unknown name lists the valid ones."""
    try:
        return target_registry().get(name)
    except UnknownNameError as e:
        raise TargetError(str(e)) from None
