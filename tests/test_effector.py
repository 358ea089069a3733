"""Known-answer tests of the six-muscle arm (cortexsim.effector).

Each test checks the plant against an answer computed independently of the code under test:
conservation of energy, the inverse of forward dynamics, the published moment-arm polynomials,
the isometric force at optimal length, Thelen's activation ODE solved in closed form, the
start-posture hand position, and the statics of a load balanced through J^T.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from cortexsim import effector as E
from cortexsim.errors import ConfigError

P = E.Arm26Params()
Q0 = np.deg2rad([45.0, 90.0])

# The published coefficients (Nijhof & Kouwenhoven 2000 as MotorNet's RigidTendonArm26 lists them),
# typed here independently of Arm26Params: rows shoulder, elbow; columns pectoralis, deltoid,
# brachioradialis, tricepslat, biceps, tricepslong.
A0 = np.array([0.151, 0.2322, 0.2859, 0.2355, 0.3329, 0.2989])
A1 = np.array([[-0.03, 0.03, 0.0, 0.0, -0.03, 0.03], [0.0, 0.0, -0.014, 0.025, -0.016, 0.03]])
A2 = np.array([[0.0] * 6, [0.0, 0.0, -4e-3, -2.2e-3, -5.7e-3, -3.2e-3]])
OFFSET = np.array([math.pi / 2, 0.0])
F_MAX = np.array([838.0, 1207.0, 1422.0, 1549.0, 414.0, 603.0])
L_OPT = np.array([0.134, 0.140, 0.092, 0.093, 0.137, 0.127])
L_TENDON = np.array([0.039, 0.066, 0.172, 0.187, 0.204, 0.217])


def _slope(h, err):
    return np.polyfit(np.log(h), np.log(err), 1)[0]


def _balanced_cocontraction(q, level):
    """Excitations near ``level`` whose static torques cancel at posture ``q`` (least squares)."""
    r = E.moment_arms(q)
    fibre = E.muscle_lengths(q) - L_TENDON
    ln = fibre / L_OPT
    fl = np.maximum(1 - ((ln - 1) / 0.66) ** 2, 0.01)
    fp = (np.maximum(ln - 1.4, 0) / 0.26) ** 2
    a = r * (F_MAX * fl)  # torque per unit activation at v = 0
    b = -(r @ (F_MAX * fp))
    u0 = np.full(6, level)
    return u0 - np.linalg.pinv(a) @ (a @ u0 - b)


# --------------------------------------------------------------------------- skeleton


@pytest.mark.parametrize(
    ("method", "steps", "order"), [("euler", (0.004, 0.002, 0.001), 1), ("rk4", (0.02, 0.01, 0.005), 4)]
)
def test_unforced_swing_conserves_energy_at_the_methods_order(method, steps, order):
    errors = []
    for h in steps:
        n = int(round(1.0 / h)) + 1
        q, dq = E.simulate_skeleton(np.zeros((1, n, 2)), h, Q0, np.array([2.0, -3.0]), substeps=1, method=method)
        energy = E.kinetic_energy(q, dq)[0]
        errors.append(np.abs(energy - energy[0]).max() / energy[0])
    assert errors[-1] < (2e-3 if order == 1 else 1e-8)
    assert abs(_slope(steps, errors) - order) < 0.3


def test_arm_with_muscles_off_and_no_limits_is_the_skeleton():
    off = E.Arm26Params(max_isometric_force=(0.0,) * 6, limit_stiffness=0.0, limit_damping=0.0)
    n = 101
    arm = E.simulate_arm(np.zeros((1, n, 6)), 0.002, Q0, np.array([2.0, -3.0]), params=off, substeps=1)
    q, dq = E.simulate_skeleton(np.zeros((1, n, 2)), 0.002, Q0, np.array([2.0, -3.0]), substeps=1)
    np.testing.assert_allclose(arm.q, q, atol=1e-12)
    energy = E.kinetic_energy(arm.q, arm.dq)[0]
    assert np.abs(energy - energy[0]).max() / energy[0] < 5e-3


def test_kinetic_energy_from_segment_velocities():
    rng = np.random.default_rng(0)
    q, dq = rng.uniform(0, 2, (20, 2)), rng.normal(0, 3, (20, 2))
    (m1, m2), (l1, _), (c1, c2), (i1, i2) = P.segment_mass, P.segment_length, P.segment_com, P.segment_inertia
    w1, w2 = dq[:, 0], dq[:, 0] + dq[:, 1]
    v1 = c1 * np.abs(w1)
    elbow_v = l1 * w1[:, None] * np.stack([-np.sin(q[:, 0]), np.cos(q[:, 0])], 1)
    s = q[:, 0] + q[:, 1]
    v2 = elbow_v + c2 * w2[:, None] * np.stack([-np.sin(s), np.cos(s)], 1)
    expected = 0.5 * (m1 * v1**2 + i1 * w1**2 + m2 * np.sum(v2**2, 1) + i2 * w2**2)
    np.testing.assert_allclose(E.kinetic_energy(q, dq), expected, rtol=1e-12)


def test_inverse_dynamics_fed_forward_reproduces_the_trajectory():
    def path(t):
        w = 2 * np.pi * 1.5
        amp = np.array([0.4, 0.6])
        q = Q0 + amp * np.sin(w * t)[..., None] * np.array([1.0, -1.0])
        dq = amp * w * np.cos(w * t)[..., None] * np.array([1.0, -1.0])
        ddq = -amp * w * w * np.sin(w * t)[..., None] * np.array([1.0, -1.0])
        return q, dq, ddq

    steps = (0.004, 0.002, 0.001)
    for shift, order, bound in ((0.0, 1, 1e-2), (0.5, 2, 1e-5)):
        # torques sampled at the start of each held step (first order) or at its middle (second)
        errors = []
        for dt in steps:
            t = np.arange(int(round(0.6 / dt)) + 1) * dt
            q, dq, _ = path(t)
            torque = E.inverse_dynamics(*path(t + shift * dt))[None]
            qs, _ = E.simulate_skeleton(torque, dt, q[0], dq[0], substeps=4, method="rk4")
            errors.append(np.abs(qs[0] - q).max())
        assert errors[-1] < bound
        assert abs(_slope(steps, errors) - order) < 0.2


def test_inverse_dynamics_is_mass_matrix_times_acceleration_at_rest():
    rng = np.random.default_rng(1)
    q, ddq = rng.uniform(0, 2, (5, 2)), rng.normal(size=(5, 2))
    np.testing.assert_allclose(
        E.inverse_dynamics(q, np.zeros((5, 2)), ddq), np.einsum("nij,nj->ni", E.mass_matrix(q), ddq), atol=1e-14
    )


# --------------------------------------------------------------------------- geometry and muscles


def test_moment_arms_are_the_published_polynomials_and_minus_dlength_dangle():
    rng = np.random.default_rng(2)
    q = np.stack([rng.uniform(0, np.deg2rad(135), 50), rng.uniform(0, np.deg2rad(155), 50)], 1)
    x = q - OFFSET
    length = A0 + x[:, :1] * (A1[0] + A2[0] * x[:, :1]) + x[:, 1:] * (A1[1] + A2[1] * x[:, 1:])
    np.testing.assert_allclose(E.muscle_lengths(q), length, atol=1e-15)
    r = E.moment_arms(q)
    np.testing.assert_allclose(r, -(A1 + 2 * A2 * x[:, :, None]), atol=1e-15)
    eps = 1e-6
    for j in range(2):
        step = np.zeros(2)
        step[j] = eps
        fd = -(E.muscle_lengths(q + step) - E.muscle_lengths(q - step)) / (2 * eps)
        np.testing.assert_allclose(r[:, j], fd, atol=1e-9)
    # flexors (pectoralis at the shoulder; brachioradialis, biceps at the elbow) turn counter-clockwise
    assert np.all(r[:, 0, 0] > 0) and np.all(r[:, 0, 1] < 0)
    assert np.all(r[:, 1, 2] > 0) and np.all(r[:, 1, 3] < 0)


def test_muscle_at_optimal_length_and_rest_gives_activation_times_fmax():
    for m in range(6):
        joint = 0 if m < 2 else 1
        hi = np.deg2rad(135 if joint == 0 else 155)
        for other in np.deg2rad([90.0, 45.0, 10.0, 130.0]):  # a posture where the fibre crosses l_opt
            q = np.array([Q0[0], other]) if joint == 0 else np.array([other, Q0[1]])

            def fibre_excess(angle, m=m, joint=joint, q=q):
                q = q.copy()
                q[joint] = angle
                return E.muscle_lengths(q)[m] - L_TENDON[m] - L_OPT[m]

            if fibre_excess(0.0) * fibre_excess(hi) < 0:
                break
        q[joint] = brentq(fibre_excess, 0.0, hi, xtol=1e-14)
        assert E.muscle_lengths(q)[m] - L_TENDON[m] == pytest.approx(L_OPT[m], abs=1e-12)
        for a in (0.05, 0.3, 0.7, 1.0):
            act = np.full(6, 0.5)
            act[m] = a
            force = E.muscle_force(q, np.zeros(2), act)
            assert force[m] == pytest.approx(a * F_MAX[m], rel=1e-9)
        out = E.simulate_arm(np.full((1, 2, 6), 0.5), 0.01, q0=q, activation0=np.full(6, 0.5))
        assert out["muscle_force"][0, 0, m] == pytest.approx(0.5 * F_MAX[m], rel=1e-9)


def test_force_velocity_shape():
    rng = np.random.default_rng(3)
    q = np.deg2rad([60.0, 80.0])
    a = rng.uniform(0.1, 1, 6)
    static = E.muscle_force(q, np.zeros(2), a)
    # shoulder flexion (positive dq1) shortens the pectoralis and lengthens the deltoid
    moving = E.muscle_force(q, np.array([1.0, 0.0]), a)
    assert moving[0] < static[0] and moving[1] > static[1]
    assert np.all(E.muscle_force(q, np.array([40.0, 40.0]), a) < 1.5 * F_MAX * a + 1.0)


# --------------------------------------------------------------------------- activation


def _t_rise(a, a0, u, tau):
    """Time for Thelen's activation to rise from a0 to a under constant u > a (closed form)."""
    return tau * (-1.5 * (a - a0) + (0.5 + 1.5 * u) * np.log((u - a0) / (u - a)))


