"""An arm run through the whole pipeline, as `cortexsim run experiments/arm_center_out.toml` makes one (tiny)."""

from dataclasses import replace

import h5py
import matplotlib.text
import numpy as np
import pytest
from tiny import tiny_config

from cortexsim import perturb, pipeline, plots, quality, store
from cortexsim.closed_loop import FEEDBACK_CHANNELS

PERTURB = {
    **{"curl": True, "adapt_iterations": 4, "washout_iterations": 2, "curve_every": 2},
    **{"bumps": True, "bump_directions": 4, "bump_hold_time": 0.1, "spiking_trials": 1, "train_bump_fraction": 0.5},
}
"""The tiny arm run goes through both perturbation protocols too (issue 14)."""


@pytest.fixture(scope="module")
def arm_run(tmp_path_factory):
    config = tiny_config(
        effector={"kind": "arm26"},
        ann={"archs": ["rnn"], "max_iterations": 5},
        spiking={"enabled": True, "k": 1, "dt": 5e-4},
        perturb=PERTURB,
        quality={"curl_deviation_ratio": 0.5, "bump_recovery_ms": 300.0},
        compare={"rotation_control": True},
    )
    out = tmp_path_factory.mktemp("arm")
    run_file = pipeline.run_experiment(config, out, log=lambda line: None)
    return config, run_file


def test_arm_run_stores_the_arm_it_drove(arm_run):
    config, run_file = arm_run
    with h5py.File(run_file) as f:
        assert f["rate"].attrs["effector"] == "arm26"
        assert list(f["rate"].attrs["feedback_channels"]) == list(FEEDBACK_CHANNELS)
        g = f["rate/effector"]
        n_cond, n_steps = f["rate/rates"].shape[:2]
        for name, width, units in (("q", 2, "rad"), ("dq", 2, "rad/s"), ("hand", 2, "m"), ("activation", 6, "1")):
            assert g[name].shape == (n_cond, n_steps, width)
            assert g[name].attrs["units"] == units
            assert g[name].attrs["dims"] == "condition,time," + {2: "joint", 6: "muscle"}.get(width, "xy").replace(
                "joint", "xy" if name == "hand" else "joint"
            )
        assert f["rate/W_out"].attrs["units"] == "1/Hz" and f["rate/W_out"].shape[0] == 6
        # the hand the task scores is the arm's hand relative to its start
        np.testing.assert_allclose(f["rate/outputs"][()], g["hand"][()] - g["hand"][0, 0], atol=1e-6)
        arrays = store.read_effector(f, "rate")
        assert set(arrays) >= {"q", "dq", "hand", "activation", "excitation", "feedback"}
        # the ANN drove the same arm, from the same start
        assert f["ann/rnn"].attrs["effector"] == "arm26"
        ann_arm = store.read_effector(f, "ann/rnn")
        assert ann_arm["q"].shape == g["q"].shape
        np.testing.assert_allclose(ann_arm["q"][:, 0], g["q"][:, 0])
        # and so did the spiking twin, every trial of every condition
        twin = f["spiking/effector"]
        n_trials = f["spiking"].attrs["trials_per_condition"]
        assert twin["q"].shape == (n_cond + 1, n_trials, n_steps, 2)  # + the catch condition
        assert twin["excitation"].attrs["dims"] == "condition,trial,time,muscle"
        np.testing.assert_allclose(twin["q"][:n_cond, :, 0], np.repeat(g["q"][()][:, None, 0], n_trials, axis=1))
        metrics = store.read_metrics(f)
    keys = ("rate_peak_speed_error", "rate_speed_profile_r", "rate_prep_potent_share", "rate_potent_chance")
    keys += ("spiking_endpoint_error_cm", "spiking_peak_speed_error", "spiking_catch_drift_cm")
    for key in (*keys, "rate_endpoint_error_cm_no_feedback", "ann_rnn_peak_speed_error", "ann_rnn_endpoint_error_cm"):
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["rate_prep_potent_share"] <= 1


