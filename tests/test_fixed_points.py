"""Fixed and slow points: known answers, gradients, the model adapters, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import brentq
from threadpoolctl import threadpool_limits

from cortexsim import rate as ratemod
from cortexsim.analysis import (
    FixedPoints,
    Jacobian,
    ann_map,
    find_fixed_points,
    mode_loadings,
    rate_map,
    sample_starts,
    speed_and_gradient,
)
from cortexsim.analysis import fixed_points as fpmod
from cortexsim.anatomy import default_m1_spec
from cortexsim.ann import make_ann
from cortexsim.circuit import build_connectome
from cortexsim.rate import RateNetwork
from cortexsim.tasks import TrialBatch
from cortexsim.transfer import make_transfer

METHODS = ["dense", "matrix-free"]


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Single-threaded BLAS: the results are the same, and a multi-threaded OpenBLAS busy-waits on a shared machine."""
    with threadpool_limits(1, user_api="blas"):
        yield


def linear_map(A: np.ndarray, b: np.ndarray):
    """x' = A x + b, with its Jacobian (full and matrix-free)."""
    d = A.shape[0]

    def step(X):
        return X @ A.T + b

    def full(X):
        return np.broadcast_to(A, (X.shape[0], d, d)).copy()

    return step, Jacobian(full, lambda X: (lambda V: V @ A.T, lambda V: V @ A))


def flip_flop(w: float = 2.0, seed: int = 0):
    """x' = P tanh(w P^-1 x): three independent bistable directions mixed by P (not orthogonal)."""
    rng = np.random.default_rng(seed)
    P = np.eye(3) + 0.3 * rng.normal(size=(3, 3))
    Pi = np.linalg.inv(P)

    def step(X):
        return np.tanh(w * X @ Pi.T) @ P.T

    def full(X):
        s = 1.0 - np.tanh(w * X @ Pi.T) ** 2
        return np.einsum("ij,nj,jk->nik", P, w * s, Pi)

    def linearize(X):
        s = w * (1.0 - np.tanh(w * X @ Pi.T) ** 2)
        return (lambda V: (s * (V @ Pi.T)) @ P.T, lambda V: (s * (V @ P)) @ Pi)

    return step, Jacobian(full, linearize), P


def small_network(n_units: int = 40, seed: int = 0) -> RateNetwork:
    rng = np.random.default_rng(seed)
    net = RateNetwork(build_connectome(default_m1_spec(), n_units, rng), make_transfer("lif_softplus"), 0.01)
    net.init_params(rng)
    return net


