"""Dynamical Similarity Analysis: invariances, symmetry, telling dynamics apart, noise, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cortexsim.analysis import DSAResult, dsa, fit_operator, hankel, procrustes_angle


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Single-threaded BLAS: the results are the same, and a multi-threaded OpenBLAS busy-waits on a shared machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


def haar(r: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((r, r)))
    return Q * np.sign(np.diag(R))


def linear_system(
    A: np.ndarray, n_trials: int, n_steps: int, noise: float, rng: np.random.Generator, P: np.ndarray
) -> np.ndarray:
    """Trials of z' = A z + noise from random starts, read out as z @ P; shape (trials, time, units)."""
    z = rng.normal(size=(n_trials, A.shape[0]))
    out = np.empty((n_trials, n_steps, A.shape[0]))
    for t in range(n_steps):
        out[:, t] = z
        z = z @ A.T + noise * rng.normal(size=z.shape)
    return out @ P


def rotation_plus_decay(theta: float) -> np.ndarray:
    A = np.diag([0.0, 0.0, 0.9, 0.6])
    A[:2, :2] = 0.97 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return A


@pytest.fixture(scope="module")
def system():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(4, 10))
    return rng, P, linear_system(rotation_plus_decay(0.2), 20, 60, 0.05, rng, P)


def test_hankel_stacks_delays_most_recent_first():
    X = np.arange(2 * 5 * 2, dtype=float).reshape(2, 5, 2)
    H = hankel(X, 3)
    assert H.shape == (2, 3, 6)
    np.testing.assert_array_equal(H[1, 0], np.concatenate([X[1, 2], X[1, 1], X[1, 0]]))
    np.testing.assert_array_equal(H[0, 2], np.concatenate([X[0, 4], X[0, 3], X[0, 2]]))


def test_operator_of_a_noise_free_linear_system_has_its_eigenvalues():
    rng = np.random.default_rng(1)
    A = rotation_plus_decay(0.3)
    X = linear_system(A, 10, 40, 0.0, rng, rng.normal(size=(4, 7)))
    fit = fit_operator(X, n_delays=1, center=False)
    assert fit.rank == 4 and fit.r2 == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(
        np.sort_complex(np.linalg.eigvals(fit.operator)), np.sort_complex(np.linalg.eigvals(A)), atol=1e-9
    )


def test_orthogonal_transform_and_rescaling_give_distance_zero(system):
    rng, _, X = system
    Y = 3.7 * X @ haar(X.shape[2], rng)
    result = dsa(X, Y)
    assert isinstance(result, DSAResult)
    assert result.distance < 1e-6
    C = result.rotation
    np.testing.assert_allclose(C @ C.T, np.eye(result.rank), atol=1e-10)
    np.testing.assert_allclose(C @ result.operator_x @ C.T, result.operator_y, atol=1e-6)


def test_distance_is_symmetric(system):
    rng, P, X = system
    Y = linear_system(rotation_plus_decay(0.35), 20, 60, 0.05, rng, P)
    d_xy, d_yx = dsa(X, Y).distance, dsa(Y, X).distance
    assert d_xy > 0.05
    assert d_xy == pytest.approx(d_yx, abs=1e-6)


def test_procrustes_recovers_a_hidden_rotation_and_the_symmetric_closed_form():
    rng = np.random.default_rng(2)
    for r in (3, 8, 15):
        A = rng.normal(size=(r, r)) / np.sqrt(r)
        C = haar(r, rng)
        C[:, 0] *= -1  # a reflection: the other component of O(r)
        angle, found = procrustes_angle(A, 2.0 * C @ A @ C.T)
        assert angle < 1e-6
        np.testing.assert_allclose(found @ A @ found.T, C @ A @ C.T, atol=1e-6)
        S, T = rng.normal(size=(2, r, r))
        S, T = S + S.T, T + T.T  # symmetric: the optimum aligns sorted eigenvalues (von Neumann)
        exact = np.sort(np.linalg.eigvalsh(S)) @ np.sort(np.linalg.eigvalsh(T))
        exact /= np.linalg.norm(S) * np.linalg.norm(T)
        assert procrustes_angle(S, T)[0] == pytest.approx(np.arccos(exact), abs=1e-8)
        # and never worse than no rotation at all
        B = rng.normal(size=(r, r))
        assert procrustes_angle(A, B)[0] <= np.arccos(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B))) + 1e-12


