"""Categorical, diagonal Gaussian and tanh-squashed Gaussian against closed-form numbers
and against an independent oracle (scipy.stats, scipy.integrate)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import Categorical, DiagGaussian
from purejaxppo.nn.distributions import sample_rows

HALF_LOG_2PI_E = 0.5 * (1.0 + math.log(2.0 * math.pi))  # 1.4189385


@pytest.mark.parametrize("n", [2, 3, 7])
def test_categorical_uniform_entropy_is_log_n(n):
    dist = Categorical(jnp.zeros((4, n)))
    np.testing.assert_allclose(dist.entropy(), np.full(4, math.log(n)), rtol=1e-6)


def test_categorical_log_prob_by_hand():
    # logits log([1, 2, 3]) -> probabilities [1/6, 2/6, 3/6]; shifting logits by a
    # constant must not matter.
    logits = jnp.log(jnp.array([[1.0, 2.0, 3.0]])) + 5.0
    dist = Categorical(jnp.repeat(logits, 3, axis=0))
    np.testing.assert_allclose(
        dist.log_prob(jnp.array([0, 1, 2])),
        [math.log(1 / 6), math.log(2 / 6), math.log(3 / 6)],  # -1.7918, -1.0986, -0.6931
        rtol=1e-5,
    )
    # H = -(1/6 log 1/6 + 1/3 log 1/3 + 1/2 log 1/2) = 0.298627 + 0.366204 + 0.346574
    np.testing.assert_allclose(dist.entropy(), np.full(3, 1.0114043), rtol=1e-5)


def test_categorical_kl_by_hand():
    # KL([0.5, 0.5] || [0.25, 0.75]) = 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75)
    #                                = 0.5 * 0.693147 + 0.5 * -0.405465 = 0.143841
    p = Categorical(jnp.log(jnp.array([0.5, 0.5])))
    q = Categorical(jnp.log(jnp.array([0.25, 0.75])))
    np.testing.assert_allclose(p.kl(q), 0.1438410, rtol=1e-5)
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-7)
    # KL is not symmetric: KL(q || p) = 0.25 log 0.5 + 0.75 log 1.5 = 0.130812
    np.testing.assert_allclose(q.kl(p), 0.1308120, rtol=1e-5)


def test_categorical_mode():
    dist = Categorical(jnp.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(dist.mode(), [1, 0])


def test_categorical_sample_frequencies():
    probs = np.array([0.2, 0.3, 0.5])
    n = 20_000
    dist = Categorical(jnp.broadcast_to(jnp.log(probs), (n, 3)))
    samples = np.asarray(dist.sample(jax.random.key(0)))
    freq = np.bincount(samples, minlength=3) / n
    # Binomial std <= sqrt(0.25 / 20000) = 0.0035; tolerance is ~5 std.
    np.testing.assert_allclose(freq, probs, atol=0.02)


def test_gaussian_log_prob_by_hand():
    # mean 1, std 2 (log_std = log 2), action 3: z = (3 - 1) / 2 = 1
    # log p = -z^2/2 - log 2 - log(2 pi)/2 = -0.5 - 0.693147 - 0.918939 = -2.112086
    dist = DiagGaussian(jnp.array([1.0]), jnp.log(jnp.array([2.0])))
    np.testing.assert_allclose(dist.log_prob(jnp.array([3.0])), -2.1120857, rtol=1e-6)
    # Two dimensions sum: the second is a standard normal at 0: -0.918939
    dist2 = DiagGaussian(jnp.array([1.0, 0.0]), jnp.log(jnp.array([2.0, 1.0])))
    np.testing.assert_allclose(dist2.log_prob(jnp.array([3.0, 0.0])), -3.0310242, rtol=1e-6)


def test_gaussian_entropy_by_hand():
    # sum(log_std + 0.5 * (1 + log 2 pi)) = (0 + 1.418939) + (0.693147 + 1.418939) = 3.531024
    log_std = jnp.array([0.0, math.log(2.0)])
    dist = DiagGaussian(jnp.zeros((5, 2)), log_std)  # log_std broadcast over the batch
    np.testing.assert_allclose(
        dist.entropy(), np.full(5, 2 * HALF_LOG_2PI_E + math.log(2.0)), rtol=1e-6
    )
    np.testing.assert_allclose(dist.entropy()[0], 3.5310242, rtol=1e-6)


def test_gaussian_kl_by_hand():
    # KL(N(0, 1) || N(1, 2^2)) = log(2/1) + (1 + (0 - 1)^2) / (2 * 4) - 1/2
    #                          = 0.693147 + 0.25 - 0.5 = 0.443147
    p = DiagGaussian(jnp.array([0.0]), jnp.array([0.0]))
    q = DiagGaussian(jnp.array([1.0]), jnp.array([math.log(2.0)]))
    np.testing.assert_allclose(p.kl(q), 0.4431472, rtol=1e-6)
    np.testing.assert_allclose(p.kl(p), 0.0, atol=1e-7)
    # Per-dimension KLs add: [p, p] vs [q, p] = 0.443147 + 0
    p2 = DiagGaussian(jnp.zeros(2), jnp.zeros(2))
    q2 = DiagGaussian(jnp.array([1.0, 0.0]), jnp.array([math.log(2.0), 0.0]))
    np.testing.assert_allclose(p2.kl(q2), 0.4431472, rtol=1e-6)


def test_gaussian_mode_is_mean():
    mean = jnp.array([[0.3, -1.2]])
    np.testing.assert_array_equal(DiagGaussian(mean, jnp.zeros(2)).mode(), mean)


def test_gaussian_sample_statistics():
    n = 20_000
    mean, std = np.array([1.0, -2.0]), np.array([0.5, 2.0])
    dist = DiagGaussian(jnp.broadcast_to(mean, (n, 2)), jnp.log(jnp.asarray(std)))
    samples = np.asarray(dist.sample(jax.random.key(1)))
    # Standard error of the mean <= 2 / sqrt(20000) = 0.014; of the std ~0.5%.
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(samples.std(0), std, rtol=0.03)


def test_log_prob_matches_entropy_in_expectation():
    # -E[log p(a)] over samples estimates the entropy.
    n = 20_000
    cat = Categorical(jnp.broadcast_to(jnp.array([0.0, 1.0, 2.0]), (n, 3)))
    a = cat.sample(jax.random.key(2))
    np.testing.assert_allclose(-cat.log_prob(a).mean(), cat.entropy()[0], rtol=0.03)
    gauss = DiagGaussian(jnp.zeros((n, 2)), jnp.array([0.3, -0.5]))
    x = gauss.sample(jax.random.key(3))
    np.testing.assert_allclose(-gauss.log_prob(x).mean(), gauss.entropy()[0], rtol=0.03)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_sample_rows_do_not_depend_on_batching(kind):
    # Row i is drawn from keys[i] alone, so drawing 3 rows or 8 gives the same first 3.
    keys = jax.random.split(jax.random.key(4), 8)
    if kind == "categorical":
        dist = Categorical(jax.random.normal(jax.random.key(5), (8, 4)))
        head = Categorical(dist.logits[:3])
    else:
        dist = DiagGaussian(jax.random.normal(jax.random.key(5), (8, 2)), jnp.zeros(2))
        head = DiagGaussian(dist.mean[:3], dist.log_std)
    full = sample_rows(dist, keys)
    np.testing.assert_array_equal(sample_rows(head, keys[:3]), full[:3])
    # Row i drawn alone from keys[i] is row i of the batched draw; reversing the rows
    # and the keys together reverses the draws.
    for i in range(8):
        row = jax.tree.map(lambda x, i=i: x[i : i + 1] if x.ndim == 2 else x, dist)
        np.testing.assert_array_equal(sample_rows(row, keys[i : i + 1])[0], full[i])
    flipped = jax.tree.map(lambda x: x[::-1] if x.ndim == 2 else x, dist)
    np.testing.assert_array_equal(sample_rows(flipped, keys[::-1]), full[::-1])
    # ...and different keys give different draws.
    other = sample_rows(dist, jax.random.split(jax.random.key(6), 8))
    assert not np.array_equal(np.asarray(other), np.asarray(full))


def test_sample_rows_statistics():
    n = 20_000
    keys = jax.random.split(jax.random.key(7), n)
    probs = np.array([0.6, 0.4])
    cat = Categorical(jnp.broadcast_to(jnp.log(probs), (n, 2)))
    freq = np.bincount(np.asarray(sample_rows(cat, keys)), minlength=2) / n
    np.testing.assert_allclose(freq, probs, atol=0.02)
    gauss = DiagGaussian(jnp.full((n, 1), 3.0), jnp.array([math.log(0.5)]))
    x = np.asarray(sample_rows(gauss, keys))
    assert x.shape == (n, 1)
    np.testing.assert_allclose(x.mean(), 3.0, atol=0.02)
    np.testing.assert_allclose(x.std(), 0.5, rtol=0.03)


# ---- tanh-squashed Gaussian --------------------------------------------------------------


def _tanh_dist(mean, log_std, low=-1.0, high=1.0):
    from purejaxppo import TanhGaussian

    d = np.shape(mean)[-1]
    return TanhGaussian(
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(log_std, jnp.float32),
        jnp.full((d,), low, jnp.float32),
        jnp.full((d,), high, jnp.float32),
    )


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (-2.0, 2.0), (0.0, 3.0)])
def test_tanh_gaussian_log_prob_is_the_density_of_the_squashed_action(low, high):
    """exp(log_prob(u)) against a finite-difference density of y = squash(u) computed
    from the Gaussian CDF: P(y in [y0 - h, y0 + h]) / 2h."""
    from scipy.stats import norm as normal

    mean, std = 0.3, 0.8
    dist = _tanh_dist([[mean]], [math.log(std)], low, high)
    half = 0.5 * (high - low)
    for u in (-2.0, -0.5, 0.0, 0.7, 1.5):
        y = low + (math.tanh(u) + 1.0) * half
        h = 1e-4 * half

        def pre(yv):  # inverse of the squash
            return math.atanh((yv - low) / half - 1.0)

        prob = normal.cdf(pre(y + h), mean, std) - normal.cdf(pre(y - h), mean, std)
        numeric = prob / (2 * h)
        ours = float(jnp.exp(dist.log_prob(jnp.array([[u]])))[0])
        np.testing.assert_allclose(ours, numeric, rtol=1e-3)


def test_tanh_gaussian_log_prob_stable_when_saturated():
    dist = _tanh_dist([[0.0]], [0.0])
    lp = dist.log_prob(jnp.array([[30.0]]))  # tanh(30) == 1.0 in float32
    # Gaussian part -0.5*900 - 0.919; log(1 - tanh^2) ~ log 4 - 60.
    expected = -450.0 - 0.5 * math.log(2 * math.pi) - (math.log(4.0) - 60.0)
    np.testing.assert_allclose(float(lp[0]), expected, rtol=1e-5)


def test_tanh_gaussian_entropy_against_monte_carlo():
    mean = np.array([[0.0, 1.5, -0.7]], np.float32)
    log_std = np.array([0.0, -1.0, 0.5], np.float32)
    dist = _tanh_dist(mean, log_std, -2.0, 2.0)
    u = mean + np.exp(log_std) * np.random.default_rng(0).normal(size=(400_000, 3))
    mc = -float(jnp.mean(dist.log_prob(jnp.asarray(u, jnp.float32))))
    np.testing.assert_allclose(float(dist.entropy()[0]), mc, atol=5e-3)


def test_tanh_gaussian_squash_maps_into_bounds_and_kl_is_the_gaussians():
    dist = _tanh_dist([[0.0, 2.0]], [0.0, 0.0], -3.0, 1.0)
    y = dist.squash(jnp.array([[-50.0, 0.0], [50.0, 0.0]]))
    np.testing.assert_allclose(y, [[-3.0, -1.0], [1.0, -1.0]], atol=1e-6)
    other = _tanh_dist([[0.5, 1.0]], [0.3, -0.2], -3.0, 1.0)
    gauss = DiagGaussian(dist.mean, dist.log_std).kl(DiagGaussian(other.mean, other.log_std))
    np.testing.assert_allclose(dist.kl(other), gauss, rtol=1e-6)


# ---- against an independent oracle (scipy.stats, scipy.integrate) ------------------------


def test_categorical_against_scipy():
    from scipy import special
    from scipy import stats as st

    logits = np.asarray(jax.random.normal(jax.random.key(20), (6, 5)), np.float64) * 2.0
    other = np.asarray(jax.random.normal(jax.random.key(21), (6, 5)), np.float64)
    actions = np.array([0, 4, 2, 1, 3, 4])
    p, q = special.softmax(logits, axis=-1), special.softmax(other, axis=-1)
    dist = Categorical(jnp.asarray(logits, jnp.float32))
    one_hot = np.eye(5)[actions]
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(actions)),
        [st.multinomial(1, p[i]).logpmf(one_hot[i]) for i in range(6)],
        rtol=1e-5,
    )
    np.testing.assert_allclose(dist.entropy(), st.entropy(p, axis=-1), rtol=1e-5)
    # scipy.stats.entropy(p, q) is KL(p || q).
    np.testing.assert_allclose(
        dist.kl(Categorical(jnp.asarray(other, jnp.float32))),
        st.entropy(p, q, axis=-1),
        rtol=1e-4,
        atol=1e-7,
    )


def test_diag_gaussian_against_scipy():
    from scipy import stats as st

    rng = np.random.default_rng(22)
    mean, log_std = rng.normal(size=(4, 3)), rng.normal(scale=0.5, size=3)
    mean2, log_std2 = rng.normal(size=(4, 3)), rng.normal(scale=0.5, size=3)
    x = rng.normal(size=(4, 3)) * 2.0
    std, std2 = np.exp(log_std), np.exp(log_std2)
    dist = DiagGaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32))
    other = DiagGaussian(jnp.asarray(mean2, jnp.float32), jnp.asarray(log_std2, jnp.float32))
    mvn = [st.multivariate_normal(mean[i], np.diag(std**2)) for i in range(4)]
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(x, jnp.float32)),
        [mvn[i].logpdf(x[i]) for i in range(4)],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(x, jnp.float32)), st.norm(mean, std).logpdf(x).sum(-1), rtol=1e-5
    )
    np.testing.assert_allclose(dist.entropy(), [m.entropy() for m in mvn], rtol=1e-5)
    # KL(N1 || N2) for full covariances: (tr(S2^-1 S1) + d' S2^-1 d - k + log|S2|/|S1|) / 2.
    s1, s2 = np.diag(std**2), np.diag(std2**2)
    inv2 = np.linalg.inv(s2)
    expected = []
    for i in range(4):
        d = mean2[i] - mean[i]
        logdet = np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1]
        expected.append(0.5 * (np.trace(inv2 @ s1) + d @ inv2 @ d - 3 + logdet))
    np.testing.assert_allclose(dist.kl(other), expected, rtol=1e-5)


def test_gaussian_kl_against_numerical_integration():
    from scipy import integrate
    from scipy import stats as st

    p, q = st.norm(0.4, 0.7), st.norm(-0.5, 1.3)
    kl, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -12, 12)
    ours = DiagGaussian(jnp.array([0.4]), jnp.log(jnp.array([0.7]))).kl(
        DiagGaussian(jnp.array([-0.5]), jnp.log(jnp.array([1.3])))
    )
    np.testing.assert_allclose(float(ours), kl, rtol=1e-5)


def _log_sech2(u):
    """log(1 - tanh(u)^2) in float64, stable for large |u|."""
    a = np.abs(u)
    return 2.0 * (math.log(2.0) - a - np.log1p(np.exp(-2.0 * a)))


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (0.0, 3.0)])
def test_tanh_gaussian_log_prob_by_change_of_variables(low, high):
    from scipy import stats as st

    # y = low + (tanh(u) + 1) * half, so p_Y(y) = p_U(u) / |dy/du| with
    # dy/du = half * (1 - tanh(u)^2), per dimension.
    rng = np.random.default_rng(23)
    mean, log_std = rng.normal(size=(5, 2)), rng.normal(scale=0.4, size=2)
    u = mean + np.exp(log_std) * rng.normal(size=(5, 2)) * 1.5
    half = 0.5 * (high - low)
    expected = (st.norm(mean, np.exp(log_std)).logpdf(u) - math.log(half) - _log_sech2(u)).sum(-1)
    dist = _tanh_dist(mean, log_std, low, high)
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(u, jnp.float32)), expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("mean", "std", "atol"),
    [(0.0, 0.3, 1e-5), (1.2, 0.7, 1e-5), (-0.4, 1.0, 1e-4), (0.5, 2.0, 5e-3)],
)
def test_tanh_gaussian_entropy_against_quadrature(mean, std, atol):
    """H(y) = H(u) + E[log |dy/du|], the expectation by adaptive quadrature (scipy's
    quad); the Gauss-Hermite rule's documented error grows with std (~3e-3 at std 2)."""
    from scipy import integrate
    from scipy import stats as st

    low, high = -2.0, 2.0
    u = st.norm(mean, std)
    log_det, _ = integrate.quad(
        lambda x: u.pdf(x) * (math.log(0.5 * (high - low)) + _log_sech2(x)),
        mean - 12 * std,
        mean + 12 * std,
    )
    expected = u.entropy() + log_det
    ours = float(_tanh_dist([[mean]], [math.log(std)], low, high).entropy()[0])
    np.testing.assert_allclose(ours, expected, atol=atol)


