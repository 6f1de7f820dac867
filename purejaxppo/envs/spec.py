"""What the learner knows about an environment: `EnvSpec` and its observation leaves.

An observation is one array or a flat dict of named arrays. Each array is a leaf with
a kind that decides how it reaches the network:

    "vector"  flattened to [n] float32; fed to the torso MLP (normalised when asked)
    "image"   kept as [H, W, C] (uint8 stays uint8 until the network input, where it
              is scaled by 1/255); encoded by a CNN, never normalised
    "mask"    the dict key "action_mask": a boolean legal-action mask [num_logits],
              read by the policy head only

A rank-3 leaf is an image unless `image_encoder="flatten"` (the old baselines' MLP on
flattened pixels); every other rank is a vector.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

MASK_KEY = "action_mask"
SINGLE_KEY = "observation"  # the name a single-array observation takes in a dict


class ObsLeaf(NamedTuple):
    """One observation array, per env (no batch axis)."""

    key: str | None  # dict key; None for a single-array observation
    shape: tuple[int, ...]  # as the learner stores it: [n] vectors, [H, W, C] images
    dtype: str  # as the learner stores it: "float32", "uint8" (images) or "bool" (mask)
    kind: str  # "vector", "image" or "mask"
    env_shape: tuple[int, ...] = ()  # the env's own shape of this leaf


class EnvSpec(NamedTuple):
    """Static facts about an environment that shape the learner."""

    obs_dim: int  # total size of the flattened observation (mask excluded)
    discrete: bool  # Discrete or MultiDiscrete actions
    action_dim: int  # actions (Discrete), sub-actions (MultiDiscrete) or vector size (Box)
    action_low: Any  # float32 [action_dim] bounds, None for discrete
    action_high: Any
    obs_shape: tuple[int, ...] = ()  # the env's own shape of a single-array observation
    obs_leaves: tuple[ObsLeaf, ...] = ()  # () means one float32 vector of obs_dim
    action_nvec: tuple[int, ...] | None = None  # MultiDiscrete: choices per sub-action

    @property
    def leaves(self) -> tuple[ObsLeaf, ...]:
        if self.obs_leaves:
            return self.obs_leaves
        return (ObsLeaf(None, (self.obs_dim,), "float32", "vector", tuple(self.obs_shape)),)

    @property
    def dict_obs(self) -> bool:
        """Whether observations are a dict of named arrays."""
        return self.leaves[0].key is not None

    @property
    def obs_keys(self) -> tuple[str, ...]:
        """The dict keys (mask included); () for a single-array observation."""
        return tuple(leaf.key for leaf in self.leaves) if self.dict_obs else ()

    @property
    def has_mask(self) -> bool:
        return any(leaf.kind == "mask" for leaf in self.leaves)

    @property
    def multi_discrete(self) -> bool:
        return self.action_nvec is not None

    @property
    def logits_shape(self) -> tuple[int, ...]:
        """Policy head output per env: [n] (Discrete), [K, max n] (MultiDiscrete, padded
        sub-actions masked), [D] (Box)."""
        if self.action_nvec is not None:
            return (len(self.action_nvec), max(self.action_nvec))
        return (self.action_dim,)

    @property
    def num_logits(self) -> int:
        """Legal-action mask size: n (Discrete) or sum(nvec) (MultiDiscrete)."""
        if self.action_nvec is not None:
            return int(sum(self.action_nvec))
        return self.action_dim

    def leaf(self, key: str | None) -> ObsLeaf:
        return next(leaf for leaf in self.leaves if leaf.key == key)


def classify_leaf(
    key: str | None, shape: tuple[int, ...], dtype: Any, image_encoder: str
) -> ObsLeaf:
    """The ObsLeaf of an env array of per-env `shape` and `dtype`."""
    shape = tuple(int(d) for d in shape)
    if key == MASK_KEY:
        return ObsLeaf(key, (math.prod(shape),), "bool", "mask", shape)
    if len(shape) == 3 and image_encoder == "cnn":
        stored = "uint8" if np.dtype(dtype) == np.uint8 else "float32"
        return ObsLeaf(key, shape, stored, "image", shape)
    return ObsLeaf(key, (math.prod(shape),), "float32", "vector", shape)


def obs_leaves(obs_shapes: Any, image_encoder: str, what: str) -> tuple[ObsLeaf, ...]:
    """Leaves of an observation given as a ShapeDtypeStruct (or array) or a flat dict of
    them; raises ValueError for nested or non-array observations."""
    if isinstance(obs_shapes, dict):
        leaves = []
        for key in sorted(obs_shapes):
            value = obs_shapes[key]
            if not hasattr(value, "shape") or not isinstance(key, str):
                raise ValueError(
                    f"{what}: observation key {key!r} holds {type(value).__name__}; dict "
                    "observations must map string keys to arrays (no nesting)"
                )
            leaves.append(classify_leaf(key, value.shape, value.dtype, image_encoder))
        if not leaves or all(leaf.kind == "mask" for leaf in leaves):
            raise ValueError(f"{what}: the observation dict has no input besides {MASK_KEY!r}")
        return tuple(leaves)
    if not hasattr(obs_shapes, "shape"):
        raise ValueError(
            f"{what}: observations of type {type(obs_shapes).__name__} are not supported "
            "(one array or a flat dict of named arrays)"
        )
    return (classify_leaf(None, obs_shapes.shape, obs_shapes.dtype, image_encoder),)


def input_keys(spec: EnvSpec, selection: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The dict keys an encoder reads for `Config.policy_obs_key`/`value_obs_key`
    (None: every key but the mask); None for a single-array observation."""
    if not spec.dict_obs:
        return None
    if selection is None:
        return tuple(leaf.key for leaf in spec.leaves if leaf.kind != "mask")
    return (selection,) if isinstance(selection, str) else tuple(selection)


def empty_masks(spec: EnvSpec, mask: Any) -> Any:
    """Per row of a batch of masks [..., num_logits]: True where some (sub-)action has
    no legal choice, which no policy can act on."""
    import jax.numpy as jnp  # keeps this module importable without jax

    if spec.action_nvec is None:
        return ~jnp.any(mask, axis=-1)
    bounds = np.cumsum((0, *spec.action_nvec))
    parts = [jnp.any(mask[..., a:b], axis=-1) for a, b in itertools.pairwise(bounds)]
    return ~jnp.all(jnp.stack(parts, axis=-1), axis=-1)
