"""``accuracy.datasets``: the offline proxy-task data: the idx reader, the fixed subsets
(same arguments, same images), the validation split disjoint from training, and the errors
for a missing dataset, a damaged file and unknown names. (Moved here from test_trainer.py:
the missing-dataset and validation-split tests.)"""

import gzip
import struct

import numpy as np
import pytest

from chamtvm.accuracy.datasets import DatasetMissingError, load_split


def _idx(path, arr: np.ndarray, magic_type: int = 0x08):
    header = bytes([0, 0, magic_type, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_idx_reader_reads_shape_and_values_and_rejects_damage(tmp_path):
    from chamtvm.accuracy.datasets import _read_idx

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(_read_idx(tmp_path / "a.gz"), arr)
    _idx(tmp_path / "float.gz", arr, magic_type=0x0D)
    with pytest.raises(ValueError, match="not an unsigned-byte idx file"):
        _read_idx(tmp_path / "float.gz")
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(7))
    with pytest.raises(ValueError, match="expected 10 values, found 7"):
        _read_idx(tmp_path / "short.gz")


def test_fashion_files_from_the_environment_folder(tmp_path, monkeypatch):
    from chamtvm.accuracy.datasets import FASHION_FILES, load_fashion_mnist

    rng = np.random.default_rng(0)
    for key, name in FASHION_FILES.items():
        n = 6 if key.startswith("train") else 4
        _idx(tmp_path / name, rng.integers(0, 256, (n, 28, 28)) if key.endswith("images") else np.arange(n) % 10)
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path))
    raw = load_fashion_mnist()
    assert raw["train_images"].shape == (6, 28, 28) and raw["test_labels"].tolist() == [0, 1, 2, 3]


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(DatasetMissingError, match="apt-get install dataset-fashion-mnist"):
        load_split("fashion-mnist", 10, 10)


def test_digits_split_sizes_dtypes_and_determinism():
    split = load_split("digits")
    assert split.train_x.shape == (1200, 1, 28, 28) and split.eval_x.shape == (597, 1, 28, 28)
    assert split.train_x.dtype == np.float32 and split.train_y.dtype == np.int64
    both = np.concatenate([split.train_x, split.eval_x])
    assert abs(float(both.mean())) < 1e-3 and abs(float(both.std()) - 1) < 1e-3  # standardised
    assert set(np.unique(split.train_y)) == set(range(10))
    small = load_split("digits", 100, 50)
    assert small.train_x.shape[0] == 100 and small.eval_x.shape[0] == 50
    np.testing.assert_array_equal(small.train_y, split.train_y[:100])  # the same fixed permutation


def test_unknown_task_and_split_are_refused():
    with pytest.raises(ValueError, match="unknown proxy task 'cifar'"):
        load_split("cifar")
    with pytest.raises(ValueError, match="eval_split"):
        load_split("digits", 10, 10, eval_split="train")


def test_validation_split_comes_from_training_images_disjoint_from_the_subset():
    """Protocols are chosen on a validation split, never on the test set."""
    val = load_split("fashion-mnist", 500, 300, eval_split="val")
    test = load_split("fashion-mnist", 500, 300)
    assert val.eval_x.shape == test.eval_x.shape == (300, 1, 28, 28)
    assert not np.array_equal(val.eval_x, test.eval_x)
    train = {x.tobytes() for x in val.train_x}
    assert not any(x.tobytes() in train for x in val.eval_x)
    with pytest.raises(ValueError, match="eval_split"):
        load_split("fashion-mnist", 10, 10, eval_split="train")
