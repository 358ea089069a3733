"""jPCA as Churchland et al. fit it: their window, configurable and recorded, around each model's own measured onset."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from cortexsim import analysis, battery, battery_cache, report, store
from cortexsim.battery import (
    MEASURED,
    RECORDED,
    SCHEDULED,
    AlignedActivity,
    BatterySettings,
    alignment_of,
    jpca_row,
    measured_onsets,
    movement_aligned,
    onsets_of,
    run_battery,
)
from cortexsim.config import CompareConfig, Config
from cortexsim.errors import ConfigError
from cortexsim.store import Activity

sys.path.insert(0, str(Path(__file__).resolve().parent))

DT = 0.01
GO = 0.2  # s: step 20
SCHEDULED_ON = 30  # the task's movement onset (step)
DELAYS = np.array([0, 6, 12, 3, 9, 0, 6, 12])  # how much later than scheduled each condition really moves (steps)


def reach(onsets: np.ndarray, n_time: int = 90, duration: int = 25) -> np.ndarray:
    """Hand paths (conditions, time, 2) of minimum-jerk reaches of 10 cm that start at ``onsets``."""
    hand = np.zeros((len(onsets), n_time, 2))
    for c, on in enumerate(onsets):
        s = np.clip((np.arange(n_time) - on) / duration, 0, 1)
        progress = 10 * s**3 - 15 * s**4 + 6 * s**5
        angle = 2 * np.pi * c / len(onsets)
        hand[c] = 0.1 * progress[:, None] * np.array([np.cos(angle), np.sin(angle)])
    return hand


def late_mover(n_time: int = 90, n_units: int = 20) -> np.ndarray:
    """Rates that sit still until each condition's real onset, then rotate (decaying) at 3 Hz."""
    rng = np.random.default_rng(7)
    basis, _ = np.linalg.qr(rng.standard_normal((n_units, 4)))
    x = np.zeros((len(DELAYS), n_time, n_units))
    for c, d in enumerate(DELAYS):
        t = np.clip(np.arange(n_time) - (SCHEDULED_ON + d), 0, None) * DT
        phase = 2 * np.pi * c / len(DELAYS) + 2 * np.pi * 3.0 * t
        plane = np.stack([np.cos(phase), np.sin(phase)], -1) * np.exp(-2 * t)[:, None]
        ramp = np.stack([t, t**2], -1) * (c % 3)  # a non-rotational part, so that the ratio is not 1
        x[c] = 20 + 5 * np.concatenate([plane, ramp], -1) @ basis.T
    return x


# --- the [compare] keys -------------------------------------------------------------------------------


def test_the_default_window_is_churchlands_and_the_keys_validate():
    assert CompareConfig().jpca_window == (-0.05, 0.15)
    assert BatterySettings().jpca_window == (-0.05, 0.15)
    assert battery.JPCA_WINDOW == (-0.05, 0.15)
    assert CompareConfig().jpca_onset_fraction == 0.2
    config = Config.from_dict({"compare": {"jpca_window": [-0.1, 0.2], "jpca_onset_fraction": 0.1}})
    assert config.compare.jpca_window == (-0.1, 0.2)
    assert BatterySettings.of(config.compare).jpca_window == (-0.1, 0.2)
    assert Config.from_dict(tomllib.loads(config.to_toml())).compare.jpca_window == (-0.1, 0.2)
    for bad, said in [
        ([0.15, -0.05], "start is not before stop"),
        ([0.1, 0.1], "start is not before stop"),
        ([-0.05], "give \\[start, stop\\]"),
        ([-0.05, 0.1, 0.2], "give \\[start, stop\\]"),
        (["a", 0.1], "\\[0\\]: expected a number"),
    ]:
        with pytest.raises(ConfigError, match=r"compare\.jpca_window.*" + said) as info:
            Config.from_dict({"compare": {"jpca_window": bad}})
        assert "\n" not in str(info.value)
    for fraction in (0, -0.2, 1.5):
        with pytest.raises(ConfigError, match=r"compare\.jpca_onset_fraction"):
            Config.from_dict({"compare": {"jpca_onset_fraction": fraction}})
    with pytest.raises(ValueError, match="start must be before stop"):
        BatterySettings(jpca_window=(0.1, -0.1))


# --- the window changes the answer, and the rows and the cache key say which -----------------------------


