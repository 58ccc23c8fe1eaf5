"""``lower.cache``: an architecture's imported Relax module is kept on disk and read back
structurally equal (same kernels, same table keys); a torn file is imported again; the cache
can be switched off and stays under its size limit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "relax-cache"
    monkeypatch.setenv("CHAMTVM_CACHE_DIR", str(folder))
    return folder


def _space_and_arch(seed=0):
    from chamtvm.space.schema import SearchSpace

    space = SearchSpace.load(DATA / "space_tiny3.json")
    return space, space.sample(np.random.default_rng(seed))


@pytest.mark.slow
def test_a_lowered_architecture_is_read_back_with_the_same_kernels(cache):
    import tvm_ffi

    from chamtvm.lower.kernels import from_torch
    from chamtvm.lower.network import lower_arch
    from chamtvm.space.model import build_model, input_shape

    space, arch = _space_and_arch()
    first = lower_arch(space, arch)
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    again = lower_arch(space, arch)  # read back from the file
    assert [(k.name, k.struct_hash, k.count) for k in again.kernels] == \
           [(k.name, k.struct_hash, k.count) for k in first.kernels]
    assert tvm_ffi.structural_equal(again.fused, first.fused)
    # and it is what an import without the cache gives
    fresh = from_torch(build_model(space, arch, seed=0), input_shape(space, arch))
    import tvm

    assert tvm_ffi.structural_equal(tvm.ir.load_json(files[0].read_text()), fresh)
    # another architecture is another file
    other = next(a for a in (_space_and_arch(s)[1] for s in range(1, 20)) if a.to_dict() != arch.to_dict())
    lower_arch(space, other)
    assert len(list(cache.glob("*.json"))) == 2


def test_a_torn_file_is_imported_again_and_replaced(cache):
    from chamtvm.lower.network import lower_arch

    space, arch = _space_and_arch()
    want = [k.struct_hash for k in lower_arch(space, arch).kernels]
    (path,) = cache.glob("*.json")
    path.write_text(path.read_text()[: 1000])  # a write cut short
    assert [k.struct_hash for k in lower_arch(space, arch).kernels] == want
    assert len(path.read_text()) > 1000


def test_off_writes_nothing_and_the_limit_evicts_the_least_recently_used(tmp_path, monkeypatch):
    from chamtvm.lower import cache as c

    monkeypatch.setenv("CHAMTVM_CACHE_DIR", "off")
    assert c.cache_dir() is None
    assert c.cached_module("k", lambda: "built") == "built"
    folder = tmp_path / "c"
    folder.mkdir()
    for i, name in enumerate(("old", "mid", "new")):
        (folder / f"{name}.json").write_bytes(b"x" * 1000)
        os.utime(folder / f"{name}.json", (time.time() - 100 + i, time.time() - 100 + i))
    c._evict(folder, 2500)
    assert sorted(p.stem for p in folder.glob("*.json")) == ["mid", "new"]
