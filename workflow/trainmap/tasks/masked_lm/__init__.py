"""masked_lm: a BERT encoder trained from scratch with masked-token prediction."""
