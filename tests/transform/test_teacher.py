"""``transform.teacher``: a saved teacher loads back with the same outputs; damaged, foreign and
unsupported files are refused with the reason."""

import json

import pytest

torch = pytest.importorskip("torch")

from chamtvm.transform.graph import UnsupportedModelError  # noqa: E402
from chamtvm.transform.teacher import (DEFAULT_TEACHERS, TeacherError, default_architecture, load_teacher,  # noqa: E402
                                       resolve_model, save_teacher)


@pytest.fixture()
def saved(tmp_path):
    from chamtvm.space.model import build_model
    from chamtvm.space.schema import Arch, SearchSpace

    d = DEFAULT_TEACHERS["digits"]
    module = build_model(SearchSpace.load(d["space"]), Arch.from_dict(d["architecture"]), seed=3)
    path = save_teacher(tmp_path / "t", module, "digits", d["space"], d["architecture"], d["protocol"], 0.9)
    return module, path


def test_saved_teacher_loads_with_the_same_outputs(saved):
    module, path = saved
    t = load_teacher(path, "digits")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(t.module(x), module(x))
    assert t.val_accuracy == 0.9 and t.source["family"] == "space" and load_teacher(path.parent).path == path
    meta = json.loads(path.read_text())
    assert meta["format"] == "chamtvm-teacher/1" and len(meta["weights_sha256"]) == 64


def test_damaged_or_foreign_teachers_are_refused(saved):
    _, path = saved
    with pytest.raises(TeacherError, match="trained on task 'digits', not 'fashion-mnist'"):
        load_teacher(path, "fashion-mnist")
    weights = path.parent / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(TeacherError, match="does not match the SHA-256"):
        load_teacher(path)
    weights.unlink()
    with pytest.raises(TeacherError, match="weights .* are missing"):
        load_teacher(path)
    path.write_text("{not json")
    with pytest.raises(TeacherError, match="not valid JSON"):
        load_teacher(path)


def test_what_a_model_name_may_be(tmp_path):
    from chamtvm.transform.data import load_task

    data = load_task("digits")
    with pytest.raises(TeacherError, match="use teacher:digits"):
        resolve_model("teacher:fashion-mnist", "digits", data)
    with pytest.raises(TeacherError, match="does not exist"):
        resolve_model(str(tmp_path / "none.onnx"), "digits", data)
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(UnsupportedModelError, match="unsupported model file '.pt'"):
        resolve_model(str(tmp_path / "m.pt"), "digits", data)


def test_default_architecture_is_the_default_teachers_network_untrained(saved):
    module, shape = default_architecture("digits")
    assert tuple(shape) == (1, 1, 28, 28)
    trained, _ = saved  # the same architecture, other weights
    assert [tuple(p.shape) for p in module.parameters()] == [tuple(p.shape) for p in trained.parameters()]
    assert tuple(module.eval()(torch.zeros(tuple(shape))).shape) == (1, 10)
