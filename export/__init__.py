"""Exporters to ONNX, Core ML and TFLite, graph checks and parity (see issue 4); empty until they land."""
