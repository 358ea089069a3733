"""cortexsim.analysis: known answers for PCA, similarity measures, jPCA, decoding and nulls.

Ground truths are built so the answer is known analytically: rotated and scaled
copies, exactly k equal-variance dimensions, linear systems with purely
rotational or purely decaying dynamics, kinematics that are (or are not) a
linear readout of the activity.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from cortexsim.analysis import (
    bootstrap_ci,
    cca_similarity,
    decode_kinematics,
    jpca,
    linear_cka,
    participation_ratio,
    pca,
    rdm,
    rsa,
    shape_distance,
    shuffle_null,
)

# ----------------------------------------------------------------------------- helpers


def orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Random (n, k) matrix with orthonormal columns (a square one is a random rotation)."""
    q, r = np.linalg.qr(rng.normal(size=(n, k)))
    return q * np.sign(np.diag(r))


def latent_pair(rng, n_x=15, n_y=12, shared=5, noise=0.3, shape=(10, 8)):
    """Two populations driven by a shared latent plus private noise; (conditions, time, units) each."""
    z = rng.normal(size=(*shape, shared))
    x = z @ rng.normal(size=(shared, n_x)) + noise * rng.normal(size=(*shape, n_x))
    y = z @ rng.normal(size=(shared, n_y)) + noise * rng.normal(size=(*shape, n_y))
    return x, y


def rotational_data(rng, freqs=(3.0, 1.5, 0.7), n_cond=8, n_time=60, n_units=30, dt=0.01, noise=1e-3):
    """Each pair of latents rotates at one frequency (Hz); random amplitude and phase per condition."""
    t = np.arange(n_time) * dt
    latent = np.zeros((n_cond, n_time, 2 * len(freqs)))
    for i, f in enumerate(freqs):
        amp = rng.uniform(0.5, 2.0, size=(n_cond, 1))
        phase = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, size=(n_cond, 1))
        latent[:, :, 2 * i] = amp * np.cos(phase)
        latent[:, :, 2 * i + 1] = amp * np.sin(phase)
    embed = orthonormal(rng, n_units, latent.shape[-1])
    return latent @ embed.T + noise * rng.normal(size=(n_cond, n_time, n_units)), embed


def decaying_data(rng, taus=(0.05, 0.08, 0.1, 0.15, 0.2, 0.3), n_cond=8, n_time=60, n_units=30, dt=0.01):
    """dx/dt = -x / tau per latent (a symmetric system: no rotation), random initial state per condition."""
    t = np.arange(n_time)[:, None] * dt
    latent = rng.normal(size=(n_cond, 1, len(taus))) * np.exp(-t / np.asarray(taus))
    embed = orthonormal(rng, n_units, len(taus))
    return latent @ embed.T + 1e-3 * rng.normal(size=(n_cond, n_time, n_units))


