"""MotorNet's four-muscle point mass (:mod:`cortexsim.pointmass`): analytic answers, reverse step, body registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cortexsim.effector import BODIES, ArmKernel, hand_position, simulate_arm, simulate_body
from cortexsim.errors import ConfigError
from cortexsim.pointmass import (
    MUSCLE_NAMES,
    N_SENSE,
    N_STATE,
    SENSOR_NAMES,
    TAPE_WIDTH,
    PointMass24Params,
    PointMassKernel,
    simulate_pointmass,
)

P = PointMass24Params()
CURL = np.array([[0.0, 13.0], [-13.0, 0.0]])


def _state(n, position=(0.0, 0.0), velocity=(0.0, 0.0), activation=(0.0, 0.0, 0.0, 0.0)):
    s = np.zeros((n, N_STATE))
    s[:, 0:2], s[:, 2:4], s[:, 4:] = position, velocity, activation
    return s


# ------------------------------------------------------------------------ parameters


def test_defaults_are_motornets_relupointmass24():
    assert (P.mass, P.max_isometric_force, P.damping) == (1.0, 500.0, 0.0)
    assert P.anchors == ((2.0, 2.0), (-2.0, 2.0), (2.0, -2.0), (-2.0, -2.0))
    assert (P.workspace_low, P.workspace_high, P.velocity_bound) == (-1.0, 1.0, 1000.0)
    assert (P.tau_activation, P.tau_deactivation, P.min_activation) == (0.015, 0.05, 0.0)
    assert P.shortest_time_constant == pytest.approx(0.0075)
    np.testing.assert_allclose(P.centre_lengths, 2.0 * math.sqrt(2.0), rtol=1e-15)
    assert len(MUSCLE_NAMES) == 4 and len(SENSOR_NAMES) == N_SENSE == 10
    assert SENSOR_NAMES[-2:] == ("hand_x", "hand_y")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"mass": 0.0}, "mass"),
        ({"max_isometric_force": -1.0}, "max_isometric_force"),
        ({"workspace_high": -2.0}, "workspace_high"),
        ({"anchors": ((0.5, 0.5), (-2.0, 2.0), (2.0, -2.0), (-2.0, -2.0))}, r"anchors\[0\].*inside the workspace"),
        ({"anchors": ((2.0, 2.0),)}, "anchors"),
        ({"min_activation": 1.0}, "min_activation"),
        ({"tau_activation": float("nan")}, "tau_activation"),
    ],
)
def test_params_are_validated(change, match):
    with pytest.raises(ConfigError, match=match):
        PointMass24Params(**change)


def test_a_sub_step_longer_than_the_shortest_time_constant_is_refused():
    with pytest.raises(ConfigError, match="at least 2 substeps"):
        PointMassKernel(0.01, substeps=1)  # MotorNet's default: one 10 ms Euler step
    assert PointMassKernel(0.01, substeps=2).h == pytest.approx(0.005)


# ------------------------------------------------------------------------ analytic answers


@pytest.mark.parametrize("level", [0.01, 0.2, 1.0])
def test_equal_cocontraction_holds_the_mass_still_at_the_centre_exactly(level):
    kernel = PointMassKernel(0.01)
    u = kernel.balanced_excitation(level)
    np.testing.assert_array_equal(u, np.full(4, level))
    out = simulate_pointmass(np.broadcast_to(u, (2, 100, 4)), 0.01)
    assert np.all(out["hand"] == 0.0) and np.all(out["velocity"] == 0.0)
    assert out["activation"][0, -1, 0] > 0.9 * level  # the muscles did pull, all four equally
    assert np.all(out["force"][:, -1] == out["force"][:, -1, :1])


def test_one_muscle_off_balance_moves_the_mass():
    """The exact stillness above is not vacuous: unequal co-contraction moves the mass."""
    out = simulate_pointmass(np.broadcast_to([0.2, 0.2, 0.2, 0.19], (1, 20, 4)), 0.01)
    assert np.all(out["hand"][0, -1] > 1e-4)  # pulled up and right, away from the weaker lower-left muscle


@pytest.mark.parametrize("muscle", range(4))
def test_a_single_muscle_accelerates_the_mass_along_its_line_as_f_over_m(muscle):
    """Constant activation ``a`` of one muscle through the centre: ``x(t) = F t^2 / (2 m)`` along the diagonal."""
    level, dt, steps = 0.02, 0.01, 11
    force = level * P.max_isometric_force  # 10 N: 10 m/s^2 on 1 kg
    direction = np.array(P.anchors[muscle]) / np.linalg.norm(P.anchors[muscle])
    activation = np.zeros(4)
    activation[muscle] = level
    u = np.broadcast_to(activation, (1, steps, 4))
    t = dt * np.arange(steps)
    errors = []
    for substeps in (5, 50):
        out = simulate_pointmass(u, dt, state0=_state(1, activation=activation), substeps=substeps)
        hand = out["hand"][0]
        along = hand @ direction
        np.testing.assert_allclose(hand, along[:, None] * direction, atol=1e-15)  # on the line, no sideways drift
        np.testing.assert_array_equal(out["activation"][0], np.broadcast_to(activation, (steps, 4)))
        # MotorNet's explicit Euler, exactly: x_n = a h^2 n (n - 1) / 2 after n sub-steps
        h, nsub = dt / substeps, substeps * np.arange(steps)
        np.testing.assert_allclose(along, force / P.mass * h * h * nsub * (nsub - 1) / 2, rtol=1e-12, atol=1e-15)
        exact = force * t**2 / (2.0 * P.mass)
        assert np.all(np.abs(along - exact) <= force / P.mass * h * t / 2 * (1 + 1e-9))  # Euler's lag a h t / 2
        errors.append(np.abs(along[-1] - exact[-1]))
    assert along[-1] == pytest.approx(force * 0.1**2 / 2, rel=0.011)  # 5 cm in 0.1 s
    assert errors[1] == pytest.approx(errors[0] / 10, rel=1e-9)  # first order in h


def _thelen_rise_time(a, u, p=P):
    """Time for Thelen's activation ODE to rise from 0 to ``a`` under excitation ``u`` (exact, separable)."""
    g = p.thelen_c0 + p.thelen_c1 * u
    return p.tau_activation * (g * np.log(u / (u - a)) - p.thelen_c1 * a)


