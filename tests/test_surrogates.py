"""Tensor Maximum Entropy surrogates and the shuffle control: moments kept, structure destroyed, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cortexsim.analysis import (
    SurrogateTest,
    fit_tme,
    jpca,
    marginal_covariances,
    shuffle_surrogates,
    surrogate_p_value,
    tme_mean,
    tme_surrogates,
)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Single-threaded BLAS: the results are the same, and a multi-threaded OpenBLAS busy-waits on a shared machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


def structured(seed: int = 0, shape: tuple[int, int, int] = (6, 20, 9)) -> np.ndarray:
    """Data with a mean, smooth time courses, correlated units and condition tuning (not dominated by one mode)."""
    rng = np.random.default_rng(seed)
    c, t, n = shape
    time = np.linspace(0, 1, t)
    basis = np.stack([np.sin(2 * np.pi * k * time + k) for k in range(1, 5)], axis=1)  # (time, 4)
    x = np.einsum("tk,ckn->ctn", basis, rng.normal(size=(c, 4, n)))
    return 5.0 + x + 0.5 * rng.normal(size=shape) + np.linspace(0, 2, n)


def planted_rotations(seed: int = 0) -> np.ndarray:
    """Conditions rotating in one plane at 2 Hz with condition-specific phase and amplitude, 30 units, dt = 10 ms."""
    rng = np.random.default_rng(seed)
    c, t, n = 8, 40, 30
    time = np.arange(t) * 0.01
    phase, amp = rng.uniform(0, 2 * np.pi, c), rng.uniform(0.5, 1.5, c)
    angle = 2 * np.pi * 2.0 * time[None] + phase[:, None]
    latent = amp[:, None, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return 10 + 5 * latent @ rng.normal(size=(2, n)) + 0.3 * rng.normal(size=(c, t, n))


def rotation_strength(X: np.ndarray) -> float:
    return jpca(X, dt=0.01, n_pcs=4).r2_skew


def test_mean_tensor_is_the_additive_projection():
    x = structured()
    M = tme_mean(x)
    D = x - M
    for axes in ((0, 1), (0, 2), (1, 2)):
        np.testing.assert_allclose(D.mean(axis=axes), 0.0, atol=1e-12)
        np.testing.assert_allclose(M.mean(axis=axes), x.mean(axis=axes), atol=1e-12)
    # M = a(c) + b(t) + d(n): its second differences across any two modes vanish
    np.testing.assert_allclose(M[1:, 1:] - M[1:, :-1] - M[:-1, 1:] + M[:-1, :-1], 0.0, atol=1e-12)
    np.testing.assert_allclose(
        M[:, :, 1:] - M[:, :, :-1] - (M[:, :, 1:] - M[:, :, :-1]).mean(axis=(0, 1)), 0.0, atol=1e-12
    )
    np.testing.assert_allclose(tme_mean(M), M, atol=1e-12)


def test_marginal_covariances_share_one_trace():
    x = structured()
    sc, st, sn = marginal_covariances(x)
    assert sc.shape == (6, 6) and st.shape == (20, 20) and sn.shape == (9, 9)
    total = np.sum((x - tme_mean(x)) ** 2)
    assert np.trace(sc) == pytest.approx(total) and np.trace(st) == pytest.approx(total)
    assert np.trace(sn) == pytest.approx(total)


def test_fitted_distribution_has_exactly_the_data_marginal_covariances():
    x = structured()
    model = fit_tme(x)
    assert model.objective < 1e-20
    for mine, data in zip(model.marginal_covariances(), marginal_covariances(x)):
        np.testing.assert_allclose(mine, data, atol=1e-9 * np.abs(data).max())
    # a mode left out gets the isotropic covariance of the same trace
    partial = fit_tme(x, preserve=("time", "units"))
    sc, st, sn = partial.marginal_covariances()
    total = np.trace(marginal_covariances(x)[0])
    np.testing.assert_allclose(sc, np.eye(6) * total / 6, atol=1e-9 * total)
    np.testing.assert_allclose(st, marginal_covariances(x)[1], atol=1e-9 * total)
    assert partial.preserve == ("time", "units")


def sampling_ratio(surrogates: np.ndarray, target: np.ndarray, mode: int, mean: np.ndarray) -> float:
    """n ||mean of the surrogates' covariance - target||^2 / (mean squared deviation of one surrogate's covariance).

    About 1 when the surrogates' covariance is unbiased for ``target``; it grows with n for any bias.
    """
    covs = np.array([marginal_covariances(s, mean)[mode] for s in surrogates])
    average = covs.mean(axis=0)
    spread = np.mean(np.sum((covs - average) ** 2, axis=(1, 2)))
    return len(surrogates) * np.sum((average - target) ** 2) / spread


def test_surrogates_reproduce_the_three_marginal_covariances_within_sampling_error():
    x = structured(seed=1)
    rng = np.random.default_rng(2)
    model = fit_tme(x)
    surrogates = model.sample(1000, rng)
    assert surrogates.shape == (1000, *x.shape)
    data = marginal_covariances(x)
    for mode in range(3):
        ratio = sampling_ratio(surrogates, data[mode], mode, model.mean)
        assert ratio < 9.0  # within 3 standard errors
        error = np.linalg.norm(
            np.mean([marginal_covariances(s, model.mean)[mode] for s in surrogates], axis=0) - data[mode]
        ) / np.linalg.norm(data[mode])
        assert error < 0.05
    # the check has power: Gaussian noise with each entry's own variance (no covariance) fails it
    naive = model.mean + rng.normal(size=surrogates.shape) * np.abs(x - model.mean)
    assert max(sampling_ratio(naive, data[mode], mode, model.mean) for mode in range(3)) > 100


def test_surrogate_mean_is_the_data_mean_tensor():
    x = structured(seed=3)
    rng = np.random.default_rng(4)
    surrogates = tme_surrogates(x, 2000, rng)
    M = tme_mean(x)
    se = surrogates.std(axis=0, ddof=1) / np.sqrt(len(surrogates))
    z = (surrogates.mean(axis=0) - M) / se
    assert np.abs(z).max() < 5.0 and np.mean(z**2) == pytest.approx(1.0, abs=0.15)
    assert np.abs(surrogates[0] - x).max() > 0.1  # a surrogate is not the data


def test_low_rank_marginals_give_zero_variance_off_the_data_subspace():
    """More units than conditions x time: the unit covariance is rank-deficient, and so are the surrogates."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 40))
    model = fit_tme(x)
    assert model.eigenvectors[2].shape[1] <= 12
    surrogates = model.sample(20, rng) - model.mean
    Q = model.eigenvectors[2]
    off = surrogates - surrogates @ Q @ Q.T
    assert np.abs(off).max() < 1e-9 * np.abs(surrogates).max()
    np.testing.assert_allclose(
        model.marginal_covariances()[2],
        marginal_covariances(x)[2],
        atol=1e-6 * np.abs(marginal_covariances(x)[2]).max(),
    )


