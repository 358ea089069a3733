"""The spiking twin of a trained rate network, end to end: :func:`run_twin` (computes, reads and writes nothing).

It receives objects -- the trained (and, if so configured, lesioned) network, the LIF
neuron and the task -- and returns a :class:`TwinResult`; the pipeline reads the run
file and writes the result (:func:`cortexsim.store.write_spiking`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .. import metrics
from ..closed_loop import ArmRateNetwork
from ..config import LIFParams
from ..rate import RateNetwork
from ..tasks import CenterOutTask, TrialBatch
from . import decode
from .mapping import SpikingParams, map_rate_to_spiking
from .network import Spikes, best_target, simulate


def evaluation_conditions(task: CenterOutTask, catch: bool = True) -> TrialBatch:
    """Every target at the evaluation delay, plus (``catch``) one catch trial toward target 0."""
    angles = task.target_angles()
    n = angles.size
    if catch:
        angles = np.append(angles, angles[0])
    flags = np.arange(angles.size) >= n
    return task.build(angles, np.full(angles.size, task.eval_delay), flags, np.arange(angles.size))


@dataclass(frozen=True)
class TwinResult:
    """The spiking twin on a set of conditions, and how faithfully it follows its rate model.

    Attributes
    ----------
    metrics : dict of str to float
        ``spiking_position_r2``, ``spiking_endpoint_error_cm`` (single trials, trained readout);
        ``*_trial_avg``; ``spiking_position_r2_refit`` and ``spiking_endpoint_error_cm_refit``
        (readout refit on all but the last trial of each condition, scored on the last);
        ``spiking_psth_r_median``; rates (Hz), CV ISI, timings (s).
    spikes : Spikes
        Every spike, trials back to back.
    rates : ndarray, shape (conditions, trials, time, units)
        Pool rates (Hz).
    outputs : ndarray, shape (conditions, trials, time, outputs)
        Hand position decoded with the trained readout (m).
    fidelity : list of dict
        One row per population (see :func:`cortexsim.spiking.decode.fidelity_table`).
    unit_psth_r : ndarray, shape (units,)
        Pearson r of each unit's trial-averaged PSTH with its rate-model rate.
    modulated : ndarray of bool, shape (units,)
        Units whose rate-model rate is modulated (those ``unit_psth_r`` is summarised over).
    rate_rates : ndarray, shape (conditions, time, units)
        The rate model's rates on the same conditions (Hz).
    rate_outputs : ndarray, shape (conditions, time, outputs)
        The rate model's outputs (m).
    batch : TrialBatch
        The conditions.
    params : SpikingParams
        The rate -> spiking mapping simulated.
    effector : dict of str to ndarray, optional
        When the twin drove the six-muscle arm: ``q``, ``dq``, ``hand`` (shoulder frame),
        ``activation``, ``excitation``, ``feedback``, each (conditions, trials, time, k) as
        :data:`cortexsim.store.EFFECTOR_ARRAYS` describes them; ``outputs`` is then the hand
        relative to its start.
    """

    metrics: dict[str, float]
    spikes: Spikes
    rates: np.ndarray
    outputs: np.ndarray
    fidelity: list[dict]
    unit_psth_r: np.ndarray
    modulated: np.ndarray
    rate_rates: np.ndarray
    rate_outputs: np.ndarray
    batch: TrialBatch
    params: SpikingParams
    effector: dict[str, np.ndarray] | None = None


def fidelity_metrics(
    params: SpikingParams, rates: np.ndarray, rate_rates: np.ndarray, spikes: Spikes
) -> tuple[dict[str, float], list[dict], np.ndarray, np.ndarray]:
    """How faithfully the twin's rates follow its rate model's, and its firing statistics.

    Parameters
    ----------
    params : SpikingParams
    rates : ndarray, shape (conditions, trials, time, units)
        The twin's pool rates (Hz).
    rate_rates : ndarray, shape (conditions, time, units)
        The rate model's rates on the same conditions (Hz).
    spikes : Spikes

    Returns
    -------
    metrics : dict
        ``spiking_psth_r_median``, ``spiking_rate_mean_hz``, ``spiking_cv_isi_median``,
        ``spiking_sim_seconds``, ``spiking_bio_seconds``, ``spiking_offset_mv``.
    rows, unit_psth_r, modulated
        As :func:`cortexsim.spiking.decode.fidelity_table` returns them.
    """
    rows, unit_r, modulated = decode.fidelity_table(
        rates.mean(axis=1), rate_rates, spikes, params.k, params.populations
    )
    m = {
        "spiking_psth_r_median": float(np.nanmedian(unit_r[modulated])) if modulated.any() else float("nan"),
        "spiking_rate_mean_hz": float(spikes.times.size / (spikes.n_neurons * spikes.duration)),
        "spiking_cv_isi_median": float(np.nanmedian(decode.cv_isi(spikes))),
        "spiking_sim_seconds": spikes.wall_seconds,
        "spiking_bio_seconds": spikes.duration,
        "spiking_offset_mv": params.offset_mv,
    }
    return m, rows, unit_r, modulated


def run_params(
    net: RateNetwork, params: SpikingParams, batch: TrialBatch, trials_per_condition: int, *, seed: int, target: str
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

    Returns
    -------
    TwinResult
    """
    n_cond, n_steps, _ = batch.inputs.shape
    inputs = np.repeat(batch.inputs, trials_per_condition, axis=0)  # condition-major
    drive = inputs @ params.w_in.T + params.b
    spikes = simulate(params, drive, batch.dt, seed=seed, target=target)
    rates = decode.pool_rates(spikes, params.k, params.n_units, inputs.shape[0], n_steps, batch.dt)
    rates = rates.reshape(n_cond, trials_per_condition, n_steps, -1)
    _, rate_rates, rate_outputs = net.simulate(batch)
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


def flat_batch(batch: TrialBatch, repeats: int) -> TrialBatch:
    """``batch`` with every condition repeated ``repeats`` times (condition-major)."""
    rep = {k: np.repeat(val, repeats, axis=0) for k, val in batch.params.items()}
    return TrialBatch(
        np.repeat(batch.inputs, repeats, 0),
        np.repeat(batch.targets, repeats, 0),
        np.repeat(batch.mask, repeats, 0),
        batch.dt,
        rep,
    )


def run_twin(
    net: RateNetwork,
    lif: LIFParams,
    task: CenterOutTask,
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
    task : CenterOutTask
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
    if isinstance(net, ArmRateNetwork):
        from .arm import loop_target, run_arm_params  # arm.py builds on this module

        out = run_arm_params(
            net,
            params,
            batch,
            trials_per_condition,
            seed=int(seed),
            target=loop_target("auto" if target is None else target),
            readout_tau=readout_tau,
        )
    else:
        target = best_target() if target is None else target
        out = run_params(net, params, batch, trials_per_condition, seed=int(seed), target=target)
    extra = {"spiking_k": float(k), "spiking_total_seconds": time.perf_counter() - t0}
    return replace(out, metrics={**out.metrics, **extra})


__all__ = ["Spikes", "TwinResult", "evaluation_conditions", "run_params", "run_twin"]
