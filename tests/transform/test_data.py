"""``transform.data``: fixed, disjoint train / validation / test splits; bad tasks are ``TaskError``."""

import numpy as np
import pytest

from chamtvm.transform.data import TaskError, load_task


def _rows(x):
    return {r.tobytes() for r in x.reshape(len(x), -1)}


def test_digits_splits_are_fixed_and_disjoint():
    d = load_task("digits")
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (1200, 298, 299)
    assert d.protocol == "1200-v298-t299" and d.input_shape == (1, 1, 28, 28)
    assert not (_rows(d.train_x) & _rows(d.test_x)) or len(_rows(d.train_x) & _rows(d.test_x)) < 5  # digits repeat
    again = load_task("digits")
    assert np.array_equal(again.val_x, d.val_x) and np.array_equal(again.test_y, d.test_y)


def test_fashion_validation_comes_from_other_training_images():
    pytest.importorskip("gzip")
    try:
        d = load_task("fashion-mnist", 2000, 500)
    except TaskError as e:  # the Debian package is part of the install; say so if it is not there
        pytest.fail(f"fashion-mnist is not installed: {e}")
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (2000, 500, 10000)
    assert not (_rows(d.train_x) & _rows(d.val_x))


def test_bad_tasks(tmp_path, monkeypatch):
    with pytest.raises(TaskError, match="unknown task 'cifar'"):
        load_task("cifar")
    with pytest.raises(TaskError, match="fixed splits"):
        load_task("digits", 100)
    with pytest.raises(TaskError, match="60,000"):
        load_task("fashion-mnist", 59000, 5000)
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path))
    from chamtvm.accuracy import datasets

    monkeypatch.setattr(datasets, "_CACHE", {})
    with pytest.raises(TaskError, match="dataset-fashion-mnist"):
        load_task("fashion-mnist", 1000, 100)
