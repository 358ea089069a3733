"""Known answers of the behavioural metrics (cortexsim.metrics) on tiny hand-made trajectories.

Every expected value is worked out by hand in the test, not by calling the library twice.
"""

from __future__ import annotations

import numpy as np
import pytest

from cortexsim.metrics import (
    catch_drift_cm,
    endpoint_error_cm,
    peak_speed_error,
    position_r2,
    reaction_time_ms,
    speed_profile_r,
)
from cortexsim.tasks import CenterOutTask, TrialBatch

DT = 0.01


def batch_of(targets: np.ndarray, catch, go=None, dt: float = DT) -> TrialBatch:
    """A TrialBatch around ``targets`` (trials, time, 2) with the given catch flags and go times (s)."""
    n, t, _ = targets.shape
    catch = np.asarray(catch, bool)
    go = np.full(n, 0.0) if go is None else np.asarray(go, float)
    go = np.where(catch, np.nan, go)
    return TrialBatch(
        inputs=np.zeros((n, t, 3)),
        targets=targets,
        mask=np.ones_like(targets),
        dt=dt,
        params={"catch": catch, "go": go},
    )


# --------------------------------------------------------------------------------------- position_r2


def test_r2_of_a_perfect_prediction_is_one():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 7, 2))
    assert position_r2(y.copy(), y) == 1.0


def test_r2_of_the_per_dimension_mean_is_zero():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(3, 7, 2)) + np.array([5.0, -2.0])
    pred = np.broadcast_to(y.mean(axis=(0, 1)), y.shape)
    assert position_r2(pred, y) == pytest.approx(0.0, abs=1e-12)


def test_r2_is_around_the_mean_of_each_output_not_the_grand_mean():
    # x takes 0, 2; y takes 10, 12: per-dimension means 1 and 11, each value 1 away -> SST = 4.
    # A prediction off by 1 in one sample of x: SSE = 1 -> R^2 = 1 - 1/4 = 0.75.
    # (Around the grand mean 6, SST would be 36 + 16 + 16 + 36 = 104 and R^2 = 1 - 1/104.)
    y = np.array([[[0.0, 10.0], [2.0, 12.0]]])
    pred = y.copy()
    pred[0, 0, 0] += 1.0
    assert position_r2(pred, y) == pytest.approx(0.75)


def test_r2_of_a_known_residual():
    # one trial, 4 steps, 1 output: y = 1, 2, 3, 4 (mean 2.5, SST = 2.25 + 0.25 + 0.25 + 2.25 = 5)
    y = np.array([1.0, 2.0, 3.0, 4.0])[None, :, None]
    pred = np.array([1.5, 2.0, 2.0, 4.0])[None, :, None]  # residuals 0.5, 0, -1, 0 -> SSE = 1.25
    assert position_r2(pred, y) == pytest.approx(1.0 - 1.25 / 5.0)


def test_r2_respects_the_mask_in_mean_sse_and_sst():
    # Masked-in samples: y = 1, 3 (mean 2, SST = 2), pred = 1, 4 (SSE = 1) -> R^2 = 0.5.
    # The masked-out samples are wild in both y and pred; were they counted, the answer would differ.
    y = np.array([1.0, 100.0, 3.0, -50.0])[None, :, None]
    pred = np.array([1.0, -7.0, 4.0, 900.0])[None, :, None]
    mask = np.array([1.0, 0.0, 1.0, 0.0])[None, :, None]
    assert position_r2(pred, y, mask) == pytest.approx(0.5)
    assert position_r2(pred, y) != pytest.approx(0.5)


def test_r2_can_be_negative():
    # y = 0, 2 (SST = 2); pred = 2, 0 (SSE = 8) -> R^2 = 1 - 4 = -3
    y = np.array([0.0, 2.0])[None, :, None]
    assert position_r2(y[:, ::-1], y) == pytest.approx(-3.0)


# --------------------------------------------------------------------------------- endpoint_error_cm


def test_endpoint_error_is_the_offset_over_the_last_window_in_cm():
    # 10 steps of 10 ms: the default 50 ms window is the last 5 steps.  The hand sits
    # (6 mm, 8 mm) = 1 cm off the target there; step -6 is 1 m off, so a window one step too
    # long would give (5 * 1 + 100) / 6 = 17.5 cm instead of 1 cm.
    t = 10
    targets = np.zeros((2, t, 2))
    targets[:, :, 0] = 0.10
    out = targets.copy()
    out[:, -5:] += np.array([0.006, 0.008])
    out[:, -6] += np.array([1.0, 0.0])
    out[:, :-6] += 0.5  # early samples do not count either
    assert endpoint_error_cm(out, batch_of(targets, [False, False])) == pytest.approx(1.0)