def _t_fall(a, a0, u, tau):
    """Time to fall from a0 to a under constant u < a (closed form)."""
    return tau / (0.5 + 1.5 * u) * (np.log((a0 - u) / (a - u)) + np.log((0.5 + 1.5 * a) / (0.5 + 1.5 * a0)))


def test_activation_follows_thelen_time_constants():
    dt, n = 0.001, 301
    u = np.stack([np.ones((n, 6)), np.zeros((n, 6))])  # a step up from rest, a step down from 1
    act = E.simulate_arm(u, dt, activation0=np.array([[0.001] * 6, [1.0] * 6]), substeps=2, method="rk4").activation
    t = np.arange(n) * dt
    up, down = act[0, :, 0], act[1, :, 0]
    ok = up < 1 - 1e-6
    np.testing.assert_allclose(_t_rise(up[ok], 0.001, 1.0, 0.015), t[ok], atol=2e-6)
    ok = down > 0.001 + 1e-6
    np.testing.assert_allclose(_t_fall(down[ok], 1.0, 0.001, 0.05), t[ok], atol=2e-6)
    # the time constants themselves: 15 ms x (0.5 + 1.5 a) up, 50 ms / (0.5 + 1.5 a) down
    for a0 in (0.001, 0.5, 0.999):
        rate_up = E.activation_rate(np.ones(6), np.full(6, a0))[0]
        assert rate_up == pytest.approx((1 - a0) / (0.015 * (0.5 + 1.5 * a0)), rel=1e-12)
        rate_down = E.activation_rate(np.zeros(6), np.full(6, a0))[0]
        assert rate_down == pytest.approx((0.001 - a0) * (0.5 + 1.5 * a0) / 0.05, rel=1e-12)
    assert P.shortest_time_constant == pytest.approx(0.015 * (0.5 + 1.5 * 0.001))


