"""``python -m pcarn``: the ``pcarn`` command (``torchrun -m pcarn train ...`` too)."""

import sys

from pcarn.cli.main import main

sys.exit(main())
