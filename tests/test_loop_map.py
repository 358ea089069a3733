"""The closed loop as one map (circuit, arm, delay lines): the model's own step_map; it is the loop, exactly."""

import copy
from dataclasses import replace

import numpy as np
import pytest
from tiny import tiny_config

from cortexsim import assembly
from cortexsim.analysis.fixed_points import find_fixed_points
from cortexsim.closed_loop_map import loop_states
from cortexsim.tasks import TrialBatch


@pytest.fixture(scope="module")
def net():
    config = tiny_config(effector={"kind": "arm26"}, rate={"dtype": "float64"})
    net = assembly.initial_rate_network(config, assembly.build_circuit(config))
    rng = np.random.default_rng(0)
    net.params["w_out"] = net.params["w_out"] * 40 + 0.002 * rng.standard_normal(net.params["w_out"].shape)
    net.params["w_in"][:, 3:] += 0.5 * rng.standard_normal(net.params["w_in"][:, 3:].shape)
    net.set_params(net.params)
    return net


@pytest.fixture(scope="module", params=["rnn", "gru", "lstm"])
def ann(request):
    """An ANN driving the arm, its readout and feedback weights strong enough to move it."""
    config = tiny_config(effector={"kind": "arm26"}, ann={"archs": [request.param], "n_hidden": 12, "dtype": "float64"})
    model = assembly.make_ann_model(config, request.param)
    rng = np.random.default_rng(2)
    params = dict(model.params)
    params["w_out"] = 2.0 * rng.standard_normal(params["w_out"].shape)
    params["w_in"] = params["w_in"].copy()
    params["w_in"][:, 3:] += 0.5 * rng.standard_normal(params["w_in"][:, 3:].shape)
    model.set_params(params)
    return model


def _with_feedback(net, **changes):
    """A copy of ``net`` whose body's feedback has ``changes`` (the module's network stays as it is)."""
    new = copy.copy(net)
    new.body = replace(net.body, feedback=replace(net.body.feedback, **changes))
    return new


def _constant_batch(u: np.ndarray, n_steps: int) -> TrialBatch:
    inputs = np.broadcast_to(u, (2, n_steps, u.size)).copy()
    return TrialBatch(inputs, np.zeros((2, n_steps, 2)), np.ones((2, n_steps, 1)), 0.01, {})


def _assert_map_is_the_loop(net, u: np.ndarray) -> None:
    """Applied to the loop's state at t, the map gives the loop's state at t + 1, and the arm moved."""
    net = _with_feedback(net, proprioception_noise=0.0, vision_noise=0.0)
    trajectory = net.simulate(_constant_batch(u, 40))
    X = net.map_states(trajectory)
    assert X.shape[2] == net.map_layout()["sensors"].stop
    step, _ = net.step_map(u)
    predicted = step(X[:, :-1].reshape(-1, X.shape[2])).reshape(2, -1, X.shape[2])
    np.testing.assert_allclose(predicted, X[:, 1:], rtol=1e-9, atol=1e-9)
    assert np.ptp(trajectory.outputs) > 1e-4  # the arm moved: the test exercised the plant and the feedback


def _assert_jacobian_is_exact(net, u: np.ndarray, steps: list[int], seed: int) -> None:
    """Full Jacobian against centred differences; jvp and vjp against the full Jacobian."""
    X = net.map_states(net.simulate(_constant_batch(u, 30)))[:, steps]
    X = X.reshape(-1, net.map_layout()["sensors"].stop)
    step, jac = net.step_map(u)
    J = jac.full(X)
    rng = np.random.default_rng(seed)
    V = rng.standard_normal(X.shape)
    h = 1e-6
    fd = (step(X + h * V) - step(X - h * V)) / (2 * h)
    np.testing.assert_allclose(np.einsum("mij,mj->mi", J, V), fd, rtol=1e-5, atol=1e-7)
    jvp, vjp = jac.linearize(X)
    np.testing.assert_allclose(jvp(V), np.einsum("mij,mj->mi", J, V), rtol=1e-10, atol=1e-12)
    W = rng.standard_normal(X.shape)
    np.testing.assert_allclose(vjp(W), np.einsum("mij,mi->mj", J, W), rtol=1e-10, atol=1e-12)


def test_the_map_is_the_closed_loop(net):
    """Applied to the loop's state at t, the map gives the loop's state at t + 1 (feedback, delays and all)."""
    assert "circuit" in net.map_layout()
    _assert_map_is_the_loop(net, np.array([np.cos(0.7), np.sin(0.7), 0.0]))


@pytest.mark.parametrize("feedback", [True, False])
def test_the_jacobian_is_exact(net, feedback):
    _assert_jacobian_is_exact(_with_feedback(net, enabled=feedback), np.array([0.0, 1.0, 0.0]), [5, 25], seed=1)


def test_the_map_is_the_closed_loop_of_an_ann(ann):
    """The same for each ANN on the arm: its update reads the 14 feedback channels as inputs."""
    assert "hidden" in ann.map_layout()
    _assert_map_is_the_loop(ann, np.array([np.cos(2.1), np.sin(2.1), 0.0]))


@pytest.mark.parametrize("feedback", [True, False])
def test_the_jacobian_of_an_ann_loop_is_exact(ann, feedback):
    _assert_jacobian_is_exact(_with_feedback(ann, enabled=feedback), np.array([1.0, 0.0, 0.0]), [4, 22], seed=3)


def test_the_resting_loop_has_one_fixed_point_the_start_posture_and_it_is_the_arms_saddle():
    """The untrained circuit holds the arm at its start posture: the closed loop's one fixed point is there.

    Its largest eigenvalue is the arm's own: the co-contraction that holds the start posture is an unstable
    equilibrium of the passive arm, growing at about +0.95/s (docs/model.md), so |lambda| = exp(0.95 dt).
    """
    config = tiny_config(effector={"kind": "arm26"}, rate={"dtype": "float64"})
    rest = assembly.initial_rate_network(config, assembly.build_circuit(config))
    u = np.zeros(3)
    trajectory = rest.simulate_loop(_constant_batch(u, 60))
    arm = np.concatenate([trajectory.q, trajectory.dq, trajectory.activation], axis=2)
    layout = rest.map_layout()
    X = loop_states(rest, trajectory.states, arm).reshape(-1, layout["sensors"].stop)
    step, jac = rest.step_map(u)
    fp = find_fixed_points(step, X[::10], tol=1e-12, jacobian=jac)
    assert fp.n_points == 1 and fp.kinds == ("saddle",)
    point = fp.points[0]
    np.testing.assert_allclose(point[layout["arm"]][:2], rest.body.start_posture, atol=1e-6)
    np.testing.assert_allclose(point[layout["arm"]][2:4], 0.0, atol=1e-9)  # at rest
    np.testing.assert_allclose(point[layout["arm"]][4:], rest.body.activation0, atol=1e-6)
    readings = point[layout["sensors"]].reshape(-1, 14)
    np.testing.assert_allclose(readings, np.broadcast_to(readings[0], readings.shape), atol=1e-9)  # lines settled
    growth = np.log(np.abs(fp.eigenvalues[0, 0])) / rest.dt
    assert growth == pytest.approx(0.95, abs=0.05)
