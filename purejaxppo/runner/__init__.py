"""The host runner: `fit` runs the pure update in jitted chunks and, between them,
calls hooks (logging, evaluation, checkpoints, the non-finite guard, callbacks)."""
