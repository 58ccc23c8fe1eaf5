"""``accuracy.fit``: building the accuracy predictor of a space through the journal (a rerun
trains nothing twice), its saved GP and cross-validation, its errors; and refitting from a
journal under one protocol (other protocols and foreign architectures left out, repeated
trainings averaged)."""


import numpy as np
import pytest

from chamtvm.accuracy.fit import (build_predictor, default_journal, default_pool_size, fit_from_journal,
                                  journal_trainings, trainer_protocol)
from chamtvm.accuracy.journal import Journal
from chamtvm.accuracy.trainer import FunctionTrainer
from chamtvm.space.schema import Arch, SearchSpace


def _acc(arch):
    return 0.5 + 0.01 * arch.stages[1].channels + 0.005 * arch.stages[2].channels


@pytest.fixture(scope="module")
def gray():
    from pathlib import Path

    return SearchSpace.load(Path(__file__).resolve().parents[1] / "data" / "space_tiny_gray.json")


def test_default_journal_and_pool(gray, tmp_path, monkeypatch):
    monkeypatch.setenv("CHAMTVM_HOME", str(tmp_path))
    assert default_journal("digits", gray) == tmp_path / "runs" / "accuracy-digits-tinygray.jsonl"
    assert default_journal("digits", gray, tmp_path / "r") == tmp_path / "r" / "accuracy-digits-tinygray.jsonl"
    assert default_pool_size(gray) == 32  # the whole space
    assert default_pool_size(SearchSpace.load("fashion")) == 200


def test_build_trains_through_the_journal_and_resumes(gray, tmp_path):
    calls = []

    def fn(arch):
        calls.append(arch.to_json())
        return _acc(arch)

    trainer = FunctionTrainer(fn, task="synthetic", epochs=1)
    journal = Journal(tmp_path / "acc.jsonl")
    built = build_predictor(gray, trainer, journal, samples=3, pool_size=1000, seed=0, progress=False)
    assert len(built.pool) == 32 and len(built.chosen) == 3 and len(set(built.chosen.tolist())) == 3
    assert built.pool[0].to_dict() == gray.from_indices([0] * gray.encoding_length).to_dict()  # index order
    assert built.trained_now == 3 and built.resumed == 0 and len(calls) == 3 and built.errors == {}
    want = sorted(_acc(built.pool[i]) for i in built.chosen)
    assert sorted(built.accuracies.tolist()) == pytest.approx(want)
    assert built.cv["n"] == 3 and built.cv["n_folds"] == 3  # leave-one-out up to 20 samples
    assert built.predictor_path == tmp_path / "acc.predictor.json" and built.predictor_path.exists()
    s = built.summary()
    assert s["samples"] == 3 and s["failed"] == 0 and s["measured_accuracy"]["max"] == pytest.approx(max(want))
    again = build_predictor(gray, trainer, journal, samples=3, pool_size=1000, seed=0, progress=False)
    assert again.trained_now == 0 and again.resumed == 3 and len(calls) == 3  # nothing trained twice
    assert again.chosen.tolist() == built.chosen.tolist()
    assert len(journal.records()) == 3


def test_build_errors(gray, tmp_path):
    journal = Journal(tmp_path / "acc.jsonl")
    ok = FunctionTrainer(_acc, task="synthetic")
    with pytest.raises(ValueError, match="needs at least 3 trained architectures"):
        build_predictor(gray, ok, journal, samples=2, progress=False)
    with pytest.raises(ValueError, match="40 samples exceed the pool of 32 architectures"):
        build_predictor(gray, ok, journal, samples=40, progress=False)

    def broken(arch):
        raise RuntimeError("GPU on fire")

    with pytest.raises(RuntimeError, match="GPU on fire"):
        build_predictor(gray, FunctionTrainer(broken, task="broken"), journal, samples=3, progress=False)


def _record(arch, acc, task="t", epochs=1, protocol=None, space="tinygray"):
    return {"architecture": arch.to_dict(), "accuracy": acc, "seed": 0, "epochs": epochs, "seconds": 0.0,
            "task": task, "space": space, "protocol": protocol}


def test_journal_trainings_one_protocol_averaged(gray, tmp_path, capsys):
    sizes = [len(ch) for _, ch in gray.dimensions()]
    a = gray.from_indices([0] * len(sizes))
    b = gray.from_indices([1 if name == "stages[1].channels" else 0 for name, _ in gray.dimensions()])
    c = gray.from_indices([n - 1 for n in sizes])
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    for rec in (_record(a, 0.80), _record(a, 0.90), _record(b, 0.70), _record(c, 0.60, epochs=3),
                _record(c, 0.65, task="other"), _record(a, 0.1, space="elsewhere")):
        j.append(rec)
    bad = _record(c, 0.99)
    bad["architecture"] = {**bad["architecture"], "stem_channels": 999}
    j.append(bad)
    idx, y, protocol = journal_trainings(gray, path, {"task": "t", "epochs": 1, "protocol": None})
    got = {tuple(i): v for i, v in zip(idx.tolist(), y.tolist())}
    assert got == {tuple(gray.indices(a)): pytest.approx(0.85), tuple(gray.indices(b)): pytest.approx(0.70)}
    assert "1 record(s) not used" in capsys.readouterr().err
    # without a protocol: the newest record's (task t, epochs 1 of the damaged last line)
    assert journal_trainings(gray, path)[2] == {"task": "t", "epochs": 1, "protocol": None}
    with pytest.raises(ValueError, match="holds 2 trained architectures of space 'tinygray'"):
        fit_from_journal(gray, path)
    with pytest.raises(ValueError, match="no accuracy journal at"):
        fit_from_journal(gray, tmp_path / "none.jsonl")


