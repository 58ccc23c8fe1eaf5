"""``chamtvm transform``: bad inputs are refused with a clear message and exit 2, before any
training or compiling (in-process through ``cli.main.main``; the end-to-end runs through the real
command line, and a budget below the fastest network, are in tests/transform/test_job.py)."""

import pytest


@pytest.fixture()
def transform_cli(tmp_path, monkeypatch, capsys):
    """``run(args) -> (exit code, stderr)`` of ``chamtvm --workdir TMP transform ARGS``."""
    from chamtvm.accuracy import datasets
    from chamtvm.cli.main import main

    monkeypatch.setenv("CHAMTVM_HOME", str(tmp_path))  # main sets it; restored after the test
    monkeypatch.setattr(datasets, "_CACHE", {})

    def run(args):
        try:
            code = main(["--workdir", str(tmp_path), "transform", *map(str, args)])
        except SystemExit as e:  # argparse's own errors
            code = e.code
        return code, capsys.readouterr().err

    return run


@pytest.mark.parametrize("args, message", [
    (["teacher:digits", "--task", "fashion-mnist", "--latency-ms", "1"], "teacher:fashion-mnist"),
    (["nowhere/teacher.json", "--task", "digits", "--latency-ms", "1"], "does not exist"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--target", "nope"], "unknown target"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--option", "colour=blue"], "unknown hant option"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--option", "candidates=ir_k9_e9"], "unknown blocks"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--option", "margin"], "KEY=VALUE"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "-1"], "positive number"),
    (["teacher:digits", "--task", "cifar", "--latency-ms", "1"], "invalid choice"),
    (["teacher:digits", "--task", "digits"], "one of the arguments --latency-ms --speedup is required"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--train-images", "10"], "fixed splits"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--uniform-widths", "0.5,1.5"], "in (0, 1]"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--uniform-widths", "half"], "comma-separated"),
    (["teacher:digits", "--task", "digits", "--latency-ms", "1", "--uniform-epochs", "0"], "positive integer"),
])
def test_bad_arguments_exit_2_with_the_reason(args, message, transform_cli):
    code, err = transform_cli(args)
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_unsupported_files_and_families_exit_2(tmp_path, transform_cli):
    import torch

    from chamtvm.transform.graph import onnx_bytes

    text = tmp_path / "model.txt"
    text.write_text("weights")
    code, err = transform_cli([text, "--task", "digits", "--latency-ms", "1"])
    assert code == 2 and "unsupported model file type '.txt'" in err

    class Plain(torch.nn.Module):  # a plain CNN: no inverted residual to replace
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                                         torch.nn.ReLU())
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(self.c(x).mean((2, 3)))

    onnx = tmp_path / "plain.onnx"
    onnx.write_bytes(onnx_bytes(Plain().eval(), (1, 1, 28, 28)))
    code, err = transform_cli([onnx, "--task", "digits", "--latency-ms", "1"])
    assert code == 2, err
    assert "not a MobileNetV2/EfficientNet-style network" in err and "Traceback" not in err
    bad = tmp_path / "teacher.json"
    bad.write_text('{"format": "something else"}')
    code, err = transform_cli([bad, "--task", "digits", "--latency-ms", "1"])
    assert code == 2 and "not a chamtvm teacher file" in err


def test_missing_task_data_exits_2_saying_how_to_install_it(tmp_path, monkeypatch, transform_cli):
    monkeypatch.setenv("CHAMTVM_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    code, err = transform_cli(["teacher:fashion-mnist", "--task", "fashion-mnist", "--latency-ms", "1"])
    assert code == 2, err
    assert "dataset-fashion-mnist" in err and "Traceback" not in err
