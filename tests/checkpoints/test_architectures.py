"""Checkpoint series of any transformers architecture through the generic rule (issue 32).

Tiny random models built locally from transformers' own config classes (nothing is
downloaded), saved with save_pretrained, read back layer by layer: each checkpoint's
metrics equal a float64 oracle of METHOD.md section 2's generic rule, written here from
parameter names (not from trainmap's rule), to TOLERANCES; the Recorder on the same live
model gives the same metrics.
"""

import re

import numpy as np
import pytest
import torch
import transformers
from oracle import numpy_metrics

from trainmap.checkpoints.stream import checkpoint_metrics
from trainmap.metrics.fast import out_of_tolerance
from trainmap.metrics.weights import compute_metrics
from trainmap.record.selection import select_weights

CPU = torch.device("cpu")
SIZES = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64,
         "max_position_embeddings": 32, "pad_token_id": 0, "bos_token_id": 1,
         "eos_token_id": 2}  # fmt: skip
ATTENTION = r"self_attn\.[qkvo]_proj\.weight"
SWIGLU = r"mlp\.(gate|up|down)_proj\.weight"
EXPERTS = 4


def _config(name: str, **extra) -> transformers.PretrainedConfig:
    return getattr(transformers, name)(**{**SIZES, **extra})


# architecture -> (config, model class, matrix name pattern, bias name pattern or None,
# matrices of the 2-layer model: the oracle's count, written out)
ARCHS = {
    "llama": (_config("LlamaConfig"), "LlamaForCausalLM", f"{ATTENTION}|{SWIGLU}", None, 14),
    "qwen2": (_config("Qwen2Config"), "Qwen2ForCausalLM", f"{ATTENTION}|{SWIGLU}",
              r"self_attn\.[qkv]_proj\.bias", 14),
    "mistral": (_config("MistralConfig"), "MistralForCausalLM", f"{ATTENTION}|{SWIGLU}", None, 14),
    "olmo2": (_config("Olmo2Config"), "Olmo2ForCausalLM", f"{ATTENTION}|{SWIGLU}", None, 14),
    "gemma": (_config("GemmaConfig", head_dim=4), "GemmaForCausalLM", f"{ATTENTION}|{SWIGLU}",
              None, 14),  # a tied LM head
    "phi3": (_config("Phi3Config"), "Phi3ForCausalLM",
             r"self_attn\.(o|qkv)_proj\.weight|mlp\.(gate_up|down)_proj\.weight", None, 14),
    "mixtral": (_config("MixtralConfig", num_local_experts=EXPERTS, num_experts_per_tok=2),
                "MixtralForCausalLM", rf"{ATTENTION}|mlp\.gate\.weight|mlp\.experts\.\w+_proj",
                None, 2 * (4 + 1 + 3 * EXPERTS)),
    "qwen2_moe": (_config("Qwen2MoeConfig", num_experts=EXPERTS, num_experts_per_tok=2,
                          moe_intermediate_size=8, shared_expert_intermediate_size=16),
                  "Qwen2MoeForCausalLM",
                  rf"{ATTENTION}|mlp\.gate\.weight|mlp\.experts\.\w+_proj|"
                  r"mlp\.shared_expert\.(gate|up|down)_proj\.weight|mlp\.shared_expert_gate\.weight",
                  r"self_attn\.[qkv]_proj\.bias", 2 * (4 + 1 + 3 * EXPERTS + 3 + 1)),
    "opt": (_config("OPTConfig", ffn_dim=32, word_embed_proj_dim=16), "OPTForCausalLM",
            r"self_attn\.(q|k|v|out)_proj\.weight|fc[12]\.weight",
            r"self_attn\.(q|k|v|out)_proj\.bias|fc[12]\.bias", 12),
    "t5": (transformers.T5Config(vocab_size=64, d_model=16, d_ff=32, d_kv=8, num_layers=2,
                                 num_heads=2, decoder_start_token_id=0),
           "T5ForConditionalGeneration",
           r"(SelfAttention|EncDecAttention)\.[qkvo]\.weight|DenseReluDense\.w[io]\.weight",
           None, 2 * 6 + 2 * 10),
}  # fmt: skip