def test_endpoint_error_averages_distance_over_samples_and_trials():
    # trial 0: 2 cm off in the window; trial 1: 4 cm off -> mean 3 cm.  Window 20 ms = 2 steps.
    targets = np.zeros((2, 6, 2))
    out = targets.copy()
    out[0, -2:, 1] = 0.02
    out[1, -2:, 0] = -0.04
    assert endpoint_error_cm(out, batch_of(targets, [False, False]), window=0.02) == pytest.approx(3.0)


def test_endpoint_error_ignores_catch_trials():
    targets = np.zeros((2, 6, 2))
    out = targets.copy()
    out[0, :, 0] = 0.03  # reach trial: 3 cm
    out[1, :, 0] = 5.0  # catch trial: 500 cm, must not count
    assert endpoint_error_cm(out, batch_of(targets, [False, True])) == pytest.approx(3.0)


def test_endpoint_error_window_shorter_than_a_step_uses_the_last_sample():
    targets = np.zeros((1, 4, 2))
    out = targets.copy()
    out[0, -1, 0] = 0.01  # only the last sample is 1 cm off
    out[0, -2, 0] = 0.50
    assert endpoint_error_cm(out, batch_of(targets, [False]), window=0.001) == pytest.approx(1.0)


def test_endpoint_error_is_nan_without_reach_trials():
    targets = np.zeros((2, 4, 2))
    assert np.isnan(endpoint_error_cm(targets, batch_of(targets, [True, True])))


# ------------------------------------------------------------------------------------ catch_drift_cm


def test_catch_drift_is_the_mean_over_catch_trials_of_the_largest_excursion():
    # catch trial 0 peaks at (0.03, 0.04) = 5 cm; catch trial 1 at 1 cm (smaller values elsewhere);
    # the reach trial goes 10 cm and must not count.  Mean of 5 and 1 = 3 cm.
    out = np.zeros((3, 8, 2))
    out[0, 3] = [0.03, 0.04]
    out[0, 4] = [0.01, 0.0]
    out[1, 6] = [0.0, -0.01]
    out[1, 2] = [0.005, 0.0]
    out[2, 5:] = [0.10, 0.0]
    batch = batch_of(np.zeros_like(out), [True, True, False])
    assert catch_drift_cm(out, batch) == pytest.approx(3.0)


def test_catch_drift_is_measured_from_the_centre():
    # A hand that stays put 2 cm off the centre drifted 2 cm (distance from the origin, not from the start).
    out = np.tile(np.array([0.02, 0.0]), (1, 5, 1))
    assert catch_drift_cm(out, batch_of(np.zeros_like(out), [True])) == pytest.approx(2.0)


def test_catch_drift_is_nan_without_catch_trials():
    out = np.zeros((2, 4, 2))
    assert np.isnan(catch_drift_cm(out, batch_of(out, [False, False])))


# ---------------------------------------------------------------------------------- reaction_time_ms


def radial(dist: np.ndarray, angle: float = 0.3) -> np.ndarray:
    """A (time, 2) path at ``angle`` whose distance from the centre is ``dist``."""
    return dist[:, None] * np.array([np.cos(angle), np.sin(angle)])


def ramp_crossing_at(step: int, t: int = 80) -> np.ndarray:
    """Distance 0 until ``step``, then 1.5 cm (crosses 1 cm exactly at ``step``)."""
    d = np.zeros(t)
    d[step:] = 0.015
    d[step - 1] = 0.0099  # just below the threshold one step before
    return d


def test_reaction_time_counts_steps_from_go_to_the_first_crossing():
    # go at 0.30 s (step 30), first sample >= 1 cm at step 45 -> 15 steps of 10 ms = 150 ms
    pos = radial(ramp_crossing_at(45))[None]
    assert reaction_time_ms(pos, batch_of(np.zeros_like(pos), [False], go=[0.30])) == pytest.approx(150.0)


def test_reaction_time_threshold_is_inclusive():
    # exactly 1 cm at step 40 counts as a crossing (>=)
    d = np.zeros(60)
    d[40:] = 0.01
    pos = radial(d, angle=0.0)[None]  # angle 0: the norm is exactly 0.01
    assert reaction_time_ms(pos, batch_of(np.zeros_like(pos), [False], go=[0.30])) == pytest.approx(100.0)


