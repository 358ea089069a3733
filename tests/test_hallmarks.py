"""Known answers for tangling, communication subspaces, the CFR and CMPT surrogates and score ceilings."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cortexsim.analysis import (
    cca_similarity,
    ceiling,
    cfr_surrogates,
    cmpt_surrogates,
    communication_subspace,
    jpca,
    marginal_covariances,
    reduced_rank_maps,
    split_halves,
    surrogate_p_value,
    tangling,
    tme_mean,
)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpool_limits(1, user_api="blas"):
        yield


def planted_rotations(seed: int = 0) -> np.ndarray:
    """Conditions rotating in one plane at 2 Hz, condition-specific phase and amplitude, 30 units, dt = 10 ms."""
    rng = np.random.default_rng(seed)
    c, t, n = 8, 40, 30
    time = np.arange(t) * 0.01
    phase, amp = rng.uniform(0, 2 * np.pi, c), rng.uniform(0.5, 1.5, c)
    angle = 2 * np.pi * 2.0 * time[None] + phase[:, None]
    latent = amp[:, None, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return 10 + 5 * latent @ rng.normal(size=(2, n)) + 0.3 * rng.normal(size=(c, t, n))


def rotation_strength(X: np.ndarray) -> float:
    return jpca(X, dt=0.01, n_pcs=4).r2_skew


# --- tangling --------------------------------------------------------------------------------------

H = 2 * np.pi / 200  # 200 samples per period; the grid holds t = 0 and t = pi exactly
T = np.arange(-10, 211) * H  # a little over one period, so the crossing times are interior points


def test_circle_is_untangled_with_the_hand_computed_value():
    """x = (cos t, sin t): xdot is x turned by 90 degrees, so ||dxdot|| = ||dx|| and
    Q = max d^2 / (d^2 + eps), at d = 2 (opposite points): 4 / (4 + eps) < 1."""
    circle = np.stack([np.cos(T), np.sin(T)], axis=1)[None]
    velocity = np.stack([-np.sin(T), np.cos(T)], axis=1)[None]
    eps = 0.01
    res = tangling(circle, dt=H, epsilon=eps, xdot=velocity)
    np.testing.assert_allclose(res.q.max(), 4 / (4 + eps), rtol=1e-9)
    # central differences (one-sided at the two ends) leave it untangled
    assert tangling(circle, dt=H, epsilon=eps).q.max() < 1.05


def test_figure_eight_is_tangled_at_its_crossing():
    """x = (sin t, sin 2t) crosses the origin at t = 0 and t = pi with velocities (1, 2) and (-1, 2):
    Q = ||(2, 0)||^2 / eps = 4 / eps there, the largest value of the trajectory."""
    eight = np.stack([np.sin(T), np.sin(2 * T)], axis=1)[None]
    velocity = np.stack([np.cos(T), 2 * np.cos(2 * T)], axis=1)[None]
    eps = 0.01
    res = tangling(eight, dt=H, epsilon=eps, xdot=velocity)
    crossing = int(np.argmin(np.abs(T)))
    np.testing.assert_allclose(res.q[0, crossing], 4 / eps, rtol=1e-9)
    np.testing.assert_allclose(res.q.max(), 4 / eps, rtol=1e-9)
    fd = tangling(eight, dt=H, epsilon=eps)
    np.testing.assert_allclose(fd.q[0, crossing], 4 * (np.sin(H) / H) ** 2 / eps, rtol=1e-6)
    circle = tangling(np.stack([np.cos(T), np.sin(T)], axis=1)[None], dt=H, epsilon=eps)
    assert fd.q90 > 10 * circle.q90


def test_tangling_default_epsilon_and_rotation_invariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 30, 5)).cumsum(axis=1)
    res = tangling(x, dt=0.01)
    flat = x.reshape(-1, 5)
    assert res.epsilon == pytest.approx(0.1 * np.mean(np.sum((flat - flat.mean(0)) ** 2, axis=1)))
    Q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    np.testing.assert_allclose(tangling(x @ Q + 3.0, dt=0.01).q, res.q, rtol=1e-8)
    assert res.q.shape == (3, 30)
    flat = tangling(np.ones((2, 5, 3)), dt=0.01)  # constant: undefined (NaN, with the reason), not an error
    assert np.isnan(flat.median) and np.isnan(flat.q).all() and "constant" in flat.undefined


# --- communication subspaces -------------------------------------------------------------------------


def test_reduced_rank_regression_finds_a_planted_rank_two_map():
    rng = np.random.default_rng(5)
    source = rng.normal(size=(10, 50, 30))
    B = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 15))
    target = source @ B + 0.5 * rng.normal(size=(10, 50, 15))
    res = communication_subspace(source, target, rng=np.random.default_rng(0))
    assert res.dimensions == 2
    assert res.performance[1] > 0.95 and res.performance[0] < 0.8
    assert res.full_performance > 0.95
    assert res.performance.shape == (15,) and res.n_folds == 8


def test_reduced_rank_regression_rank_one_and_full_maps():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6))
    B = rng.normal(size=(6, 4))
    maps = reduced_rank_maps(X - X.mean(0), X @ B - (X @ B).mean(0), 4, ridge=0.0)
    assert np.linalg.matrix_rank(maps[0]) == 1
    np.testing.assert_allclose(maps[3], B, atol=1e-8)  # full rank, no noise, no ridge: the true map


@pytest.mark.parametrize("shape", [(300, 12, 9), (120, 8, 20), (60, 25, 25)])
def test_fold_scores_equal_a_prediction_with_each_rank_map(shape):
    """The cumulative-sum scores of a fold equal scoring each reduced-rank map's own prediction."""
    from cortexsim.analysis.subspaces import _fold_scores, ridge_map

    n, p, q = shape
    rng = np.random.default_rng(n + p)
    X = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    Y = X @ rng.normal(size=(p, q)) * 0.3 + rng.normal(size=(n, q))
    xtr, ytr, xte, yte = X[: n // 2], Y[: n // 2], X[n // 2 :], Y[n // 2 :]
    mx, my = xtr.mean(0), ytr.mean(0)
    max_rank = min(p, q)
    scores, full = _fold_scores(xtr - mx, ytr - my, xte - mx, yte - my, max_rank, 1e-3)
    maps = reduced_rank_maps(xtr - mx, ytr - my, max_rank, 1e-3)
    total = np.sum((yte - my) ** 2)
    expected = [1 - np.sum((yte - my - (xte - mx) @ m) ** 2) / total for m in maps]
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-10)
    B = ridge_map(xtr - mx, ytr - my, 1e-3)
    assert full == pytest.approx(1 - np.sum((yte - my - (xte - mx) @ B) ** 2) / total, rel=1e-12)


