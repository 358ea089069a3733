"""Putting recorded data on a model's time grid and pairing conditions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from .neural import CONDITION_FREE_MEASURES, TIME_TOLERANCE, DataError, NeuralData, check_time, describe_time

# --------------------------------------------------------------------------- time bases


def resample(data: NeuralData, time: np.ndarray | Sequence[float]) -> NeuralData:
    """Linearly interpolate the rates onto a new time base.

    Parameters
    ----------
    data : NeuralData
    time : array_like, shape (new_time,)
        New bin times (s), strictly increasing and uniform, inside the data's range.
        Interpolation picks values between samples: when coarsening a noisy PSTH by
        much, smooth it first (``smooth_sd``) so no detail aliases.

    Returns
    -------
    NeuralData
        Same conditions and units; rates of shape (conditions, new_time, units).

    Raises
    ------
    DataError
        When the new time base reaches outside the data (no extrapolation), or is not
        strictly increasing and uniform.
    """
    new = np.asarray(time, dtype=float)
    if new.ndim != 1:
        raise DataError(f"resample: the new time base must be 1-D, got shape {new.shape}")
    check_time(new, "resample: the new time base")
    old = data.time
    tol = TIME_TOLERANCE * data.dt
    if new[0] < old[0] - tol or new[-1] > old[-1] + tol:
        raise DataError(
            f"cannot resample {data.source}: the new time base ({describe_time(new)}) reaches outside the data "
            f"({describe_time(old)}); interpolation does not extrapolate, so restrict the new time base to the "
            f"data's range"
        )
    new_clipped = np.clip(new, old[0], old[-1])
    k = np.clip(np.searchsorted(old, new_clipped, side="right") - 1, 0, old.size - 2)
    w = ((new_clipped - old[k]) / (old[k + 1] - old[k]))[np.newaxis, :, np.newaxis]
    rates = data.rates[:, k, :] * (1.0 - w) + data.rates[:, k + 1, :] * w
    return replace(data, rates=rates, time=new)


@dataclass(frozen=True, eq=False)
class TimeMatch:
    """The data on the model's time grid, from :func:`match_time_base`.

    Attributes
    ----------
    data : NeuralData
        The data on the common time base: ``data.time == model_time[model_index]``.
    model_index : ndarray of int, shape (time,)
        Model time steps that line up with ``data.time``: compare
        ``model_rates[:, model_index, :]`` with ``data.rates``.
    resampled : bool
        True when the data were interpolated, False when only sliced.
    message : str
        One line saying what was done, for the log; also ``str(match)``.
    """

    data: NeuralData
    model_index: np.ndarray
    resampled: bool
    message: str

    def __str__(self) -> str:
        return self.message


def match_time_base(data: NeuralData, model_time: np.ndarray | Sequence[float]) -> TimeMatch:
    """Put the data on the model's time grid over the window both cover.

    Same step and phase → the data are sliced; otherwise → linearly resampled onto the
    model's time steps inside the data's range (see :func:`resample`).

    Parameters
    ----------
    data : NeuralData
    model_time : array_like, shape (model_time,)
        Times (s) of the model's steps relative to the same event as ``data.align_event``;
        strictly increasing and uniform.

    Returns
    -------
    TimeMatch

    Raises
    ------
    DataError
        When fewer than two model steps fall inside the data's time range; the message
        gives both ranges and steps.
    """
    model = np.asarray(model_time, dtype=float)
    if model.ndim != 1:
        raise DataError(f"match_time_base: model_time must be 1-D, got shape {model.shape}")
    check_time(model, "match_time_base: model_time")
    model_dt = float((model[-1] - model[0]) / (model.size - 1))
    tol = TIME_TOLERANCE * min(data.dt, model_dt)
    index = np.flatnonzero((model >= data.time[0] - tol) & (model <= data.time[-1] + tol))
    if index.size < 2:
        raise DataError(
            f"time bases do not overlap: the data ({data.source}) cover {describe_time(data.time)}, the model "
            f"{describe_time(model)}; give both times relative to the same event (the data's is {data.align_event!r})"
        )
    phase = (model[index[0]] - data.time[0]) / data.dt
    if abs(data.dt - model_dt) <= tol and abs(phase - round(phase)) <= TIME_TOLERANCE:
        start = round(phase)
        n = min(index.size, data.time.size - start)
        index = index[:n]
        matched = replace(data, rates=data.rates[:, start : start + n], time=model[index])
        resampled = False
        what = f"time bases agree ({model_dt * 1e3:g} ms steps)"
    else:
        matched = resample(data, model[index])
        resampled = True
        what = f"data resampled from {data.dt * 1e3:g} ms bins to the model's {model_dt * 1e3:g} ms steps (linear)"
    message = f"{what}; compared over {model[index[0]]:+.3f} to {model[index[-1]]:+.3f} s ({index.size} steps)"
    return TimeMatch(matched, index, resampled, message)


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, eq=False)
class ConditionMatch:
    """Outcome of :func:`align_conditions`.

    Attributes
    ----------
    data : NeuralData or None
        The data with conditions in the model's order, or None when the counts differ
        and only condition-free measures (``CONDITION_FREE_MEASURES``) can be compared.
    message : str
        One line saying what is compared, for the log; also ``str(match)``.
    """

    data: NeuralData | None
    message: str

    @property
    def condition_free(self) -> bool:
        """True when only condition-free measures (dimensionality, jPCA) can be compared."""
        return self.data is None

    def __str__(self) -> str:
        return self.message


def align_conditions(data: NeuralData, model_conditions: int | Sequence[str]) -> ConditionMatch:
    """Pair the data's conditions with the model's, or say that they cannot be paired.

    Parameters
    ----------
    data : NeuralData
    model_conditions : int or sequence of str
        The model's number of conditions, or its condition labels.  With labels that are
        a reordering of the data's, the data are reordered to match; with other labels
        of the same count, conditions are paired by position (and the message says so).

    Returns
    -------
    ConditionMatch
        ``data`` None and ``condition_free`` True when the counts differ.
    """
    if isinstance(model_conditions, (int, np.integer)) and not isinstance(model_conditions, bool):
        labels, n = None, int(model_conditions)
    else:
        labels = tuple(str(c) for c in model_conditions)
        n = len(labels)
    if n < 1:
        raise ConfigError(f"model_conditions={model_conditions!r}: expected a positive count or a list of labels")
    if n != data.n_conditions:
        return ConditionMatch(
            None,
            f"condition counts differ (data {data.n_conditions}, model {n}): only condition-free measures "
            f"({', '.join(CONDITION_FREE_MEASURES)}) are compared",
        )
    if labels is None or labels == data.conditions:
        return ConditionMatch(data, f"condition counts agree ({n}): all measures are compared")
    if set(labels) == set(data.conditions):
        order = [data.conditions.index(c) for c in labels]
        n_trials = None if data.n_trials is None else tuple(data.n_trials[i] for i in order)
        reordered = replace(data, rates=data.rates[order], conditions=labels, n_trials=n_trials)
        return ConditionMatch(reordered, f"condition counts agree ({n}); data reordered to the model's conditions")
    return ConditionMatch(
        data,
        f"condition counts agree ({n}) but labels differ (data {', '.join(data.conditions)}; model "
        f"{', '.join(labels)}): conditions are paired by position",
    )
