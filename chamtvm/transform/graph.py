"""A trained network as stem -> blocks -> head, each part a torch module, blocks replaceable.

Every supported model comes in as ONNX (a torch module is exported to ONNX first, BatchNorm
folded into the convolutions by the exporter), is simplified (``lower.onnx_simplify``) and
run node by node with torch operators (:class:`Segment`), so its weights are trainable
torch parameters whatever produced the file. The graph is then cut into parts:

* a *cut* is a point of the node order where exactly one tensor is alive;
* *block boundaries* are the stem's output (the first cut after a convolution that does not
  feed an activation: after the stem's activation) and every
  later cut whose tensor is linear (made by a convolution, an addition or a BatchNorm, and
  not fed to an activation: the linear bottlenecks of MobileNetV2 / EfficientNet; tensors
  inside a block are activations or feed one, and are never boundaries);
* the *head* runs from the last 4-D boundary to the logits (head convolution, pooling,
  classifier).

A block is *replaceable* when its input and output are 4-D and it holds a depthwise
convolution (an inverted residual / MBConv, with or without squeeze-excite). Supported
families: the stage-wise and per-layer spaces' networks (``space.model.build_model``) and
MobileNetV2 / MnasNet / EfficientNet-style models (``zoo.real``'s builders, or the user's
own) given as torch modules or ONNX files. Operators: Conv, BatchNormalization, Relu, Clip,
Sigmoid, HardSigmoid, HardSwish, Add, Sub, Mul, Div, GlobalAveragePool, ReduceMean,
Flatten, Reshape, Squeeze, Unsqueeze, Gemm, MatMul, Identity, Dropout. Anything else, or a
network with no replaceable block (a ResNet: its boundaries are activations), is an
:class:`UnsupportedModelError` naming what is missing.

:func:`width_scaled` gives the same graph with every channel count scaled (the uniform
width-scaling baseline), freshly initialised with a BatchNorm after each convolution.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SUPPORTED_OPS = ("Constant", "Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Add",
                 "Sub", "Mul", "Div", "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Squeeze",
                 "Unsqueeze", "Gemm", "MatMul", "Identity", "Dropout")
ACTIVATION_OPS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish")
LINEAR_OPS = ("Conv", "Add", "BatchNormalization", "Identity")
STATIC_INPUT_OPS = ("Clip", "Reshape", "ReduceMean", "Squeeze", "Unsqueeze")
SUPPORTED_FAMILIES = ("stage-wise and per-layer space networks (space.model.build_model)",
                      "MobileNetV2 / MnasNet / EfficientNet-style networks (inverted residuals with depthwise "
                      "convolutions, optional squeeze-excite) as torch modules or ONNX files")


class UnsupportedModelError(ValueError):
    """A model outside the supported families (bad input, exit 2); the message says why."""


@dataclass(frozen=True)
class Node:
    """One ONNX node: operator, input and output tensor names, attributes."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Graph:
    """An ONNX graph read into plain Python: nodes in order, constants (numpy), the input and
    output names and every tensor's shape at batch 1."""

    nodes: list[Node]
    constants: dict[str, np.ndarray]
    input: str
    output: str
    input_shape: tuple[int, ...]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerInfo:
    """A block of a :class:`LayeredNet`: input/output channels, stride, input size (px), its
    activation (``relu6``/``relu``/other name), whether HANT may replace it, and the ONNX
    nodes it runs (for the record)."""

    index: int
    cin: int
    cout: int
    stride: int
    in_hw: int
    out_hw: int
    activation: str
    replaceable: bool
    ops: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "cin": self.cin, "cout": self.cout, "stride": self.stride, "in_hw": self.in_hw,
                "out_hw": self.out_hw, "activation": self.activation, "replaceable": self.replaceable,
                "ops": list(self.ops)}


