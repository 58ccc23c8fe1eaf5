"""Trainers: built-in digits task, user command (chamtvm.accuracy.trainer); the datasets
themselves are tested in ``test_datasets.py``."""

import sys

import pytest

from chamtvm.accuracy import CommandTrainer, Journal, ProxyTaskTrainer, train_archs
from chamtvm.space.schema import SearchSpace


def tiny_arch(space):
    return space.from_indices([0] * space.encoding_length)  # smallest choice everywhere


@pytest.mark.slow  # trains a digits network (~5 s); the journal itself is fast-tested in tests/accuracy/test_journal.py
def test_digits_training_of_one_tiny_arch_is_journaled(tmp_path):
    space = SearchSpace.load("fashion")
    journal = Journal(tmp_path / "j.jsonl")
    [res] = train_archs(space, [tiny_arch(space)], ProxyTaskTrainer("digits", epochs=1),
                        journal, seed=0, progress=False)
    assert res.error is None and 0.0 < res.accuracy < 1.0
    [rec] = journal.records()
    assert rec["accuracy"] == res.accuracy and rec["task"] == "digits" and rec["epochs"] == 1
    assert rec["architecture"] == tiny_arch(space).to_dict() and rec["seconds"] > 0


def test_command_trainer_reads_last_line(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import json, sys\n"
        "a = json.load(open(sys.argv[1]))\n"
        "print('training', a['space'])\n"
        "print(80 + a['stem_channels'] / 4)\n")
    space = SearchSpace.load("fashion")
    t = CommandTrainer(f"{sys.executable} {script}")
    acc = t.train(space, tiny_arch(space), seed=0)
    assert acc == pytest.approx((80 + tiny_arch(space).stem_channels / 4) / 100)
    bad = tmp_path / "bad.py"
    bad.write_text("print('no number')\n")
    with pytest.raises(RuntimeError, match="not a number"):
        CommandTrainer(f"{sys.executable} {bad}").train(space, tiny_arch(space), 0)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="valid"):
        ProxyTaskTrainer("cifar")


def test_validation_protocol_is_named_apart_from_the_test_protocol():
    trainer = ProxyTaskTrainer("fashion-mnist", train_size=500, eval_size=300, eval_split="val")
    assert trainer.protocol.endswith("-val")
    assert not ProxyTaskTrainer("fashion-mnist", train_size=500, eval_size=300).protocol.endswith("-val")