def linear_system_trials(rng, n_trials=30, n_time=40, n_units=20, dt=0.01):
    """Activity from a 4-D rotating latent (2 and 1 Hz) embedded in units plus a little noise."""
    angles = 2 * np.pi * np.array([2.0, 1.0]) * dt
    A = np.zeros((4, 4))
    for i, a in enumerate(angles):
        A[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    latent = np.empty((n_trials, n_time, 4))
    latent[:, 0] = rng.normal(size=(n_trials, 4))
    for k in range(1, n_time):
        latent[:, k] = latent[:, k - 1] @ A.T
    X = latent @ rng.normal(size=(4, n_units)) + 0.01 * rng.normal(size=(n_trials, n_time, n_units))
    return X, latent


PAIRED = {
    "cca": cca_similarity,
    "cka": linear_cka,
    "rsa": rsa,
    "shape_a1": shape_distance,
    "shape_a05": functools.partial(shape_distance, alpha=0.5),
    "shape_a0": functools.partial(shape_distance, alpha=0.0),
}
HIGHER_IS_MORE_SIMILAR = {name: not name.startswith("shape") for name in PAIRED}
IDENTICAL = {"cca": 1.0, "cka": 1.0, "rsa": 1.0, "shape_a1": 0.0, "shape_a05": 0.0, "shape_a0": 0.0}

# ----------------------------------------------------------------------------- PCA


def test_pca_matches_the_covariance_eigendecomposition():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 20, 8)) @ rng.normal(size=(8, 8))
    res = pca(X)
    flat = X.reshape(-1, 8)
    eig = np.sort(np.linalg.eigvalsh(np.cov(flat.T)))[::-1]
    np.testing.assert_allclose(res.explained_variance, eig, rtol=1e-10)
    np.testing.assert_allclose(res.explained_variance_ratio.sum(), 1.0)
    np.testing.assert_allclose(res.components @ res.components.T, np.eye(8), atol=1e-12)
    np.testing.assert_allclose(res.project(X) @ res.components + res.mean, X, atol=1e-10)
    assert pca(X, n_components=3).project(X).shape == (6, 20, 3)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_participation_ratio_of_k_equal_variance_dimensions_is_k(k):
    rng = np.random.default_rng(k)
    z = rng.normal(size=(400, k))
    z, _ = np.linalg.qr(z - z.mean(axis=0))  # centred, orthonormal columns: k exactly equal variances
    X = (z @ orthonormal(rng, 30, k).T).reshape(20, 20, 30)
    assert participation_ratio(X) == pytest.approx(k, rel=1e-9)


def test_participation_ratio_of_unequal_variances():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 3))
    z, _ = np.linalg.qr(z - z.mean(axis=0))
    sd = np.sqrt([1.0, 0.1, 0.1])
    X = (z * sd) @ orthonormal(rng, 10, 3).T
    assert participation_ratio(X) == pytest.approx(1.2**2 / 1.02, rel=1e-9)


# ----------------------------------------------------------------------------- similarity


@pytest.mark.parametrize("name", PAIRED)
def test_identical_inputs_have_the_identity_value(name):
    X, _ = latent_pair(np.random.default_rng(2))
    assert PAIRED[name](X, X.copy()) == pytest.approx(IDENTICAL[name], abs=1e-6)


@pytest.mark.parametrize("name", ["cca", "cka", "shape_a1", "shape_a05", "shape_a0"])
def test_rotated_scaled_copy_is_identical(name):
    rng = np.random.default_rng(3)
    X, _ = latent_pair(rng)
    Y = 3.7 * X @ orthonormal(rng, X.shape[2], X.shape[2])
    assert PAIRED[name](X, Y) == pytest.approx(IDENTICAL[name], abs=1e-6)


def test_euclidean_rsa_of_a_rotated_copy_is_one():
    rng = np.random.default_rng(4)
    X, _ = latent_pair(rng)
    assert rsa(X, 0.5 * X @ orthonormal(rng, X.shape[2], X.shape[2]), metric="euclidean") == pytest.approx(1.0)


def test_embedding_into_more_units_is_identical():
    """A copy rotated into a larger unit space: the smaller side is, in effect, zero-padded."""
    rng = np.random.default_rng(5)
    X, _ = latent_pair(rng, n_x=8)
    Y = 2.0 * X @ orthonormal(rng, 20, 8).T
    assert shape_distance(X, Y) == pytest.approx(0.0, abs=1e-6)
    assert linear_cka(X, Y) == pytest.approx(1.0)
    assert cca_similarity(X, Y, k=8) == pytest.approx(1.0)


def test_whitening_alpha_sets_what_counts_as_a_difference():
    """alpha = 0 (and CCA) ignore any invertible linear map; alpha = 1 (and CKA) do not."""
    rng = np.random.default_rng(6)
    X, _ = latent_pair(rng, n_x=10)
    Y = X @ (rng.normal(size=(10, 10)) * np.logspace(0, 1.5, 10))
    assert shape_distance(X, Y, alpha=0.0) == pytest.approx(0.0, abs=1e-6)
    assert cca_similarity(X, Y) == pytest.approx(1.0)
    assert shape_distance(X, Y, alpha=1.0) > 0.1
    assert linear_cka(X, Y) < 0.95


