"""The ``pcarn`` command line, on top of models, toolkit, export, benchmarks and the Python API.

One module per command (``add_parser`` declares its flags, ``run`` does the work), the flags they
share in ``pcarn.cli.flags``, and ``pcarn.cli.main`` that puts them together."""