# -- line attractor, point attractor and bistable system with the same condition averages ------------------------------
T, TRIALS, SIGMA, OBSERVATION = 50, 40, 0.03, 0.001
COHERENCE = np.array([-1.0, -0.5, -0.25, 0.25, 0.5, 1.0])


def condition_means() -> np.ndarray:
    """The common condition-averaged latent trajectories (conditions, time, 2): a choice axis and a transient."""
    t = np.arange(T)
    mean = np.zeros((COHERENCE.size, T, 2))
    mean[:, :, 0] = (np.sign(COHERENCE) * (0.8 + 0.2 * np.abs(COHERENCE)))[:, None] * (1 - np.exp(-t / 2.0))
    mean[:, :, 1] = 0.5 * (t / 6.0) * np.exp(-t / 6.0)
    return mean


DYNAMICS = {  # the recurrent part of z' = f(z) + u_c(t) + noise, along the choice axis (the other decays at 0.6)
    "line": lambda z0: z0,  # every point of the axis is a fixed point
    "point": lambda z0: 0.8 * z0,  # one attracting fixed point
    "bistable": lambda z0: z0 + 0.3 * (z0 - z0**3),  # attractors at +-1, a saddle at 0
}


def simulate(kind: str, rng: np.random.Generator, P: np.ndarray) -> np.ndarray:
    """Single trials (conditions x trials, time, units) whose inputs make the noise-free path the common mean.

    As in Galgali et al. (2023, Nat. Neurosci.): the input of each condition is
    u_c(t) = m_c(t+1) - f(m_c(t)), so every system's condition averages are m_c
    (exactly for the linear systems, to sampling error for the bistable one),
    while the trial-to-trial fluctuations evolve by each system's own dynamics.
    """

    def f(z):
        return np.stack([DYNAMICS[kind](z[..., 0]), 0.6 * z[..., 1]], axis=-1)

    mean = condition_means()
    u = np.repeat(mean[:, 1:] - f(mean[:, :-1]), TRIALS, axis=0)
    z = [np.repeat(mean[:, 0], TRIALS, axis=0)]
    for k in range(T - 1):
        z.append(f(z[-1]) + u[:, k] + SIGMA * rng.normal(size=z[-1].shape))
    z = np.stack(z, axis=1)
    return z @ P + OBSERVATION * rng.normal(size=(z.shape[0], T, P.shape[1]))


def residuals(X: np.ndarray) -> np.ndarray:
    """Trials minus their condition's average (conditions are consecutive blocks of TRIALS trials)."""
    Z = X.reshape(COHERENCE.size, TRIALS, T, -1)
    return (Z - Z.mean(axis=1, keepdims=True)).reshape(X.shape)


def averages(X: np.ndarray) -> np.ndarray:
    return X.reshape(COHERENCE.size, TRIALS, T, -1).mean(axis=1)


@pytest.fixture(scope="module")
def three_systems():
    rng = np.random.default_rng(3)
    P = np.linalg.qr(rng.normal(size=(20, 2)))[0].T  # the latent plane in 20 units
    return {(kind, rep): simulate(kind, rng, P) for kind in DYNAMICS for rep in range(2)}, P


def test_the_three_systems_have_near_identical_condition_averages(three_systems):
    data, P = three_systems
    mean = condition_means() @ P
    for X in data.values():
        assert np.abs(averages(X) - mean).max() < 0.1 * np.abs(mean).max()
    # so their averaged dynamics cannot be told apart, by DSA or otherwise
    for a, b in itertools.combinations(data, 2):
        assert dsa(averages(data[a]), averages(data[b])).distance < 0.01


def test_dsa_tells_line_point_and_bistable_dynamics_apart(three_systems):
    """On the single-trial fluctuations, different systems are far apart and two realisations of one are close."""
    data, _ = three_systems
    within, between = [], []
    for a, b in itertools.combinations(data, 2):
        distance = dsa(residuals(data[a]), residuals(data[b])).distance
        (within if a[0] == b[0] else between).append(distance)
    assert len(within) == 3 and len(between) == 12
    assert max(within) < 0.03
    assert min(between) > 3 * max(within)


