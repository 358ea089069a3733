"""The spiking twin drives the six-muscle arm in closed loop: :func:`run_arm_params`.

The twin of an :class:`~cortexsim.closed_loop.ArmRateNetwork` moves the same arm, through the same
excitation map, with the same feedback channels, delays and noise as its rate model
(the body's loop, :meth:`~cortexsim.body.Body.loop`, is the body side of both).  Every trial is its own copy
of the LIF pools, all simulated side by side (:func:`cortexsim.spiking.network.simulate_loop`);
at each task step ``t`` a Brian2 ``NetworkOperation``

1. reads PT5B's rates -- each neuron's spikes through a causal exponential filter
   (``readout_tau``, 20 ms by default, the filter :mod:`cortexsim.spiking.decode` uses), averaged
   over its pool, at the end of step ``t - 1``;
2. sends ``y[t - 1] = W_out r + b_out`` through ``floor + (1 - floor) sigmoid(y)`` to the muscles
   and steps the arm (the fused plant, all trials at once);
3. sets every pool's feedback drive for step ``t`` to ``B_fb f[t]``, where ``f[t]`` is what the
   sensors reported ``delay`` steps earlier -- the feedback the rate model receives at step
   ``t``, on time (it needs only the arm's state up to ``t``).

So the twin's loop differs from the rate model's only where spikes differ from rates: its
readout is a filtered spike count (noisy, and about ``readout_tau`` late), not ``phi(x)``.

Why a network operation and not the plant as Brian2 equations: the operation runs once per
10 ms task step, not once per 0.1 ms simulation step, and steps every trial in one call of the
compiled plant -- measured on the default arm run, the whole loop (readout, plant, sensors,
feedback drive) costs about 0.1 s of a simulation of a minute or more; equations would have to
carry the arm's ten state variables and the muscle geometry through every 0.1 ms step, for every
trial, to gain nothing.  The price: a runtime target (``cython`` or ``numpy``), since
``cpp_standalone`` cannot call Python.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .. import metrics
from ..closed_loop import ArmRateNetwork, LoopNoise
from ..model import Stimulus
from ..streams import stream
from ..tasks import TrialBatch
from . import decode
from .mapping import SpikingParams
from .network import best_target, simulate_loop
from .result import TwinResult, fidelity_metrics, flat_batch

READOUT_TAU = 0.020
"""Default time constant (s) of the filter that turns PT5B's spikes into the rates the muscles read."""


def loop_target(target: str) -> str:
    """The Brian2 target a closed loop runs under: ``target`` unless it is ``"cpp_standalone"`` / ``"auto"``.

    ``"auto"`` and ``"cpp_standalone"`` become ``"cython"`` when a C++ compiler works, else ``"numpy"``
    (a standalone binary cannot call the arm).
    """
    if target in ("numpy", "cython"):
        return target
    return "cython" if best_target() == "cpp_standalone" else "numpy"  # a compiler works


