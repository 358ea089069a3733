"""Scoring against recorded trials (issue 16): NLB's measures by hand, and the protocol on synthetic NWB data."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.special import gammaln

from cortexsim import score
from cortexsim.cli import main
from cortexsim.errors import ConfigError

# --------------------------------------------------------------------------- the measures, by hand


def test_bits_per_spike_by_hand():
    """One neuron, two trials of two bins: counts [[1, 0], [2, 1]] (mean 1 per bin), rates [[1, .5], [2, .5]]."""
    spikes = np.array([[[1.0], [0.0]], [[2.0], [1.0]]])
    rates = np.array([[[1.0], [0.5]], [[2.0], [0.5]]])
    # NLL = sum r - n ln r + ln n!
    nll_model = (1 - 0 + 0) + (0.5 - 0 + 0) + (2 - 2 * math.log(2) + math.log(2)) + (0.5 - math.log(0.5) + 0)
    nll_null = 4 * 1.0 - 0 + (0 + 0 + math.log(2) + 0)  # null rate 1 everywhere: sum r = 4, ln 1 = 0, ln 2! = ln 2
    assert score.neg_log_likelihood(rates, spikes) == pytest.approx(nll_model, abs=1e-12)
    expected = (nll_null - nll_model) / 4 / math.log(2)
    assert score.bits_per_spike(rates, spikes) == pytest.approx(expected, abs=1e-12)
    # NLL_model = 1 + 0.5 + (2 - ln 2) + (0.5 + ln 2) = 4 and NLL_null = 4 + ln 2: one bit over 4 spikes
    assert expected == pytest.approx(0.25, abs=1e-12)
    assert score.bits_per_spike(np.ones_like(spikes), spikes) == pytest.approx(0.0, abs=1e-12)  # the null scores 0


def test_nll_replaces_zero_rates_and_refuses_negative_ones():
    spikes = np.array([[[0.0, 1.0]]])
    rates = np.array([[[0.0, 0.0]]])
    assert score.neg_log_likelihood(rates, spikes) == pytest.approx(2e-9 - math.log(1e-9), rel=1e-12)
    with pytest.raises(ValueError, match=">= 0"):
        score.neg_log_likelihood(-rates - 1, spikes)
    nan = np.array([[[np.nan, 1.0]]])
    assert score.neg_log_likelihood(np.ones((1, 1, 2)), nan) == pytest.approx(1.0 + gammaln(2.0))


def test_r2_score_by_hand():
    y = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    # column 0: mean 2, ss_tot 2; prediction [1, 2, 4] -> ss_res 1 -> 0.5; column 1 constant, predicted exactly -> 1
    assert score.r2_score(y, np.array([[1.0, 2.0], [2.0, 2.0], [4.0, 2.0]])) == pytest.approx(0.75)
    assert score.r2_score(y, np.array([[2.0, 2.0], [2.0, 2.0], [2.0, 2.1]])) == pytest.approx(0.0)  # mean; wrong const


def test_ridge_is_least_squares_at_zero_penalty_and_shrinks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 3.0
    w, b = score.ridge_fit(x, y, 0.0)
    np.testing.assert_allclose(w.ravel(), [1.0, -2.0, 0.5], atol=1e-10)
    assert b[0] == pytest.approx(3.0)
    w_big, _ = score.ridge_fit(x, y, 1e6)
    assert np.abs(w_big).max() < 0.01
    assert [f.size for f in score._folds(12, 5)] == [3, 3, 2, 2, 2]  # scikit-learn KFold sizes


def test_psth_r2_and_decoder():
    psth = np.array([[[1.0], [2.0], [3.0]], [[3.0], [2.0], [1.0]]])  # 2 conditions x 3 bins x 1 neuron
    trials = np.array([[[0.0], [2.0], [4.0]], [[3.0], [2.0], [1.0]], [[2.0], [2.0], [2.0]]])
    # condition 0 <- trials 0 and 2: mean [1, 2, 3] (exact); condition 1 <- trial 1 (exact)
    assert score.eval_psth(psth, trials, [np.array([0, 2]), np.array([1])]) == pytest.approx(1.0)
    # condition 0 <- trial 2 alone, [2, 2, 2]: stacked truth [1, 2, 3, 3, 2, 1] (mean 2, ss_tot 4), ss_res 2 -> 0.5
    assert score.eval_psth(psth, trials, [np.array([2]), np.array([1])]) == pytest.approx(0.5)
    assert score.eval_psth(psth, trials, [np.array([2]), np.array([], int)]) == pytest.approx(0.0)  # the mean
    rng = np.random.default_rng(1)
    rates = rng.random((200, 4))
    vel = rates @ rng.standard_normal((4, 2))
    assert score.fit_and_eval_decoder(rates[:150], vel[:150], rates[150:], vel[150:]) > 0.99


def test_spec_refuses_bad_values():
    for kwargs, match in [
        ({"bin_size": 0}, "--bin-size"),
        ({"window": (0.2, 0.1)}, "--window"),
        ({"window": (0.0, 0.0123)}, "whole number"),
        ({"test_fraction": 1.5}, "--test-fraction"),
        ({"test_fraction": -0.1}, "--test-fraction"),
        ({"model": "ann"}, "--model"),
    ]:
        with pytest.raises(ConfigError, match=match):
            score.ScoreSpec(**kwargs)


# --------------------------------------------------------------------------- synthetic recorded data


def _model(smoke_run: Path) -> dict:
    with h5py.File(smoke_run / "run.h5") as f:
        return {
            "rates": f["rate/rates"][()],
            "angle": f["task/params/angle"][()],
            "move_on": float(f["task/params/move_on"][0]),
            "dt": float(f["task"].attrs["dt"]),
        }


def write_synthetic(path: Path, smoke_run: Path, n_per_cond: int = 16, n_neurons: int = 12, seed: int = 0) -> dict:
    """Recorded trials whose neurons fire Poisson spikes at a known linear map of the run's rates.

    Returns the truth: every trial's true rate (spikes per 5 ms bin, on the default score window).
    """
    pynwb = pytest.importorskip("pynwb")
    rng = np.random.default_rng(seed)
    m = _model(smoke_run)
    n_cond, steps, n_units = m["rates"].shape
    weights = rng.standard_normal((n_units, n_neurons)) / np.sqrt(n_units)
    drive = m["rates"] @ weights  # (cond, steps, neurons)
    hz = 5 + 20 * (drive - drive.mean((0, 1))) / drive.std((0, 1)).clip(1e-9)
    hz = np.clip(hz, 0.5, None)  # rates in Hz, model step by step
    duration = steps * m["dt"]
    conditions = np.repeat(np.arange(n_cond), n_per_cond)
    rng.shuffle(conditions)
    starts = np.arange(conditions.size) * (duration + 0.5)
    fine = 0.001  # spikes drawn on a 1 ms grid within each model step
    per_step = int(round(m["dt"] / fine))
    spikes = [[] for _ in range(n_neurons)]
    vel_t, vel = [], []
    read = np.array([[0.02, -0.01]] * n_neurons) * rng.standard_normal((n_neurons, 2))
    for start, c in zip(starts, conditions):
        lam = np.repeat(hz[c], per_step, axis=0) * fine  # (ms, neurons)
        counts = rng.poisson(lam)
        for u in range(n_neurons):
            t = np.flatnonzero(counts[:, u])
            spikes[u].extend((start + (t + 0.5) * fine).tolist())
        vel_t.append(start + (np.arange(steps) + 0.5) * m["dt"])
        vel.append(hz[c] @ read)
    nwb = pynwb.NWBFile(
        session_description="synthetic test data",
        identifier="synthetic",
        session_start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    nwb.add_trial_column("condition", "condition")
    nwb.add_trial_column("target_angle", "rad")
    nwb.add_trial_column("move_onset_time", "s")
    for start, c in zip(starts, conditions):
        nwb.add_trial(
            start_time=start,
            stop_time=start + duration,
            condition=f"c{c}",
            target_angle=float(m["angle"][c]) + 0.01,
            move_onset_time=start + m["move_on"],
        )
    nwb.add_unit_column("heldout", "held out")
    for u in range(n_neurons):
        nwb.add_unit(spike_times=np.array(spikes[u]), heldout=u % 3 == 0)
    module = nwb.create_processing_module("behavior", "hand")
    module.add(
        pynwb.TimeSeries(name="hand_velocity", data=np.concatenate(vel), timestamps=np.concatenate(vel_t), unit="m/s")
    )
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    spec = score.ScoreSpec()
    centres = spec.window[0] + spec.bin_size * (np.arange(spec.n_bins) + 0.5)
    step = np.floor((centres + m["move_on"]) / m["dt"] + 1e-9).astype(int)
    held = np.arange(n_neurons) % 3 == 0
    return {"true": hz[conditions][:, step] * spec.bin_size, "conditions": conditions, "heldout": held}


@pytest.fixture(scope="module")
def synthetic(smoke_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("score") / "synthetic.nwb"
    truth = write_synthetic(path, smoke_run)
    return path, truth


def test_scores_on_synthetic_data_approach_the_true_rates(synthetic, smoke_run):
    path, truth = synthetic
    result = score.score_run(smoke_run / "run.h5", path)
    test = np.array(result.test_trials)
    assert len(test) == round(0.25 * 128) and len(result.train_trials) == 128 - 32
    counts = score.bin_trials(score.load_nwb_trials(path), _events(path)[test], result.spec)
    held = truth["heldout"]
    oracle = score.bits_per_spike(truth["true"][test][:, :, held], counts[:, :, held])
    assert oracle > 0.05
    # the map recovers the truth from the model's rates up to the noise of 96 training trials
    assert oracle - 0.05 < result.co_bps <= oracle + 0.02, (result.co_bps, oracle)
    assert result.psth_r2 > 0.5 and result.vel_r2 > 0.8
    assert result.mapping == {f"c{c}": c for c in range(8)}  # by nearest target angle
    assert result.n_scored == 4 and result.n_neurons == 12
    assert any("96 training and 32 test trials (seed 1" in n for n in result.notes)
    again = score.score_run(smoke_run / "run.h5", path)
    assert again == result  # same run, same data, same seed: the same scores
    other = score.score_run(smoke_run / "run.h5", path, score.ScoreSpec(seed=2))
    assert other.test_trials != result.test_trials


def _events(path: Path) -> np.ndarray:
    return np.asarray(score.load_nwb_trials(path).columns["move_onset_time"], float)


def test_a_model_that_ignores_conditions_scores_about_zero(synthetic, smoke_run, tmp_path):
    """A mapping table sending every recorded condition to model condition 0: no better than the mean rate."""
    path, _ = synthetic
    table = tmp_path / "map.csv"
    table.write_text("recorded,model\n" + "".join(f"c{c},0\n" for c in range(8)))
    result = score.score_run(smoke_run / "run.h5", path, score.ScoreSpec(mapping=str(table)))
    right = score.score_run(smoke_run / "run.h5", path)
    assert result.co_bps < right.co_bps - 0.05 and result.co_bps < 0.05


def test_score_command_prints_and_writes_json(synthetic, smoke_run, tmp_path, capsys):
    path, _ = synthetic
    out = tmp_path / "scores.json"
    assert main(["score", str(smoke_run / "run.h5"), "--data", str(path), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "co_bps" in printed and "psth_r2" in printed and "vel_r2" in printed
    saved = json.loads(out.read_text())
    assert list(saved)[:3] == ["co_bps", "psth_r2", "vel_r2"]
    assert saved["spec"]["bin_size"] == 0.005 and saved["spec"]["seed"] == 1
    assert main(["score", str(smoke_run / "run.h5"), "--data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["co_bps"] == saved["co_bps"]


def test_score_bad_input_is_one_line(synthetic, smoke_run, tmp_path, capsys):
    path, _ = synthetic
    run = str(smoke_run / "run.h5")
    for argv, needle in [
        (["score", run, "--data", str(tmp_path / "none.nwb")], "no such file"),
        (["score", run, "--data", str(path), "--test-fraction", "1.5"], "--test-fraction"),
        (["score", run, "--data", str(path), "--window", "-3", "0.4"], "outside the model"),
        (["score", run, "--data", str(path), "--align-event", "go"], "no column 'go'"),
        (["score", str(tmp_path / "none.h5"), "--data", str(path)], "no such file"),
        (["score", run, "--data", str(path), "--json", str(tmp_path / "x.txt")], ".json"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cortexsim: error: ") and needle in err[0], (argv, err)