# ---------------------------------------------------------------- reading ONNX
def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def read_onnx(model: Any, input_shape: Sequence[int]) -> Graph:
    """The :class:`Graph` of an ONNX model (path, bytes or ``ModelProto``) at the static
    ``input_shape`` (NCHW, batch 1), simplified; :class:`UnsupportedModelError` when the file
    is unreadable, has several inputs or outputs, or uses operators outside ``SUPPORTED_OPS``."""
    import onnx
    from onnx import numpy_helper

    from ..lower.onnx_simplify import simplify

    try:
        if isinstance(model, (str, Path)):
            proto = onnx.load(str(model))
        elif isinstance(model, (bytes, bytearray)):
            proto = onnx.load_from_string(bytes(model))
        else:
            proto = model
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError ...
        raise UnsupportedModelError(f"not a readable ONNX model: {type(e).__name__}: {str(e)[:200]}") from None
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise UnsupportedModelError(f"the model has {len(inputs)} inputs and {len(proto.graph.output)} outputs; "
                                    f"one image in, one logits tensor out is supported")
    dims = proto.graph.input[[i.name for i in proto.graph.input].index(inputs[0])].type.tensor_type.shape.dim
    static = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(static) != len(input_shape) or any(s not in (None, x) for s, x in zip(static[1:], input_shape[1:])):
        have = "x".join("?" if s is None else str(s) for s in static[1:])
        raise UnsupportedModelError(f"the model takes {have} inputs; the task has "
                                    f"{'x'.join(map(str, input_shape[1:]))} images")
    try:
        proto = simplify(proto, {inputs[0]: list(input_shape)})
    except Exception:  # noqa: BLE001 - the graph is then read as it is
        from ..core.interrupt import reraise_if_interrupted

        reraise_if_interrupted()
    bad = sorted({n.op_type for n in proto.graph.node if n.op_type not in SUPPORTED_OPS})
    if bad:
        raise UnsupportedModelError(f"operators {bad} are outside the supported families "
                                    f"({'; '.join(SUPPORTED_FAMILIES)})")
    constants = {t.name: numpy_helper.to_array(t).copy() for t in proto.graph.initializer}
    nodes = [Node(n.op_type, tuple(n.input), tuple(n.output), _attrs(n)) for n in proto.graph.node]
    graph = Graph(nodes, constants, inputs[0], proto.graph.output[0].name, tuple(input_shape))
    graph.shapes = _infer_shapes(graph)
    return graph


