"""Exported policies: a directory that acts without the environment or the trainer.

    save_policy("runs/cartpole", config, out.state)
    policy = load_policy("runs/cartpole", deterministic=True)
    action = policy(obs)                                  # or jax.jit(policy)(obs, key)

The directory holds `policy.json` (format version, the config's plain-data form, the
env facts the network and the action bounds need, the purejaxppo version) and
`policy.msgpack` (the network parameters and the observation statistics, written with
`flax.serialization`). Loading rebuilds only the network and the normaliser from the
saved env facts: no env state, spec or reset, and no training code runs. (Validating the
rebuilt Config still resolves its env id, as every Config does: for a Brax env that
builds the Brax system, without compiling anything.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from purejaxppo.acting.policy import policy_from_spec
from purejaxppo.config import Config
from purejaxppo.core.normalize import RunningStats
from purejaxppo.core.observations import ObsStats, init_obs_stats
from purejaxppo.core.types import TrainOutput, TrainState
from purejaxppo.envs import EnvSpec
from purejaxppo.envs.spec import ObsLeaf
from purejaxppo.nn.networks import init_params, make_network

FORMAT_VERSION = 1
POLICY_JSON = "policy.json"
POLICY_ARRAYS = "policy.msgpack"


@dataclasses.dataclass(frozen=True, eq=False)
class Policy:
    """A loaded policy: `policy(obs, key=None) -> action`, as `make_policy` acts.

    Pure and jittable (`jax.jit(policy)(obs, key)`); obs is one raw observation or a
    batch of them; `key` is needed unless deterministic.

    Recurrent (`policy.recurrent`): `policy(obs, carry, key=None) -> (action, carry)`,
    with `policy.initial_carry(batch_shape)` and `policy.reset(carry, done)`, as
    `purejaxppo.acting.policy.RecurrentAct`.
    """

    config: Config
    spec: EnvSpec
    params: Any = dataclasses.field(repr=False)
    obs_stats: ObsStats = dataclasses.field(repr=False)
    deterministic: bool = False
    _act: Callable[..., jax.Array] = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        act = policy_from_spec(
            self.config,
            self.spec,
            self.params,
            self.obs_stats,
            self.deterministic,
            name="load_policy",
        )
        object.__setattr__(self, "_act", act)
        object.__setattr__(self, "_other", {})  # predict's other mode, built on first use
        object.__setattr__(self, "_sample_key", jax.random.key(0))

    def __call__(self, obs: Any, *args: Any, **kwargs: Any) -> Any:
        """(obs, key=None) -> action; recurrent: (obs, carry, key=None) -> (action, carry)."""
        return self._act(obs, *args, **kwargs)

    @property
    def recurrent(self) -> bool:
        """Whether the policy keeps a carry between steps."""
        return self.config.recurrent is not None

    def initial_carry(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """Recurrent policies: the carry before an episode's first step (zeros)."""
        self._require_recurrent("initial_carry")
        return self._act.initial_carry(batch_shape)

    def reset(self, carry: Any, done: Any) -> Any:
        """Recurrent policies: `carry` back at the initial state where `done`."""
        self._require_recurrent("reset")
        return self._act.reset(carry, done)

    def predict(
        self,
        obs: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        key: jax.Array | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Stable-Baselines3's `predict`: (action, state) as host arrays for one raw
        observation or a batch. `deterministic` picks the mode or a sample whatever
        the policy was loaded with; a sample without `key` draws from the policy's own
        key, advanced at every such call. Recurrent policies take and return the
        carry as `state` (None: the initial one), reset where `episode_start` is True;
        feed-forward ones return state None."""
        act = self._acting(deterministic)
        if not deterministic and key is None:
            next_key, key = jax.random.split(self._sample_key)
            object.__setattr__(self, "_sample_key", next_key)
        if not self.recurrent:
            return np.asarray(act(obs, key)), None
        if state is None:
            state = act.initial_carry(self._batch_shape(obs))
        if episode_start is not None:
            state = act.reset(state, np.asarray(episode_start, bool))
        action, state = act(obs, state, key)
        return np.asarray(action), state

    def _acting(self, deterministic: bool) -> Callable[..., Any]:
        if deterministic == self.deterministic:
            return self._act
        if deterministic not in self._other:
            self._other[deterministic] = policy_from_spec(
                self.config, self.spec, self.params, self.obs_stats, deterministic, "load_policy"
            )
        return self._other[deterministic]

    def _batch_shape(self, obs: Any) -> tuple[int, ...]:
        """The leading shape of `obs` beyond one observation's."""
        leaf = self.spec.leaves[0]
        x = obs[leaf.key] if self.spec.dict_obs else obs
        return tuple(np.shape(x)[: np.ndim(x) - len(leaf.shape)])

    def _require_recurrent(self, what: str) -> None:
        if not self.recurrent:
            raise TypeError(
                f"Policy.{what}: this policy is feed-forward (config.recurrent=None); it "
                "keeps no carry, call policy(obs, key)"
            )


def save_policy(path: str | os.PathLike, config: Config, state: TrainState) -> Path:
    """Write the policy of `state` (one run) to the directory `path`; returns the path.

    The directory is written next to `path` under a temporary name and renamed into
    place when complete; an existing policy directory at `path` is replaced only then.
    Raises ValueError for a batched config or state (pick one run first), for a config
    with no plain-data form, and when `state` does not fit the network of `config`.
    """
    path = Path(path)
    if isinstance(state, TrainOutput):
        raise TypeError("save_policy: state is a TrainOutput; pass its .state (out.state)")
    if not isinstance(state, TrainState):
        raise TypeError(f"save_policy: state must be a purejaxppo.TrainState, got {type(state)}")
    _check_single(config, state)
    config_dict = config.to_dict()  # raises for a config holding Python objects
    from purejaxppo.core.setup import make_setup  # the saving side may resolve the env

    spec = make_setup(config).spec
    _check_arrays(config, spec, state.params, state.obs_stats, "save_policy: state")
    from purejaxppo import __version__

    meta = {
        "format_version": FORMAT_VERSION,
        "purejaxppo_version": __version__,
        "config": config_dict,
        "env_spec": _spec_to_dict(spec),
        "arrays": POLICY_ARRAYS,
    }
    arrays = {
        "params": jax.tree.map(np.asarray, state.params),
        "obs_stats": _stats_to_dict(state.obs_stats),
    }
    _write_dir_atomically(
        path,
        {
            POLICY_JSON: (json.dumps(meta, indent=2) + "\n").encode(),
            POLICY_ARRAYS: serialization.msgpack_serialize(arrays),
        },
    )
    return path


def load_policy(path: str | os.PathLike, deterministic: bool = False) -> Policy:
    """The policy saved at `path` by `save_policy`, acting as
    `make_policy(config, state, deterministic)` did.

    Builds only the network and the normaliser from the saved env facts (no env spec,
    reset or step, no training code). The arrays are placed on the default device.
    Raises FileNotFoundError when the directory or one of its files is missing, and
    ValueError when a file is unreadable or of an unknown format version.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"load_policy: {path} does not exist (expected a directory written by save_policy)"
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"load_policy: {path} is not a directory (expected one written by save_policy)"
        )
    meta_path = path / POLICY_JSON
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"load_policy: {meta_path} is missing; {path} is not a policy written by save_policy"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"load_policy: {meta_path} is not readable JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"load_policy: {meta_path} must hold a JSON object, got {meta!r}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ValueError(
            f"load_policy: {meta_path} has format_version={version!r}; this purejaxppo "
            f"reads format_version={FORMAT_VERSION} (written by purejaxppo "
            f"{meta.get('purejaxppo_version', '?')})"
        )
    try:
        config = Config.from_dict(meta["config"])
        spec = _spec_from_dict(meta["env_spec"])
        arrays_name = meta.get("arrays", POLICY_ARRAYS)
        if not isinstance(arrays_name, str) or Path(arrays_name).name != arrays_name:
            raise ValueError(f"arrays={arrays_name!r} must be a file name")
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"load_policy: {meta_path} is not a valid policy description ({e})") from e
    if config.batch_shape != ():
        raise ValueError(f"load_policy: {meta_path} holds a batched config; a policy is one run")

    arrays_path = path / arrays_name
    if not arrays_path.is_file():
        raise FileNotFoundError(
            f"load_policy: {arrays_path} is missing (the policy's parameters; {path} is incomplete)"
        )
    try:
        arrays = serialization.msgpack_restore(arrays_path.read_bytes())
        params = jax.tree.map(np.asarray, arrays["params"])
        obs_stats = _stats_from_dict(spec, arrays["obs_stats"])
    except Exception as e:  # msgpack raises several unrelated types for corrupt input
        raise ValueError(f"load_policy: {arrays_path} is not readable policy arrays ({e})") from e
    _check_arrays(config, spec, params, obs_stats, f"load_policy: {arrays_path}")
    params, obs_stats = jax.device_put((params, obs_stats))
    return Policy(config, spec, params, obs_stats, bool(deterministic))


def _check_single(config: Config, state: TrainState) -> None:
    if not isinstance(config, Config):
        raise TypeError(f"save_policy: config must be a purejaxppo.Config, got {type(config)}")
    if config.batch_shape != ():
        raise ValueError(
            f"save_policy: config is a batch of {config.batch_shape[0]} configs; save one run "
            "with config.unstack()[i] and jax.tree.map(lambda x: x[i], state)"
        )
    step_shape = np.shape(state.update_step)
    if step_shape != ():
        raise ValueError(
            f"save_policy: state is a batch of {step_shape[0]} runs (update_step has shape "
            f"{step_shape}); save one run with jax.tree.map(lambda x: x[i], state) (and "
            "config.unstack()[i] for a swept config)"
        )


def _stats_to_dict(stats: ObsStats) -> dict[str, Any]:
    """{mean, var, count} for one vector's statistics; {key: {mean, var, count}} per key."""
    if isinstance(stats, RunningStats):
        return {k: np.asarray(v) for k, v in stats._asdict().items()}
    return {key: _stats_to_dict(s) for key, s in stats.items()}


def _stats_from_dict(spec: EnvSpec, data: dict[str, Any]) -> ObsStats:
    """The statistics `_stats_to_dict` wrote, in the structure `spec` implies."""
    template = init_obs_stats(spec)
    if isinstance(template, RunningStats):
        return RunningStats(**{k: np.asarray(v) for k, v in data.items()})
    return {
        key: RunningStats(**{k: np.asarray(v) for k, v in data[key].items()}) for key in template
    }


def _check_arrays(
    config: Config, spec: EnvSpec, params: Any, obs_stats: ObsStats, what: str
) -> None:
    """Raise ValueError unless params and obs_stats have the structure, shapes and dtypes
    of the network that config and spec describe (checked without FLOPs)."""
    network = make_network(config, spec)
    expected = jax.eval_shape(lambda k: init_params(network, config, spec, k), jax.random.key(0))

    def shapes(tree):
        return jax.tree.map(lambda x: (tuple(np.shape(x)), np.dtype(x.dtype).name), tree)

    if jax.tree.structure(params) != jax.tree.structure(expected) or shapes(params) != shapes(
        expected
    ):
        raise ValueError(
            f"{what}: the parameters do not fit the network of the config "
            f"(expected {shapes(expected)}, got {shapes(params)})"
        )
    want = init_obs_stats(spec)
    if jax.tree.structure(obs_stats) != jax.tree.structure(want) or shapes(obs_stats) != shapes(
        want
    ):
        raise ValueError(
            f"{what}: obs_stats (mean, var, count) have shapes and dtypes {shapes(obs_stats)}; "
            f"the env's observations need {shapes(want)}"
        )


def _spec_to_dict(spec: EnvSpec) -> dict[str, Any]:
    def bounds(x):
        return None if x is None else [float(v) for v in np.asarray(x, np.float32)]

    return {
        "obs_shape": [int(d) for d in spec.obs_shape],
        "obs_dim": int(spec.obs_dim),
        "discrete": bool(spec.discrete),
        "action_dim": int(spec.action_dim),
        "action_low": bounds(spec.action_low),
        "action_high": bounds(spec.action_high),
        "obs_leaves": [
            {
                "key": leaf.key,
                "shape": list(leaf.shape),
                "dtype": leaf.dtype,
                "kind": leaf.kind,
                "env_shape": list(leaf.env_shape),
            }
            for leaf in spec.obs_leaves
        ],
        "action_nvec": None if spec.action_nvec is None else list(spec.action_nvec),
    }


def _spec_from_dict(data: dict[str, Any]) -> EnvSpec:
    """The EnvSpec that `_spec_to_dict` wrote; bounds as float32 arrays like `env_spec`."""
    discrete = data["discrete"]
    if not isinstance(discrete, bool):
        raise ValueError(f"env_spec.discrete={discrete!r} must be true or false")
    sizes = {k: data[k] for k in ("obs_dim", "action_dim")}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"env_spec.{k}={v!r} must be a positive integer")
    obs_shape = tuple(int(d) for d in data["obs_shape"])
    single = not data.get("obs_leaves") or data["obs_leaves"][0]["key"] is None
    if single and int(np.prod(obs_shape)) != sizes["obs_dim"]:
        raise ValueError(
            f"env_spec.obs_shape={list(obs_shape)} does not match obs_dim={sizes['obs_dim']}"
        )
    low = high = None
    if not discrete:
        low = np.asarray(data["action_low"], np.float32)
        high = np.asarray(data["action_high"], np.float32)
        if low.shape != (sizes["action_dim"],) or high.shape != (sizes["action_dim"],):
            raise ValueError(
                f"env_spec.action_low/action_high must have action_dim={sizes['action_dim']} "
                f"values each, got {low.shape} and {high.shape}"
            )
    leaves = tuple(
        ObsLeaf(
            leaf["key"],
            tuple(int(d) for d in leaf["shape"]),
            str(leaf["dtype"]),
            str(leaf["kind"]),
            tuple(int(d) for d in leaf["env_shape"]),
        )
        for leaf in data.get("obs_leaves", [])  # absent in older files: one float vector
    )
    nvec = data.get("action_nvec")
    nvec = None if nvec is None else tuple(int(n) for n in nvec)
    return EnvSpec(
        sizes["obs_dim"], discrete, sizes["action_dim"], low, high, obs_shape, leaves, nvec
    )


def _write_dir_atomically(path: Path, files: dict[str, bytes]) -> None:
    """Create the directory `path` holding `files`, all at once: written under a temporary
    sibling name, then renamed into place (replacing an earlier policy directory)."""
    if path.exists() and not (path.is_dir() and (path / POLICY_JSON).is_file()):
        raise ValueError(
            f"save_policy: {path} exists and is not a saved policy (no {POLICY_JSON}); "
            "refusing to replace it (choose a new path or remove it)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = path.parent / f".{path.name}.tmp-{token}"
    old = path.parent / f".{path.name}.old-{token}"
    try:
        tmp.mkdir()
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if path.exists():
            # A directory cannot be renamed over a non-empty one: move the old one aside
            # first, so `path` always names a complete policy or (briefly) nothing.
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old.exists() and not path.exists():
                os.replace(old, path)  # put the earlier policy back
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