# --------------------------------------------------------------------------- statics


def test_start_posture_hand_position():
    np.testing.assert_allclose(E.hand_position(P.start_posture), [-0.017, 0.454], atol=1e-3)
    out = E.simulate_arm(np.zeros((3, 4, 6)), 0.01)
    np.testing.assert_allclose(out.hand[:, 0], np.tile([-0.016971, 0.453963], (3, 1)), atol=1e-6)
    assert np.all(out.dq[:, 0] == 0) and np.all(out.activation[:, 0] == P.min_activation)


def test_balanced_cocontraction_holds_the_posture():
    n = 201  # 2 s
    for level in (0.05, 0.3):
        u = _balanced_cocontraction(Q0, level)
        assert np.all(u > 0)
        np.testing.assert_allclose(E.muscle_torque(Q0, np.zeros(2), u), 0, atol=1e-9)
        out = E.simulate_arm(np.tile(u, (1, n, 1)), 0.01, activation0=u)
        assert np.linalg.norm(out.hand[0] - out.hand[0, 0], axis=-1).max() < 1e-3
        # the check can fail: one muscle 0.01 off balance moves the hand by centimetres
        wrong = u.copy()
        wrong[0] += 0.01
        moved = E.simulate_arm(np.tile(wrong, (1, n, 1)), 0.01, activation0=u)
        assert np.linalg.norm(moved.hand[0] - moved.hand[0, 0], axis=-1).max() > 1e-2