def _infer_shapes(graph: Graph) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, by running the graph once on zeros (torch, no gradients)."""
    import torch

    seg = Segment(graph.nodes, graph.input, graph.output, graph.constants)
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with torch.no_grad():
            seg(torch.zeros(*graph.input_shape), record=shapes)
    except UnsupportedModelError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError on shapes that do not fit
        from ..core.interrupt import reraise_if_interrupted

        reraise_if_interrupted()
        raise UnsupportedModelError(f"the graph cannot be run with torch operators: {type(e).__name__}: "
                                    f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
    return shapes


# ------------------------------------------------------------ running nodes
def _torch_modules():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class _Segment(nn.Module):
        """Runs ONNX nodes with torch operators: one input tensor in, one tensor out. Float
        initializers feeding Conv, Gemm, MatMul and BatchNormalization are trainable
        parameters; the other constants are buffers. ``bn_after_conv``: a fresh BatchNorm2d
        after every convolution (for training a re-initialised graph from scratch)."""

        def __init__(self, nodes, input_name, output_name, constants, bn_after_conv=False):
            super().__init__()
            self.nodes = list(nodes)
            self.input_name, self.output_name = input_name, output_name
            self.params = nn.ParameterDict()
            self.consts: dict[str, str] = {}  # tensor name -> attribute name
            trainable = set()
            for n in self.nodes:
                if n.op in ("Conv", "Gemm", "MatMul"):
                    trainable.update(i for i in n.inputs[1:] if i)
                elif n.op == "BatchNormalization":
                    trainable.update(n.inputs[1:3])  # scale and bias; mean and variance are buffers
            for n in self.nodes:
                for k, name in enumerate(n.inputs):
                    if n.op in STATIC_INPUT_OPS and k > 0:
                        continue  # read as Python values (``static``)
                    if name in constants and name not in self.consts:
                        value = np.asarray(constants[name])
                        attr = f"c{len(self.consts)}"
                        self.consts[name] = attr
                        t = torch.from_numpy(np.array(value))
                        if name in trainable and t.is_floating_point():
                            self.params[attr] = nn.Parameter(t.float())
                        else:
                            self.register_buffer(attr, t.float() if t.is_floating_point() else t)
            # constant inputs read as Python values (clip bounds, shapes, axes): torch.export
            # cannot trace a value read out of a tensor
            self.static = {i: [None if not name or name not in constants else np.asarray(constants[name]).tolist()
                               for name in n.inputs]
                           for i, n in enumerate(self.nodes) if n.op in STATIC_INPUT_OPS}
            self.bns = nn.ModuleDict()
            if bn_after_conv:
                for i, n in enumerate(self.nodes):
                    if n.op == "Conv":
                        self.bns[str(i)] = nn.BatchNorm2d(int(constants[n.inputs[1]].shape[0]))

        def fold_bn(self):
            """Fold every BatchNorm after a convolution into the convolution (eval statistics):
            the deployable form, whose kernels are conv + bias as in the teacher's graph."""
            with torch.no_grad():
                for i, bn in list(self.bns.items()):
                    n = self.nodes[int(i)]
                    w_attr = self.consts[n.inputs[1]]
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    self.params[w_attr].mul_(scale.view(-1, 1, 1, 1))
                    if len(n.inputs) > 2 and n.inputs[2]:
                        b_attr = self.consts[n.inputs[2]]
                        self.params[b_attr].copy_((self.params[b_attr] - bn.running_mean) * scale + bn.bias)
                    else:
                        raise UnsupportedModelError("a convolution without a bias cannot take a folded BatchNorm")
            self.bns = nn.ModuleDict()
            return self

        def const(self, name):
            attr = self.consts[name]
            return self.params[attr] if attr in self.params else getattr(self, attr)

        def forward(self, x, record=None):
            env = {self.input_name: x}

            def get(name):
                if name in env:
                    return env[name]
                return self.const(name)

            for i, n in enumerate(self.nodes):
                if i in self.static:  # the first input is data, the others constants
                    ins = [get(n.inputs[0])] + self.static[i][1:]
                else:
                    ins = [get(name) if name else None for name in n.inputs]
                outs = _run(n, ins)
                if str(i) in self.bns:
                    outs = [self.bns[str(i)](outs[0])]
                for name, value in zip(n.outputs, outs):
                    env[name] = value
                    if record is not None:
                        record[name] = tuple(value.shape)
            if record is not None:
                record[self.input_name] = tuple(x.shape)
            return env[self.output_name]

    def _pads(n, x):
        pads = list(n.attrs.get("pads", [0, 0, 0, 0]))
        if n.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedModelError(f"Conv with auto_pad={n.attrs['auto_pad']!r} is not supported")
        half = len(pads) // 2
        if pads[:half] == pads[half:]:
            return x, tuple(pads[:half])
        # ONNX pads (begin..., end...) -> F.pad (last dim first: left, right, top, bottom)
        return F.pad(x, (pads[1], pads[3], pads[0], pads[2])), (0, 0)

    def _run(n, ins):
        op, a = n.op, n.attrs
        if op == "Conv":
            x, pad = _pads(n, ins[0])
            return [F.conv2d(x, ins[1], ins[2] if len(ins) > 2 else None, tuple(a.get("strides", (1, 1))), pad,
                             tuple(a.get("dilations", (1, 1))), int(a.get("group", 1)))]
        if op == "BatchNormalization":
            return [F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, float(a.get("epsilon", 1e-5)))]
        if op == "Relu":
            return [torch.relu(ins[0])]
        if op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
            return [torch.clamp(ins[0], None if lo is None else float(lo), None if hi is None else float(hi))]
        if op == "Sigmoid":
            return [torch.sigmoid(ins[0])]
        if op == "HardSigmoid":
            return [torch.clamp(float(a.get("alpha", 0.2)) * ins[0] + float(a.get("beta", 0.5)), 0.0, 1.0)]
        if op == "HardSwish":
            return [F.hardswish(ins[0])]
        if op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op]
            return [f(ins[0], ins[1])]
        if op == "GlobalAveragePool":
            return [ins[0].mean(dim=(2, 3), keepdim=True)]
        if op == "ReduceMean":
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1] is not None:
                axes = [int(v) for v in ins[1]]
            axes = tuple(range(ins[0].dim())) if axes is None else tuple(int(v) for v in axes)
            return [ins[0].mean(dim=axes, keepdim=bool(a.get("keepdims", 1)))]
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            x = ins[0]
            return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
        if op == "Reshape":
            shape = [int(v) for v in ins[1]]
            shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            return [ins[0].reshape(shape)]
        if op == "Squeeze":
            axes = a.get("axes") or ([int(v) for v in ins[1]] if len(ins) > 1 and ins[1] is not None else None)
            x = ins[0]
            for ax in sorted((axes or [i for i, d in enumerate(x.shape) if d == 1]), reverse=True):
                x = x.squeeze(ax)
            return [x]
        if op == "Unsqueeze":
            axes = a.get("axes") or [int(v) for v in ins[1]]
            x = ins[0]
            for ax in sorted(axes):
                x = x.unsqueeze(ax)
            return [x]
        if op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = float(a.get("alpha", 1.0)) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + float(a.get("beta", 1.0)) * ins[2]
            return [y]
        if op == "MatMul":
            return [torch.matmul(ins[0], ins[1])]
        if op == "Constant":
            from onnx import numpy_helper

            return [torch.from_numpy(numpy_helper.to_array(a["value"]).copy())]
        if op in ("Identity", "Dropout"):
            return [ins[0]] + ([None] if len(n.outputs) > 1 else [])
        raise UnsupportedModelError(f"operator {op} is not supported")  # read_onnx checked already

    return _Segment


