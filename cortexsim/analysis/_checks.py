"""Input checks shared by the analysis functions (private).

Every check raises :class:`ValueError` with one message that names the argument,
what was found and how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACTIVITY_AXES = "(conditions, time, units)"


def activity(X: Any, name: str = "X", *, min_time: int = 1) -> np.ndarray:
    """Return ``X`` as a finite float array of shape (conditions, time, units).

    Parameters
    ----------
    X : array_like, shape (conditions, time, units)
        Condition-averaged (or single-trial) activity.
    name : str
        Name of the argument, used in error messages.
    min_time : int
        Least number of time steps required.
    """
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 3:
        hint = " (for a single condition use X[None])" if arr.ndim == 2 else ""
        raise ValueError(f"{name} must be a 3-D array {ACTIVITY_AXES}; got ndim={arr.ndim}, shape {arr.shape}{hint}")
    if min(arr.shape) == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); every axis of {ACTIVITY_AXES} needs length >= 1")
    if arr.shape[1] < min_time:
        raise ValueError(f"{name} has {arr.shape[1]} time steps; this analysis needs at least {min_time}")
    if not np.all(np.isfinite(arr)):
        bad = np.count_nonzero(~np.isfinite(arr))
        raise ValueError(f"{name} holds {bad} NaN or infinite values; remove or interpolate them first")
    return arr


def paired(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check two activity arrays that share conditions and time (units may differ).

    Returns
    -------
    X, Y : ndarray, shapes (conditions, time, units_x) and (conditions, time, units_y)
    """
    X = activity(X, "X")
    Y = activity(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of conditions (axis 0); got {X.shape[0]} and {Y.shape[0]}. "
            "Select the conditions the two share, in the same order."
        )
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of time steps (axis 1); got {X.shape[1]} and {Y.shape[1]}. "
            "Resample or crop both to a common time base."
        )
    return X, Y


def samples(X: np.ndarray) -> np.ndarray:
    """Flatten (conditions, time, units) to (conditions * time, units) and centre each unit."""
    flat = X.reshape(-1, X.shape[-1])
    return flat - flat.mean(axis=0)


def positive_int(value: Any, name: str, *, low: int = 1, high: int | None = None) -> int:
    """Check that ``value`` is a whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number; got {value!r}")
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}"
        raise ValueError(f"{name}={value} is out of range; it must be >= {low}{upper}")
    return int(value)


def positive_float(value: Any, name: str) -> float:
    """Check that ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def unit_interval(value: Any, name: str, *, closed: bool, hint: str = "") -> float:
    """Check that ``value`` is a number in [0, 1] (``closed``) or (0, 1) (open)."""
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    inside = is_number and (0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0)
    if not inside:
        bounds = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must be a number in {bounds}{hint}; got {value!r}")
    return float(value)


def rank_tolerance(s: np.ndarray, shape: tuple[int, ...]) -> float:
    """Singular values at or below this are treated as zero (numpy's ``matrix_rank`` rule)."""
    return float(s.max(initial=0.0) * max(shape) * np.finfo(float).eps)
