"""``python -m chamtvm.devices.supervise --name N -- CMD...``: run CMD and start it again
whenever it exits (TVM's RPC server exits when a session process crashes), with a back-off;
stopped by stopping its process group. Gives up after ``--max-restarts`` within a minute."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="chamtvm.devices.supervise")
    ap.add_argument("--name", default="server")
    ap.add_argument("--max-restarts", type=int, default=10, help="per minute")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    starts: list[float] = []
    while True:
        now = time.monotonic()
        starts = [t for t in starts if now - t < 60] + [now]
        if len(starts) > args.max_restarts:
            print(f"[supervise {args.name}] {len(starts) - 1} restarts within a minute; giving up",
                  flush=True)
            return 1
        code = subprocess.call(cmd)
        print(f"[supervise {args.name}] exited with code {code}; restarting", flush=True)
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
