"""``devices.server``: the RPC server started for real on 127.0.0.1 (no tracker), a client
session connected under its key, and ``chamtvm.device_info`` answered with the JSON given;
a malformed ``--device-info`` fails before anything listens. (Its restart after a crashed
session is tested with real servers in ``measure/test_rpc.py``, slow tier.)"""

import json
import sys
import time

import pytest

from chamtvm.devices.procs import ManagedProcess, free_port_range


@pytest.mark.slow
def test_server_answers_a_session_and_its_device_info(tmp_path):
    from tvm import rpc

    port = free_port_range(3)
    info = {"emulated": True, "board": "qemu-aarch64"}
    log = tmp_path / "server.log"
    p = ManagedProcess.start("srv", [sys.executable, "-m", "chamtvm.devices.server", "--port", str(port),
                                     "--port-end", str(port + 2), "--key", "k9", "--device-info", json.dumps(info)],
                             log=log)
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text():
            assert p.alive(), log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert f"chamtvm rpc server: key=k9 listening on 127.0.0.1:{port}" in log.read_text()
        sess = rpc.connect("127.0.0.1", port, key="k9")
        assert json.loads(sess.get_function("chamtvm.device_info")()) == info
        assert "libtorch" not in open(f"/proc/{p.pid}/maps").read()  # started without torch (seconds)
    finally:
        p.stop()
    assert not p.alive()


def test_malformed_device_info_fails_before_listening():
    from chamtvm.devices.server import serve

    with pytest.raises(json.JSONDecodeError):
        serve("127.0.0.1", 1, 2, None, "k", device_info="{not json")