def test_arm_run_says_so_and_draws_the_arm(arm_run):
    _, run_file = arm_run
    summary = (run_file.parent / "summary.md").read_text()
    assert "- effector: the six-muscle arm" in summary
    for name in ("arm.png", "muscles.png", "trajectories.png", "arm_spiking.png", "trajectories_spiking.png"):
        assert (run_file.parent / "figures" / name).stat().st_size > 10_000, name


def test_arm_run_perturbs_every_model_and_records_it(arm_run):
    config, run_file = arm_run
    with store.open_run(run_file) as f:
        held = store.read_perturbation(f)
        metrics = store.read_metrics(f)
        stages = store.read_stages(f)
        assert f["perturbation/curl/rate/hands"].attrs["units"] == "m"
        assert f["perturbation/curl/rate/hands"].attrs["dims"] == "phase,condition,time,xy"
        assert f["perturbation/bumps/rate/aligned_change"].attrs["units"] == "Hz"
    assert set(held) == {"curl", "bumps"}
    for kind in ("curl", "bumps"):
        assert set(held[kind]) == {"rate", "spiking", "ann_rnn"}, kind
    rate = held["curl"]["rate"]
    assert [r["phase"] for r in rate["phases"]] == list(perturb.PHASES)
    assert rate["hands"].shape[:2] == (len(perturb.PHASES), config.task.n_targets)
    assert [r["iteration"] for r in rate["curve"]] == [0, 2, 4, 0, 2]
    assert len(rate["populations"]) == 17
    assert [r["phase"] for r in held["curl"]["spiking"]["phases"]][:2] == ["baseline", "first_exposure"]
    bumps = held["bumps"]["rate"]
    assert len(bumps["trials"]) == 2 * 4 * config.task.n_targets
    assert {r["timing"] for r in bumps["latencies"]} == {"hold", "peak_speed"}
    assert len(held["bumps"]["spiking"]["trials"]) == 2 * 4  # each direction bumps one condition, one trial
    # the contract's metrics, for every model
    for model in ("rate", "spiking", "ann_rnn"):
        for name in ("curl_deviation_ratio", "curl_aftereffect_cm", "bump_recovery_ms"):
            assert f"{model}_{name}" in metrics, (model, name)
        assert metrics[f"{model}_curl_deviation_ratio"] > 0
    assert stages["perturb"]["groups"] == ["perturbation"]
    assert list(stages).index("perturb") > list(stages).index("rate")
    # the perturbation bars are checked like the reach bars: these tiny models miss them, and say so
    verdict = quality.check_quality(metrics, config.quality)
    assert any(
        s.metric == "rate_curl_deviation_ratio" or s.metric == "rate_bump_recovery_ms" for s in verdict.shortfalls
    )


def test_arm_run_draws_and_summarises_the_perturbations(arm_run):
    _, run_file = arm_run
    for name in ("curl.png", "bumps.png"):
        assert (run_file.parent / "figures" / name).stat().st_size > 20_000, name
    summary = (run_file.parent / "summary.md").read_text()
    assert "## Curl field" in summary and "## Bumps" in summary
    curl = summary.split("## Curl field")[1].split("##")[0]
    assert "| rate circuit |" in curl and "| spiking twin |" in curl and "| RNN |" in curl
    assert "**FAILED**" in curl  # a model that missed its task says so where its results are shown


def _texts(fig) -> str:
    """Every text a figure shows: titles, axis labels, tick labels and legend entries."""
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_the_perturbation_figures_mark_a_model_that_failed_its_task(arm_run):
    _, run_file = arm_run
    with store.open_run(run_file) as f:
        held = store.read_perturbation(f)
    for draw, kind in ((plots.plot_curl, "curl"), (plots.plot_bumps, "bumps")):
        assert "FAILED" not in _texts(draw(held[kind], ())), kind
        marked = _texts(draw(held[kind], ("ann_rnn",)))
        assert "RNN (FAILED its task)" in marked or "RNN\n(FAILED its task)" in marked, kind
        assert "rate circuit (FAILED" not in marked, kind


def test_kinematic_runs_have_no_effector_group(smoke_run):
    with h5py.File(smoke_run / "run.h5") as f:
        assert "effector" not in f["rate"] and f["rate"].attrs.get("effector", "kinematic") == "kinematic"
        assert store.read_effector(f, "rate") is None


