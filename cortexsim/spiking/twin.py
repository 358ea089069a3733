"""The spiking twin of a trained run, end to end: :func:`run_twin` (computes, writes nothing)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import metrics, store
from ..lesion import apply_lesion
from ..rate import RateNetwork
from ..tasks import CenterOutTask, TrialBatch
from . import decode
from .mapping import SpikingParams, map_rate_to_spiking
from .network import Spikes, best_target, simulate


def load_rate_network(run_file: str | Path) -> tuple[RateNetwork, object]:
    """The trained rate network of a run file (``/circuit`` weights, ``/rate`` parameters) and its config.

    The run's ``[lesion]``, if any, is applied (:func:`cortexsim.lesion.apply_lesion`).
    """
    from ..pipeline import make_rate_network

    with store.open_run(run_file) as f:
        config = store.read_config(f)
        connectome = store.read_circuit(f)
        if "rate" not in f:
            raise ValueError(f"{run_file}: has no /rate group (train the rate network first)")
        g = f["rate"]
        params = {"w_in": g["W_in"][()], "b": g["b"][()], "w_out": g["W_out"][()], "b_out": g["b_out"][()],
                  "x0": g["x0"][()]}
    net = make_rate_network(config, connectome)
    w = np.zeros((connectome.n_units, connectome.n_units))
    np.add.at(w, (connectome.post, connectome.pre), connectome.weight)
    net.set_params({"w": w, **params})
    apply_lesion(net, config.lesion)
    return net, config


def evaluation_conditions(task: CenterOutTask, catch: bool = True) -> TrialBatch:
    """Every target at the evaluation delay, plus (``catch``) one catch trial toward target 0."""
    angles = task.target_angles()
    n = angles.size
    if catch:
        angles = np.append(angles, angles[0])
    flags = np.arange(angles.size) >= n
    return task.build(angles, np.full(angles.size, task.eval_delay), flags, np.arange(angles.size))


def run_params(net: RateNetwork, params: SpikingParams, batch: TrialBatch, trials_per_condition: int, *,
               seed: int, target: str) -> dict:
    """Simulate the twin on ``batch`` (each condition ``trials_per_condition`` times) and score it.

    Returns the dict described in :func:`run_twin` (without ``params``/``config``).
    """
    n_cond, n_steps, _ = batch.inputs.shape
    inputs = np.repeat(batch.inputs, trials_per_condition, axis=0)      # condition-major
    drive = inputs @ params.w_in.T + params.b
    spikes = simulate(params, drive, batch.dt, seed=seed, target=target)
    rates = decode.pool_rates(spikes, params.k, params.n_units, inputs.shape[0], n_steps, batch.dt)
    rates = rates.reshape(n_cond, trials_per_condition, n_steps, -1)
    _, rate_rates, rate_outputs = net.simulate(batch)
    outputs = decode.readout(rates, params.w_out, params.b_out, params.out_idx)
    targets = np.repeat(batch.targets[:, None], trials_per_condition, axis=1)
    single = _flat_batch(batch, trials_per_condition)
    psth = rates.mean(axis=1)
    mean_out = outputs.mean(axis=1)
    rows, unit_r, modulated = decode.fidelity_table(psth, rate_rates, spikes, params.k, params.populations)
    m = {
        "spiking_position_r2": metrics.position_r2(outputs.reshape(single.targets.shape), single.targets),
        "spiking_endpoint_error_cm": metrics.endpoint_error_cm(outputs.reshape(single.targets.shape), single),
        "spiking_position_r2_trial_avg": metrics.position_r2(mean_out, batch.targets),
        "spiking_endpoint_error_cm_trial_avg": metrics.endpoint_error_cm(mean_out, batch),
        "spiking_psth_r_median": float(np.nanmedian(unit_r[modulated])) if modulated.any() else float("nan"),
        "spiking_rate_mean_hz": float(spikes.times.size / (spikes.n_neurons * spikes.duration)),
        "spiking_cv_isi_median": float(np.nanmedian(decode.cv_isi(spikes))),
        "spiking_sim_seconds": spikes.wall_seconds,
        "spiking_bio_seconds": spikes.duration,
        "spiking_offset_mv": params.offset_mv,
        "rate_position_r2_eval": metrics.position_r2(rate_outputs, batch.targets),
        "rate_endpoint_error_cm_eval": metrics.endpoint_error_cm(rate_outputs, batch),
    }
    if trials_per_condition >= 2:
        w, b = decode.refit_readout(rates[:, :-1], targets[:, :-1], params.out_idx)
        held = decode.readout(rates[:, -1], w, b, params.out_idx)
        m["spiking_position_r2_refit"] = metrics.position_r2(held, batch.targets)
        m["spiking_endpoint_error_cm_refit"] = metrics.endpoint_error_cm(held, batch)
    return {"metrics": m, "spikes": spikes, "rates": rates, "outputs": outputs, "fidelity": rows,
            "unit_psth_r": unit_r, "modulated": modulated, "rate_rates": rate_rates,
            "rate_outputs": rate_outputs, "batch": batch}


def _flat_batch(batch: TrialBatch, repeats: int) -> TrialBatch:
    """``batch`` with every condition repeated ``repeats`` times (condition-major)."""
    rep = {k: np.repeat(val, repeats, axis=0) for k, val in batch.params.items()}
    return TrialBatch(np.repeat(batch.inputs, repeats, 0), np.repeat(batch.targets, repeats, 0),
                      np.repeat(batch.mask, repeats, 0), batch.dt, rep)


def run_twin(run_file: str | Path, *, k: int = 5, trials_per_condition: int = 3, target: str | None = None,
             seed: int | None = None, dt: float = 1e-4, catch: bool = True) -> dict:
    """Map the run's trained rate network to LIF pools, simulate the evaluation conditions, score it.

    Parameters
    ----------
    run_file : str or Path
        A run file with a trained ``/rate`` stage.
    k : int
        Neurons per rate unit.
    trials_per_condition : int
        Independent trials per condition (>= 2 for the refit readout; >= 3 recommended).
    target : str, optional
        Brian2 code generation target; default :func:`~cortexsim.spiking.network.best_target`.
    seed : int, optional
        Default: the run's ``experiment.seed``.
    dt : float
        Simulation step (s).
    catch : bool
        Add one catch condition to the targets.

    Returns
    -------
    dict
        ``metrics`` (dict of float: ``spiking_position_r2``, ``spiking_endpoint_error_cm`` -- single
        trials, trained readout; ``*_trial_avg``; ``spiking_position_r2_refit`` and
        ``spiking_endpoint_error_cm_refit`` -- readout refit on all but the last trial of each
        condition, scored on the last; ``spiking_psth_r_median``; rates, CV ISI, timings),
        ``spikes`` (:class:`~cortexsim.spiking.network.Spikes`), ``rates`` (condition, trial, time,
        unit; Hz), ``outputs`` (condition, trial, time, output; m), ``fidelity`` (list of rows, one
        per population), ``params`` (:class:`SpikingParams`), ``batch`` (the conditions),
        ``rate_rates`` / ``rate_outputs`` (the rate model on the same conditions), ``config``.
    """
    t0 = time.perf_counter()
    net, config = load_rate_network(run_file)
    seed = config.experiment.seed if seed is None else int(seed)
    target = best_target() if target is None else target
    params = map_rate_to_spiking(net, config.lif, k=k, dt=dt, seed=seed)
    batch = evaluation_conditions(config.task, catch=catch)
    out = run_params(net, params, batch, trials_per_condition, seed=seed, target=target)
    out["metrics"]["spiking_k"] = float(k)
    out["metrics"]["spiking_total_seconds"] = time.perf_counter() - t0
    out.update(params=params, config=config)
    return out


__all__ = ["Spikes", "evaluation_conditions", "load_rate_network", "run_params", "run_twin"]
