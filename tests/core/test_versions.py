"""``core.versions``: the TVM version stamped into rows is the installed TVM's."""

import re


def test_tvm_version_is_the_installed_distribution():
    from importlib.metadata import PackageNotFoundError, version

    from chamtvm.core.versions import tvm_version

    v = tvm_version()
    assert isinstance(v, str) and re.match(r"^\d+\.\d+", v), v
    assert v.startswith("0.27"), v  # the project is built on TVM 0.27 (README)
    for dist in ("apache-tvm", "tvm"):
        try:
            assert version(dist).split("+")[0] == v.split("+")[0]
            break
        except PackageNotFoundError:
            continue
