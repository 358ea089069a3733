"""The closed loop -- circuit, muscles, skeleton and delay lines -- as one map, for its fixed points.

When the circuit drives the six-muscle arm (:class:`cortexsim.closed_loop.ArmRateNetwork`), the
circuit's state alone does not determine its next state: the arm and the sensor readings still
travelling up the delay lines do too.  The state of the closed loop at task step ``t`` is therefore

    ``X[t] = (x[t], s[t], z[t], z[t - 1], ..., z[t - D])``

with ``x`` the circuit (units, mV), ``s`` the arm (q, dq in rad, rad/s; six activations),
``z`` the 14 sensor readings (six fibre lengths / l_opt, six fibre velocities / vmax, the hand in
m) and ``D`` the longer feedback delay in steps.  Under a constant task input ``u`` (target shown:
the visual error is measured from it) the noise-free loop of :class:`~cortexsim.closed_loop.ArmLoop`
is the map

    ``r = phi(x);  e = floor + (1 - floor) sigmoid(W_out r_PT5B + b_out)``
    ``s' = arm(s, e);  z' = sensors(s')``
    ``f = (g_l (z[t - d_p]_len - l0), g_v z[t - d_p]_vel, (z[t - d_v]_hand - hand0 - goal) / scale)``
    ``x' = (1 - alpha) x + alpha (W r + B u + B_fb f + b)``
    ``X' = (x', s', z', z[t], ..., z[t - D + 1])``

so its fixed points are the postures the circuit holds with its own feedback, and their
Jacobians' eigenvalues say whether the loop as a whole is stable there.  The Jacobian is exact:
the circuit's part as for :func:`cortexsim.analysis.rate_map`, the arm's from the plant's
hand-derived reverse step (:class:`cortexsim.effector.ArmKernel`, one reverse step per state
component) and the sensors' from :func:`cortexsim._plant.sense_backward`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixed_points import Jacobian, Step, rate_map

ARM_STATE = ("q_shoulder", "q_elbow", "dq_shoulder", "dq_elbow", *(f"activation_{m}" for m in range(6)))
"""The arm's part of the state, in order."""


def loop_layout(net: Any) -> dict[str, slice]:
    """Where each part of the closed-loop state lies: ``circuit``, ``arm`` and ``sensors`` (every delayed reading)."""
    n, depth = int(net.n_units), _depth(net)
    return {"circuit": slice(0, n), "arm": slice(n, n + 10), "sensors": slice(n + 10, n + 10 + 14 * (depth + 1))}


def _depth(net: Any) -> int:
    fb = net.body.feedback
    return int(max(fb.proprioception_delay, fb.vision_delay))


def loop_states(net: Any, states: np.ndarray, arm_state: np.ndarray) -> np.ndarray:
    """Closed-loop states along simulated trials, as :func:`arm_loop_map` orders them.

    Parameters
    ----------
    net : ArmRateNetwork
    states : ndarray, shape (trials, time, units)
        The circuit's x (mV).
    arm_state : ndarray, shape (trials, time, 10)
        q, dq and the six activations (as :class:`~cortexsim.closed_loop.LoopTrajectory` holds them).

    Returns
    -------
    ndarray, shape (trials, time, d)
        With the sensor readings at ``t, t - 1, ..., t - D`` (before the trial: its first reading).
    """
    n_trials, n_steps, _ = states.shape
    arm = net.body.arm
    z = np.empty((n_trials * n_steps, 14))
    arm.sense(np.ascontiguousarray(arm_state.reshape(-1, 10), float), z)
    z = z.reshape(n_trials, n_steps, 14)
    depth = _depth(net)
    lagged = [z[:, np.maximum(np.arange(n_steps) - k, 0)] for k in range(depth + 1)]
    return np.concatenate([states, arm_state, *lagged], axis=2).astype(float)