def test_fit_from_journal_predicts_the_trained_accuracies(gray, tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    rng = np.random.default_rng(0)
    archs = {a.to_json(): a for a in (gray.sample(rng) for _ in range(12))}.values()
    for a in archs:
        j.append(_record(a, _acc(a)))
    gp, n, protocol = fit_from_journal(gray, j.path)
    assert n == len(archs) and protocol["task"] == "t"
    from chamtvm.accuracy.encoding import accuracy_features

    idx = np.array([gray.indices(a) for a in archs])
    pred = gp.predict(accuracy_features(gray, idx))
    assert np.abs(pred - np.array([_acc(a) for a in archs])).max() < 0.01
    assert trainer_protocol(FunctionTrainer(_acc, task="x", epochs=2)) == {"task": "x", "epochs": 2,
                                                                           "protocol": None}


def test_a_reduced_space_reuses_the_full_spaces_trainings_as_known_points(tmp_path):
    """A friendliness profile trains networks of ``macro``; the loop in a space that restricts
    ``macro`` takes those lying in it as known points (fitted, never trained again, not
    counted), and leaves out another space's records and another protocol's."""
    from chamtvm.accuracy.fit import known_trainings
    from chamtvm.accuracy.tasks import make_trainer
    from chamtvm.accuracy.trainer import train_archs
    from chamtvm.space.restrict import restrict

    macro = SearchSpace.load("macro")
    trainer = make_trainer("nas-bench-macro")
    profile_journal = Journal(tmp_path / "accuracy-nas-bench-macro-macro.jsonl")
    rows = np.random.default_rng(0).integers(0, 3, size=(12, macro.encoding_length))
    rows[:, 0] = 0  # macro's one resolution
    rows[:8, 5:] %= 2  # the first 8 keep layers 4-7 inside the restriction below
    archs = [macro.from_indices(r) for r in rows]
    train_archs(macro, archs, trainer, profile_journal, progress=False)
    foreign = {**profile_journal.records()[0], "space": "fashion"}  # another space: never reused
    profile_journal.append(foreign)
    profile_journal.append({**profile_journal.records()[1], "epochs": 3})  # another protocol
    small = restrict(macro, {"layers[0]": ["ir_k3_e3", "ir_k5_e6"], **{f"layers[{i}]": ["skip", "ir_k3_e3"]
                                                                      for i in range(4, 8)}}, "macro-x86-friendly")
    inside = {a.to_json() for a in archs if a.layers[0] != "skip" and "ir_k5_e6" not in a.layers[4:]}
    assert 0 < len(inside) < 12

    idx, y, note = known_trainings(small, profile_journal.path, trainer_protocol(trainer))
    assert {small.from_indices(r).to_json() for r in idx} == inside and len(y) == len(inside)
    assert note["spaces_used"] == ["macro"] and note["other_spaces"] == ["fashion"]
    assert note["other_protocol_records"] == 1 and note["outside_space_records"] == 12 - len(inside)

    lat = lambda idx: 1.0 + np.asarray(idx, float).sum(axis=1)  # noqa: E731 - a latency that grows with the choices
    own = Journal(tmp_path / "accuracy-nas-bench-macro-small.jsonl")
    built = build_predictor(small, trainer, own, samples=5, pool_size=10_000, strategy="budgeted", seed=0,
                            progress=False, latency_ms=lat, proxies=False, known_journal=profile_journal.path)
    k = len(inside)
    assert built.budgeted.n_known == k and built.budgeted.n_lookups == 5 and len(built.chosen) == k + 5
    assert {built.pool[i].to_json() for i in built.chosen[:k]} == inside
    trained = [Arch.from_dict(r["architecture"]).to_json() for r in own.records()]
    assert len(trained) == 5 and not set(trained) & inside  # the known networks were not trained again
    s = built.summary()
    assert s["known_trainings"]["used_networks"] == k and s["lookups_by_phase"]["known"] == k
    with pytest.raises(ValueError, match="no accuracy journal"):
        known_trainings(small, tmp_path / "missing.jsonl", trainer_protocol(trainer))


def test_journal_trainings_of_a_reduced_space_take_its_full_spaces_records(tmp_path, capsys):
    """What ``search --space <reduced> --journal <the full space's journal>`` fits on: the full
    space's trainings lying in the reduced space; another space's records are left out, said."""
    from chamtvm.space.restrict import restrict

    macro = SearchSpace.load("macro")
    small = restrict(macro, {"layers[0]": ["ir_k3_e3", "ir_k5_e6"]}, "macro-small")
    inside = macro.from_indices([0, 1] + [0] * 7)
    outside = macro.from_indices([0, 0] + [1] * 7)
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    for rec in (_record(inside, 0.9, space="macro"), _record(outside, 0.8, space="macro"),
                _record(inside, 0.1, space="nosuchspace")):
        j.append(rec)
    idx, y, _ = journal_trainings(small, path, {"task": "t", "epochs": 1, "protocol": None})
    assert [small.from_indices(r).to_json() for r in idx] == [inside.to_json()] and y.tolist() == [0.9]
    err = capsys.readouterr().err
    assert "1 record(s) of other spaces (nosuchspace) not used" in err and "1 record(s) not used" in err