_SEGMENT = None


def Segment(nodes, input_name, output_name, constants, bn_after_conv=False):
    """A torch module running ``nodes`` (see ``_Segment``); torch is imported on first use."""
    global _SEGMENT
    if _SEGMENT is None:
        _SEGMENT = _torch_modules()
    return _SEGMENT(nodes, input_name, output_name, constants, bn_after_conv)


# ---------------------------------------------------------------- cutting
def _cuts(graph: Graph) -> list[tuple[int, str]]:
    """``(node index, tensor)`` of every point after node ``index`` where ``tensor`` is the one
    tensor alive."""
    last_use: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for name in n.inputs:
            if name and name not in graph.constants:
                last_use[name] = i
    last_use[graph.output] = len(graph.nodes)
    alive = {graph.input}
    cuts = []
    for i, n in enumerate(graph.nodes):
        alive |= {o for o in n.outputs if o}
        alive = {t for t in alive if last_use.get(t, -1) > i}
        if len(alive) == 1:
            cuts.append((i, next(iter(alive))))
    return cuts


def _activation_name(nodes: Sequence[Node], constants) -> str:
    for n in nodes:
        if n.op == "Relu":
            return "relu"
        if n.op == "Clip":
            hi = n.attrs.get("max")
            if hi is None and len(n.inputs) > 2 and n.inputs[2] in constants:
                hi = float(constants[n.inputs[2]])
            return "relu6" if hi is not None and abs(float(hi) - 6.0) < 1e-6 else "clip"
        if n.op == "HardSwish":
            return "hardswish"
        if n.op == "Sigmoid":
            return "silu"
    return "none"


def _is_depthwise(n: Node, graph: Graph) -> bool:
    if n.op != "Conv":
        return False
    g = int(n.attrs.get("group", 1))
    w = graph.constants.get(n.inputs[1])
    return g > 1 and w is not None and w.shape[1] == 1 and g == graph.shapes[n.inputs[0]][1]


def split(graph: Graph) -> tuple[list[int], list[LayerInfo]]:
    """Node index ranges of the parts (``bounds``: stem = nodes[:bounds[0]], block j =
    nodes[bounds[j]:bounds[j+1]], head = nodes[bounds[-1]:]) and each block's info."""
    producer = {o: n for n in graph.nodes for o in n.outputs}
    activated = {i for n in graph.nodes if n.op in ACTIVATION_OPS for i in n.inputs}
    bounds: list[int] = []
    seen_conv = False
    for i, tensor in _cuts(graph):
        if i == len(graph.nodes) - 1:
            break
        seen_conv = seen_conv or any(n.op == "Conv" for n in graph.nodes[: i + 1])
        shape = graph.shapes.get(tensor, ())
        if not seen_conv or len(shape) != 4:
            continue
        if tensor not in activated and (not bounds or producer[tensor].op in LINEAR_OPS):
            bounds.append(i + 1)
    if len(bounds) < 2:
        raise UnsupportedModelError("found no block between the stem and the head: not a MobileNetV2/EfficientNet-"
                                    f"style network (supported: {'; '.join(SUPPORTED_FAMILIES)})")
    infos = []
    for j in range(len(bounds) - 1):
        nodes = graph.nodes[bounds[j]:bounds[j + 1]]
        tin = _input_of(graph, bounds[j])
        tout = _input_of(graph, bounds[j + 1])
        si, so = graph.shapes[tin], graph.shapes[tout]
        replaceable = any(_is_depthwise(n, graph) for n in nodes)
        infos.append(LayerInfo(j, si[1], so[1], max(1, round(si[2] / so[2])), si[2], so[2],
                               _activation_name(nodes, graph.constants), replaceable, tuple(n.op for n in nodes)))
    if not any(info.replaceable for info in infos):
        raise UnsupportedModelError("the model has no inverted-residual block (a depthwise convolution between "
                                    "linear bottlenecks): not a MobileNetV2/EfficientNet-style network "
                                    f"(supported: {'; '.join(SUPPORTED_FAMILIES)})")
    return bounds, infos


