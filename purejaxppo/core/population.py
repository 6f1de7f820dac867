"""Population-based training inside the compiled program (Jaderberg et al. 2017).

A population of N runs trains side by side (`vmap(update)` over members whose traced
hyperparameters are a batched `Config` carried in the state). Every `PBT.every`
updates, inside the same program, the members are ranked by a fitness (by default
their mean episode return over the last updates); each of the worst `fraction`
*exploits* a member drawn uniformly from the best `fraction` (it takes that member's
parameters, optimizer state, normaliser and value statistics, KL coefficient and
hyperparameters) and then *explores*: each hyperparameter named in `PBT.explore` is
perturbed (multiplied by a factor drawn from a set, clipped to bounds) or resampled
from a range. Environments, episode statistics and keys stay each member's own.

Everything is a pure function of the state, so the population vmaps, checkpoints,
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


def _explore_items(explore: Any) -> tuple[tuple[str, Perturb | Resample], ...]:
    items = explore.items() if isinstance(explore, Mapping) else explore
    return tuple((str(name), how) for name, how in items)


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


class PopulationState(NamedTuple):
    """What a population carries from one update to the next."""

    members: TrainState  # leading axis N (this device's members when sharded)
    hparams: Config  # batched [N]: each member's current hyperparameters
    key: jax.Array  # the population's own key (the same on every device)
    recent: jax.Array  # [N, window] float32: the fitness metric of the last updates


def broadcast_config(config: Config, n: int) -> Config:
    """`config` as a batch of n (a single config repeated; a batch of n as it is)."""
    if config.batch_shape == (n,):
        return config
    if config.batch_shape != ():
        raise ValueError(f"a batched Config of shape {config.batch_shape} for {n} members")
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (n, *np.shape(x))), config)


def init_population(
    pbt: PBT, configs: Config, keys: jax.Array, axis_name: str | None = None
) -> PopulationState:
    """The population at update 0: member i is `init(configs[i], keys[i])`. With
    `axis_name`, `configs` and `keys` are this device's members; the population key
    comes from the first member of the whole population."""
    members = jax.vmap(init)(configs, keys)
    first = keys[0]
    if axis_name is not None:  # device 0's first key (typed keys are gathered as key data)
        data = jax.lax.all_gather(jax.random.key_data(keys[0]), axis_name)[0]
        first = jax.random.wrap_key_data(data, impl=jax.random.key_impl(keys))
    return PopulationState(
        members=members,
        hparams=configs,
        key=jax.random.fold_in(first, PBT_KEY_SALT),
        recent=jnp.full((keys.shape[0], pbt.fitness_window), jnp.nan, jnp.float32),
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
    (ties broken by index), in which case one of the `replaced` best, drawn uniformly."""
    n = fitness.shape[0]
    order = jnp.argsort(fitness, stable=True)
    bottom, top = order[:replaced], order[n - replaced :]
    donors = top[jax.random.randint(key, (replaced,), 0, replaced)]
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
    pbt: PBT, pop: PopulationState, key: jax.Array, axis_name: str | None = None
) -> tuple[PopulationState, jax.Array]:
    """One PBT step: (new population, parent [n] of this device's members, as global
    member indices)."""
    select_key, explore_key = jax.random.split(key)
    fitness = _gather(fitness_of(pop.recent), axis_name)
    population = fitness.shape[0]
    parents = local_rows(select_parents(select_key, fitness, pbt.replaced(population)), axis_name)
    own = local_rows(jnp.arange(population, dtype=jnp.int32), axis_name)

    def take(local_tree):
        return jax.tree.map(lambda a: jnp.take(a, parents, axis=0), _gather(local_tree, axis_name))

    inherited = take({name: getattr(pop.members, name) for name in INHERITED})
    members = pop.members._replace(**inherited)
    hparams = take(pop.hparams)
    keys = local_rows(jax.random.split(explore_key, (population, len(pbt.explore))), axis_name)
    replaced = parents != own
    changes = {}
    for j, (name, how) in enumerate(pbt.explore):
        explored = jax.vmap(lambda k, v, how=how: explore_value(how, k, v))(
            keys[:, j], getattr(hparams, name)
        )
        changes[name] = jnp.where(replaced, explored, getattr(hparams, name))
    hparams = _with(hparams, changes)
    return pop._replace(members=members, hparams=hparams, recent=take(pop.recent)), parents


def _with(config: Config, changes: dict[str, jax.Array]) -> Config:
    """`config` (a batched pytree, possibly of tracers) with traced leaves replaced,
    without validation (the values may be tracers)."""
    leaves, treedef = jax.tree.flatten(config)
    names = [n for n in TRACED_FIELDS if getattr(config, n) is not None]
    return jax.tree.unflatten(
        treedef, [changes.get(n, x) for n, x in zip(names, leaves, strict=True)]
    )


def population_update(
    pbt: PBT, pop: PopulationState, axis_name: str | None = None
) -> tuple[PopulationState, dict[str, jax.Array]]:
    """One update of every member, then, every `pbt.every` updates (but not after the
    last), an exploit/explore step. Metrics are [n] per name: METRIC_NAMES plus
    `pbt.metric_names` (the hyperparameters each member trained this update with, and
    its parent: itself, or the member it copied at the end of this update)."""
    members, metrics = jax.vmap(update)(pop.hparams, pop.members)
    recent = jnp.concatenate([pop.recent[:, 1:], metrics[pbt.fitness][:, None]], axis=1)
    trained_with = {f"pbt_{name}": getattr(pop.hparams, name) for name, _ in pbt.explore}
    pop = pop._replace(members=members, recent=recent.astype(jnp.float32))
    step_key, next_key = jax.random.split(pop.key)
    done = members.update_step[0]
    n = recent.shape[0] * shard_count(axis_name)
    own = local_rows(jnp.arange(n, dtype=jnp.int32), axis_name)
    due = (done % pbt.every == 0) & (done < pop.hparams.num_updates)
    pop, parents = jax.lax.cond(
        due,
        lambda p: exploit_and_explore(pbt, p, step_key, axis_name),
        lambda p: (p, own),
        pop,
    )
    metrics = {**metrics, "pbt_parent": parents, **trained_with}
    return pop._replace(key=next_key), metrics


def run_population(
    pbt: PBT, pop: PopulationState, num_updates: int, axis_name: str | None = None
) -> tuple[PopulationState, dict[str, jax.Array]]:
    """`num_updates` population updates as one scan; metrics [num_updates, n] per name."""
    return jax.lax.scan(
        lambda p, _: population_update(pbt, p, axis_name), pop, None, length=num_updates
    )
