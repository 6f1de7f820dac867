"""The pure, jittable core: env rows and rollouts, GAE, losses, the learner
(optimizer, minibatch and epoch scans, schedules) and `train` itself.

Nothing here imports `acting`, `runner`, `io` or the CLI, and nothing here loads a
host library (tqdm, orbax, tensorboardX, wandb)."""
