"""Record the weight metrics of your own training (README "Map your own training").

``Recorder`` works in any PyTorch loop; ``HFCallback`` (transformers' Trainer) and
``LightningCallback`` (Lightning) are imported on first use, so that ``Recorder`` needs
neither library.
"""

from trainmap.errors import RecordError
from trainmap.record.recorder import Recorder

__all__ = ["HFCallback", "LightningCallback", "RecordError", "Recorder"]


def __getattr__(name: str):
    # The callbacks subclass their framework's callback class: importing them imports
    # transformers or lightning, which a plain loop does not need.
    if name == "HFCallback":
        from trainmap.record.huggingface import HFCallback

        return HFCallback
    if name == "LightningCallback":
        from trainmap.record.lightning_callback import LightningCallback

        return LightningCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
