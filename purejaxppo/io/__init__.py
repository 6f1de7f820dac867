"""Host I/O: orbax checkpoints, log writers (CSV/JSONL, TensorBoard, W&B), plots
and the persistent compilation cache."""
