"""A TVM RPC tracker: ``python -m chamtvm.devices.tracker --host HOST --port P [--port-end E] [--silent]``.

The tracker of ``python -m tvm.exec.rpc_tracker`` (``tvm.rpc.tracker``'s listening thread),
run in this process. TVM's entry starts it in a second Python (``Tracker`` ->
``PopenWorker``), and each of the two imports TVM and, through tvm_ffi (which imports torch
whenever it can), torch: seconds of start-up twice over that a tracker, which only relays
addresses, never uses. Here torch is hidden from the import and TVM is imported once.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="chamtvm.devices.tracker", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9190)
    ap.add_argument("--port-end", type=int, default=9199, help="end (exclusive) of the ports tried")
    ap.add_argument("--silent", action="store_true", help="log warnings only")
    args = ap.parse_args(argv)
    sys.modules.setdefault("torch", None)  # tvm_ffi's `import torch` fails fast: ImportError
    import logging

    from tvm.rpc.tracker import PopenTrackerServerState

    logging.basicConfig(level=logging.INFO)
    state = PopenTrackerServerState(args.host, args.port, args.port_end, args.silent)
    print(f"chamtvm rpc tracker: listening on {args.host}:{state.port}", flush=True)
    state.thread.join()  # serves until the process is stopped
    return 0


if __name__ == "__main__":
    sys.exit(main())
