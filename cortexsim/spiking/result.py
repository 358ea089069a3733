"""What the spiking twin returns: :class:`TwinResult`, and the fidelity measures every twin shares.

Kept apart from :mod:`~cortexsim.spiking.twin` (the kinematic twin) and
:mod:`~cortexsim.spiking.arm` (the twin on the arm) so that both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tasks import TrialBatch
from . import decode
from .mapping import SpikingParams
from .network import Spikes


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


__all__ = ["TwinResult", "fidelity_metrics", "flat_batch"]
