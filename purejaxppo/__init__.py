"""purejaxppo: end-to-end compiled PPO in JAX."""

from purejaxppo import presets as presets
from purejaxppo.advantages import compute_gae, explained_variance
from purejaxppo.config import Config
from purejaxppo.distributions import Categorical, DiagGaussian, TanhGaussian
from purejaxppo.networks import ActorCritic
from purejaxppo.normalize import RunningStats
from purejaxppo.policy import EvalResult, evaluate, make_policy
from purejaxppo.runner import train_chunked as train_chunked
from purejaxppo.train import METRIC_NAMES, init, run_updates, train, update
from purejaxppo.types import TrainOutput, TrainState, Transition

__all__ = [
    "METRIC_NAMES",
    "ActorCritic",
    "Categorical",
    "Config",
    "DiagGaussian",
    "EvalResult",
    "RunningStats",
    "TanhGaussian",
    "TrainOutput",
    "TrainState",
    "Transition",
    "compute_gae",
    "evaluate",
    "explained_variance",
    "init",
    "make_policy",
    "run_updates",
    "train",
    "update",
]

__version__ = "0.1.0"
