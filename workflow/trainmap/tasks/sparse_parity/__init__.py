"""sparse_parity: the product of the first k of n random +/-1 bits, an MLP."""
