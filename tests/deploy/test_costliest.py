"""Which kernels a network's tuning spends its trials on (``deploy.tune_network.costliest``):
about ``trials / trials_per_kernel`` of the costliest, or more where the budget gives one
round to each of the kernels that make up most of the deployed time."""

from __future__ import annotations

from types import SimpleNamespace

from chamtvm.deploy.tune_network import COVER_SHARE, costliest


class Rows:
    """A table's ``get`` over a dict of microseconds per call."""

    def __init__(self, us: dict[str, float]):
        self.us = us

    def get(self, key):
        return {"runtime_us_p50": self.us[key]} if key in self.us else None


def _prepared(costs: dict[str, tuple[float, int]]):
    """Prepared kernels (key, calls) and the table of their rows."""
    prepared = [SimpleNamespace(key=k, kernel=SimpleNamespace(count=n)) for k, (_, n) in costs.items()]
    return prepared, Rows({k: us for k, (us, _) in costs.items()})


def test_one_dominant_kernel_gets_the_budget_alone():
    prepared, table = _prepared({"big": (1000.0, 1), "a": (10.0, 1), "b": (10.0, 1), "c": (5.0, 1)})
    chosen = costliest(prepared, table, trials=64, trials_per_kernel=32)
    assert [p.key for _, p in chosen] == ["big", "a"]  # 64 // 32 = 2; "big" alone covers 90 %
    assert costliest(prepared, table, trials=0, trials_per_kernel=32) == []


def test_many_costly_kernels_each_get_a_round_where_the_budget_allows():
    # ResNet-18-like: 12 kernels of similar cost, and a kernel without a row (never chosen)
    costs = {f"k{i}": (40000.0 - 1000 * i, 1) for i in range(12)}
    prepared, table = _prepared(costs)
    prepared.append(SimpleNamespace(key="no-row", kernel=SimpleNamespace(count=1)))
    chosen = costliest(prepared, table, trials=256, trials_per_kernel=32)
    keys = [p.key for _, p in chosen]
    total = sum(us for us, _ in costs.values())
    # more than 256 // 32 = 8: the kernels that make up 90 % of the time, one 16-trial round each
    assert len(keys) > 8 and len(keys) <= 256 // 16 and "no-row" not in keys
    assert sum(costs[k][0] for k in keys) >= COVER_SHARE * total
    assert sum(costs[k][0] for k in keys[:-1]) < COVER_SHARE * total
    assert keys == sorted(keys, key=lambda k: -costs[k][0])  # costliest first
    # a small budget cannot give each a round: as many as it can
    assert len(costliest(prepared, table, trials=48, trials_per_kernel=32)) == 48 // 16


def test_calls_multiply_the_cost():
    prepared, table = _prepared({"once": (100.0, 1), "often": (30.0, 5)})
    assert [p.key for _, p in costliest(prepared, table, trials=16, trials_per_kernel=32)] == ["often"]


def test_networks_tuned_together_rank_a_shared_kernel_by_its_calls_in_all_of_them():
    """``tune_networks``: the union of the networks' kernels, each once; a kernel two networks
    share counts with its calls in both, so it can outrank one network's costlier own kernel."""
    from chamtvm.deploy.tune_network import union_kernels

    def kernel(h, count):
        return SimpleNamespace(struct_hash=h, count=count)

    nets = [SimpleNamespace(kernels=[kernel("shared", 1), kernel("own_a", 1)]),
            SimpleNamespace(kernels=[kernel("shared", 2), kernel("own_b", 1)])]
    kernels, calls = union_kernels(nets)
    assert [k.struct_hash for k in kernels] == ["shared", "own_a", "own_b"]
    assert calls == {"shared": 3, "own_a": 1, "own_b": 1}
    prepared = [SimpleNamespace(key=k.struct_hash, kernel=k) for k in kernels]
    table = Rows({"shared": 40.0, "own_a": 100.0, "own_b": 10.0})
    one = costliest(prepared, table, trials=8, trials_per_kernel=16)  # one kernel: a round of 8
    together = costliest(prepared, table, trials=8, trials_per_kernel=16, calls=calls)
    assert [p.key for _, p in one] == ["own_a"]            # 100 us x 1 > 40 us x 1
    assert [p.key for _, p in together] == ["shared"]      # 40 us x 3 calls in both networks > 100 us
    assert together[0][0] == 120.0
