"""Stage 8, deployment: the chosen network's artefacts (architecture JSON, ONNX,
torch.export program, the TVM library for the target). Depends on ``lower``, ``measure``,
``tuning``, ``space``."""
