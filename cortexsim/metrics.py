"""Behavioural metrics of produced reaches (pure functions of arrays).

All arrays are (trials, time, outputs) with positions in metres.  Higher R^2 is
better; errors and drifts are in centimetres, lower is better.
"""

from __future__ import annotations

import numpy as np

from .loss import r2_score
from .tasks import TrialBatch


def position_r2(outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Coefficient of determination of the hand position over all masked samples.

    ``1 - SSE / SST`` with SST around the mean target of each output dimension;
    1 is perfect, 0 is as good as always reporting the mean position
    (:func:`cortexsim.loss.r2_score`, the R^2 training reports).

    Parameters
    ----------
    outputs, targets : ndarray, shape (trials, time, outputs)
        Produced and desired hand positions (m).
    mask : ndarray, same shape, optional
        1 where a sample counts (default: all).
    """
    return r2_score(outputs, targets, mask)


def endpoint_error_cm(outputs: np.ndarray, batch: TrialBatch, window: float = 0.05) -> float:
    """Mean distance (cm) between hand and target over the last ``window`` s, reach trials only."""
    reach = ~batch.params["catch"]
    if not np.any(reach):
        return float("nan")
    k = max(1, int(round(window / batch.dt)))
    d = np.linalg.norm(outputs[reach, -k:] - batch.targets[reach, -k:], axis=-1)
    return float(100.0 * d.mean())


def catch_drift_cm(outputs: np.ndarray, batch: TrialBatch) -> float:
    """Mean over catch trials of the largest distance (cm) of the hand from the centre."""
    catch = batch.params["catch"]
    if not np.any(catch):
        return float("nan")
    return float(100.0 * np.linalg.norm(outputs[catch], axis=-1).max(axis=1).mean())


def reaction_time_ms(positions: np.ndarray, batch: TrialBatch, threshold: float = 0.01) -> float:
    """Median time (ms) from go cue until the hand is ``threshold`` m (1 cm) from the centre.

    Applied to the targets it gives the task's nominal value (reaction time plus
    the time a minimum-jerk reach takes to cover the threshold); compare the two.
    Reach trials that never cross count as NaN and are ignored.
    """
    reach = ~batch.params["catch"]
    times = []
    for i in np.flatnonzero(reach):
        dist = np.linalg.norm(positions[i], axis=-1)
        go_step = int(round(batch.params["go"][i] / batch.dt))
        crossed = np.flatnonzero(dist[go_step:] >= threshold)
        times.append(crossed[0] * batch.dt * 1e3 if crossed.size else np.nan)
    times = np.asarray(times)
    return float(np.nanmedian(times)) if np.any(np.isfinite(times)) else float("nan")


def hand_speed(positions: np.ndarray, dt: float) -> np.ndarray:
    """Hand speed (m/s) from step-to-step displacement, (trials, time - 1)."""
    return np.linalg.norm(np.diff(positions, axis=1), axis=-1) / dt


def peak_speed_error(positions: np.ndarray, batch: TrialBatch) -> float:
    """Mean over reach trials of ``|peak speed - desired peak speed| / desired peak speed``.

    Both peaks are of the step-to-step speed (:func:`hand_speed`); the desired one is the
    minimum-jerk target path's (1.875 distance / duration).  0 is perfect.
    """
    reach = ~batch.params["catch"]
    if not np.any(reach):
        return float("nan")
    got = hand_speed(positions[reach], batch.dt).max(axis=1)
    want = hand_speed(batch.targets[reach], batch.dt).max(axis=1)
    return float(np.mean(np.abs(got - want) / want))


def speed_profile_r(positions: np.ndarray, batch: TrialBatch) -> float:
    """Mean over reach trials of the correlation of the hand's speed profile with the target path's.

    A bell-shaped, well-timed speed profile gives ~1.  The correlation runs over the whole trial
    (fixation and hold included), so an early or late movement lowers it as a misshapen one does.
    """
    reach = ~batch.params["catch"]
    if not np.any(reach):
        return float("nan")
    got = hand_speed(positions[reach], batch.dt)
    want = hand_speed(batch.targets[reach], batch.dt)
    got = got - got.mean(axis=1, keepdims=True)
    want = want - want.mean(axis=1, keepdims=True)
    denom = np.sqrt((got**2).sum(axis=1) * (want**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (got * want).sum(axis=1) / denom
    return float(np.nanmean(r)) if np.any(np.isfinite(r)) else float("nan")


# -- perturbations: force fields and bumps ------------------------------------------------------


def lateral_deviation(positions: np.ndarray, batch: TrialBatch) -> np.ndarray:
    """Signed maximum lateral deviation (m) of each reach from the straight path to its target.

    The deviation at each step is the hand's distance from the line through the start and the
    final target, positive to the left of the reach direction (counter-clockwise); each trial's
    value is the signed deviation where its magnitude peaks, from the go cue to the trial's end.
    Catch trials give NaN.

    Parameters
    ----------
    positions : ndarray, shape (trials, time, 2)
        Hand positions relative to the start (m).
    batch : TrialBatch
        The trials (their final targets and go times).

    Returns
    -------
    ndarray, shape (trials,)
    """
    end = batch.targets[:, -1, :]
    length = np.linalg.norm(end, axis=-1)
    out = np.full(positions.shape[0], np.nan)
    go = np.nan_to_num(batch.params["go"], nan=np.inf)
    for i in np.flatnonzero(length > 0):
        u = end[i] / length[i]
        side = u[0] * positions[i, :, 1] - u[1] * positions[i, :, 0]  # cross(u, p)
        side = side[batch.time >= go[i] - 1e-9]
        if side.size:
            out[i] = side[np.argmax(np.abs(side))]
    return out


def bump_displacement(positions: np.ndarray, reference: np.ndarray, onset: np.ndarray, dt: float) -> np.ndarray:
    """Peak distance (m) of each bumped hand path from its unperturbed path, from the bump's onset on.

    Parameters
    ----------
    positions, reference : ndarray, shape (trials, time, 2)
        Bumped and unperturbed hand positions (m), trial by trial.
    onset : ndarray, shape (trials,)
        Bump onset (s).
    dt : float
        Step (s).
    """
    d = np.linalg.norm(positions - reference, axis=-1)
    steps = np.arange(d.shape[1])[None, :]
    after = steps >= np.round(np.asarray(onset) / dt)[:, None]
    return np.where(after, d, 0.0).max(axis=1)


def recovery_time_ms(
    positions: np.ndarray, reference: np.ndarray, onset: np.ndarray, dt: float, tolerance: float = 0.01
) -> np.ndarray:
    """Time (ms) from each bump's onset until the hand stays within ``tolerance`` of its unperturbed path.

    0 when it never leaves the tolerance; ``inf`` when it is still outside at the trial's end.

    Parameters
    ----------
    positions, reference : ndarray, shape (trials, time, 2)
        Bumped and unperturbed hand positions (m).
    onset : ndarray, shape (trials,)
        Bump onset (s).
    dt : float
        Step (s).
    tolerance : float
        Distance (m) counted as back on the path (default 1 cm).
    """
    d = np.linalg.norm(positions - reference, axis=-1)
    out = np.empty(d.shape[0])
    for i, t0 in enumerate(np.round(np.asarray(onset) / dt).astype(int)):
        outside = np.flatnonzero(d[i, t0:] > tolerance)
        if outside.size == 0:
            out[i] = 0.0
        elif outside[-1] == d.shape[1] - 1 - t0:
            out[i] = np.inf
        else:
            out[i] = (outside[-1] + 1) * dt * 1e3
    return out


def response_latency_ms(
    change: np.ndarray, noise: np.ndarray, onset_step: int, dt: float, threshold_sd: float = 3.0, run: int = 2
) -> float:
    """Latency (ms) of a population's response to a perturbation.

    The first step at or after ``onset_step`` from which ``change`` exceeds the noise floor's mean
    plus ``threshold_sd`` of its SD for ``run`` consecutive steps; NaN if it never does.

    Parameters
    ----------
    change : ndarray, shape (time,)
        The population's mean ``|delta rate|`` between perturbed and unperturbed trials (Hz).
    noise : ndarray, shape (baseline steps,)
        The same measure between two unperturbed trials that differ only in their noise, over
        a window before the perturbation (Hz): its mean and SD set the threshold.
    onset_step : int
        Step of the perturbation's onset.
    dt : float
        Step (s).
    """
    noise = np.asarray(noise, float)
    noise = noise[np.isfinite(noise)]
    threshold = float(np.mean(noise) + threshold_sd * np.std(noise))
    above = np.asarray(change[onset_step:]) > threshold  # NaN (past the trial's end) never counts
    for k in range(above.size - run + 1):
        if above[k : k + run].all():
            return float(k * dt * 1e3)
    return float("nan")


# -- the maze: curved paths through via points ---------------------------------------------------


def _lateral(positions: np.ndarray, batch: TrialBatch) -> np.ndarray:
    """Signed offset (m) of each position from the line through the start and the trial's target, (trials, time)."""
    end = batch.targets[:, -1, :]
    u = end / np.maximum(np.linalg.norm(end, axis=-1, keepdims=True), 1e-12)
    return u[:, None, 0] * positions[..., 1] - u[:, None, 1] * positions[..., 0]  # cross(u, p)


