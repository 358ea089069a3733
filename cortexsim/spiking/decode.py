"""From spikes to rates, decoded reaches and per-population fidelity (pure numpy).

Conventions: ``spikes.ids // k`` is the rate unit (pool) of a neuron; rates are
pool-averaged (Hz per neuron); arrays are (trials, time, units) on the rate model's
time grid; higher Pearson r / R^2 is better, rate ratio 1 is a perfect match.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .network import Spikes

FILTER_TAU = 0.020
"""Time constant (s) of the causal exponential filter that turns spikes into rates."""

MODULATED_HZ = 1.0
"""A rate unit is *modulated* when its rate-model PSTH varies with SD >= this (Hz) over condition x time."""


def pool_rates(
    spikes: Spikes,
    k: int,
    n_units: int,
    n_trials: int,
    n_steps: int,
    task_dt: float,
    tau: float = FILTER_TAU,
    bin_dt: float = 1e-3,
    per_trial: bool = False,
) -> np.ndarray:
    """Pool-averaged rates (Hz) sampled on the task grid, shape (trials, time, units).

    ``per_trial``: the filter starts from 0 at every trial's start instead of running over the
    concatenated trials (where the last ~``5 tau`` of one trial leak into the first steps of the next:
    trials that were never in one network, like the closed loop's side-by-side copies, or trials a
    comparison pairs, should not share that tail).

    Spike counts per pool in ``bin_dt`` bins, divided by ``k bin_dt``, filtered by
    ``exp(-t / tau) / tau`` (causal, unit area) over the whole run, then sampled at
    the end of each task step ``t`` (the rate model's ``r[t]`` is compared with the twin's
    rate once the drive of step ``t`` has acted; sampling at the step start instead adds
    10 ms of lag and cost 0.017 in decoded R^2 at K = 5 on the 500-unit run).

    ``bin_dt`` is the largest bin width: the bins actually used are ``task_dt / m`` wide with
    ``m = ceil(task_dt / bin_dt)``, so a whole number of bins fills every task step whatever the
    task dt (a task dt of 2.5 ms gets 3 bins of 0.83 ms, not a rounded stride that would stretch
    decoded time).
    """
    per_step = max(1, int(np.ceil(task_dt / bin_dt - 1e-9)))
    bin_dt = task_dt / per_step
    n_bins = n_trials * n_steps * per_step
    if abs(spikes.duration - n_bins * bin_dt) > 0.5 * bin_dt:
        raise ValueError(
            f"the spikes cover {spikes.duration:g} s, but {n_trials} trials of {n_steps} steps of "
            f"{task_dt:g} s are {n_trials * n_steps * task_dt:g} s"
        )
    pool = spikes.ids // k
    b = np.minimum((spikes.times / bin_dt).astype(np.int64), n_bins - 1)
    counts = np.zeros((n_bins, n_units))
    np.add.at(counts, (b, pool), 1.0)
    decay = np.exp(-bin_dt / tau)
    rate = counts / (k * bin_dt)
    if per_trial:
        rate = rate.reshape(n_trials, n_steps * per_step, n_units)
        filtered = signal.lfilter([1.0 - decay], [1.0, -decay], rate, axis=1)
        return filtered[:, per_step - 1 :: per_step]
    filtered = signal.lfilter([1.0 - decay], [1.0, -decay], rate, axis=0)
    return filtered[per_step - 1 :: per_step].reshape(n_trials, n_steps, n_units)


def readout(rates: np.ndarray, w_out: np.ndarray, b_out: np.ndarray, out_idx: np.ndarray) -> np.ndarray:
    """``y = W_out r[out_idx] + b_out``, shape (trials, time, outputs)."""
    return rates[..., out_idx] @ w_out.T + b_out


def refit_readout(
    rates: np.ndarray, targets: np.ndarray, out_idx: np.ndarray, ridge: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (ridge, relative to the mean rate variance) readout from the readout pools.

    Returns ``w_out`` (outputs, readout units) and ``b_out`` (outputs,).
    """
    x = rates[..., out_idx].reshape(-1, out_idx.size)
    y = targets.reshape(-1, targets.shape[-1])
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc = x - mean_x
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / max(out_idx.size, 1) + 1e-12
    w = np.linalg.solve(gram, xc.T @ (y - mean_y)).T
    return w, mean_y - w @ mean_x


def pearson_per_unit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each unit over all other axes, shape (units,); NaN for a constant unit."""
    a = a.reshape(-1, a.shape[-1]) - a.reshape(-1, a.shape[-1]).mean(0)
    b = b.reshape(-1, b.shape[-1]) - b.reshape(-1, b.shape[-1]).mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / den, np.nan)


def cv_isi(spikes: Spikes, min_spikes: int = 3) -> np.ndarray:
    """Coefficient of variation of the interspike intervals of each neuron with >= ``min_spikes`` spikes.

    Returns shape (neurons,), NaN for neurons with fewer spikes.
    """
    order = np.lexsort((spikes.times, spikes.ids))
    ids, times = spikes.ids[order], spikes.times[order]
    out = np.full(spikes.n_neurons, np.nan)
    bounds = np.searchsorted(ids, np.arange(spikes.n_neurons + 1))
    for n in np.flatnonzero(np.diff(bounds) >= min_spikes):
        isi = np.diff(times[bounds[n] : bounds[n + 1]])
        out[n] = isi.std() / isi.mean() if isi.mean() > 0 else np.nan
    return out


def fidelity_table(
    spiking_psth: np.ndarray, rate_psth: np.ndarray, spikes: Spikes, k: int, populations: tuple
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Per-population fidelity of the twin.

    Parameters
    ----------
    spiking_psth, rate_psth : ndarray, shape (conditions, time, units)
        Trial-averaged twin rates and the rate model's rates (Hz).
    spikes : Spikes
    k : int
    populations : tuple of (name, subtype, cell_class, start, stop)

    Returns
    -------
    rows : list of dict
        ``population``, ``psth_r_mean`` (mean Pearson r over modulated units; NaN if none),
        ``n_modulated``, ``rate_ratio`` (mean twin rate / mean rate-model rate), ``rate_hz``
        (mean twin firing rate per neuron over the run), ``cv_isi`` (median over neurons).
    r : ndarray, shape (units,)
        PSTH Pearson r per unit.
    modulated : ndarray of bool, shape (units,)
    """
    r = pearson_per_unit(spiking_psth, rate_psth)
    modulated = rate_psth.reshape(-1, rate_psth.shape[-1]).std(0) >= MODULATED_HZ
    counts = np.bincount(spikes.ids, minlength=spikes.n_neurons) / spikes.duration
    cv = cv_isi(spikes)
    rows = []
    for name, _, _, start, stop in populations:
        sl = slice(start, stop)
        mod = modulated[sl]
        cv_pop = cv[start * k : stop * k]
        rows.append(
            {
                "population": name,
                "psth_r_mean": float(np.nanmean(r[sl][mod])) if mod.any() else float("nan"),
                "n_modulated": int(mod.sum()),
                "rate_ratio": float(spiking_psth[..., sl].mean() / max(rate_psth[..., sl].mean(), 1e-12)),
                "rate_hz": float(counts[start * k : stop * k].mean()),
                "cv_isi": float(np.nanmedian(cv_pop)) if np.isfinite(cv_pop).any() else float("nan"),
            }
        )
    return rows, r, modulated
