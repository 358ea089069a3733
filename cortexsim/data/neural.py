"""The :class:`NeuralData` container, its error type and time-base checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CortexsimError

SUPPORTED_SUFFIXES = (".npz", ".mat", ".nwb")
TIME_TOLERANCE = 1e-3  # allowed deviation of a time step from the mean step, as a fraction of it
CONDITION_FREE_MEASURES = ("dimensionality", "jPCA")
AXIS_NAMES = {"neurons": "units", "units": "units", "time": "time", "conditions": "conditions"}


class DataError(CortexsimError, ValueError):
    """A recorded-data file or array is missing, unreadable or inconsistent."""


@dataclass(frozen=True, eq=False)
class NeuralData:
    """Condition-averaged firing rates of recorded neurons.

    Attributes
    ----------
    rates : ndarray, shape (conditions, time, units)
        Firing rates (Hz); finite.  Stored read-only.
    time : ndarray, shape (time,)
        Bin centres (s) relative to ``align_event``; strictly increasing with a uniform
        step (within ``TIME_TOLERANCE`` of it).  Stored read-only.
    conditions : tuple of str, length conditions
        Unique condition labels.
    unit_ids : tuple, length units
        Identifier of each unit (int or str).
    align_event : str
        Name of the event that ``time`` is relative to.
    source : str
        Where the data came from (a file path).
    n_trials : tuple of int, length conditions, optional
        Trials averaged per condition, where known (NWB files).

    Raises
    ------
    DataError
        When the shapes disagree, the time base is not strictly increasing and uniform,
        a label is repeated or a rate is NaN or infinite.
    """

    rates: np.ndarray
    time: np.ndarray
    conditions: tuple[str, ...]
    unit_ids: tuple[Any, ...]
    align_event: str = "unspecified"
    source: str = "<memory>"
    n_trials: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        where = self.source
        rates = np.array(self.rates, dtype=float)
        if rates.ndim != 3 or 0 in rates.shape:
            raise DataError(f"{where}: rates must have shape (conditions, time, units), none empty; got {rates.shape}")
        n_cond, n_time, n_units = rates.shape
        time = np.array(self.time, dtype=float)
        if time.shape != (n_time,):
            raise DataError(f"{where}: time has shape {time.shape} but the rates have {n_time} time bins")
        check_time(time, f"{where}: time")
        conditions = tuple(str(c) for c in self.conditions)
        unit_ids = tuple(plain_scalar(u) for u in self.unit_ids)
        for name, labels, n in (("conditions", conditions, n_cond), ("unit_ids", unit_ids, n_units)):
            if len(labels) != n:
                raise DataError(f"{where}: {len(labels)} {name} for {n} along that axis of the rates")
            if len(set(labels)) != n:
                twice = sorted({str(x) for x in labels if labels.count(x) > 1})
                raise DataError(f"{where}: {name} must be unique; repeated: {', '.join(twice)}")
        bad = ~np.isfinite(rates)
        if bad.any():
            c, t, u = np.argwhere(bad)[0]
            raise DataError(
                f"{where}: {int(bad.sum())} rates are NaN or infinite (first: condition {conditions[c]!r}, "
                f"time {time[t]:+.4g} s, unit {unit_ids[u]!r}); drop those units or fill the gaps before loading"
            )
        n_trials = None if self.n_trials is None else tuple(int(n) for n in self.n_trials)
        if n_trials is not None and len(n_trials) != n_cond:
            raise DataError(f"{where}: {len(n_trials)} trial counts for {n_cond} conditions")
        rates.flags.writeable = False
        time.flags.writeable = False
        for name, value in (("rates", rates), ("time", time), ("conditions", conditions), ("unit_ids", unit_ids)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "n_trials", n_trials)
        object.__setattr__(self, "align_event", str(self.align_event))
        object.__setattr__(self, "source", str(self.source))

    @property
    def dt(self) -> float:
        """Time step (s): the mean spacing of ``time``."""
        return float((self.time[-1] - self.time[0]) / (self.time.size - 1))

    @property
    def n_conditions(self) -> int:
        """Number of conditions."""
        return self.rates.shape[0]

    @property
    def n_units(self) -> int:
        """Number of recorded units."""
        return self.rates.shape[2]

    def __repr__(self) -> str:
        n_cond, n_time, n_units = self.rates.shape
        return (
            f"<NeuralData: {_count(n_units, 'unit')}, {_count(n_cond, 'condition')}, "
            f"{_count(n_time, 'time bin')} of {self.dt * 1e3:g} ms, aligned to {self.align_event}, from {self.source}>"
        )


@dataclass(frozen=True, eq=False)
class RecordedTrials:
    """Single-trial spikes of recorded neurons with their trials table (from :func:`load_nwb_trials`).

    Attributes
    ----------
    spikes : tuple of ndarray
        Sorted spike times (s, session time) of each unit.
    unit_ids : tuple of int
    columns : dict of str to ndarray, shape (trials,)
        The trials table's one-value-per-trial columns (``start_time``, ``condition``, event times, ...).
    heldout : ndarray of bool, shape (units,), or None
        The Units column ``heldout`` (NLB convention), where the file has one.
    velocity : (ndarray, ndarray) or None
        Hand velocity: sample times (s, shape (samples,)) and values (shape (samples, dims)).
    source : str
    """

    spikes: tuple[np.ndarray, ...]
    unit_ids: tuple[Any, ...]
    columns: dict[str, np.ndarray]
    heldout: np.ndarray | None
    velocity: tuple[np.ndarray, np.ndarray] | None
    source: str = "<memory>"

    @property
    def n_trials(self) -> int:
        """Rows of the trials table."""
        return int(self.columns["start_time"].size)


def check_time(time: np.ndarray, where: str) -> None:
    """Raise unless ``time`` has >= 2 finite, strictly increasing, uniformly spaced values."""
    if time.size < 2:
        raise DataError(f"{where}: need at least 2 time bins, got {time.size}")
    if not np.all(np.isfinite(time)):
        raise DataError(f"{where}: holds NaN or infinite values")
    steps = np.diff(time)
    if np.any(steps <= 0):
        k = int(np.argmax(steps <= 0))
        raise DataError(
            f"{where}: must be strictly increasing, but time[{k}] = {time[k]:.6g} s is followed by "
            f"time[{k + 1}] = {time[k + 1]:.6g} s; sort the bins (and the rates with them)"
        )
    dt = (time[-1] - time[0]) / (time.size - 1)
    if np.max(np.abs(steps - dt)) > TIME_TOLERANCE * dt:
        raise DataError(
            f"{where}: steps must be uniform, but they range from {steps.min() * 1e3:.6g} to "
            f"{steps.max() * 1e3:.6g} ms; resample the data onto a uniform grid first"
        )


def describe_time(time: np.ndarray) -> str:
    """``'-0.500 to +0.490 s in 10 ms steps'``."""
    dt = (time[-1] - time[0]) / (time.size - 1)
    return f"{time[0]:+.3f} to {time[-1]:+.3f} s in {dt * 1e3:g} ms steps"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plain_scalar(x: Any) -> Any:
    """A label as a plain Python str, int or float (unwrapping MATLAB cells and numpy scalars)."""
    if isinstance(x, np.ndarray):
        if x.size != 1:
            return "".join(str(c) for c in x.ravel()) if x.dtype.kind in "US" else str(x.tolist())
        x = x.ravel()[0]
    if isinstance(x, bytes):
        return x.decode()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x