def curvature_gain(positions: np.ndarray, batch: TrialBatch, curved: np.ndarray) -> float:
    """How much of the desired paths' bend the hand reproduces: 1 follows it, 0 reaches straight.

    The least-squares gain of the hand's signed offset from the straight line to the target on the
    desired path's offset, ``sum(lat * lat_desired) / sum(lat_desired^2)`` over every step of the
    reach trials marked ``curved`` (NaN if none).

    Parameters
    ----------
    positions : ndarray, shape (trials, time, 2)
        Hand positions relative to the start (m).
    batch : TrialBatch
    curved : ndarray of bool, shape (trials,)
        Trials whose desired path bends (maze arcs and S-curves).
    """
    keep = np.asarray(curved, bool) & ~batch.params["catch"]
    if not np.any(keep):
        return float("nan")
    trials = batch.take(np.flatnonzero(keep))
    got, want = _lateral(positions[keep], trials), _lateral(trials.targets, trials)
    return float(np.sum(got * want) / np.sum(want**2))


def via_error_cm(positions: np.ndarray, batch: TrialBatch, via: np.ndarray) -> float:
    """Mean over reach trials and their via points of the hand's closest approach to the point (cm).

    Parameters
    ----------
    positions : ndarray, shape (trials, time, 2)
        Hand positions relative to the start (m).
    batch : TrialBatch
    via : ndarray, shape (trials, slots, 2)
        Each trial's via points (m); NaN rows for unused slots.  NaN if no reach trial has one.
    """
    gaps = []
    for i in np.flatnonzero(~batch.params["catch"]):
        for point in via[i][np.all(np.isfinite(via[i]), axis=1)]:
            gaps.append(np.linalg.norm(positions[i] - point, axis=-1).min())
    return float(100.0 * np.mean(gaps)) if gaps else float("nan")


