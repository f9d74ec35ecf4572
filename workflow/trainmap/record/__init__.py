"""Record the weight metrics of your own training (README "Map your own training").

``Recorder`` works in any PyTorch loop; ``HFCallback`` (transformers' Trainer) and
``LightningCallback`` (Lightning) are imported on first use, so that ``Recorder`` needs
neither library (``pip install trainmap`` brings neither; the extras ``hf`` and
``lightning`` do).
"""

import importlib

from trainmap.errors import RecordError
from trainmap.record.recorder import Recorder

__all__ = ["HFCallback", "LightningCallback", "RecordError", "Recorder"]

# name -> (module, the libraries it imports, the extra that installs them)
CALLBACKS = {
    "HFCallback": ("trainmap.record.huggingface", ("transformers", "accelerate"), "hf"),
    "LightningCallback": ("trainmap.record.lightning_callback", ("lightning",), "lightning"),
}


def __getattr__(name: str):
    # The callbacks subclass their framework's callback class: importing them imports
    # transformers or lightning, which a plain loop does not need.
    if name not in CALLBACKS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, libraries, extra = CALLBACKS[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in libraries:
            raise
        raise ModuleNotFoundError(
            f"trainmap.record.{name} needs {error.name}, which is not installed: "
            f"pip install 'trainmap[{extra}]' (or {error.name} itself)",
            name=error.name,
        ) from error
