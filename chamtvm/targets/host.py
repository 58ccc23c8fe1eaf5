"""The CPU this process runs on, as LLVM names it: what ``"mcpu": "host"`` in a target
JSON resolves to.

``"mcpu": "host"`` asks for code generated for the machine that compiles (and, for a
local target, runs) the code: LLVM's name of the host CPU (e.g. ``emeraldrapids`` with
AVX-512 and AMX, ``znver4``, ``skylake``), the choice ONNX Runtime makes at run time.
``CHAMTVM_MCPU=<name>`` overrides the detection (e.g. ``CHAMTVM_MCPU=skylake`` for AVX2
code on an AVX-512 machine); an explicit ``"mcpu"`` in the target JSON pins it.

The resolved name enters the target's fingerprint, so tables and networks measured with
one code generation never mix with rows of another.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

HOST = "host"
ENV = "CHAMTVM_MCPU"


class HostCpuError(ValueError):
    """``CHAMTVM_MCPU`` names a CPU LLVM does not know; the message says which."""


@functools.lru_cache(maxsize=None)
def _llvm_system_cpu() -> str:
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


@functools.lru_cache(maxsize=None)
def _valid(name: str, triple: str) -> bool:
    from tvm.target import codegen

    return bool(codegen.llvm_is_valid_cpu(name, triple))


def host_cpu(triple: str = "x86_64-linux-gnu") -> str:
    """LLVM's name of this machine's CPU, or ``$CHAMTVM_MCPU`` when set (checked by LLVM)."""
    override = os.environ.get(ENV, "").strip()
    if override:
        if not _valid(override, triple):
            raise HostCpuError(f"{ENV}={override!r} is not a CPU LLVM knows for {triple}")
        return override
    return _llvm_system_cpu()


def resolve_mcpu(tvm_target: dict) -> dict:
    """``tvm_target`` with ``"mcpu": "host"`` replaced by :func:`host_cpu` (other values kept)."""
    if tvm_target.get("mcpu") != HOST:
        return tvm_target
    return {**tvm_target, "mcpu": host_cpu(tvm_target.get("mtriple", "x86_64-linux-gnu"))}


# fp32 lanes of the widest vector unit an LLVM target has, widest first
_LANES_BY_FEATURE = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse2", 4), ("neon", 4))


def fp32_lanes(tvm_target: dict) -> int:
    """32-bit float lanes of the widest vector registers of ``tvm_target`` (an LLVM target JSON
    with ``mcpu`` resolved), from LLVM's features for its triple, CPU and ``mattr``: 16 with
    AVX-512, 8 with AVX2/AVX, 4 with SSE2 or NEON, 1 without a vector unit LLVM names here.
    So ``CHAMTVM_MCPU=skylake`` gives 8 on an AVX-512 machine, as the code generated for it."""
    from tvm.target import Target, codegen

    features = codegen.llvm_get_cpu_features(Target(tvm_target))
    return next((lanes for feat, lanes in _LANES_BY_FEATURE if feat in features), 1)


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> set[str]:
    """The ISA flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def vector_isa(flags: set[str] | None = None) -> str:
    """The widest x86 vector ISA the CPU reports: ``avx512``, ``avx2``, ``sse4`` or ``none``."""
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    if "sse4_2" in flags:
        return "sse4"
    return "none"
