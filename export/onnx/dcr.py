"""DepthToSpace in DCR mode, the only mode the NNAPI and Core ML NeuralNetwork execution providers run
(ONNX Runtime's supported-op tables; Core ML's ML Program runs CRD only at fixed shapes).

PyTorch's pixel shuffle is CRD (channel ``c * r*r + k`` goes to offset ``k`` of output channel ``c``);
DCR reads channel ``k * C + c`` instead. Where the tensor comes from a dense conv (through its ReLU),
permuting that conv's output channels (weight and bias rows) makes the DCR op give exactly the CRD
result, at no cost. A grouped conv (PCARN-M's upsampling convs) cannot be permuted across its groups,
so there the channels are reordered first by a rank-4 Reshape -> Transpose -> Reshape, exact and
within the rank the mobile providers take (``export/tflite/d2s.py`` does the same for TFLite).
"""

from __future__ import annotations

import collections

import numpy as np

ELEMENTWISE = ("Relu",)  # what sits between an upsampling conv and its shuffle (CARN's conv, ReLU, shuffle)


def dcr_order(channels: int, block: int) -> list[int]:
    """Index list: DCR channel ``k * channels + c`` takes CRD channel ``c * block**2 + k``."""
    r2 = block * block
    return [c * r2 + k for k in range(r2) for c in range(channels)]


def to_dcr(model):
    """Every CRD DepthToSpace of ``model`` (an onnx ModelProto, changed in place and returned) made
    DCR with the same output: its dense producer conv permuted, or its input reordered."""
    from onnx import helper, numpy_helper, shape_inference

    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    channels = {
        v.name: v.type.tensor_type.shape.dim[1].dim_value
        for v in [*inferred.value_info, *inferred.input]
        if len(v.type.tensor_type.shape.dim) == 4
    }
    producer = {out: n for n in graph.node for out in n.output}
    uses = collections.Counter(name for n in graph.node for name in n.input)
    initializers = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "DepthToSpace" or attribute(node, "mode") != "CRD":
            nodes.append(node)
            continue
        block = attribute(node, "blocksize")
        conv = producer.get(node.input[0])
        while conv is not None and conv.op_type in ELEMENTWISE and uses[conv.output[0]] == 1:
            conv = producer.get(conv.input[0])  # a channel permutation passes through them unchanged
        params = _constants(conv, producer, initializers, numpy_helper)
        if params is not None and uses[conv.output[0]] == 1:
            # fresh initializers, so a weight the exporter shared with another conv stays as it was
            for index, array in zip((1, 2), params, strict=True):
                order = dcr_order(array.shape[0] // (block * block), block)
                name = f"{conv.input[index]}_dcr"
                graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array[order]), name))
                conv.input[index] = name
        else:
            if not channels.get(node.input[0]):
                raise ValueError(f"DepthToSpace {node.name}: the channel count of its input is unknown")
            nodes += _reorder(node, block, channels[node.input[0]], graph, helper, numpy_helper)
        _set_mode(node, "DCR", helper)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _constants(conv, producer: dict, initializers: dict, numpy_helper) -> tuple | None:
    """A dense Conv's weight and bias as arrays (initializers or Constant nodes), or None."""
    if conv is None or conv.op_type != "Conv" or (attribute(conv, "group") or 1) != 1 or len(conv.input) < 3:
        return None
    arrays = []
    for name in conv.input[1:3]:
        while name in producer and producer[name].op_type == "Identity":  # the exporter's shared copies
            name = producer[name].input[0]
        if name in initializers:
            arrays.append(numpy_helper.to_array(initializers[name]))
        elif name in producer and producer[name].op_type == "Constant":
            arrays.append(numpy_helper.to_array(attribute(producer[name], "value")))
        else:
            return None
    return tuple(arrays)


def _reorder(node, block: int, channels: int, graph, helper, numpy_helper) -> list:
    """Nodes that turn the DepthToSpace input from CRD into DCR channel order, every tensor rank 4:
    (N, C*r*r, H, W) -> (N, C, r*r, H*W) -> (N, r*r, C, H*W) -> the input's own shape again (read by
    Shape, so dynamic height and width stay dynamic; onnxsim folds it for fixed sizes)."""
    source, r2 = node.input[0], block * block
    stem = f"{node.name or source}_dcr"
    split = numpy_helper.from_array(np.array([0, channels // r2, r2, -1], dtype=np.int64), f"{stem}_split")
    graph.initializer.append(split)
    node.input[0] = f"{stem}_out"
    return [
        helper.make_node("Reshape", [source, split.name], [f"{stem}_split_out"], name=f"{stem}_split"),
        helper.make_node(
            "Transpose", [f"{stem}_split_out"], [f"{stem}_swap"], perm=[0, 2, 1, 3], name=f"{stem}_swap"
        ),
        helper.make_node("Shape", [source], [f"{stem}_shape"], name=f"{stem}_shape"),
        helper.make_node("Reshape", [f"{stem}_swap", f"{stem}_shape"], [node.input[0]], name=f"{stem}_merge"),
    ]


def attribute(node, name: str):
    """A node attribute's value (strings decoded), or None."""
    from onnx import helper

    for entry in node.attribute:
        if entry.name == name:
            value = helper.get_attribute_value(entry)
            return value.decode() if isinstance(value, bytes) else value
    return None


def _set_mode(node, mode: str, helper) -> None:
    kept = [a for a in node.attribute if a.name != "mode"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("mode", mode)])