def test_independent_populations_use_no_dimensions():
    rng = np.random.default_rng(2)
    res = communication_subspace(rng.normal(size=(8, 30, 10)), rng.normal(size=(8, 30, 6)))
    assert res.dimensions <= 1 and res.full_performance < 0.1


def fluctuating_pair(seed: int, communicate: bool, rank: int = 2, n_conditions: int = 4, n_trials: int = 30):
    """Source and target on single trials of few conditions: both driven by the same 10-dimensional smooth
    condition means; the target also gets a planted rank-``rank`` map of the source's own fluctuations
    (``communicate``) or of fluctuations independent of them."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, 40)
    latent = np.stack([np.stack([np.sin(2 * np.pi * (k + 1) * t + c) for k in range(10)], axis=1) for c in range(4)])
    latent = latent[:n_conditions]
    mean_s, mean_t = latent @ rng.normal(size=(10, 30)), latent @ rng.normal(size=(10, 20))
    labels = np.repeat(np.arange(n_conditions), n_trials)
    fluct = rng.normal(size=(labels.size, t.size, 30))
    B = rng.normal(size=(30, rank)) @ rng.normal(size=(rank, 20)) / np.sqrt(30)
    drive = (fluct if communicate else rng.normal(size=fluct.shape)) @ B
    source = mean_s[labels] + fluct
    target = mean_t[labels] + drive + 0.5 * rng.normal(size=(labels.size, t.size, 20))
    return source, target, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_rank_is_recovered_from_single_trials_of_few_conditions(seed):
    source, target, labels = fluctuating_pair(seed, communicate=True)
    res = communication_subspace(source, target, conditions=labels, rng=np.random.default_rng(0))
    assert res.dimensions == 2 and res.n_folds == 10
    assert res.performance[1] > res.performance[0] + 0.1 and res.full_performance > 0.7
    # the condition averages of the same data count the shared 10-dimensional drive: the inflation residuals avoid
    means = [np.stack([x[labels == c].mean(axis=0) for c in range(4)]) for x in (source, target)]
    assert communication_subspace(*means, rng=np.random.default_rng(0)).dimensions > 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_communication_gives_zero_dimensions_despite_a_shared_condition_drive(seed):
    source, target, labels = fluctuating_pair(seed, communicate=False)
    res = communication_subspace(source, target, conditions=labels, rng=np.random.default_rng(0))
    assert res.dimensions == 0 and res.full_performance < 0.01


def test_rank_zero_counts_when_the_best_rank_is_within_one_sem_of_zero():
    """Pure noise: whatever the best rank scores by chance, it is not one SEM above 0 -> 0 dimensions."""
    rng = np.random.default_rng(7)
    res = communication_subspace(
        rng.normal(size=(40, 20, 8)), rng.normal(size=(40, 20, 6)), conditions=np.arange(40) % 4
    )
    assert res.dimensions == 0
    best = int(np.argmax(res.performance))
    assert res.performance[best] - res.sem[best] <= 0


def test_single_trial_input_is_checked():
    x = np.zeros((6, 5, 3)) + np.arange(6)[:, None, None]
    with pytest.raises(ValueError, match="one label per trial"):
        communication_subspace(x, x, conditions=[0, 1])
    with pytest.raises(ValueError, match="at least 2 trials"):
        communication_subspace(x, x, conditions=[0, 0, 1, 1, 2, 3])


# --- CFR and CMPT ----------------------------------------------------------------------------------


def test_cmpt_keeps_unit_means_and_covariance_exactly_and_destroys_a_rotation():
    x = planted_rotations()
    s = cmpt_surrogates(x, 20, np.random.default_rng(3))
    flat = x.reshape(-1, x.shape[2])
    for sur in s:
        f = sur.reshape(-1, x.shape[2])
        np.testing.assert_allclose(f.mean(0), flat.mean(0), atol=1e-10)
        np.testing.assert_allclose(np.cov(f, rowvar=False), np.cov(flat, rowvar=False), atol=1e-9)
    result = surrogate_p_value(rotation_strength, x, 50, np.random.default_rng(4), method="cmpt")
    assert result.observed > 0.6 and result.p_value < 0.05 and result.mean < 0.3


def test_cfr_matches_the_marginal_covariances_and_destroys_a_rotation():
    x = planted_rotations()
    s, objective = cfr_surrogates(x, 10, np.random.default_rng(5), return_objective=True)
    assert np.all(objective < 1e-2)
    targets = marginal_covariances(x)
    for sur in s:
        for got, want in zip(marginal_covariances(sur, tme_mean(x)), targets):
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.1
    result = surrogate_p_value(rotation_strength, x, 30, np.random.default_rng(6), method="cfr")
    assert result.observed > 0.6 and result.p_value < 0.05


def test_cfr_time_readout_is_their_default_and_worse_here():
    x = planted_rotations()
    _, obj_time = cfr_surrogates(x, 3, np.random.default_rng(7), readout="time", return_objective=True)
    _, obj_units = cfr_surrogates(x, 3, np.random.default_rng(7), readout="units", return_objective=True)
    assert obj_units.max() < obj_time.min()


def test_surrogates_are_deterministic_and_check_input():
    x = planted_rotations()
    np.testing.assert_array_equal(
        cfr_surrogates(x, 2, np.random.default_rng(1)), cfr_surrogates(x, 2, np.random.default_rng(1))
    )
    np.testing.assert_array_equal(
        cmpt_surrogates(x, 2, np.random.default_rng(1)), cmpt_surrogates(x, 2, np.random.default_rng(1))
    )
    with pytest.raises(ValueError, match="2 conditions"):
        cfr_surrogates(x[:1], 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="readout"):
        cfr_surrogates(x, 2, np.random.default_rng(0), readout="space")
    with pytest.raises(ValueError, match="unknown"):
        surrogate_p_value(rotation_strength, x, 2, np.random.default_rng(0), method="fourier")


# --- ceilings --------------------------------------------------------------------------------------


def test_ceiling_of_a_model_with_itself_is_near_one_for_cca():
    rng = np.random.default_rng(8)
    x = planted_rotations()
    trials = x[:, None] + 0.3 * rng.normal(size=(x.shape[0], 10, *x.shape[1:]))
    a, b = split_halves(trials, np.random.default_rng(9))
    assert a.shape == x.shape
    value = ceiling(lambda p, q: cca_similarity(p, q, k=2), a, b)
    assert 0.95 < value <= 1.0
    noisy = x[:, None] + 30 * rng.normal(size=(x.shape[0], 10, *x.shape[1:]))
    assert ceiling(lambda p, q: cca_similarity(p, q, k=2), *split_halves(noisy, rng)) < value
    with pytest.raises(ValueError, match="2 trials"):
        split_halves(trials[:, :1], rng)
