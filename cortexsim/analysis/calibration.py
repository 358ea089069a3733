"""Calibration of similarity scores: what "high" means for a given model and data set.

No threshold makes a similarity score good (Cloos et al. 2024); a score is read against a
*ceiling*, the score of a system with itself measured twice, and against how well the task
variables can be read out of each system. This module gives the ceiling's two halves:

* :func:`split_halves`: single trials of one system (the spiking twin, recorded data) split at
  random into two disjoint halves per condition, each averaged; the ceiling is
  ``metric(half_a, half_b)``.
* For a simulated model with process noise, the two halves are two runs with different noise
  seeds (the pipeline simulates them; nothing here needs the model).

:func:`ceiling` evaluates any ``metric(X, Y) -> float`` on the two halves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _checks


def split_halves(trials: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two condition averages from disjoint random halves of each condition's trials.

    Parameters
    ----------
    trials : ndarray, shape (conditions, trials, time, units)
        At least 2 trials per condition; with an odd number one trial is left out.
    rng : numpy.random.Generator

    Returns
    -------
    half_a, half_b : ndarray, shape (conditions, time, units)
    """
    arr = np.asarray(trials, dtype=float)
    if arr.ndim != 4:
        raise ValueError(f"trials must be 4-D (conditions, trials, time, units); got shape {arr.shape}")
    if arr.shape[1] < 2:
        raise ValueError(f"a split-half ceiling needs at least 2 trials per condition; got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("trials hold NaN or infinite values")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator; got {rng!r}")
    half = arr.shape[1] // 2
    a, b = [], []
    for cond in arr:
        order = rng.permutation(arr.shape[1])
        a.append(cond[order[:half]].mean(axis=0))
        b.append(cond[order[half : 2 * half]].mean(axis=0))
    return np.stack(a), np.stack(b)


def ceiling(metric: Callable[[np.ndarray, np.ndarray], float], half_a: np.ndarray, half_b: np.ndarray) -> float:
    """``metric(half_a, half_b)``: the score of a system with itself measured twice.

    Parameters
    ----------
    metric : callable
        ``metric(X, Y) -> float`` on arrays of shape (conditions, time, units).
    half_a, half_b : ndarray, shape (conditions, time, units)
        Two measurements of the same system (trial halves, or two noise seeds).

    Returns
    -------
    float
        In the metric's units (CCA: near 1 for a reliable system; lower = noisier).
    """
    a, b = _checks.paired(half_a, half_b)
    return float(metric(a, b))
