"""``"mcpu": "host"``: the x86 target generates code for this machine's CPU, can be pinned
by ``CHAMTVM_MCPU``, and the choice enters the target fingerprint (table keys)."""

from __future__ import annotations

import pytest

from chamtvm.targets.host import cpu_flags, host_cpu, resolve_mcpu, vector_isa
from chamtvm.targets.spec import TargetError, get_target


def test_host_mcpu_is_llvms_name_of_this_cpu(monkeypatch):
    from tvm.target import codegen

    monkeypatch.delenv("CHAMTVM_MCPU", raising=False)
    x86 = get_target("x86")
    assert x86.tvm_target["mcpu"] == "host"
    assert x86.target_json()["mcpu"] == str(codegen.llvm_get_system_cpu())
    assert x86.tvm().mcpu == str(codegen.llvm_get_system_cpu())
    # an explicit mcpu is kept as written
    assert resolve_mcpu({"kind": "llvm", "mcpu": "skylake"})["mcpu"] == "skylake"


def test_env_override_pins_mcpu_and_changes_the_fingerprint(monkeypatch):
    monkeypatch.delenv("CHAMTVM_MCPU", raising=False)
    x86 = get_target("x86")
    detected = x86.fingerprint
    other = "skylake" if host_cpu() != "skylake" else "haswell"
    monkeypatch.setenv("CHAMTVM_MCPU", other)
    assert x86.target_json()["mcpu"] == other
    assert x86.fingerprint != detected  # rows of one codegen never mix with another's
    monkeypatch.setenv("CHAMTVM_MCPU", "no-such-cpu")
    with pytest.raises(TargetError, match="no-such-cpu"):
        x86.target_json()


def test_vector_isa_from_cpuinfo_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert cpu_flags(info) >= {"avx2", "sse4_2"} and vector_isa(cpu_flags(info)) == "avx2"
    assert vector_isa({"avx512f", "avx2"}) == "avx512" and vector_isa(set()) == "none"
    assert vector_isa() in ("avx512", "avx2", "sse4", "none")


def test_vector_lanes_follow_the_resolved_cpu(monkeypatch):
    from chamtvm.targets.host import fp32_lanes

    assert fp32_lanes({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "skylake-avx512"}) == 16
    assert fp32_lanes({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"}) == 8
    assert fp32_lanes({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}) == 4
    monkeypatch.delenv("CHAMTVM_MCPU", raising=False)
    x86 = get_target("x86")
    assert x86.vector_lanes == "host"
    assert x86.lanes == {"avx512": 16, "avx2": 8, "sse4": 4}.get(vector_isa(), x86.lanes)
    monkeypatch.setenv("CHAMTVM_MCPU", "haswell")  # AVX2 code: 8 lanes on any x86 machine
    assert x86.lanes == 8
    assert get_target("arm").lanes == 4
