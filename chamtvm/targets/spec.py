"""Deployment targets as data, registered by name.

Each ``builtin/<name>.json`` file of this package (and each JSON file in the
folder named by ``CHAMTVM_TARGETS_DIR``, if set) describes one target: the TVM target
(JSON form), its host, the cross compiler used to link libraries, the default RPC key,
the Relax pipeline and the evaluator settings used when timing kernels and networks.
Adding a target means adding such a file.

``threads`` (optional: a count, or ``"auto"`` for this machine's cores) is the number of
threads TVM's runtime runs each kernel with, for table rows and end-to-end measurements
alike (``TVM_NUM_THREADS`` of the measuring process). Without it TVM picks its own default,
which on x86 is half the hardware concurrency (1 on a 2-vCPU machine). It is part of the
fingerprint, so rows timed at one thread count never mix with rows timed at another.
``CHAMTVM_THREADS=<n>`` overrides it for every target (e.g. 1 on a machine shared with
other jobs, where a 2-thread timing doubles whenever another process takes a core).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.registry import Registry, UnknownNameError

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
THREADS_ENV = "CHAMTVM_THREADS"
EVALUATOR_FIELDS = ("number", "repeat", "min_repeat_ms", "cooldown_interval_ms")


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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> "Evaluator":
        if not isinstance(d, Mapping):
            raise TargetError(f"{where}: expected an object with fields {[*EVALUATOR_FIELDS, 'cache_flush']}, "
                              f"got {d!r}")
        unknown = set(d) - set(EVALUATOR_FIELDS) - {"cache_flush"}
        if unknown:
            raise TargetError(f"{where}: unknown evaluator fields {sorted(unknown)}")
        for k, v in d.items():
            if k == "cache_flush":
                if not isinstance(v, bool):
                    raise TargetError(f"{where}.cache_flush: expected true or false, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise TargetError(f"{where}.{k}: expected a non-negative integer, got {v!r}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {**{f: getattr(self, f) for f in EVALUATOR_FIELDS}, "cache_flush": self.cache_flush}


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
    source: str = field(default="", compare=False)

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
        ev = Evaluator.from_dict(d["evaluator"], f"{where}.evaluator")
        threads = d.get("threads")
        if threads is not None and threads != "auto" and (
                isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise TargetError(f"{where}: threads must be a positive integer or 'auto', got {threads!r}")
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
            network_evaluator=Evaluator.from_dict(
                d.get("network_evaluator", d["evaluator"]), f"{where}.network_evaluator"
            ),
            threads=threads,
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
        if self.threads == "auto":
            return os.cpu_count() or 1
        return self.threads

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
        blob = json.dumps(ident, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    def tvm_device(self, session=None):
        """The TVM device to run on: local, or of an RPC ``session``."""
        import tvm

        if session is None:
            return tvm.cuda(0) if self.device == "cuda" else tvm.cpu(0)
        return session.cuda(0) if self.device == "cuda" else session.cpu(0)


def _target_dirs() -> list[Path]:
    dirs = [BUILTIN_DIR]
    extra = os.environ.get("CHAMTVM_TARGETS_DIR")
    if extra:
        if not Path(extra).expanduser().is_dir():
            raise TargetError(f"CHAMTVM_TARGETS_DIR={extra} is not a folder (of target JSON files)")
        dirs.append(Path(extra).expanduser())
    return dirs


def target_registry() -> Registry:
    """Every target file, read now, as a registry (later folders override earlier ones)."""
    reg: Registry = Registry("target")
    for d in _target_dirs():
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
