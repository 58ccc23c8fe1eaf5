"""Simplify an ONNX graph before TVM imports it: static input shapes, shape inference, and
constant folding of everything that depends only on shapes and weights.

Real exporters emit shape arithmetic (``Shape -> Gather -> Div -> Slice`` for a channel
split, ``Shape -> Concat -> Reshape`` for ShuffleNet's channel shuffle, sizes of ``Resize``
computed from the input's shape). TVM's ONNX importer turns such subgraphs into Relax
shape expressions that later ops cannot take (``emit_te now only supports Tensor that has
ShapeExpr shape``). With the input shape fixed, every such value is a constant: this module
computes them with ONNX's own reference evaluator, node by node, and leaves a graph whose
shape arguments are initializers. Nothing is downloaded and no other package is needed.

``simplify(model, {input: shape})`` returns a new ``onnx.ModelProto``; ``unsupported_ops``
names the nodes TVM's importer has no converter for.
"""

from __future__ import annotations

from typing import Mapping, Sequence

# Folding a node runs ONNX's Python reference implementation: fine for shape arithmetic and
# small weight transforms, too slow for compute on activations-sized constants.
MAX_FOLD_ELEMENTS = 1 << 22

# Ops never folded even with constant inputs: their outputs are random or control flow.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
            "If", "Loop", "Scan", "Bernoulli"}


def _static_dims(vi) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _set_input_shapes(model, shapes: Mapping[str, Sequence[int]]) -> None:
    for inp in model.graph.input:
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            del dims[:]
            for v in shapes[inp.name]:
                dims.add().dim_value = int(v)
    # stale value_info from the exporter may carry symbolic dims: inference recomputes them
    del model.graph.value_info[:]


def _infer(model):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is best effort; folding still works on what it knows
        return model


def _shapes_of(model) -> dict[str, tuple[int, ...]]:
    out = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        s = _static_dims(vi)
        if s is not None:
            out[vi.name] = s
    return out


def _eval_node(node, inputs: list, opset_imports) -> list | None:
    """Outputs of one node on constant numpy inputs, or None if the reference evaluator fails."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    graph_inputs, feeds = [], {}
    for i, (name, value) in enumerate(zip(node.input, inputs)):
        if name == "":
            continue
        tname = f"in{i}"
        graph_inputs.append(helper.make_tensor_value_info(
            tname, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
        feeds[tname] = value
    n = onnx.NodeProto()
    n.CopyFrom(node)
    del n.input[:]
    n.input.extend([f"in{i}" if name != "" else "" for i, name in enumerate(node.input)])
    del n.output[:]
    n.output.extend([f"out{i}" for i in range(len(node.output))])
    outs = [helper.make_value_info(f"out{i}", onnx.TypeProto()) for i in range(len(node.output))]
    g = helper.make_graph([n], "fold", graph_inputs, outs)
    m = helper.make_model(g, opset_imports=list(opset_imports))
    try:
        res = ReferenceEvaluator(m).run(None, feeds)
    except Exception:  # an op the reference evaluator lacks: leave the node to TVM
        return None
    import numpy as np

    return [np.asarray(r) for r in res]


def simplify(model, input_shapes: Mapping[str, Sequence[int]], max_rounds: int = 8):
    """A copy of ``model`` with static input shapes and every shape/weight-only subgraph
    folded into initializers; ``input_shapes``: graph input name -> static shape."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    _set_input_shapes(m, input_shapes)
    graph = m.graph
    for _ in range(max_rounds):
        m = _infer(m)
        graph = m.graph
        shapes = _shapes_of(m)
        const = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        graph_inputs = {i.name for i in graph.input} - set(const)
        kept, folded = [], 0
        for node in graph.node:
            values = None
            if node.op_type == "Constant":
                values = _eval_node(node, [], m.opset_import)
            elif node.op_type == "Shape" and node.input[0] in shapes:
                s = np.array(shapes[node.input[0]], dtype=np.int64)
                attrs = {a.name: a.i for a in node.attribute}
                values = [s[attrs.get("start", 0):attrs.get("end", len(s))]]
            elif node.op_type == "Size" and node.input[0] in shapes:
                values = [np.array(int(np.prod(shapes[node.input[0]])), dtype=np.int64)]
            elif (node.op_type not in _NO_FOLD and node.domain in ("", "ai.onnx")
                  and all(i == "" or i in const for i in node.input) and node.input
                  and sum(const[i].size for i in node.input if i) <= MAX_FOLD_ELEMENTS):
                values = _eval_node(node, [const[i] if i else None for i in node.input], m.opset_import)
            if values is None or len(values) != len(node.output):
                kept.append(node)
                continue
            for name, v in zip(node.output, values):
                if name:
                    const[name] = v
            folded += 1
        if folded == 0:
            break
        used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
        del graph.node[:]
        graph.node.extend(kept)
        del graph.initializer[:]
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name) for name, v in const.items()
                                 if name in used and name not in graph_inputs)
        # an output computed entirely from constants still needs a producer
        for o in graph.output:
            if o.name in const and not any(o.name in n.output for n in kept):
                graph.node.append(onnx.helper.make_node("Identity", [o.name + "__const"], [o.name]))
                graph.initializer.append(numpy_helper.from_array(np.asarray(const[o.name]), o.name + "__const"))
        del graph.value_info[:]
    return _infer(m)


def unsupported_ops(model) -> list[tuple[str, str]]:
    """(op_type, node name) of each node TVM's ONNX importer has no converter for."""
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = set(_get_convert_map()) | {"Constant", "If"}
    return [(n.op_type, n.name or n.output[0]) for n in model.graph.node if n.op_type not in known]


def failing_node(tb) -> tuple[str, str] | None:
    """(op_type, node name) that TVM's importer was converting when it raised, from the
    traceback ``tb`` (its node loop keeps the node in a local variable), or None."""
    result = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_construct_nodes" and "node" in frame.f_locals:
            node = frame.f_locals["node"]
            result = (node.op_type, node.name or (node.output[0] if node.output else "?"))
        tb = tb.tb_next
    return result