def _thelen_rise(t, u, p=P):
    """The activation at time ``t`` from 0: the inverse of :func:`_thelen_rise_time`, by bisection."""
    lo, hi = np.zeros_like(t), np.full_like(t, u)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        late = _thelen_rise_time(mid, u, p) > t
        hi, lo = np.where(late, mid, hi), np.where(late, lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("u", [0.3, 0.9])
def test_activation_from_zero_follows_thelens_ode(u):
    dt, steps = 0.005, 40
    t = dt * np.arange(steps)
    exact = _thelen_rise(t, u)
    assert exact[-1] > 0.99 * u and exact[4] < 0.9 * u  # the window sees the rise
    errors = []
    for substeps in (10, 100):  # sub-steps of 0.5 and 0.05 ms
        a = simulate_pointmass(np.full((1, steps, 4), u), dt, substeps=substeps)["activation"][0, :, 0]
        errors.append(np.max(np.abs(a - exact)))
    assert errors[1] < 1.5e-3 * u
    assert errors[0] / errors[1] == pytest.approx(10, rel=0.1)  # Euler: error proportional to h


def test_deactivation_follows_its_closed_form():
    """``da/dt = (u - a)(c0 + c1 a) / tau_deact``: ``a = (u + c0 r) / (1 - c1 r)``, ``r`` decaying exponentially."""
    a0, u, dt, steps = 0.8, 0.1, 0.005, 60
    t = dt * np.arange(steps)
    c0, c1 = P.thelen_c0, P.thelen_c1
    r = (a0 - u) / (c0 + c1 * a0) * np.exp(-(c0 + c1 * u) * t / P.tau_deactivation)
    exact = (u + c0 * r) / (1 - c1 * r)
    state0 = _state(1, activation=(a0,) * 4)
    a = simulate_pointmass(np.full((1, steps, 4), u), dt, state0=state0, substeps=50)["activation"][0, :, 0]
    assert exact[-1] < 0.2
    np.testing.assert_allclose(a, exact, atol=1e-3)


def test_a_curl_field_does_no_work_at_rest_and_deflects_a_moving_mass_sideways():
    dt, steps, substeps = 0.005, 11, 20
    still = PointMassKernel(dt, substeps=substeps, curl=CURL)
    state = _state(3, activation=(0.1,) * 4)
    out, tape = np.empty_like(state), still.tape(3)
    still.step(state, np.full((3, 4), 0.1), np.zeros((3, 2)), out, tape)
    np.testing.assert_array_equal(out[:, :4], 0.0)  # at rest: f = curl @ 0 = 0
    moving = _state(1, velocity=(1.0, 0.0))
    plain = simulate_pointmass(np.zeros((1, steps, 4)), dt, state0=moving, substeps=substeps)
    curled = simulate_pointmass(np.zeros((1, steps, 4)), dt, state0=moving, substeps=substeps, curl=CURL)
    np.testing.assert_array_equal(plain["hand"][0, :, 1], 0.0)  # without the field: a straight line
    t = dt * np.arange(steps)
    y = curled["hand"][0, :, 1]
    np.testing.assert_allclose(y[1:], -13.0 * t[1:] ** 2 / 2, rtol=0.1)  # f = (0, -13 vx): pushed to -y
    speed = np.linalg.norm(curled["velocity"][0], axis=1)
    np.testing.assert_allclose(speed, 1.0, atol=2e-3)  # perpendicular to v: no work (to Euler's O(h))
    heading = np.arctan2(curled["velocity"][0, :, 1], curled["velocity"][0, :, 0])
    np.testing.assert_allclose(heading, -13.0 * t, rtol=1e-2, atol=1e-12)  # turns clockwise at 13 rad/s


def test_the_wall_stops_the_mass_as_motornet_clips():
    kernel = PointMassKernel(0.01)
    state = _state(1, position=(0.99, 0.0), velocity=(5.0, 0.0))
    out = np.empty_like(state)
    kernel.step(state, np.zeros((1, 4)), np.zeros((1, 2)), out, kernel.tape(1))
    assert out[0, 0] == 1.0 and out[0, 2] == 0.0  # held at the bound, the outward velocity zeroed


def test_sensors_read_normalised_lengths_velocities_and_the_hand():
    kernel = PointMassKernel(0.01)
    z = np.empty((1, N_SENSE))
    kernel.sense(_state(1, velocity=(1.0, 0.0)), z)
    np.testing.assert_allclose(z[0, :4], 1.0, rtol=1e-15)  # every muscle at its centre length
    lengthening = z[0, 4:8] * 2 * math.sqrt(2)  # m/s
    np.testing.assert_allclose(lengthening, [-1 / math.sqrt(2), 1 / math.sqrt(2), -1 / math.sqrt(2), 1 / math.sqrt(2)])
    np.testing.assert_array_equal(z[0, 8:], 0.0)
    kernel.sense(_state(1, position=(0.5, -0.25)), z)
    np.testing.assert_array_equal(z[0, 8:], [0.5, -0.25])
    np.testing.assert_allclose(z[0, 0], math.hypot(1.5, 2.25) / (2 * math.sqrt(2)))


# ------------------------------------------------------------------------ reverse step


def _random_inside(rng, n):
    s = np.empty((n, N_STATE))
    s[:, 0:2] = rng.uniform(-0.6, 0.6, (n, 2))
    s[:, 2:4] = rng.normal(0.0, 1.0, (n, 2))
    s[:, 4:] = rng.uniform(0.05, 0.95, (n, 4))
    return s


@pytest.mark.parametrize("curl", [None, CURL])
def test_the_reverse_step_matches_centred_finite_differences(curl):
    rng = np.random.default_rng(27)
    n = 8
    kernel = PointMassKernel(0.01, PointMass24Params(damping=2.0), substeps=5, curl=curl)
    state, load = _random_inside(rng, n), rng.normal(0.0, 20.0, (n, 2))
    u = rng.uniform(0.02, 0.98, (n, 4))
    u[0, 0], u[1, 1] = 0.0, 1.0  # on the clip's edges: derivative of the inside branch
    weights = rng.normal(size=(n, N_STATE))

    def loss(s, e, f):
        out = np.empty_like(s)
        kernel.step(s, e, f, out, kernel.tape(n))
        return np.sum(weights * out, axis=1)  # per trial: the trials are independent

    tape, out = kernel.tape(n), np.empty_like(state)
    kernel.step(state, u, load, out, tape)
    assert tape.shape == (n, 5, TAPE_WIDTH)
    assert np.all(tape[:, :, 8:16] == 1.0)  # no wall, no clip of velocity or activation: the smooth regime
    g_state, g_u, g_load = np.empty_like(state), np.empty_like(u), np.zeros_like(load)
    kernel.backward(tape, load, weights, g_state, g_u, g_load)
    eps = 1e-6
    inputs = {"state": state, "u": u, "load": load}
    for name, analytic in (("state", g_state), ("u", g_u), ("load", g_load)):
        x = inputs[name]
        numeric = np.empty_like(x)
        for j in range(x.shape[1]):
            up, down = dict(inputs), dict(inputs)
            up[name], down[name] = x.copy(), x.copy()
            up[name][:, j] += eps
            down[name][:, j] -= eps
            numeric[:, j] = (loss(*up.values()) - loss(*down.values())) / (2 * eps)
        if name == "u":  # one-sided at the clip's edges: compare with the inside difference there
            for i, m, sign in ((0, 0, 1.0), (1, 1, -1.0)):
                inside = u.copy()
                inside[i, m] += sign * eps
                numeric[i, m] = sign * (loss(state, inside, load)[i] - loss(state, u, load)[i]) / eps
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max(), err_msg=name)
    assert np.abs(g_u).min() > 0 and np.abs(g_load).min() > 0  # every input reaches the state


