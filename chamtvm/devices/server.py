"""A TVM RPC server that survives crashing sessions:
``python -m chamtvm.devices.server --tracker HOST:PORT --key KEY [--port P] [--device-info JSON]``.

TVM's ``tvm.exec.rpc_server`` serves each session in a forked process; when that process
dies (a kernel that segfaults), its listening thread raises and the server stops taking
sessions while its process stays alive. This entry runs the same listening loop
(``tvm.rpc.server``) and starts it again on the same socket when it ends, so the device is
back on the tracker within a second. With ``--device-info`` it answers the remote global
function ``chamtvm.device_info`` with that JSON (how a runner learns it talks to an
emulator); it always answers ``chamtvm.time_calls`` (kernels timed inside a network on the
device: ``measure.insitu``). Standard library and ``tvm`` only: the file is also copied to emulated devices,
where chamtvm is not installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time


def _register_time_calls() -> None:
    """Answer ``chamtvm.time_calls`` (kernels timed inside a network, on the device itself:
    ``chamtvm.measure.insitu``); on an emulated device the module is the copy beside this file."""
    try:
        try:
            from chamtvm.measure.insitu import register_device_function
        except ImportError:
            from chamtvm_insitu import register_device_function  # copied by devices.arm
        register_device_function()
    except Exception as e:  # e.g. a TVM without the Relax VM; a runtime-only one is enough (insitu.RuntimeVM)
        print(f"chamtvm rpc server: chamtvm.time_calls unavailable ({type(e).__name__}: {e}); "
              f"kernels are timed one by one on this device", file=sys.stderr, flush=True)


def serve(host: str, port: int, port_end: int, tracker: str | None, key: str,
          device_info: str | None = None, max_restarts_per_min: int = 30) -> int:
    import os

    import tvm_ffi
    from tvm.rpc import server as rpc_server

    home = os.getcwd()
    _register_time_calls()
    if device_info is not None:
        json.loads(device_info)  # fail early on a malformed value

        @tvm_ffi.register_global_func("chamtvm.device_info", override=True)
        def _device_info():
            return device_info

    tracker_addr = None
    if tracker:
        h, p = tracker.rsplit(":", 1)
        tracker_addr = (h, int(p))
    state = rpc_server.PopenRPCServerState(host, port, port_end, False, tracker_addr, key)
    print(f"chamtvm rpc server: key={key} listening on {host}:{state.port}", flush=True)
    starts: list[float] = []
    thread = state.thread
    while True:
        thread.join()
        now = time.monotonic()
        starts = [t for t in starts if now - t < 60] + [now]
        if len(starts) > max_restarts_per_min:
            print("chamtvm rpc server: listening loop keeps failing; exiting", flush=True)
            return 1
        print("chamtvm rpc server: a session ended abnormally; serving again", flush=True)
        os.chdir(home)  # the failed session left us in its (now removed) work folder
        thread = threading.Thread(
            target=rpc_server._listen_loop,  # noqa: SLF001 (same loop TVM's server runs)
            args=(state.sock, state.port, key, tracker_addr, None, None), daemon=True)
        thread.start()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="chamtvm.devices.server", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9090)
    ap.add_argument("--port-end", type=int, default=9199)
    ap.add_argument("--tracker", default=None, help="HOST:PORT of the RPC tracker")
    ap.add_argument("--key", default="", help="device key at the tracker")
    ap.add_argument("--device-info", default=None, help="JSON answered by chamtvm.device_info")
    args = ap.parse_args(argv)
    # a server needs TVM's runtime only (its sessions are forks of this process); tvm_ffi
    # imports torch whenever it can, seconds of start-up per server: here the import fails
    sys.modules.setdefault("torch", None)
    logging.basicConfig(level=logging.WARNING)
    return serve(args.host, args.port, args.port_end, args.tracker, args.key, args.device_info)


if __name__ == "__main__":
    sys.exit(main())
