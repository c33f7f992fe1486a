"""Reading an ExecuTorch ``.pte`` back: its methods, what runs outside a delegate, the XNNPACK
graphs inside it, its weights and the metadata the exporter stored in it.

The graph checks read the file, never the exporter's view of it. A ``.pte`` is a flatbuffer
``Program`` (ExecuTorch's own deserializer reads it); each XNNPACK delegate blob is an ``XNNGraph``
flatbuffer that ``flatc`` (shipped inside the executorch wheel) turns into JSON with the schema the
wheel also ships. Weights live in the program's named data, keyed by their sha256, so a weight used
by several convs (PCARN-M's tied units) is stored once.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from export.optional import require

FORWARD = "forward"
METADATA = "metadata"  # a constant method returning the metadata JSON as a uint8 tensor
XNNPACK = "XnnpackBackend"


@dataclass
class PTEFile:
    """One deserialized ``.pte``."""

    path: Path
    file: object  # executorch.exir._serialize._program.PTEFile

    @classmethod
    def read(cls, path: str | Path) -> PTEFile:
        """The file deserialized once per version of it: opening a file as a model or a bench case
        asks for its metadata and its input shape, each of which would parse the whole program."""
        stat = Path(path).stat()
        return _read(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)

    @property
    def program(self):
        return self.file.program

    def plan(self, name: str = FORWARD):
        for plan in self.program.execution_plan:
            if plan.name == name:
                return plan
        raise KeyError(f"{self.path} has no method {name!r}")

    def method_names(self) -> list[str]:
        return [plan.name for plan in self.program.execution_plan]

    def input_shape(self) -> list[int]:
        plan = self.plan()
        return [int(d) for d in plan.values[plan.inputs[0]].val.sizes]

    def metadata(self) -> dict:
        """The JSON the exporter stored as the ``metadata`` constant method ({} if none)."""
        if METADATA not in self.method_names():
            return {}
        plan = self.plan(METADATA)
        tensor = plan.values[plan.outputs[0]].val
        data = self.program.constant_buffer[tensor.data_buffer_idx].storage
        return json.loads(bytes(data[: tensor.sizes[0]]).decode())

    def kernel_calls(self) -> list[str]:
        """Operators of ``forward`` that run outside any delegate (ExecuTorch's portable kernels)."""
        plan = self.plan()
        names = [op.name + (f".{op.overload}" if op.overload else "") for op in plan.operators]
        calls = []
        for chain in plan.chains:
            for instruction in chain.instructions:
                args = instruction.instr_args
                if type(args).__name__ == "KernelCall":
                    calls.append(names[args.op_index])
        return calls

    def delegate_ids(self) -> list[str]:
        return [d.id for d in self.plan().delegates]

    @cached_property
    def xnnpack_graphs(self) -> list[dict]:
        """Every XNNPACK delegate of ``forward`` as its XNNGraph (decoded JSON)."""
        return [
            _decode_xnngraph(self.program.backend_delegate_data[d.processed.index].data)
            for d in self.plan().delegates
            if d.id == XNNPACK
        ]

    def xnnpack_nodes(self) -> list[tuple[str, dict]]:
        return [(n["xnode_union_type"], n["xnode_union"]) for g in self.xnnpack_graphs for n in g["xnodes"]]

    def weight_blobs(self) -> list[bytes]:
        """The named data (the delegates' weights), each stored entry once."""
        named = self.file.named_data
        if named is None:
            return []
        return [bytes(named.buffers[entry.buffer_index]) for entry in named.pte_data.values()]


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int) -> PTEFile:
    program = require("executorch.exir._serialize._program")
    return PTEFile(Path(path), program.deserialize_pte_binary(Path(path).read_bytes()))


def _decode_xnngraph(blob: bytes) -> dict:
    serialize = require("executorch.backends.xnnpack.serialization.xnnpack_graph_serialize")
    flatbuffer = require("executorch.exir._serialize._flatbuffer")
    header = serialize.XNNHeader.from_bytes(blob[: serialize.XNNHeader.EXPECTED_LENGTH])
    graph = blob[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "schema.fbs").write_bytes(serialize._get_schema_bytes())
        (folder / "graph.bin").write_bytes(graph)
        command = [flatbuffer._get_flatc_path(), "--json", "--strict-json", "--raw-binary"]
        subprocess.run([*command, "-o", tmp, "schema.fbs", "--", "graph.bin"], cwd=tmp, check=True)
        text = (folder / "graph.json").read_text()
    # flatc writes unbounded clamp limits as bare inf, which JSON has no word for
    return json.loads(re.sub(r"(?<![\w\"])(-?inf|nan)(?![\w\"])", r'"\1"', text))