@pytest.mark.parametrize("name", PAIRED)
def test_symmetric(name):
    X, Y = latent_pair(np.random.default_rng(7))
    assert PAIRED[name](X, Y) == pytest.approx(PAIRED[name](Y, X), abs=1e-10)


def random_triple(rng: np.random.Generator, layout: str) -> list[np.ndarray]:
    """Three populations: noisy views of one latent, or a mixture lying between two others.

    The "between" layout is nearly collinear, where a non-metric (e.g. 1 - cos of
    the angle instead of the angle) breaks the triangle inequality.
    """
    if layout == "latent":
        z = rng.normal(size=(10, 8, 4))
        sizes, noise = rng.integers(5, 14, size=3), rng.uniform(0.1, 2.0, size=3)
        return [z @ rng.normal(size=(4, n)) + s * rng.normal(size=(10, 8, n)) for n, s in zip(sizes, noise)]
    a, c = rng.normal(size=(10, 8, 10)), rng.normal(size=(10, 8, 10))
    w = rng.uniform(0.3, 0.7)
    return [a, w * a / np.linalg.norm(a) + (1 - w) * c / np.linalg.norm(c), c]


@pytest.mark.parametrize("layout", ["latent", "between"])
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_shape_distance_triangle_inequality(layout, alpha, seed):
    reps = random_triple(np.random.default_rng(100 + seed), layout)
    d = {(i, j): shape_distance(reps[i], reps[j], alpha=alpha) for i, j in itertools.permutations(range(3), 2)}
    assert all(0 < v <= np.pi / 2 for v in d.values())
    for i, j, k in itertools.permutations(range(3)):
        assert d[i, k] <= d[i, j] + d[j, k] + 1e-10


@pytest.mark.parametrize("n_units", [5, 60])  # fewer and more units than samples (both code paths)
def test_linear_cka_matches_its_formula(n_units):
    rng = np.random.default_rng(24)
    X, Y = rng.normal(size=(4, 6, n_units)), rng.normal(size=(4, 6, 7))
    x = X.reshape(24, -1) - X.reshape(24, -1).mean(axis=0)
    y = Y.reshape(24, -1) - Y.reshape(24, -1).mean(axis=0)
    expected = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    assert linear_cka(X, Y) == pytest.approx(expected, rel=1e-12)


def test_rdm_is_one_minus_pearson_between_condition_patterns():
    X, _ = latent_pair(np.random.default_rng(8))
    D = rdm(X)
    np.testing.assert_allclose(D, 1.0 - np.corrcoef(X.reshape(X.shape[0], -1)), atol=1e-12)
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_allclose(np.diag(D), 0.0, atol=1e-12)


# ----------------------------------------------------------------------------- jPCA


def test_jpca_recovers_purely_rotational_dynamics():
    rng = np.random.default_rng(9)
    freqs = (3.0, 1.5, 0.7)
    X, embed = rotational_data(rng, freqs)
    res = jpca(X, dt=0.01, n_pcs=6, soft_normalize=False)
    assert res.ratio > 0.95
    assert res.frequencies_hz[0] == pytest.approx(freqs[0], rel=0.05)
    np.testing.assert_allclose(res.frequencies_hz, freqs, rtol=0.05)
    basis = np.concatenate(list(res.planes), axis=1)  # (units, 6): all plane axes together
    np.testing.assert_allclose(basis.T @ basis, np.eye(6), atol=1e-10)
    for p in range(3):
        assert np.rad2deg(subspace_angles(res.planes[p], embed[:, 2 * p : 2 * p + 2])).max() < 2.0
    assert res.variance_explained.sum() == pytest.approx(1.0)
    assert res.projections.shape == (8, 60, 3, 2)
    # every plane's trajectories turn counter-clockwise (from axis 1 towards axis 2)
    p, dp = res.projections[:, :-1], np.diff(res.projections, axis=1)
    assert np.all(np.mean(p[..., 0] * dp[..., 1] - p[..., 1] * dp[..., 0], axis=(0, 1)) > 0)


