"""Observation normalisation, per key: running statistics for vector leaves only.

The statistics mirror the observation: one `RunningStats` for a single-vector
observation (as it always was), a dict of them keyed like a dict observation (its
vector keys only), and an empty dict when nothing is normalised (a single image).
Image leaves are scaled by the encoder, never normalised; the mask passes through.
"""

from __future__ import annotations

from typing import Any

import jax

from purejaxppo.config import Config
from purejaxppo.core import normalize as norm
from purejaxppo.envs.spec import EnvSpec

ObsStats = norm.RunningStats | dict[str, norm.RunningStats]


def init_obs_stats(spec: EnvSpec) -> ObsStats:
    """Empty statistics for the vector leaves of `spec`'s observations."""
    if not spec.dict_obs:
        leaf = spec.leaves[0]
        return norm.init_stats(leaf.shape) if leaf.kind == "vector" else {}
    return {leaf.key: norm.init_stats(leaf.shape) for leaf in spec.leaves if leaf.kind == "vector"}


def observe(config: Config, obs_stats: ObsStats, obs: Any) -> Any:
    """The network input for raw observations: vector leaves normalised when
    normalize_obs (clipped to +-obs_clip), everything else unchanged. A dict may hold
    a subset of the keys (an exported policy is given only the policy's)."""
    if not config.normalize_obs:
        return obs
    if isinstance(obs_stats, norm.RunningStats):
        return norm.normalize(obs_stats, obs, config.obs_clip)
    if not isinstance(obs, dict):
        return obs
    return {
        k: norm.normalize(obs_stats[k], v, config.obs_clip) if k in obs_stats else v
        for k, v in obs.items()
    }


def stats_inputs(obs_stats: ObsStats, obs: Any) -> Any:
    """The part of `obs` the statistics summarise (a rollout keeps only that)."""
    if isinstance(obs_stats, norm.RunningStats):
        return obs
    return {k: obs[k] for k in obs_stats}


def update_obs_stats(obs_stats: ObsStats, raw: Any, axis_name: str | None = None) -> ObsStats:
    """Fold a batch of raw observations ([..., *leaf shape], as `stats_inputs` gives)
    into the statistics, merged across `axis_name` when data-parallel."""
    if isinstance(obs_stats, norm.RunningStats):
        return norm.update(obs_stats, raw, axis_name)
    return {k: norm.update(s, raw[k], axis_name) for k, s in obs_stats.items()}


def obs_rows(obs: Any) -> int:
    """The leading (batch) size of an observation pytree."""
    return jax.tree.leaves(obs)[0].shape[0]
