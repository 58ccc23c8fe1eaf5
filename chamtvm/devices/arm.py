"""An emulated aarch64 board on the tracker: real aarch64 TVM RPC servers under QEMU
user-mode emulation (``qemu-aarch64-static``), on this x86 machine.

Set-up, cached under ``<cache>/arm64`` (``$CHAMTVM_CACHE`` or ``~/.cache/chamtvm``) and
done once (~1-2 min; ~90 MB download):

* ``rootfs/``  an arm64 Debian userland with python3.11 (``mmdebstrap --variant=extract``;
  no chroot, no binfmt_misc);
* ``site/``    the aarch64 wheels of the host's TVM and tvm-ffi versions plus numpy
  (``pip install --target --platform manylinux_2_28_aarch64``), compiler parts removed;
* ``shim/``    ``sitecustomize.py`` pointing ``sys.executable`` at a wrapper that runs the
  aarch64 Python under QEMU (the x86 kernel cannot exec an aarch64 binary when TVM
  re-launches Python), and a copy of ``chamtvm/devices/server.py``.

Each server runs under QEMU in its own process group, registers with the tracker, and
answers ``chamtvm.device_info`` with ``{"emulated": true, ...}`` so runners label every
figure from it as an emulation figure. Timings are QEMU's, not an ARM core's: use them to
exercise the flow and to compare kernels relative to each other, never as device latency.

Host tools (``scripts/setup-arm-emulation.sh`` installs them): ``qemu-user-static``,
``mmdebstrap`` and ``g++-aarch64-linux-gnu`` (the cross linker of the ``arm`` target).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .procs import DeviceGroup, ManagedProcess, cache_dir

QEMU = "qemu-aarch64-static"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
ROOTFS_PACKAGES = ["python3.11", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1"]
REMOTE_EXTRA = ["numpy", "ml_dtypes", "psutil", "cloudpickle"]
# Only the runtime is needed on the device; these are the compiler and the sources.
PRUNE = ["tvm/lib/libtvm_compiler.so", "tvm/3rdparty", "tvm/src", "tvm/include"]
SETUP_SCRIPT = Path(__file__).resolve().with_name("setup-arm-emulation.sh")

SITECUSTOMIZE = '''\
# Written by chamtvm (devices/arm.py). Runs at start-up of the emulated aarch64 Python.
import os as _os, sys as _sys
_exe = _os.environ.get("CHAMTVM_QEMU_PYTHON")
if _exe:
    # TVM re-launches sys.executable for worker processes; the x86 kernel cannot exec the
    # aarch64 binary directly, so point it at the wrapper that runs it under QEMU.
    _sys.executable = _exe
'''


class EmulationError(RuntimeError):
    """The emulated device cannot be set up or started; the message says what to install."""


def _run(cmd: list[str], what: str, log: Callable[[str], None], env=None, timeout: float = 900) -> None:
    log(f"  $ {' '.join(cmd)}")
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             timeout=timeout, check=False)
    except FileNotFoundError:
        raise EmulationError(f"{what}: {cmd[0]} is not installed; run {SETUP_SCRIPT}") from None
    except subprocess.TimeoutExpired:
        raise EmulationError(f"{what}: timed out after {timeout:.0f} s") from None
    if out.returncode != 0:
        tail = out.stdout.decode(errors="replace").strip().splitlines()[-15:]
        raise EmulationError(f"{what} failed (exit {out.returncode}):\n" + "\n".join(tail))


@dataclass
class ArmEmulation:
    """The cached aarch64 userland + TVM runtime, and how to start servers from it."""

    root: Path

    @classmethod
    def default(cls) -> "ArmEmulation":
        return cls(cache_dir() / "arm64")

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def shim(self) -> Path:
        return self.root / "shim"

    @property
    def python(self) -> Path:
        return self.rootfs / "usr" / "bin" / "python3.11"

    @property
    def wrapper(self) -> Path:
        return self.shim / "python3-aarch64"

    # --------------------------------------------------------------- checks
    @staticmethod
    def missing_tools(for_setup: bool = True) -> list[str]:
        """Host programs that are needed and absent (``mmdebstrap`` only for set-up)."""
        tools = [QEMU, "aarch64-linux-gnu-g++"] + (["mmdebstrap"] if for_setup else [])
        return [t for t in tools if shutil.which(t) is None]

    def ready(self) -> bool:
        return all((d / ".chamtvm-complete").exists() for d in (self.rootfs, self.site)) \
            and self.python.exists()

    def versions(self) -> dict:
        import tvm
        import tvm_ffi

        return {"tvm": str(tvm.__version__), "tvm_ffi": str(tvm_ffi.__version__)}

    # ---------------------------------------------------------------- set-up
    def setup(self, log: Callable[[str], None] = print, mirror: str = MIRROR, force: bool = False) -> "ArmEmulation":
        """Create what is missing (idempotent; an interrupted step is redone)."""
        missing = self.missing_tools(for_setup=not self.ready() or force)
        if missing:
            raise EmulationError(f"missing host tools: {', '.join(missing)}; install them with "
                                 f"{SETUP_SCRIPT} (apt-get install qemu-user-static mmdebstrap "
                                 f"g++-aarch64-linux-gnu)")
        self.root.mkdir(parents=True, exist_ok=True)
        if force or not (self.rootfs / ".chamtvm-complete").exists():
            self._make_rootfs(log, mirror)
        if force or not (self.site / ".chamtvm-complete").exists() or self._site_stale():
            self._make_site(log)
        self._write_shim()
        return self

    def _make_rootfs(self, log, mirror: str) -> None:
        log(f"arm64 userland ({SUITE}, {', '.join(ROOTFS_PACKAGES)}) -> {self.rootfs}")
        tmp = self.root / "rootfs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        mode = "root" if os.geteuid() == 0 else "unshare"
        _run(["mmdebstrap", f"--mode={mode}", "--variant=extract", "--architectures=arm64",
              f"--include={','.join(ROOTFS_PACKAGES)}", SUITE, str(tmp), mirror],
             "mmdebstrap (arm64 userland)", log)
        if not (tmp / "usr" / "bin" / "python3.11").exists():
            raise EmulationError(f"mmdebstrap finished but {tmp}/usr/bin/python3.11 is missing")
        shutil.rmtree(self.rootfs, ignore_errors=True)
        tmp.rename(self.rootfs)
        (self.rootfs / ".chamtvm-complete").write_text(SUITE + "\n")

    def _site_stale(self) -> bool:
        marker = self.site / ".chamtvm-complete"
        return marker.exists() and marker.read_text().strip() != self._site_id()

    def _site_id(self) -> str:
        v = self.versions()
        return f"apache-tvm=={v['tvm']} apache-tvm-ffi=={v['tvm_ffi']}"

    def _make_site(self, log) -> None:
        v = self.versions()
        log(f"aarch64 TVM runtime ({self._site_id()}) -> {self.site}")
        tmp = self.root / "site.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--target", str(tmp), "--platform", "manylinux_2_28_aarch64",
              "--platform", "manylinux2014_aarch64", "--only-binary=:all:", "--python-version", "3.11",
              "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
              f"apache-tvm=={v['tvm']}", f"apache-tvm-ffi=={v['tvm_ffi']}", *REMOTE_EXTRA],
             "pip install of the aarch64 wheels", log)
        for rel in PRUNE:
            p = tmp / rel
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        shutil.rmtree(self.site, ignore_errors=True)
        tmp.rename(self.site)
        (self.site / ".chamtvm-complete").write_text(self._site_id() + "\n")

    def _write_shim(self) -> None:
        self.shim.mkdir(parents=True, exist_ok=True)
        (self.shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
        shutil.copyfile(Path(__file__).with_name("server.py"), self.shim / "chamtvm_rpc_server.py")
        shutil.copyfile(Path(__file__).parents[1] / "measure" / "insitu.py", self.shim / "chamtvm_insitu.py")
        qemu = shutil.which(QEMU) or QEMU
        self.wrapper.write_text(f'#!/bin/sh\nexec "{qemu}" -L "{self.rootfs}" "{self.python}" "$@"\n')
        self.wrapper.chmod(0o755)

    # ---------------------------------------------------------------- running
    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": f"{self.shim}:{self.site}",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "QEMU_LD_PREFIX": str(self.rootfs),
            "CHAMTVM_QEMU_PYTHON": str(self.wrapper),
        })
        for k in ("PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD"):
            env.pop(k, None)  # host values would point the aarch64 Python at x86 files
        return env

    def device_info(self) -> dict:
        return {"emulated": True, "emulator": f"{QEMU} (user mode) on {os.uname().machine}",
                "machine": "aarch64", "rootfs": str(self.rootfs)}

    def run_python(self, args: list[str], timeout: float = 300) -> str:
        """Run the emulated Python (for checks); returns its stdout."""
        out = subprocess.run([str(self.wrapper), *args], env=self.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=timeout, check=False)
        if out.returncode != 0:
            raise EmulationError(f"emulated python {' '.join(args)} failed:\n"
                                 + out.stdout.decode(errors="replace")[-2000:])
        return out.stdout.decode(errors="replace")

    def start_servers(self, tracker: tuple[str, int], key: str = "arm", n: int = 1,
                      wait: bool = True, timeout_s: float = 240.0) -> DeviceGroup:
        """Start ``n`` emulated aarch64 RPC servers registered under ``key``."""
        from .local import _log_path, server_command, start_servers, supervised

        if not self.ready():
            raise EmulationError(f"the arm64 userland is not set up under {self.root}; run "
                                 f"`python -m chamtvm device emulate-arm` (it sets up first)")
        self._write_shim()

        def start_one(port: int) -> ManagedProcess:
            name = f"arm-{key}-{port}"
            argv = server_command(tracker, key, port, python=str(self.wrapper),
                                  script=str(self.shim / "chamtvm_rpc_server.py"),
                                  device_info=self.device_info())
            return ManagedProcess.start(name, supervised(argv, name), env=self.env(),
                                        log=_log_path(name), cwd=str(self.root))

        group = DeviceGroup(tracker=tracker, key=key, emulated=True)
        start_servers(group, n, start_one, wait, timeout_s)
        return group


def start_arm_servers(tracker: tuple[str, int], key: str = "arm", n: int = 1, setup: bool = True,
                      log: Callable[[str], None] = print, timeout_s: float = 240.0) -> DeviceGroup:
    """Set up (if needed) and start ``n`` emulated aarch64 servers; returns their group."""
    emu = ArmEmulation.default()
    if setup:
        t0 = time.monotonic()
        if not emu.ready():
            log(f"setting up the emulated aarch64 device under {emu.root} (once)")
        emu.setup(log=log)
        log(f"emulated aarch64 device ready ({time.monotonic() - t0:.0f} s)")
    return emu.start_servers(tracker, key, n, timeout_s=timeout_s)