def test_jpca_with_soft_normalisation_still_finds_the_rotation():
    X, _ = rotational_data(np.random.default_rng(10))
    X = 20.0 + 10.0 * X  # rates in Hz
    res = jpca(X, dt=0.01)
    np.testing.assert_allclose(res.norm_factors, np.ptp(X.reshape(-1, X.shape[2]), axis=0) + 5.0)
    assert res.ratio > 0.9
    assert res.frequencies_hz[0] == pytest.approx(3.0, rel=0.05)


def test_jpca_of_decaying_dynamics_is_not_rotational():
    res = jpca(decaying_data(np.random.default_rng(11)), dt=0.01, soft_normalize=False)
    assert res.r2_best > 0.9
    assert res.ratio < 0.2


def test_jpca_projections_are_the_windowed_data_on_the_planes():
    X, _ = rotational_data(np.random.default_rng(12))
    res = jpca(X, dt=0.01, n_pcs=4, soft_normalize=False, window=(10, 50))
    data = (X - X.mean(axis=0))[:, 10:50]
    expected = np.einsum("ctu,puj->ctpj", data - data.reshape(-1, 30).mean(axis=0), res.planes)
    np.testing.assert_allclose(res.projections, expected, atol=1e-10)
    assert res.projections.shape == (8, 40, 2, 2)


@pytest.mark.parametrize(("n_pcs", "n_planes"), [(2, 1), (5, 2), (6, 3)])
def test_jpca_has_n_pcs_over_two_planes(n_pcs, n_planes):
    X, _ = rotational_data(np.random.default_rng(13))
    res = jpca(X, dt=0.01, n_pcs=n_pcs)
    assert res.planes.shape == (n_planes, 30, 2)
    assert res.frequencies_hz.shape == res.variance_explained.shape == (n_planes,)
    assert np.all(np.diff(res.frequencies_hz) <= 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt": 0.0}, "dt must be"),
        ({"dt": 0.01, "n_pcs": 1}, "n_pcs=1"),
        ({"dt": 0.01, "n_pcs": 31}, "n_pcs=31"),
        ({"dt": 0.01, "window": (50, 51)}, "window="),
        ({"dt": 0.01, "window": (0, 61)}, "window="),
        ({"dt": 0.01, "window": 5}, "pair of time indices"),
    ],
)
def test_jpca_rejects_bad_arguments(kwargs, match):
    X, _ = rotational_data(np.random.default_rng(14))
    with pytest.raises(ValueError, match=match):
        jpca(X, **kwargs)


# ----------------------------------------------------------------------------- decoding


def test_decoding_a_linear_readout():
    rng = np.random.default_rng(15)
    X, latent = linear_system_trials(rng)
    positions = latent @ rng.normal(size=(4, 2)) * 0.05 + 1e-4 * rng.normal(size=(*latent.shape[:2], 2))
    res = decode_kinematics(X, positions, dt=0.01, rng=np.random.default_rng(0))
    assert res.position_r2 > 0.95
    assert res.velocity_r2 > 0.9
    assert res.predicted_position.shape == positions.shape
    assert np.bincount(res.folds).tolist() == [6] * 5


def test_decoding_pure_noise_gives_no_skill():
    rng = np.random.default_rng(16)
    X, _ = linear_system_trials(rng)
    res = decode_kinematics(X, rng.normal(size=(*X.shape[:2], 2)), dt=0.01, rng=np.random.default_rng(0))
    assert res.position_r2 < 0.05
    assert res.velocity_r2 < 0.05


def test_decoding_folds_are_over_trials_not_time():
    """A per-trial code with unrelated per-trial positions: memorising a trial must not help."""
    rng = np.random.default_rng(17)
    n_trials, n_time, n_units = 20, 30, 40
    X = rng.normal(size=(n_trials, 1, n_units)) + 0.01 * rng.normal(size=(n_trials, n_time, n_units))
    positions = np.repeat(rng.normal(size=(n_trials, 1, 2)), n_time, axis=1)
    assert decode_kinematics(X, positions, dt=0.01).position_r2 < 0.1


# ----------------------------------------------------------------------------- nulls and intervals


