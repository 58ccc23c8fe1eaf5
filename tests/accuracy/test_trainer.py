"""Trainers: built-in digits task, user command, missing dataset (chamtvm.accuracy.trainer)."""

import sys

import numpy as np

import pytest

from chamtvm.accuracy import CommandTrainer, Journal, ProxyTaskTrainer, train_archs
from chamtvm.accuracy.datasets import DatasetMissingError, load_split
from chamtvm.space.schema import SearchSpace


def tiny_arch(space):
    return space.from_indices([0] * space.encoding_length)  # smallest choice everywhere


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


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetMissingError, match="apt-get install dataset-fashion-mnist"):
        load_split("fashion-mnist", 10, 10)


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="valid"):
        ProxyTaskTrainer("cifar")


def test_validation_split_comes_from_training_images_disjoint_from_the_subset():
    """Protocols are chosen on a validation split, never on the test set."""
    val = load_split("fashion-mnist", 500, 300, eval_split="val")
    test = load_split("fashion-mnist", 500, 300)
    assert val.eval_x.shape == test.eval_x.shape == (300, 1, 28, 28)
    assert not np.array_equal(val.eval_x, test.eval_x)
    train = {x.tobytes() for x in val.train_x}
    assert not any(x.tobytes() in train for x in val.eval_x)
    assert ProxyTaskTrainer("fashion-mnist", train_size=500, eval_size=300, eval_split="val").protocol.endswith("-val")
    with pytest.raises(ValueError, match="eval_split"):
        load_split("fashion-mnist", 10, 10, eval_split="train")
