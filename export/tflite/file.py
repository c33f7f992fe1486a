"""One reader for ``.tflite`` files: the flatbuffer object tree, its raw bytes, ops by name, buffers
(inline or appended after the flatbuffer, where the converter puts large constants) and our metadata.

The graph checks, the metadata writer, the per-op profiler and the lowering benchmark all read files
through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.optional import require

METADATA_NAME = "pcarn_toolkit"


@dataclass
class TFLiteFile:
    schema: object  # ai_edge_litert.schema_py_generated
    model: object  # its ModelT
    data: bytes

    @classmethod
    def read(cls, source: Path | bytes) -> TFLiteFile:
        schema = require("ai_edge_litert.schema_py_generated")
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        return cls(schema, schema.ModelT.InitFromPackedBuf(bytearray(data), 0), data)

    @property
    def subgraph(self):
        return self.model.subgraphs[0]

    def ops(self) -> list[tuple[str, object]]:
        """``(builtin name, operator)`` in graph order."""
        names = {v: k for k, v in vars(self.schema.BuiltinOperator).items() if not k.startswith("_")}
        out = []
        for op in self.subgraph.operators:
            code = self.model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, getattr(code, "deprecatedBuiltinCode", 0))
            out.append((names.get(builtin, str(builtin)), op))
        return out

    def buffer_bytes(self, buffer) -> np.ndarray | None:
        """A buffer's bytes, inline or at its offset after the flatbuffer; None when empty."""
        if buffer.data is not None and len(buffer.data):
            return np.asarray(buffer.data, dtype=np.uint8)
        if getattr(buffer, "offset", 0) > 1:
            return np.frombuffer(self.data[buffer.offset : buffer.offset + buffer.size], np.uint8)
        return None

    def constant_buffers(self) -> list[np.ndarray]:
        """Every non-empty buffer except the metadata ones: the weights the file stores."""
        metadata = {m.buffer for m in (self.model.metadata or [])}
        buffers = (self.buffer_bytes(b) for i, b in enumerate(self.model.buffers) if i not in metadata)
        return [b for b in buffers if b is not None]

    def metadata(self) -> dict:
        for entry in self.model.metadata or []:
            name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            if name == METADATA_NAME:
                return json.loads(bytes(self.model.buffers[entry.buffer].data).decode())
        return {}

    def constant(self, index: int) -> np.ndarray | None:
        """The values of constant tensor ``index`` (int32 or float32), or None."""
        tensor = self.subgraph.tensors[index]
        raw = self.buffer_bytes(self.model.buffers[tensor.buffer])
        if raw is None:
            return None
        dtype = {self.schema.TensorType.INT32: np.int32, self.schema.TensorType.FLOAT32: np.float32}
        return None if tensor.type not in dtype else raw.view(dtype[tensor.type]).copy()

    def pack(self) -> bytes:
        """The object tree serialized again, constants stored after the flatbuffer moved inline so
        no offset into the old bytes is left dangling."""
        for buf in self.model.buffers:
            raw = self.buffer_bytes(buf)
            if raw is not None and getattr(buf, "offset", 0) > 1:
                buf.data, buf.offset, buf.size = raw, 0, 0
        builder = require("flatbuffers").Builder(1024)
        builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def with_metadata(self, metadata: dict) -> bytes:
        """The file with ``metadata`` as a named entry of its metadata table (TFLite's native slot)."""
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
        self.model.buffers.append(buffer)
        entry = self.schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(self.model.buffers) - 1
        self.model.metadata = [*(self.model.metadata or []), entry]
        return self.pack()
