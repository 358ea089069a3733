"""The fused arm kernels (cortexsim._plant, via effector.ArmKernel) against the numpy plant and finite differences."""

import numpy as np
import pytest

from cortexsim import effector as E
from cortexsim.errors import ConfigError

DT = 0.01


def _states(rng, n, near_limits=False):
    """Varied arm states (trials, 10): postures across the workspace, velocities, activations."""
    q = np.array([0.8, 1.5]) + 0.3 * rng.standard_normal((n, 2))
    if near_limits:  # inside the soft limits' width, where the barrier torques act
        q[: n // 2, 0] = -0.005 + 0.01 * rng.random(n // 2)
        q[n // 2 :, 1] = np.deg2rad(155) + 0.01 * rng.random(n - n // 2)
    dq = 2.0 * rng.standard_normal((n, 2))
    a = rng.uniform(0.01, 0.6, (n, 6))
    return np.concatenate([q, dq, a], axis=1)


CURL = np.array([[0.0, 13.0], [-13.0, 0.0]])  # N s/m, the classic curl field
SKEW = np.array([[-10.1, -11.2], [-11.2, 11.1]])  # Shadmehr & Mussa-Ivaldi (1994)'s viscous field


def _reference(s, u, load, substeps=5, curl=None):
    st = E.ArmState(s[:, :2].copy(), s[:, 2:4].copy(), s[:, 4:].copy())
    out = E.arm_step(st, np.clip(u, 0, 1), DT, substeps=substeps, endpoint_load=load, curl=curl)
    return np.concatenate([out.q, out.dq, out.activation], axis=1)


@pytest.mark.parametrize("curl", [None, CURL, SKEW], ids=["no field", "curl", "viscous"])
@pytest.mark.parametrize("near_limits", [False, True])
def test_fused_step_matches_numpy_reference(near_limits, curl):
    rng = np.random.default_rng(0)
    arm = E.ArmKernel(DT, curl=curl)
    n = 32
    s = _states(rng, n, near_limits)
    u = rng.uniform(0.0, 1.0, (n, 6))
    load = rng.normal(0.0, 5.0, (n, 2))
    out, tape = np.empty_like(s), arm.tape(n)
    arm.step(s, u, load, out, tape)
    np.testing.assert_allclose(out, _reference(s, u, load, curl=curl), rtol=0, atol=1e-11)
    # the tape's first record of each trial is the starting state
    np.testing.assert_array_equal(tape[:, 0, :10], s)


def test_a_curl_field_pushes_the_hand_sideways_and_does_no_work():
    """f = B v with B antisymmetric is perpendicular to v: it turns the hand's path without power."""
    q = np.array([[0.8, 1.5]])
    dq = np.array([[1.0, -1.5]])
    v = E.hand_velocity(q, dq)[0]  # m/s
    f = CURL @ v
    assert abs(f @ v) < 1e-12 and np.linalg.norm(f) == pytest.approx(13.0 * np.linalg.norm(v))
    # over one sub-step the field is the force f held as a load (it is evaluated at the sub-step's start)
    s = np.concatenate([q, dq, np.full((1, 6), 0.1)], axis=1)
    one = E.ArmKernel(0.002, substeps=1)
    u = np.full((1, 6), 0.1)
    curled, held, free = np.empty_like(s), np.empty_like(s), np.empty_like(s)
    one.with_curl(CURL).step(s, u, np.zeros((1, 2)), curled, one.tape(1))
    one.step(s, u, f[None], held, one.tape(1))
    one.step(s, u, np.zeros((1, 2)), free, one.tape(1))
    np.testing.assert_allclose(curled, held, rtol=0, atol=1e-13)
    assert np.abs(curled - free).max() > 1e-3
    assert not E.ArmKernel(DT).curl.any()
    with pytest.raises(ConfigError, match="curl"):
        E.ArmKernel(DT, curl=[[0.0, 1.0]])


def test_fused_step_covers_every_muscle_regime():
    """Shortening and lengthening fibres, low and high activation, excitation above and below activation."""
    rng = np.random.default_rng(1)
    arm = E.ArmKernel(DT, substeps=10)
    n = 64
    s = _states(rng, n)
    s[:, 4:] = rng.choice([0.001, 0.1, 0.5, 1.0], (n, 6))
    u = rng.choice([0.0, 0.001, 0.2, 1.0], (n, 6))
    load = np.zeros((n, 2))
    out, tape = np.empty_like(s), arm.tape(n)
    arm.step(s, u, load, out, tape)
    np.testing.assert_allclose(out, _reference(s, u, load, substeps=10), rtol=0, atol=1e-11)


def _directional(f, x, d, h=1e-6):
    return (f(x + h * d) - f(x - h * d)) / (2 * h)


@pytest.mark.parametrize("curl", [None, CURL, SKEW], ids=["no field", "curl", "viscous"])
@pytest.mark.parametrize("near_limits", [False, True])
def test_backward_step_matches_finite_differences(near_limits, curl):
    rng = np.random.default_rng(2)
    arm = E.ArmKernel(DT, curl=curl)
    n = 8
    s = _states(rng, n, near_limits)
    u = rng.uniform(0.05, 0.9, (n, 6))
    load = rng.normal(0.0, 5.0, (n, 2))
    w = rng.standard_normal((n, 10))  # loss = sum(w * state after the step)

    def loss(s_=s, u_=u, load_=load):
        out, tape = np.empty_like(s_), arm.tape(n)
        arm.step(s_, u_, load_, out, tape)
        return float(np.sum(w * out))

    out, tape = np.empty_like(s), arm.tape(n)
    arm.step(s, u, load, out, tape)
    g_s, g_u, g_load = np.empty((n, 10)), np.empty((n, 6)), np.zeros((n, 2))
    arm.backward(tape, load, w, g_s, g_u, g_load)
    for name, x, g in (("state", s, g_s), ("excitation", u, g_u), ("load", load, g_load)):
        for _ in range(3):
            d = rng.standard_normal(x.shape)

            def f(v, name=name):
                return loss(**{"state": {"s_": v}, "excitation": {"u_": v}, "load": {"load_": v}}[name])

            numeric = _directional(f, x, d)
            analytic = float(np.sum(g * d))
            assert abs(numeric - analytic) <= 1e-6 * max(abs(numeric), 1e-8), (name, numeric, analytic)


def test_backward_without_load_gradient_gives_the_same_state_gradient():
    rng = np.random.default_rng(3)
    arm = E.ArmKernel(DT)
    n = 4
    s, u, load = _states(rng, n), rng.uniform(0.05, 0.9, (n, 6)), rng.normal(0, 3, (n, 2))
    out, tape = np.empty_like(s), arm.tape(n)
    arm.step(s, u, load, out, tape)
    g = rng.standard_normal((n, 10))
    a, b = (np.empty((n, 10)), np.empty((n, 6))), (np.empty((n, 10)), np.empty((n, 6)))
    arm.backward(tape, load, g, *a, np.zeros((n, 2)))
    arm.backward(tape, load, g, *b, None)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_excitation_gradient_is_zero_where_clipped():
    rng = np.random.default_rng(4)
    arm = E.ArmKernel(DT)
    n = 4
    s = _states(rng, n)
    u = np.full((n, 6), 0.3)
    u[:, 0], u[:, 1] = 1.5, -0.2  # outside [min_activation, 1]
    out, tape = np.empty_like(s), arm.tape(n)
    arm.step(s, u, np.zeros((n, 2)), out, tape)
    g_s, g_u = np.empty((n, 10)), np.empty((n, 6))
    arm.backward(tape, np.zeros((n, 2)), np.ones((n, 10)), g_s, g_u, None)
    assert np.all(g_u[:, :2] == 0) and np.all(g_u[:, 2:] != 0)


def test_sensors_and_their_gradient():
    rng = np.random.default_rng(5)
    arm = E.ArmKernel(DT)
    p = E.Arm26Params()
    n = 6
    s = _states(rng, n)
    z = np.empty((n, 14))
    arm.sense(s, z)
    q, dq = s[:, :2], s[:, 2:4]
    fibre = E.muscle_lengths(q) - np.array(p.tendon_length)
    np.testing.assert_allclose(z[:, :6], fibre / np.array(p.optimal_fibre_length), atol=1e-14)
    velocity = np.einsum("nj,njm->nm", dq, -E.moment_arms(q))
    np.testing.assert_allclose(z[:, 6:12], velocity / (p.velocity_scale * np.array(p.optimal_fibre_length)), atol=1e-14)
    np.testing.assert_allclose(z[:, 12:], E.hand_position(q), atol=1e-15)
    w = rng.standard_normal((n, 14))
    g = np.zeros((n, 10))
    arm.sense_backward(s, w, g)
    for _ in range(3):
        d = rng.standard_normal(s.shape)

        def f(v):
            out = np.empty((n, 14))
            arm.sense(v, out)
            return float(np.sum(w * out))

        numeric = _directional(f, s, d)
        assert abs(numeric - np.sum(g * d)) <= 1e-7 * abs(numeric)


def test_balanced_excitation_holds_the_start_posture():
    p = E.Arm26Params()
    a = E.balanced_excitation(p.start_posture, 0.05)
    np.testing.assert_allclose(E.muscle_torque(p.start_posture, np.zeros(2), a), 0.0, atol=1e-9)
    assert abs(a.mean() - 0.05) < 0.005 and np.all(a > 0.03)
    # one 10 ms step from rest there moves nothing (a static, though unstable, equilibrium)
    arm = E.ArmKernel(DT)
    s = arm.initial(1)
    s[0, 4:] = a
    out = np.empty_like(s)
    arm.step(s, a[None], np.zeros((1, 2)), out, arm.tape(1))
    np.testing.assert_allclose(out[0, :4], s[0, :4], atol=1e-12)
    with pytest.raises(ConfigError, match="level"):
        E.balanced_excitation(p.start_posture, 0.0)


def test_kernel_refuses_a_substep_longer_than_the_activation_time_constant():
    with pytest.raises(ConfigError, match="substeps"):
        E.ArmKernel(0.01, substeps=1)
