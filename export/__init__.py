"""File formats (one package each: exporter, int8 path, graph checks, file reader, runner) and what
they share: the interface and its table, the pipeline, parity and the head builders."""
