"""Teachers: the trained networks a transformation starts from, trained here (weights are never
downloaded) or given by the user.

``MODEL`` of ``chamtvm transform`` (:func:`resolve_model`):

* ``teacher:<task>``: the task's default teacher (``DEFAULT_TEACHERS``), trained on the
  task's training images once and reused afterwards;
* a teacher file ``teacher.json`` written by :func:`save_teacher` (a network of a space:
  ``{"format": "chamtvm-teacher/1", "task", "space", "architecture", "weights", ...}``,
  its weights beside it);
* an ``.onnx`` file holding a trained network (MobileNetV2/EfficientNet style, see
  ``graph``), or, through the Python API, a torch module.

Saved teachers live under ``<workdir>/runs/transform/teachers/<task>-<space>-<digest>/``:
``teacher.json`` and ``weights.pt`` (a torch state dict: torch's native format, written with
``torch.save`` and read with ``weights_only=True``, never pickled objects), with the SHA-256
of the weights in the JSON; a training that is interrupted resumes from its last finished
epoch (``checkpoint.pt``). Choices about a teacher are made on validation images; its test
accuracy is reported once, by the transformation's report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .data import NUM_CLASSES, TaskData
from .graph import UnsupportedModelError
from .train import Protocol

TEACHER_FORMAT = "chamtvm-teacher/1"

# The default teacher of each task: a network of the bundled ``fashion`` space (28 px, one
# input channel) and its training protocol. ``digits`` is small enough for the slow tests.
DEFAULT_TEACHERS: dict[str, dict] = {
    "digits": {
        "space": "fashion",
        "architecture": {"resolution": 28, "stem_channels": 8, "head_channels": 128, "stages": [
            {"channels": 8, "blocks": 1, "expansion": 1, "kernel": 3},
            {"channels": 12, "blocks": 1, "expansion": 6, "kernel": 5},
            {"channels": 16, "blocks": 1, "expansion": 6, "kernel": 5},
            {"channels": 24, "blocks": 1, "expansion": 6, "kernel": 5},
            {"channels": 32, "blocks": 1, "expansion": 3, "kernel": 3},
            {"channels": 48, "blocks": 1, "expansion": 3, "kernel": 3},
            {"channels": 64, "blocks": 1, "expansion": 3, "kernel": 3}]},
        "protocol": {"epochs": 6, "batch_size": 32, "lr": 3e-3},
    },
    "fashion-mnist": {
        "space": "fashion",
        "architecture": {"resolution": 28, "stem_channels": 16, "head_channels": 256, "stages": [
            {"channels": 16, "blocks": 1, "expansion": 1, "kernel": 3},
            {"channels": 24, "blocks": 2, "expansion": 6, "kernel": 5},
            {"channels": 32, "blocks": 2, "expansion": 6, "kernel": 5},
            {"channels": 48, "blocks": 3, "expansion": 6, "kernel": 5},
            {"channels": 64, "blocks": 2, "expansion": 6, "kernel": 5},
            {"channels": 96, "blocks": 2, "expansion": 6, "kernel": 5},
            {"channels": 128, "blocks": 1, "expansion": 6, "kernel": 5}]},
        "protocol": {"epochs": 8, "batch_size": 64, "lr": 3e-3},
    },
}


class TeacherError(ValueError):
    """A teacher file that is missing, damaged or does not fit the task (bad input, exit 2)."""


@dataclass
class Teacher:
    """A trained network and where it came from.

    ``module``: the torch module (eval mode) mapping ``(N, 1, 28, 28)`` images to
    ``(N, 10)`` logits; ``source``: how to rebuild it (``family`` ``space`` with ``space`` and
    ``architecture``, or ``onnx`` with ``path``, or ``torch``); ``path``: its
    ``teacher.json`` (None for a module given in Python); ``val_accuracy``: on the task's
    validation images; ``protocol``: how it was trained (None when not trained here)."""

    module: Any
    task: str
    source: dict
    path: Path | None = None
    val_accuracy: float | None = None
    protocol: dict | None = None
    trained_now: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.path is not None:
            return str(self.path)
        return self.source.get("path") or self.source.get("family", "teacher")

    def describe(self) -> dict:
        return {"name": self.name, "task": self.task, "source": self.source, "val_accuracy": self.val_accuracy,
                "protocol": self.protocol, "trained_now": self.trained_now}


def default_architecture(task: str):
    """The task's default teacher (``DEFAULT_TEACHERS``, what ``teacher:<task>`` trains) as an
    untrained torch module and its input shape (NCHW, batch 1): what depends on the
    architecture only (a width-latency model) is measured on it before any training."""
    from ..space.model import build_model, input_shape
    from ..space.schema import Arch, SearchSpace

    default = DEFAULT_TEACHERS[task]
    space, arch = SearchSpace.load(default["space"]), Arch.from_dict(default["architecture"])
    return build_model(space, arch), input_shape(space, arch)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def teachers_dir() -> Path:
    from ..core.workdir import runs_dir

    return runs_dir() / "transform" / "teachers"


def teacher_folder(task: str, space_name: str, arch_dict: dict, protocol: Protocol, data: TaskData) -> Path:
    """Where the teacher of these settings is saved (a digest of architecture, protocol and
    the task's split sizes)."""
    key = json.dumps({"arch": arch_dict, "protocol": protocol.to_dict(), "data": data.protocol}, sort_keys=True)
    return teachers_dir() / f"{task}-{space_name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def save_teacher(folder: Path, module, task: str, space_ref: str, arch_dict: dict, protocol: dict | None,
                 val_accuracy: float | None, extra: dict | None = None) -> Path:
    """Write ``weights.pt`` (state dict) then ``teacher.json`` (atomically, last) into
    ``folder``; returns the JSON's path."""
    import torch

    from ..core.atomic import atomic_path, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.pt"
    with atomic_path(weights, suffix=".pt") as tmp:
        torch.save(module.state_dict(), str(tmp))
    meta = {"format": TEACHER_FORMAT, "task": task, "space": space_ref, "architecture": arch_dict,
            "weights": weights.name, "weights_sha256": _sha256(weights), "protocol": protocol,
            "val_accuracy": val_accuracy, **(extra or {})}
    path = folder / "teacher.json"
    atomic_write_text(path, json.dumps(meta, indent=1))
    return path


