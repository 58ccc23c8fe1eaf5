"""Targets that cannot run here still compile here: CUDA (no GPU on this machine: the CUDA C
source is generated and exported, loading it fails) and Hexagon (objects for the DSP from
TVM's LLVM). Neither gives a latency here, and the runners refuse to pretend otherwise."""

from __future__ import annotations

from pathlib import Path

import os
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_space.json"
EM_QDSP6 = 164  # ELF e_machine of Qualcomm Hexagon


@pytest.fixture(scope="module")
def tiny_net():
    from chamtvm.lower.network import lower_arch
    from chamtvm.space.schema import SearchSpace

    space = SearchSpace.load(TINY)
    return lower_arch(space, space.sample(np.random.default_rng(0)), "tiny")


def _module_kinds(mod) -> list[str]:
    out = [mod.kind]
    for m in mod.imports:
        out += _module_kinds(m)
    return out


@pytest.mark.slow  # compiles a network and a kernel batch for CUDA (~3.5 s)
def test_cuda_network_and_kernel_batch_compile_and_export(tiny_net, tmp_path):
    import tvm

    from chamtvm.measure.compile import build_kernel_library, compile_network, export
    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.table.fill import prepare
    from chamtvm.targets.spec import get_target

    cuda = get_target("cuda")
    ex = compile_network(tiny_net.fused, cuda)
    assert "cuda" in _module_kinds(ex.mod)
    cuda_mod = next(m for m in ex.mod.imports[0].imports if m.kind == "cuda")
    src = cuda_mod.inspect_source("")
    assert 'extern "C" __global__' in src and src.count("__global__") >= len(tiny_net.kernels)
    lib = export(ex, cuda, tmp_path / "net_cuda.so")
    assert lib.stat().st_size > 0 and b"__global__" in lib.read_bytes()  # the source travels in the .so

    prep = prepare(tiny_net.kernels, cuda, ScheduleSource(cuda, use_database=False))
    klib = build_kernel_library([(p.symbol, p.func) for p in prep], cuda, tmp_path / "kernels_cuda.so")
    data = klib.read_bytes()
    assert all(p.symbol.encode() in data for p in prep)
    if tvm.cuda(0).exist:  # pragma: no cover - no GPU is lent to this machine
        pytest.skip("a GPU is present: loading is exercised by the measuring tests")
    with pytest.raises(Exception, match="cuda"):
        tvm.runtime.load_module(str(lib))


@pytest.mark.slow
def test_hexagon_kernels_compile_to_dsp_objects(tiny_net, tmp_path):
    import tvm

    from chamtvm.tuning.schedules import ScheduleSource
    from chamtvm.table.fill import prepare
    from chamtvm.targets.spec import get_target

    hexagon = get_target("hexagon")
    prep = prepare(tiny_net.kernels, hexagon, ScheduleSource(hexagon, use_database=False))
    mod = tvm.IRModule({p.symbol: p.func.with_attr("global_symbol", p.symbol) for p in prep})
    lib = tvm.tirx.build(mod, target=hexagon.tvm())
    obj = tmp_path / "kernels_hexagon.o"
    lib.write_to_file(str(obj))
    head = obj.read_bytes()
    assert head[:4] == b"\x7fELF" and head[4] == 1  # 32-bit ELF
    assert int.from_bytes(head[18:20], "little") == EM_QDSP6
    assert all(p.symbol.encode() in head for p in prep)


def test_hexagon_and_arm_need_a_tracker_to_measure(monkeypatch):

    from chamtvm.measure.runners import make_runner
    from chamtvm.targets.spec import TargetError, get_target

    monkeypatch.delenv("TVM_TRACKER_HOST", raising=False)
    for name in ("hexagon", "arm", "cuda"):
        with pytest.raises(TargetError, match="measured on a remote device: pass --tracker"):
            make_runner(get_target(name))


def test_rpc_runner_refuses_a_target_whose_linker_is_missing(tmp_path):
    from chamtvm.devices import free_port
    from chamtvm.measure.rpc import DeviceError, RPCRunner
    from chamtvm.targets.spec import get_target

    # the Hexagon SDK is not installed here: a clear error before any tracker traffic
    with pytest.raises(DeviceError, match="links its libraries with 'hexagon-clang\\+\\+', which is not installed"):
        RPCRunner(get_target("hexagon"), "127.0.0.1", free_port(), "hexagon").open()


def test_every_target_file_loads_and_builds_a_tvm_target():
    from chamtvm.targets.spec import available_targets

    targets = available_targets()
    assert {"x86", "arm", "cuda", "hexagon"} <= set(targets)
    for t in targets.values():
        tgt = t.tvm()
        assert tgt.kind.name == t.tvm_target["kind"]
    assert targets["arm"].tvm().attrs["mtriple"] == "aarch64-linux-gnu"
    assert targets["cuda"].tvm().attrs["arch"] == "sm_90"
    assert targets["hexagon"].tvm().attrs["mtriple"] == "hexagon"


