"""Journal durability and the journaled training runner (chamtvm.accuracy.journal/trainer)."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from chamtvm.accuracy import FunctionTrainer, Journal, JournalError, train_archs
from chamtvm.space.schema import SearchSpace


def rec(i):
    return {"architecture": {"id": i}, "accuracy": 0.5 + i / 100, "seed": 0, "epochs": 1,
            "seconds": 1.0, "task": "t"}


def test_append_and_read_back(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    assert j.records() == []
    for i in range(3):
        j.append(rec(i))
    assert [r["accuracy"] for r in Journal(tmp_path / "j.jsonl").records()] == [0.5, 0.51, 0.52]


def test_torn_last_line_is_ignored_then_cut_on_next_append(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.append(rec(0))
    j.append(rec(1))
    full = path.read_bytes()
    with open(path, "ab") as f:  # what kill -9 in the middle of a write leaves
        f.write(json.dumps(rec(2)).encode()[:25])
    assert len(j.records()) == 2
    j.append(rec(3))
    assert [r["architecture"]["id"] for r in j.records()] == [0, 1, 3]
    assert path.read_bytes().startswith(full)


def test_corrupt_complete_line_names_file_and_line(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.append(rec(0))
    with open(path, "ab") as f:
        f.write(b'{"accuracy": oops}\n')
    j.append(rec(1))
    with pytest.raises(JournalError, match=r"j\.jsonl:2: corrupt"):
        j.records()


def test_missing_field_is_an_error(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"accuracy": 0.3}) + "\n")
    with pytest.raises(JournalError, match=r"j\.jsonl:1: .*missing fields"):
        Journal(path).records()
    with pytest.raises(ValueError, match="missing fields"):
        Journal(path).append({"accuracy": 0.1})


def _acc(arch):
    return 0.5 + arch.stem_channels / 1000 + arch.stages[1].channels / 1000


def test_runner_resumes_and_journals_each_result_at_once(tmp_path):
    space = SearchSpace.load("fashion")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(4)]
    journal = Journal(tmp_path / "j.jsonl")
    seen = []

    def fn(arch):
        seen.append(len(journal.records()))  # every earlier training is on disk already
        if arch == archs[2]:
            raise RuntimeError("boom")
        return _acc(arch)

    res = train_archs(space, archs, FunctionTrainer(fn), journal, seed=3, progress=False)
    assert seen == [0, 1, 2, 2]
    assert res[2].accuracy is None and "boom" in res[2].error
    assert [r.accuracy for r in res if r is not res[2]] == [_acc(a) for a in archs if a != archs[2]]
    recs = journal.records()
    assert len(recs) == 3
    assert set(recs[0]) >= {"architecture", "accuracy", "seed", "epochs", "seconds", "task", "space"}
    # resume: only the failed one is retried, the rest come from the journal
    calls = []
    res2 = train_archs(space, archs, FunctionTrainer(lambda a: calls.append(a) or _acc(a)),
                       journal, seed=3, progress=False)
    assert calls == [archs[2]]
    assert [r.cached for r in res2] == [True, True, False, True]
    # another seed is another training
    train_archs(space, archs[:1], FunctionTrainer(_acc), journal, seed=4, progress=False)
    assert len(journal.records()) == 5
    # another protocol (data sizes, ...) is another training, and the search reads one protocol
    other = FunctionTrainer(_acc)
    other.protocol = "10000x3-e10000-b64"
    res3 = train_archs(space, archs[:2], other, journal, seed=3, progress=False)
    assert not any(r.cached for r in res3) and journal.records()[-1]["protocol"] == other.protocol
    from chamtvm.accuracy.fit import journal_trainings

    idx, y, protocol = journal_trainings(space, journal.path)
    assert protocol["protocol"] == other.protocol and len(y) == 2
    idx, y, protocol = journal_trainings(space, journal.path, {"task": "function", "epochs": None, "protocol": None})
    assert len(y) == 4  # seeds 3 and 4 of arch 0 averaged


def test_runner_with_a_thread_pool_executor(tmp_path):
    space = SearchSpace.load("fashion")
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(6)]
    journal = Journal(tmp_path / "j.jsonl")
    threads = set()

    def fn(arch):
        threads.add(threading.get_ident())
        return _acc(arch)

    with ThreadPoolExecutor(max_workers=3) as ex:
        res = train_archs(space, archs, FunctionTrainer(fn), journal, executor=ex, progress=False)
    assert [r.accuracy for r in res] == [_acc(a) for a in archs]
    assert len(journal.records()) == len({a.to_json() for a in archs})
    assert threading.get_ident() not in threads


def test_finished_last_record_lacking_its_newline_is_kept_and_torn_one_set_aside(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.append(rec(0))
    with open(path, "ab") as f:  # a crash between the record and its newline
        f.write(json.dumps(rec(1)).encode())
    assert [r["architecture"]["id"] for r in j.records()] == [0, 1]  # a resumed run finds it
    j.append(rec(2))
    assert [r["architecture"]["id"] for r in j.records()] == [0, 1, 2]
    torn = json.dumps(rec(3)).encode()[:30]
    with open(path, "ab") as f:
        f.write(torn)
    j.append(rec(4))
    assert [r["architecture"]["id"] for r in j.records()] == [0, 1, 2, 4]
    assert [p.read_bytes() for p in tmp_path.glob("j.jsonl.torn-*")] == [torn]  # kept aside, not dropped


def test_record_with_a_damaged_architecture_is_named_not_dropped_silently(tmp_path, capsys):
    from chamtvm.accuracy.fit import journal_trainings

    space = SearchSpace.load("fashion")
    j = Journal(tmp_path / "j.jsonl")
    good = space.sample(np.random.default_rng(0))
    j.append({**rec(0), "architecture": good.to_dict()})
    j.append({**rec(1), "architecture": {**good.to_dict(), "stages": "damaged"}})
    idx, y, _ = journal_trainings(space, j.path)
    assert len(y) == 1
    err = capsys.readouterr().err
    assert f"{j.path}: 1 record(s) not used: damaged architecture" in err


def test_a_nan_accuracy_is_a_failed_training_and_records_of_other_spaces_are_counted(tmp_path, capsys):
    """A record whose accuracy is NaN or no fraction (written by another tool, or by hand) is
    left out with a note naming its line and counts as a failed training (not retried, not
    fitted on); records of another space are left out with a count."""
    from chamtvm.accuracy.fit import journal_trainings

    space = SearchSpace.load("fashion")
    archs = [space.sample(np.random.default_rng(s)) for s in (0, 1, 2)]
    path = tmp_path / "j.jsonl"
    lines = [{"architecture": a.to_dict(), "accuracy": acc, "seed": 0, "epochs": None, "seconds": 1.0,
              "task": "function", "space": sp} for a, acc, sp in
             ((archs[0], float("nan"), "fashion"), (archs[1], 0.6, "fashion"), (archs[2], 92.5, "fashion"),
              (archs[2], 0.7, "macro"))]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))  # json writes NaN as NaN
    j = Journal(path)

    assert [r["accuracy"] for r in j.records()] == [0.6, 0.7]
    err = capsys.readouterr().err
    assert f"{path}:1: accuracy nan is not a fraction in [0, 1]; that training counts as failed" in err
    assert f"{path}:3: accuracy 92.5 is not a fraction" in err
    assert [r["accuracy"] for r in j.records_of_space("fashion")] == [0.6]
    assert "1 record(s) of other spaces (macro) not used for space 'fashion'" in capsys.readouterr().err

    calls = []
    res = train_archs(space, archs, FunctionTrainer(lambda a: calls.append(a) or 0.5), j, progress=False)
    assert calls == []  # nothing retried: the rejected ones are failed trainings
    assert res[0].accuracy is None and "accuracy nan" in res[0].error and res[0].cached
    assert res[1].accuracy == 0.6 and res[2].accuracy is None
    _, y, _ = journal_trainings(space, path)
    assert list(y) == [0.6]  # the GP never sees NaN
