"""Population-based training inside the compiled program (Jaderberg et al. 2017).

A population of N runs trains side by side (`vmap(update)` over members whose traced
hyperparameters are a batched `Config` carried in the state). Every `PBT.every`
updates, inside the same program, the members are ranked by a fitness (by default
their mean episode return over the last updates); each of the worst `fraction`
*exploits* a member drawn uniformly from the best `fraction`, if that one is strictly
fitter (it takes that member's
parameters, optimizer state, normaliser and value statistics, KL coefficient and
hyperparameters) and then *explores*: each hyperparameter named in `PBT.explore` is
perturbed (multiplied by a factor drawn from a set, clipped to bounds) or resampled
from a range. Environments, episode statistics and keys stay each member's own.

The PBT state of each member (its hyperparameters, the fitness window, the
population's key) is the `pbt` field of its TrainState, so the members are a batched
TrainState like any vmapped runs. Everything is a pure function of it, so the
population checkpoints,
resumes and shards like a single run: with `axis_name` (inside `shard_map` over a
runs axis) every device holds N / D members, the fitness and the donors' states are
all-gathered, and every device draws the same global decisions, so the result does
not depend on the number of devices.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import OPTIONAL_TRACED, TRACED_FIELDS, Config
from purejaxppo.core.train import METRIC_NAMES, init, update
from purejaxppo.core.types import TrainState
from purejaxppo.scale.collectives import local_rows, shard_count

# The population's own key is folded from the first member's key with this, so that
# its draws never coincide with a member's.
PBT_KEY_SALT = 0x504254

# TrainState fields a member takes from the member it exploits: everything the learner
# has learned. The envs, episode statistics and keys stay the member's own.
INHERITED = ("params", "opt_state", "obs_stats", "reward_stats", "kl_beta", "lr", "value_stats")


@dataclasses.dataclass(frozen=True)
class Perturb:
    """Explore by multiplying the inherited value by a factor drawn uniformly from
    `factors` (PBT's classic (0.8, 1.2)), then clipping to [low, high] (None: no bound
    on that side)."""

    factors: tuple[float, ...] = (0.8, 1.25)
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))


@dataclasses.dataclass(frozen=True)
class Resample:
    """Explore by drawing a fresh value uniformly from [low, high] (log-uniformly with
    `log=True`, which needs 0 < low)."""

    low: float
    high: float
    log: bool = False


def explore_text(how: Perturb | Resample) -> str:
    """The text form `parse_explore` reads: "perturb[:LOW:HIGH[:F1,F2,...]]" (an empty
    LOW or HIGH is no bound), "resample:LOW:HIGH" or "logresample:LOW:HIGH"."""

    def bound(b: float | None) -> str:
        return "" if b is None else repr(float(b))

    if isinstance(how, Resample):
        return f"{'logresample' if how.log else 'resample'}:{how.low!r}:{how.high!r}"
    factors = ",".join(repr(f) for f in how.factors)
    return f"perturb:{bound(how.low)}:{bound(how.high)}:{factors}"


def parse_explore(text: str) -> Perturb | Resample:
    """A Perturb or Resample from its text form (see `explore_text`)."""
    kind, *parts = text.strip().split(":")
    try:
        if kind == "perturb" and len(parts) in (0, 2, 3):
            low, high = (None, None) if not parts else (_maybe(parts[0]), _maybe(parts[1]))
            factors = tuple(float(f) for f in parts[2].split(",")) if len(parts) == 3 else None
            return Perturb(low=low, high=high) if factors is None else Perturb(factors, low, high)
        if kind in ("resample", "logresample") and len(parts) == 2:
            return Resample(float(parts[0]), float(parts[1]), log=kind == "logresample")
    except ValueError:
        pass
    raise ValueError(
        f"{text!r}: write perturb, perturb:LOW:HIGH, perturb:LOW:HIGH:F1,F2,... (an empty "
        "LOW or HIGH: no bound), resample:LOW:HIGH or logresample:LOW:HIGH"
    )


def _maybe(text: str) -> float | None:
    return None if text.strip() == "" else float(text)


def _explore_items(explore: Any) -> tuple[tuple[str, Perturb | Resample], ...]:
    """{field: Perturb | Resample | text} (or pairs, or "field=text" strings) as a tuple
    of (field, Perturb | Resample) pairs."""
    if isinstance(explore, str):
        explore = (explore,)
    items = explore.items() if isinstance(explore, Mapping) else explore
    pairs = []
    for item in items:
        if isinstance(item, str):
            name, sep, text = item.partition("=")
            if not sep:
                raise ValueError(f"PBT.explore item {item!r}: write FIELD=perturb:LOW:HIGH, ...")
            item = (name.strip().replace("-", "_"), text)
        name, how = item
        if isinstance(how, str):
            try:
                how = parse_explore(how)
            except ValueError as e:
                raise ValueError(f"PBT.explore[{name!r}]={e}") from None
        pairs.append((str(name), how))
    return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class PBT:
    """How a population trains its hyperparameters (static: part of the program).

    every: updates between two exploit/explore steps (none after the last update).
    explore: {traced Config field: Perturb(...) or Resample(...)}.
    fraction: the worst `fraction` of the members copy a member of the best `fraction`
      (at most 0.5; at least one member when the population has two or more).
    fitness: the per-update metric ranked, higher is better (any of METRIC_NAMES).
    window: updates the fitness is averaged over, ignoring updates that finished no
      episode (None: `every`); a member with no value in its window ranks last.
    """

    every: int = 10
    explore: Any = ()
    fraction: float = 0.25
    fitness: str = "episode_return"
    window: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "explore", _explore_items(self.explore))
        _check_count("every", self.every)
        if self.window is not None:
            _check_count("window", self.window)
        if isinstance(self.fraction, bool) or not 0 < self.fraction <= 0.5:
            raise ValueError(f"PBT.fraction={self.fraction!r}: must be in (0, 0.5]")
        if self.fitness not in METRIC_NAMES:
            raise ValueError(
                f"PBT.fitness={self.fitness!r}: must be one of the per-update metrics "
                f"({', '.join(METRIC_NAMES)})"
            )
        for name, how in self.explore:
            _check_explore(name, how)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (checkpoint metadata, YAML): explore as "field=text" strings."""
        return {
            "every": self.every,
            "explore": [f"{name}={explore_text(how)}" for name, how in self.explore],
            "fraction": self.fraction,
            "fitness": self.fitness,
            "window": self.window,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PBT:
        """The PBT that `to_dict` wrote."""
        return cls(**data)

    @property
    def fitness_window(self) -> int:
        return self.every if self.window is None else self.window

    def replaced(self, population: int) -> int:
        """How many members exploit at each step: fraction * N, at least 1 (N >= 2)."""
        return max(1, math.floor(self.fraction * population)) if population >= 2 else 0

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics a population adds to METRIC_NAMES: the parent of each member at
        each update and the explored hyperparameters it trained with."""
        return ("pbt_parent", *(f"pbt_{name}" for name, _ in self.explore))


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"PBT.{name}={value!r}: must be a positive integer")


def _check_explore(name: str, how: Any) -> None:
    where = f"PBT.explore[{name!r}]"
    if name not in TRACED_FIELDS:
        raise ValueError(
            f"{where}: {name!r} is not a traced hyperparameter; explorable fields are "
            f"{', '.join(TRACED_FIELDS)}"
        )
    rule = Config.__dataclass_fields__[name].metadata["rules"][0]
    if isinstance(how, Perturb):
        if not how.factors or any(not (f > 0 and math.isfinite(f)) for f in how.factors):
            raise ValueError(f"{where}: Perturb.factors={how.factors!r} must be positive numbers")
        if how.high is None and not bool(rule.ok(np.float32(1e30))):
            raise ValueError(
                f"{where}: Config.{name} {rule.text}, so a multiplicative Perturb needs a "
                "`high` bound within that rule"
            )
        bounds = [b for b in (how.low, how.high) if b is not None]
    elif isinstance(how, Resample):
        if how.log and not how.low > 0:
            raise ValueError(f"{where}: Resample(log=True) needs low > 0, got low={how.low!r}")
        bounds = [how.low, how.high]
    else:
        raise TypeError(f"{where}={how!r}: must be purejaxppo.Perturb(...) or Resample(...)")
    for bound in bounds:
        if not bool(rule.ok(np.float32(bound))) or math.isnan(bound):
            raise ValueError(
                f"{where}: bound {bound!r} breaks the rule of Config.{name}: {rule.text}"
            )
    if len(bounds) == 2 and not bounds[0] < bounds[1]:
        raise ValueError(f"{where}: low={bounds[0]!r} must be < high={bounds[1]!r}")


def check_population(configs: Config, pbt: PBT, population: int) -> None:
    """Errors a population can be refused with before anything compiles."""
    if not isinstance(pbt, PBT):
        raise TypeError(f"pbt={pbt!r}: must be a purejaxppo.PBT(...)")
    for name, _ in pbt.explore:
        if name in OPTIONAL_TRACED and getattr(configs, name) is None:
            raise ValueError(
                f"PBT.explore[{name!r}]: Config.{name} is None (switched off), so there is "
                "no value to explore; give it a number"
            )
    if population < 2:
        raise ValueError(f"a population needs at least 2 members, got {population}")


class MemberPBT(NamedTuple):
    """`TrainState.pbt` of a population member: what PBT carries per member, batched
    with the members like the rest of their state."""

    hparams: Config  # this member's current hyperparameters (its traced leaves)
    recent: jax.Array  # [window] float32: the fitness metric of the last updates (NaN: none)
    key: jax.Array  # the population's key, the same in every member


def broadcast_config(config: Config, n: int) -> Config:
    """`config` as a batch of n (a single config repeated; a batch of n as it is)."""
    if config.batch_shape == (n,):
        return config
    if config.batch_shape != ():
        raise ValueError(f"a batched Config of shape {config.batch_shape} for {n} members")
    # numpy, on the host: no tiny device program compiled (or loaded from the cache).
    return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), config)


def population_key(keys: jax.Array, axis_name: str | None = None) -> jax.Array:
    """The population's key, folded from its first member's key (device 0's first
    with `axis_name`; typed keys are gathered as key data)."""
    first = keys[0]
    if axis_name is not None:
        data = jax.lax.all_gather(jax.random.key_data(keys[0]), axis_name)[0]
        first = jax.random.wrap_key_data(data, impl=jax.random.key_impl(keys))
    return jax.random.fold_in(first, PBT_KEY_SALT)


def init_population(
    pbt: PBT, configs: Config, keys: jax.Array, axis_name: str | None = None
) -> TrainState:
    """The members at update 0, a TrainState batched over them: member i is
    `init(configs[i], keys[i])` with its PBT state. With `axis_name`, `configs` and
    `keys` are this device's members."""
    n = keys.shape[0]
    members = jax.vmap(init)(configs, keys)
    key = population_key(keys, axis_name)
    return members._replace(
        pbt=MemberPBT(
            hparams=configs,
            recent=jnp.full((n, pbt.fitness_window), jnp.nan, jnp.float32),
            key=jnp.broadcast_to(key, (n,)),
        )
    )


def _gather(x: Any, axis_name: str | None) -> Any:
    if axis_name is None:
        return x
    return jax.tree.map(lambda a: jax.lax.all_gather(a, axis_name, tiled=True), x)


def fitness_of(recent: jax.Array) -> jax.Array:
    """[N] the mean of each member's window, ignoring NaN; -inf for an empty window."""
    seen = ~jnp.isnan(recent)
    total = jnp.sum(jnp.where(seen, recent, 0.0), axis=1)
    count = jnp.sum(seen, axis=1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), -jnp.inf)