def maze_metrics(task, prefix: str, positions: np.ndarray, batch: TrialBatch) -> dict[str, float]:
    """The maze's metrics of hand ``positions`` (trials, time, 2; m) on ``batch`` of ``task`` (a ``MazeTask``).

    ``<prefix>_maze_endpoint_error_cm`` and ``_maze_position_r2`` (the reach metrics, over the maze's
    straight and curved conditions), ``_maze_curvature_gain`` (how much of the curved paths' bend the
    hand reproduces, :func:`curvature_gain`: 1 follows it, 0 reaches straight) and
    ``_maze_via_error_cm`` (closest approach to the via points, :func:`via_error_cm`).
    """
    condition = batch.params["condition"]
    return {
        f"{prefix}_maze_endpoint_error_cm": endpoint_error_cm(positions, batch),
        f"{prefix}_maze_position_r2": position_r2(positions, batch.targets, batch.mask),
        f"{prefix}_maze_curvature_gain": curvature_gain(positions, batch, batch.params["shape"] > 0),
        f"{prefix}_maze_via_error_cm": via_error_cm(positions, batch, task.via_points(condition)),
    }


TASK_METRICS = {"maze": maze_metrics}
"""Metrics a task adds to every model's reach metrics, by the task's ``KIND``: ``fn(task, prefix,
positions, batch) -> dict``.  A task without an entry adds none."""


def task_metrics(task, prefix: str, positions: np.ndarray, batch: TrialBatch) -> dict[str, float]:
    """The metrics ``task`` adds (:data:`TASK_METRICS`) for hand ``positions`` (trials, time, 2; m) on ``batch``."""
    fn = TASK_METRICS.get(task.KIND)
    return {} if fn is None else fn(task, prefix, positions, batch)


def reach_metrics(task, prefix: str, positions: np.ndarray, batch: TrialBatch) -> dict[str, float]:
    """Every reach metric of hand ``positions`` on ``batch``, keyed ``<prefix>_<metric>``.

    Position R^2, endpoint error, catch drift, reaction time, peak-speed error and speed-profile
    correlation, plus what ``task`` adds (:func:`task_metrics`).  The held-out evaluation
    (:func:`cortexsim.evaluation.evaluate`) and training's bar stop (``[train] stop_at_bars``)
    both measure a reach with this one function.

    Parameters
    ----------
    task : Task
    prefix : str
        Metric prefix (``rate``, ``ann_gru``, ...).
    positions : ndarray, shape (trials, time, 2)
        Hand positions relative to the start (m).
    batch : TrialBatch
    """
    out = {
        f"{prefix}_position_r2": position_r2(positions, batch.targets, batch.mask),
        f"{prefix}_endpoint_error_cm": endpoint_error_cm(positions, batch),
        f"{prefix}_catch_drift_cm": catch_drift_cm(positions, batch),
        f"{prefix}_reaction_time_ms": reaction_time_ms(positions, batch),
        f"{prefix}_peak_speed_error": peak_speed_error(positions, batch),
        f"{prefix}_speed_profile_r": speed_profile_r(positions, batch),
    }
    out.update(task_metrics(task, prefix, positions, batch))
    return out
