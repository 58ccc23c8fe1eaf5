"""Zero-cost proxies: finite scores that see the network, one cache that never scores twice,
the bundled NAS-Bench-Macro cache reproducible from the code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chamtvm.accuracy.proxies import (PROXIES, ProxyCache, load_bundle, network_proxies, pool_proxies, proxy_batch,
                                      write_bundle)
from chamtvm.space.schema import SearchSpace

GRAY = Path(__file__).resolve().parents[1] / "data" / "space_tiny_gray.json"


@pytest.fixture(scope="module")
def gray():
    return SearchSpace.load(GRAY)


def test_scores_are_finite_and_grow_with_the_network(gray, tmp_path):
    small = gray.from_indices([0] * gray.encoding_length)
    large = gray.from_indices([len(c) - 1 for _, c in gray.dimensions()])
    cache = ProxyCache(tmp_path / "p.json", gray, task="digits")
    P = cache.get([small, large])
    assert P.shape == (2, len(PROXIES)) and np.isfinite(P).all()
    assert P[1, PROXIES.index("synflow")] > P[0, PROXIES.index("synflow")]  # more weights, more flow
    assert "digits training images" in cache.inputs
    # cached: a second cache on the same file scores nothing
    again = ProxyCache(tmp_path / "p.json", gray, task="digits")
    spent = again.seconds
    assert np.array_equal(again.get([large, small]), P[::-1]) and again.seconds == spent
    with pytest.raises(ValueError, match="holds proxies of space"):
        ProxyCache(tmp_path / "p.json", SearchSpace.load("macro"))


def test_noise_inputs_when_the_task_has_no_images(gray):
    x, y, desc = proxy_batch("nas-bench-macro", gray, batch=4)
    assert tuple(x.shape)[0] == 4 and len(y) == 4 and "standard normal" in desc
    x2, _, _ = proxy_batch("nas-bench-macro", gray, batch=4)
    assert (x == x2).all()  # seeded


def test_pool_proxies_caches_beside_the_journal(gray, tmp_path):
    archs = [gray.from_indices([0] * gray.encoding_length)]
    P = pool_proxies(gray, archs, task="digits", cache_dir=tmp_path)
    assert (tmp_path / "proxies-tinygray-digits.json").exists() and P.shape == (1, 3)


def test_bundle_round_trip(gray, tmp_path, monkeypatch):
    import itertools

    from chamtvm.accuracy import proxies

    archs = [gray.from_indices(r) for r in itertools.product(*[range(len(c)) for _, c in gray.dimensions()])]
    cache = ProxyCache(tmp_path / "c.json", gray)
    cache.entries = {a.to_json(): [float(i), 1.0, 2.0] for i, a in enumerate(archs)}  # stand-in values
    write_bundle(cache, tmp_path / "b.json")
    monkeypatch.setitem(proxies.BUNDLED, gray.name, tmp_path / "b.json")
    table, meta = load_bundle(gray)
    assert meta["space"] == "tinygray" and table[archs[5].to_json()] == [5.0, 1.0, 2.0]
    assert pool_proxies(gray, archs[3:5])[:, 0].tolist() == [3.0, 4.0]  # read from the bundle, nothing scored
