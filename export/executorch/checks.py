"""Graph checks of ExecuTorch ``.pte`` files, read back through ``export/executorch/file.py``.

The same questions as for the other formats (``export/checks.py``), answered from the XNNPACK
delegate's own graph: grouped convs single, ReLU fused into the conv (XNNPACK's output clamp),
depth-to-space once per stage, weights stored once, and everything of ``forward`` delegated to
XNNPACK (an op left outside runs on ExecuTorch's slow portable kernels: the check lists it).

ExecuTorch's XNNPACK schema has no depth-to-space node: PyTorch's pixel shuffle would lower to one
rank-6 transpose, which GPU delegates do not take, so the exporter writes it in a rank-4 form (two
transposes, ``export/shuffle_forms.py``); the delegate computes channels-last, so layout transposes
come around it. The check counts the shuffles and requires every transpose to be rank 4.
"""

from __future__ import annotations

import collections
from pathlib import Path

from export.checks import Expectation, GraphReport, counted, grouped_check, unique_bytes, weight_check
from export.executorch.file import XNNPACK, PTEFile
from export.image_io import is_image_file
from export.mixed import FLOAT_CONVS

_CONVS = ("XNNConv2d", "XNNDepthwiseConv2d")
QINT8 = "xnn_datatype_qint8"
# What a --dynamic program computes outside the delegates: sizes, integer arithmetic on them and
# zero-copy views (the pixel shuffle's reshapes at a symbolic size); no pixel is computed there.
SHAPE_ONLY = {"aten::sym_size.int", "executorch_prim::et_view.default"} | {
    f"executorch_prim::{op}.Scalar" for op in ("mul", "add", "sub", "floordiv")
}


# An image file's pixel edges (export/image_io.py) on portable kernels: the uint8 <-> float casts,
# the rounding and the layout permute XNNPACK does not take with them.
IMAGE_EDGES = {
    "dim_order_ops::_to_dim_order_copy.out",
    "aten::_to_copy.out",
    "aten::round.out",
    "aten::permute_copy.out",
}


def check_executorch(path: Path, exp: Expectation, precision: str) -> GraphReport:
    pte = PTEFile.read(path)
    nodes = pte.xnnpack_nodes()
    report = GraphReport(dict(collections.Counter(kind.removeprefix("XNN") for kind, _ in nodes)))
    convs = [body for kind, body in nodes if kind in _CONVS]
    grouped = sum(1 for c in convs if c.get("groups", 1) > 1)
    grouped_check(report, grouped, report.ops.get("StaticSlice", 0), exp)
    # a fused ReLU is the node's output clamp at 0 (flatc leaves the default 0 out of the JSON)
    fused = collections.Counter(
        node["xnode_union_type"].removeprefix("XNN")
        for graph in pte.xnnpack_graphs
        for node in graph["xnodes"]
        if "output_min_max" in node and node["output_min_max"].get("output_min", 0) == 0
    )
    clamps = report.ops.get("Clamp", 0)
    image = is_image_file(pte.metadata())
    report.add(
        "fused_activations",
        clamps == int(image),
        f"ReLU fused as the output clamp of {counted(fused)}; {clamps} separate clamp nodes"
        + ("; declared: an image file's clamp to [0, 1] before rounding" if image else ""),
    )
    transposes = [body for kind, body in nodes if kind == "XNNStaticTranspose"]
    # each rank-4 pixel shuffle (export/shuffle_forms.py) swaps its row offset past H once
    shuffles = sum(1 for t in transposes if list(t["perm"]) == [0, 2, 1, 3])
    max_rank = max((t["num_dims"] for t in transposes), default=4)
    report.add(
        "pixel_shuffle",
        shuffles == exp.upsample_stages and max_rank <= 4,
        f"{shuffles} rank-4 pixel shuffles for {exp.upsample_stages} stage(s); {len(transposes)} transposes "
        f"in all (with the channels-first/last layout ones), max rank {max_rank}; "
        f"{report.ops.get('StaticReshape', 0)} reshapes",
    )
    float_convs = int(pte.metadata().get(FLOAT_CONVS, 0))
    weight_check(report, unique_bytes(pte.weight_blobs()), exp, precision, mixed=float_convs > 0)
    if precision == "int8":
        _integer_convs(report, pte, exp, float_convs)
    calls = collections.Counter(pte.kernel_calls())
    bookkeeping = collections.Counter({op: n for op, n in calls.items() if op in SHAPE_ONLY})
    edges = collections.Counter({op: n for op, n in calls.items() if op in IMAGE_EDGES}) if image else {}
    outside = calls - bookkeeping - collections.Counter(edges)
    others = [d for d in pte.delegate_ids() if d != XNNPACK]
    report.add(
        "xnnpack",
        not outside and not others and bool(pte.xnnpack_graphs),
        f"forward is {len(pte.xnnpack_graphs)} XNNPACK delegate(s); ops on portable kernels: "
        f"{counted(outside)}; shape bookkeeping of a --dynamic file: {counted(bookkeeping)}; "
        f"an image file's pixel conversions: {counted(edges)}; other "
        f"delegates: {', '.join(others) or 'none'}",
    )
    return report


def _integer_convs(report: GraphReport, pte: PTEFile, exp: Expectation, float_convs: int) -> None:
    """Every conv reads and writes int8 but the ``float_convs`` the file declares (activations kept
    float for its budget, ``export/pt2e_mixed.py``); the count comes from the delegate's own tensors."""
    integer = floating = 0
    for graph in pte.xnnpack_graphs:
        types = {}
        for value in graph["xvalues"]:
            body = value["xvalue_union"]
            tensor = body.get("tensor_value", body)
            types[tensor.get("id_out", 0)] = tensor.get("datatype")  # flatc leaves out a 0
        for node in graph["xnodes"]:
            if node["xnode_union_type"] not in _CONVS:
                continue
            conv = node["xnode_union"]
            ends = (types.get(conv.get("input1_id", 0)), types.get(conv.get("output_id", 0)))
            if ends == (QINT8, QINT8):
                integer += 1
            else:
                floating += 1
    report.add(
        "integer_convs",
        integer + floating == exp.convs and floating == float_convs,
        f"{integer} of {integer + floating} XNNPACK convs int8 in and out, {floating} float (expected "
        f"{exp.convs}, of them {float_convs} float as the file declares)",
    )
