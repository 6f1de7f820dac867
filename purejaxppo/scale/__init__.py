"""Scaling out on JAX's own engine: collectives that are the identity without an
axis name (used by the core), mesh entry points (`train_many`, `train_sharded`) and
multi-host initialisation."""