def test_the_reverse_step_at_a_wall_is_the_clipped_branch():
    """Pressed against the wall the position is held: its derivative is 0, as the difference; the free axis is not."""
    kernel = PointMassKernel(0.01)
    state = _state(1, position=(0.995, 0.2), velocity=(5.0, 0.0), activation=(0.4, 0.1, 0.4, 0.1))
    u, load = np.array([[0.5, 0.15, 0.45, 0.05]]), np.zeros((1, 2))  # u != a: off the rate's kink
    tape, out = kernel.tape(1), np.empty_like(state)
    kernel.step(state, u, load, out, tape)
    assert out[0, 0] == 1.0 and out[0, 2] == 0.0  # the muscles keep it at the wall
    for axis in (0, 1):
        g = np.zeros((1, N_STATE))
        g[0, axis] = 1.0
        g_state, g_u = np.empty_like(state), np.empty((1, 4))
        kernel.backward(tape, load, g, g_state, g_u)
        numeric = np.empty(N_STATE)
        for j in range(N_STATE):
            up, down = state.copy(), state.copy()
            up[0, j] += 1e-7
            down[0, j] -= 1e-7
            for x in (up, down):
                kernel.step(x, u, load, x, kernel.tape(1))
            numeric[j] = (up[0, axis] - down[0, axis]) / 2e-7
        np.testing.assert_allclose(g_state[0], numeric, rtol=1e-5, atol=1e-9)
        if axis == 0:
            np.testing.assert_array_equal(g_state, 0.0)
            np.testing.assert_array_equal(g_u, 0.0)
        else:
            assert g_state[0, 1] == pytest.approx(1.0, abs=0.01) and g_state[0, 3] == pytest.approx(0.01, rel=0.01)


