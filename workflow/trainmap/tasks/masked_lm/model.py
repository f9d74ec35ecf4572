"""The masked LM's model: transformers' BertForMaskedLM built from a config, never
downloaded, with the two methods the training loop needs (as the
other tasks' models)."""

import torch
from transformers import BertConfig, BertForMaskedLM

from trainmap.metrics.families import bert_encoder_groups
from trainmap.metrics.weights import WeightGroups


def bert_config(
    vocab_size: int, max_length: int, layers: int, hidden: int, heads: int, intermediate: int
) -> BertConfig:
    """A BERT config; dropout is off because torch's dropout draws from the global
    generator, not from the run's own (a seed must fix the run)."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_length,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )


class MaskedLMBert(BertForMaskedLM):
    """BertForMaskedLM (state-dict names unchanged: ``bert.encoder.layer.0....``);
    ``model(input_ids)`` returns transformers' MaskedLMOutput (``.logits``)."""

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        """BERT's init drawn from ``gen``: N(0, initializer_range) matrices and
        embeddings (the [PAD] row zero), zero biases, unit/zero LayerNorms. The MLM
        decoder shares the word embeddings (tied), so it is drawn once."""
        std = self.config.initializer_range
        for name, param in self.named_parameters():  # tied parameters appear once
            if "LayerNorm" in name:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.normal_(0.0, std, generator=gen)
        self.bert.embeddings.word_embeddings.weight[self.config.pad_token_id].zero_()

    def weight_groups(self) -> WeightGroups:
        """Per layer the query, key, value, attention-output, intermediate and output
        matrices; biases = intermediate and output biases (trainmap.metrics.families)."""
        return bert_encoder_groups(dict(self.named_parameters()))
