"""The spiking twin of a trained rate network, end to end: :func:`run_twin` (computes, reads and writes nothing).

It receives objects -- the trained (and, if so configured, lesioned) network, the LIF
neuron and the task -- and returns a :class:`TwinResult`; the pipeline reads the run
file and writes the result (:func:`cortexsim.store.write_spiking`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .. import metrics
from ..config import LIFParams
from ..model import Stimulus
from ..rate import RateNetwork
from ..tasks import Task, TrialBatch
from . import decode
from .arm import loop_target, run_arm_params
from .mapping import SpikingParams, map_rate_to_spiking
from .network import Spikes, best_target, simulate
from .result import TwinResult, fidelity_metrics, flat_batch


def evaluation_conditions(task: Task, catch: bool = True) -> TrialBatch:
    """Every condition at the evaluation delay, plus (``catch``) one catch trial of condition 0 (last)."""
    n = task.n_conditions
    condition = np.append(np.arange(n), 0) if catch else np.arange(n)
    flags = np.arange(condition.size) >= n
    return task.trials(condition, np.full(condition.size, task.eval_delay), flags)


def run_params(
    net: RateNetwork,
    params: SpikingParams,
    batch: TrialBatch,
    trials_per_condition: int,
    *,
    seed: int,
    target: str,
    stimulus: Stimulus | None = None,
) -> TwinResult:
    """Simulate the twin of ``params`` on ``batch`` (each condition ``trials_per_condition`` times) and score it.

    Parameters
    ----------
    net : RateNetwork
        The rate model the twin was mapped from (for the fidelity measures).
    params : SpikingParams
    batch : TrialBatch
        The conditions, one trial each.
    trials_per_condition : int
    seed : int
        Seeds Brian2's noise.
    target : str
        Brian2 code-generation target.
    stimulus : Stimulus, optional
        Stimulation of the twin's neurons over the condition-major trials (conditions x
        ``trials_per_condition``; :func:`cortexsim.spiking.network.simulate`).

    Returns
    -------
    TwinResult
    """
    n_cond, n_steps, _ = batch.inputs.shape
    inputs = np.repeat(batch.inputs, trials_per_condition, axis=0)  # condition-major
    drive = inputs @ params.w_in.T + params.b
    spikes = simulate(params, drive, batch.dt, seed=seed, target=target, stimulus=stimulus)
    rates = decode.pool_rates(spikes, params.k, params.n_units, inputs.shape[0], n_steps, batch.dt)
    rates = rates.reshape(n_cond, trials_per_condition, n_steps, -1)
    reference = net.simulate(batch)
    rate_rates, rate_outputs = reference.activity, reference.outputs
    outputs = decode.readout(rates, params.w_out, params.b_out, params.out_idx)
    targets = np.repeat(batch.targets[:, None], trials_per_condition, axis=1)
    single = flat_batch(batch, trials_per_condition)
    mean_out = outputs.mean(axis=1)
    fidelity, rows, unit_r, modulated = fidelity_metrics(params, rates, rate_rates, spikes)
    m = {
        "spiking_position_r2": metrics.position_r2(outputs.reshape(single.targets.shape), single.targets),
        "spiking_endpoint_error_cm": metrics.endpoint_error_cm(outputs.reshape(single.targets.shape), single),
        "spiking_position_r2_trial_avg": metrics.position_r2(mean_out, batch.targets),
        "spiking_endpoint_error_cm_trial_avg": metrics.endpoint_error_cm(mean_out, batch),
        **fidelity,
        "rate_position_r2_eval": metrics.position_r2(rate_outputs, batch.targets),
        "rate_endpoint_error_cm_eval": metrics.endpoint_error_cm(rate_outputs, batch),
    }
    if trials_per_condition >= 2:
        w, b = decode.refit_readout(rates[:, :-1], targets[:, :-1], params.out_idx)
        held = decode.readout(rates[:, -1], w, b, params.out_idx)
        m["spiking_position_r2_refit"] = metrics.position_r2(held, batch.targets)
        m["spiking_endpoint_error_cm_refit"] = metrics.endpoint_error_cm(held, batch)
    return TwinResult(m, spikes, rates, outputs, rows, unit_r, modulated, rate_rates, rate_outputs, batch, params)


def run_batch(
    net: RateNetwork,
    params: SpikingParams,
    batch: TrialBatch,
    trials_per_condition: int,
    *,
    seed: int,
    target: str | None = None,
    readout_tau: float = 0.020,
    stimulus: Stimulus | None = None,
) -> TwinResult:
    """The twin of ``params`` on ``batch``: open loop, or driving ``net``'s body in closed loop when it has one.

    ``target`` None picks the fastest target the loop allows; ``stimulus`` as for :func:`run_params`.
    """
    if net.body is not None:  # the twin drives the same body
        return run_arm_params(
            net,
            params,
            batch,
            trials_per_condition,
            seed=int(seed),
            target=loop_target("auto" if target is None else target),
            readout_tau=readout_tau,
            stimulus=stimulus,
        )
    target = best_target() if target is None else target
    return run_params(net, params, batch, trials_per_condition, seed=int(seed), target=target, stimulus=stimulus)


def run_twin(
    net: RateNetwork,
    lif: LIFParams,
    task: Task,
    *,
    seed: int,
    k: int = 5,
    trials_per_condition: int = 3,
    target: str | None = None,
    dt: float = 1e-4,
    catch: bool = True,
    readout_tau: float = 0.020,
) -> TwinResult:
    """Map a trained rate network to LIF pools, simulate the evaluation conditions, score it.

    A network that drives the six-muscle arm (:class:`~cortexsim.closed_loop.ArmRateNetwork`)
    gets a twin that drives the same arm in closed loop (:func:`cortexsim.spiking.arm.run_arm_params`).

    Parameters
    ----------
    net : RateNetwork
        The trained network, lesioned as the run's ``[lesion]`` says (a silenced unit's pool is
        held at :data:`~cortexsim.spiking.mapping.SILENCE_MV`).
    lif : LIFParams
        The neuron the rate units' transfer function stands for.
    task : Task
        The task whose evaluation conditions are simulated.
    seed : int
        Seeds the offset calibration and Brian2's noise (the run's ``experiment.seed``).
    k : int
        Neurons per rate unit.
    trials_per_condition : int
        Independent trials per condition (>= 2 for the refit readout; >= 3 recommended).
    target : str, optional
        Brian2 code generation target; default :func:`~cortexsim.spiking.network.best_target`
        (for the arm, :func:`~cortexsim.spiking.arm.loop_target`: a runtime target).
    dt : float
        Simulation step (s).
    catch : bool
        Add one catch condition to the targets.
    readout_tau : float
        Arm only: time constant (s) of the filter through which PT5B's spikes drive the muscles.

    Returns
    -------
    TwinResult
        With ``spiking_k`` and ``spiking_total_seconds`` added to its metrics.
    """
    t0 = time.perf_counter()
    params = map_rate_to_spiking(net, lif, k=k, dt=dt, seed=int(seed))
    batch = evaluation_conditions(task, catch=catch)
    out = run_batch(net, params, batch, trials_per_condition, seed=seed, target=target, readout_tau=readout_tau)
    extra = {"spiking_k": float(k), "spiking_total_seconds": time.perf_counter() - t0}
    return replace(out, metrics={**out.metrics, **extra})


__all__ = ["Spikes", "TwinResult", "evaluation_conditions", "run_batch", "run_params", "run_twin"]