def test_the_sensors_reverse_matches_centred_finite_differences():
    rng = np.random.default_rng(4)
    n = 5
    kernel = PointMassKernel(0.01)
    state = _random_inside(rng, n)
    weights = rng.normal(size=(n, N_SENSE))

    def loss(s):
        z = np.empty((n, N_SENSE))
        kernel.sense(s, z)
        return np.sum(weights * z, axis=1)

    g_state = np.full_like(state, 0.5)  # sense_backward adds
    kernel.sense_backward(state, weights, g_state)
    numeric = np.empty_like(state)
    for j in range(N_STATE):
        up, down = state.copy(), state.copy()
        up[:, j] += 1e-6
        down[:, j] -= 1e-6
        numeric[:, j] = (loss(up) - loss(down)) / 2e-6
    np.testing.assert_allclose(g_state - 0.5, numeric, rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(numeric[:, :4]) > 0)


# ------------------------------------------------------------------------ the body registry


def test_simulate_body_pointmass24_shapes_and_units():
    u = np.full((3, 20, 4), 0.05)
    u[:, :5, 0] = 0.3
    out = simulate_body("pointmass24", u, 0.01)
    assert out["hand"].shape == (3, 20, 2) and out["activation"].shape == (3, 20, 4)
    assert out["velocity"].shape == (3, 20, 2) and out["force"].shape == (3, 20, 4)
    np.testing.assert_array_equal(out["hand"][:, 0], 0.0)  # starts at the centre
    assert 0.01 < out["hand"][0, -1, 0] <= 1.0  # pulled right (m), inside the workspace
    np.testing.assert_allclose(out["force"], 500.0 * out["activation"])
    direct = simulate_pointmass(u, 0.01)
    np.testing.assert_array_equal(out["hand"], direct["hand"])
    state0 = PointMassKernel(0.01).initial(3, [0.5, -0.5])
    np.testing.assert_array_equal(simulate_body("pointmass24", u, 0.01, state0=state0)["hand"][:, 0], [[0.5, -0.5]] * 3)