def select_parents(key: jax.Array, fitness: jax.Array, replaced: int) -> jax.Array:
    """[N] int32: member i's parent, i itself unless it is among the `replaced` worst
    (ties broken by index), in which case one of the `replaced` best, drawn uniformly,
    provided that one is strictly fitter (a population of equals copies nothing)."""
    n = fitness.shape[0]
    order = jnp.argsort(fitness, stable=True)
    bottom, top = order[:replaced], order[n - replaced :]
    donors = top[jax.random.randint(key, (replaced,), 0, replaced)]
    donors = jnp.where(fitness[donors] > fitness[bottom], donors, bottom)
    return jnp.arange(n, dtype=jnp.int32).at[bottom].set(donors.astype(jnp.int32))


def explore_value(how: Perturb | Resample, key: jax.Array, value: jax.Array) -> jax.Array:
    """One explored value from the inherited `value` (float32 scalar)."""
    if isinstance(how, Resample):
        u = jax.random.uniform(key)
        if how.log:
            return jnp.exp(math.log(how.low) + u * (math.log(how.high) - math.log(how.low)))
        return how.low + u * (how.high - how.low)
    factors = jnp.asarray(how.factors, jnp.float32)
    new = value * factors[jax.random.randint(key, (), 0, len(how.factors))]
    return jnp.clip(new, how.low, how.high)