def test_tme_surrogates_destroy_planted_rotations():
    x = planted_rotations()
    result = surrogate_p_value(rotation_strength, x, 100, np.random.default_rng(6))
    assert isinstance(result, SurrogateTest) and result.null.shape == (100,)
    assert result.observed > 0.6
    assert np.mean(result.null < result.observed) >= 0.95  # higher than (nearly) every surrogate
    assert result.p_value < 0.05 and result.z > 2
    shuffled = surrogate_p_value(rotation_strength, x, 50, np.random.default_rng(7), method="shuffle")
    assert shuffled.p_value < 0.05


def test_the_test_is_calibrated_when_the_data_are_a_surrogate():
    """Data drawn from the TME distribution itself: small p values are rare."""
    model = fit_tme(planted_rotations(seed=1))
    rng = np.random.default_rng(8)
    p = [surrogate_p_value(rotation_strength, data, 19, rng).p_value for data in model.sample(20, rng)]
    assert np.mean(np.array(p) <= 0.05) <= 0.2
    assert np.median(p) > 0.2


def test_shuffle_surrogates_keep_each_units_responses():
    x = structured(seed=9)
    s = shuffle_surrogates(x, 5, np.random.default_rng(10))
    assert s.shape == (5, *x.shape)
    for k in range(5):
        for unit in range(x.shape[2]):
            # the unit's condition responses are a permutation of its own
            order = [int(np.flatnonzero(np.all(x[:, :, unit] == row, axis=1))[0]) for row in s[k, :, :, unit]]
            assert sorted(order) == list(range(x.shape[0]))
    assert np.any(s != x)


def test_bad_input_is_reported_clearly():
    x = structured()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="3-D"):
        tme_surrogates(x[0], 2, rng)
    with pytest.raises(ValueError, match="preserve"):
        fit_tme(x, preserve=("neurons",))
    with pytest.raises(ValueError, match="no variance"):
        fit_tme(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="Generator"):
        tme_surrogates(x, 2, 0)
    with pytest.raises(ValueError, match="method"):
        surrogate_p_value(rotation_strength, x, 2, rng, method="fourier")
    with pytest.raises(ValueError, match="finite"):
        surrogate_p_value(lambda X: float("nan"), x, 2, rng)
    with pytest.raises(ValueError, match="2 conditions"):
        shuffle_surrogates(x[:1], 2, rng)
    with pytest.raises(ValueError, match="shape of x"):
        marginal_covariances(x, np.zeros(3))
