"""NAS-Bench-Macro: the packaged table, the ``macro`` space that rebuilds its networks, the
lookup task and the registries of tasks, samplers and acquisitions."""

import json

import numpy as np
import pytest

from chamtvm.accuracy import Journal, train_archs
from chamtvm.accuracy.encoding import arch_costs, model_cost
from chamtvm.accuracy.nasbench import PACKAGED, NasBenchMacro, NasBenchMacroTrainer, index_keys
from chamtvm.accuracy.sampling import ACQUISITIONS, SAMPLERS, sample_and_fit
from chamtvm.accuracy.tasks import TASKS, default_space, make_trainer
from chamtvm.core.registry import UnknownNameError
from chamtvm.space.schema import SearchSpace


@pytest.fixture(scope="module")
def macro():
    return SearchSpace.load("macro")


@pytest.fixture(scope="module")
def table():
    return NasBenchMacro.load()


def all_indices(space):
    import itertools

    return np.array([[0, *d] for d in itertools.product(range(3), repeat=8)], dtype=np.int64)


def test_packaged_table_carries_licence_and_citation(table):
    notice = (PACKAGED.parent / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in (PACKAGED.parent / "LICENSE").read_text()
    assert "Prioritized Architecture Sampling with Monto-Carlo Tree Search" in notice and "CVPR" in notice
    assert len(table.keys) == 6561 and table.keys[0] == "00000000" and table.keys[-1] == "22222222"


def test_every_network_of_macro_has_the_tables_parameter_count(macro, table):
    """All 6,561 networks, closed form (LayerSpace.costs): parameters equal the table's
    ``params`` and MACs its ``flops``; the closed form itself is checked against torch
    builds of a sample below."""
    idx = all_indices(macro)
    rows = table.row_of(index_keys(idx))
    costs = arch_costs(macro, idx)
    assert (costs[:, 0] == table.params[rows]).all()
    assert (costs[:, 1] == table.flops[rows]).all()


@pytest.mark.parametrize("key", ["00000000", "22222222", "01201201", "10000002", "12121212"])
def test_torch_build_of_macro_networks_matches_the_table(macro, table, key):
    arch = macro.from_indices([0, *map(int, key)])
    params, macs = model_cost(macro, arch)
    row = table.row_of([key])[0]
    assert (params, macs) == (table.params[row], table.flops[row])
    assert (params, macs) == tuple(arch_costs(macro, [macro.indices(arch)])[0])


def test_lookup_task_is_journaled_as_a_lookup(macro, table, tmp_path):
    trainer = make_trainer("nas-bench-macro")
    assert isinstance(trainer, NasBenchMacroTrainer) and default_space("nas-bench-macro") == "macro"
    rng = np.random.default_rng(0)
    archs = [macro.sample(rng) for _ in range(4)]
    journal = Journal(tmp_path / "j.jsonl")
    res = train_archs(macro, archs, trainer, journal, progress=False)
    for a, r in zip(archs, res):
        key = "".join(str(i) for i in macro.indices(a)[1:])
        seeds = json.loads(PACKAGED.read_text())[key]["test_acc"]
        assert r.accuracy == pytest.approx(np.mean(seeds) / 100, abs=1e-12)
    recs = journal.records()
    assert len(recs) == len({a.to_json() for a in archs})
    assert all(r["kind"] == "lookup" and r["task"] == "nas-bench-macro" and r["protocol"] == "mean-of-3-seeds"
               for r in recs)
    again = train_archs(macro, archs, trainer, journal, progress=False)
    assert all(r.cached for r in again) and len(journal.records()) == len(recs)


def test_lookup_task_refuses_other_spaces():
    with pytest.raises(ValueError, match="needs space 'macro'"):
        make_trainer("nas-bench-macro").check(SearchSpace.load("fashion"))
    d = SearchSpace.load("macro").to_dict()
    d["layers"][2]["choices"] = ["skip", "ir_k3_e1"]  # a block NAS-Bench-Macro never trained
    with pytest.raises(ValueError, match="or a sub-space of it"):
        make_trainer("nas-bench-macro").check(SearchSpace.from_dict(d))
    d = SearchSpace.load("macro").to_dict()
    d["layers"][0]["channels"] = 48
    with pytest.raises(ValueError, match="needs space 'macro'"):
        make_trainer("nas-bench-macro").check(SearchSpace.from_dict(d))


def test_lookup_task_looks_up_a_sub_space_of_macro_by_block_names(macro, table):
    d = macro.to_dict()
    d["name"] = "macro-reduced"
    d["layers"][0]["choices"] = ["ir_k5_e6", "ir_k3_e3"]  # other order: digits come from the names
    d["layers"][5]["choices"] = ["skip", "ir_k5_e6"]
    small = SearchSpace.from_dict(d)
    trainer = make_trainer("nas-bench-macro")
    trainer.check(small)
    rng = np.random.default_rng(1)
    archs = [small.sample(rng) for _ in range(5)]
    got = trainer.true_accuracy(small, [small.indices(a) for a in archs])
    want = trainer.true_accuracy(macro, [macro.indices(a) for a in archs])  # the same networks in macro
    assert np.array_equal(got, want)
    assert trainer.train(small, archs[0], 0) == want[0]


def test_registries_list_valid_names():
    assert {"nas-bench-macro", "fashion-mnist", "digits", "command"} <= set(TASKS.names())
    with pytest.raises(UnknownNameError, match="unknown task 'cifar'; valid tasks: command, digits, fashion-mnist"):
        make_trainer("cifar")
    assert SAMPLERS.names() == ["bo", "random"]
    assert {"ucb", "ei", "ivr"} <= set(ACQUISITIONS.names())
    X = np.random.default_rng(0).random((20, 2))
    with pytest.raises(ValueError, match="unknown acquisition 'pi'; valid acquisitions: ei, ivr"):
        sample_and_fit(X, lambda i: X[i, 0], 5, "bo", acquisition="pi")


def test_ceiling_is_the_seed_vs_seed_kendall_tau_of_the_table():
    from scipy.stats import kendalltau

    data = json.loads(PACKAGED.read_text())
    seeds = np.array([data[k]["test_acc"] for k in sorted(data)])
    expect = np.mean([kendalltau(seeds[:, i], seeds[:, j])[0] for i, j in ((0, 1), (0, 2), (1, 2))])
    assert make_trainer("nas-bench-macro").ceiling()["kendall_tau_between_seeds"] == pytest.approx(expect)
