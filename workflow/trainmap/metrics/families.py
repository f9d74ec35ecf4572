"""Which tensors of a model family's weights the metrics read (METHOD.md section 2).

Functions here work on a plain ``name -> tensor`` mapping (a ``state_dict()``, a
``named_parameters()`` dict, or the tensors of a checkpoint file), so that a model trained
in-process and the same weights read back from disk give the same metrics.

The registry ``FAMILIES`` maps a family name to its rule ``groups(tensors, config)``;
``config`` is the checkpoint's config.json. The transformer families follow METHOD.md's BERT rule,
read the same way for decoders: per layer the whole query, key, value, attention-output,
MLP-in ("intermediate") and MLP-out ("output") matrices, each as (out, in); biases = the
two MLP biases; embeddings, position embeddings, LayerNorms, attention biases and output
heads are excluded. Fused projections are split into whole Q, K and V matrices (not per
head, as for BERT).

- ``bert``: ``encoder.layer.<i>.attention.self.{query,key,value}``,
  ``attention.output.dense``, ``intermediate.dense``, ``output.dense``.
- ``gpt2``: ``h.<i>.attn.c_attn`` split in thirds along its output (Q, K, V),
  ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``. GPT-2's Conv1D stores (in, out): the
  matrices are transposed views (no metric changes under transposition).
- ``gpt_neox``: ``layers.<i>.attention.query_key_value`` whose output is laid out per head
  as (heads, [q, k, v], head_size) (transformers' GPTNeoXAttention), regrouped into
  whole Q, K, V (needs ``num_attention_heads`` from config.json), ``attention.dense``,
  ``mlp.dense_h_to_4h``, ``mlp.dense_4h_to_h``.

Task families (every registered task: its own model's ``weight_groups()``) need the task
registry, which imports this module (BERT's model uses the bert rule): they are added by
the caller, ``trainmap.checkpoints.read.family_rule``.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from trainmap.metrics.weights import WeightGroups

Tensors = Mapping[str, torch.Tensor]
GroupRule = Callable[[Tensors, Mapping[str, Any]], WeightGroups]

# Per layer, in METHOD.md's order: query, key, value, attention output, MLP in
# ("intermediate"), MLP out ("output"). Names as in transformers' models, with any prefix
# ("bert." in BertForMaskedLM, "transformer." in GPT2LMHeadModel, ...).
BERT_ROLES = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",  # the attention output
    "intermediate.dense",
    "output.dense",  # right after the layer index: the layer's output projection
)
GPT2_ROLES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
NEOX_ROLES = (
    "attention.query_key_value",
    "attention.dense",
    "mlp.dense_h_to_4h",
    "mlp.dense_4h_to_h",
)


def _pattern(layers: str, roles: tuple[str, ...], kind: str) -> re.Pattern:
    """``<layers>.<i>.<role>.<kind>`` anywhere after a prefix; group 1 = i, group 2 = role."""
    alternatives = "|".join(re.escape(role) for role in roles)
    return re.compile(rf"(?:^|\.){re.escape(layers)}\.(\d+)\.({alternatives})\.{kind}$")


BERT_MATRIX = _pattern("encoder.layer", BERT_ROLES, "weight")
BERT_BIAS = _pattern("encoder.layer", BERT_ROLES[-2:], "bias")
GPT2_MATRIX = _pattern("h", GPT2_ROLES, "weight")
GPT2_BIAS = _pattern("h", GPT2_ROLES[-2:], "bias")
NEOX_MATRIX = _pattern("layers", NEOX_ROLES, "weight")
NEOX_BIAS = _pattern("layers", NEOX_ROLES[-2:], "bias")


def _named_layers(
    tensors: Tensors, pattern: re.Pattern, roles: tuple[str, ...]
) -> list[tuple[str, torch.Tensor]]:
    """(role, tensor) of the names that match, in (layer, position in ``roles``) order."""
    found = []
    for name, tensor in tensors.items():
        match = pattern.search(name)
        if match:
            found.append((int(match.group(1)), roles.index(match.group(2)), match.group(2), tensor))
    return [(role, tensor) for _, _, role, tensor in sorted(found, key=lambda item: item[:2])]


def _layer_sorted(
    tensors: Tensors, pattern: re.Pattern, roles: tuple[str, ...]
) -> list[torch.Tensor]:
    return [tensor for _, tensor in _named_layers(tensors, pattern, roles)]


def _groups(matrices: list[torch.Tensor], biases: list[torch.Tensor], what: str) -> WeightGroups:
    if not matrices:
        raise ValueError(f"no {what} found")
    return WeightGroups(matrices=matrices, weights=matrices, biases=biases)


def bert_encoder_groups(tensors: Tensors) -> WeightGroups:
    """BERT-style encoder: per layer the whole query, key, value, attention-output,
    intermediate and output matrices; biases = the intermediate and output biases.
    Embeddings, pooler, MLM head and LayerNorms are excluded.
    """
    matrices = _layer_sorted(tensors, BERT_MATRIX, BERT_ROLES)
    if not matrices:
        raise ValueError("no BERT encoder matrices (encoder.layer.<i>....weight) found")
    return WeightGroups(
        matrices=matrices, weights=matrices, biases=_layer_sorted(tensors, BERT_BIAS, BERT_ROLES)
    )


def gpt2_groups(tensors: Tensors) -> WeightGroups:
    """GPT-2 decoder: per block Q, K, V (thirds of c_attn), attention c_proj, MLP c_fc and
    c_proj, each transposed to (out, in); biases = the MLP biases (c_fc, c_proj)."""
    matrices = []
    for role, weight in _named_layers(tensors, GPT2_MATRIX, GPT2_ROLES):
        if role == "attn.c_attn":  # (d, 3d): columns [Q | K | V]
            matrices += [part.T for part in weight.chunk(3, dim=1)]
        else:
            matrices.append(weight.T)
    biases = _layer_sorted(tensors, GPT2_BIAS, GPT2_ROLES)
    return _groups(matrices, biases, "GPT-2 block matrices (h.<i>.attn.c_attn.weight, ...)")


def gpt_neox_groups(tensors: Tensors, n_heads: int) -> WeightGroups:
    """GPT-NeoX decoder: per layer whole Q, K, V regrouped from query_key_value, the
    attention dense, MLP dense_h_to_4h and dense_4h_to_h; biases = the two MLP biases."""
    matrices = []
    for role, weight in _named_layers(tensors, NEOX_MATRIX, NEOX_ROLES):
        if role == "attention.query_key_value":  # rows: (heads, [q, k, v], head_size)
            d_in = weight.shape[1]
            per_head = weight.reshape(n_heads, 3, -1, d_in)
            matrices += [per_head[:, i].reshape(-1, d_in) for i in range(3)]
        else:
            matrices.append(weight)
    biases = _layer_sorted(tensors, NEOX_BIAS, NEOX_ROLES)
    return _groups(matrices, biases, "GPT-NeoX layer matrices (layers.<i>.attention...., ...)")


def _neox_rule(tensors: Tensors, config: Mapping[str, Any]) -> WeightGroups:
    n_heads = config.get("num_attention_heads")
    if not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(
            "gpt_neox needs num_attention_heads (config.json) to split query_key_value; "
            f"got {n_heads!r}"
        )
    return gpt_neox_groups(tensors, n_heads)


# Family name -> its rule. Task families (a built-in task's own model) are looked up by
# the caller, which knows the task registry (``trainmap.checkpoints.read.family_rule``).
FAMILIES: dict[str, GroupRule] = {
    "bert": lambda tensors, _config: bert_encoder_groups(tensors),
    "gpt2": lambda tensors, _config: gpt2_groups(tensors),
    "gpt_neox": _neox_rule,
}