def exploit_and_explore(
    pbt: PBT, members: TrainState, key: jax.Array, axis_name: str | None = None
) -> tuple[TrainState, jax.Array]:
    """One PBT step: (the members after it, parent [n] of this device's members, as
    global member indices)."""
    select_key, explore_key = jax.random.split(key)
    fitness = _gather(fitness_of(members.pbt.recent), axis_name)
    population = fitness.shape[0]
    parents = local_rows(select_parents(select_key, fitness, pbt.replaced(population)), axis_name)
    own = local_rows(jnp.arange(population, dtype=jnp.int32), axis_name)

    def take(local_tree):
        return jax.tree.map(lambda a: jnp.take(a, parents, axis=0), _gather(local_tree, axis_name))

    inherited = take({name: getattr(members, name) for name in INHERITED})
    hparams, recent = take((members.pbt.hparams, members.pbt.recent))
    keys = local_rows(jax.random.split(explore_key, (population, len(pbt.explore))), axis_name)
    replaced = parents != own
    changes = {}
    for j, (name, how) in enumerate(pbt.explore):
        explored = jax.vmap(lambda k, v, how=how: explore_value(how, k, v))(
            keys[:, j], getattr(hparams, name)
        )
        changes[name] = jnp.where(replaced, explored, getattr(hparams, name))
    pbt_state = members.pbt._replace(hparams=_with(hparams, changes), recent=recent)
    return members._replace(**inherited, pbt=pbt_state), parents