def _input_of(graph: Graph, index: int) -> str:
    """The one tensor alive before node ``index`` (a cut)."""
    if index == 0:
        return graph.input
    for i, tensor in _cuts(graph):
        if i == index - 1:
            return tensor
    raise ValueError(f"no cut before node {index}")


# -------------------------------------------------------------- the network
def _layered_class():
    from torch import nn

    class LayeredNet(nn.Module):
        """``head(blocks[-1](...blocks[0](stem(x))))``; ``layers[j]`` describes ``blocks[j]``
        (:class:`LayerInfo`); ``input_shape`` is NCHW at batch 1. ``blocks[j]`` may be
        replaced by any module of the same input and output shape."""

        def __init__(self, stem, blocks, head, layers, input_shape):
            super().__init__()
            self.stem, self.blocks, self.head = stem, nn.ModuleList(blocks), head
            self.layers = list(layers)
            self.input_shape = tuple(input_shape)

        def features(self, x, upto: int | None = None):
            """The stem's output followed by ``blocks[:upto]``."""
            x = self.stem(x)
            for b in self.blocks[: len(self.blocks) if upto is None else upto]:
                x = b(x)
            return x

        def forward(self, x):
            return self.head(self.features(x))

    return LayeredNet


_LAYERED = None


def LayeredNet(stem, blocks, head, layers, input_shape):
    global _LAYERED
    if _LAYERED is None:
        _LAYERED = _layered_class()
    return _LAYERED(stem, blocks, head, layers, input_shape)


def is_layered(module) -> bool:
    return _LAYERED is not None and isinstance(module, _LAYERED)


def layered_from_graph(graph: Graph, bn_after_conv: bool = False) -> Any:
    """The :class:`LayeredNet` of a read graph (weights from its constants)."""
    bounds, infos = split(graph)
    parts = [(0, bounds[0])] + [(bounds[j], bounds[j + 1]) for j in range(len(bounds) - 1)] + \
        [(bounds[-1], len(graph.nodes))]
    mods = []
    for lo, hi in parts:
        tin = _input_of(graph, lo)
        tout = graph.output if hi == len(graph.nodes) else _input_of(graph, hi)
        mods.append(Segment(graph.nodes[lo:hi], tin, tout, graph.constants, bn_after_conv))
    net = LayeredNet(mods[0], mods[1:-1], mods[-1], infos, graph.input_shape)
    net.graph = graph
    return net.eval()


def folded(net):
    """A copy of a :class:`LayeredNet` with the BatchNorms of :func:`width_scaled` folded into
    the convolutions (eval mode): what is priced, measured and exported."""
    import copy

    out = copy.deepcopy(net).eval()
    for m in out.modules():
        if hasattr(m, "fold_bn") and len(getattr(m, "bns", ())):
            m.fold_bn()
    return out


