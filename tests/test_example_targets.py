"""The top-level ``targets/`` folder: example targets a user copies and edits (an Android
phone, a Raspberry Pi 4 / Jetson-class board, a CUDA GPU, a Hexagon DSP), read by default
beside the built-in ones. Each example parses, resolves to a TVM target and cross-compiles
one of the space's kernels where the toolchain is here; where it is not (the NDK's clang,
the Hexagon SDK), the runner says so before anything is measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {p.stem: p for p in sorted((REPO / "targets").glob("*.json"))}
EM_AARCH64, EM_QDSP6 = 183, 164  # ELF e_machine


def elf(path: Path) -> tuple[int, int]:
    """(e_machine, e_flags) of an ELF file."""
    head = path.read_bytes()[:64]
    assert head[:4] == b"\x7fELF", f"{path.name} is not ELF"
    flags_at = 36 if head[4] == 1 else 48  # ELFCLASS32 / ELFCLASS64
    return int.from_bytes(head[18:20], "little"), int.from_bytes(head[flags_at:flags_at + 4], "little")


@pytest.fixture(scope="module")
def conv_kernel(tiny_kernel_map):
    """The most expensive convolution kernel of the tiny space (unscheduled)."""
    convs = [k for k in tiny_kernel_map.kernels.values() if "conv2d" in k.name]
    return max(convs, key=lambda k: k.flops)


def scheduled(kernel, target):
    from chamtvm.table.fill import prepare
    from chamtvm.tuning.schedules import ScheduleSource

    (p,) = prepare([kernel], target, ScheduleSource(target, use_database=False))
    return p


def test_the_four_examples_are_there():
    assert {"android-arm64", "rpi4", "cuda-sm86", "hexagon-v68"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_parses_registers_and_resolves(name):
    from chamtvm.targets.spec import TargetSpec, get_target

    data = json.loads(EXAMPLES[name].read_text())
    assert data["name"] == name, "a target file is named after its target"
    spec = TargetSpec.from_dict(data, source=str(EXAMPLES[name]))
    registered = get_target(name)  # read by default: the checkout's targets/
    assert registered == spec and Path(registered.source).resolve() == EXAMPLES[name].resolve()
    assert registered.description and registered.rpc_key
    assert registered.local == bool(data.get("local"))  # remote devices, or this machine (x86-nchw16c)
    tvm_target = registered.tvm()
    assert tvm_target.kind.name == data["tvm_target"]["kind"]
    assert len(registered.fingerprint) == 10


def test_x86_nchw16c_is_the_x86_target_with_blocked_convolutions(tiny_space, tiny_archs):
    """The example ``x86-nchw16c``: the x86 target's fields but ``conv_layout``, and its
    lowering blocks the convolutions whose channels are multiples of 16."""
    import dataclasses

    from chamtvm.lower.network import lower_arch
    from chamtvm.targets.spec import get_target

    x86, blocked = get_target("x86"), get_target("x86-nchw16c")
    assert blocked.conv_layout == "NCHW16c" and blocked.lowering()["layout"] == "NCHW16c"
    same = ("tvm_target", "evaluator", "network_evaluator", "threads", "kernel_timing", "fast_math", "local")
    assert all(getattr(blocked, f) == getattr(x86, f) for f in same if hasattr(x86, f))
    assert dataclasses.replace(blocked, name="x86", description=x86.description, source=x86.source,
                               conv_layout=None) == x86
    net = lower_arch(tiny_space, tiny_archs[0], "a", **blocked.lowering())  # stage 2's 16-32 hidden channels
    assert any("conv2d_NCHWc" in k.name and k.args[0].shape[-1] == 16 for k in net.kernels)


@pytest.mark.slow  # cross-compiles and links for aarch64 (~6 s)
def test_raspberry_pi_kernel_cross_compiles_for_aarch64(conv_kernel, tmp_path):
    from chamtvm.measure.compile import build_kernel_library
    from chamtvm.targets.spec import get_target

    rpi4 = get_target("rpi4")
    assert rpi4.tvm().attrs["mcpu"] == "cortex-a72"
    p = scheduled(conv_kernel, rpi4)
    lib = build_kernel_library([(p.symbol, p.func)], rpi4, tmp_path / "k_rpi4.so")  # aarch64-linux-gnu-g++
    assert elf(lib)[0] == EM_AARCH64 and p.symbol.encode() in lib.read_bytes()


def test_android_kernel_compiles_and_a_missing_ndk_is_named(conv_kernel, tmp_path):
    import tvm

    from chamtvm.devices import free_port
    from chamtvm.measure.compile import build_kernel_library
    from chamtvm.measure.rpc import DeviceError, RPCRunner
    from chamtvm.targets.spec import get_target

    phone = get_target("android-arm64")
    assert phone.tvm().attrs["mtriple"] == "aarch64-linux-android"
    p = scheduled(conv_kernel, phone)
    obj = tmp_path / "k_android.o"
    tvm.tirx.build(tvm.IRModule({p.symbol: p.func.with_attr("global_symbol", p.symbol)}),
                   target=phone.tvm()).write_to_file(str(obj))
    assert elf(obj)[0] == EM_AARCH64
    if shutil.which(phone.cross_compiler):  # pragma: no cover - the NDK is not installed here
        assert elf(build_kernel_library([(p.symbol, p.func)], phone, tmp_path / "k.so"))[0] == EM_AARCH64
        return
    with pytest.raises(DeviceError, match="links its libraries with 'aarch64-linux-android28-clang\\+\\+', "
                                          "which is not installed"):
        RPCRunner(phone, "127.0.0.1", free_port(), phone.rpc_key).open()


def test_cuda_kernel_compiles_to_cuda_source_without_a_gpu(conv_kernel, tmp_path):
    from chamtvm.measure.compile import build_kernel_library
    from chamtvm.targets.spec import get_target

    gpu = get_target("cuda-sm86")
    assert gpu.tvm().attrs["arch"] == "sm_86"
    p = scheduled(conv_kernel, gpu)
    lib = build_kernel_library([(p.symbol, p.func)], gpu, tmp_path / "k_cuda.so")  # dlight-scheduled
    data = lib.read_bytes()
    assert b"__global__" in data and p.symbol.encode() in data  # the CUDA source travels in the .so


def test_hexagon_kernel_compiles_to_a_v68_dsp_object_and_a_missing_sdk_is_named(conv_kernel, tmp_path):
    import tvm

    from chamtvm.devices import free_port
    from chamtvm.measure.rpc import DeviceError, RPCRunner
    from chamtvm.targets.spec import get_target

    dsp = get_target("hexagon-v68")
    p = scheduled(conv_kernel, dsp)
    obj = tmp_path / "k_hexagon.o"
    tvm.tirx.build(tvm.IRModule({p.symbol: p.func.with_attr("global_symbol", p.symbol)}),
                   target=dsp.tvm()).write_to_file(str(obj))
    machine, flags = elf(obj)
    assert machine == EM_QDSP6 and flags & 0xFF == 0x68  # EF_HEXAGON_MACH_V68
    if shutil.which(dsp.cross_compiler):  # pragma: no cover - the Hexagon SDK is not installed here
        return
    with pytest.raises(DeviceError, match="links its libraries with 'hexagon-clang\\+\\+', which is not installed"):
        RPCRunner(dsp, "127.0.0.1", free_port(), dsp.rpc_key).open()


def test_target_folders_precedence(tmp_path, monkeypatch):
    """Built-ins, then the checkout's targets/, then the working folder's targets/, then
    $CHAMTVM_TARGETS_DIR; a later file of the same name replaces an earlier one."""
    from chamtvm.targets.spec import BUILTIN_DIR, checkout_targets_dir, get_target, target_dirs

    def variant(folder: Path, name: str, description: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        data = json.loads(EXAMPLES["rpi4"].read_text())
        (folder / f"{name}.json").write_text(json.dumps({**data, "name": name, "description": description}))

    work, mine = tmp_path / "work", tmp_path / "mine"
    variant(work / "targets", "rpi4", "the working folder's rpi4")
    variant(work / "targets", "board-b", "in the working folder")
    variant(mine, "board-b", "in CHAMTVM_TARGETS_DIR")
    monkeypatch.setenv("CHAMTVM_HOME", str(work))
    monkeypatch.delenv("CHAMTVM_TARGETS_DIR", raising=False)
    checkout = [checkout_targets_dir()] if checkout_targets_dir() else []  # none for an installed package
    assert target_dirs() == [BUILTIN_DIR, *checkout, work / "targets"]
    assert get_target("rpi4").description == "the working folder's rpi4"
    assert get_target("board-b").description == "in the working folder"
    assert get_target("x86").source.startswith(str(BUILTIN_DIR))
    monkeypatch.setenv("CHAMTVM_TARGETS_DIR", str(mine))
    assert target_dirs()[-1] == mine and get_target("board-b").description == "in CHAMTVM_TARGETS_DIR"
    monkeypatch.setenv("CHAMTVM_HOME", str(REPO))  # the working folder is the checkout: read once
    assert target_dirs() == [BUILTIN_DIR, REPO / "targets", mine]
