"""Networks, action distributions and initialisers (pure flax/JAX; no host code)."""