def load_teacher(path: str | Path, task: str | None = None) -> Teacher:
    """The teacher saved at ``path`` (its ``teacher.json``, or the folder holding it);
    :class:`TeacherError` when it is missing, damaged, or trained for another task."""
    import torch

    from ..core.jsonfile import read_json
    from ..space.model import build_model
    from ..space.schema import Arch, SearchSpace, SpaceError

    path = Path(path)
    if path.is_dir():
        path = path / "teacher.json"
    meta = read_json(path, "teacher file", TeacherError)
    if not isinstance(meta, dict) or meta.get("format") != TEACHER_FORMAT:
        raise TeacherError(f"{path} is not a chamtvm teacher file (no \"format\": \"{TEACHER_FORMAT}\")")
    if task is not None and meta.get("task") != task:
        raise TeacherError(f"{path} was trained on task {meta.get('task')!r}, not {task!r}")
    weights = path.parent / str(meta.get("weights", "weights.pt"))
    if not weights.is_file():
        raise TeacherError(f"{path}: its weights {weights} are missing")
    if meta.get("weights_sha256") and _sha256(weights) != meta["weights_sha256"]:
        raise TeacherError(f"{weights} does not match the SHA-256 recorded in {path} (damaged or replaced)")
    try:
        space_ref = meta["space"]
        beside = path.parent / str(space_ref)
        space = SearchSpace.load(beside if str(space_ref).endswith(".json") and beside.exists() else space_ref)
        arch = Arch.from_dict(meta["architecture"])
        space.validate(arch)
    except (KeyError, SpaceError) as e:
        raise TeacherError(f"{path}: {e}") from None
    module = build_model(space, arch, randomize_bn=False)
    try:
        module.load_state_dict(torch.load(str(weights), weights_only=True))
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/UnpicklingError on a bad file
        raise TeacherError(f"{weights} cannot be loaded into the architecture of {path}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    return Teacher(module.eval(), meta.get("task"), {"family": "space", "space": space.name,
                                                     "architecture": arch.to_dict()},
                   path, meta.get("val_accuracy"), meta.get("protocol"))