def test_the_window_changes_the_jpca_rows_the_key_and_is_recorded_in_every_row():
    x = late_mover()
    acts = [
        Activity("rate", "model", x, DT, SCHEDULED_ON),
        Activity("rate:L5B", "layer", x[:, :, :12], DT, SCHEDULED_ON),
    ]
    rows = {}
    for window in [(-0.05, 0.15), (-0.05, 0.2)]:
        result = run_battery(acts, rng=np.random.default_rng(0), n_null=0, jpca_window=window)
        rows[window] = {r["activity"]: r for r in result.jpca}
        for r in result.jpca:
            assert (r["window_start_s"], r["window_stop_s"]) == window
            assert r["alignment"] == SCHEDULED
    assert rows[(-0.05, 0.15)]["rate"]["ratio"] != pytest.approx(rows[(-0.05, 0.2)]["rate"]["ratio"], abs=1e-3)
    # the default is the published window
    default = run_battery(acts, rng=np.random.default_rng(0), n_null=0)
    assert default.jpca[0]["ratio"] == rows[(-0.05, 0.15)]["rate"]["ratio"]
    positions = np.zeros((8, 90, 2))
    keys = {
        w: battery_cache.battery_key(acts, BatterySettings(4, 0, 0, jpca_window=w), positions, seed=1)
        for w in [(-0.05, 0.15), (-0.05, 0.2), (-0.1, 0.15)]
    }
    assert len(set(keys.values())) == 3
    assert keys[(-0.05, 0.15)] == battery_cache.battery_key(acts, BatterySettings(4, 0, 0), positions, seed=1)


def test_the_window_is_cut_to_the_activity_and_the_row_says_where():
    x = late_mover()
    row, _ = jpca_row(Activity("rate", "model", x[:, :40], DT, SCHEDULED_ON))  # the trial ends 9 steps after onset
    assert (row["window_start_s"], row["window_stop_s"]) == (-0.05, 0.09)
    with pytest.raises(ValueError, match="jPCA window"):
        jpca_row(Activity("rate", "model", x, DT, 200))  # onset after the trial: nothing inside


# --- measured movement onset -------------------------------------------------------------------------


def test_measured_onset_is_where_the_hand_speed_rises_through_the_fraction_of_its_peak():
    onsets = SCHEDULED_ON + DELAYS
    hand = reach(onsets)
    go = np.full(len(onsets), GO)
    found, measured = measured_onsets(hand, DT, go, SCHEDULED_ON, 0.2)
    assert measured.all()
    speed = np.linalg.norm(np.gradient(hand, DT, axis=1), axis=-1)
    for c, on in enumerate(found):  # the first step at 20 % of the peak, the step before below it
        peak = speed[c].max()
        assert speed[c, on] >= 0.2 * peak > speed[c, on - 1]
    # the same reach measured the same way: onset follows the real onset step for step
    np.testing.assert_array_equal(found - found[0], DELAYS - DELAYS[0])
    # a lower fraction finds onset earlier
    assert (measured_onsets(hand, DT, go, SCHEDULED_ON, 0.05)[0] < found).all()
    # a catch trial (no go cue) and a hand that never moves keep the scheduled onset
    hand[1] = 0.0
    go[2] = np.nan
    found, measured = measured_onsets(hand, DT, go, SCHEDULED_ON, 0.2)
    assert list(measured[:3]) == [True, False, False] and list(found[1:3]) == [SCHEDULED_ON, SCHEDULED_ON]


def test_a_slow_drift_before_the_reach_does_not_count_as_onset():
    hand = reach(np.array([SCHEDULED_ON + 10]))
    hand[0, :, 0] += 0.0005 * np.arange(hand.shape[1])  # 5 cm/s drift from the start, under 20 % of the peak
    found, _ = measured_onsets(hand, DT, np.array([GO]), SCHEDULED_ON)
    assert found[0] > SCHEDULED_ON + 5


