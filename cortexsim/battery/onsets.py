"""Movement onset for jPCA: the scheduled one, or each model's own, measured from its hand.

jPCA is fitted in a window around movement onset (Churchland et al. 2012: 50 ms before to 150 ms
after, :data:`JPCA_WINDOW`, ``[compare] jpca_window``).  Recordings are aligned to *measured*
movement onset, trial by trial; a model that drives a body moves when its hand moves, not when the
task scheduled the movement, and its reaction time differs from model to model.  So on a body each
model is aligned, condition by condition, to its own measured onset: the first step after the go
cue at which its hand's speed, rising to its peak after the go cue, reaches :data:`ONSET_FRACTION` of it
(``[compare] jpca_onset_fraction``; :func:`measured_onsets`).  Without a body (a kinematic readout
moves exactly when the task says) and for recorded data (already aligned to their recorded event)
the onset is the scheduled or recorded one, as before.  Every jPCA row records which it used
(:func:`alignment_of`) and the window.

Pure: arrays and records in, records out (the pipeline reads the hands from the run file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..model_id import ModelId, of_activity
from ..store import Activity

JPCA_WINDOW = (-0.05, 0.15)
"""Churchland et al.'s (2012) jPCA window: 50 ms before to 150 ms after movement onset (s)."""

ONSET_FRACTION = 0.2
"""Measured movement onset: the hand's speed crosses this fraction of its peak after the go cue."""

MIN_PEAK_SPEED = 0.01
"""m/s: a condition whose hand never moves faster after the go cue (a catch trial, a model that does
not reach) has no measured onset and keeps the scheduled one (:func:`measured_onsets`)."""

SCHEDULED = "scheduled movement onset"
"""Alignment of a model without a body: the task's movement onset."""

MEASURED = "measured movement onset"
"""Alignment of a model on a body: its own hand speed crossing a fraction of its peak, per condition."""

RECORDED = "recorded movement onset"
"""Alignment of recorded data: the onset of the recording's own time axis (its alignment event)."""


@dataclass(frozen=True)
class AlignedActivity(Activity):
    """An :class:`~cortexsim.store.Activity` with a movement onset of its own in every condition.

    Attributes
    ----------
    onsets : ndarray of int, shape (conditions,)
        Time index of movement onset in each condition of ``rates`` (``move_on`` stays the scheduled one).
    alignment : str
        :data:`MEASURED` (at least one condition measured) or :data:`SCHEDULED`.
    """

    onsets: np.ndarray | None = None
    alignment: str = MEASURED


def onsets_of(act: Activity) -> np.ndarray:
    """Movement onset (index into ``act.rates``) per condition: measured when ``act`` has them, else ``move_on``."""
    onsets = getattr(act, "onsets", None)
    if onsets is None:
        return np.full(act.rates.shape[0], int(act.move_on), dtype=int)
    return np.asarray(onsets, dtype=int)


def alignment_of(act: Activity) -> str:
    """What the jPCA window of ``act`` is aligned to: :data:`MEASURED`, :data:`SCHEDULED` or :data:`RECORDED`."""
    if isinstance(act, AlignedActivity):
        return act.alignment
    return RECORDED if act.kind == "data" else SCHEDULED


