"""The images a transformation learns, chooses and reports on: fixed train / validation / test
splits of the offline tasks (nothing is downloaded).

* ``digits`` (tests): scikit-learn's 1,797 digits at 28x28 (``accuracy.datasets``): 1,200
  training images, the remaining 597 split into 298 validation and 299 test images.
* ``fashion-mnist``: ``train_size`` images (default 10,000) drawn from the 60k training
  images, ``val_size`` (default 5,000) validation images from the *other* training images
  (the end of the same permutation: disjoint), and the 10,000 test images.

Every choice of a transformation (distilled candidates, the integer program's calibration,
widths of the baseline) is made on the validation images; the test images are read once, at
the end, for the report. Arrays: images ``(N, 1, 28, 28)`` float32 standardised, labels
``(N,)`` int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASK_NAMES = ("digits", "fashion-mnist")
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


class TaskError(ValueError):
    """A task that is unknown or whose data is not installed (bad input, exit 2)."""


@dataclass(frozen=True)
class TaskData:
    """Train / validation / test images and labels of one task (see the module docstring)."""

    task: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def protocol(self) -> str:
        """The split sizes, e.g. ``10000-v5000-t10000`` (part of every journal key)."""
        return f"{len(self.train_y)}-v{len(self.val_y)}-t{len(self.test_y)}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW shape of one image at batch 1."""
        return (1, *self.train_x.shape[1:])


def load_task(task: str, train_size: int | None = None, val_size: int | None = None) -> TaskData:
    """The fixed splits of ``task``; the same arguments always give the same images.
    Raises :class:`TaskError` for an unknown task or missing data (the message says how to
    install it)."""
    from ..accuracy.datasets import DatasetMissingError, load_split

    if task not in TASK_NAMES:
        raise TaskError(f"unknown task {task!r}; valid tasks: {', '.join(TASK_NAMES)}")
    try:
        if task == "digits":
            if train_size is not None or val_size is not None:
                raise TaskError("task digits has fixed splits (1,200 / 298 / 299 images); drop the sizes")
            s = load_split("digits")
            half = len(s.eval_y) // 2
            return TaskData(task, s.train_x, s.train_y, s.eval_x[:half], s.eval_y[:half],
                            s.eval_x[half:], s.eval_y[half:])
        n_tr = 10000 if train_size is None else int(train_size)
        n_val = 5000 if val_size is None else int(val_size)
        if n_tr < 1 or n_val < 1 or n_tr + n_val > 60000:
            raise TaskError(f"fashion-mnist: train ({n_tr}) and validation ({n_val}) images must be positive "
                            f"and come from 60,000 training images")
        val = load_split(task, n_tr, n_val, eval_split="val")
        test = load_split(task, n_tr, None, eval_split="test")
    except DatasetMissingError as e:
        raise TaskError(str(e)) from None
    return TaskData(task, val.train_x, val.train_y, val.eval_x, val.eval_y, test.eval_x, test.eval_y)