def onnx_bytes(module, input_shape: Sequence[int]) -> bytes:
    """``module`` exported to ONNX (legacy exporter, opset 17, eval mode: BatchNorm folded)."""
    import warnings

    import torch

    buf = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(*input_shape),), buf, input_names=["x"], output_names=["logits"],
                              opset_version=17, dynamo=False, do_constant_folding=True)
    except UnsupportedModelError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many types on modules it cannot trace
        from ..core.interrupt import reraise_if_interrupted

        reraise_if_interrupted()
        raise UnsupportedModelError(f"the torch module cannot be exported to ONNX: {type(e).__name__}: "
                                    f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
    finally:
        module.train(was_training)
    return buf.getvalue()


def layered(model: Any, input_shape: Sequence[int], num_classes: int | None = None):
    """The :class:`LayeredNet` of a torch module, an ONNX path/bytes or a ``ModelProto`` at
    ``input_shape``; checks that it maps one image to ``num_classes`` logits."""
    import torch

    if is_layered(model):
        return model
    if isinstance(model, torch.nn.Module):
        try:
            with torch.no_grad():
                model.eval()(torch.zeros(*input_shape))
        except Exception as e:  # noqa: BLE001 - whatever the module raises on an input it cannot take
            from ..core.interrupt import reraise_if_interrupted

            reraise_if_interrupted()
            raise UnsupportedModelError(f"the torch module does not run on the task's "
                                        f"{'x'.join(map(str, input_shape[1:]))} images: {type(e).__name__}: "
                                        f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
        model = onnx_bytes(model, input_shape)
    net = layered_from_graph(read_onnx(model, input_shape))
    out = net.graph.shapes[net.graph.output]
    if num_classes is not None and tuple(out) != (input_shape[0], num_classes):
        raise UnsupportedModelError(f"the model's output has shape {tuple(out)}; the task has {num_classes} classes "
                                    f"(expected {(input_shape[0], num_classes)})")
    return net


# ------------------------------------------------------------ width scaling
def scale_channels(c: int, width: float, divisor: int = 8) -> int:
    """``c * width`` rounded to a multiple of ``divisor`` (at least ``divisor``, never more
    than 10 % below; MobileNetV2's rule), or ``c`` when ``width`` is 1."""
    from ..space.baselines import make_divisible

    return c if width == 1.0 else make_divisible(c * width, divisor)


def width_scaled(net, width: float, divisor: int = 8, seed: int = 0):
    """The graph of ``net`` with every hidden channel count scaled by ``width``: a new
    :class:`LayeredNet`, freshly initialised (Kaiming; a BatchNorm after every convolution),
    the same input and classes. Depthwise convolutions stay depthwise, residual additions
    stay consistent (every tensor's channels map through one rule)."""
    import torch

    if width <= 0 or not math.isfinite(width):
        raise ValueError(f"width multiplier must be a positive number, got {width!r}")
    g = net.graph
    rng = np.random.default_rng(seed)
    ch: dict[str, int] = {g.input: g.input_shape[1]}
    consts = dict(g.constants)
    out_name = g.output

    def chan(name):
        return ch.get(name, 1)

    nodes = [Node(n.op, n.inputs, n.outputs, dict(n.attrs)) for n in g.nodes]  # the originals stay as they are
    for n in nodes:
        shape_out = g.shapes.get(n.outputs[0], ())
        if n.op == "Conv":
            w = g.constants[n.inputs[1]]
            o, i_per_g = w.shape[0], w.shape[1]
            group = int(n.attrs.get("group", 1))
            cin = chan(n.inputs[0])
            if group > 1 and i_per_g == 1 and group == g.shapes[n.inputs[0]][1]:
                new_o, new_group = cin * (o // group), cin
            else:
                if group != 1:
                    raise UnsupportedModelError("grouped (not depthwise) convolutions cannot be width-scaled")
                new_o, new_group = scale_channels(o, width, divisor), 1
            fan_out = new_o * w.shape[2] * w.shape[3] // new_group
            consts[n.inputs[1]] = (rng.standard_normal((new_o, cin // new_group, *w.shape[2:]))
                                   * math.sqrt(2.0 / fan_out)).astype(np.float32)
            if len(n.inputs) > 2 and n.inputs[2]:
                consts[n.inputs[2]] = np.zeros(new_o, np.float32)
            n.attrs["group"] = new_group
            ch[n.outputs[0]] = new_o
        elif n.op == "Gemm":
            w = g.constants[n.inputs[1]]
            trans_b = bool(n.attrs.get("transB", 0))
            out_f = w.shape[0] if trans_b else w.shape[1]
            new_out = out_f if n.outputs[0] == out_name else scale_channels(out_f, width, divisor)
            cin = chan(n.inputs[0])
            weight = (rng.standard_normal((new_out, cin) if trans_b else (cin, new_out)) * 0.01).astype(np.float32)
            consts[n.inputs[1]] = weight
            if len(n.inputs) > 2 and n.inputs[2]:
                consts[n.inputs[2]] = np.zeros(new_out, np.float32)
            ch[n.outputs[0]] = new_out
        elif n.op == "MatMul":
            raise UnsupportedModelError("MatMul layers cannot be width-scaled (use Gemm)")
        elif n.op == "BatchNormalization":
            c = chan(n.inputs[0])
            for k, v in zip(n.inputs[1:5], (1.0, 0.0, 0.0, 1.0)):
                consts[k] = np.full(c, v, np.float32)
            ch[n.outputs[0]] = c
        else:
            ins = [chan(i) for i in n.inputs if i and i not in g.constants]
            c = max(ins) if ins else 1
            for o in n.outputs:
                if o:
                    ch[o] = c if len(shape_out) >= 2 else 1
    scaled = Graph(nodes, consts, g.input, g.output, g.input_shape)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        scaled.shapes = _infer_shapes(scaled)
        out = layered_from_graph(scaled, bn_after_conv=True)
    finally:
        torch.random.set_rng_state(torch_state)
    return out
