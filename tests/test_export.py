"""The run's spiking twin as NWB (issue 16): content checked against the run file, the ecosystem's tools, bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cortexsim import export, pipeline, store
from cortexsim.cli import main
from cortexsim.config import Config
from cortexsim.errors import ConfigError

pynwb = pytest.importorskip("pynwb")

FRACTION = 0.25


@pytest.fixture(scope="module")
def exported(smoke_run, tmp_path_factory) -> Path:
    """The smoke run exported with a quarter of its rate units held out (through the command line)."""
    out = tmp_path_factory.mktemp("nwb") / "smoke.nwb"
    assert main(["export", str(smoke_run / "run.h5"), "--nwb", str(out), "--heldout-fraction", str(FRACTION)]) == 0
    return out


def _run(smoke_run: Path) -> dict:
    """What the run file says, read with h5py as any user would."""
    with h5py.File(smoke_run / "run.h5") as f:
        pops = [
            {k: (v.decode() if isinstance(v, bytes) else v) for k, v in zip(row.dtype.names, row.tolist())}
            for row in f["circuit/populations"][()]
        ]
        spikes = {f[f"spikes/{g}"].attrs["population"]: f[f"spikes/{g}/node_ids"][()] for g in f["spikes"]}
        times = {f[f"spikes/{g}"].attrs["population"]: f[f"spikes/{g}/timestamps"][()] for g in f["spikes"]}
        return {
            "k": int(f["spiking"].attrs["k"]),
            "pops": pops,
            "ids": spikes,
            "times": times,
            "condition": f["spiking/trials/condition"][()],
            "start": f["spiking/trials/start"][()],
            "steps": f["spiking/outputs"].shape[2],
            "outputs": f["spiking/outputs"][()],
            "dt": float(f["task"].attrs["dt"]),
            "params": {k: ds[()] for k, ds in f["task/params"].items()},
            "rates": f["rate/rates"][()],
            "seed": int(f.attrs["seed"]),
            "n_reach": int(f["spiking"].attrs["n_reach_conditions"]),
        }


def test_units_hold_every_spike_with_its_labels(exported, smoke_run):
    run = _run(smoke_run)
    k = run["k"]
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
    n_units = sum(p["stop"] - p["start"] for p in run["pops"])
    assert len(units) == n_units * k
    assert list(units.index) == list(range(n_units * k))
    total = 0
    for p in run["pops"]:
        ids, times = run["ids"][p["name"]], run["times"][p["name"]]
        rows = units.loc[p["start"] * k : p["stop"] * k - 1]
        assert set(rows["population"]) == {p["name"]}
        assert set(rows["layer"]) == {p["layer"]} and set(rows["cell_class"]) == {p["cell_class"]}
        assert set(rows["subtype"]) == {p["subtype"]}
        assert list(rows["rate_unit"]) == [n // k for n in range(p["start"] * k, p["stop"] * k)]
        for local, (_, row) in enumerate(rows.iterrows()):
            mine = times[ids == local]
            assert row["spike_times"].size == mine.size, (p["name"], local)
            np.testing.assert_array_equal(row["spike_times"], mine)  # session time = the /spikes timestamps
        total += ids.size
    assert total == sum(s.size for s in units["spike_times"]) > 1000


def test_heldout_labels_whole_pools_seeded(exported, smoke_run):
    run = _run(smoke_run)
    k = run["k"]
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        units = io.read().units.to_dataframe()
    held = units["heldout"].to_numpy(bool).reshape(-1, k)
    assert (held == held[:, :1]).all(), "the K neurons of a pool are held out together"
    n_units = held.shape[0]
    assert held[:, 0].sum() == round(FRACTION * n_units) == 15
    expected = export.heldout_units(n_units, FRACTION, run["seed"])
    np.testing.assert_array_equal(held[:, 0], expected)
    other = export.heldout_units(n_units, FRACTION, run["seed"] + 1)
    assert not np.array_equal(other, expected)  # the seed decides


def test_trials_match_the_run_file(exported, smoke_run):
    run = _run(smoke_run)
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        trials = io.read().trials.to_dataframe()
    duration = run["steps"] * run["dt"]
    np.testing.assert_array_equal(trials["start_time"], run["start"])
    assert np.all(trials["stop_time"] < np.append(run["start"][1:], np.inf))  # back to back, not touching
    np.testing.assert_allclose(trials["stop_time"], run["start"] + duration, atol=1e-4)
    np.testing.assert_array_equal(trials["condition"], run["condition"])
    p, n_reach = run["params"], run["n_reach"]
    reach = run["condition"] < n_reach
    assert trials["catch"].to_numpy().tolist() == (~reach).tolist()
    cond = run["condition"][reach]
    np.testing.assert_allclose(trials["target_angle"][reach], p["angle"][cond])
    np.testing.assert_allclose(trials["go_cue_time"][reach], run["start"][reach] + p["go"][cond])
    np.testing.assert_allclose(trials["move_onset_time"][reach], run["start"][reach] + p["move_on"][cond])
    np.testing.assert_allclose(trials["target_on_time"], run["start"] + p["target_on"][0])
    assert trials["move_onset_time"][~reach].isna().all() and trials["go_cue_time"][~reach].isna().all()
    np.testing.assert_allclose(trials["target_angle"][~reach], p["angle"][0])  # catch toward target 0


def test_behaviour_rates_and_session_metadata(exported, smoke_run):
    run = _run(smoke_run)
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        nwb = io.read()
        hand = nwb.processing["behavior"]["Position"]["hand_position"]
        vel = nwb.processing["behavior"]["hand_velocity"]
        rates = nwb.processing["misc"]["rate_model_rates"]
        table = nwb.processing["misc"]["rate_model_units"].to_dataframe()
        flat = run["outputs"].reshape(-1, run["outputs"].shape[-1])
        np.testing.assert_array_equal(hand.data[:], flat)
        assert hand.rate == pytest.approx(1 / run["dt"]) and hand.unit == "meters"
        by_trial = hand.data[:].reshape(-1, run["steps"], 2)
        np.testing.assert_allclose(vel.data[:].reshape(-1, run["steps"], 2), np.gradient(by_trial, run["dt"], axis=1))
        r = rates.data[:].reshape(-1, run["steps"], run["rates"].shape[2])
        for j, c in enumerate(run["condition"]):
            if c < run["n_reach"]:
                np.testing.assert_allclose(r[j], run["rates"][c], rtol=1e-6)
            else:
                assert np.isnan(r[j]).all()
        per_unit = [p["name"] for p in run["pops"] for _ in range(p["start"], p["stop"])]
        assert table["population"].tolist() == per_unit
        assert "SIMULATION" in nwb.session_description
        assert f"seed {run['seed']}" in nwb.experiment_description and "cortexsim" in nwb.experiment_description
        with h5py.File(smoke_run / "run.h5") as f:
            assert nwb.notes == f.attrs["config"]  # the full config
        assert "simulation" in nwb.keywords[:]


def test_nwbinspector_finds_nothing_critical(exported):
    inspector = pytest.importorskip("nwbinspector")
    messages = list(inspector.inspect_nwbfile(nwbfile_path=str(exported)))
    bad = [m for m in messages if m.importance in (inspector.Importance.CRITICAL, inspector.Importance.ERROR)]
    assert not bad, "\n".join(f"{m.importance.name} {m.check_function_name}: {m.message}" for m in bad)
    assert len(messages) <= 2, [m.check_function_name for m in messages]  # e.g. experimenter: a suggestion only


def test_pynapple_reads_units_trials_and_behaviour(exported, smoke_run):
    nap = pytest.importorskip("pynapple")
    run = _run(smoke_run)
    data = nap.load_file(str(exported))
    units, trials = data["units"], data["trials"]
    assert len(units) == 60 * run["k"]
    for column in ("layer", "population", "cell_class", "subtype", "rate_unit"):
        assert column in units.metadata_columns
    assert sum(len(units[i]) for i in units.keys()) == sum(v.size for v in run["ids"].values())
    assert len(trials) == run["condition"].size  # trials kept apart (not merged into one interval)
    assert data["hand_position"].shape == (run["condition"].size * run["steps"], 2)


def test_same_run_and_seed_give_the_same_content(exported, smoke_run, tmp_path):
    again = tmp_path / "again.nwb"
    export.export_nwb(smoke_run / "run.h5", again, heldout_fraction=FRACTION)
    with pynwb.NWBHDF5IO(str(exported), "r") as a, pynwb.NWBHDF5IO(str(again), "r") as b:
        x, y = a.read(), b.read()
        assert x.identifier == y.identifier and x.session_start_time == y.session_start_time
        for name in ("units", "trials"):
            dx, dy = getattr(x, name).to_dataframe(), getattr(y, name).to_dataframe()
            assert dx.columns.tolist() == dy.columns.tolist()
            for col in dx.columns:
                for u, v in zip(dx[col], dy[col]):
                    np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(
            x.processing["misc"]["rate_model_rates"].data[:], y.processing["misc"]["rate_model_rates"].data[:]
        )


@pytest.mark.slow  # 25-130 s on 2 busy cores: the default suite stays near 10 min
def test_export_config_writes_run_nwb(smoke_run, tmp_path):
    """``[export] nwb = true``: ``cortexsim run`` ends by writing ``<run folder>/run.nwb`` (stages reused)."""
    with store.open_run(smoke_run / "run.h5") as f:
        config = store.read_config(f)
    config = config.with_section("export", nwb=True, heldout_fraction=0.5)
    out = tmp_path / "with_export"
    pipeline.run_experiment(config, out, upstream=smoke_run / "run.h5")
    with pynwb.NWBHDF5IO(str(out / "run.nwb"), "r") as io:
        units = io.read().units.to_dataframe()
    assert units["heldout"].sum() == 30 * _run(smoke_run)["k"]


@pytest.mark.parametrize("value", [1.5, -0.1, 0.0, 1.0])
def test_bad_fractions_are_refused_in_config_and_cli(value, smoke_run, tmp_path, capsys):
    with pytest.raises(ConfigError, match="export.heldout_fraction"):
        Config.from_dict({"export": {"heldout_fraction": value}})
    out = tmp_path / "x.nwb"
    assert main(["export", str(smoke_run / "run.h5"), "--nwb", str(out), "--heldout-fraction", str(value)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--heldout-fraction" in err[0] and "between 0 and 1" in err[0]
    assert not out.exists()


def _no_twin(smoke_run: Path, path: Path) -> Path:
    shutil.copyfile(smoke_run / "run.h5", path)
    with store.open_for_update(path) as f:
        for group in ("spikes", "spiking"):
            del f[group]
        store.forget_stages(f, ["spiking"])
    return path


def test_bad_input_is_one_line_and_leaves_files_alone(smoke_run, make_bad_file, tmp_path, capsys):
    run = str(smoke_run / "run.h5")
    cases = [
        (["export", str(tmp_path / "none.h5"), "--nwb", str(tmp_path / "a.nwb")], "no such file"),
        (["export", str(make_bad_file("foreign")), "--nwb", str(tmp_path / "a.nwb")], "not a cortexsim run file"),
        (["export", str(make_bad_file("truncated")), "--nwb", str(tmp_path / "a.nwb")], "not a readable HDF5"),
        (["export", str(_no_twin(smoke_run, tmp_path / "r.h5")), "--nwb", str(tmp_path / "a.nwb")], "spiking twin"),
        (["export", run, "--nwb", str(tmp_path / "a.h5")], "ending in .nwb"),
        (["export", run, "--nwb", str(tmp_path)], "is a folder"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cortexsim: error: ") and needle in err[0], (argv, err)
        assert not (tmp_path / "a.nwb").exists()
    precious = tmp_path / "notes.nwb"
    precious.write_text("my own notes, not NWB\n")
    assert main(["export", run, "--nwb", str(precious)]) == 2
    assert "left alone" in capsys.readouterr().err
    assert precious.read_text() == "my own notes, not NWB\n"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            assert main(["export", run, "--nwb", str(locked / "a.nwb")]) == 2
            assert "cannot write" in capsys.readouterr().err
        finally:
            locked.chmod(0o755)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_round_trip_compare_finds_the_twin_close_to_itself(exported, smoke_run, tmp_path, capsys):
    """Export, load back through ``compare --data`` as if recorded: the battery finds the twin in the data.

    The NWB PSTHs cover -0.5..+0.5 s around movement onset, part of the model's trial, so the comparison
    runs on the overlap only.  Three PCs: the smoke circuit (60 units, 2 LIF neurons each, 2 trials per
    condition) has about three dimensions above its spiking noise (with 10 PCs the mean CCA is 0.76).
    """
    folder = tmp_path / "rt"
    folder.mkdir()
    run = folder / "run.h5"
    shutil.copyfile(smoke_run / "run.h5", run)
    argv = ["compare", str(run), "--data", str(exported), "--align-event", "move_onset_time"]
    assert main([*argv, "--smooth-sd", "0.01", "--n-pcs", "3", "--n-null", "0"]) == 0
    capsys.readouterr()
    with store.open_run(run) as f:
        analysis = store.read_analysis(f)
    row = next(r for r in analysis.similarity if (r["a"], r["b"]) == ("spiking", "data"))
    assert row["cca"] >= 0.95, row
    assert any("data cover 99 of 146 model time steps" in n for n in analysis.notes)
    assert any("compared on the steps both cover only" in n for n in analysis.notes)


def test_compare_data_options_are_checked_before_anything_runs(exported, smoke_run, tmp_path, capsys):
    from cortexsim import preflight

    run = str(smoke_run / "run.h5")
    assert main(["compare", run, "--window", "-0.2", "0.2"]) == 2
    assert "give --data FILE too" in capsys.readouterr().err
    assert main(["compare", run, "--data", str(exported)]) == 2
    assert "--align-event" in capsys.readouterr().err
    assert main(["compare", run, "--data", str(exported), "--align-event", "x", "--window", "0.2", "-0.2"]) == 2
    assert "--window (compare.window)" in capsys.readouterr().err
    with store.open_run(smoke_run / "run.h5") as f:
        config = store.read_config(f)
    model = _run(smoke_run)
    rates = model["rates"]  # (conditions, time, units): a layout and a name the defaults do not guess
    time = (np.arange(rates.shape[1]) - round(model["params"]["move_on"][0] / model["dt"])) * model["dt"]
    data = tmp_path / "psth.npz"
    np.savez(data, psth=rates, time=time)
    with pytest.raises(ConfigError, match="missing 'rates'"):
        preflight.check_data_file(data, config, options={})
    options = {"variable": "psth", "layout": "conditions,time,neurons"}
    assert preflight.check_data_file(data, config, options=options) == rates.astype(float).nbytes
    with pytest.raises(ConfigError, match="check layout="):  # a wrong layout: its time axis has 8 values, not 146
        preflight.check_data_file(data, config, options={**options, "layout": "time,conditions,neurons"})


def test_export_config_is_checked_up_front(monkeypatch):
    from cortexsim import preflight

    config = Config.from_dict({"export": {"nwb": True}, "spiking": {"enabled": False}})
    with pytest.raises(ConfigError, match="spiking.enabled = false"):
        preflight.check_export(config)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pynwb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"cortexsim\[nwb\]"):
        preflight.check_export(Config.from_dict({"export": {"nwb": True}}))
    preflight.check_export(Config())  # export off: nothing to check


def test_a_foreign_run_nwb_is_refused_before_the_run(tmp_path):
    from cortexsim import preflight

    (tmp_path / "run.nwb").write_text("not NWB\n")
    with pytest.raises(Exception, match="left alone"):
        preflight.check_export(Config.from_dict({"export": {"nwb": True}}), tmp_path)
    assert (tmp_path / "run.nwb").read_text() == "not NWB\n"


# --- a run with a body (issue 31): its series, its perturbations, what each trial had -------------------

BODY_PERTURB = {
    **{"curl": True, "adapt_iterations": 4, "washout_iterations": 2, "curve_every": 2},
    **{"bumps": True, "bump_directions": 4, "bump_hold_time": 0.1, "spiking_trials": 1},
}
"""The tiny arm run goes through both perturbation protocols, its twin too (one trial per perturbed condition)."""


def _body_run(kind: str, out: Path, perturb: dict | None = None) -> Path:
    """A tiny run whose circuit and twin drive the body ``kind`` (through ``perturb``'s protocols)."""
    from tiny import tiny_config

    config = tiny_config(
        effector={"kind": kind, "endpoint_load": (0.0, 0.5)},
        spiking={"enabled": True, "k": 1, "dt": 5e-4},
        **({"perturb": perturb} if perturb else {}),
    )
    return pipeline.run_experiment(config, out, log=lambda line: None)


@pytest.fixture(scope="module")
def arm_export(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny arm run with both perturbation protocols (about 20 s), exported through the command line."""
    run_file = _body_run("arm26", tmp_path_factory.mktemp("arm"), BODY_PERTURB)
    out = run_file.parent / "arm.nwb"
    assert main(["export", str(run_file), "--nwb", str(out)]) == 0
    return run_file, out


def _effector(run_file: Path) -> dict:
    with h5py.File(run_file) as f:
        g = f["spiking/effector"]
        return {
            **{name: g[name][()] for name in g},
            "muscles": [m.decode() if isinstance(m, bytes) else m for m in g.attrs["muscles"]],
            "channels": [c.decode() if isinstance(c, bytes) else c for c in f["rate"].attrs["feedback_channels"]],
            "dt": float(f["task"].attrs["dt"]),
        }


def test_body_series_match_the_run_file(arm_export, capsys):
    run_file, out = arm_export
    arm = _effector(run_file)
    flat = {name: arm[name].reshape(-1, arm[name].shape[-1]) for name in ("q", "dq", "activation", "excitation")}
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        behavior = io.read().processing["behavior"]
        for name, key, unit in (("joint_angles", "q", "radians"), ("joint_velocities", "dq", "radians/s")):
            series = behavior[name]
            np.testing.assert_array_equal(series.data[:], flat[key])
            assert series.unit == unit and series.rate == pytest.approx(1 / arm["dt"])
            assert "Columns: shoulder, elbow." in series.description
        for name, key in (("muscle_excitation", "excitation"), ("muscle_activation", "activation")):
            np.testing.assert_array_equal(behavior[name].data[:], flat[key])
            assert f"Columns: {', '.join(arm['muscles'])}." in behavior[name].description
        feedback = behavior["sensory_feedback"]
        np.testing.assert_array_equal(feedback.data[:], arm["feedback"].reshape(-1, len(arm["channels"])))
        table = behavior["feedback_channels"].to_dataframe()
        assert table["channel"].tolist() == arm["channels"]  # named from the body, in the run file's order
        delay = dict(zip(table["channel"], table["delay"]))
        assert delay["length_biceps"] == pytest.approx(0.02) and delay["vision_x"] == pytest.approx(0.07)
        assert "length_biceps (proprioception, 20 ms)" in feedback.description
        assert "vision_y (vision, 70 ms)" in feedback.description
        # the hand is the arm's: relative to its start, the same as the hand of /spiking/effector
        hand = behavior["Position"]["hand_position"]
        np.testing.assert_allclose(hand.data[:], (arm["hand"] - arm["hand"][0, 0, 0]).reshape(-1, 2), atol=1e-9)
        assert "Hand of the body" in hand.description


def test_perturbations_are_intervals_and_series_checked_against_the_run_file(arm_export):
    run_file, out = arm_export
    with h5py.File(run_file) as f:
        curl = f["perturbation/curl/spiking"]
        phases = [p.decode() if isinstance(p, bytes) else p for p in curl.attrs["phases"]]
        hands = curl["hands"][()]
        bumps = f["perturbation/bumps/spiking/trials"][()]
        start, duration = f["spiking/trials/start"][()], f["spiking/outputs"].shape[2] * float(f["task"].attrs["dt"])
        dt = float(f["task"].attrs["dt"])
    n_phase, n_cond, steps, _ = hands.shape
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        trials = nwb.trials.to_dataframe()
        table = nwb.intervals["curl_phases"].to_dataframe()
        bumped = nwb.intervals["bumps"].to_dataframe()
        behavior = nwb.processing["behavior"]
        curl_hand = behavior["curl_hand_position"].data[:]
        load = behavior["endpoint_load"].data[:]
    # the evaluation trials: no protocol, the configured constant load
    assert set(trials["perturbation"]) == {"endpoint_load"} and set(trials["endpoint_load_y"]) == {0.5}
    # curl: one row per phase and condition after the evaluation trials, its mean hand path as stored
    end = start[-1] + duration
    assert len(table) == n_phase * n_cond and table["phase"].tolist() == [p for p in phases for _ in range(n_cond)]
    np.testing.assert_allclose(table["start_time"], end + np.arange(len(table)) * duration)
    on = table["field_on"].to_numpy(bool)
    assert set(table["phase"][on]) == {"first_exposure", "after_adaptation"}
    assert (table["perturbation"][on] == "curl_field").all() and (table["perturbation"][~on] == "none").all()
    assert (table["field_xy"][on] == 13.0).all() and (table["field_yx"][on] == -13.0).all()
    assert (table[["field_xx", "field_xy", "field_yx", "field_yy"]][~on] == 0).all().all()
    np.testing.assert_array_equal(curl_hand, hands.reshape(-1, 2))
    # bumps: one row per bumped twin trial, after the curl rows; direction, onset and force as stored
    assert len(bumped) == len(bumps)
    np.testing.assert_allclose(bumped["start_time"], end + (len(table) + np.arange(len(bumps))) * duration)
    np.testing.assert_allclose(bumped["direction"], np.deg2rad(bumps["direction_deg"]))
    np.testing.assert_allclose(bumped["bump_onset_time"] - bumped["start_time"], bumps["onset_s"])
    np.testing.assert_array_equal(bumped["condition"], bumps["condition"].astype(int))
    assert set(bumped["timing"]) == {"hold", "peak_speed"}
    # the force on the hand: the constant load in the evaluation and curl trials, each bump's pulse in its own
    assert load.shape == ((len(start) + len(table) + len(bumps)) * steps, 2)
    assert (load[: (len(start) + len(table)) * steps] == [0.0, 0.5]).all()
    pulses = load[(len(start) + len(table)) * steps :].reshape(len(bumps), steps, 2)
    for pulse, row in zip(pulses, bumps):
        on_steps = np.flatnonzero(np.linalg.norm(pulse, axis=1) > 0)
        assert on_steps[0] == round(row["onset_s"] / dt) and on_steps.size == 5  # 50 ms at 10 ms steps
        angle = np.deg2rad(row["direction_deg"])
        np.testing.assert_allclose(pulse[on_steps[0]], 5.0 * np.array([np.cos(angle), np.sin(angle)]), atol=1e-12)


def test_body_export_passes_nwbinspector_and_pynapple_reads_it(arm_export):
    inspector = pytest.importorskip("nwbinspector")
    nap = pytest.importorskip("pynapple")
    run_file, out = arm_export
    messages = list(inspector.inspect_nwbfile(nwbfile_path=str(out)))
    bad = (inspector.Importance.CRITICAL, inspector.Importance.ERROR, inspector.Importance.BEST_PRACTICE_VIOLATION)
    assert not [m for m in messages if m.importance in bad], [(m.check_function_name, m.message) for m in messages]
    assert [m.check_function_name for m in messages] == ["check_experimenter_exists"]  # a suggestion only
    arm = _effector(run_file)
    data = nap.load_file(str(out))
    n = arm["q"].shape[0] * arm["q"].shape[1] * arm["q"].shape[2]
    for name, width in (("joint_angles", 2), ("muscle_activation", 6), ("sensory_feedback", 14)):
        assert data[name].shape == (n, width), name
    np.testing.assert_array_equal(data["muscle_excitation"].values, arm["excitation"].reshape(n, 6))
    assert len(data["curl_phases"]) == 4 * 8 and len(data["bumps"]) == 8  # kept apart, with their columns
    assert "phase" in data["curl_phases"].metadata_columns and "direction" in data["bumps"].metadata_columns


def test_body_sections_take_every_name_from_the_plant():
    """The point mass's series and channels are named from its plant (no arm names), without a run."""
    from tiny import tiny_config

    from cortexsim import export_body
    from cortexsim.pointmass import PointMassKernel

    config = tiny_config(effector={"kind": "pointmass24"})
    channels = export_body.channel_table(config)
    muscles = PointMassKernel.MUSCLES
    assert [c[0] for c in channels] == [f"length_{m}" for m in muscles] + [f"velocity_{m}" for m in muscles] + [
        "vision_x",
        "vision_y",
    ]
    rng = np.random.default_rng(0)
    widths = {"q": 2, "dq": 2, "activation": 4, "excitation": 4, "feedback": len(channels)}
    arrays = {name: rng.random((3, 2, 5, w)) for name, w in widths.items()}
    body = export_body.BodyRecord("pointmass24", arrays, channels, np.zeros(2))
    nwb = pynwb.NWBFile("test", "test", __import__("datetime").datetime.now().astimezone())
    nwb.create_processing_module("behavior", "test")
    export_body.add_body(nwb, pynwb, body, 100.0)
    behavior = nwb.processing["behavior"]
    assert {"mass_position", "mass_velocity", "muscle_activation", "sensory_feedback"} <= set(behavior.data_interfaces)
    assert "joint_angles" not in behavior.data_interfaces
    assert behavior["mass_position"].unit == "meters" and "Columns: x, y." in behavior["mass_position"].description
    assert f"Columns: {', '.join(muscles)}." in behavior["muscle_excitation"].description
    np.testing.assert_array_equal(behavior["muscle_activation"].data.data, arrays["activation"].reshape(-1, 4))
    assert export_body.trial_columns(None, 3) == {}
    assert export_body.trial_columns(body, 2)["perturbation"][1] == ["none", "none"]


def test_a_run_without_a_body_exports_no_body_sections(exported):
    with pynwb.NWBHDF5IO(str(exported), "r") as io:
        nwb = io.read()
        assert "joint_angles" not in nwb.processing["behavior"].data_interfaces
        assert "perturbation" not in nwb.trials.colnames and "curl_phases" not in nwb.intervals


@pytest.mark.slow  # a second tiny body run, 15-45 s on 2 busy cores
def test_a_point_mass_run_exports_its_own_body(tmp_path):
    inspector = pytest.importorskip("nwbinspector")
    run_file = _body_run("pointmass24", tmp_path / "pm", BODY_PERTURB)
    out = tmp_path / "pm.nwb"
    assert main(["export", str(run_file), "--nwb", str(out)]) == 0
    pm = _effector(run_file)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        behavior = nwb.processing["behavior"]
        np.testing.assert_array_equal(behavior["mass_position"].data[:], pm["q"].reshape(-1, 2))
        assert behavior["feedback_channels"].to_dataframe()["channel"].tolist() == pm["channels"]
        assert len(nwb.intervals["bumps"]) > 0 and len(nwb.intervals["curl_phases"]) > 0
    messages = list(inspector.inspect_nwbfile(nwbfile_path=str(out)))
    assert [m.check_function_name for m in messages] == ["check_experimenter_exists"]
