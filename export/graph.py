"""The graph a file holds, decided once from the export options and handed to every format: the
deploy head with its exit conv placement (``export/exit_at_lr.py``) and pixel-shuffle form
(``export/shuffle_forms.py``). A format lowers this graph; none rebuilds it from the options."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from export.common import DeployHead
from export.exit_at_lr import ExitAtLR
from export.options import CONV_TRANSPOSE, DEPTH_TO_SPACE
from export.shuffle_forms import ConvTransposeShuffleHead

GRAPH_OPTIONS = ("exit_at_lr", "shuffle")


@dataclass(frozen=True)
class GraphForm:
    exit_at_lr: bool = False
    shuffle: str = DEPTH_TO_SPACE

    @classmethod
    def of(cls, options: dict, takes: tuple[str, ...]) -> GraphForm:
        """The form the (already validated) export options ask of a format that takes ``takes``: the
        exit conv folded before the last shuffle unless asked otherwise, where the format takes it."""
        exit_at_lr = options.get("exit_at_lr")
        if exit_at_lr is None:
            exit_at_lr = "exit_at_lr" in takes
        return cls(bool(exit_at_lr), options.get("shuffle", DEPTH_TO_SPACE))

    def build(self, head: DeployHead) -> nn.Module:
        """The NCHW graph of ``head`` in this form; outputs equal the head's."""
        if self.shuffle == CONV_TRANSPOSE:
            return ConvTransposeShuffleHead(head, self.exit_at_lr).eval()
        return ExitAtLR(head).eval() if self.exit_at_lr else head.eval()

    def metadata(self) -> dict:
        """What a file records of its form (readers such as Core ML's sequence parity need it)."""
        out = {"exit_at_lr": "true"} if self.exit_at_lr else {}
        return {**out, **({"shuffle": self.shuffle} if self.shuffle != DEPTH_TO_SPACE else {})}
