"""Which tensors of a model family's weights the metrics read (METHOD.md section 2).

A family's rule is decided from tensor names and shapes alone (``family_entries``: a list of
``trainmap.metrics.generic.Entry``), so that a model trained in-process (its
``named_parameters()``) and the same weights read back from disk, whole or one layer at a
time, give the same metrics.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from trainmap.metrics.generic import Entry, groups_of
from trainmap.metrics.groups import WeightGroups

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


Shapes = Mapping[str, Sequence[int]]


def _named_layers(names, pattern: re.Pattern, roles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(role, name) of the names that match, in (layer, position in ``roles``) order."""
    found = []
    for name in names:
        match = pattern.search(name)
        if match:
            found.append((int(match.group(1)), roles.index(match.group(2)), match.group(2), name))
    return [(role, name) for _, _, role, name in sorted(found, key=lambda item: item[:2])]


def _neox_heads(config: Mapping[str, Any]) -> int:
    n_heads = config.get("num_attention_heads")
    if not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(
            "gpt_neox needs num_attention_heads (config.json) to split query_key_value; "
            f"got {n_heads!r}"
        )
    return n_heads


def _matrix_entry(family: str, role: str, name: str, shape: Sequence[int], config) -> Entry:
    if family == "gpt2":  # Conv1D stores (in, out); c_attn's columns are [Q | K | V]
        if role == "attn.c_attn":
            return Entry(name, "fused", (shape[1] // 3,) * 3, transposed=True)
        return Entry(name, "linear", transposed=True)
    if family == "gpt_neox" and role == "attention.query_key_value":
        return Entry(name, "heads", (_neox_heads(config),))
    return Entry(name, "linear")


# family -> (matrix pattern, bias pattern, roles, what a missing match means)
RULES = {
    "bert": (BERT_MATRIX, BERT_BIAS, BERT_ROLES,
             "BERT encoder matrices (encoder.layer.<i>....weight)"),
    "gpt2": (GPT2_MATRIX, GPT2_BIAS, GPT2_ROLES,
             "GPT-2 block matrices (h.<i>.attn.c_attn.weight, ...)"),
    "gpt_neox": (NEOX_MATRIX, NEOX_BIAS, NEOX_ROLES,
                 "GPT-NeoX layer matrices (layers.<i>.attention...., ...)"),
}  # fmt: skip


def family_entries(family: str, shapes: Shapes, config: Mapping[str, Any]) -> list[Entry]:
    """What ``family``'s rule reads of the tensors named in ``shapes``, layer by layer:
    per layer its matrices in METHOD.md's role order, then its biases (the MLP's two).
    Raises ValueError where nothing fits the family."""
    matrix_pattern, bias_pattern, roles, what = RULES[family]
    matrices = _named_layers(shapes, matrix_pattern, roles)
    if not matrices:
        raise ValueError(f"no {what} found")
    biases = _named_layers(shapes, bias_pattern, roles)
    entries = [_matrix_entry(family, role, name, shapes[name], config) for role, name in matrices]
    entries += [Entry(name, "bias") for _, name in biases]
    layer = {e.name: int((matrix_pattern.search(e.name) or bias_pattern.search(e.name))[1])
             for e in entries}  # fmt: skip
    return sorted(entries, key=lambda e: layer[e.name])  # stable: roles kept within a layer


def _rule(family: str) -> GroupRule:
    def groups(tensors: Tensors, config: Mapping[str, Any]) -> WeightGroups:
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        return groups_of(family_entries(family, shapes, config), tensors)

    return groups


def bert_encoder_groups(tensors: Tensors) -> WeightGroups:
    """BERT-style encoder: per layer the whole query, key, value, attention-output,
    intermediate and output matrices; biases = the intermediate and output biases.
    Embeddings, pooler, MLM head and LayerNorms are excluded.
    """
    return _rule("bert")(tensors, {})


def gpt2_groups(tensors: Tensors) -> WeightGroups:
    """GPT-2 decoder: per block Q, K, V (thirds of c_attn), attention c_proj, MLP c_fc and
    c_proj, each transposed to (out, in); biases = the MLP biases (c_fc, c_proj)."""
    return _rule("gpt2")(tensors, {})


def gpt_neox_groups(tensors: Tensors, n_heads: int) -> WeightGroups:
    """GPT-NeoX decoder: per layer whole Q, K, V regrouped from query_key_value, the
    attention dense, MLP dense_h_to_4h and dense_4h_to_h; biases = the two MLP biases."""
    return _rule("gpt_neox")(tensors, {"num_attention_heads": n_heads})


# Family name -> its rule. Task families (a built-in task's own model) are looked up by
# the caller, which knows the task registry (``trainmap.checkpoints.read.family_rule``).
FAMILIES: dict[str, GroupRule] = {family: _rule(family) for family in RULES}
