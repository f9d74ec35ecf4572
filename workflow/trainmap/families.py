"""Which tensors of a model family's weights the metrics read (METHOD.md section 2).

Functions here work on a plain ``name -> tensor`` mapping (a ``state_dict()``, a
``named_parameters()`` dict, or the tensors of a checkpoint file), so that a model trained
in-process and the same weights read back from disk give the same metrics.
"""

import re
from collections.abc import Mapping

import torch

from trainmap.metrics import WeightGroups

# One BERT encoder layer's matrices (METHOD.md: query, key, value, attention-output,
# intermediate and output); names as in transformers' BertModel, with any prefix
# ("bert." in BertForMaskedLM). "output.dense" right after the layer index is the layer's
# output projection; "attention.output.dense" is the attention output.
BERT_MATRIX = re.compile(
    r"(?:^|\.)encoder\.layer\.(\d+)\."
    r"(attention\.self\.(?:query|key|value)|attention\.output\.dense|intermediate\.dense"
    r"|output\.dense)\.weight$"
)
BERT_BIAS = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.(intermediate\.dense|output\.dense)\.bias$")


def _layer_sorted(tensors: Mapping[str, torch.Tensor], pattern: re.Pattern) -> list:
    """The tensors whose names match, in (layer, name) order (a stable, documented order)."""
    found = []
    for name, tensor in tensors.items():
        match = pattern.search(name)
        if match:
            found.append((int(match.group(1)), match.group(2), tensor))
    return [tensor for _, _, tensor in sorted(found, key=lambda item: item[:2])]


def bert_encoder_groups(tensors: Mapping[str, torch.Tensor]) -> WeightGroups:
    """BERT-style encoder: per layer the whole query, key, value, attention-output,
    intermediate and output matrices; biases = the intermediate and output biases.
    Embeddings, pooler, MLM head and LayerNorms are excluded.
    """
    matrices = _layer_sorted(tensors, BERT_MATRIX)
    if not matrices:
        raise ValueError("no BERT encoder matrices (encoder.layer.<i>....weight) found")
    return WeightGroups(
        matrices=matrices, weights=matrices, biases=_layer_sorted(tensors, BERT_BIAS)
    )
