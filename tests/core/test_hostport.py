"""HOST:PORT parsing and the TVM_TRACKER_* environment."""

import pytest

from chamtvm.core.hostport import check_port, parse_hostport, tracker_from_env


def test_parse_hostport():
    assert parse_hostport("127.0.0.1:9190") == ("127.0.0.1", 9190)
    assert parse_hostport("[::1]:80") == ("[::1]", 80)
    for bad in ("localhost", ":9190", "host:", "host:abc", "host:0", "host:65536", "host:-1"):
        with pytest.raises(ValueError):
            parse_hostport(bad, "tracker")
    with pytest.raises(ValueError, match="1-65535"):
        check_port(70000)
    with pytest.raises(ValueError, match="tracker must be HOST:PORT"):  # str.isdigit accepts a superscript
        parse_hostport("host:\u00b2", "tracker")


def test_tracker_from_env():
    assert tracker_from_env({}) is None
    assert tracker_from_env({"TVM_TRACKER_HOST": "h", "TVM_TRACKER_PORT": "9190"}) == ("h", 9190)
    with pytest.raises(ValueError, match="TVM_TRACKER_PORT is not set"):
        tracker_from_env({"TVM_TRACKER_HOST": "h"})
    with pytest.raises(ValueError, match="TVM_TRACKER_HOST is not set"):
        tracker_from_env({"TVM_TRACKER_PORT": "9190"})
    with pytest.raises(ValueError, match="port number"):
        tracker_from_env({"TVM_TRACKER_HOST": "h", "TVM_TRACKER_PORT": "abc"})
    with pytest.raises(ValueError, match="1-65535"):
        tracker_from_env({"TVM_TRACKER_HOST": "h", "TVM_TRACKER_PORT": "99999"})
    with pytest.raises(ValueError, match="port number"):
        tracker_from_env({"TVM_TRACKER_HOST": "h", "TVM_TRACKER_PORT": "\u00b2"})