def trajectories(step, x0: np.ndarray, n_steps: int, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    out = [x0]
    for _ in range(n_steps - 1):
        out.append(step(out[-1]) + noise * rng.normal(size=x0.shape))
    return np.stack(out, axis=1)


# -- known answers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("radius, kind", [(0.9, "stable"), (1.5, "unstable")])
def test_linear_map_has_one_fixed_point_with_exact_eigenvalues(method, radius, kind):
    rng = np.random.default_rng(1)
    d = 6
    A = rng.normal(size=(d, d))
    A *= (
        radius / np.min(np.abs(np.linalg.eigvals(A)))
        if kind == "unstable"
        else radius / np.max(np.abs(np.linalg.eigvals(A)))
    )
    b = rng.normal(size=d)
    step, jac = linear_map(A, b)
    fp = find_fixed_points(step, rng.normal(0, 3, (40, d)), method=method, jacobian=jac)
    assert isinstance(fp, FixedPoints)
    assert fp.n_points == 1 and fp.kinds == (kind,) and fp.n_converged == 40 and fp.counts.tolist() == [40]
    np.testing.assert_allclose(fp.points[0], np.linalg.solve(np.eye(d) - A, b), atol=1e-9)
    expected = np.linalg.eigvals(A)
    expected = expected[np.argsort(-np.abs(expected), kind="stable")]
    np.testing.assert_allclose(np.abs(fp.eigenvalues[0]), np.abs(expected), rtol=1e-10)
    np.testing.assert_allclose(np.sort_complex(fp.eigenvalues[0]), np.sort_complex(expected), atol=1e-10)
    # the slowest modes are right eigenvectors: J v = lambda v
    for k in range(fp.modes.shape[2]):
        v = fp.modes[0, :, k]
        np.testing.assert_allclose(A @ v, fp.eigenvalues[0, k] * v, atol=1e-10)
        assert np.isclose(np.linalg.norm(v), 1.0)


def test_the_contract_signature_per_state_and_finite_difference_jacobians():
    """``find_fixed_points(step, x_init, *, jacobian=None, tol=1e-10)``: ``jacobian(x)`` at one state, or none."""
    Q = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    A = Q @ np.diag([0.9, 0.5, -0.3]) @ Q.T
    b = np.array([1.0, -2.0, 0.5])

    def step(X):
        return X @ A.T + b

    want = np.linalg.solve(np.eye(3) - A, b)
    starts = np.random.default_rng(6).normal(0, 2, (8, 3))
    for jacobian in (lambda x: A, None):
        fp = find_fixed_points(step, starts, jacobian=jacobian)
        assert fp.n_points == 1 and fp.stable.tolist() == [True]
        np.testing.assert_allclose(fp.points[0], want, atol=1e-8)
        np.testing.assert_allclose(np.abs(fp.eigenvalues[0]), [0.9, 0.5, 0.3], atol=1e-7)  # sorted by |lambda|
    unstable = find_fixed_points(lambda X: 2.0 * X, np.ones((2, 3)))
    assert unstable.stable.tolist() == [False] and unstable.q[0] < 1e-10


def test_linear_saddle_is_classified_as_saddle():
    Q = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))[0]
    A = Q @ np.diag([1.4, 0.5, 0.3, -0.2]) @ Q.T
    step, jac = linear_map(A, np.ones(4))
    fp = find_fixed_points(step, np.zeros((3, 4)), jacobian=jac)
    assert fp.kinds == ("saddle",)
    np.testing.assert_allclose(fp.eigenvalues[0].real, [1.4, 0.5, 0.3, -0.2], atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_line_attractor_points_lie_on_the_line_and_are_marginal(method):
    """y_1' = y_1 (neutral), y_rest' = y_rest + a(-y_rest + tanh(y_rest)/2): the fixed points are the line R v."""
    rng = np.random.default_rng(3)
    d, a = 5, 0.4
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]  # x = Q y, the line is Q[:, 0]

    def step(X):
        Y = X @ Q
        Y[:, 1:] += a * (-Y[:, 1:] + 0.5 * np.tanh(Y[:, 1:]))
        return Y @ Q.T

    def full(X):
        Y = X @ Q
        diag = np.ones_like(Y)
        diag[:, 1:] = 1 - a + 0.5 * a * (1 - np.tanh(Y[:, 1:]) ** 2)
        return np.einsum("ij,nj,kj->nik", Q, diag, Q)

    def linearize(X):
        J = full(X)
        return (lambda V: np.einsum("nij,nj->ni", J, V), lambda V: np.einsum("nij,ni->nj", J, V))

    starts = rng.normal(0, 2, (60, d))
    fp = find_fixed_points(step, starts, method=method, jacobian=Jacobian(full, linearize))
    assert fp.n_points >= 40  # distinct points along the line (starts project to different places)
    assert set(fp.kinds) == {"marginal"}
    along = fp.points @ Q[:, 0]
    off_line = fp.points - along[:, None] * Q[:, 0]
    assert np.abs(off_line).max() < 1e-7
    assert along.min() < -2 and along.max() > 2  # spread over the range of the starts
    np.testing.assert_allclose(fp.eigenvalues[:, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(fp.eigenvalues[:, 1:]), 1 - a / 2, atol=1e-7)
    # the slowest mode is the line itself
    np.testing.assert_allclose(np.abs(fp.modes[:, :, 0].real @ Q[:, 0]), 1.0, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_three_bit_flip_flop_recovers_all_eight_stable_points(method):
    w = 2.0
    step, jac, P = flip_flop(w)
    rng = np.random.default_rng(4)
    starts = sample_starts(trajectories(step, rng.normal(0, 1.5, (100, 3)), 20, rng), 1000, rng, noise_std=0.5)
    fp = find_fixed_points(step, starts, method=method, jacobian=jac)
    x_star = brentq(lambda x: np.tanh(w * x) - x, 0.1, 2.0)
    truth, kinds = [], []
    for signs in itertools.product([-1, 0, 1], repeat=3):
        truth.append(P @ (x_star * np.array(signs)))
        zeros = signs.count(0)  # 0 is unstable in its direction (slope w > 1), +-x* stable
        kinds.append("stable" if zeros == 0 else "unstable" if zeros == 3 else "saddle")
    truth = np.array(truth)
    # every point found is one of the 27 true fixed points, with the right kind
    for point, kind in zip(fp.points, fp.kinds):
        dist = np.linalg.norm(truth - point, axis=1)
        assert dist.min() < 1e-7
        assert kind == kinds[int(np.argmin(dist))]
    stable = truth[[k == "stable" for k in kinds]]
    found = fp.of_kind("stable")
    recall = np.mean([np.linalg.norm(found - s, axis=1).min() < 1e-7 for s in stable])
    assert recall == 1.0 and found.shape[0] == 8
    assert fp.n_points >= 20  # most saddles too (starts are jittered off the trajectories)
    np.testing.assert_allclose(
        np.abs(fp.eigenvalues[[k == "stable" for k in fp.kinds]]), w * (1 - x_star**2), rtol=1e-6
    )  # P tanh'(.) P^-1 has eigenvalues w sech^2


@pytest.mark.parametrize("method", METHODS)
def test_slow_point_is_found_where_no_fixed_point_exists(method):
    """x' = x + x^2 + c (c > 0): no fixed point, a minimum of q at x = 0 with q = c^2 / 2."""
    c = 1e-7

    def step(X):
        return X + X**2 + c

    jac = Jacobian(lambda X: (1 + 2 * X)[:, :, None], lambda X: (lambda V: (1 + 2 * X) * V, lambda V: (1 + 2 * X) * V))
    fp = find_fixed_points(step, np.linspace(-0.5, 0.5, 11)[:, None], method=method, dedup_tol=1e-4, jacobian=jac)
    assert fp.n_points == 1
    np.testing.assert_allclose(fp.points[0], [0.0], atol=1e-9)  # dq/dx = 2 x (x^2 + c) = 0 only at x = 0
    np.testing.assert_allclose(fp.q, [0.5 * c**2], rtol=1e-3)
    assert fp.kinds == ("marginal",)


def test_no_fixed_point_gives_an_empty_result():
    step, jac = linear_map(np.eye(2), np.ones(2))  # x' = x + 1: q = 1 everywhere
    fp = find_fixed_points(step, np.zeros((5, 2)), jacobian=jac)
    assert fp.n_points == 0 and fp.points.shape == (0, 2) and fp.eigenvalues.shape == (0, 2)
    assert fp.n_converged == 0 and fp.n_starts == 5
    assert "0 points" in repr(fp)


# -- gradient of q ---------------------------------------------------------------------------------------------------
def central_differences(step, X: np.ndarray, h: float = 1e-6) -> np.ndarray:
    def q(Y):
        g = step(Y) - Y
        return 0.5 * np.sum(g * g, axis=1)

    grad = np.empty_like(X)
    for j in range(X.shape[1]):
        e = np.zeros(X.shape[1])
        e[j] = h
        grad[:, j] = (q(X + e) - q(X - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("matrix_free", [False, True])
def test_gradient_of_q_matches_finite_differences(matrix_free):
    step, jac, _ = flip_flop()
    X = np.random.default_rng(5).normal(0, 0.8, (7, 3))
    q, grad = speed_and_gradient(step, jac if matrix_free else jac.full, X)
    np.testing.assert_allclose(q, 0.5 * np.sum((step(X) - X) ** 2, axis=1))
    fd = central_differences(step, X)
    assert np.max(np.abs(grad - fd)) < 1e-7 * max(1.0, np.abs(fd).max())


@pytest.mark.parametrize("matrix_free", [False, True])
def test_gradient_of_q_for_the_rate_map(matrix_free):
    net = small_network()
    step, jac = rate_map(net, np.array([0.5, -0.3, 1.0]))
    X = net.params["x0"][None] + np.random.default_rng(6).normal(0, 3, (3, net.n_units))
    _, grad = speed_and_gradient(step, jac if matrix_free else jac.full, X)
    fd = central_differences(step, X, h=1e-5)
    assert np.max(np.abs(grad - fd)) < 1e-6 * np.abs(fd).max()


# -- the model adapters ----------------------------------------------------------------------------------------------
def jacobian_by_differences(step, X: np.ndarray, h: float = 1e-6) -> np.ndarray:
    n, d = X.shape
    J = np.empty((n, d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        J[:, :, j] = (step(X + e) - step(X - e)) / (2 * h)
    return J


def check_jacobian(step, jac: Jacobian, X: np.ndarray, h: float, rtol: float) -> None:
    J = jac(X)
    fd = jacobian_by_differences(step, X, h)
    assert np.max(np.abs(J - fd)) < rtol * np.abs(fd).max()
    V = np.random.default_rng(7).normal(size=X.shape)
    jvp, vjp = jac.linearize(X)
    np.testing.assert_allclose(jvp(V), np.einsum("nij,nj->ni", J, V), atol=1e-10 * np.abs(J).max())
    np.testing.assert_allclose(vjp(V), np.einsum("nij,ni->nj", J, V), atol=1e-10 * np.abs(J).max())


@pytest.mark.parametrize("sparse", [True, False])
def test_rate_map_jacobian_matches_finite_differences(sparse, monkeypatch):
    monkeypatch.setattr(ratemod, "_SPARSE_DENSITY", 1.0 if sparse else 0.0)  # the circuit owns its map
    net = small_network()
    step, jac = rate_map(net, np.array([1.0, 0.0, 1.0]))
    X = net.params["x0"][None] + np.random.default_rng(8).normal(0, 4, (4, net.n_units))
    check_jacobian(step, jac, X, h=1e-5, rtol=1e-7)


def test_rate_map_follows_the_networks_own_simulation():
    """Iterating rate_map's step from x0 reproduces RateNetwork.simulate under the same constant input."""
    net = small_network(seed=1)
    u = np.array([0.7, -0.7, 1.0])
    steps = 30
    batch = TrialBatch(np.tile(u, (1, steps, 1)), np.zeros((1, steps, 2)), np.ones((1, steps, 2)), net.dt)
    states = net.simulate(batch).state[0]
    step, _ = rate_map(net, u)
    mine = trajectories(step, net.params["x0"][None].astype(float), steps, np.random.default_rng(0))[0]
    np.testing.assert_allclose(mine, states, rtol=1e-10, atol=1e-10)


def test_rate_map_respects_a_lesion():
    net = small_network(seed=2)
    if not hasattr(net, "lesioned"):
        pytest.skip("this RateNetwork has no lesioned() yet")
    silenced = np.zeros(net.n_units, bool)
    silenced[:10] = True
    lesioned = net.lesioned(silenced=silenced)
    step, jac = rate_map(lesioned, np.zeros(3))
    X = net.params["x0"][None] + np.random.default_rng(9).normal(0, 2, (2, net.n_units))
    J = jac(X)
    assert np.all(J[:, :, :10] == np.eye(net.n_units)[:, :10] * (1 - lesioned.alpha[:, None])[None])
    check_jacobian(step, jac, X, h=1e-5, rtol=1e-7)


def test_rate_network_fixed_point_is_where_the_simulation_settles():
    net = small_network(seed=2)  # stable under this input: the simulation settles
    u = np.array([0.0, 1.0, 0.0])
    step, jac = rate_map(net, u)
    rng = np.random.default_rng(10)
    x0 = net.params["x0"][None] + rng.normal(0, 2, (10, net.n_units))
    starts = sample_starts(trajectories(step, x0, 50, rng, noise=0.5), 200, rng, noise_std=0.5)
    settled = x0[:1]
    for _ in range(3000):
        settled = step(settled)
    for method in METHODS:
        fp = find_fixed_points(step, starts, method=method, jacobian=jac)
        assert fp.n_points == 1 and fp.kinds == ("stable",) and fp.counts.sum() == 200
        np.testing.assert_allclose(fp.points[0], settled[0], atol=1e-6)
        assert np.abs(fp.eigenvalues[0, 0]) < 1


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_ann_map_jacobian_matches_finite_differences(arch):
    model = make_ann(arch, n_hidden=7, dt=0.01)
    model.init_params(np.random.default_rng(11), gain=1.5)
    step, jac = ann_map(model, np.array([0.3, -0.8, 1.0]))
    d = 2 * 7 if arch == "lstm" else 7
    X = np.random.default_rng(12).normal(0, 0.7, (5, d))
    check_jacobian(step, jac, X, h=1e-6, rtol=1e-7)


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_ann_map_follows_the_models_own_simulation(arch):
    model = make_ann(arch, n_hidden=6, dt=0.01)
    model.init_params(np.random.default_rng(13), gain=1.2)
    u = np.array([-0.5, 0.5, 1.0])
    steps = 25
    batch = TrialBatch(np.tile(u, (1, steps, 1)), np.zeros((1, steps, 2)), np.ones((1, steps, 2)), model.dt)
    state = model.simulate(batch).state
    step, _ = ann_map(model, u)
    x0 = model.params["h0"] if arch != "lstm" else np.concatenate([model.params["h0"], model.params["c0"]])
    mine = trajectories(step, x0[None].astype(float), steps, np.random.default_rng(0))[0]
    np.testing.assert_allclose(mine, state[0], rtol=1e-10, atol=1e-12)  # h, or the LSTM's [h, c]


def test_ann_fixed_points_dense_and_matrix_free_agree():
    model = make_ann("gru", n_hidden=12, dt=0.01)
    model.init_params(np.random.default_rng(14), gain=2.0)
    step, jac = ann_map(model, np.array([0.0, 0.0, 1.0]))
    rng = np.random.default_rng(15)
    starts = sample_starts(trajectories(step, rng.normal(0, 0.5, (30, 12)), 40, rng), 300, rng, noise_std=0.1)
    a = find_fixed_points(step, starts, method="dense", jacobian=jac)
    b = find_fixed_points(step, starts, method="matrix-free", jacobian=jac)
    # points the GRU can reach (|h| <= 1); far outside, saturated gates (z = 1) make continua of slow points
    inside_a, inside_b = (np.all(np.abs(r.points) <= 1.0, axis=1) for r in (a, b))
    assert inside_a.sum() >= 1 and inside_a.sum() == inside_b.sum()
    assert sorted(np.array(a.kinds)[inside_a]) == sorted(np.array(b.kinds)[inside_b])
    for point in a.points[inside_a]:
        assert np.linalg.norm(b.points[inside_b] - point, axis=1).min() < 1e-6


# -- starts and loadings ---------------------------------------------------------------------------------------------
def test_sample_starts_draws_visited_states_and_adds_noise():
    rng = np.random.default_rng(16)
    states = rng.normal(size=(4, 10, 3))
    flat = states.reshape(-1, 3)
    starts = sample_starts(states, 25, np.random.default_rng(0))
    assert starts.shape == (25, 3)
    assert all(np.any(np.all(flat == s, axis=1)) for s in starts)
    assert len({tuple(s) for s in starts}) == 25  # without replacement when n <= trials * time
    assert sample_starts(states, 100, np.random.default_rng(0)).shape == (100, 3)  # with replacement
    noisy = sample_starts(np.zeros((2, 50, 4)), 4000, np.random.default_rng(1), noise_std=0.3)
    assert abs(noisy.std() - 0.3) < 0.01 and abs(noisy.mean()) < 0.01


def test_mode_loadings_are_shares_of_the_squared_norm():
    v = np.array([1.0, 1.0, 2.0, 0.0 + 2.0j])
    shares = mode_loadings(v, {"a": np.array([0, 1]), "b": slice(2, 3), "c": np.array([False, False, False, True])})
    assert shares == pytest.approx({"a": 0.2, "b": 0.4, "c": 0.4})
    two = mode_loadings(np.array([[1.0, 0.0], [0.0, 3.0]]), {"first": [0], "second": [1]})
    assert two == pytest.approx({"first": 0.5, "second": 0.5})
    net = small_network()
    step, jac = rate_map(net, np.zeros(3))
    fp = find_fixed_points(step, net.params["x0"][None].astype(float), jacobian=jac)
    groups = {p.name: p.slice for p in net.connectome.populations}
    loads = mode_loadings(fp.modes[0, :, 0], groups)
    assert set(loads) == set(groups) and sum(loads.values()) == pytest.approx(1.0)


# -- bad input -------------------------------------------------------------------------------------------------------
def test_bad_input_is_reported_clearly():
    step, jac = linear_map(0.5 * np.eye(2), np.zeros(2))
    with pytest.raises(ValueError, match="2-D array"):
        find_fixed_points(step, np.zeros(2), jacobian=jac)
    with pytest.raises(ValueError, match="NaN"):
        find_fixed_points(step, np.array([[np.nan, 0.0]]), jacobian=jac)
    with pytest.raises(ValueError, match="shape of X"):
        find_fixed_points(lambda X: X[:, :1], np.zeros((3, 2)), jacobian=jac)
    with pytest.raises(ValueError, match="jacobian"):
        find_fixed_points(step, np.zeros((3, 2)), method="dense", jacobian=lambda x: np.zeros(2))
    with pytest.raises(ValueError, match="method"):
        find_fixed_points(step, np.zeros((3, 2)), method="newton", jacobian=jac)
    with pytest.raises(ValueError, match="linearize"):
        find_fixed_points(step, np.zeros((3, 2)), method="matrix-free", jacobian=jac.full)
    with pytest.raises(ValueError, match="tol"):
        find_fixed_points(step, np.zeros((3, 2)), tol=-1.0, jacobian=jac)
    with pytest.raises(ValueError, match="kind"):
        find_fixed_points(step, np.zeros((3, 2)), jacobian=jac).of_kind("attractor")
    with pytest.raises(ValueError, match="3-D"):
        sample_starts(np.zeros((5, 2)), 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise_std"):
        sample_starts(np.zeros((1, 5, 2)), 3, np.random.default_rng(0), noise_std=-1)
    with pytest.raises(ValueError, match="Generator"):
        sample_starts(np.zeros((1, 5, 2)), 3, 0)
    with pytest.raises(ValueError, match="indices"):
        mode_loadings(np.ones(3), {"a": [5]})
    with pytest.raises(ValueError, match="mask"):
        mode_loadings(np.ones(3), {"a": np.array([True, False])})
    with pytest.raises(ValueError, match="all zeros"):
        mode_loadings(np.zeros(3), {"a": [0]})
    net = small_network()
    with pytest.raises(ValueError, match="inputs"):
        rate_map(net, np.zeros(2))


# -- the speed-ups: working sets, early deduplication, the stationarity stop ----------------------------------------
def test_batched_gmres_with_shrinking_working_set_solves_every_row():
    """Rows of different difficulty leave the working set at different steps; every solution is exact."""
    rng = np.random.default_rng(3)
    n, d = 12, 20
    A = np.eye(d)[None] + np.linspace(0.0, 2.0, n)[:, None, None] * rng.normal(size=(n, d, d)) / np.sqrt(d)
    b = rng.normal(size=(n, d))
    seen = []

    def matvec(V, rows):
        seen.append(rows.size)
        return np.einsum("nij,nj->ni", A[rows], V)

    x, res = fpmod._gmres(matvec, b, np.full(n, 1e-12), d)
    np.testing.assert_allclose(x, np.linalg.solve(A, b[..., None])[..., 0], rtol=1e-8, atol=1e-9)
    assert np.all(res <= 1e-10 * np.linalg.norm(b, axis=1))
    assert seen[0] == n and seen[-1] < n  # easy rows (A near I) left early


@pytest.mark.parametrize("method", METHODS)
def test_early_deduplication_keeps_counts_and_points(method):
    """Many starts per basin: counts sum to the converged starts, every stable point found exactly once."""
    step, jac, P = flip_flop(2.0)
    rng = np.random.default_rng(4)
    starts = (P @ rng.choice([-1.0, 1.0], size=(3, 400))).T + 0.05 * rng.normal(size=(400, 3))
    fp = find_fixed_points(step, starts, method=method, jacobian=jac)
    stable = fp.of_kind("stable")
    assert stable.shape[0] == 8 and fp.counts.sum() == fp.n_converged == 400
    off = find_fixed_points(step, starts, method=method, dedup_tol=1e-12, jacobian=jac)  # no merging before the end
    gap = np.linalg.norm(off.of_kind("stable")[:, None] - stable[None], axis=2)
    assert gap.min(axis=1).max() < 1e-7 and gap.min(axis=0).max() < 1e-7  # the same 8 points (q < 1e-16: ~1e-8 apart)
    assert off.n_points > 8  # (without merging, duplicates stay apart: the test can tell)


def test_stationarity_stop_ends_descents_on_slow_points_that_are_not_kept():
    """x' = x + x^2 + c with c = 0.1: q has its minimum 0.005 > tol at x = 0; gtol stops the descent earlier."""
    c = 0.1

    def step(X):
        return X + X**2 + c

    calls = {"n": 0}

    def linearize(X):
        calls["n"] += 1
        return (lambda V: (1 + 2 * X) * V, lambda V: (1 + 2 * X) * V)

    jac = Jacobian(lambda X: (1 + 2 * X)[:, :, None], linearize)
    starts = np.linspace(-0.5, 0.5, 11)[:, None]
    fp = find_fixed_points(step, starts, method="matrix-free", jacobian=jac)
    with_stop = calls["n"]
    calls["n"] = 0
    fp_off = find_fixed_points(step, starts, method="matrix-free", gtol=0.0, jacobian=jac)
    assert fp.n_points == fp_off.n_points == 0  # nothing below tol either way
    assert with_stop < calls["n"]
    with pytest.raises(ValueError, match="gtol"):
        find_fixed_points(step, starts, gtol=1.5, jacobian=jac)