@pytest.mark.parametrize("name", PAIRED)
def test_independent_inputs_are_within_the_condition_null(name):
    rng = np.random.default_rng(18)
    X, Y = rng.normal(size=(12, 8, 10)), rng.normal(size=(12, 8, 9))
    res = shuffle_null(PAIRED[name], X, Y, n=100, rng=rng, higher_is_more_similar=HIGHER_IS_MORE_SIMILAR[name])
    assert res.p_value > 0.01
    assert res.null.shape == (100,)


@pytest.mark.parametrize("kind", ["condition", "time"])
@pytest.mark.parametrize("name", PAIRED)
def test_related_inputs_beat_the_null(name, kind):
    rng = np.random.default_rng(19)
    X = rng.normal(size=(12, 8, 10))
    Y = X @ rng.normal(size=(10, 9)) + 0.3 * rng.normal(size=(12, 8, 9))
    higher = HIGHER_IS_MORE_SIMILAR[name]
    res = shuffle_null(PAIRED[name], X, Y, kind=kind, n=50, rng=rng, higher_is_more_similar=higher)
    assert res.p_value < 0.05
    assert res.z > 0
    # the same data with the direction reversed is never "more similar than chance"
    flipped = shuffle_null(PAIRED[name], X, Y, kind=kind, n=50, rng=rng, higher_is_more_similar=not higher)
    assert flipped.p_value > 0.9


def test_shuffles_move_every_condition_and_keep_the_data():
    rng = np.random.default_rng(20)
    X = rng.normal(size=(6, 10, 3))
    unchanged = shuffle_null(
        lambda a, b: float(np.mean([np.array_equal(x, y) for x, y in zip(a, b)])),
        X, X, kind="time", n=30, rng=rng, higher_is_more_similar=True,
    )  # fmt: skip
    assert unchanged.observed == 1.0 and np.all(unchanged.null == 0.0)
    total = shuffle_null(lambda a, b: float(b.sum()), X, X, n=10, rng=rng, higher_is_more_similar=True)
    np.testing.assert_allclose(total.null, X.sum())


@pytest.mark.parametrize("over", ["units", "conditions"])
def test_bootstrap_ci_separates_related_from_unrelated(over):
    rng = np.random.default_rng(21)
    X, Y = latent_pair(rng, noise=0.2)
    related = bootstrap_ci(linear_cka, X, Y, over=over, n=50, rng=np.random.default_rng(1))
    unrelated = bootstrap_ci(linear_cka, X, rng.normal(size=Y.shape), over=over, n=50, rng=np.random.default_rng(1))
    assert 0 <= unrelated.low <= unrelated.high < related.low <= related.high <= 1
    assert related == bootstrap_ci(linear_cka, X, Y, over=over, n=50, rng=np.random.default_rng(1))


# ----------------------------------------------------------------------------- bad inputs


def _null(X, Y):
    return shuffle_null(linear_cka, X, Y, n=2, rng=np.random.default_rng(0), higher_is_more_similar=True)


def _boot(X, Y):
    return bootstrap_ci(linear_cka, X, Y, n=2, rng=np.random.default_rng(0))


TWO_INPUT = {**PAIRED, "shuffle_null": _null, "bootstrap_ci": _boot}


@pytest.mark.parametrize("name", TWO_INPUT)
@pytest.mark.parametrize(
    ("y_shape", "match"), [((9, 8, 5), "same number of conditions"), ((10, 7, 5), "same number of time steps")]
)
def test_mismatched_conditions_or_time_are_rejected(name, y_shape, match):
    rng = np.random.default_rng(22)
    with pytest.raises(ValueError, match=match):
        TWO_INPUT[name](rng.normal(size=(10, 8, 6)), rng.normal(size=y_shape))


ONE_INPUT = {
    "pca": pca,
    "participation_ratio": participation_ratio,
    "rdm": rdm,
    "jpca": functools.partial(jpca, dt=0.01),
    "decode": lambda X: decode_kinematics(X, np.zeros((*X.shape[:2], 2)), dt=0.01),
    **{name: (lambda X, f=f: f(X, X)) for name, f in TWO_INPUT.items()},
}


