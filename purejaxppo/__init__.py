"""purejaxppo: end-to-end compiled PPO in JAX."""

from purejaxppo import presets as presets
from purejaxppo.advantages import compute_gae, explained_variance
from purejaxppo.cache import enable_compile_cache
from purejaxppo.checkpoint import CheckpointError
from purejaxppo.config import Config
from purejaxppo.distributions import Categorical, DiagGaussian, TanhGaussian
from purejaxppo.export import Policy, load_policy, save_policy
from purejaxppo.networks import ActorCritic
from purejaxppo.normalize import RunningStats
from purejaxppo.policy import EvalResult, evaluate, make_policy
from purejaxppo.runner import ChunkReport, EvalHistory, FitResult, NonFiniteError, fit
from purejaxppo.train import METRIC_NAMES, init, run_updates, train, update
from purejaxppo.types import TrainOutput, TrainState, Transition

__all__ = [
    "METRIC_NAMES",
    "ActorCritic",
    "Categorical",
    "CheckpointError",
    "ChunkReport",
    "Config",
    "DiagGaussian",
    "EvalHistory",
    "EvalResult",
    "FitResult",
    "NonFiniteError",
    "Policy",
    "RunningStats",
    "TanhGaussian",
    "TrainOutput",
    "TrainState",
    "Transition",
    "compute_gae",
    "enable_compile_cache",
    "evaluate",
    "explained_variance",
    "fit",
    "init",
    "load_policy",
    "make_policy",
    "run_updates",
    "save_policy",
    "train",
    "update",
]

__version__ = "0.1.0"