def test_jacobian_is_the_derivative_of_hand_position():
    rng = np.random.default_rng(4)
    q = rng.uniform(0, 2, (10, 2))
    eps = 1e-6
    jac = E.jacobian(q)
    for j in range(2):
        step = np.zeros(2)
        step[j] = eps
        fd = (E.hand_position(q + step) - E.hand_position(q - step)) / (2 * eps)
        np.testing.assert_allclose(jac[:, :, j], fd, atol=1e-9)
    dq = rng.normal(size=(10, 2))
    np.testing.assert_allclose(E.hand_velocity(q, dq), np.einsum("nij,nj->ni", jac, dq), atol=1e-14)


def test_endpoint_load_maps_through_the_jacobian_transpose():
    n = 51
    force = np.array([[12.0, -7.0], [-5.0, 9.0]])
    load = np.repeat(force[:, None], n, axis=1)
    rest = np.full(6, P.min_activation)
    muscles = E.muscle_torque(Q0, np.zeros(2), rest)
    balance = -(np.einsum("ij,ni->nj", E.jacobian(Q0), force) + muscles)
    held = E.simulate_arm(np.zeros((2, n, 6)), 0.01, endpoint_load=load, joint_load=np.repeat(balance[:, None], n, 1))
    assert np.linalg.norm(held.hand - held.hand[:, :1], axis=-1).max() < 1e-9
    free = E.simulate_arm(np.zeros((2, 6, 6)), 0.01, endpoint_load=load[:, :6], joint_load=np.tile(-muscles, (2, 6, 1)))
    moved = free.hand[:, -1] - free.hand[:, 0]
    assert np.all(np.linalg.norm(moved, axis=-1) > 1e-3)
    assert np.all(np.sum(moved * force, axis=-1) > 0)  # the hand starts off along the force


# --------------------------------------------------------------------------- integration and limits


def test_default_stepping_is_close_to_a_fine_reference():
    rng = np.random.default_rng(5)
    u = np.repeat(rng.uniform(0, 0.15, (4, 4, 6)), 10, axis=1)[:, :31]
    ref = E.simulate_arm(u, 0.01, substeps=40, method="rk4").hand
    for method, substeps, bound in (("euler", 5, 6e-3), ("rk4", 2, 5e-4)):
        hand = E.simulate_arm(u, 0.01, substeps=substeps, method=method).hand
        assert np.linalg.norm(hand - ref, axis=-1).max() < bound


def test_joint_limits_are_smooth_stiff_and_silent_inside():
    assert np.abs(E.joint_limit_torque(Q0, np.ones(2))).max() < 1e-12
    q = np.stack([np.full(401, 0.5), np.linspace(-0.05, 0.05, 401)], 1)
    tau = E.joint_limit_torque(q, np.zeros_like(q))[:, 1]
    slope = np.diff(tau) / np.diff(q[:, 1])
    assert np.all(slope < 0) and np.abs(np.diff(slope)).max() < 0.05 * P.limit_stiffness  # smooth
    assert tau[0] == pytest.approx(0.05 * P.limit_stiffness, rel=1e-2)  # a spring of k beyond the limit
    assert 0 < tau[-1] < 0.1  # 0.05 rad inside
    assert np.abs(E.joint_limit_torque(np.array([0.5, 0.2]), np.ones(2))).max() < 1e-5  # 0.2 rad inside
    extend = np.zeros((1, 151, 6))
    extend[..., [3, 5]] = 1.0  # full triceps
    elbow = np.rad2deg(E.simulate_arm(extend, 0.01).q[0, :, 1])
    assert elbow.min() > -10 and abs(elbow[-1]) < 2
    loose = E.Arm26Params(limit_stiffness=0.0, limit_damping=0.0)
    assert np.rad2deg(E.simulate_arm(extend, 0.01, params=loose).q[0, :, 1]).min() < -20