def _with(config: Config, changes: dict[str, jax.Array]) -> Config:
    """`config` (a batched pytree, possibly of tracers) with traced leaves replaced,
    without validation (the values may be tracers)."""
    leaves, treedef = jax.tree.flatten(config)
    names = [n for n in TRACED_FIELDS if getattr(config, n) is not None]
    return jax.tree.unflatten(
        treedef, [changes.get(n, x) for n, x in zip(names, leaves, strict=True)]
    )


def population_update(
    pbt: PBT, members: TrainState, axis_name: str | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One update of every member (each with its own hyperparameters,
    `members.pbt.hparams`), then, every `pbt.every` updates (but not after the last),
    an exploit/explore step. Metrics are [n] per name: METRIC_NAMES plus
    `pbt.metric_names` (the hyperparameters each member trained this update with, and
    its parent: itself, or the member it copied at the end of this update)."""
    hparams = members.pbt.hparams
    members, metrics = jax.vmap(update)(hparams, members)
    recent = jnp.concatenate([members.pbt.recent[:, 1:], metrics[pbt.fitness][:, None]], axis=1)
    step_key, next_key = jax.random.split(members.pbt.key[0])
    n = recent.shape[0]
    members = members._replace(
        pbt=members.pbt._replace(
            recent=recent.astype(jnp.float32), key=jnp.broadcast_to(next_key, (n,))
        )
    )
    done = members.update_step[0]
    own = local_rows(jnp.arange(n * shard_count(axis_name), dtype=jnp.int32), axis_name)
    due = (done % pbt.every == 0) & (done < hparams.num_updates)
    members, parents = jax.lax.cond(
        due,
        lambda m: exploit_and_explore(pbt, m, step_key, axis_name),
        lambda m: (m, own),
        members,
    )
    trained_with = {f"pbt_{name}": getattr(hparams, name) for name, _ in pbt.explore}
    return members, {**metrics, "pbt_parent": parents, **trained_with}


def run_population(
    pbt: PBT, members: TrainState, num_updates: int, axis_name: str | None = None
) -> tuple[TrainState, dict[str, jax.Array]]:
    """`num_updates` population updates as one scan; metrics [num_updates, n] per name."""
    return jax.lax.scan(
        lambda m, _: population_update(pbt, m, axis_name), members, None, length=num_updates
    )