def test_simulate_body_arm26_shapes_and_units():
    u = np.full((2, 15, 6), 0.05)
    out = simulate_body("arm26", u, 0.01)
    assert out["hand"].shape == (2, 15, 2) and out["activation"].shape == (2, 15, 6)
    start = hand_position(np.deg2rad([45.0, 90.0]))
    np.testing.assert_allclose(out["hand"][:, 0], np.broadcast_to(start, (2, 2)))
    assert 0.3 < np.linalg.norm(out["hand"][0, 0]) < 0.642  # metres from the shoulder, inside the reach
    arm = simulate_arm(u, 0.01)
    np.testing.assert_array_equal(out["hand"], arm.hand)
    np.testing.assert_array_equal(out["activation"], arm.activation)
    state0 = ArmKernel(0.01).initial(2)
    np.testing.assert_array_equal(simulate_body("arm26", u, 0.01, state0=state0)["hand"], out["hand"])


def test_simulate_body_refuses_an_unknown_kind_and_a_wrong_width():
    assert set(BODIES) == {"arm26", "pointmass24"}
    with pytest.raises(ConfigError, match=r"kind: 'pointmass'.*did you mean 'pointmass24'.*arm26, pointmass24"):
        simulate_body("pointmass", np.zeros((1, 3, 4)), 0.01)
    with pytest.raises(ConfigError, match=r"excitation: expected shape \(\.\.\., 4\)"):
        simulate_body("pointmass24", np.zeros((1, 3, 6)), 0.01)
    with pytest.raises(ConfigError, match=r"excitation: values must lie in \[0, 1\]"):
        simulate_body("pointmass24", np.full((1, 3, 4), 1.5), 0.01)
    with pytest.raises(ConfigError, match="state0: the position must lie in the workspace"):
        simulate_body("pointmass24", np.zeros((1, 3, 4)), 0.01, state0=_state(1, position=(1.5, 0.0)))