def test_reaction_time_is_the_median_over_reach_trials_and_ignores_catch_and_non_crossing():
    # reach RTs 100, 150, 400 ms -> median 150; a reach trial that never crosses (NaN) and a
    # catch trial (go NaN, moves early) are ignored.  With the NaN trial counted the median would move.
    go = [0.2, 0.3, 0.1, 0.2, 0.0]
    pos = np.stack(
        [
            radial(ramp_crossing_at(30)),  # 0.2 s -> step 30: 100 ms
            radial(ramp_crossing_at(45)),  # 0.3 s -> step 45: 150 ms
            radial(ramp_crossing_at(50)),  # 0.1 s -> step 50: 400 ms
            radial(np.full(80, 0.005)),  # never reaches 1 cm
            radial(ramp_crossing_at(2)),
        ]
    )  # catch trial
    batch = batch_of(np.zeros_like(pos), [False, False, False, False, True], go=go)
    assert reaction_time_ms(pos, batch) == pytest.approx(150.0)


def test_reaction_time_ignores_excursions_before_go():
    # The hand pokes out to 2 cm at step 10, comes back, and crosses for real at step 50; go at step 40.
    d = ramp_crossing_at(50)
    d[10] = 0.02
    pos = radial(d)[None]
    assert reaction_time_ms(pos, batch_of(np.zeros_like(pos), [False], go=[0.40])) == pytest.approx(100.0)


def test_reaction_time_is_nan_when_no_trial_crosses():
    pos = radial(np.full(50, 0.009))[None]
    assert np.isnan(reaction_time_ms(pos, batch_of(np.zeros_like(pos), [False], go=[0.1])))


def test_reaction_time_of_the_task_targets_is_the_nominal_value():
    # Targets: hand still until go + reaction_time, then a minimum-jerk reach of D in T.  The reach
    # covers 1 cm when 10 s^3 - 15 s^4 + 6 s^5 = 0.01 / D; the metric reports the first grid step at
    # or after that instant.  Solved here by bisection, independently of the task code.  The delays
    # put every go cue on the 10 ms grid (sampled delays do not; see the report on rounding).
    task = CenterOutTask(dt=0.01, reaction_time=0.15, reach_distance=0.10, reach_duration=0.40)
    delay = np.array([0.0, 0.30, 0.50, 0.70])
    batch = task.build(np.linspace(0, 3, 4), delay, np.zeros(4, bool), np.arange(4))
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mid**3 * (10 - 15 * mid + 6 * mid**2) < 0.1 else (lo, mid)
    # from go: 150 ms of reaction time, then lo * 400 ms of reach, rounded up to the next 10 ms step
    expected = np.ceil((150.0 + lo * 400.0) / 10.0) * 10.0
    assert reaction_time_ms(batch.targets, batch) == pytest.approx(expected, abs=1e-6)
    assert 150.0 < expected < 150.0 + 0.3 * 400.0  # sanity: after the reaction time, early in the reach


def _ramp_path(n_steps: int, start: int, length: int, distance: float = 0.1) -> np.ndarray:
    """A straight reach along x at constant speed: ``distance`` m over ``length`` steps from ``start``."""
    x = np.clip((np.arange(n_steps) - start) / length, 0.0, 1.0) * distance
    return np.stack([x, np.zeros(n_steps)], -1)


def test_speed_metrics_of_a_perfect_reach_are_ideal():
    targets = _ramp_path(50, 10, 20)[None]
    batch = batch_of(targets, [False])
    assert peak_speed_error(targets, batch) == pytest.approx(0.0, abs=1e-12)
    assert speed_profile_r(targets, batch) == pytest.approx(1.0, abs=1e-12)


def test_peak_speed_error_of_a_reach_twice_as_slow_is_one_half():
    # the same 10 cm in 40 steps instead of 20: constant speed 0.125 m/s against 0.5 m/s
    targets = _ramp_path(80, 10, 20)[None]
    slow = _ramp_path(80, 10, 40)[None]
    assert peak_speed_error(slow, batch_of(targets, [False])) == pytest.approx(0.5, rel=1e-9)


def test_speed_profile_r_of_a_late_reach_is_the_box_overlap_correlation():
    # two boxes of 20 steps, one shifted by 10, in 59 speed samples: r = (10 - 20*20/59) / (20 - 20*20/59)
    targets = _ramp_path(60, 10, 20)[None]
    late = _ramp_path(60, 20, 20)[None]
    expected = (10 - 400 / 59) / (20 - 400 / 59)
    assert speed_profile_r(late, batch_of(targets, [False])) == pytest.approx(expected, rel=1e-9)


def test_speed_metrics_skip_catch_trials():
    targets = np.zeros((1, 20, 2))
    batch = batch_of(targets, [True])
    assert np.isnan(peak_speed_error(targets, batch)) and np.isnan(speed_profile_r(targets, batch))
