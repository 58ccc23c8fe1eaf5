"""Measuring process: ``python -m chamtvm.measure.worker`` reads one JSON request on stdin
and prints one ``RESULT <json>`` line per item on stdout as each finishes.

Request: ``{"mode": "kernels"|"batchnet"|"network", "library": path, "device": "cpu"|"cuda",
"items": [...] | "inputs": [[shape, dtype], ...], "evaluator": {...}, "key": str}``.
``batchnet``: the items of a batch network (``lower.batchnet``) timed inside it
(``inputs``: its ``main``'s parameters). ``networks``: ``"networks": [{"key", "library",
"inputs"}, ...]`` instead of one library, each timed as ``network`` times one, in turn.
Running apart from the parent means a kernel that crashes, or a kill, costs at most the
item in flight: every finished result has already been printed.
"""

from __future__ import annotations

import json
import sys

RESULT_PREFIX = "RESULT "
# dtypes numpy lacks: where a request names one, TVM needs ``ml_dtypes`` to make its tensors
_ML_DTYPES = ("bfloat", "float8", "float6", "float4", "int4", "int2")


def main() -> int:
    request = json.loads(sys.stdin.read())
    # a measuring process needs TVM's runtime only; tvm_ffi imports torch whenever it can,
    # which costs seconds in every measuring process: here the import finds no torch
    sys.modules.setdefault("torch", None)
    # likewise ``ml_dtypes`` (about 1 s to import), unless the request names a dtype numpy lacks
    text = json.dumps(request)
    if "tvm" not in sys.modules and not any(name in text for name in _ML_DTYPES):
        sys.modules.setdefault("ml_dtypes", None)
    import tvm

    from ..lower.kernels import ArgSpec
    from ..targets.spec import Evaluator
    from .base import KernelItem
    from .timing import time_kernels, time_network

    from .energy import open_meter

    dev = tvm.cuda(0) if request.get("device") == "cuda" else tvm.cpu(0)
    meter = open_meter(request.get("device", "cpu"))  # None where no counter is readable
    evaluator = Evaluator(**request["evaluator"])
    threads = int(tvm.get_global_func("runtime.NumThreads")())  # TVM_NUM_THREADS, else TVM's default
    if request["mode"] == "networks":
        for n in request["networks"]:
            inputs = [ArgSpec(tuple(s), t) for s, t in n["inputs"]]
            _print(time_network(tvm.runtime.load_module(n["library"]), dev, inputs, evaluator, key=n["key"],
                                meter=meter), threads)
        return 0
    module = tvm.runtime.load_module(request["library"])
    if request["mode"] == "batchnet":
        from .timing import time_batch_network

        items = [KernelItem.from_json(d) for d in request["items"]]
        inputs = [ArgSpec(tuple(s), t) for s, t in request["inputs"]]
        results = time_batch_network(module, dev, inputs, items, evaluator)
    elif request["mode"] == "kernels":
        items = [KernelItem.from_json(d) for d in request["items"]]
        results = time_kernels(module, dev, items, evaluator, meter=meter)
    else:
        inputs = [ArgSpec(tuple(s), t) for s, t in request["inputs"]]
        results = [time_network(module, dev, inputs, evaluator, key=request.get("key", "network"), meter=meter)]
    for r in results:
        _print(r, threads)
    return 0


def _print(result, threads: int) -> None:
    """One ``RESULT`` line, flushed at once (a later crash loses nothing printed)."""
    result.extra["runtime_threads"] = threads
    sys.stdout.write(RESULT_PREFIX + json.dumps(result.to_json()) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