def run_arm_params(
    net: ArmRateNetwork,
    params: SpikingParams,
    batch: TrialBatch,
    trials_per_condition: int,
    *,
    seed: int,
    target: str,
    readout_tau: float = READOUT_TAU,
    stimulus: Stimulus | None = None,
):
    """Simulate the twin of ``params`` driving ``net``'s arm on ``batch`` and score it.

    Parameters
    ----------
    net : ArmRateNetwork
        The rate model the twin was mapped from: its body (arm, feedback, excitation map) is the
        twin's, and its noise-free closed loop is the reference for the fidelity measures.
    params : SpikingParams
        The twin (``w_in`` holds the task and the feedback columns).
    batch : TrialBatch
        The conditions, one trial each.
    trials_per_condition : int
    seed : int
        Seeds Brian2's noise, the membrane potentials and the sensory / motor noise of the loop.
    target : str
        ``"numpy"`` or ``"cython"`` (see :func:`loop_target`).
    readout_tau : float
        Time constant of PT5B's readout filter (s).
    stimulus : Stimulus, optional
        Stimulation of the twin's neurons over the condition-major trials
        (:func:`cortexsim.spiking.network.simulate_loop`).  Silence that is on at the first step
        also starts the readout filters of the silenced neurons' pools where a silenced rate unit starts: at 0.

    Returns
    -------
    TwinResult
        ``outputs`` is the hand relative to its start (m); ``effector`` the arm's record, each
        array (conditions, trials, time, k).
    """
    n_cond, n_steps, _ = batch.inputs.shape
    k_task = net.n_task_inputs
    trials = flat_batch(batch, trials_per_condition)
    n_trials = trials.n_trials
    sensory, motor = net.body.noise(n_trials, n_steps, stream(seed, "twin-body-noise"))
    loop = net.body.loop(trials, LoopNoise(None, sensory, motor))
    drive = trials.inputs @ params.w_in[:, :k_task].T + params.b
    w_fb_t = np.ascontiguousarray(params.w_in[:, k_task:].T)  # (channels, units)
    w_out_t, b_out = params.w_out.T, params.b_out
    fb_on = net.body.feedback.enabled

    def controller(t: int, readout_rates: np.ndarray) -> np.ndarray | None:
        if t >= 1:
            loop.send(t - 1, readout_rates @ w_out_t + b_out)
        if t < n_steps and fb_on:
            return loop.feedback(t) @ w_fb_t
        return None

    r0 = net.transfer(np.array(params.x0[params.out_idx], float))
    if stimulus is not None and stimulus.silence:  # (trials, readout units): the light at t = 0 keeps this share
        lit = stimulus.expression.reshape(params.n_units, params.k)[params.out_idx].mean(axis=1)
        r0 = r0[None, :] * (1.0 - lit[None, :] * stimulus.profile[0][:, None])
    t0 = time.perf_counter()
    spikes = simulate_loop(
        params, drive, batch.dt, controller, r0, readout_tau=readout_tau, seed=seed, target=target, stimulus=stimulus
    )
    rates = decode.pool_rates(spikes, params.k, params.n_units, n_trials, n_steps, batch.dt)
    rates = rates.reshape(n_cond, trials_per_condition, n_steps, -1)
    reference = net.simulate_loop(batch)
    record = loop.trajectory(np.empty((n_trials, 0, 0)), np.empty((n_trials, 0, 0)))
    hand = record.hand.reshape(n_cond, trials_per_condition, n_steps, 2)
    mean_hand = hand.mean(axis=1)
    m, rows, unit_r, modulated = fidelity_metrics(params, rates, reference.rates, spikes)
    m.update(
        {
            "spiking_position_r2": metrics.position_r2(record.hand, trials.targets),
            "spiking_endpoint_error_cm": metrics.endpoint_error_cm(record.hand, trials),
            "spiking_catch_drift_cm": metrics.catch_drift_cm(record.hand, trials),
            "spiking_peak_speed_error": metrics.peak_speed_error(record.hand, trials),
            "spiking_speed_profile_r": metrics.speed_profile_r(record.hand, trials),
            "spiking_position_r2_trial_avg": metrics.position_r2(mean_hand, batch.targets),
            "spiking_endpoint_error_cm_trial_avg": metrics.endpoint_error_cm(mean_hand, batch),
            "spiking_loop_seconds": time.perf_counter() - t0,
            "spiking_readout_tau_ms": 1e3 * readout_tau,
            "rate_position_r2_eval": metrics.position_r2(reference.hand, batch.targets),
            "rate_endpoint_error_cm_eval": metrics.endpoint_error_cm(reference.hand, batch),
        }
    )
    arm = {
        name: getattr(record, name).reshape(n_cond, trials_per_condition, n_steps, -1)
        for name in ("q", "dq", "activation", "excitation", "feedback")
    }
    arm["hand"] = record.hand_shoulder.reshape(n_cond, trials_per_condition, n_steps, 2)
    out = TwinResult(m, spikes, rates, hand, rows, unit_r, modulated, reference.rates, reference.hand, batch, params)
    return replace(out, effector=arm)


__all__ = ["READOUT_TAU", "loop_target", "run_arm_params"]
