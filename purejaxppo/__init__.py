"""purejaxppo: end-to-end compiled PPO in JAX."""

from purejaxppo.advantages import compute_gae, explained_variance
from purejaxppo.config import Config
from purejaxppo.distributions import Categorical, DiagGaussian
from purejaxppo.networks import ActorCritic
from purejaxppo.runner import train_chunked as train_chunked
from purejaxppo.train import METRIC_NAMES, init, run_updates, train, update
from purejaxppo.types import TrainOutput, TrainState, Transition

__all__ = [
    "METRIC_NAMES",
    "ActorCritic",
    "Categorical",
    "Config",
    "DiagGaussian",
    "TrainOutput",
    "TrainState",
    "Transition",
    "compute_gae",
    "explained_variance",
    "init",
    "run_updates",
    "train",
    "update",
]

__version__ = "0.1.0"