@pytest.mark.parametrize("name", ONE_INPUT)
@pytest.mark.parametrize("shape", [(10,), (2, 3, 4, 5)])
def test_wrong_ndim_is_rejected(name, shape):
    with pytest.raises(ValueError, match="must be a 3-D array"):
        ONE_INPUT[name](np.ones(shape))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda X: rdm(X, metric="spearman"), "metric='spearman'"),
        (lambda X: shape_distance(X, X, alpha=1.5), "alpha must be a number in \\[0, 1\\]"),
        (lambda X: cca_similarity(X, X, k=0), "k=0"),
        (lambda X: pca(X, n_components=50), "n_components=50"),
        (lambda X: linear_cka(X, np.where(X > 0, np.nan, X)), "NaN"),
        (lambda X: decode_kinematics(X, np.zeros((10, 8, 2)), dt=0.01), "positions must share"),
        (lambda X: decode_kinematics(X, np.ones((10, 5, 2)), dt=0.01, n_folds=1), "n_folds=1"),
        (lambda X: shuffle_null(rsa, X, X, kind="units", rng=np.random.default_rng(0), higher_is_more_similar=True),
         "kind='units'"),
        (lambda X: shuffle_null(rsa, X, X, rng=0, higher_is_more_similar=True), "numpy.random.Generator"),
        (lambda X: bootstrap_ci(rsa, X, X, level=95, rng=np.random.default_rng(0)), "level must be"),
    ],
)  # fmt: skip
def test_bad_arguments_are_rejected_with_a_clear_message(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.random.default_rng(23).normal(size=(10, 5, 6)))


def test_potent_null_known_answers():
    from cortexsim.analysis import potent_null

    rng = np.random.default_rng(0)
    units, conditions, steps = 20, 8, 30
    readout = np.zeros((2, units))
    readout[0, 0], readout[1, 1] = 1.0, 2.0  # the muscles read units 0 and 1 only
    rates = np.zeros((conditions, steps, units))
    angle = np.linspace(0, 2 * np.pi, conditions, endpoint=False)
    prep = np.zeros((conditions, steps), bool)
    prep[:, :10] = True
    move = np.zeros((conditions, steps), bool)
    move[:, 15:25] = True
    # preparation varies with the condition only in unread units, movement only in read ones
    rates[:, :10, 5] = np.cos(angle)[:, None]
    rates[:, :10, 6] = np.sin(angle)[:, None]
    rates[:, 15:25, 0] = 3 * np.cos(angle)[:, None]
    rates[:, 15:25, 1] = 3 * np.sin(angle)[:, None]
    rates += 5.0  # a common offset is no across-condition variance
    out = potent_null(rates, readout, prep, move)
    assert out.potent_dim == 2 and out.chance == pytest.approx(0.1)
    assert out.prep_potent == pytest.approx(0.0, abs=1e-12) and out.prep_null == pytest.approx(1.0)
    assert out.move_potent == pytest.approx(1.0, abs=1e-12)
    # isotropic activity puts the chance share in the potent space
    iso = rng.standard_normal((400, 12, units))
    mask = np.ones((400, 12), bool)
    assert potent_null(iso, readout, mask, mask).prep_potent == pytest.approx(0.1, abs=0.01)


# ----------------------------------------------------------------------------- fast paths against their references
# decode_kinematics (one factorisation for position and velocity, ridge from Gram sums) and
# shuffle_null (factorisations taken once) must give what the straightforward code gives: these
# are that code, as it was written before the fast paths.


def _ref_ridge_predict(train_x, train_y, test_x, alphas):
    mu, sd = train_x.mean(axis=0), train_x.std(axis=0)
    sd[sd == 0] = 1.0
    U, s, vt = np.linalg.svd((train_x - mu) / sd, full_matrices=False)
    y_mean = train_y.mean(axis=0)
    uty = U.T @ (train_y - y_mean)
    test_v = ((test_x - mu) / sd) @ vt.T
    shrink = s / (s**2 + alphas[:, None] * train_x.shape[0])
    return y_mean + np.einsum("mr,ar,rd->amd", test_v, shrink, uty)


