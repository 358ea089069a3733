"""Known answers of the spike decoding (cortexsim.spiking.decode) on hand-made spike trains.

No Brian2 here: ``Spikes`` objects are built directly, and every expected value is worked
out by hand in the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from cortexsim.spiking.decode import (
    MODULATED_HZ,
    cv_isi,
    fidelity_table,
    pearson_per_unit,
    pool_rates,
    readout,
    refit_readout,
)
from cortexsim.spiking.network import Spikes

NO_FILTER = 1e-9
"""A filter time constant so short that exp(-bin / tau) is exactly 0: the filter is the identity."""


def spikes_of(times, ids, n_neurons: int, duration: float) -> Spikes:
    times, ids = np.asarray(times, float), np.asarray(ids, np.int64)
    order = np.argsort(times, kind="stable")
    return Spikes(times=times[order], ids=ids[order], n_neurons=n_neurons, duration=duration, wall_seconds=0.0)


# ---------------------------------------------------------------------------------------- pool_rates


def test_pool_rates_are_counts_per_pool_over_k_bin_width():
    # 2 trials x 3 steps of 1 ms (one 1 ms bin per step), k = 2 neurons per pool, 2 pools.
    # Bin 0: neurons 0 and 1 (pool 0) fire -> 2 / (2 * 1 ms) = 1000 Hz per neuron.
    # Bin 4 (trial 1, step 1): neuron 3 (pool 1) fires -> 1 / (2 * 1 ms) = 500 Hz.
    s = spikes_of([0.5e-3, 0.4e-3, 4.5e-3], [0, 1, 3], n_neurons=4, duration=6e-3)
    r = pool_rates(s, k=2, n_units=2, n_trials=2, n_steps=3, task_dt=1e-3, tau=NO_FILTER)
    expected = np.zeros((2, 3, 2))
    expected[0, 0, 0] = 1000.0
    expected[1, 1, 1] = 500.0
    np.testing.assert_array_equal(r, expected)


def test_pool_rates_sample_the_last_bin_of_each_step_with_whole_bins_per_step():
    # task dt 2.5 ms with bin_dt <= 1 ms -> 3 bins of 2.5/3 ms per step (not 1 ms bins).
    # Unfiltered, step t shows only the count of its last bin (3t + 2):
    #   bin 2 (step 0, last bin), pool 0  -> shows at step 0: 1 / (1 * 2.5/3 ms) = 1200 Hz
    #   bin 3 (step 1, first bin), pool 1 -> shows nowhere
    #   bin 5 (step 1, last bin), pool 1  -> shows at step 1: 1200 Hz
    w = 2.5e-3 / 3
    s = spikes_of([2.5 * w, 3.5 * w, 5.5 * w], [0, 1, 1], n_neurons=2, duration=5e-3)
    r = pool_rates(s, k=1, n_units=2, n_trials=1, n_steps=2, task_dt=2.5e-3, tau=NO_FILTER)
    np.testing.assert_allclose(r, [[[1200.0, 0.0], [0.0, 1200.0]]], rtol=1e-12)


def test_pool_rates_filter_is_a_causal_unit_area_exponential_that_runs_across_trials():
    # One spike of one neuron (k = 1) in bin 3 of 2 trials x 5 steps of 1 ms, tau = 20 ms:
    # rate[j] = (1 - d) d^(j - 3) / 1 ms for j >= 3, 0 before, with d = exp(-1 ms / 20 ms).
    # The filter runs over the whole run, so trial 1 still sees the tail of trial 0's spike.
    s = spikes_of([3.5e-3], [0], n_neurons=1, duration=10e-3)
    r = pool_rates(s, k=1, n_units=1, n_trials=2, n_steps=5, task_dt=1e-3, tau=0.020)
    d = np.exp(-0.05)
    j = np.arange(10)
    expected = np.where(j >= 3, (1 - d) * d ** np.maximum(j - 3, 0) / 1e-3, 0.0)
    np.testing.assert_allclose(r.reshape(-1), expected, rtol=1e-12)
    assert r[1, 0, 0] > 0  # the spike of trial 0 leaks into trial 1


def test_pool_rates_filter_has_unit_area():
    # A single spike integrates to 1 / k spikes per neuron once the filter has decayed (tau = 2 ms, 200 ms run).
    s = spikes_of([1.5e-3], [1], n_neurons=4, duration=0.2)
    r = pool_rates(s, k=4, n_units=1, n_trials=1, n_steps=200, task_dt=1e-3, tau=0.002)
    assert r.sum() * 1e-3 == pytest.approx(0.25, rel=1e-9)


def test_pool_rates_of_a_steady_train_reach_its_rate():
    # Each of k = 2 neurons fires once per 1 ms bin: 1000 Hz per neuron.  After 100 tau the filter
    # output equals the rate to 1 - d^n.
    n = 2000
    t = (np.arange(n) + 0.5) * 1e-3
    s = spikes_of(np.concatenate([t, t]), np.repeat([0, 1], n), n_neurons=2, duration=n * 1e-3)
    r = pool_rates(s, k=2, n_units=1, n_trials=1, n_steps=n, task_dt=1e-3, tau=0.020)
    assert r[0, -1, 0] == pytest.approx(1000.0, rel=1e-12)


def test_pool_rates_reject_spikes_of_another_duration():
    s = spikes_of([0.5e-3], [0], n_neurons=1, duration=7e-3)  # 6 steps of 1 ms were asked for
    with pytest.raises(ValueError, match="cover"):
        pool_rates(s, k=1, n_units=1, n_trials=2, n_steps=3, task_dt=1e-3)
    ok = spikes_of([0.5e-3], [0], n_neurons=1, duration=6e-3 + 0.4e-3)  # within half a bin: accepted
    assert pool_rates(ok, k=1, n_units=1, n_trials=2, n_steps=3, task_dt=1e-3).shape == (2, 3, 1)


# ------------------------------------------------------------------------------ readout, refit_readout


def test_readout_is_w_times_the_readout_units_plus_b():
    rates = np.array([[[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 5.0, 2.0]]])  # (1 trial, 2 steps, 4 units)
    w = np.array([[1.0, 10.0], [-2.0, 0.5]])
    b = np.array([0.5, -1.0])
    out_idx = np.array([1, 3])
    # step 0: r[out] = (2, 4): (2 + 40 + 0.5, -4 + 2 - 1) = (42.5, -3)
    # step 1: r[out] = (-1, 2): (-1 + 20 + 0.5, 2 + 1 - 1) = (19.5, 2)
    np.testing.assert_allclose(readout(rates, w, b, out_idx), [[[42.5, -3.0], [19.5, 2.0]]])


def test_refit_readout_recovers_a_known_linear_map():
    rng = np.random.default_rng(7)
    rates = rng.normal(10.0, 3.0, size=(4, 30, 6))
    out_idx = np.array([0, 2, 5])
    w_true = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]])
    b_true = np.array([3.0, -2.0])
    targets = np.einsum("tsu,ou->tso", rates[..., out_idx], w_true) + b_true
    w, b = refit_readout(rates, targets, out_idx, ridge=0.0)
    assert w.shape == (2, 3) and b.shape == (2,)
    np.testing.assert_allclose(w, w_true, atol=1e-9)
    np.testing.assert_allclose(b, b_true, atol=1e-8)


def test_refit_readout_ridge_is_relative_to_the_rate_variance():
    # One readout unit x = 0, 1, 2, 3 and y = 2x + 1.  Centred Gram G = 2.25 + 0.25 + 0.25 + 2.25 = 5,
    # cross term 10; ridge 0.1 adds 0.1 * trace(G) / 1 = 0.5 -> w = 10 / 5.5 = 2 / 1.1,
    # b = mean y - w mean x = 4 - 1.5 w.  The same shrinkage whatever the scale of x.
    for scale in (1.0, 1000.0):
        x = scale * np.arange(4.0)[None, :, None]
        y = 2.0 * x / scale + 1.0
        w, b = refit_readout(x, y, np.array([0]), ridge=0.1)
        assert w[0, 0] * scale == pytest.approx(2.0 / 1.1, rel=1e-9)
        assert b[0] == pytest.approx(4.0 - 1.5 * 2.0 / 1.1, rel=1e-9)


# ---------------------------------------------------------------------------------- pearson_per_unit


def test_pearson_per_unit_known_values():
    a = np.array([1.0, 2.0, 3.0])
    unit_a = np.stack([a, a, np.full(3, 4.0), a], -1)[None]  # (1, 3, 4)
    # unit 0: b = 3a + 1 -> 1;  unit 1: b = -a -> -1;  unit 2: a constant -> NaN;
    # unit 3: b = 1, 3, 2: centred a = (-1, 0, 1), b = (-1, 1, 0): r = 1 / sqrt(2 * 2) = 0.5
    unit_b = np.stack([3 * a + 1, -a, a, np.array([1.0, 3.0, 2.0])], -1)[None]
    r = pearson_per_unit(unit_a, unit_b)
    np.testing.assert_allclose(r[[0, 1, 3]], [1.0, -1.0, 0.5])
    assert np.isnan(r[2])


# -------------------------------------------------------------------------------------------- cv_isi


def test_cv_isi_of_a_regular_train_is_zero():
    s = spikes_of(0.05 + 0.1 * np.arange(10), np.zeros(10), n_neurons=1, duration=1.0)
    assert cv_isi(s)[0] == pytest.approx(0.0, abs=1e-9)


def test_cv_isi_of_known_intervals_is_std_over_mean():
    # ISIs 10, 30, 20 ms: mean 20 ms, population SD 10 ms * sqrt(2/3) -> CV = sqrt(2/3) / 2
    s = spikes_of([0.1, 0.11, 0.14, 0.16], [0, 0, 0, 0], n_neurons=1, duration=1.0)
    assert cv_isi(s)[0] == pytest.approx(np.sqrt(2 / 3) / 2)


def test_cv_isi_per_neuron_from_interleaved_unsorted_spikes():
    # neuron 0: ISIs 100, 200 ms -> SD 50 / mean 150 = 1/3; neuron 1: regular 50 ms -> 0;
    # neuron 2: 2 spikes (< min_spikes = 3) -> NaN; neuron 3: silent -> NaN.
    times = [0.3, 0.05, 0.0, 0.1, 0.15, 0.5, 0.1, 0.2]
    ids = [0, 1, 0, 1, 1, 2, 0, 2]
    s = Spikes(times=np.array(times), ids=np.array(ids, np.int64), n_neurons=4, duration=1.0, wall_seconds=0.0)
    cv = cv_isi(s)
    assert cv.shape == (4,)
    assert cv[0] == pytest.approx(1 / 3)
    assert cv[1] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(cv[2]) and np.isnan(cv[3])
    assert np.isnan(cv_isi(s, min_spikes=4)[0])  # neuron 0 has only 3 spikes


# ------------------------------------------------------------------------------------ fidelity_table


def fidelity_inputs():
    """4 rate units in 2 populations, k = 2 (8 neurons), 2 conditions x 3 steps."""
    rate = np.zeros((2, 3, 4))
    rate[..., 0] = np.arange(6.0).reshape(2, 3) * 2  # 0..10, SD > 1: modulated
    rate[..., 1] = 5.0  # constant: not modulated
    rate[..., 2] = np.array([[1.0, 3.0, 1.0], [3.0, 1.0, 3.0]])  # SD exactly 1 Hz: modulated (>=)
    rate[..., 3] = np.array([[10.0, 10.5, 10.0], [10.5, 10.0, 10.5]])  # SD 0.25: not modulated
    spiking = np.zeros_like(rate)
    spiking[..., 0] = 2 * rate[..., 0]  # r = 1
    spiking[..., 1] = np.arange(6.0).reshape(2, 3)  # r NaN (rate constant), not modulated anyway
    spiking[..., 2] = 10.0 - rate[..., 2]  # r = -1
    spiking[..., 3] = 4.25  # r NaN (spiking constant)
    # Run of 1 s.  Population A (neurons 0-3): neuron 0 10 regular spikes (10 Hz, CV 0); neuron 1
    # ISIs 10, 30, 20 ms (4 Hz, CV sqrt(2/3)/2 = 0.408); neuron 2 silent; neuron 3 ISIs 100, 200 ms
    # (3 Hz, CV 1/3).  Population B (neurons 4-7): neuron 4 2 spikes (2 Hz, CV NaN); neurons 5, 7
    # silent; neuron 6 ISIs 10, 30, 20 ms (4 Hz, CV 0.408).
    times = [*(0.05 + 0.1 * np.arange(10)), 0.1, 0.11, 0.14, 0.16, 0.0, 0.1, 0.3, 0.3, 0.7, 0.5, 0.51, 0.54, 0.56]
    ids = [*([0] * 10), 1, 1, 1, 1, 3, 3, 3, 4, 4, 6, 6, 6, 6]
    spikes = spikes_of(times, ids, n_neurons=8, duration=1.0)
    populations = (("A", "IT", "E", 0, 2), ("B", "PV", "I", 2, 4))
    return spiking, rate, spikes, populations


def test_fidelity_table_known_rows():
    spiking, rate, spikes, populations = fidelity_inputs()
    rows, r, modulated = fidelity_table(spiking, rate, spikes, 2, populations)
    np.testing.assert_array_equal(modulated, [True, False, True, False])
    assert r[0] == pytest.approx(1.0) and r[2] == pytest.approx(-1.0)
    assert np.isnan(r[1]) and np.isnan(r[3])
    a, b = rows
    assert a["population"] == "A" and b["population"] == "B"
    # A: only unit 0 modulated (r = 1); rate ratio mean(10, 2.5) / mean(5, 5) = 6.25 / 5;
    # neurons 0-3 fire 10, 4, 0, 3 Hz -> 4.25 Hz; CVs 0, 0.408, NaN, 1/3 -> median 1/3
    assert a["n_modulated"] == 1
    assert a["psth_r_mean"] == pytest.approx(1.0)
    assert a["rate_ratio"] == pytest.approx(1.25)
    assert a["rate_hz"] == pytest.approx(4.25)
    assert a["cv_isi"] == pytest.approx(1 / 3)
    # B: only unit 2 modulated (r = -1); rate ratio mean(8, 4.25) / mean(2, 10.25) = 1;
    # neurons 4-7 fire 2, 0, 4, 0 Hz -> 1.5 Hz; CVs NaN, NaN, 0.408, NaN -> median 0.408
    assert b["n_modulated"] == 1
    assert b["psth_r_mean"] == pytest.approx(-1.0)
    assert b["rate_ratio"] == pytest.approx(1.0)
    assert b["rate_hz"] == pytest.approx(1.5)
    assert b["cv_isi"] == pytest.approx(np.sqrt(2 / 3) / 2)


def test_fidelity_table_cv_is_nan_for_a_population_without_regular_firers():
    spiking, rate, _, populations = fidelity_inputs()
    spikes = spikes_of([0.1, 0.2, 0.5], [0, 0, 5], n_neurons=8, duration=1.0)  # no neuron has 3 spikes
    rows, _, _ = fidelity_table(spiking, rate, spikes, 2, populations)
    assert np.isnan(rows[0]["cv_isi"]) and np.isnan(rows[1]["cv_isi"])
    assert rows[0]["rate_hz"] == pytest.approx(0.5) and rows[1]["rate_hz"] == pytest.approx(0.25)


def test_fidelity_table_without_modulated_units_reports_nan_r():
    spiking, rate, spikes, populations = fidelity_inputs()
    flat = np.full_like(rate, 7.0) + np.linspace(0, 0.9 * MODULATED_HZ, 3)[None, :, None]  # SD < 1 Hz
    rows, _, modulated = fidelity_table(spiking, flat, spikes, 2, populations)
    assert not modulated.any()
    assert all(row["n_modulated"] == 0 and np.isnan(row["psth_r_mean"]) for row in rows)
