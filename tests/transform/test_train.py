"""``transform.train``: a training interrupted after an epoch resumes from its checkpoint and ends
with exactly the weights of an uninterrupted run; distillation from a teacher runs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chamtvm.transform.train import Protocol, accuracy, fit  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 14 * 14, 10))


class _Stop(torch.nn.Module):
    """Raises after ``limit`` forward calls (an interrupt in the middle of epoch 2)."""

    def __init__(self, inner, limit):
        super().__init__()
        self.inner, self.limit, self.calls = inner, limit, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.limit:
            raise KeyboardInterrupt()
        return self.inner(x)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    proto = Protocol(epochs=3, batch_size=32, lr=1e-2, seed=5)
    whole = fit(_model(), x, y, proto)
    ckpt = tmp_path / "ckpt.pt"
    first = _model()
    with pytest.raises(KeyboardInterrupt):
        fit(_Stop(first, limit=4), x, y, proto, checkpoint=ckpt)  # 3 steps per epoch: stops in epoch 2
    assert ckpt.exists()
    resumed = fit(_Stop(_model(), limit=10**9), x, y, proto, checkpoint=ckpt).inner
    assert not ckpt.exists()
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    student = fit(_model(), x, y, Protocol(epochs=1, batch_size=32, seed=1), teacher=whole)
    assert 0.0 <= accuracy(student, x, y) <= 1.0