def test_threads_field_is_checked_and_resolved():
    from chamtvm.targets.spec import TargetError, TargetSpec, get_target
    import os

    x86 = get_target("x86")
    assert x86.threads == "auto" and x86.runtime_threads == max(1, (os.cpu_count() or 1) - 1)  # a core left free
    base = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
            "evaluator": {"number": 1, "repeat": 3}}
    assert TargetSpec.from_dict(base).runtime_threads is None
    assert TargetSpec.from_dict({**base, "threads": 3}).runtime_threads == 3
    for bad in (0, -1, "all", 1.5, True):
        with pytest.raises(TargetError, match="threads must be a positive integer or 'auto'"):
            TargetSpec.from_dict({**base, "threads": bad})


def test_chamtvm_threads_pins_the_count_and_changes_the_fingerprint(monkeypatch):
    from chamtvm.targets.spec import TargetError, get_target

    x86 = get_target("x86")
    auto = x86.fingerprint
    pinned = 2 if x86.runtime_threads == 1 else 1
    monkeypatch.setenv("CHAMTVM_THREADS", str(pinned))
    assert x86.runtime_threads == pinned
    assert x86.fingerprint != auto
    monkeypatch.setenv("CHAMTVM_THREADS", "zero")
    with pytest.raises(TargetError, match="CHAMTVM_THREADS='zero': expected a positive integer"):
        x86.runtime_threads
    monkeypatch.setenv("CHAMTVM_THREADS", "\u00b2")  # str.isdigit accepts a superscript two
    with pytest.raises(TargetError, match="CHAMTVM_THREADS='\u00b2': expected a positive integer"):
        x86.runtime_threads


def test_chamtvm_nominal_budget_overrides_every_evaluator_but_not_the_fingerprint(monkeypatch):
    from chamtvm.targets.spec import TargetError, TargetSpec

    d = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
         "evaluator": {"repeat": 3, "nominal_tolerance": 0.1, "nominal_budget_s": 20}}
    monkeypatch.delenv("CHAMTVM_NOMINAL_BUDGET_S", raising=False)
    plain = TargetSpec.from_dict(d)
    assert plain.evaluator.nominal_budget_s == plain.network_evaluator.nominal_budget_s == 20
    monkeypatch.setenv("CHAMTVM_NOMINAL_BUDGET_S", "2.5")
    quick = TargetSpec.from_dict(d)
    assert quick.evaluator.nominal_budget_s == quick.network_evaluator.nominal_budget_s == 2.5
    assert quick.fingerprint == plain.fingerprint and quick.evaluator.repeat == 3
    for bad in ("soon", "-1", "inf"):
        monkeypatch.setenv("CHAMTVM_NOMINAL_BUDGET_S", bad)
        with pytest.raises(TargetError, match=f"CHAMTVM_NOMINAL_BUDGET_S='{bad}': expected a non-negative number"):
            TargetSpec.from_dict(d)


def test_network_rounds_are_checked_overridden_by_chamtvm_network_rounds_and_not_in_the_fingerprint(monkeypatch):
    from chamtvm.targets.spec import TargetError, TargetSpec, get_target

    d = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
         "evaluator": {"repeat": 3}, "network_evaluator": {"repeat": 5, "rounds": 4}}
    monkeypatch.delenv("CHAMTVM_NETWORK_ROUNDS", raising=False)
    plain = TargetSpec.from_dict(d)
    assert plain.network_evaluator.rounds == 4 and plain.evaluator.rounds == 1
    assert plain.network_evaluator.to_dict()["rounds"] == 4
    assert get_target("x86").network_evaluator.rounds == 5  # the built-in x86 times networks in rounds
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(TargetError, match="network_evaluator.rounds: expected a positive integer"):
            TargetSpec.from_dict({**d, "network_evaluator": {"rounds": bad}})
    monkeypatch.setenv("CHAMTVM_NETWORK_ROUNDS", "2")
    quick = TargetSpec.from_dict(d)
    assert quick.network_evaluator.rounds == 2 and quick.evaluator.rounds == 1  # networks only
    assert quick.fingerprint == plain.fingerprint
    for bad in ("0", "many", "-2"):
        monkeypatch.setenv("CHAMTVM_NETWORK_ROUNDS", bad)
        with pytest.raises(TargetError, match=f"CHAMTVM_NETWORK_ROUNDS='{bad}': expected a positive whole number"):
            TargetSpec.from_dict(d)


@pytest.mark.parametrize("field,value,message", [
    ("local", "false", "local must be true or false (a JSON boolean), got 'false'"),
    ("local", 1, "local must be true or false"),
    ("host", "llvm", "host must be a TVM target JSON object"),
    ("evaluator", "fast", "evaluator: expected an object with fields ['number', 'repeat'"),
    ("network_evaluator", [1], "network_evaluator: expected an object"),
])
def test_target_fields_of_the_wrong_type_are_named(field, value, message):
    from chamtvm.targets.spec import TargetError, TargetSpec

    base = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
            "evaluator": {"number": 1, "repeat": 3}}
    with pytest.raises(TargetError) as e:
        TargetSpec.from_dict({**base, field: value}, source="t.json")
    assert message in str(e.value)
    assert TargetSpec.from_dict({**base, "local": False}).local is False


