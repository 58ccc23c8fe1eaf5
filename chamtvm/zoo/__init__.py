"""Real-architecture families written here (no weights, nothing downloaded) for
out-of-space latency evaluation, exported to ONNX."""