def test_small_noise_moves_the_distance_little(system):
    rng, P, X = system
    other = dsa(X, linear_system(rotation_plus_decay(0.35), 20, 60, 0.05, rng, P)).distance
    scale = X.std()
    distances = [dsa(X, X + level * scale * rng.normal(size=X.shape)).distance for level in (0.001, 0.01, 0.05)]
    assert distances[0] < 0.005
    assert distances[1] < 0.03 < other
    assert distances[0] <= distances[1] <= distances[2]


def test_rules_and_overrides(system):
    _, _, X = system
    result = dsa(X[:, :, :2], X[:, :, :2])  # 2 units: 5 delays make a 10-dimensional embedding
    assert result.n_delays == 5 and result.distance < 1e-7
    forced = dsa(X, X, n_delays=3, rank=5)
    assert (forced.n_delays, forced.rank) == (3, 5) and forced.operator_x.shape == (5, 5)
    assert fit_operator(X, variance_fraction=0.5).rank < fit_operator(X, variance_fraction=0.999).rank
    assert "rad" in repr(forced)


def test_bad_input_is_reported_clearly(system):
    _, _, X = system
    with pytest.raises(ValueError, match="3-D"):
        dsa(X[0], X)
    with pytest.raises(ValueError, match="n_delays"):
        dsa(X, X, n_delays=100)
    with pytest.raises(ValueError, match="variance_fraction"):
        dsa(X, X, variance_fraction=1.5)
    flat = dsa(np.ones((3, 10, 2)), X)  # a constant input has no dynamics: undefined, not an error
    assert np.isnan(flat.distance) and "constant" in flat.undefined
    with pytest.raises(ValueError, match="square"):
        procrustes_angle(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="zeros"):
        procrustes_angle(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="Generator"):
        procrustes_angle(np.eye(2), np.eye(2), rng=3)


def _ref_ascend(A, B, C, max_iter, gtol):
    """dsa._ascend as first written (every constant remade each step): the fast one must match it bit for bit."""

    def cayley(C, W, tau):
        eye = np.eye(C.shape[0])
        return np.linalg.solve(eye - 0.5 * tau * W, (eye + 0.5 * tau * W) @ C)

    def value_and_direction(C):
        G = B @ C @ A.T + B.T @ C @ A
        W = G @ C.T - C @ G.T
        return float(np.sum((C @ A @ C.T) * B)), W

    f, W = value_and_direction(C)
    tau = 1.0 / max(np.linalg.norm(A) * np.linalg.norm(B), 1e-300)
    prev_C = prev_grad = None
    for it in range(max_iter):
        slope = 0.5 * np.sum(W * W)
        if np.sqrt(2 * slope) <= gtol:
            break
        grad = W @ C
        if prev_C is not None:
            S, Y = C - prev_C, grad - prev_grad
            sy = abs(np.sum(S * Y))
            if sy > 0:
                tau = np.sum(S * S) / sy if it % 2 else sy / max(np.sum(Y * Y), 1e-300)
        for _back in range(40):
            C_new = cayley(C, W, tau)
            f_new, W_new = value_and_direction(C_new)
            if f_new >= f + 1e-4 * tau * slope:
                break
            tau *= 0.5
        else:
            break
        prev_C, prev_grad = C, grad
        if f_new - f <= 1e-15 * max(abs(f), 1e-300):
            C, f, W = C_new, f_new, W_new
            break
        C, f, W = C_new, f_new, W_new
    return f, C


@pytest.mark.parametrize("r", [2, 5, 10])
def test_ascent_matches_the_reference_bit_for_bit(r):
    from cortexsim.analysis.dsa import _ascend, _haar

    rng = np.random.default_rng(r)
    for _ in range(3):
        A, B = rng.normal(size=(r, r)), rng.normal(size=(r, r))
        A, B = A / np.linalg.norm(A), B / np.linalg.norm(B)
        C = _haar(r, rng)
        for max_iter in (3, 1000):
            f, C_out = _ascend(A, B, C, max_iter, 1e-12)
            ref_f, ref_C = _ref_ascend(A, B, C, max_iter, 1e-12)
            assert f == ref_f
            np.testing.assert_array_equal(C_out, ref_C)