@pytest.mark.parametrize("make,message", [
    (lambda d: (d / "x.json").write_text("[1, 2]"), "expected a JSON object describing one target, got a list"),
    (lambda d: (d / "x.json").mkdir(), "x.json is a folder, not a target file"),
    (lambda d: (d / "x.json").write_text("{"), "is not valid JSON"),
])
def test_a_bad_file_in_chamtvm_targets_dir_is_a_target_error_naming_it(tmp_path, monkeypatch, make, message):
    from chamtvm.targets.spec import TargetError, available_targets

    make(tmp_path)
    monkeypatch.setenv("CHAMTVM_TARGETS_DIR", str(tmp_path))
    with pytest.raises(TargetError, match=message):
        available_targets()
    monkeypatch.setenv("CHAMTVM_TARGETS_DIR", str(tmp_path / "x.json" / "nope"))
    with pytest.raises(TargetError, match="is not a folder"):
        available_targets()


def test_vector_lanes_field_is_checked():
    from chamtvm.targets.spec import TargetError, TargetSpec

    base = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
            "evaluator": {"number": 1, "repeat": 3}}
    assert TargetSpec.from_dict(base).lanes == 1
    assert TargetSpec.from_dict({**base, "vector_lanes": 4}).lanes == 4
    for bad in (0, -4, "auto", 2.0, True):
        with pytest.raises(TargetError, match="vector_lanes must be a positive integer or 'host'"):
            TargetSpec.from_dict({**base, "vector_lanes": bad})


def test_layout_and_schedule_rules_fields_are_kept_only_when_present(x86):
    """``conv_layout`` and ``schedule_rules`` parse, stay None when a file lacks them, and a
    bad value is a TargetError naming the field and the valid values."""
    from chamtvm.targets.spec import TargetError, TargetSpec

    base = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
            "evaluator": {"number": 1, "repeat": 3, "min_repeat_ms": 0, "cooldown_interval_ms": 0}}
    plain = TargetSpec.from_dict(base)
    assert plain.conv_layout is None and plain.schedule_rules is None
    spec = TargetSpec.from_dict({**base, "conv_layout": "NHWC", "schedule_rules": "wide-vector"})
    assert (spec.conv_layout, spec.schedule_rules) == ("NHWC", "wide-vector")
    assert spec.fingerprint == plain.fingerprint  # kernels and schedules carry their own keys
    for field, bad in (("conv_layout", "NCHW4c"), ("schedule_rules", "fast"), ("conv_layout", 3)):
        with pytest.raises(TargetError, match=f"{field} must be one of"):
            TargetSpec.from_dict({**base, field: bad})


def test_kernel_timing_and_nominal_speed_fields_are_checked_and_enter_the_fingerprint():
    from dataclasses import replace

    from chamtvm.targets.spec import Evaluator, TargetError, TargetSpec

    base = {"name": "t", "tvm_target": {"kind": "llvm"}, "device": "cpu", "rpc_key": "t",
            "evaluator": {"number": 1, "repeat": 3}}
    iso = TargetSpec.from_dict(base)
    net = TargetSpec.from_dict({**base, "kernel_timing": "in_network"})
    assert iso.kernel_timing == "isolated" and net.kernel_timing == "in_network"
    assert iso.fingerprint != net.fingerprint
    with pytest.raises(TargetError, match="kernel_timing must be one of"):
        TargetSpec.from_dict({**base, "kernel_timing": "inside"})
    nom = TargetSpec.from_dict({**base, "evaluator": {"number": 1, "nominal_tolerance": 0.15}})
    assert nom.evaluator.nominal_tolerance == 0.15 and nom.fingerprint != iso.fingerprint
    for bad in (-0.1, "x", True, float("inf")):
        with pytest.raises(TargetError, match="nominal_tolerance: expected a non-negative number"):
            Evaluator.from_dict({"nominal_tolerance": bad}, "t.evaluator")
    ev = replace(nom.evaluator, reference_baseline_us=12.5)
    assert Evaluator(**ev.to_dict()) == ev  # crosses to the measuring process intact
    fast = TargetSpec.from_dict({**base, "evaluator": {"number": 1, "nominal_tolerance": 0.15,
                                                       "fast_state_tolerance": 0.05}})
    assert fast.evaluator.fast_state_tolerance == 0.05 and fast.fingerprint not in (nom.fingerprint, iso.fingerprint)
    assert Evaluator(**fast.evaluator.to_dict()) == fast.evaluator
    with pytest.raises(TargetError, match="fast_state_tolerance: expected a non-negative number"):
        Evaluator.from_dict({"fast_state_tolerance": -1}, "t.evaluator")
