"""A fit to recorded neurons, the science: the recording on the model's steps, the split, the targets, the scores.

The ``fit`` stage (:mod:`cortexsim.fit_stage`) trains each model with the neural term of
:mod:`cortexsim.neural_loss`; this module prepares what it fits and scores what it produced:

1. :func:`load_recording` -- the ``[fit] data`` file on bins of the task's ``dt`` over ``[fit] window``
   around the alignment event: single trials' spike counts (NWB: Units, a trials table, the event
   column, the condition column, optionally a hand-position series) or condition-averaged rates
   (``.npz``/``.mat``, resampled to the bins);
2. :func:`split_recording` -- held-out neurons (NLB's ``heldout`` Units column when the file has one,
   else a seeded share), held-out conditions and, within the training conditions, test trials, all from
   the seed stream ``fit/split``; training sees held-in neurons on training trials of training conditions;
3. :func:`fit_task` and :func:`neural_targets` -- the recorded task (:mod:`cortexsim.recorded_task`) and
   the neural term's targets: the held-in neurons' counts of the training trials, or their PSTHs
   (averaged over training trials) of the training conditions, on the task's steps;
4. :func:`score_activity` -- a model's noise-free activity on every condition, scored with
   :mod:`cortexsim.score`'s measures (nlb_tools' co-smoothing bits per spike and PSTH R²) through a
   ridge map fitted on what training saw, as ``cortexsim score`` maps a run:

   ``heldout_co_bps``, ``heldout_psth_r2``
        the held-out neurons, on the test trials of the training conditions (a map from the model's
        z-scored activity to their counts, fitted on the training trials); with condition averages
        (no trials), ``heldout_psth_r2`` is scored on the held-out conditions and ``co_bps`` is NaN;
   ``heldout_condition_psth_r2``
        the held-in neurons on the held-out conditions: how well the model generalises to conditions it
        never trained on.  A fitted model predicts them through its own learned mapping (its units, or
        its readout), fitted on the training conditions by training itself; a model without one (the
        task-only circuit) through a ridge map fitted on the training conditions' PSTHs.  The ridge map
        is underdetermined with few training conditions (it has as many weights per neuron as the model
        has units), so that model's number is a loose baseline, not a like-for-like comparison;
   ``velocity_r2``
        single trials with a hand series: NLB's velocity R², a ridge decoder from the model's predictions
        of every recorded neuron to the hand velocity (finite differences of the hand series on the bins),
        fitted on the training trials and scored on the test trials;

   :func:`score_populations` -- the same scores per population of a circuit: the held-out neurons from
   that population's units alone, and the held-in neurons mapped to it on the held-out conditions.

The held-out neurons are scored through the same ridge map for every model (NLB's co-smoothing), so a
fitted circuit, a task-only circuit and a fitted ANN are compared on equal terms there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .config import TaskConfig
from .data import DataError, load_neural_data, load_nwb_trials, resample
from .fit_config import FitConfig
from .neural_loss import NeuralTargets
from .recorded_task import RecordedTask
from .score import (
    MAP_ALPHAS,
    ZERO_RATE,
    bits_per_spike,
    eval_psth,
    fit_and_eval_decoder,
    map_counts,
    r2_score,
    ridge_cv,
    ridge_fit,
)
from .streams import stream

SPLIT_STREAM = "fit/split"
"""The seed stream of the held-out neurons, conditions and test trials."""

PSTH_SMOOTH_SD = 0.02
"""s.d. (s) of the Gaussian smoothing of the recorded PSTHs a score compares with (as ``cortexsim score``)."""


@dataclass(frozen=True, eq=False)
class Recording:
    """Recorded neurons on the fit's bins (one bin per model step), before the split.

    Attributes
    ----------
    counts : ndarray, shape (trials, bins, neurons), or None
        Spike counts per bin of each single trial (None: the file holds condition averages).
    trial_condition : ndarray of int, shape (trials,), or None
        Each trial's condition index.
    psth : ndarray, shape (conditions, bins, neurons)
        Condition-averaged rates (Hz): the file's, or the mean of every trial.
    conditions : tuple of str
        Condition labels.
    hand : ndarray, shape (conditions, bins, 2), or None
        Each condition's mean hand position relative to the window's start (m).
    heldout : ndarray of bool, shape (neurons,), or None
        The file's held-out labels (NLB).
    dt : float
        Bin width (s): the task's step.
    window : (float, float)
    source : str
    trial_velocity : ndarray, shape (trials, bins, 2), or None
        Each single trial's hand velocity (m/s) on the bins: the finite differences of its positions
        (NWB with a hand series; None otherwise).
    """

    counts: np.ndarray | None
    trial_condition: np.ndarray | None
    psth: np.ndarray
    conditions: tuple[str, ...]
    hand: np.ndarray | None
    heldout: np.ndarray | None
    dt: float
    window: tuple[float, float]
    source: str = "<memory>"
    trial_velocity: np.ndarray | None = None

    @property
    def n_neurons(self) -> int:
        """Recorded neurons."""
        return self.psth.shape[2]

    @property
    def n_conditions(self) -> int:
        """Recorded conditions."""
        return self.psth.shape[0]

    @property
    def single_trials(self) -> bool:
        """True when the recording holds single trials (counts)."""
        return self.counts is not None


@dataclass(frozen=True, eq=False)
class Split:
    """Which neurons, conditions and trials training sees (the rest is scored).

    Attributes
    ----------
    heldin, heldout : ndarray of int
        Neuron indices.
    train_conditions, test_conditions : ndarray of int
    train_trials, test_trials : ndarray of int
        Rows of :attr:`Recording.counts` (training conditions only; empty for averages).
    notes : tuple of str
    """

    heldin: np.ndarray
    heldout: np.ndarray
    train_conditions: np.ndarray
    test_conditions: np.ndarray
    train_trials: np.ndarray
    test_trials: np.ndarray
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class FitScores:
    """A model's scores on what training never saw (see the module notes); NaN where undefined.

    Attributes
    ----------
    heldout_co_bps, heldout_psth_r2, heldout_condition_psth_r2 : float
    velocity_r2 : float
        NLB's velocity R²: a ridge decoder from the model's predictions of every recorded neuron (the
        co-smoothing map, fitted to all of them on the training trials) to the hand velocity, fitted on
        the training trials and scored on the test trials; NaN without single trials and a hand series.
    predicted, recorded : ndarray, shape (conditions, bins, held-out neurons)
        The held-out neurons' PSTHs (Hz) on every condition: predicted through the co-smoothing map, and
        recorded (smoothed as the score smooths them).
    neuron_r2 : ndarray, shape (held-out neurons,)
        Each held-out neuron's PSTH R² on the scored conditions (what ``heldout_psth_r2`` averages).
    scored_conditions : ndarray of int
        The conditions ``heldout_psth_r2`` is scored on (training conditions with test trials, or the
        held-out conditions for averages).
    """

    heldout_co_bps: float
    heldout_psth_r2: float
    heldout_condition_psth_r2: float
    velocity_r2: float = float("nan")
    predicted: np.ndarray | None = field(default=None, compare=False, repr=False)
    recorded: np.ndarray | None = field(default=None, compare=False, repr=False)
    neuron_r2: np.ndarray | None = field(default=None, compare=False, repr=False)
    scored_conditions: np.ndarray | None = field(default=None, compare=False, repr=False)


def _bins(fit: FitConfig, dt: float) -> int:
    n = round((fit.window[1] - fit.window[0]) / dt)
    if n < 2 or abs(n * dt - (fit.window[1] - fit.window[0])) > 1e-6 * dt:
        raise DataError(
            f"fit.window {list(fit.window)}: spans no whole number (at least 2) of task.dt = {dt:g} s bins; adjust it"
        )
    return n


def load_recording(path: str | Path, fit: FitConfig, dt: float) -> Recording:
    """The ``[fit]`` data file on bins of ``dt`` over ``fit.window`` (see the module notes).

    Raises
    ------
    DataError
        Unreadable file, missing columns, a window no trial covers, too few conditions.
    """
    path = Path(path)
    n_bins = _bins(fit, dt)
    if path.suffix.lower() != ".nwb":
        centres = fit.window[0] + dt * (np.arange(n_bins) + 0.5)
        data = resample(load_neural_data(path), centres)
        labels = (
            tuple(str(c) for c in data.conditions) if data.conditions else tuple(map(str, range(data.n_conditions)))
        )
        return Recording(
            None, None, np.asarray(data.rates, float), labels, None, None, dt, tuple(fit.window), str(path)
        )
    rec = load_nwb_trials(path, fit.hand or "hand_position")
    cols = rec.columns
    for name, key in ((fit.align_event, "fit.align_event"), (fit.condition_column, "fit.condition_column")):
        if name not in cols:
            raise DataError(f"{path}: the trials table has no column {name!r} ({key}); available: {', '.join(cols)}")
    events = np.asarray(cols[fit.align_event], float)
    rows = np.flatnonzero(np.isfinite(events))
    labels = [str(x.decode() if isinstance(x, bytes) else x) for x in cols[fit.condition_column][rows]]
    names = tuple(sorted(set(labels), key=_natural))
    cond = np.array([names.index(x) for x in labels])
    edges = events[rows, None] + fit.window[0] + dt * np.arange(n_bins + 1)[None, :]
    counts = np.empty((rows.size, n_bins, len(rec.spikes)))
    for u, times in enumerate(rec.spikes):
        counts[:, :, u] = np.diff(np.searchsorted(times, edges, side="left"), axis=1)
    psth = np.stack([counts[cond == c].mean(axis=0) for c in range(len(names))]) / dt
    hand = velocity = None
    if fit.hand and rec.velocity is not None:  # the series named fit.hand: positions (m)
        times, values = rec.velocity
        centres = edges[:, :-1] + 0.5 * dt
        pos = np.stack([np.interp(centres, times, values[:, d]) for d in range(2)], axis=-1)
        pos = pos - pos[:, :1]
        hand = np.stack([pos[cond == c].mean(axis=0) for c in range(len(names))])
        velocity = np.gradient(pos, dt, axis=1)
    return Recording(counts, cond, psth, names, hand, rec.heldout, dt, tuple(fit.window), str(path), velocity)


def _natural(label: str) -> tuple:
    return (0, float(label), "") if _is_number(label) else (1, 0.0, label)


def _is_number(x: str) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True


def split_recording(rec: Recording, fit: FitConfig, seed: int) -> Split:
    """The seeded split (stream :data:`SPLIT_STREAM`): held-out neurons, held-out conditions, test trials.

    Raises
    ------
    DataError
        Fewer than 2 held-in neurons, no held-out neuron, or fewer than 2 training conditions.
    """
    rng = stream(seed, SPLIT_STREAM)
    n, notes = rec.n_neurons, []
    if rec.heldout is not None and rec.heldout.any():
        held = np.flatnonzero(rec.heldout)
        notes.append(f"held-out neurons: the file's heldout column ({held.size} of {n})")
    else:
        held = np.sort(rng.permutation(n)[: round(fit.heldout_neurons * n)])
        notes.append(f"held-out neurons: {held.size} of {n}, drawn (seed {seed}, stream {SPLIT_STREAM!r})")
    heldin = np.setdiff1d(np.arange(n), held)
    if heldin.size < 2 or held.size < 1:
        raise DataError(f"{rec.source}: {heldin.size} held-in and {held.size} held-out neurons; fit.heldout_neurons")
    c = rec.n_conditions
    test_c = np.sort(rng.permutation(c)[: round(fit.heldout_conditions * c)])
    train_c = np.setdiff1d(np.arange(c), test_c)
    if train_c.size < 2:
        raise DataError(f"{rec.source}: {train_c.size} training conditions of {c}; lower fit.heldout_conditions")
    notes.append(f"held-out conditions: {test_c.size} of {c} ({', '.join(rec.conditions[i] for i in test_c)})")
    train_t, test_t = np.empty(0, int), np.empty(0, int)
    if rec.single_trials:
        parts = [[], []]
        for cond in train_c:
            rows = np.flatnonzero(rec.trial_condition == cond)
            rows = rows[rng.permutation(rows.size)]
            k = min(round(fit.test_trials * rows.size), max(rows.size - 1, 0))
            parts[1].append(rows[:k])
            parts[0].append(rows[k:])
        train_t, test_t = (np.sort(np.concatenate(p)).astype(int) for p in parts)
        notes.append(f"{train_t.size} training and {test_t.size} test trials of the training conditions")
    return Split(heldin, held, train_c, test_c, train_t, test_t, tuple(notes))


def fit_task(rec: Recording, split: Split, timing: TaskConfig | None = None) -> RecordedTask:
    """The task the recording defines: its conditions, the training conditions' records (see the module notes).

    ``timing``: the ``[task]`` whose ``fixation``, ``reaction_time`` and ``go_duration`` (s) time each trial
    (default: :class:`RecordedTask`'s).
    """
    times = {} if timing is None else {k: getattr(timing, k) for k in ("fixation", "reaction_time", "go_duration")}
    records = []
    for cond in range(rec.n_conditions):
        if cond not in split.train_conditions:
            records.append(np.empty(0, int))
        elif rec.single_trials:
            records.append(
                np.flatnonzero(
                    np.isin(np.arange(rec.counts.shape[0]), split.train_trials) & (rec.trial_condition == cond)
                )
            )
        else:
            records.append(np.array([cond]))
    return RecordedTask(
        rec.dt,
        rec.window,
        rec.n_conditions,
        rec.hand,
        tuple(int(c) for c in split.train_conditions),
        tuple(records),
        **times,
    )


def neural_targets(rec: Recording, split: Split, task: RecordedTask, kind: str) -> NeuralTargets:
    """The held-in neurons' targets on the task's steps: counts of every trial row, or every condition's PSTH.

    ``kind`` ``"counts"`` needs single trials; ``"psth"`` uses the training trials' average (or the
    file's averages).  Rows a trial is not fitted to stay in the array; :meth:`RecordedTask.sample` never
    names them.
    """
    start, stop = task.window_steps  # type: ignore[attr-defined]
    if kind == "counts":
        if not rec.single_trials:
            raise DataError(f"{rec.source}: fit.target = 'counts' needs single trials (an NWB file); use 'psth'")
        values = rec.counts[:, :, split.heldin]
    elif rec.single_trials:
        values = np.zeros((rec.n_conditions, stop - start, split.heldin.size))
        for cond in split.train_conditions:
            rows = split.train_trials[rec.trial_condition[split.train_trials] == cond]
            values[cond] = rec.counts[rows][:, :, split.heldin].mean(axis=0) / rec.dt
    else:
        values = rec.psth[:, :, split.heldin]
    full = np.zeros((values.shape[0], task.n_steps, values.shape[2]))  # type: ignore[attr-defined]
    full[:, start:stop] = values
    mask = np.zeros(full.shape[:2])
    mask[:, start:stop] = 1.0
    return NeuralTargets(kind, full, mask, rec.dt)


def score_activity(
    rec: Recording,
    split: Split,
    activity: np.ndarray,
    heldin_rates: np.ndarray | None = None,
    neurons: np.ndarray | None = None,
    velocity: bool = True,
) -> FitScores:
    """Score a model's activity on every condition, over the window (see the module notes).

    Parameters
    ----------
    activity : ndarray, shape (conditions, bins, units)
        Noise-free activity of each condition on the recording's bins.
    heldin_rates : ndarray, shape (conditions, bins, held-in neurons), optional
        The held-in neurons' rates (Hz) the model predicts through its own fitted mapping; they score
        the held-out conditions.  None: a ridge map fitted on the training conditions' PSTHs does.
    neurons : ndarray of int, optional
        Positions in ``split.heldin`` of the held-in neurons the held-out conditions are scored on
        (default: all of them; empty: NaN).  ``heldin_rates`` still covers every held-in neuron.
    velocity : bool
        Score :attr:`FitScores.velocity_r2` (a second map, to every recorded neuron); False: NaN.
    """
    n_c, n_bins, n_units = activity.shape
    flat = activity.reshape(n_c, n_bins, n_units)
    train_c, test_c = split.train_conditions, split.test_conditions
    psth = rec.psth * rec.dt  # spikes per bin
    smooth = gaussian_filter1d(psth, PSTH_SMOOTH_SD / rec.dt, axis=1, mode="nearest")
    mu, sd = flat[train_c].reshape(-1, n_units).mean(axis=0), flat[train_c].reshape(-1, n_units).std(axis=0)
    z = (flat - mu) / np.where(sd > 0, sd, 1.0)

    def ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alpha = ridge_cv(x, y, MAP_ALPHAS, groups=groups)
        w, b = ridge_fit(x, y, alpha)
        return w, b, np.maximum(0.01 * y.mean(axis=0), ZERO_RATE)

    def predict_psth(neurons: np.ndarray, conds: np.ndarray) -> np.ndarray:
        """Map fitted on the PSTHs of ``conds``, predictions on every condition (spikes per bin)."""
        x = z[conds].reshape(-1, n_units)
        y = smooth[conds][:, :, neurons].reshape(-1, neurons.size)
        w, b, floor = ridge(x, y, np.repeat(conds, n_bins))
        return np.maximum(z.reshape(-1, n_units) @ w + b, floor).reshape(n_c, n_bins, neurons.size)

    def predict(neurons: np.ndarray, conds: np.ndarray) -> np.ndarray:
        """Map fitted on the training trials (or training conditions' PSTHs), predictions on every condition."""
        if rec.single_trials:
            tc = rec.trial_condition[split.train_trials]
            x = z[tc].reshape(-1, n_units)
            y = rec.counts[split.train_trials][:, :, neurons].reshape(-1, neurons.size)
            groups = np.repeat(split.train_trials, n_bins)
        else:
            x = z[conds].reshape(-1, n_units)
            y = psth[conds][:, :, neurons].reshape(-1, neurons.size)
            groups = np.repeat(conds, n_bins)
        w, b, floor = ridge(x, y, groups)
        return np.maximum(z.reshape(-1, n_units) @ w + b, floor).reshape(n_c, n_bins, neurons.size)

    held = split.heldout
    if rec.single_trials and split.test_trials.size:  # as `cortexsim score` (score.map_counts): every trial predicted
        pred, _ = map_counts(flat[rec.trial_condition], rec.counts[:, :, held], split.train_trials)
        test = split.test_trials
        tc = rec.trial_condition[test]
        co_bps = bits_per_spike(pred[test], rec.counts[test][:, :, held])
        psth_r2 = eval_psth(smooth[:, :, held], pred[test], [np.flatnonzero(tc == c) for c in range(n_c)])
        # the map's prediction depends on the condition only (the activity is noise-free)
        first = [np.flatnonzero(rec.trial_condition == c) for c in range(n_c)]
        predicted = np.stack([pred[r[0]] if r.size else np.full(pred.shape[1:], np.nan) for r in first])
        scored = np.unique(tc)
    else:
        predicted = predict(held, train_c)
        co_bps = float("nan")
        psth_r2 = r2_score(smooth[test_c][:, :, held].reshape(-1, held.size), predicted[test_c].reshape(-1, held.size))
        scored = test_c
    true_out = smooth[scored][:, :, held].reshape(-1, held.size)
    neuron_r2 = np.array([r2_score(true_out[:, i], predicted[scored][:, :, i].ravel()) for i in range(held.size)])
    keep = np.arange(split.heldin.size) if neurons is None else np.asarray(neurons, int)
    if test_c.size and keep.size:
        mapped = split.heldin[keep]
        if heldin_rates is None:
            pred_in = predict_psth(mapped, train_c)
        else:
            pred_in = np.asarray(heldin_rates, float) * rec.dt
            if pred_in.shape != (n_c, n_bins, split.heldin.size):
                raise ValueError(f"heldin_rates {pred_in.shape}, expected {(n_c, n_bins, split.heldin.size)}")
            pred_in = pred_in[:, :, keep]
        true = smooth[test_c][:, :, mapped].reshape(-1, mapped.size)
        cond_r2 = r2_score(true, pred_in[test_c].reshape(-1, mapped.size))
    else:
        cond_r2 = float("nan")
    vel_r2 = float("nan")
    if velocity and rec.single_trials and rec.trial_velocity is not None and split.test_trials.size:
        every, _ = map_counts(flat[rec.trial_condition], rec.counts, split.train_trials)  # as `cortexsim score`
        train, test, vel = split.train_trials, split.test_trials, rec.trial_velocity
        vel_r2 = fit_and_eval_decoder(
            every[train].reshape(-1, every.shape[2]),
            vel[train].reshape(-1, vel.shape[2]),
            every[test].reshape(-1, every.shape[2]),
            vel[test].reshape(-1, vel.shape[2]),
        )
    return FitScores(
        float(co_bps),
        float(psth_r2),
        float(cond_r2),
        float(vel_r2),
        predicted / rec.dt,
        smooth[:, :, held] / rec.dt,
        neuron_r2,
        np.asarray(scored, int),
    )


@dataclass(frozen=True)
class PopulationScores:
    """One population's row of the per-population table (:func:`score_populations`).

    Attributes
    ----------
    population : str
    units : int
        The population's units in the circuit.
    neurons : int
        Held-in neurons mapped to its units (``units`` mapping; 0 for a readout).
    scores : FitScores
        ``heldout_co_bps`` and ``heldout_psth_r2``: the held-out neurons predicted from this population's
        units alone (the same ridge map as the whole model's, on fewer columns);
        ``heldout_condition_psth_r2``: the held-in neurons mapped to it, on the held-out conditions (NaN
        when none is).  No velocity.
    """

    population: str
    units: int
    neurons: int
    scores: FitScores


def score_populations(
    rec: Recording,
    split: Split,
    activity: np.ndarray,
    populations: dict[str, np.ndarray],
    mapped: np.ndarray | None = None,
    heldin_rates: np.ndarray | None = None,
) -> list[PopulationScores]:
    """The held-out scores per population of a circuit model (see :class:`PopulationScores`).

    Parameters
    ----------
    activity : ndarray, shape (conditions, bins, units)
        The whole circuit's activity.
    populations : dict of str to ndarray of int
        Each population's units (columns of ``activity``).
    mapped : ndarray of int, shape (held-in neurons,), optional
        The circuit unit of each held-in neuron (``units`` mapping); None: no neuron belongs to a population.
    heldin_rates : ndarray, optional
        As in :func:`score_activity`: the model's own predictions of the held-in neurons.
    """
    rows = []
    for name, units in populations.items():
        units = np.asarray(units, int)
        own = np.empty(0, int) if mapped is None else np.flatnonzero(np.isin(mapped, units))
        scores = score_activity(rec, split, activity[:, :, units], heldin_rates, neurons=own, velocity=False)
        rows.append(PopulationScores(name, int(units.size), int(own.size), scores))
    return rows