def test_a_late_mover_is_aligned_to_its_own_onset_and_that_changes_its_jpca():
    """A model that starts moving later than scheduled: measured alignment shifts its window with it."""
    x = late_mover()
    hands = {"rate": reach(SCHEDULED_ON + DELAYS), "ann_gru": reach(SCHEDULED_ON + 0 * DELAYS)}
    go = np.full(len(DELAYS), GO)
    acts = [
        Activity("rate", "model", x, DT, SCHEDULED_ON),
        Activity("rate:L2/3", "layer", x[:, :, :12], DT, SCHEDULED_ON),
        Activity("ann:gru", "model", x[:, :, ::-1], DT, SCHEDULED_ON),
        Activity("ann:lstm", "model", x, DT, SCHEDULED_ON),  # no hand path: as scheduled
        Activity("run2/rate", "model", x, DT, SCHEDULED_ON),  # another run's: as scheduled
        Activity("data", "data", x[:, 10:], DT, SCHEDULED_ON - 10, start=10),
    ]
    aligned = movement_aligned(acts, hands, go, fraction=0.2, body=True)
    by = {a.name: a for a in aligned}
    shift = onsets_of(by["rate"]) - SCHEDULED_ON
    np.testing.assert_array_equal(shift - shift[0], DELAYS - DELAYS[0])
    assert shift.min() >= 0 and np.ptp(shift) == np.ptp(DELAYS)
    np.testing.assert_array_equal(onsets_of(by["rate:L2/3"]), onsets_of(by["rate"]))  # a layer moves with its model
    assert np.ptp(onsets_of(by["ann:gru"])) == 0  # its own hand, which moves on time
    assert [alignment_of(by[n]) for n in by] == [MEASURED, MEASURED, MEASURED, SCHEDULED, SCHEDULED, RECORDED]
    assert isinstance(by["rate"], AlignedActivity) and by["rate"].move_on == SCHEDULED_ON

    # the window moves with each condition's onset: exactly jPCA of the rates cut around the true onsets
    row, res = jpca_row(by["rate"])
    on = onsets_of(by["rate"])
    cut = np.stack([x[c, o - 5 : o + 16] for c, o in enumerate(on)])
    expected = analysis.jpca(cut, dt=DT, n_pcs=6)  # soft normalisation over the aligned span
    before, after = int(on.min()), int((x.shape[1] - on).min())
    span = np.stack([x[c, o - before : o + after] for c, o in enumerate(on)])
    exact = analysis.jpca(span, dt=DT, n_pcs=6, window=(before - 5, before + 16))
    assert row["ratio"] == pytest.approx(exact.ratio, abs=1e-12)
    assert expected.ratio == pytest.approx(exact.ratio, abs=0.05)
    assert row["alignment"] == MEASURED
    assert row["onset_shift_ms"] == pytest.approx(np.mean(on - SCHEDULED_ON) * DT * 1e3)
    # ... which is not what the scheduled onset gives: aligned there, the late conditions are still at rest
    scheduled, _ = jpca_row(Activity("rate", "model", x, DT, SCHEDULED_ON))
    assert scheduled["alignment"] == SCHEDULED and scheduled["onset_shift_ms"] == 0.0
    assert abs(row["ratio"] - scheduled["ratio"]) > 0.02

    # without a body nothing is aligned; the cache key tells the alignments apart
    assert movement_aligned(acts, hands, go, body=False) == acts
    settings = BatterySettings(4, 0, 0)
    assert battery_cache.battery_key(aligned, settings, None, 1) != battery_cache.battery_key(acts, settings, None, 1)
    other_fraction = movement_aligned(acts, hands, go, fraction=0.5, body=True)
    assert battery_cache.battery_key(other_fraction, settings, None, 1) != battery_cache.battery_key(
        aligned, settings, None, 1
    )


def test_soft_normalisation_is_for_rates_in_spikes_per_second_only():
    x = late_mover()
    hidden = np.tanh((x - 20) / 5)
    row, _ = jpca_row(Activity("ann:gru", "model", hidden, DT, SCHEDULED_ON))
    plain = analysis.jpca(hidden, dt=DT, n_pcs=6, soft_normalize=False, window=(SCHEDULED_ON - 5, SCHEDULED_ON + 16))
    soft = analysis.jpca(hidden, dt=DT, n_pcs=6, window=(SCHEDULED_ON - 5, SCHEDULED_ON + 16))
    assert row["ratio"] == pytest.approx(plain.ratio, abs=1e-12)
    assert plain.ratio != pytest.approx(soft.ratio, abs=1e-6)
    rates, _ = jpca_row(Activity("rate", "model", x, DT, SCHEDULED_ON))
    expected = analysis.jpca(x, dt=DT, n_pcs=6, window=(SCHEDULED_ON - 5, SCHEDULED_ON + 16))
    assert rates["ratio"] == pytest.approx(expected.ratio, abs=1e-12)


# --- recorded in the run file and said in words --------------------------------------------------------


def test_the_run_file_and_the_words_say_the_window_and_the_alignment(run_file):
    x = late_mover()
    hands = {"rate": reach(SCHEDULED_ON + DELAYS)}
    acts = movement_aligned(
        [Activity("rate", "model", x, DT, SCHEDULED_ON), Activity("ann:gru", "model", x[:, :, ::-1], DT, SCHEDULED_ON)],
        hands,
        np.full(len(DELAYS), GO),
    )
    result = run_battery(acts, rng=np.random.default_rng(0), n_null=0)
    with store.open_for_update(run_file) as f:
        store.write_analysis(f, result.similarity, result.jpca, {}, result.notes, columns=battery.TABLE_COLUMNS)
    with store.open_run(run_file) as f:
        back = store.read_analysis(f)
        attrs = dict(f["analysis/jpca"].attrs)
    by = {r["activity"]: r for r in back.jpca}
    assert by["rate"]["alignment"] == MEASURED and by["ann:gru"]["alignment"] == SCHEDULED
    assert (by["rate"]["window_start_s"], by["rate"]["window_stop_s"]) == (-0.05, 0.15)
    assert "measured movement onset" in str(attrs["col_alignment"])
    text = report.format_report(result)
    assert "jPCA window -50 ms to +150 ms around measured movement onset" in text
    assert "around scheduled movement onset (the task's): ann:gru" in text
    assert "alignment" not in text.split("== per activity")[1].splitlines()[1]  # words, not a column of the table