def test_spiking_command_on_an_arm_run_refuses_a_standalone_target_in_one_line(arm_run, capsys):
    from cortexsim import cli

    _, run_file = arm_run
    before = run_file.stat().st_mtime_ns
    assert cli.main(["spiking", str(run_file), "--target", "cpp_standalone"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'spiking.target = "cpp_standalone"' in err[0] and "numpy" in err[0]
    assert run_file.stat().st_mtime_ns == before


def test_the_shipped_arm_study_runs_its_twin_on_the_arm_and_passes_every_check():
    from pathlib import Path

    from cortexsim import assembly, preflight

    path = Path(__file__).resolve().parent.parent / "experiments" / "arm_center_out.toml"
    config = assembly.load_experiment(path)
    assert config.effector.kind == "arm26" and config.spiking.enabled and config.spiking.target == "auto"
    assert config.quality.spiking_endpoint_error_cm == 1.5 and config.quality.peak_speed_error == 0.2
    preflight.check_runnable(config)  # every check the run makes before computing


@pytest.mark.parametrize(
    ("name", "bars"),
    [
        ("arm_curl", {"curl_deviation_ratio": 0.5, "curl_aftereffect_cm": 0.1}),
        ("arm_bump", {"bump_recovery_ms": 300.0, "spiking_bump_recovery_ms": 500.0}),
    ],
)
def test_the_shipped_perturbation_experiments_are_the_arm_study_plus_their_protocol(name, bars):
    from pathlib import Path

    from cortexsim import assembly, preflight

    root = Path(__file__).resolve().parent.parent / "experiments"
    config = assembly.load_experiment(root / f"{name}.toml")
    study = assembly.load_experiment(root / "arm_center_out.toml")
    for section in ("circuit", "task", "rate", "spiking", "compare"):
        assert getattr(config, section) == getattr(study, section), section
    # the same arm and feedback; only the initial feedback weights may be stronger and the velocity
    # error weighted less (arm_bump: corrections; the arm study's speed_l2 = 4 slowed them)
    same = {"feedback_std": study.effector.feedback_std, "speed_l2": study.effector.speed_l2}
    assert replace(config.effector, **same) == study.effector
    assert config.effector.feedback_std >= study.effector.feedback_std
    assert 0 < config.effector.speed_l2 <= study.effector.speed_l2
    assert config.train.max_iterations >= study.train.max_iterations  # bumps take longer to learn
    assert config.ann.archs == study.ann.archs
    for key, bar in bars.items():
        assert getattr(config.quality, key) == bar, key
    assert config.perturb.active and config.experiment.name == name
    preflight.check_runnable(config)


def test_arm_run_tabulates_where_the_rotations_come_from(arm_run):
    _, run_file = arm_run
    with store.open_run(run_file) as f:
        rows = store.read_analysis(f).tables["rotation_sources"]
        columns = set(f["analysis/rotation_sources"].dtype.names)
    assert {"condition", "jpca_ratio", "frequency_hz", "dsa_to_intact"} <= columns  # the contract
    names = [r["condition"] for r in rows]
    assert names[:3] == ["intact", "no_feedback", "no_interpopulation_recurrence"]
    assert names[-1] == "trained_without_interpopulation_recurrence"  # [compare] rotation_control
    with store.open_run(run_file) as f:
        control = store.read_control(f)
        stages = store.read_stages(f)
        assert f["control/w_out"].attrs["units"] == "1/Hz"
        connectome = store.read_circuit(f)
    label = connectome.unit_population
    between = (label[:, None] != label[None, :]) & (np.abs(control["w"]) > 0)
    assert not between.any() and np.abs(control["w"]).sum() > 0  # only within-population synapses learned
    assert stages["control"]["groups"] == ["control"]
    assert {f"silenced_{layer}" for layer in ("L1", "L2/3", "L4", "L5A", "L5B", "L6")} <= set(names)
    assert rows[0]["dsa_to_intact"] == 0.0 and all(r["dsa_to_intact"] >= 0 for r in rows[1:])
    assert (run_file.parent / "figures" / "rotation_sources.png").stat().st_size > 10_000
    assert "## Where the rotations come from" in (run_file.parent / "summary.md").read_text()