def train_teacher(task: str, data: TaskData, space: str | Any = None, arch: dict | None = None,
                  protocol: Protocol | None = None, log: Callable[[str], None] | None = None,
                  folder: Path | None = None, progress: bool = False) -> Teacher:
    """The teacher of ``task``: ``arch`` of ``space`` (default ``DEFAULT_TEACHERS[task]``)
    trained with ``protocol`` on ``data``'s training images, saved (``teacher_folder``), or
    the saved one when it exists."""
    from ..space.model import build_model
    from ..space.schema import Arch, SearchSpace
    from .train import accuracy, fit

    default = DEFAULT_TEACHERS[task]
    space_obj = SearchSpace.load(space or default["space"])
    arch_obj = Arch.from_dict(arch or default["architecture"])
    space_obj.validate(arch_obj)
    protocol = protocol or Protocol(**default["protocol"])
    folder = folder or teacher_folder(task, space_obj.name, arch_obj.to_dict(), protocol, data)
    if (folder / "teacher.json").exists():
        t = load_teacher(folder / "teacher.json", task)
        if log:
            log(f"teacher: reusing {folder / 'teacher.json'} (validation accuracy {t.val_accuracy:.4f})")
        return t
    if log:
        log(f"teacher: training {space_obj.name} network on {task} ({data.protocol} images, {protocol.name}) "
            f"into {folder}")
    import time

    t0 = time.time()
    module = build_model(space_obj, arch_obj, seed=protocol.seed, randomize_bn=False)
    folder.mkdir(parents=True, exist_ok=True)
    fit(module, data.train_x, data.train_y, protocol, checkpoint=folder / "checkpoint.pt", log=log,
        desc=f"teacher ({task})", progress=progress)
    val = accuracy(module, data.val_x, data.val_y)
    space_ref = space_obj.name if isinstance(space or default["space"], str) and not str(
        space or default["space"]).endswith(".json") else str(space)
    path = save_teacher(folder, module, task, space_ref, arch_obj.to_dict(), protocol.to_dict(), val,
                        {"data": data.protocol, "training_seconds": round(time.time() - t0, 1)})
    return Teacher(module, task, {"family": "space", "space": space_obj.name, "architecture": arch_obj.to_dict()},
                   path, val, protocol.to_dict(), trained_now=True)


def resolve_model(model: Any, task: str, data: TaskData, log: Callable[[str], None] | None = None,
                  progress: bool = False) -> Teacher:
    """The :class:`Teacher` that ``model`` names (see the module docstring). A torch module
    is taken as it is (trained by the caller). :class:`TeacherError` or
    ``UnsupportedModelError`` for anything else."""
    from .train import accuracy

    if isinstance(model, str) and model.startswith("teacher:"):
        name = model.split(":", 1)[1]
        if name != task:
            raise TeacherError(f"{model}: a default teacher of task {name!r} cannot be transformed on task {task!r} "
                               f"(use teacher:{task})")
        if name not in DEFAULT_TEACHERS:
            raise TeacherError(f"no default teacher for task {name!r}; tasks: {', '.join(DEFAULT_TEACHERS)}")
        return train_teacher(task, data, log=log, progress=progress)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        module = model.eval()
        return Teacher(module, task, {"family": "torch", "class": type(model).__name__}, None,
                       accuracy(module, data.val_x, data.val_y))
    path = Path(str(model))
    if not path.exists():
        raise TeacherError(f"model {path} does not exist (a teacher.json, an .onnx file, or teacher:<task>)")
    if path.is_dir() and (path / "teacher.json").exists():
        path = path / "teacher.json"
    if path.suffix == ".json":
        return load_teacher(path, task)
    if path.suffix == ".onnx":
        from .graph import layered

        net = layered(path, data.input_shape, NUM_CLASSES)
        return Teacher(net, task, {"family": "onnx", "path": str(path)}, None, accuracy(net, data.val_x, data.val_y))
    raise UnsupportedModelError(f"{path}: unsupported model file {path.suffix or '(no suffix)'!r}; give a teacher.json "
                                f"written by chamtvm, an .onnx file, or teacher:<task>")
