"""purejaxppo vs Brax's own PPO (`brax.training.agents.ppo.train`) on Brax envs.

Both trainers run in this process, one after the other, on the same device, with
the same env and the same PPO settings, and are reported side by side: compile /
start-up time, training steps/s, and the final return of a deterministic
evaluation at the same number of env steps.

    python benchmarks/brax.py --scale cpu                  # 64 envs, 0.2M steps per env
    python benchmarks/brax.py --scale gpu                  # 2048 envs, ~20M steps per env
    python benchmarks/brax.py --envs hopper --scale cpu --total-timesteps 20000   # smoke

The JSON goes to benchmarks/results/brax-<platform>-<scale>.json unless --out says
otherwise.

Shared settings (both trainers)
-------------------------------
* env: `brax.envs.get_environment(name, backend="positional")`; ours
  `Config(env="brax/<name>", brax_backend="positional")`. episode_length 1000,
  action_repeat 1.
* one update = num_envs x num_steps transitions. Brax collects
  batch_size * num_minibatches / num_envs unrolls of unroll_length per env, so
  our num_steps = unroll_length * batch_size * num_minibatches / num_envs (the
  conversion in purejaxppo/presets.py); num_minibatches and epochs
  (Brax num_updates_per_batch) carry over, so every minibatch has the same number of
  transitions. Total steps are rounded down to a whole number of updates that
  divides into Brax's training epochs, so both run exactly the same updates.
* lr (constant, Adam eps 1e-8), gamma, gae_lambda 0.95, clip 0.3, entropy cost,
  vf coefficient 0.5, reward scaling, advantage normalisation per minibatch,
  no gradient clipping (Brax max_grad_norm=None; ours inf), no value clipping
  (Brax clipping_epsilon_value=None; ours clip_value_loss=False).
* networks: policy 32x4, value 256x5, swish/silu (Brax's defaults; ours
  hidden_sizes / critic_hidden_sizes, passed to Brax through
  `network_factory=functools.partial(ppo_networks.make_ppo_networks, ...)`),
  tanh-squashed Gaussian (ours continuous_dist="tanh_gaussian"), observation
  normalisation by running mean/std (ours with obs_clip=inf: Brax does not clip).
* the learning-rate/entropy/discount/reward-scale values are Brax's training colab
  settings for ant (3e-4, 1e-2, 0.97, 10). The colab trains hopper with SAC, not
  PPO, so for hopper they are our choice: 3e-4, 1e-3, 0.97, reward scale 1.

Differences that remain (they are in the algorithms, not the settings)
---------------------------------------------------------------------
* GAE: Brax computes it inside the loss, per unroll segment of unroll_length, with
  the current (not the behaviour-time) values, bootstrapping each segment from its
  last next-observation; it shuffles whole segments into minibatches. We compute
  GAE once per update over the whole num_steps rollout with the rollout-time
  values, and shuffle single transitions.
* time limits: Brax (bootstrap_on_timeout=False, its default) zeroes the TD error
  and the advantage of the step where an episode is truncated; we bootstrap that
  step from the value of the pre-reset observation.
* resets: Brax's AutoResetWrapper restarts every env at the initial state it drew
  at the start of training; we draw a fresh random initial state per episode.
* policy std: Brax's policy network outputs loc and scale per action
  (state-dependent std, softplus(x) + 0.001, about 0.69 at init); ours is a
  state-independent log-std parameter initialised to log(0.69) = -0.37.
* initialisation: Brax uses lecun_uniform for all layers; ours orthogonal
  (gain sqrt 2 hidden, 0.01 policy head, 1 value head).
* entropy bonus: Brax estimates the squashed distribution's entropy from one
  sample per row; ours uses a 16-point Gauss-Hermite rule (same quantity).
* observation statistics: Brax folds each rollout into the statistics before its
  SGD epochs and normalises the learning batch with the updated statistics; ours
  normalises the batch with the statistics the rollout acted with and folds the
  rollout in afterwards. Brax clips the std at >= 1e-6; we add 1e-8 to the variance.

Figures and how they are measured
---------------------------------
* ours: compile_s = `jax.jit(train).lower(config, key).compile()` (tracing, env
  construction and XLA compilation); run_s = one call of the compiled program for
  the whole run (init + every update), so steps_per_s = total steps / run_s.
* Brax: `ppo.train` compiles lazily inside its own loop, so compile time cannot be
  taken apart cleanly. It is run with run_evals=False (no evaluation rollouts during
  training) and num_evals = E + 1, i.e. E "training epochs" (one pmapped call each,
  the same compiled program). Brax times each epoch itself (`training/walltime`,
  block_until_ready included) and reports it to progress_fn. steps_per_s = the steps
  of epochs 2..E / their wall time (compilation excluded, like ours).
  startup_incl_compile_s = wall time from the `ppo.train` call to the end of epoch 1
  minus epoch 1's steps at the steady rate: env wrapping, the pmapped reset and its
  compile, network init, the evaluator's reset compile, and the compilation of the
  training epoch. compile_est_s = epoch 1's wall time minus its steps at the steady
  rate (the training-epoch compile alone, as far as it can be separated).
  total_s is the whole `ppo.train` call.
* return: each trained policy is evaluated deterministically (tanh of the mean
  action) on `--eval-episodes` fresh envs for up to 1000 steps, summing the env's
  reward until the episode's first termination. Ours: `purejaxppo.evaluate`.
  Brax: the returned `make_inference_fn(params, deterministic=True)` in our own
  jitted loop over the raw (unwrapped) Brax env (Brax's own eval/episode_reward is
  not used: evaluation during training is off). With --check-eval our policy is
  also run through that Brax loop (`eval_return_brax_loop`), to show that the two
  paths measure the same thing. Both trainers stop at the same number of env steps,
  so the final returns are returns at equal steps. At small budgets they say little
  about learning: hopper and ant pay a healthy reward of 1 per step, so a policy
  that just stays upright scores ~1000 over a full episode (episode length 1000)
  without moving; compare eval_length_mean and train_return_last10_updates (ours'
  stochastic training episodes) before reading much into them.

Brax 0.14.2 on jax 0.10
-----------------------
`ppo.train` calls `jax.device_put_replicated`, which jax 0.10 removed from its
namespace (AttributeError). While `ppo.train` runs, this script puts in a stand-in
(`_device_put_replicated`) that places the replicated state on a mesh whose axis is
named like Brax's pmap axis; with jax's own function (mesh axis
"_device_put_replicated") jax 0.10's pmap misses its compile cache on the second
call, and Brax's second training epoch compiles the whole program again.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import purejaxppo
from purejaxppo.runner.bench import machine_info

# Run as a script, this file's folder is sys.path[0], and this file would shadow the
# `brax` package (for Brax's own `from brax import envs` too): drop that folder before
# anything imports brax (nothing above does; purejaxppo imports it lazily).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

RESULTS = Path(__file__).parent / "results"
EPISODE_LENGTH = 1000
BACKEND = "positional"

# Rollout/minibatch shape per scale, in Brax's terms, plus the default budget and
# the number of Brax training epochs (separately timed calls).
SCALES = {
    "cpu": {
        "num_envs": 64,
        "unroll_length": 10,
        "batch_size": 64,
        "num_minibatches": 8,
        "num_updates_per_batch": 4,
        "total_timesteps": 204_800,  # 40 updates
        "brax_epochs": 4,
    },
    "gpu": {
        "num_envs": 2048,
        "unroll_length": 5,
        "batch_size": 1024,
        "num_minibatches": 32,
        "num_updates_per_batch": 4,
        "total_timesteps": 20_000_000,  # rounded to 120 updates, 19,660,800 steps
        "brax_epochs": 10,
    },
}

# Per-env PPO values (Brax colab for ant; our choice for hopper, see the docstring).
ENV_SETTINGS = {
    "ant": {
        "learning_rate": 3e-4,
        "entropy_cost": 1e-2,
        "discounting": 0.97,
        "reward_scaling": 10.0,
    },
    "hopper": {
        "learning_rate": 3e-4,
        "entropy_cost": 1e-3,
        "discounting": 0.97,
        "reward_scaling": 1.0,
    },
    # The smallest Brax env (the accelerator suite's tiny CPU scale): ant's values.
    "inverted_pendulum": {
        "learning_rate": 3e-4,
        "entropy_cost": 1e-2,
        "discounting": 0.97,
        "reward_scaling": 10.0,
    },
}

# Brax's PPO defaults that we mirror (brax 0.14.2 ppo/train.py and ppo/networks.py).
POLICY_HIDDEN = (32, 32, 32, 32)
VALUE_HIDDEN = (256, 256, 256, 256, 256)
CLIP_EPS = 0.3
GAE_LAMBDA = 0.95
VF_COEF = 0.5
LOG_STD_INIT = -0.37  # log(softplus(0) + 0.001): Brax's initial std


def budget(scale: dict, total_timesteps: int) -> tuple[int, int, int]:
    """(updates, total steps, Brax epochs): whole updates, a multiple of the epochs.

    Small budgets get fewer epochs (at least 2 are needed for a steady-state rate)."""
    per_update = scale["unroll_length"] * scale["batch_size"] * scale["num_minibatches"]
    available = total_timesteps // per_update
    if available == 0:
        raise SystemExit(
            f"error: --total-timesteps={total_timesteps}: need at least one update "
            f"({per_update} steps) at this scale"
        )
    epochs = min(scale["brax_epochs"], available)
    updates = (available // epochs) * epochs
    return updates, updates * per_update, epochs


def our_config(env: str, scale: dict, total: int) -> purejaxppo.Config:
    s = ENV_SETTINGS[env]
    per_update = scale["unroll_length"] * scale["batch_size"] * scale["num_minibatches"]
    return purejaxppo.Config(
        env=f"brax/{env}",
        brax_backend=BACKEND,
        episode_length=EPISODE_LENGTH,
        action_repeat=1,
        num_envs=scale["num_envs"],
        num_steps=per_update // scale["num_envs"],
        num_minibatches=scale["num_minibatches"],
        update_epochs=scale["num_updates_per_batch"],
        total_timesteps=total,
        hidden_sizes=POLICY_HIDDEN,
        critic_hidden_sizes=VALUE_HIDDEN,
        activation="silu",
        continuous_dist="tanh_gaussian",
        log_std_init=LOG_STD_INIT,
        normalize_obs=True,
        obs_clip=float("inf"),
        advantage_norm="minibatch",
        lr_schedule="constant",
        clip_value_loss=False,
        max_grad_norm=float("inf"),
        adam_eps=1e-8,
        clip_eps=CLIP_EPS,
        gae_lambda=GAE_LAMBDA,
        vf_coef=VF_COEF,
        lr=s["learning_rate"],
        ent_coef=s["entropy_cost"],
        gamma=s["discounting"],
        reward_scale=s["reward_scaling"],
    )


def brax_kwargs(env: str, scale: dict, total: int, epochs: int, seed: int) -> dict:
    """Keyword arguments of brax ppo.train, besides environment/network_factory/callbacks."""
    return {
        "num_timesteps": total,
        "num_envs": scale["num_envs"],
        "episode_length": EPISODE_LENGTH,
        "action_repeat": 1,
        "unroll_length": scale["unroll_length"],
        "batch_size": scale["batch_size"],
        "num_minibatches": scale["num_minibatches"],
        "num_updates_per_batch": scale["num_updates_per_batch"],
        **ENV_SETTINGS[env],
        "gae_lambda": GAE_LAMBDA,
        "clipping_epsilon": CLIP_EPS,
        "vf_loss_coefficient": VF_COEF,
        "normalize_observations": True,
        "normalize_advantage": True,
        "max_grad_norm": None,
        "clipping_epsilon_value": None,
        "bootstrap_on_timeout": False,
        "num_evals": epochs + 1,
        "run_evals": False,
        "num_eval_envs": 1,  # unused with run_evals=False, but its reset is still built
        "max_devices_per_host": 1,  # the same single device as ours
        "seed": seed,
    }


def make_brax_env(name: str):
    from brax import envs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Brax's per-load pipeline warning
        return envs.get_environment(name, backend=BACKEND)


def brax_rollout_returns(env, policy, key: jax.Array, num_episodes: int):
    """Deterministic episodes on the raw Brax env: (returns [N], lengths [N]).

    policy(obs [N, obs_dim]) -> actions [N, A]. Rewards count until the first
    termination or EPISODE_LENGTH steps, as in purejaxppo.evaluate.
    """
    state = jax.vmap(env.reset)(jax.random.split(key, num_episodes))

    def step(carry, _):
        state, returns, lengths, finished = carry
        nxt = jax.vmap(env.step)(state, policy(state.obs))
        live = ~finished
        returns = returns + jnp.where(live, nxt.reward, 0.0)
        lengths = lengths + live.astype(jnp.int32)
        return (nxt, returns, lengths, finished | (nxt.done > 0.5)), None

    zeros = jnp.zeros(num_episodes, jnp.float32)
    init = (state, zeros, jnp.zeros(num_episodes, jnp.int32), jnp.zeros(num_episodes, bool))
    (_, returns, lengths, _), _ = jax.lax.scan(step, init, None, length=EPISODE_LENGTH)
    return returns, lengths


def _jsonable(v):
    """Config/kwargs values as strict JSON: numpy scalars unwrapped (float32 by their
    shortest repr, 3e-4 rather than 0.0003000000142...), inf as a string."""
    if isinstance(v, np.ndarray | np.generic):
        v = float(str(np.float32(v))) if np.asarray(v).dtype.kind == "f" else v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


def _summary(returns, lengths) -> dict:
    returns, lengths = np.asarray(returns), np.asarray(lengths)
    return {
        "eval_return_mean": round(float(returns.mean()), 2),
        "eval_return_std": round(float(returns.std()), 2),
        "eval_length_mean": round(float(lengths.mean()), 1),
    }


def run_ours(
    env: str, config: purejaxppo.Config, seed: int, eval_episodes: int, check_eval: bool
) -> dict:
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    compiled = jax.jit(purejaxppo.train).lower(config, key).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(config, key))
    run_s = time.perf_counter() - t0
    steps = config.num_updates * config.batch_size

    eval_key = jax.random.key(seed + 1000)
    res = purejaxppo.evaluate(config, out.state, eval_key, num_episodes=eval_episodes)
    row = {
        "compile_s": round(compile_s, 2),
        "run_s": round(run_s, 2),
        "env_steps": steps,
        "steps_per_s": round(steps / run_s),
        **_summary(res.returns, res.lengths),
    }
    if check_eval:
        # The same policy through the loop used for Brax's: the two eval paths agree.
        brax_env = make_brax_env(env)
        loop = jax.jit(
            lambda state, k: brax_rollout_returns(
                brax_env,
                purejaxppo.make_policy(config, state, deterministic=True),
                k,
                eval_episodes,
            )
        )
        ret, _ = loop(out.state, jax.random.PRNGKey(seed + 1000))
        row["eval_return_brax_loop"] = round(float(np.mean(ret)), 2)
    train_returns = np.asarray(out.metrics["episode_return"])[-10:]
    if np.isfinite(train_returns).any():
        row["train_return_last10_updates"] = round(float(np.nanmean(train_returns)), 2)
    return row


def _device_put_replicated(axis_name: str):
    """A stand-in for jax.device_put_replicated, which jax 0.10 removed from its namespace
    and brax 0.14.2's ppo.train still calls: x stacked along a new leading axis, one
    slice per device. The mesh axis is named like Brax's pmap axis: under jax 0.10's
    pmap (a jit over a mesh) an input placed on a mesh with another axis name (as
    jax's own function names it) misses the compile cache, so the training epoch would
    compile a second time on its second call."""

    def put(x, devices):
        mesh = jax.sharding.Mesh(np.array(devices), (axis_name,))
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))
        return jax.tree.map(
            lambda a: jax.device_put(jnp.stack([jnp.asarray(a)] * len(devices)), sharding), x
        )

    return put


def run_brax(env: str, kwargs: dict, eval_episodes: int) -> dict:
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    environment = make_brax_env(env)
    factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=POLICY_HIDDEN,
        value_hidden_layer_sizes=VALUE_HIDDEN,
        distribution_type="tanh_normal",
    )
    calls = []  # (perf_counter, env steps, metrics) per progress_fn call

    def progress(step, metrics):
        calls.append((time.perf_counter(), int(step), dict(metrics)))

    shim = not hasattr(jax, "device_put_replicated")
    if shim:
        jax.device_put_replicated = _device_put_replicated(ppo._PMAP_AXIS_NAME)
    try:
        t0 = time.perf_counter()
        make_inference, params, _ = ppo.train(
            environment=environment, network_factory=factory, progress_fn=progress, **kwargs
        )
        total_s = time.perf_counter() - t0
    finally:
        if shim:
            del jax.device_put_replicated

    epochs = kwargs["num_evals"] - 1
    if len(calls) != epochs:
        raise RuntimeError(f"brax ppo.train called progress_fn {len(calls)} times, not {epochs}")
    steps = [c[1] for c in calls]
    walltime = [float(c[2]["training/walltime"]) for c in calls]
    total_steps = steps[-1]
    if total_steps != kwargs["num_timesteps"]:
        raise RuntimeError(f"brax trained {total_steps} steps, not {kwargs['num_timesteps']}")
    row = {"total_s": round(total_s, 2), "env_steps": total_steps, "epochs": epochs}
    row["first_epoch_s"] = round(walltime[0], 2)
    if epochs >= 2:
        steady_s = walltime[-1] - walltime[0]
        sps = (steps[-1] - steps[0]) / steady_s
        epoch1_at_rate = steps[0] / sps
        row.update(
            steady_s=round(steady_s, 2),
            steps_per_s=round(sps),
            startup_incl_compile_s=round(calls[0][0] - t0 - epoch1_at_rate, 2),
            compile_est_s=round(walltime[0] - epoch1_at_rate, 2),
            # Brax's own per-epoch figure, epochs 2..E (its epoch 1 includes compiling).
            brax_reported_sps=[round(float(c[2]["training/sps"])) for c in calls[1:]],
        )

    loop = jax.jit(
        lambda p, k: brax_rollout_returns(
            environment,
            lambda obs: make_inference(p, deterministic=True)(obs, k)[0],
            k,
            eval_episodes,
        )
    )
    returns, lengths = loop(params, jax.random.PRNGKey(kwargs["seed"] + 1000))
    row.update(_summary(returns, lengths))
    return row


def _fmt_s(x) -> str:
    return "-" if x is None else f"{x:7.1f}"


def print_table(report: dict) -> None:
    print()
    print(
        f"{'env':8} {'trainer':10} {'compile s':>9} {'startup s':>9} {'run s':>8} "
        f"{'steps/s':>10} {'eval return':>17} {'ep len':>7}"
    )
    for env, r in report["results"].items():
        o, b = r["purejaxppo"], r["brax"]
        print(
            f"{env:8} {'purejaxppo':10} {_fmt_s(o['compile_s']):>9} {_fmt_s(o['compile_s']):>9} "
            f"{_fmt_s(o['run_s']):>8} {o['steps_per_s']:>10,} "
            f"{o['eval_return_mean']:>9.1f} +- {o['eval_return_std']:<5.0f} "
            f"{o['eval_length_mean']:>7.0f}"
        )
        print(
            f"{'':8} {'brax':10} {_fmt_s(b.get('compile_est_s')):>9} "
            f"{_fmt_s(b.get('startup_incl_compile_s')):>9} {_fmt_s(b.get('steady_s')):>8} "
            f"{b.get('steps_per_s', 0):>10,} "
            f"{b['eval_return_mean']:>9.1f} +- {b['eval_return_std']:<5.0f} "
            f"{b['eval_length_mean']:>7.0f}"
        )
        ratio = r.get("steps_per_s_ratio_ours_over_brax")
        check = o.get("eval_return_brax_loop")
        print(
            f"{'':8} ours/brax steps/s = {ratio if ratio is not None else '-'}x; "
            f"return at {o['env_steps']:,} steps: ours {o['eval_return_mean']:.1f} vs brax "
            f"{b['eval_return_mean']:.1f}"
            + ("" if check is None else f" (ours via the brax eval loop: {check:.1f})")
        )
    print(
        "ours: 'startup s' = 'compile s' (lower + compile of train), 'run s' the whole run.\n"
        "brax: 'run s' is epochs 2..E only; 'compile s' is epoch 1 minus its steps at the "
        "steady rate, 'startup s' the same from the ppo.train call (see the docstring)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["hopper", "ant"], choices=list(ENV_SETTINGS))
    parser.add_argument("--scale", choices=list(SCALES), default="cpu")
    parser.add_argument(
        "--total-timesteps",
        type=lambda s: int(float(s)),
        default=None,
        help="env steps per trainer and env (default: the scale's; rounded down to whole "
        "updates that divide into the Brax epochs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument(
        "--check-eval",
        action="store_true",
        help="also evaluate our policy with the loop used for Brax's (one more compile per env)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import brax

    scale = SCALES[args.scale]
    updates, total, epochs = budget(scale, args.total_timesteps or scale["total_timesteps"])
    device = jax.devices()[0]
    out_path = args.out or RESULTS / f"brax-{device.platform}-{args.scale}.json"
    # Backend start-up and first-compile costs go here, not into the first timed row.
    jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x) @ x)(jnp.ones((4, 4))))

    report = {
        "benchmark": "purejaxppo vs brax.training.agents.ppo.train",
        "date": datetime.date.today().isoformat(),
        "machine": machine_info() | {"brax": brax.__version__},
        "scale": args.scale,
        "seed": args.seed,
        "eval_episodes": args.eval_episodes,
        "eval": "deterministic, fresh envs, up to 1000 steps; ours purejaxppo.evaluate, "
        "brax make_inference_fn(params, deterministic=True) in benchmarks/brax.py's loop",
        "updates": updates,
        "env_steps": total,
        "brax_epochs": epochs,
        "settings": {},
        "results": {},
    }
    print(
        f"scale {args.scale}: {updates} updates x "
        f"{total // updates:,} steps = {total:,} env steps per trainer and env; "
        f"device {device.device_kind} ({device.platform})",
        flush=True,
    )
    for env in args.envs:
        config = our_config(env, scale, total)
        kwargs = brax_kwargs(env, scale, total, epochs, args.seed)
        report["settings"][env] = {
            "purejaxppo": {k: _jsonable(v) for k, v in vars(config).items() if k != "env_params"},
            "brax": {
                **{k: _jsonable(v) for k, v in kwargs.items()},
                "network_factory": {
                    "policy_hidden_layer_sizes": POLICY_HIDDEN,
                    "value_hidden_layer_sizes": VALUE_HIDDEN,
                    "activation": "swish (default)",
                    "distribution_type": "tanh_normal",
                },
                "environment": f"brax.envs.get_environment({env!r}, backend={BACKEND!r})",
            },
        }
        print(f"[{env}] purejaxppo ...", flush=True)
        ours = run_ours(env, config, args.seed, args.eval_episodes, args.check_eval)
        print(f"[{env}] purejaxppo: {json.dumps(ours)}", flush=True)
        print(f"[{env}] brax ...", flush=True)
        theirs = run_brax(env, kwargs, args.eval_episodes)
        print(f"[{env}] brax: {json.dumps(theirs)}", flush=True)
        row = {"purejaxppo": ours, "brax": theirs}
        if "steps_per_s" in theirs:
            row["steps_per_s_ratio_ours_over_brax"] = round(
                ours["steps_per_s"] / theirs["steps_per_s"], 3
            )
        report["results"][env] = row

    print_table(report)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out_path}")


if __name__ == "__main__":
    main()