# --------------------------------------------------------------------------- contract and errors


def test_output_shapes_and_time_indexing():
    rng = np.random.default_rng(6)
    u = rng.uniform(0, 0.3, (3, 12, 6))
    out = E.simulate_arm(u, 0.01)
    for key in ("q", "dq", "hand", "hand_velocity"):
        assert out[key].shape == (3, 12, 2)
    for key in ("activation", "muscle_force", "fibre_length", "fibre_velocity", "excitation"):
        assert out[key].shape == (3, 12, 6)
    assert set(out) >= {"q", "dq", "hand", "activation", "muscle_force"} and out["q"] is out.q
    np.testing.assert_allclose(out.q[:, 0], np.tile(Q0, (3, 1)))
    changed = u.copy()
    changed[:, -1] = 1.0 - changed[:, -1]
    again = E.simulate_arm(changed, 0.01)
    for key in ("q", "dq", "hand", "activation", "muscle_force"):
        np.testing.assert_array_equal(again[key], out[key])
    changed[:, -2] = 1.0
    assert not np.array_equal(E.simulate_arm(changed, 0.01).activation[:, -1], out.activation[:, -1])
    # one arm_step is one step of simulate_arm
    state = E.initial_state(3)
    for t in range(3):
        state = E.arm_step(state, u[:, t], 0.01)
    np.testing.assert_array_equal(state.q, out.q[:, 3])
    np.testing.assert_array_equal(state.activation, out.activation[:, 3])
    # a single step: only the initial state; skeleton outputs alike
    assert E.simulate_arm(u[:, :1], 0.01).q.shape == (3, 1, 2)
    q, dq = E.simulate_skeleton(np.zeros((2, 5, 2)), 0.01, q0=np.zeros((2, 2)), dq0=np.ones(2))
    assert q.shape == dq.shape == (2, 5, 2) and np.all(dq[:, 0] == 1) and np.all(q[:, 0] == 0)
    torque = rng.normal(size=(2, 5, 2))
    q1, _ = E.simulate_skeleton(torque, 0.01)
    torque[:, -1] = 99.0
    np.testing.assert_array_equal(E.simulate_skeleton(torque, 0.01)[0], q1)


def test_motor_noise_is_signal_dependent_and_reproducible():
    u = np.full((200, 20, 6), 0.5)
    a = E.simulate_arm(u, 0.01, motor_noise=0.1, rng=np.random.default_rng(7))
    b = E.simulate_arm(u, 0.01, motor_noise=0.1, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.q, b.q)
    assert np.std(a.excitation) == pytest.approx(0.05, rel=0.05)
    assert not np.array_equal(a.q, E.simulate_arm(u, 0.01).q)
    quiet = E.simulate_arm(np.full((2, 5, 6), 0.001), 0.01, motor_noise=0.1, rng=np.random.default_rng(7))
    assert np.std(quiet.excitation) < 1e-3
    np.testing.assert_array_equal(E.simulate_arm(u[:2], 0.01, motor_noise=0.0).q, E.simulate_arm(u[:2], 0.01).q)


