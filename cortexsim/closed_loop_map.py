"""The closed loop -- circuit, muscles, skeleton and delay lines -- as one map, for its fixed points.

When the circuit drives the six-muscle arm (:class:`cortexsim.closed_loop.ArmRateNetwork`), the
circuit's state alone does not determine its next state: the arm and the sensor readings still
travelling up the delay lines do too.  The state of the closed loop at task step ``t`` is therefore

    ``X[t] = (x[t], s[t], z[t], z[t - 1], ..., z[t - D])``

with ``x`` the circuit (units, mV), ``s`` the arm (q, dq in rad, rad/s; six activations),
``z`` the sensor readings (the arm's 14: six fibre lengths / l_opt, six fibre velocities / vmax, the hand in
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
the controller's part from the model's own map (:func:`circuit_controller`, :func:`ann_controller`:
:meth:`cortexsim.rate.RateNetwork.step_map` and the ANN's own cell, :mod:`cortexsim.ann_cells`), the arm's from
the plant's hand-derived reverse step (:class:`cortexsim.effector.ArmKernel`, one reverse step per
state component) and the sensors' from :func:`cortexsim._plant.sense_backward`.

The models own this map: :meth:`cortexsim.closed_loop.ArmRateNetwork.step_map` and
:meth:`cortexsim.closed_loop.ArmANN.step_map` return :func:`loop_map` of their controller
(``cortexsim.analysis.arm_loop_map(net, u)`` is ``net.step_map(u)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Controller, Jacobian, Step, Trajectory
from .rate import RateNetwork


def loop_layout(net: Any, inner: str, n: int) -> dict[str, slice]:
    """Where each part of the closed-loop state lies: the model's own state, the body's (``plant.PART``), ``sensors``.

    Parameters
    ----------
    net : ArmRateNetwork or ArmANN
    inner : str
        The name of the model's part (``circuit``; ``hidden`` for an ANN, ``[h, c]`` for the LSTM).
    n : int
        The size of the model's part.
    """
    depth, plant = _depth(net), net.body.plant
    S, C = plant.N_STATE, plant.N_SENSE
    return {inner: slice(0, n), plant.PART: slice(n, n + S), "sensors": slice(n + S, n + S + C * (depth + 1))}


def _depth(net: Any) -> int:
    fb = net.body.feedback
    return int(max(fb.proprioception_delay, fb.vision_delay))


def loop_states(net: Any, states: np.ndarray, arm_state: np.ndarray) -> np.ndarray:
    """Closed-loop states along simulated trials, as :func:`loop_map` orders them.

    Parameters
    ----------
    net : ArmRateNetwork or ArmANN
    states : ndarray, shape (trials, time, n)
        The controller's state: the circuit's x (mV), an ANN's h (the LSTM's ``[h, c]``).
    arm_state : ndarray, shape (trials, time, plant state)
        The body's state: q, dq and the activations (as :class:`~cortexsim.body.LoopTrajectory` holds them).

    Returns
    -------
    ndarray, shape (trials, time, d)
        With the sensor readings at ``t, t - 1, ..., t - D`` (before the trial: its first reading).
    """
    n_trials, n_steps, _ = states.shape
    plant = net.body.plant
    S, C = plant.N_STATE, plant.N_SENSE
    z = np.empty((n_trials * n_steps, C))
    plant.sense(np.ascontiguousarray(arm_state.reshape(-1, S), float), z)
    z = z.reshape(n_trials, n_steps, C)
    depth = _depth(net)
    lagged = [z[:, np.maximum(np.arange(n_steps) - k, 0)] for k in range(depth + 1)]
    return np.concatenate([states, arm_state, *lagged], axis=2).astype(float)


def trajectory_states(net: Any, trajectory: Trajectory) -> np.ndarray:
    """:func:`loop_states` of a simulated :class:`~cortexsim.model.Trajectory` of ``net``.

    Its ``body`` is the :class:`~cortexsim.closed_loop.LoopTrajectory`.

    Returns
    -------
    ndarray, shape (trials, time, d)
    """
    body = trajectory.body
    arm = np.concatenate([body.q, body.dq, body.activation], axis=2)
    return loop_states(net, trajectory.state, arm)


def circuit_controller(net: Any, u: np.ndarray, k_task: int) -> Controller:
    """The rate circuit on a body: ``x' = circuit(x) + alpha B_fb f``; logits from the readout units' rates.

    The circuit's part is its own open-loop map (:meth:`cortexsim.rate.RateNetwork.step_map`) with the
    feedback channels at zero; the feedback enters linearly.
    """
    p, n = net.params, int(net.n_units)
    alpha = np.asarray(net.alpha, float)
    w_fb = np.asarray(p["w_in"], float)[:, k_task:]  # (units, channels)
    circuit_step, circuit_jac = RateNetwork.step_map(net, np.concatenate([u, np.zeros(w_fb.shape[1])]))
    out_idx = np.asarray(net.out_idx)
    w_out, b_out = np.asarray(p["w_out"], float), np.asarray(p["b_out"], float)
    silenced = getattr(net, "silenced", None)
    keep = (np.ones(n) if silenced is None else (~np.asarray(silenced, bool)).astype(float))[out_idx]
    phi = net.transfer
    by_f = (alpha[:, None] * w_fb)[None]  # (1, units, channels): the feedback enters linearly

    return Controller(
        n=n,
        cols=out_idx,
        w_out=w_out,
        logits=lambda X: (phi(X[:, out_idx].copy()) * keep) @ w_out.T + b_out,
        slope=lambda X: phi.derivative(X[:, out_idx].copy()) * keep,
        step=lambda X, f: circuit_step(X) + f @ by_f[0].T,
        full=lambda X, f: (circuit_jac.full(X), by_f),
        linearize=lambda X, f: (*circuit_jac.linearize(X), by_f),
    )


def ann_controller(net: Any, u: np.ndarray, k_task: int) -> Controller:
    """An ANN on the arm: its own cell (:meth:`cortexsim.ann.LeakyRNN.cell`) with the drive ``B [u, f] + b``.

    The logits are ``W_out h + b_out``.
    """
    cell = net.model.cell()
    H = int(net.n_units)
    w_out, b_out = cell.p["w_out"], cell.p["b_out"]
    task_drive = cell.drive(np.concatenate([u, np.zeros(cell.p["w_in"].shape[1] - k_task)]))
    w_fb = cell.p["w_in"][:, k_task:]
    feedback = slice(k_task, None)

    def drive(f):
        return task_drive + f @ w_fb.T

    def full(X, f):
        x_in = drive(f)
        co = cell.coefficients(X, x_in)
        return cell.full(X, x_in, co), cell.input_jacobian(X, x_in, feedback, co)

    def linearize(X, f):
        x_in = drive(f)
        co = cell.coefficients(X, x_in)
        return (*cell.linearize(X, x_in, co), cell.input_jacobian(X, x_in, feedback, co))

    return Controller(
        n=cell.n_state,
        cols=np.arange(H),
        w_out=w_out,
        logits=lambda X: X[:, :H] @ w_out.T + b_out,
        slope=lambda X: np.ones((X.shape[0], H)),
        step=lambda X, f: cell.step(X, drive(f)),
        full=full,
        linearize=linearize,
    )


def _rows_times(A: np.ndarray, V: np.ndarray, transpose: bool = False) -> np.ndarray:
    """Row by row ``A[k] @ V[k]`` (or ``A[k].T @ V[k]``); ``A`` (m or 1, a, b) -- one shared matrix is one GEMM."""
    if A.shape[0] == 1:
        return V @ A[0] if transpose else V @ A[0].T
    return np.matmul(V[:, None, :], A if transpose else A.transpose(0, 2, 1))[:, 0]


def loop_map(net: Any, c: Controller, u: np.ndarray) -> tuple[Step, Jacobian]:
    """The noise-free closed loop of a model driving the arm through its controller ``c``, under constant input ``u``.

    See the module notes for the state and the map; for an
    :class:`~cortexsim.closed_loop.ArmANN` the circuit's update is the ANN's own cell
    (with the 14 feedback channels as its extra inputs) and the excitation logits are
    ``W_out h + b_out``.  Uses the model's ``n_task_inputs`` and ``body`` (arm, feedback,
    excitation map, constant endpoint load); the parameters are copied.

    Parameters
    ----------
    net : ArmRateNetwork or ArmANN
    c : Controller
        The model's update and readout (:func:`circuit_controller`, :func:`ann_controller`).
    u : ndarray, shape (task inputs,)
        The constant task input; its first two channels are the shown target's direction.

    Returns
    -------
    step : callable
        States (m, d) -> next states (m, d), ``d = n + S + C (D + 1)`` (the arm: S = 10, C = 14), ``n`` the
        controller's state size (:func:`loop_layout`).
    jacobian : Jacobian
        Full (m, d, d) Jacobians and matrix-free products.
    """
    body, fb, arm = net.body, net.body.feedback, net.body.plant
    S, C, M = arm.N_STATE, arm.N_SENSE, arm.N_MUSCLES
    k_task = int(net.n_task_inputs)
    u = np.asarray(u, float).reshape(-1)
    if u.size != k_task:
        raise ValueError(f"u has {u.size} channels; the network has {k_task} task inputs")
    n = c.n
    depth, dp, dv = _depth(net), int(fb.proprioception_delay), int(fb.vision_delay)
    d = n + S + C * (depth + 1)
    on = 1.0 if fb.enabled else 0.0
    gain = on * np.repeat([fb.length_gain, fb.velocity_gain, 1.0 / fb.vision_scale], [M, M, 2])
    offset = np.concatenate([body.length0, np.zeros(M), body.hand0 + u[:2] * body.reach])  # f = gain (z - offset)
    lag = np.array([dp] * (2 * M) + [dv] * 2)  # which delayed reading each channel reads
    floor = float(body.excitation_floor)
    load = np.asarray(body.endpoint_load, float)
    sensors = n + S + C * lag + np.arange(C)  # state columns of the readings the feedback reads
    cols, w_out = c.cols, c.w_out

    def parts(X: np.ndarray):
        X = np.asarray(X, float)
        x, s = X[:, :n], np.ascontiguousarray(X[:, n : n + S])
        f = gain * (X[:, sensors] - offset)
        return X, x, s, f, 1.0 / (1.0 + np.exp(-c.logits(x)))

    def advance(s: np.ndarray, e: np.ndarray):
        m = s.shape[0]
        nxt, tape = np.empty_like(s), arm.tape(m)
        arm.step(s, np.ascontiguousarray(e), np.ascontiguousarray(np.broadcast_to(load, (m, 2))), nxt, tape)
        z = np.empty((m, C))
        arm.sense(nxt, z)
        return nxt, z, tape

    def step(X: np.ndarray) -> np.ndarray:
        X, x, s, f, sig = parts(X)
        nxt, z, _ = advance(s, floor + (1.0 - floor) * sig)
        out = np.empty_like(X)
        out[:, :n] = c.step(x, f)
        out[:, n : n + S] = nxt
        out[:, n + S : n + S + C] = z
        out[:, n + S + C :] = X[:, n + S : d - C]
        return out

    def blocks(X: np.ndarray):
        """Per state: the readout's slope, P_s = ds'/ds (m,S,S), P_e = ds'/de (m,S,M), de/dy (m,M), Z = dz'/ds'."""
        X, x, s, f, sig = parts(X)
        m = X.shape[0]
        nxt, _, tape = advance(s, floor + (1.0 - floor) * sig)
        P_s, P_e = np.empty((m, S, S)), np.empty((m, S, M))
        g_out, g_s, g_e = np.zeros((m, S)), np.empty((m, S)), np.empty((m, M))
        loads = np.ascontiguousarray(np.broadcast_to(load, (m, 2)))
        for i in range(S):
            g_out[...] = 0.0
            g_out[:, i] = 1.0
            arm.backward(tape, loads, g_out, g_s, g_e)
            P_s[:, i], P_e[:, i] = g_s, g_e
        Z = np.empty((m, C, S))
        g_z = np.zeros((m, C))
        for ch in range(C):
            g_z[...] = 0.0
            g_z[:, ch] = 1.0
            acc = np.zeros((m, S))
            arm.sense_backward(nxt, g_z, acc)
            Z[:, ch] = acc
        dedy = (1.0 - floor) * sig * (1.0 - sig)
        return x, f, c.slope(x), P_s, P_e, dedy, Z

    def full(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)
        m = X.shape[0]
        x, f, slope, P_s, P_e, dedy, Z = blocks(X)
        J = np.zeros((m, d, d))
        J[:, :n, :n], by_f = c.full(x, f)
        J[:, :n, sensors] += by_f * gain  # d x' / d z[t - lag]
        # arm: from its own state, and from the readout through the excitations
        de_dx = dedy[:, :, None] * w_out[None] * slope[:, None, :]  # (m, M, readout)
        J[:, n : n + S, n : n + S] = P_s
        J[:, n : n + S, cols] = np.einsum("mie,meo->mio", P_e, de_dx)
        J[:, n + S : n + S + C, :] = np.einsum("mcs,msj->mcj", Z, J[:, n : n + S, :])
        rows = np.arange(n + S + C, d)
        J[:, rows, rows - C] = 1.0
        return J

    def linearize(X: np.ndarray):
        X = np.asarray(X, float)
        x, f, slope, P_s, P_e, dedy, Z = blocks(X)
        jvp_x, vjp_x, by_f = c.linearize(x, f)
        by_sensors = by_f * gain  # d x' / d z[t - lag], (m or 1, n, C)

        def jvp(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, float)
            out = np.empty_like(V)
            out[:, :n] = jvp_x(V[:, :n]) + _rows_times(by_sensors, V[:, sensors])
            de = dedy * ((V[:, cols] * slope) @ w_out.T)
            ds = np.einsum("mij,mj->mi", P_s, V[:, n : n + S]) + np.einsum("mie,me->mi", P_e, de)
            out[:, n : n + S] = ds
            out[:, n + S : n + S + C] = np.einsum("mcs,ms->mc", Z, ds)
            out[:, n + S + C :] = V[:, n + S : d - C]
            return out

        def vjp(V: np.ndarray) -> np.ndarray:
            V = np.asarray(V, float)
            out = np.zeros_like(V)
            g_s = V[:, n : n + S] + np.einsum("mcs,mc->ms", Z, V[:, n + S : n + S + C])  # on s'
            out[:, :n] = vjp_x(V[:, :n])
            g_e = np.einsum("mie,mi->me", P_e, g_s)
            out[:, cols] += slope * ((dedy * g_e) @ w_out)
            out[:, n : n + S] = np.einsum("mij,mi->mj", P_s, g_s)
            out[:, n + S : d - C] = V[:, n + S + C :]
            out[:, sensors] += _rows_times(by_sensors, V[:, :n], transpose=True)  # distinct columns
            return out

        return jvp, vjp

    return step, Jacobian(full, linearize)


__all__ = [
    "ann_controller",
    "circuit_controller",
    "loop_layout",
    "loop_map",
    "loop_states",
    "trajectory_states",
]
