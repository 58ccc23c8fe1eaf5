"""A *batch network*: kernels that share no network placed in one Relax program, so each is
timed as it runs inside a network rather than alone in a loop.

``main`` takes every kernel's arguments as parameters and, for each kernel in turn, first
runs a *producer* (a copy kernel writing the kernel's first input afresh, as the previous
layer of a network does: the input is hot in the caches, just written) and then the kernel
itself, then a *consumer* that reads one element of its output into a running one-element
sum (so the kernel is not removed as dead code, yet its output dies at once and the VM's
memory plan reuses that storage for the next kernels, as in a network, instead of every output
taking fresh, cold memory). A kernel's weights were last touched one pass of the whole batch
earlier, so they come from wherever the rest of the batch left them, as in a network whose
other layers run in between. ``main`` returns the empty calls' outputs and the running sum.

In: ``(symbol, scheduled PrimFunc, Kernel)`` triples. Out: an ``IRModule`` whose ``main``
calls the producers and kernels in order (kernel functions named by their symbols; producers
``chamtvm_produce_<i>``; ``chamtvm_empty_<n>``, one call per argument count present, whose
windows measure the instrument's own cost), and the input specs of ``main``. The reference
kernel (``reference_func``) is added by the build (``measure.compile.build_batch_network``),
as a function of its own beside ``main``. Timing it call by call is
``measure.insitu``'s job.
"""

from __future__ import annotations

from typing import Sequence

from .kernels import ArgSpec, Kernel

PRODUCER_PREFIX = "chamtvm_produce_"
CONSUMER_PREFIX = "chamtvm_consume_"
EMPTY_PREFIX = "chamtvm_empty_"  # + number of arguments: a call that does (almost) nothing


def _empty_func(n_args: int):
    """A PrimFunc of ``n_args`` one-element float32 tensors writing one element of the last:
    its window in an instrumented run is the instrument's own cost for a call of that many
    arguments (``measure.insitu``)."""
    from tvm import te, tirx

    ins = [te.placeholder((1,), "float32", name=f"i{j}") for j in range(n_args - 1)]
    out = te.compute((1,), lambda i: ins[0][i] + tirx.const(0.5, "float32"), name="out")  # not a copy: see _copy_func
    return te.create_prim_func([*ins, out]).without_attr("global_symbol")


REFERENCE_SYMBOL = "chamtvm_reference"
REFERENCE_ARGS = (ArgSpec((64, 128), "float32"), ArgSpec((128, 64), "float32"), ArgSpec((64, 64), "float32"))


