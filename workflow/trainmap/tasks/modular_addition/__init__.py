"""modular_addition: (a + b) mod p with a one-layer transformer."""
