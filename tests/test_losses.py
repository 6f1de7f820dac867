"""PPO loss pieces against hand-computed numbers."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import Categorical, Config
from purejaxppo.core.losses import Batch, StepSettings, clipped_surrogate, ppo_loss
from purejaxppo.core.value_targets import value_loss

EPS = 0.2  # clip range: ratios are clipped to [0.8, 1.2]


@pytest.mark.parametrize(
    ("ratio", "adv", "expected"),
    [
        # positive advantage, ratio above 1 + eps: min(1.5*2 = 3.0, 1.2*2 = 2.4) = 2.4
        (1.5, 2.0, -2.4),
        # positive advantage, ratio below 1 - eps: min(0.5*2 = 1.0, 0.8*2 = 1.6) = 1.0
        (0.5, 2.0, -1.0),
        # negative advantage, ratio above 1 + eps: min(1.5*-2 = -3.0, 1.2*-2 = -2.4) = -3.0
        (1.5, -2.0, 3.0),
        # negative advantage, ratio below 1 - eps: min(0.5*-2 = -1.0, 0.8*-2 = -1.6) = -1.6
        (0.5, -2.0, 1.6),
        # inside the clip range: 1.1*2 = 2.2 and 0.9*-2 = -1.8
        (1.1, 2.0, -2.2),
        (0.9, -2.0, 1.8),
    ],
)
def test_clipped_surrogate_single(ratio, adv, expected):
    loss = clipped_surrogate(jnp.array([ratio]), jnp.array([adv]), EPS)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("ratio", "adv", "has_gradient"),
    [
        (1.5, 2.0, False),  # clipped: would gain more by moving further, no gradient
        (0.5, 2.0, True),  # pessimistic unclipped branch: gradient pulls ratio up
        (1.5, -2.0, True),
        (0.5, -2.0, False),
        (1.1, 2.0, True),
    ],
)
def test_clipped_surrogate_gradient_vanishes_only_when_clipped(ratio, adv, has_gradient):
    grad = jax.grad(lambda r: clipped_surrogate(r, jnp.array([adv]), EPS))(jnp.array([ratio]))
    # d/dratio of -ratio * A is -A when the unclipped branch is active.
    np.testing.assert_allclose(grad, [-adv] if has_gradient else [0.0], rtol=1e-6)


def test_clipped_surrogate_is_a_mean():
    ratio = jnp.array([1.5, 0.5, 1.5, 0.5])
    adv = jnp.array([2.0, 2.0, -2.0, -2.0])
    # -(2.4 + 1.0 - 3.0 - 1.6) / 4 = -(-1.2) / 4 = 0.3
    np.testing.assert_allclose(clipped_surrogate(ratio, adv, EPS), 0.3, rtol=1e-6)


@pytest.mark.parametrize(
    ("value", "old", "ret", "clipped", "unclipped"),
    [
        # Moved 1.0 from old (clipped to 1.2) towards the target 3:
        # plain (2 - 3)^2 = 1, clipped (1.2 - 3)^2 = 3.24; max = 3.24 -> 0.5 * 3.24 = 1.62
        (2.0, 1.0, 3.0, 1.62, 0.5),
        # Overshot the target 1.5: plain (2 - 1.5)^2 = 0.25, clipped (1.2 - 1.5)^2 = 0.09;
        # max = 0.25 -> 0.125 (the pessimistic max keeps the plain error)
        (2.0, 1.0, 1.5, 0.125, 0.125),
        # Inside the clip range: both (1.1 - 3)^2 = 3.61 -> 1.805
        (1.1, 1.0, 3.0, 1.805, 1.805),
        # Moved down past the range: clipped 0.8, plain (0 - 2)^2 = 4, clipped (0.8 - 2)^2
        # = 1.44; max = 4 -> 2.0
        (0.0, 1.0, 2.0, 2.0, 2.0),
    ],
)
def test_value_loss_pessimistic_max(value, old, ret, clipped, unclipped):
    args = (jnp.array([value]), jnp.array([old]), jnp.array([ret]), EPS)
    np.testing.assert_allclose(value_loss(*args, clip=True), clipped, rtol=1e-6)
    np.testing.assert_allclose(value_loss(*args, clip=False), unclipped, rtol=1e-6)


def test_value_loss_is_half_mean_squared_error():
    # 0.5 * mean((1-0)^2, (2-4)^2) = 0.5 * (1 + 4) / 2 = 1.25
    loss = value_loss(jnp.array([1.0, 2.0]), jnp.zeros(2), jnp.array([0.0, 4.0]), 100.0, True)
    np.testing.assert_allclose(loss, 1.25, rtol=1e-6)


class StubNetwork(NamedTuple):
    """network.apply(params, obs) -> (Categorical(params["logits"]), params["value"])."""

    def apply(self, params, obs):
        n = obs.shape[0]
        logits = jnp.broadcast_to(params["logits"], (n, params["logits"].shape[-1]))
        return Categorical(logits), jnp.broadcast_to(params["value"], (n,))


def test_ppo_loss_combines_parts_with_coefficients():
    # Uniform policy over 2 actions; the behaviour policy had the same log-probs, so
    # ratio = 1, approx_kl = 0, clip_frac = 0, policy loss = -mean(A) = -(1 + 3)/2 = -2.
    # value 1 vs returns [2, 0], old value 1 (no clipping effect):
    #   value loss = 0.5 * ((1-2)^2 + (1-0)^2) / 2 = 0.5
    # entropy = log 2 = 0.693147
    # total = -2 + 0.5*0.5 - 0.01*0.693147 = -1.75693147
    config = Config(advantage_norm="off", vf_coef=0.5, ent_coef=0.01)
    params = {"logits": jnp.zeros(2), "value": jnp.array(1.0)}
    batch = Batch(
        obs=jnp.zeros((2, 4)),
        action=jnp.array([0, 1]),
        log_prob=jnp.full(2, -np.log(2.0), jnp.float32),
        value=jnp.array([1.0, 1.0]),
        advantages=jnp.array([1.0, 3.0]),
        returns=jnp.array([2.0, 0.0]),
    )
    loss, metrics = ppo_loss(params, StubNetwork(), config, batch, settings_of(config))
    np.testing.assert_allclose(metrics["policy_loss"], -2.0, rtol=1e-6)
    np.testing.assert_allclose(metrics["value_loss"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(metrics["entropy"], np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(metrics["approx_kl"], 0.0, atol=1e-7)
    np.testing.assert_allclose(metrics["clip_frac"], 0.0, atol=0)
    np.testing.assert_allclose(loss, -2.0 + 0.25 - 0.01 * np.log(2.0), rtol=1e-6)

    # With advantage normalisation, A = [1, 3] -> [-1, 1] (mean 2, std 1), so the
    # policy loss is -mean([-1, 1]) = 0.
    _, metrics = ppo_loss(
        params,
        StubNetwork(),
        config.replace(advantage_norm="minibatch"),
        batch,
        settings_of(config),
    )
    np.testing.assert_allclose(metrics["policy_loss"], 0.0, atol=1e-6)


def test_ppo_loss_ratio_metrics():
    # Old log-probs log(0.25) vs new log(0.5): ratio 2 for both samples.
    #   approx_kl = mean((r - 1) - log r) = 1 - log 2 = 0.306853
    #   clip_frac = 1 (|2 - 1| > 0.2)
    config = Config(advantage_norm="off")
    params = {"logits": jnp.zeros(2), "value": jnp.array(0.0)}
    batch = Batch(
        obs=jnp.zeros((2, 4)),
        action=jnp.array([0, 1]),
        log_prob=jnp.full(2, np.log(0.25), jnp.float32),
        value=jnp.zeros(2),
        advantages=jnp.ones(2),
        returns=jnp.zeros(2),
    )
    _, metrics = ppo_loss(params, StubNetwork(), config, batch, settings_of(config))
    np.testing.assert_allclose(metrics["approx_kl"], 1.0 - np.log(2.0), rtol=1e-5)
    np.testing.assert_allclose(metrics["clip_frac"], 1.0)
    # Clipped: min(2 * 1, 1.2 * 1) = 1.2 -> policy loss -1.2
    np.testing.assert_allclose(metrics["policy_loss"], -1.2, rtol=1e-6)


def settings_of(config: Config) -> StepSettings:
    return StepSettings(
        lr=config.lr, clip_eps=config.clip_eps, beta=config.kl_beta_init, ent_coef=config.ent_coef
    )


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        # Old policy [0.25, 0.75], new policy uniform [0.5, 0.5]; actions [0, 1], so the
        # ratios are 0.5/0.25 = 2 and 0.5/0.75 = 2/3, and A = [1, 3] (not normalised).
        #   KL(old || new) = 0.25 log(0.25/0.5) + 0.75 log(0.75/0.5) = 0.1308121
        #   kl_penalty:      -mean([2*1, (2/3)*3]) + 0.5 * 0.1308121 = -2 + 0.0654061
        #   clip+kl_penalty: -mean([min(2, 1.2)*1, min(2/3, 0.8)*3]) + 0.0654061
        #                  = -mean([1.2, 2]) + 0.0654061 = -1.6 + 0.0654061
        ("kl_penalty", -2.0 + 0.5 * 0.1308121),
        ("clip+kl_penalty", -1.6 + 0.5 * 0.1308121),
        ("clip", -1.6),
    ],
)
def test_kl_penalty_objectives_by_hand(objective, expected):
    config = Config(advantage_norm="off", objective=objective, kl_beta_init=0.5)
    params = {"logits": jnp.zeros(2), "value": jnp.array(0.0)}
    old = jnp.log(jnp.array([[0.25, 0.75], [0.25, 0.75]]))
    batch = Batch(
        obs=jnp.zeros((2, 4)),
        action=jnp.array([0, 1]),
        log_prob=jnp.log(jnp.array([0.25, 0.75])),
        value=jnp.zeros(2),
        advantages=jnp.array([1.0, 3.0]),
        returns=jnp.zeros(2),
        old_dist=Categorical(old),
    )
    _, metrics = ppo_loss(params, StubNetwork(), config, batch, settings_of(config))
    np.testing.assert_allclose(metrics["policy_loss"], expected, rtol=1e-5)
    if objective != "clip":
        np.testing.assert_allclose(metrics["kl_penalty"], 0.1308121, rtol=1e-5)