BAD = [
    (dict(excitation=np.zeros((2, 5))), "excitation"),
    (dict(excitation=np.zeros((2, 5, 4))), "excitation"),
    (dict(excitation=np.full((2, 5, 6), 1.5)), "[0, 1]"),
    (dict(excitation=np.full((2, 5, 6), -0.1)), "[0, 1]"),
    (dict(excitation=np.full((2, 5, 6), np.nan)), "NaN"),
    (dict(dt=0.0), "dt"),
    (dict(dt=float("nan")), "dt"),
    (dict(dt=0.05), "activation time constant"),
    (dict(substeps=0), "substeps"),
    (dict(method="rk45"), "method"),
    (dict(q0=np.zeros(3)), "q0"),
    (dict(q0=np.zeros((3, 2))), "trials"),
    (dict(dq0=np.array([0.0, np.inf])), "dq0"),
    (dict(endpoint_load=np.zeros((2, 4, 2))), "endpoint_load"),
    (dict(joint_load=np.zeros((2, 5, 3))), "joint_load"),
    (dict(motor_noise=0.1), "rng"),
    (dict(motor_noise=-0.1, rng=np.random.default_rng(0)), "motor_noise"),
    (dict(activation0=np.full(6, 2.0)), "activation0"),
]


@pytest.mark.parametrize(("change", "needle"), BAD)
def test_bad_input_raises_one_line_config_error(change, needle):
    kwargs = dict(excitation=np.zeros((2, 5, 6)), dt=0.01) | change
    with pytest.raises(ConfigError) as info:
        E.simulate_arm(**kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_bad_skeleton_step_and_parameters_raise_config_error():
    with pytest.raises(ConfigError, match="torque"):
        E.simulate_skeleton(np.zeros((2, 5, 3)), 0.01)
    with pytest.raises(ConfigError, match="dt"):
        E.simulate_skeleton(np.zeros((2, 5, 2)), -0.01)
    state = E.initial_state(2)
    with pytest.raises(ConfigError, match="excitation"):
        E.arm_step(state, np.zeros((3, 6)), 0.01)
    with pytest.raises(ConfigError, match="state"):
        E.arm_step((state.q, state.dq), np.zeros((2, 6)), 0.01)
    with pytest.raises(ConfigError, match="segment_mass"):
        E.Arm26Params(segment_mass=(1.0, -1.0))
    with pytest.raises(ConfigError, match="max_isometric_force"):
        E.Arm26Params(max_isometric_force=(1.0, 2.0))
    with pytest.raises(ConfigError, match="tau_activation"):
        E.Arm26Params(tau_activation=float("nan"))
    with pytest.raises(ConfigError, match="q"):
        E.hand_position(np.zeros(3))
    assert hash(E.Arm26Params(segment_mass=[1.82, 1.43])) == hash(P)  # lists become tuples


def test_force_velocity_is_kistemakers_relation_as_motornet_writes_it():
    rng = np.random.default_rng(8)
    n = 2000
    a = rng.uniform(0.001, 1, n)
    ln = rng.uniform(0.5, 1.5, n)
    vn = rng.uniform(-0.5, 0.5, n)  # fibre velocity / (10 l_opt/s)
    # independent evaluation of the published relation (MotorNet's p1, p2, p3 form)
    fl = np.maximum(1 - (ln - 1) ** 2 / 0.66**2, 0.01)
    a_rel = np.where(ln > 1, 0.41 * fl, 0.41)
    b_rel = np.where(a < 0.3, 5.2 * (1 - 0.9 * (a - 0.3) / (0.005 - 0.3)) ** 2, 5.2)
    d0 = a * (fl + a_rel) / b_rel
    fa = fl * a
    p1 = -0.5 * fa / (0.001 - 2 * d0)
    p2 = (0.5 * fa) ** 2 / (0.001 - 2 * d0)
    p3 = -1.5 * fa
    ecc = (-p1 * p3 + p1 * 0.001 * vn + p2 - p3 * vn + 0.001 * vn**2) / (p1 + vn)
    con = (vn * a * a_rel + fa * b_rel) / (b_rel - vn)
    passive = (np.maximum(ln - 1.4, 0) / 0.26) ** 2
    expected = (np.maximum(np.where(vn < 0, con, ecc), 0) + passive) * F_MAX[0]
    # drive muscle 0 (pectoralis, r = 0.03 at the shoulder) at that length and velocity
    length = (ln * L_OPT[0] + L_TENDON[0] - A0[0]) / A1[0, 0] + OFFSET[0]
    q = np.stack([length, np.full(n, 1.0)], 1)
    dq = np.stack([vn * 10 * L_OPT[0] / A1[0, 0], np.zeros(n)], 1)
    act = np.repeat(a[:, None], 6, 1)
    np.testing.assert_allclose(E.muscle_force(q, dq, act)[:, 0], expected, rtol=1e-9, atol=1e-9)