def test_state_dependent_std_head():
    """Config(state_dependent_std=True): no state-independent log_std parameter; a
    second head gives std = softplus(head) + 0.001, starting at exp(log_std_init) near
    every state, and varying with the state once the head's weights move; its gradient
    reaches the head; both Gaussian kinds build on it."""
    import purejaxppo
    from purejaxppo import Config
    from purejaxppo.config import MIN_STD
    from purejaxppo.core.setup import make_setup
    from purejaxppo.nn.networks import init_params, make_network

    for dist_kind in ("gaussian", "tanh_gaussian"):
        config = Config(env="Pendulum-v1", continuous_dist=dist_kind)
        config = config.replace(state_dependent_std=True, log_std_init=-0.5)
        spec = make_setup(config).spec
        network = make_network(config, spec)
        params = init_params(network, config, spec, jax.random.key(0))
        assert "log_std" not in params["params"] and "std_head" in params["params"]
        obs = jax.random.normal(jax.random.key(1), (8, 3)) * 3.0
        log_std = network.apply(params, obs, method="policy").log_std
        assert log_std.shape == (8, 1)
        np.testing.assert_allclose(log_std, -0.5, atol=0.02)  # a 0.01-gain head
        moved = jax.tree.map(lambda x: x, params)
        kernel = params["params"]["std_head"]["kernel"]
        moved["params"]["std_head"]["kernel"] = jnp.ones_like(kernel)
        log_std = np.asarray(network.apply(moved, obs, method="policy").log_std)
        assert log_std.std() > 0.1  # now a function of the state
        std = np.exp(log_std)
        assert (std > MIN_STD).all()

        def mean_log_std(p, network=network, obs=obs):
            return network.apply(p, obs, method="policy").log_std.mean()

        grad = jax.grad(mean_log_std)(params)["params"]["std_head"]["kernel"]
        assert np.abs(np.asarray(grad)).sum() > 0
    with pytest.raises(ValueError, match=r"Config\.log_std_init=-7: with state_dependent_std"):
        Config(env="Pendulum-v1", state_dependent_std=True, log_std_init=-7.0)
    Config(env="Pendulum-v1", log_std_init=-7.0)  # a state-independent std has no floor
    out = jax.jit(purejaxppo.train)(
        Config(env="Pendulum-v1", state_dependent_std=True, num_envs=4, num_steps=16,
               num_minibatches=2, total_timesteps=4 * 16 * 3),
        jax.random.key(0),
    )  # fmt: skip
    assert np.isfinite(np.asarray(out.metrics["policy_loss"])).all()