def measured_onsets(
    hand: np.ndarray, dt: float, go: np.ndarray, scheduled: int, fraction: float = ONSET_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Each condition's measured movement onset: hand speed crossing ``fraction`` of its peak after go.

    Parameters
    ----------
    hand : ndarray, shape (conditions, time, 2)
        Hand position (m) on the activity's time grid.
    dt : float
        Time step (s).
    go : ndarray, shape (conditions,)
        Go cue (s from the trial's start; NaN on a catch trial).
    scheduled : int
        The task's movement onset (time index), kept where no onset can be measured.
    fraction : float
        Share of the peak speed after go that marks onset (0 < fraction < 1).

    Returns
    -------
    onsets : ndarray of int, shape (conditions,)
        The step at which the speed, rising to its peak after the go cue, reaches ``fraction`` of
        that peak (the step after the last one below it before the peak; the go cue itself when the
        hand is that fast already), so that a slow drift or a small early bump does not count;
        ``scheduled`` where there is no go cue or the peak is below :data:`MIN_PEAK_SPEED`.
    measured : ndarray of bool, shape (conditions,)
        Which conditions have a measured onset.
    """
    hand = np.asarray(hand, dtype=float)
    go = np.broadcast_to(np.asarray(go, dtype=float), hand.shape[:1])
    speed = np.linalg.norm(np.gradient(hand, dt, axis=1), axis=-1) if hand.shape[1] > 1 else np.zeros(hand.shape[:2])
    onsets = np.full(hand.shape[0], int(scheduled), dtype=int)
    measured = np.zeros(hand.shape[0], dtype=bool)
    for c in range(hand.shape[0]):
        if not np.isfinite(go[c]):
            continue
        g = min(max(int(round(go[c] / dt)), 0), hand.shape[1] - 1)
        after = speed[c, g:]
        peak = float(after.max())
        if not np.isfinite(peak) or peak < MIN_PEAK_SPEED:
            continue
        top = int(np.argmax(after))
        below = np.flatnonzero(after[: top + 1] < fraction * peak)  # the rise to the peak starts after the last
        onsets[c] = g + (int(below[-1]) + 1 if below.size else 0)
        measured[c] = True
    return onsets, measured


def movement_aligned(
    activities: Iterable[Activity],
    hands: Mapping[str, np.ndarray],
    go: np.ndarray,
    *,
    fraction: float = ONSET_FRACTION,
    body: bool = True,
) -> list[Activity]:
    """The activities, each model's (and its layers' and populations') aligned to its own measured onset.

    Parameters
    ----------
    activities : iterable of Activity
        The run's activities (:func:`cortexsim.store.read_activities`); recorded data and activities
        whose model has no hand path are returned unchanged.
    hands : mapping
        Each model's hand path (m), keyed by its ``/metrics`` prefix (``rate``, ``spiking``,
        ``ann_gru``; :func:`cortexsim.store.read_hand_paths`), on the activities' time grid.
    go : ndarray, shape (conditions,)
        The go cue of each condition (s; ``/task/params/go``).
    fraction : float
        ``[compare] jpca_onset_fraction`` (:func:`measured_onsets`).
    body : bool
        Whether the models drove a body (``[effector] has_body``).  Without one the hand is a
        kinematic readout that moves when the task schedules it: nothing is aligned.

    Returns
    -------
    list of Activity
        In the order given; on a body each model's activities as :class:`AlignedActivity`.
    """
    activities = list(activities)
    if not body:
        return activities
    out: list[Activity] = []
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for act in activities:
        model = _model_of(act)
        hand = hands.get(model.prefix) if model is not None else None
        if act.kind == "data" or hand is None or np.shape(hand)[:2] != act.rates.shape[:2]:
            out.append(act)
            continue
        if model.prefix not in cache:
            cache[model.prefix] = measured_onsets(hand, act.dt, go, act.move_on, fraction)
        out.append(aligned_to(act, *cache[model.prefix]))
    return out


def aligned_to(act: Activity, onsets: np.ndarray, measured: np.ndarray) -> AlignedActivity:
    """``act`` with its own movement ``onsets`` (:func:`measured_onsets`'s two results).

    Its alignment is :data:`MEASURED` when any condition's onset was measured, else :data:`SCHEDULED`.
    """
    alignment = MEASURED if np.any(measured) else SCHEDULED
    return AlignedActivity(act.name, act.kind, act.rates, act.dt, act.move_on, act.start, onsets, alignment)


def _model_of(act: Activity) -> ModelId | None:
    """The model of a run's own activity (``rate``, ``rate:L2/3``, ``ann:gru``, ``spiking``); None otherwise."""
    if "/" in act.name.partition(":")[0]:  # another run's activity (``run2/rate``)
        return None
    return of_activity(act.name)


def aligned_window(act: Activity, window: tuple[float, float] = JPCA_WINDOW) -> tuple[np.ndarray, tuple[int, int], int]:
    """The activity aligned to its movement onsets, and the jPCA window's steps in it.

    Each condition is cut to the steps before and after its own onset that every condition has, so
    that step ``i`` of the result is the same time from onset in every condition; with one onset for
    all conditions (scheduled or recorded) the activity is returned as it is.

    Returns
    -------
    rates : ndarray, shape (conditions, time, units)
    steps : (int, int)
        ``start`` and ``stop`` (exclusive) of ``window`` in ``rates``, cut to its edges.
    onset : int
        The step of movement onset in ``rates`` (outside it for data that start after or end before onset).
    """
    n_time = act.rates.shape[1]
    onsets = onsets_of(act)
    if np.all(onsets == onsets[0]):
        rates, zero = act.rates, int(onsets[0])
    else:
        onsets = np.clip(onsets, 0, n_time - 1)
        zero, after = int(onsets.min()), int((n_time - onsets).min())
        rates = np.stack([act.rates[c, o - zero : o + after] for c, o in enumerate(onsets)])
    start = max(0, zero + int(round(window[0] / act.dt)))
    stop = min(rates.shape[1], zero + int(round(window[1] / act.dt)) + 1)
    return rates, (start, stop), zero


def onset_shift_ms(act: Activity) -> float:
    """Mean over conditions of the onset used minus the scheduled one (ms; 0 when aligned to the scheduled onset)."""
    return float(np.mean(onsets_of(act) - int(act.move_on)) * act.dt * 1e3)