def reference_func():
    """The fixed *reference* kernel every measuring library carries: a 64x128 by 128x64 float32
    matmul, rows spread over the runtime's threads, vectorised. Its time says how fast the
    device is at a given moment (another process, a throttled clock, another tenant of a
    virtual machine's host slow it), so samples are kept at the device's nominal speed
    (``measure.timing.sample_at_nominal_speed``)."""
    from tvm import s_tir, te

    a = te.placeholder(REFERENCE_ARGS[0].shape, "float32", name="A")
    b = te.placeholder(REFERENCE_ARGS[1].shape, "float32", name="B")
    k = te.reduce_axis((0, REFERENCE_ARGS[0].shape[1]), name="k")
    c = te.compute(REFERENCE_ARGS[2].shape, lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    i, j, kk = sch.get_loops(sch.get_sblock("C"))
    sch.reorder(i, kk, j)
    sch.parallel(i)
    sch.vectorize(j)
    return sch.mod["main"].without_attr("global_symbol")  # the caller names it


def _copy_func(spec: ArgSpec):
    """A PrimFunc writing every element of a tensor of ``spec`` from ``src`` (its default
    schedule). Not a plain copy: TVM rewrites a copy into a reshape, a view that writes nothing."""
    from tvm import te, tirx

    src = te.placeholder(spec.shape, spec.dtype, name="src")
    if spec.dtype.startswith("float"):
        out = te.compute(spec.shape, lambda *i: src(*i) + tirx.const(0.5, spec.dtype), name="out")
    else:
        out = te.compute(spec.shape, lambda *i: src(*i) + tirx.const(1, spec.dtype), name="out")
    return te.create_prim_func([src, out]).without_attr("global_symbol")


def _consume_func(spec: ArgSpec):
    """A PrimFunc ``out[0] = acc[0] + src[0, ..., 0]`` for ``src`` of ``spec``: keeps a kernel's
    output used (so it is not removed) while letting it die right after, as in a network, so
    the VM's memory plan reuses its storage for the next kernels."""
    from tvm import te, tirx

    src = te.placeholder(spec.shape, spec.dtype, name="src")
    acc = te.placeholder((1,), "float32", name="acc")
    first = src(*([0] * len(spec.shape)))
    if spec.dtype != "float32":
        first = tirx.Cast("float32", first)
    out = te.compute((1,), lambda i: acc[i] + first, name="out")
    return te.create_prim_func([src, acc, out]).without_attr("global_symbol")


def _tensor_type(spec: ArgSpec):
    from tvm import relax

    return relax.TensorType(list(spec.shape), spec.dtype)


def batch_network(kernels: Sequence[tuple[str, object, Kernel]]):
    """``(IRModule, inputs)`` of the batch network of ``kernels`` (see module docstring).

    Each kernel's ``n_inputs`` (how many leading arguments it reads; set by
    ``extract_kernels``) must be known: a kernel without it is a ``ValueError``."""
    import tvm
    from tvm import relax

    bb = relax.BlockBuilder()
    params, plan = [], []
    for i, (symbol, func, k) in enumerate(kernels):
        if k.n_inputs is None or not 1 <= k.n_inputs < len(k.args):
            raise ValueError(f"kernel {k.name} ({symbol}): unknown split of its {len(k.args)} "
                             f"arguments into inputs and outputs")
        ins = [relax.Var(f"a{i}_{j}", _tensor_type(a)) for j, a in enumerate(k.args[:k.n_inputs])]
        params += ins
        plan.append((symbol, func, k, ins))
    inputs = [ArgSpec(tuple(int(d) for d in p.ty.shape), str(p.ty.dtype)) for p in params]
    arities = sorted({max(len(k.args), 2) for _, _, k, _ in plan})
    one = relax.Var("one", _tensor_type(ArgSpec((1,), "float32")))
    params.append(one)
    inputs.append(ArgSpec((1,), "float32"))
    with bb.function("main", params):
        with bb.dataflow():
            outs = []
            for n in arities:  # the instrument's own cost per call, by number of arguments
                gv = bb.add_func(_empty_func(n).with_attr("global_symbol", f"{EMPTY_PREFIX}{n}"), f"{EMPTY_PREFIX}{n}")
                outs.append(bb.emit(relax.call_tir(gv, [one] * (n - 1), _tensor_type(ArgSpec((1,), "float32")))))
            acc = one
            for i, (symbol, func, k, ins) in enumerate(plan):
                produce = bb.add_func(_copy_func(k.args[0]).with_attr("global_symbol", f"{PRODUCER_PREFIX}{i}"),
                                      f"{PRODUCER_PREFIX}{i}")
                fresh = bb.emit(relax.call_tir(produce, [ins[0]], _tensor_type(k.args[0])))
                gv = bb.add_func(func.with_attr("global_symbol", symbol), symbol)
                out_types = [_tensor_type(a) for a in k.args[k.n_inputs:]]
                out = bb.emit(relax.call_tir(gv, [fresh, *ins[1:]], out_types[0] if len(out_types) == 1 else out_types))
                first = out if len(out_types) == 1 else bb.emit(relax.TupleGetItem(out, 0))
                consume = bb.add_func(_consume_func(k.args[k.n_inputs]).with_attr("global_symbol", f"{CONSUMER_PREFIX}{i}"),
                                      f"{CONSUMER_PREFIX}{i}")
                acc = bb.emit(relax.call_tir(consume, [first, acc], _tensor_type(ArgSpec((1,), "float32"))))
            result = bb.emit_output(relax.Tuple([*outs, acc]))
        bb.emit_func_output(result)
    mod = bb.get()
    return tvm.IRModule(dict(mod.functions.items())), inputs
