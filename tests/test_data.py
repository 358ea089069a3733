"""Recorded-data loaders: .npz, .mat (v5 and v7.3), NWB PSTHs, resampling, time and condition matching."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from cortexsim.data import (
    ConditionMatch,
    DataError,
    NeuralData,
    align_conditions,
    load_neural_data,
    match_time_base,
    resample,
)
from cortexsim.errors import ConfigError, CortexsimError

N_COND, N_TIME, N_UNITS = 3, 21, 5
TIME = np.round(-0.1 + 0.01 * np.arange(N_TIME), 10)  # s, 10 ms bins


@pytest.fixture
def rates() -> np.ndarray:
    """Random rates (Hz), shape (conditions, time, units)."""
    return np.random.default_rng(7).uniform(0.0, 40.0, size=(N_COND, N_TIME, N_UNITS))


def make_data(rates: np.ndarray, time: np.ndarray = TIME, **kwargs) -> NeuralData:
    n_cond, _, n_units = rates.shape
    labels = tuple(f"c{i}" for i in range(n_cond))
    return NeuralData(rates, time, labels, tuple(range(n_units)), **kwargs)


# --------------------------------------------------------------------------- NeuralData


def test_neural_data_is_validated_and_read_only(rates):
    data = make_data(rates, align_event="move_on", source="x.npz")
    assert data.dt == pytest.approx(0.01)
    assert (data.n_conditions, data.n_units) == (N_COND, N_UNITS)
    assert repr(data) == "<NeuralData: 5 units, 3 conditions, 21 time bins of 10 ms, aligned to move_on, from x.npz>"
    with pytest.raises(ValueError, match="read-only"):
        data.rates[0, 0, 0] = 1.0
    rates[0, 0, 0] = -99.0  # the caller's array is copied
    assert data.rates[0, 0, 0] != -99.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"time": TIME[::-1]}, "strictly increasing.*time\\[0\\] = 0.1 s"),
        ({"time": np.r_[TIME[:-1], 0.5]}, "steps must be uniform"),
        ({"time": TIME[:-1]}, "time has shape \\(20,\\) but the rates have 21 time bins"),
        ({"conditions": ("a", "a", "b")}, "conditions must be unique; repeated: a"),
        ({"unit_ids": (1, 2)}, "2 unit_ids for 5"),
    ],
)
def test_neural_data_rejects_bad_time_and_labels(rates, change, match):
    args = {"rates": rates, "time": TIME, "conditions": ("a", "b", "c"), "unit_ids": tuple(range(N_UNITS))}
    args.update(change)
    with pytest.raises(DataError, match=match):
        NeuralData(**args)


def test_neural_data_rejects_nan_and_names_where(rates):
    rates[1, 4, 2] = np.nan
    with pytest.raises(DataError, match="1 rates are NaN.*condition 'c1', time -0.06 s, unit 2"):
        make_data(rates)


# --------------------------------------------------------------------------- .npz


def test_npz_round_trip_default_layout(tmp_path, rates):
    path = tmp_path / "rec.npz"
    labels = np.array(["left", "up", "right"])
    np.savez(
        path, rates=rates.transpose(2, 1, 0), time=TIME, conditions=labels, unit_ids=np.array([11, 12, 13, 14, 15])
    )
    data = load_neural_data(path, align_event="move_on")
    np.testing.assert_array_equal(data.rates, rates)
    np.testing.assert_array_equal(data.time, TIME)
    assert data.conditions == ("left", "up", "right")
    assert data.unit_ids == (11, 12, 13, 14, 15)
    assert (data.align_event, data.source) == ("move_on", str(path))


@pytest.mark.parametrize(
    ("layout", "axes"),
    [
        ("conditions,time,neurons", (0, 1, 2)),
        ("time, units, conditions", (1, 2, 0)),
        (("units", "conditions", "time"), (2, 0, 1)),
    ],
)
def test_npz_layouts_are_transposed_to_conditions_time_units(tmp_path, rates, layout, axes):
    path = tmp_path / "rec.npz"
    np.savez(path, rates=rates.transpose(axes), time=TIME, align_event=np.array("go_cue"))
    data = load_neural_data(path, layout=layout)
    np.testing.assert_array_equal(data.rates, rates)
    assert data.conditions == ("0", "1", "2")  # default labels
    assert data.unit_ids == tuple(range(N_UNITS))
    assert data.align_event == "go_cue"  # stored in the file


def test_npz_missing_arrays_are_listed(tmp_path, rates):
    path = tmp_path / "rec.npz"
    np.savez(path, psth=rates, t=TIME)
    with pytest.raises(DataError, match="missing 'rates' and 'time' \\(pass variable=.*arrays found: psth, t"):
        load_neural_data(path)
    with pytest.raises(DataError, match="missing 'time';"):
        load_neural_data(path, variable="psth", layout="conditions,time,units")


def test_npz_time_length_mismatch_points_at_layout(tmp_path, rates):
    path = tmp_path / "rec.npz"
    np.savez(path, rates=rates.transpose(1, 2, 0), time=TIME)  # time, units, conditions; read as neurons,time,...
    with pytest.raises(DataError, match="'time' has 21 values.*has 5 along its time axis.*check layout="):
        load_neural_data(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layout": "neurons,time"}, ConfigError, "name the three axes"),
        ({"layout": "neurons,time,trials"}, ConfigError, "name the three axes"),
    ],
)
def test_bad_layout(tmp_path, rates, kwargs, error, match):
    path = tmp_path / "rec.npz"
    np.savez(path, rates=rates, time=TIME)
    with pytest.raises(error, match=match):
        load_neural_data(path, **kwargs)


def test_npz_refuses_objects_and_non_archives(tmp_path, rates):
    objects = tmp_path / "objects.npz"
    np.savez(objects, rates=rates, time=TIME, conditions=np.array(["a", 1, None], dtype=object))
    with pytest.raises(DataError, match="not plain numbers or text.*dtype=str"):
        load_neural_data(objects, layout="conditions,time,units")
    text = tmp_path / "text.npz"
    text.write_text("not numpy\n")
    with pytest.raises(DataError, match="not a .npz archive"):
        load_neural_data(text)


def test_unsupported_suffix_and_missing_file(tmp_path):
    csv = tmp_path / "rates.csv"
    csv.write_text("1,2,3\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'; supported: .npz .*.mat .*.nwb"):
        load_neural_data(csv)
    with pytest.raises(DataError, match="no such file"):
        load_neural_data(tmp_path / "absent.mat")


# --------------------------------------------------------------------------- .mat


@pytest.mark.parametrize("cell_labels", [False, True])
def test_mat_v5_round_trip(tmp_path, rates, cell_labels):
    path = tmp_path / "rec.mat"
    labels = ["left", "up", "right"]
    conditions = np.array(labels, dtype=object) if cell_labels else labels  # cell array or padded char matrix
    scipy.io.savemat(
        path,
        {"psth": rates.transpose(2, 1, 0), "time": TIME, "conditions": conditions, "unit_ids": np.arange(1.0, 6.0)},
    )
    data = load_neural_data(path, variable="psth", align_event="move_on")
    np.testing.assert_allclose(data.rates, rates)
    np.testing.assert_allclose(data.time, TIME)
    assert data.conditions == ("left", "up", "right")
    assert data.unit_ids == (1, 2, 3, 4, 5)


def write_mat73(path: Path, variables: dict) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 after a 512-byte header, arrays transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")

        def char(group, name, text):
            ds = group.create_dataset(name, data=np.array([[ord(c)] for c in text], dtype=np.uint16))
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            return ds

        for name, value in variables.items():
            if isinstance(value, str):
                char(f, name, value)
            elif isinstance(value, list):  # a 1 × n cell array of strings
                cells = [char(refs, f"{name}_{i}", text).ref for i, text in enumerate(value)]
                ds = f.create_dataset(name, data=np.array(cells, dtype=h5py.ref_dtype).reshape(-1, 1))
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                ds = f.create_dataset(name, data=np.asarray(value, dtype=float).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, written by the cortexsim tests".ljust(128))


def test_mat_v73_hdf5_round_trip(tmp_path, rates):
    path = tmp_path / "rec73.mat"
    write_mat73(
        path,
        {
            "rates": rates.transpose(2, 1, 0),  # MATLAB's neurons × time × conditions
            "time": TIME[np.newaxis, :],  # a 1 × T row vector
            "conditions": ["left", "up", "right"],
            "align_event": "move_on",
        },
    )
    data = load_neural_data(path)
    np.testing.assert_array_equal(data.rates, rates)
    np.testing.assert_array_equal(data.time, TIME)
    assert data.conditions == ("left", "up", "right")
    assert data.align_event == "move_on"


def test_mat_garbage_is_refused(tmp_path):
    path = tmp_path / "bad.mat"
    path.write_bytes(b"definitely not a MATLAB file" * 10)
    with pytest.raises(DataError, match="not a MATLAB file cortexsim can read"):
        load_neural_data(path)


# --------------------------------------------------------------------------- NWB

BIN, WINDOW = 0.02, (-0.1, 0.1)  # 10 bins; bin j is centred at -0.09 + 0.02 j s
# Spikes per trial as bin indices (repeats = several spikes in a bin): unit → condition → trials.
PATTERN = {
    0: {"left": [[2], [2]], "right": [[], []]},
    1: {"left": [[5, 5], []], "right": [[0, 9], [0, 9]]},
    2: {"left": [list(range(10))] * 2, "right": [list(range(10))] * 2},
}


def expected_psth() -> np.ndarray:
    """The PSTHs (Hz) of PATTERN worked out by hand: (conditions left/right, 10 bins, 3 units)."""
    out = np.zeros((2, 10, 3))
    out[0, 2, 0] = 50.0  # one spike in a 20 ms bin on every left trial
    out[0, 5, 1] = 50.0  # two spikes on one of two trials
    out[1, [0, 9], 1] = 50.0
    out[:, :, 2] = 50.0
    return out


@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory) -> Path:
    """Two left and two right trials (plus one with no movement) 2 s apart; spikes placed at bin centres."""
    pynwb = pytest.importorskip("pynwb")
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    nwb = pynwb.NWBFile(session_description="synthetic", identifier="cortexsim-test", session_start_time=start)
    nwb.add_trial_column(name="condition", description="reach direction")
    nwb.add_trial_column(name="move_on", description="movement onset (s)")
    nwb.add_trial_column(name="target", description="target index")
    events = {"left": [1.0, 5.0], "right": [3.0, 7.0]}
    for label, target in (("left", 10), ("right", 2)):
        for t in events[label]:
            nwb.add_trial(start_time=t - 0.5, stop_time=t + 0.5, condition=label, move_on=t, target=target)
    nwb.add_trial(start_time=8.5, stop_time=9.5, condition="left", move_on=np.nan, target=10)  # skipped
    for unit in sorted(PATTERN):
        spikes = [9.0 + 0.01 * unit]  # during the skipped trial: never counted
        for label, trials in PATTERN[unit].items():
            for t, bins in zip(events[label], trials):
                spikes += [t + WINDOW[0] + BIN * (j + 0.5) for j in bins]
                spikes.append(t + 0.3)  # outside the window
        nwb.add_unit(spike_times=sorted(spikes))
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_nwb_psth_equals_hand_counts(nwb_file):
    data = load_neural_data(nwb_file, align_event="move_on", bin_size=BIN, window=WINDOW, smooth_sd=0)
    assert data.conditions == ("left", "right")
    assert data.unit_ids == (0, 1, 2)
    assert data.n_trials == (2, 2)  # the NaN-onset trial is skipped
    assert data.align_event == "move_on"
    np.testing.assert_allclose(data.time, -0.09 + BIN * np.arange(10), atol=1e-12)
    np.testing.assert_allclose(data.rates, expected_psth(), atol=1e-9)


def test_nwb_numeric_conditions_sort_numerically_and_smoothing_keeps_constants(nwb_file):
    data = load_neural_data(nwb_file, align_event="move_on", bin_size=BIN, window=WINDOW, condition_column="target")
    assert data.conditions == ("2", "10")  # numeric order, not text order
    np.testing.assert_allclose(data.rates[:, :, 2], 50.0)  # a flat PSTH stays flat under smoothing
    peak = data.rates[1, :, 0]  # unit 0 on left (target 10) trials: 50 Hz in bin 2 before smoothing
    assert np.argmax(peak) == 2 and 0.0 < peak[2] < 50.0 and peak[1] == pytest.approx(peak[3])  # spread symmetrically


def test_nwb_all_trials_as_one_condition(nwb_file):
    data = load_neural_data(
        nwb_file, align_event="move_on", bin_size=BIN, window=WINDOW, smooth_sd=0, condition_column=None
    )
    assert data.conditions == ("all",) and data.n_trials == (4,)
    np.testing.assert_allclose(data.rates[0], expected_psth().mean(axis=0), atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"align_event": "go_cue_time"},
            DataError,
            "no column 'go_cue_time'.*available: start_time, stop_time, condition, move_on",
        ),
        ({}, ConfigError, "pass align_event=.*available: start_time"),
        ({"align_event": "move_on", "condition_column": "dir"}, DataError, "no column 'dir'.*condition_column=None"),
        ({"align_event": "move_on", "window": (-0.1, 0.15), "bin_size": 0.02}, ConfigError, "whole number"),
        ({"align_event": "move_on", "bin_size": 0}, ConfigError, "bin_size=0"),
        ({"align_event": "move_on", "smooth_sd": -1.0}, ConfigError, "smooth_sd=-1.0"),
    ],
)
def test_nwb_bad_arguments(nwb_file, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_neural_data(nwb_file, **kwargs)


def test_nwb_without_pynwb_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "x.nwb"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pynwb", None)  # makes `import pynwb` fail
    with pytest.raises(CortexsimError, match='pip install "cortexsim\\[nwb\\]"'):
        load_neural_data(path, align_event="move_on")


def test_foreign_hdf5_is_not_an_nwb_file(tmp_path):
    pytest.importorskip("pynwb")
    path = tmp_path / "foreign.nwb"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DataError, match="not a readable NWB file"):
        load_neural_data(path, align_event="move_on")


# --------------------------------------------------------------------------- resampling and matching


def linear_data(time: np.ndarray) -> NeuralData:
    """Rates a + b t with a different a, b per condition and unit."""
    a = np.arange(N_COND * N_UNITS, dtype=float).reshape(N_COND, 1, N_UNITS) + 5.0
    b = np.linspace(-30.0, 30.0, N_COND * N_UNITS).reshape(N_COND, 1, N_UNITS)
    return make_data(a + b * time[np.newaxis, :, np.newaxis], time)


@pytest.mark.parametrize("new", [np.linspace(-0.1, 0.1, 81), np.linspace(-0.0925, 0.0875, 10)])
def test_resample_reproduces_a_linear_function_exactly(new):
    data = linear_data(TIME)
    out = resample(data, new)
    np.testing.assert_allclose(out.rates, linear_data(new).rates, rtol=0, atol=1e-10)
    assert out.time.shape == new.shape and out.conditions == data.conditions


def test_resample_refuses_to_extrapolate(rates):
    data = make_data(rates, source="rec.npz")
    with pytest.raises(
        DataError, match=r"new time base \(-0.200 to \+0.100 s in 5 ms steps\).*data \(-0.100 to \+0.100 s in 10 ms"
    ):
        resample(data, np.linspace(-0.2, 0.1, 61))


def test_match_time_base_slices_when_steps_agree(rates):
    data = make_data(rates)
    model_time = np.round(-0.05 + 0.01 * np.arange(40), 10)  # -0.05 .. 0.34 s
    match = match_time_base(data, model_time)
    assert not match.resampled
    np.testing.assert_array_equal(match.model_index, np.arange(16))  # -0.05 .. 0.10 s
    np.testing.assert_array_equal(match.data.rates, rates[:, 5:])
    np.testing.assert_array_equal(match.data.time, model_time[match.model_index])
    assert str(match) == "time bases agree (10 ms steps); compared over -0.050 to +0.100 s (16 steps)"


@pytest.mark.parametrize("model_time", [np.arange(-0.3, 0.3, 0.004), -0.095 + 0.01 * np.arange(30)])
def test_match_time_base_resamples_other_steps_and_phases(model_time):
    data = linear_data(TIME)
    match = match_time_base(data, model_time)
    assert match.resampled and "data resampled from 10 ms bins" in match.message
    np.testing.assert_allclose(match.data.time, model_time[match.model_index])
    np.testing.assert_allclose(match.data.rates, linear_data(match.data.time).rates, atol=1e-10)
    assert match.data.time[0] >= -0.1 - 1e-9 and match.data.time[-1] <= 0.1 + 1e-9


def test_match_time_base_refuses_disjoint_windows(rates):
    data = make_data(rates, align_event="move_on")
    with pytest.raises(DataError, match="do not overlap.*-0.100 to \\+0.100 s.*\\+0.500 to \\+1.490 s.*'move_on'"):
        match_time_base(data, 0.5 + 0.01 * np.arange(100))


# --------------------------------------------------------------------------- conditions


def test_align_conditions_counts_differ_falls_back_to_condition_free(rates):
    match = align_conditions(make_data(rates), 8)
    assert isinstance(match, ConditionMatch) and match.condition_free and match.data is None
    assert str(match) == (
        "condition counts differ (data 3, model 8): only condition-free measures (dimensionality, jPCA) are compared"
    )


def test_align_conditions_pairs_and_reorders(rates):
    data = make_data(rates)  # conditions c0, c1, c2
    same = align_conditions(data, 3)
    assert same.data is data and not same.condition_free
    reordered = align_conditions(data, ["c2", "c0", "c1"])
    assert reordered.data.conditions == ("c2", "c0", "c1")
    np.testing.assert_array_equal(reordered.data.rates, rates[[2, 0, 1]])
    other = align_conditions(data, ["up", "down", "left"])
    assert other.data is data and "paired by position" in other.message
    with pytest.raises(ConfigError):
        align_conditions(data, 0)
