"""Stage 2, lowering: torch.export / ONNX -> Relax -> BN folding -> operator fusion -> fused
kernels (``kernels``), whole networks (``network``), every kernel of a space through probe
modules (``coverage``) and the calibration sweep of operators outside the space.

In: torch modules, ONNX files, Relax modules, a ``SearchSpace``. Out: ``Kernel`` lists
with structural-hash keys, shapes, FLOPs and bytes. Depends on ``space`` and ``core``."""