def arm_loop_map(net: Any, u: np.ndarray) -> tuple[Step, Jacobian]:
    """The noise-free closed loop of an :class:`~cortexsim.closed_loop.ArmRateNetwork` under constant input ``u``.

    See the module notes for the state and the map.  Uses the network's public ``params``,
    ``alpha``, ``sign``, ``transfer``, ``silenced``, ``out_idx``, ``n_task_inputs`` and ``body``
    (arm, feedback, excitation map, constant endpoint load); the parameters are copied.

    Parameters
    ----------
    net : ArmRateNetwork
    u : ndarray, shape (task inputs,)
        The constant task input; its first two channels are the shown target's direction.

    Returns
    -------
    step : callable
        States (m, d) -> next states (m, d), ``d = units + 10 + 14 (D + 1)``.
    jacobian : Jacobian
        Full (m, d, d) Jacobians and matrix-free products.
    """
    body, fb, arm = net.body, net.body.feedback, net.body.arm
    k_task = int(net.n_task_inputs)
    u = np.asarray(u, float).reshape(-1)
    if u.size != k_task:
        raise ValueError(f"u has {u.size} channels; the network has {k_task} task inputs")
    p = net.params
    n = int(net.n_units)
    depth, dp, dv = _depth(net), int(fb.proprioception_delay), int(fb.vision_delay)
    d = n + 10 + 14 * (depth + 1)
    alpha = np.asarray(net.alpha, float)
    w_fb = np.asarray(p["w_in"], float)[:, k_task:]  # (units, 14)
    on = 1.0 if fb.enabled else 0.0
    gain = on * np.repeat([fb.length_gain, fb.velocity_gain, 1.0 / fb.vision_scale], [6, 6, 2])
    offset = np.concatenate([body.length0, np.zeros(6), body.hand0 + u[:2] * body.reach])  # f = gain (z - offset)
    lag = np.array([dp] * 12 + [dv] * 2)  # which delayed reading each channel reads
    # the circuit's own map, with the task input (the feedback is added below)
    pad = np.concatenate([u, np.zeros(w_fb.shape[1])])
    circuit_step, circuit_jac = rate_map(net, pad)
    out_idx = np.asarray(net.out_idx)
    w_out, b_out = np.asarray(p["w_out"], float), np.asarray(p["b_out"], float)
    silenced = getattr(net, "silenced", None)
    keep = np.ones(n) if silenced is None else (~np.asarray(silenced, bool)).astype(float)
    phi, floor = net.transfer, float(body.excitation_floor)
    load = np.asarray(body.endpoint_load, float)
    sensors = n + 10 + 14 * lag + np.arange(14)  # state columns of the readings the feedback reads
    fb_gain = alpha[:, None] * w_fb * gain[None, :]  # d x' / d z[t - lag] (units, 14)

    def parts(X: np.ndarray):
        X = np.asarray(X, float)
        x, s = X[:, :n], np.ascontiguousarray(X[:, n : n + 10])
        y = (phi(x[:, out_idx].copy()) * keep[out_idx]) @ w_out.T + b_out  # the readout units only
        return X, x, s, 1.0 / (1.0 + np.exp(-y))

    def advance(s: np.ndarray, e: np.ndarray):
        m = s.shape[0]
        nxt, tape = np.empty_like(s), arm.tape(m)
        arm.step(s, np.ascontiguousarray(e), np.ascontiguousarray(np.broadcast_to(load, (m, 2))), nxt, tape)
        z = np.empty((m, 14))
        arm.sense(nxt, z)
        return nxt, z, tape

    def step(X: np.ndarray) -> np.ndarray:
        X, x, s, sig = parts(X)
        nxt, z, _ = advance(s, floor + (1.0 - floor) * sig)
        out = np.empty_like(X)
        out[:, :n] = circuit_step(x) + (X[:, sensors] - offset) @ fb_gain.T
        out[:, n : n + 10] = nxt
        out[:, n + 10 : n + 24] = z
        out[:, n + 24 :] = X[:, n + 10 : d - 14]
        return out

    def blocks(X: np.ndarray):
        """Per state: phi', P_s = ds'/ds (m,10,10), P_e = ds'/de (m,10,6), de/dy (m,6), S = dz'/ds' (m,14,10)."""
        X, x, s, sig = parts(X)
        m = X.shape[0]
        nxt, _, tape = advance(s, floor + (1.0 - floor) * sig)
        P_s, P_e = np.empty((m, 10, 10)), np.empty((m, 10, 6))
        g_out, g_s, g_e = np.zeros((m, 10)), np.empty((m, 10)), np.empty((m, 6))
        loads = np.ascontiguousarray(np.broadcast_to(load, (m, 2)))
        for i in range(10):
            g_out[...] = 0.0
            g_out[:, i] = 1.0
            arm.backward(tape, loads, g_out, g_s, g_e)
            P_s[:, i], P_e[:, i] = g_s, g_e
        S = np.empty((m, 14, 10))
        g_z = np.zeros((m, 14))
        for c in range(14):
            g_z[...] = 0.0
            g_z[:, c] = 1.0
            acc = np.zeros((m, 10))
            arm.sense_backward(nxt, g_z, acc)
            S[:, c] = acc
        slope = phi.derivative(x.copy()) * keep
        dedy = (1.0 - floor) * sig * (1.0 - sig)
        return slope, P_s, P_e, dedy, S

    def full(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)
        m = X.shape[0]
        slope, P_s, P_e, dedy, S = blocks(X)
        J = np.zeros((m, d, d))
        J[:, :n, :n] = circuit_jac.full(X[:, :n])
        J[:, :n, sensors] += fb_gain[None]
        # arm: from its own state, and from the readout units through the excitations
        de_dx = dedy[:, :, None] * w_out[None] * slope[:, None, out_idx]  # (m, 6, readout)
        J[:, n : n + 10, n : n + 10] = P_s
        J[:, n : n + 10, out_idx] = np.einsum("mie,meo->mio", P_e, de_dx)
        J[:, n + 10 : n + 24, :] = np.einsum("mcs,msj->mcj", S, J[:, n : n + 10, :])
        rows = np.arange(n + 24, d)
        J[:, rows, rows - 14] = 1.0
        return J

    def linearize(X: np.ndarray):
        X = np.asarray(X, float)
        slope, P_s, P_e, dedy, S = blocks(X)
        jvp_x, vjp_x = circuit_jac.linearize(X[:, :n])
        s_out = slope[:, out_idx]

        def jvp(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, float)
            out = np.empty_like(V)
            out[:, :n] = jvp_x(V[:, :n]) + V[:, sensors] @ fb_gain.T
            de = dedy * ((V[:, out_idx] * s_out) @ w_out.T)
            ds = np.einsum("mij,mj->mi", P_s, V[:, n : n + 10]) + np.einsum("mie,me->mi", P_e, de)
            out[:, n : n + 10] = ds
            out[:, n + 10 : n + 24] = np.einsum("mcs,ms->mc", S, ds)
            out[:, n + 24 :] = V[:, n + 10 : d - 14]
            return out

        def vjp(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, float)
            out = np.zeros_like(V)
            g_s = V[:, n : n + 10] + np.einsum("mcs,mc->ms", S, V[:, n + 10 : n + 24])  # on s'
            out[:, :n] = vjp_x(V[:, :n])
            g_e = np.einsum("mie,mi->me", P_e, g_s)
            out[:, out_idx] += s_out * ((dedy * g_e) @ w_out)
            out[:, n : n + 10] = np.einsum("mij,mi->mj", P_s, g_s)
            out[:, n + 10 : d - 14] = V[:, n + 24 :]
            out[:, sensors] += V[:, :n] @ fb_gain  # the readings the feedback reads are distinct columns
            return out

        return jvp, vjp

    return step, Jacobian(full, linearize)


__all__ = ["ARM_STATE", "arm_loop_map", "loop_layout", "loop_states"]