def _ref_flat(a):
    return a.reshape(-1, a.shape[-1])


def _ref_choose_alpha(x, y, alphas):
    n_train = x.shape[0]
    n_inner = min(max(2, n_train // 2), 5, n_train)
    inner = np.arange(n_train) % n_inner
    sse = np.zeros(alphas.size)
    for k in range(n_inner):
        fit, held = inner != k, inner == k
        pred = _ref_ridge_predict(_ref_flat(x[fit]), _ref_flat(y[fit]), _ref_flat(x[held]), alphas)
        sse += np.sum((pred - _ref_flat(y[held])) ** 2, axis=(1, 2))
    best = np.flatnonzero(sse <= sse.min() * (1 + 1e-12))
    return float(alphas[best].max())


def _ref_cross_validated(x, y, folds, alphas):
    pred = np.empty_like(y)
    chosen = np.empty(folds.max() + 1)
    for k in range(chosen.size):
        train, test = folds != k, folds == k
        chosen[k] = _ref_choose_alpha(x[train], y[train], alphas)
        fit = _ref_ridge_predict(_ref_flat(x[train]), _ref_flat(y[train]), _ref_flat(x[test]), np.array([chosen[k]]))
        pred[test] = fit[0].reshape(y[test].shape)
    return pred, chosen


def _ref_decode(X, positions, dt, n_folds=5, rng=None):
    from cortexsim.analysis.decoding import DEFAULT_ALPHAS

    alphas = np.asarray(DEFAULT_ALPHAS)
    n_trials = X.shape[0]
    order = np.arange(n_trials) if rng is None else rng.permutation(n_trials)
    folds = np.empty(n_trials, dtype=int)
    folds[order] = np.arange(n_trials) % n_folds
    velocity = np.gradient(positions, dt, axis=1)
    return _ref_cross_validated(X, positions, folds, alphas), _ref_cross_validated(X, velocity, folds, alphas)


def _decoding_cases():
    """(name, X, positions, n_folds): Gram path, SVD fallback, constant and near-constant units."""
    rng = np.random.default_rng(40)
    X, latent = linear_system_trials(rng, n_trials=8, n_time=30, n_units=40)
    pos = latent @ rng.normal(size=(4, 2)) * 0.05 + 0.02 * rng.normal(size=(*latent.shape[:2], 2))
    yield "samples >> units", X, pos, 5
    wide = np.concatenate([X[:, :12], rng.normal(size=(8, 12, 80))], axis=2)
    yield "units > samples (SVD)", wide, pos[:, :12], 5
    silent = X.copy()
    silent[..., 3] = 0.0  # silent everywhere: SD 0 in every training set
    silent[:4, :, 5] = 7.0  # constant on four trials: SD 0 in some training sets
    silent[4:, :, 5] = 7.0 + rng.normal(size=(4, 30))
    yield "silent units", silent, pos, 5
    tenth = X.copy()
    tenth[..., 4] = 0.1  # constant at a value whose mean is not exact: an SD of round-off (SVD)
    yield "constant 0.1 (SVD)", tenth, pos, 5
    loud = X.copy()
    loud[:6, :, 7] = 3.0 + 1e-6 * rng.normal(size=(6, 30))  # varies on two trials only (SVD where they are out)
    loud[6:, :, 7] = 1e3 * rng.normal(size=(2, 30))
    yield "varying on two trials (SVD)", loud, pos, 5
    offset = X.copy()
    offset[..., 6] = 1e5 + 1e-4 * rng.normal(size=(8, 30))  # far from zero: the Gram sums would cancel
    yield "near-constant unit", offset, pos, 4
    few = X[..., :5] + 20.0  # rates with an offset, few units, three dimensions
    yield "few units", few, np.concatenate([pos, pos[..., :1] ** 2], axis=2), 3
    still = pos.copy()
    still[..., 1] = 0.3  # a coordinate that never moves: zero velocity
    yield "still coordinate", X, still, 5


@pytest.mark.parametrize("case", list(_decoding_cases()), ids=lambda c: c[0])
@pytest.mark.parametrize("seeded", [False, True])
def test_decoding_matches_the_direct_svd_ridge(case, seeded, monkeypatch):
    from cortexsim.analysis import decoding

    name, X, pos, n_folds = case
    svd_fits = []
    direct = decoding._ridge_predict
    monkeypatch.setattr(decoding, "_ridge_predict", lambda *args: svd_fits.append(1) or direct(*args))
    res = decode_kinematics(X, pos, dt=0.01, n_folds=n_folds, rng=np.random.default_rng(3) if seeded else None)
    # the Gram path is what is tested, except where the SVD must take over (named "(SVD)")
    assert bool(svd_fits) == name.endswith("(SVD)")
    (ref_pos, ref_ap), (ref_vel, ref_av) = _ref_decode(
        X, pos, 0.01, n_folds, np.random.default_rng(3) if seeded else None
    )
    np.testing.assert_array_equal(res.alpha_position, ref_ap)
    np.testing.assert_array_equal(res.alpha_velocity, ref_av)
    for got, want in ((res.predicted_position, ref_pos), (res.predicted_velocity, ref_vel)):
        assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


def _ref_shuffle_null(metric, X, Y, kind, n, rng, higher):
    """shuffle_null's values, p and draws as the plain loop computes them."""

    def shuffled(Y):
        if kind == "condition":
            return Y[rng.permutation(Y.shape[0])]
        shifts = rng.integers(1, Y.shape[1], size=Y.shape[0])
        return np.stack([np.roll(y, s, axis=0) for y, s in zip(Y, shifts)])

    observed = float(metric(X, Y))
    null = np.array([float(metric(X, shuffled(Y))) for _ in range(n)])
    hits = null >= observed if higher else null <= observed
    return observed, null, (1 + np.count_nonzero(hits)) / (1 + n)


NULL_METRICS = {
    **PAIRED,
    "cca_k3": functools.partial(cca_similarity, k=3),
    "rsa_cosine": functools.partial(rsa, metric="cosine"),
    "lambda": lambda a, b: cca_similarity(a, b, k=4),
}


@pytest.mark.parametrize("kind", ["condition", "time"])
@pytest.mark.parametrize("name", NULL_METRICS)
def test_shuffle_null_matches_the_plain_loop(name, kind):
    rng = np.random.default_rng(41)
    X = rng.normal(size=(7, 9, 6))
    Y = X @ rng.normal(size=(6, 5)) + rng.normal(size=(7, 9, 5))
    higher = not name.startswith("shape")
    res = shuffle_null(NULL_METRICS[name], X, Y, kind=kind, n=40, rng=np.random.default_rng(5),
                       higher_is_more_similar=higher)  # fmt: skip
    ref_rng = np.random.default_rng(5)
    observed, null, p = _ref_shuffle_null(NULL_METRICS[name], X, Y, kind, 40, ref_rng, higher)
    assert res.observed == observed and res.p_value == p
    np.testing.assert_allclose(res.null, null, rtol=1e-12, atol=1e-14)
    # the same draws, in the same order: the stream is left where the plain loop leaves it
    assert np.random.default_rng(5).bit_generator.state != ref_rng.bit_generator.state
    rest = np.random.default_rng(5)
    shuffle_null(NULL_METRICS[name], X, Y, kind=kind, n=40, rng=rest, higher_is_more_similar=higher)
    assert rest.bit_generator.state == ref_rng.bit_generator.state


@pytest.mark.parametrize("name", ["cca", "shape_a1", "shape_a0"])
def test_an_identity_shuffle_equals_the_observed_value_exactly(name):
    """Two conditions: half the permutations are the identity, whose value is the observed one, bit for bit."""
    rng = np.random.default_rng(42)
    X, Y = rng.normal(size=(2, 12, 4)), rng.normal(size=(2, 12, 4))
    res = shuffle_null(PAIRED[name], X, Y, n=30, rng=rng, higher_is_more_similar=True)
    assert 0 < np.count_nonzero(res.null == res.observed) < 30
