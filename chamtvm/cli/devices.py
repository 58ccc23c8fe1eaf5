"""``python -m chamtvm device {emulate-arm,x86-server,tracker,status,stop}``.

The start commands return once every server is registered with the tracker, leaving the
processes running in their own process groups (recorded under ``<cache>/run``);
``device stop`` stops them. With ``--foreground`` they stay attached and stop on Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import time


from .validate import positive_int as _positive_int
from .validate import tracker as _tracker  # HOST:PORT, port 1-65535


def _tracker_up(tracker) -> bool:
    from ..measure.rpc import DeviceError, tracker_summary

    try:
        tracker_summary(*tracker, timeout_s=2.0)
        return True
    except DeviceError:
        return False


def _maybe_start_tracker(args, group) -> None:
    from ..devices.local import start_tracker

    if not args.start_tracker:
        return
    if _tracker_up(args.tracker):
        print(f"tracker already running at {args.tracker[0]}:{args.tracker[1]}; using it")
        return
    if args.tracker[0] not in ("127.0.0.1", "localhost"):
        raise SystemExit("chamtvm: error: --start-tracker only starts a tracker on 127.0.0.1")
    tr = start_tracker(args.tracker[1], host="127.0.0.1")
    group.extend(tr)
    print(f"started RPC tracker on 127.0.0.1:{args.tracker[1]}")


def _hold_or_record(args, group, name: str) -> int:
    if args.foreground:
        print("running; Ctrl-C stops every process started here")
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            group.stop()
        return 0
    path = group.record(name)
    print(f"processes left running (record {path}); stop them with: python -m chamtvm device stop "
          f"--tracker {args.tracker[0]}:{args.tracker[1]}")
    return 0


def cmd_emulate_arm(args) -> int:
    from ..measure.rpc import DeviceError
    from ..devices.arm import ArmEmulation, EmulationError
    from ..devices.procs import DeviceGroup

    emu = ArmEmulation.default()
    t0 = time.monotonic()
    try:
        if not emu.ready() or args.force_setup:
            print(f"setting up the emulated aarch64 device under {emu.root} (once; ~1 min)")
        emu.setup(log=print, force=args.force_setup)
        print(f"emulated aarch64 userland and TVM runtime ready ({time.monotonic() - t0:.0f} s)")
        if args.setup_only:
            return 0
        group = DeviceGroup(tracker=args.tracker, key=args.key, emulated=True)
        try:
            _maybe_start_tracker(args, group)
            if not _tracker_up(args.tracker):
                raise DeviceError(f"no RPC tracker answers at {args.tracker[0]}:{args.tracker[1]} "
                                  f"(pass --start-tracker to start one)")
            print(f"starting {args.servers} emulated aarch64 server(s) under key {args.key!r} "
                  f"(QEMU start-up takes ~30 s)")
            servers = emu.start_servers(args.tracker, args.key, args.servers)
            group.extend(servers)
        except BaseException:
            group.stop()
            raise
    except (EmulationError, DeviceError) as e:
        print(f"chamtvm: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.servers} EMULATED aarch64 device(s) registered at {args.tracker[0]}:{args.tracker[1]} "
          f"key={args.key} ({time.monotonic() - t0:.0f} s). Timings from them are QEMU emulation "
          f"figures, not ARM device timings.")
    print(f"  python -m chamtvm tune --target arm --tracker {args.tracker[0]}:{args.tracker[1]} --key {args.key}")
    return _hold_or_record(args, group, f"arm-{args.key}-{args.tracker[1]}")


def cmd_x86_server(args) -> int:
    from ..measure.rpc import DeviceError
    from ..devices.local import start_x86_server
    from ..devices.procs import DeviceGroup

    group = DeviceGroup(tracker=args.tracker, key=args.key)
    try:
        _maybe_start_tracker(args, group)
        group.extend(start_x86_server(args.tracker, args.key, args.servers))
    except DeviceError as e:
        group.stop()
        print(f"chamtvm: error: {e}", file=sys.stderr)
        return 2
    except BaseException:
        group.stop()
        raise
    print(f"{args.servers} native server(s) registered at {args.tracker[0]}:{args.tracker[1]} key={args.key}")
    return _hold_or_record(args, group, f"x86-{args.key}-{args.tracker[1]}")


def _warn_if_all_interfaces(host: str) -> None:
    if host in ("0.0.0.0", "::", "", "*"):
        print(f"warning: the tracker listens on all network interfaces ({host or '*'}): every machine that "
              "can reach this one can register devices with it and request them; use 127.0.0.1 unless "
              "devices on other machines must reach it, and only on a trusted network", file=sys.stderr)


def cmd_tracker(args) -> int:
    from ..devices.local import start_tracker

    _warn_if_all_interfaces(args.tracker[0])
    if _tracker_up(args.tracker):
        print(f"a tracker already answers at {args.tracker[0]}:{args.tracker[1]}", file=sys.stderr)
        return 2
    group = start_tracker(args.tracker[1], host=args.tracker[0])
    print(f"RPC tracker running on {args.tracker[0]}:{args.tracker[1]}")
    return _hold_or_record(args, group, f"tracker-{args.tracker[1]}")


def cmd_status(args) -> int:
    from ..measure.rpc import DeviceError, tracker_summary
    from ..devices.procs import recorded_groups

    running = 0
    for path, g in recorded_groups(log=lambda m: print(m, file=sys.stderr)).items():
        alive = g.alive()
        if not alive:  # everything it started has ended: the record no longer describes anything
            path.unlink(missing_ok=True)
            print(f"{path.stem}: 0/{len(g.processes)} processes alive (ended; record removed)")
            continue
        running += 1
        print(f"{path.stem}: {alive}/{len(g.processes)} processes alive"
              f"{' (EMULATED)' if g.emulated else ''}")
    if not running and not args.tracker:
        print("no devices running (none recorded; start one with: python -m chamtvm device x86-server "
              "--start-tracker, or ask a tracker with --tracker HOST:PORT)")
    if args.tracker:
        try:
            info = tracker_summary(*args.tracker)
        except DeviceError as e:
            print(f"chamtvm: error: {e}", file=sys.stderr)
            return 2
        keys = {}
        for s in info.get("server_info", []):
            k = s.get("key", "").split(":", 1)[-1]
            keys[k] = keys.get(k, 0) + 1
        for k, q in sorted(info.get("queue_info", {}).items()):
            print(f"key {k}: {keys.get(k, 0)} registered, {q['free']} free, {q['pending']} pending")
    return 0


def cmd_stop(args) -> int:
    from ..devices.procs import recorded_groups

    stopped = 0
    for path, g in recorded_groups(log=lambda m: print(m, file=sys.stderr)).items():
        if args.tracker and g.tracker and tuple(g.tracker) != tuple(args.tracker):
            continue
        if args.key and g.key != args.key:
            continue
        g.stop()
        path.unlink(missing_ok=True)
        stopped += 1
        print(f"stopped {path.stem} ({len(g.processes)} process groups)")
    if not stopped:
        print("nothing recorded to stop")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("device", help="start/stop RPC devices: emulated ARM, x86 servers, tracker")
    sub = p.add_subparsers(dest="device_command", required=True)

    def common(q, key_default):
        q.add_argument("--tracker", type=_tracker, default=("127.0.0.1", 9190), help="HOST:PORT (default 127.0.0.1:9190)")
        q.add_argument("--key", default=key_default, help=f"device key (default {key_default!r})")
        q.add_argument("--servers", type=_positive_int, default=1, help="number of servers")
        q.add_argument("--start-tracker", action="store_true", help="start a tracker on 127.0.0.1 first")
        q.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops everything")

    q = sub.add_parser("emulate-arm", help="start emulated aarch64 RPC servers (QEMU) on the tracker")
    common(q, "arm")
    q.add_argument("--setup-only", action="store_true", help="only prepare the cached userland")
    q.add_argument("--force-setup", action="store_true", help="rebuild the cached userland")
    q.set_defaults(func=cmd_emulate_arm)

    q = sub.add_parser("x86-server", help="start native RPC servers on 127.0.0.1")
    common(q, "x86")
    q.set_defaults(func=cmd_x86_server)

    q = sub.add_parser("tracker", help="start an RPC tracker")
    q.add_argument("--tracker", type=_tracker, default=("127.0.0.1", 9190), help="HOST:PORT to listen on")
    q.add_argument("--foreground", action="store_true")
    q.set_defaults(func=cmd_tracker)

    q = sub.add_parser("status", help="recorded device processes and the tracker's queues")
    q.add_argument("--tracker", type=_tracker, default=None)
    q.set_defaults(func=cmd_status)

    q = sub.add_parser("stop", help="stop recorded device processes (all, or of one tracker/key)")
    q.add_argument("--tracker", type=_tracker, default=None)
    q.add_argument("--key", default=None)
    q.set_defaults(func=cmd_stop)