def build(arch: str, seed: int = 0) -> torch.nn.Module:
    config, model_class, *_ = ARCHS[arch]
    with torch.random.fork_rng():  # transformers initialises from the global generator
        torch.manual_seed(seed)
        model = getattr(transformers, model_class)(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # trained weights: biases not zero, no two matrices alike
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def oracle_pieces(name: str, w: np.ndarray, config) -> list[np.ndarray]:
    """The matrices a parameter holds, by its name: fused projections split as transformers
    lays them out, 3-D experts one matrix per expert and projection."""
    if name.endswith("qkv_proj.weight"):
        head = config.hidden_size // config.num_attention_heads
        q, kv = config.num_attention_heads * head, config.num_key_value_heads * head
        return [w[:q], w[q : q + kv], w[q + kv :]]
    if name.endswith("gate_up_proj.weight"):
        return list(np.split(w, 2))
    if w.ndim == 3:  # experts (E, out, in); gate_up in concatenated halves
        halves = 2 if name.endswith("gate_up_proj") else 1
        return [part for expert in w for part in np.split(expert, halves)]
    return [w]


def oracle(arch: str, model: torch.nn.Module) -> tuple[dict[str, float], int]:
    """METHOD.md's generic rule for ``arch`` in float64 NumPy, and its matrix count."""
    config, _, matrix_pattern, bias_pattern, _ = ARCHS[arch]
    params = {n: p.detach().double().numpy() for n, p in model.named_parameters()}
    chosen = [n for n in params if re.search(rf"\.({matrix_pattern})$", n)]
    biases = [params[n] for n in params if bias_pattern and re.search(rf"\.({bias_pattern})$", n)]
    matrices = [m for n in chosen for m in oracle_pieces(n, params[n], config)]
    weights = [params[n] for n in chosen]
    return numpy_metrics(matrices, weights=weights, biases=biases), len(matrices)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("archs")
    models = {arch: build(arch) for arch in ARCHS}
    for arch, model in models.items():
        model.save_pretrained(root / arch)
    return root, models


@pytest.mark.parametrize("arch", list(ARCHS))
def test_each_architecture_matches_the_generic_rules_oracle(saved, arch):
    root, models = saved
    want, count = oracle(arch, models[arch])
    assert count == ARCHS[arch][4]
    report = {}
    got = checkpoint_metrics(root / arch, None, {}, CPU, report=report)
    assert not out_of_tolerance(got, want)
    assert report["matrices"] == count
    record = report["selection"].record()
    assert record["family"] == "generic" and record["model_type"] == ARCHS[arch][0].model_type
    assert not any("embed" in n or "lm_head" in n or "norm" in n for n in record["weights"])
    assert record["bias_free"] == (ARCHS[arch][3] is None)
    if record["bias_free"]:
        assert all(np.isnan(got[c]) for c in ("mean_b", "median_b", "var_b"))
    # the Recorder on the live model: the same rule and the same metrics
    selection = select_weights(models[arch])
    assert selection.family == "generic"
    recorded = compute_metrics(selection.groups(models[arch]))
    assert not out_of_tolerance(recorded, got)


def test_an_untied_lm_head_is_left_out_by_every_path(saved):
    """METHOD.md: 14 matrices for a 2-layer Llama, its untied lm_head not among them."""
    root, models = saved
    llama = models["llama"]
    assert llama.lm_head.weight is not llama.model.embed_tokens.weight
    names = select_weights(llama).names
    assert len(names["matrices"]) == 14 and "lm_head.weight" not in names["matrices"]
    report = {}
    checkpoint_metrics(root / "llama", None, {}, CPU, report=report)
    assert report["matrices"] == 14


def test_experts_saved_one_linear_each_count_as_the_models_3d_experts(saved):
    """transformers saves Mixtral's experts per expert (w1, w2, w3) where the model holds
    3-D gate_up_proj / down_proj: both give one matrix per expert and projection."""
    root, models = saved
    report = {}
    checkpoint_metrics(root / "mixtral", None, {}, CPU, report=report)
    read = report["selection"].record()["matrices"]
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in read
    assert (
        "model.layers.0.mlp.experts.gate_up_proj"
        in select_weights(models["mixtral"]).names["matrices"]
    )
