"""Fitting models to recorded neurons: the neural term's exact gradient through every model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradcheck import directional_error
from test_closed_loop import _config as arm_config
from test_closed_loop import _network as arm_network
from test_rate import SHORT, small_network

from cortexsim import assembly
from cortexsim.ann import make_ann
from cortexsim.loss import Penalties
from cortexsim.neural_loss import RECORD_KEY, Fitted, NeuralTargets, NeuralTerm, ReadoutMap, UnitMap

PENALTIES = Penalties(rate_l2=1e-4, rate_cap=8.0, rate_cap_l2=1e-2, weight_l2=1e-2)


def _targets(kind: str, n_records: int, n_steps: int, n_neurons: int, dt: float, rng) -> NeuralTargets:
    """Random targets: Poisson counts around 10 Hz, or PSTHs; the first steps not covered."""
    mask = np.ones((n_records, n_steps))
    mask[:, :3] = 0.0
    if kind == "counts":
        values = rng.poisson(10.0 * dt * (1 + rng.random((n_records, n_steps, n_neurons))) * 3).astype(float)
    else:
        values = 10.0 + 5.0 * rng.standard_normal((n_records, n_steps, n_neurons))
    return NeuralTargets(kind, values, mask, dt)


def _with_records(batch, rng, n_records: int):
    """The batch with each trial's target row (one trial not fitted)."""
    rec = rng.integers(0, n_records, batch.n_trials)
    rec[0] = -1
    return type(batch)(batch.inputs, batch.targets, batch.mask, batch.dt, {**batch.params, RECORD_KEY: rec})


def _check_every_group(fitted: Fitted, batch, noise, h: float = 1e-6, tol: float = 1e-6) -> dict[str, float]:
    """Directional check of every model group and every mapping group; returns the errors."""
    model = fitted.model
    errors = {}

    def loss_and_grad():
        return fitted.loss_and_grad(batch, PENALTIES, noise, w_ref=0.01)

    groups = list(model.params) + list(fitted.map_params)
    for group in groups:
        params = model.params if group in model.params else fitted.map_params
        d = np.random.default_rng(len(group)).standard_normal(params[group].shape)
        if group == "w" and hasattr(model, "mask"):
            d *= 0.1 * model.params["w"] * model.mask  # inside w >= 0 and the mask
        if group == "w_in" and hasattr(model, "in_mask"):
            d *= model.in_mask
        if group == "neural_w":
            d = np.abs(d) * 0.01  # inside C >= 0 for the circuit's readout
        # the mapping's groups: a larger step (the loss is smooth in them; 1e-6 meets float64 rounding)
        step = 3e-5 if group in fitted.map_params else h
        errors[group] = directional_error(loss_and_grad, params, group, d, h=step)
        assert errors[group] < tol, (group, errors[group])
    return errors


@pytest.mark.parametrize("kind", ["counts", "psth"])
@pytest.mark.parametrize("mapping", ["units", "readout"])
def test_neural_term_gradient_through_the_circuit(kind, mapping):
    rng = np.random.default_rng(7)
    net = small_network(n_units=40)
    batch = SHORT.sample(4, rng)
    noise = net.noise(batch.n_trials, batch.n_steps, rng)
    targets = _targets(kind, 3, batch.n_steps, 6, net.dt, rng)
    batch = _with_records(batch, rng, 3)
    units = np.array([2, 5, 11, 17, 23, 31])
    fit_map = UnitMap(units) if mapping == "units" else ReadoutMap(net.n_units, nonnegative=True)
    fitted = Fitted(net, NeuralTerm(fit_map, targets, weight=0.7))
    if mapping == "readout":
        fitted.map_params["neural_w"] += 0.02 * rng.random(fitted.map_params["neural_w"].shape)
    loss, grads, stats = fitted.loss_and_grad(batch, PENALTIES, noise, w_ref=0.01)
    assert stats["neural_loss"] > 0 and set(grads) == set(fitted.params)
    task_only, _, _ = net.loss_and_grad(batch, PENALTIES, noise, w_ref=0.01)
    assert loss == pytest.approx(task_only + stats["neural_loss"], rel=1e-12)
    _check_every_group(fitted, batch, noise)


@pytest.mark.parametrize("kind", ["counts", "psth"])
def test_neural_term_gradient_through_the_circuit_on_the_arm(kind):
    cfg = arm_config(motor_noise=0.05)
    net = arm_network(cfg)
    rng = np.random.default_rng(2)
    batch = assembly.make_task(cfg).sample(3, rng)
    noise = net.noise(3, batch.n_steps, rng)
    targets = _targets(kind, 2, batch.n_steps, 5, net.dt, rng)
    batch = _with_records(batch, rng, 2)
    fitted = Fitted(net, NeuralTerm(UnitMap(np.array([1, 8, 20, 33, 50])), targets, weight=0.5))
    _check_every_group(fitted, batch, noise, h=1e-7)


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("kind", ["counts", "psth"])
def test_neural_term_gradient_through_an_ann_readout(arch, kind):
    rng = np.random.default_rng(5)
    ann = make_ann(arch, n_hidden=10, dt=SHORT.dt, n_inputs=3, n_outputs=2, noise_std=0.05, dtype=np.float64)
    ann.init_params(rng)
    batch = SHORT.sample(3, rng)
    noise = ann.noise(batch.n_trials, batch.n_steps, rng)
    targets = _targets(kind, 2, batch.n_steps, 4, ann.dt, rng)
    batch = _with_records(batch, rng, 2)
    fitted = Fitted(ann, NeuralTerm(ReadoutMap(ann.n_units, nonnegative=False), targets, weight=2.0))
    fitted.map_params["neural_w"] += rng.standard_normal(fitted.map_params["neural_w"].shape)
    _check_every_group(fitted, batch, noise, h=3e-5)  # smooth in every group; 1e-6 meets rounding (loss ~10)


def test_ann_on_the_arm_takes_the_same_term():
    cfg = arm_config().with_section("ann", n_hidden=8, dtype="float64")
    model = assembly.make_ann_model(cfg, "gru")
    rng = np.random.default_rng(3)
    for p in model.params.values():  # away from the arm at rest, where the muscles' force-velocity kink sits
        p += 0.1 * rng.standard_normal(p.shape)
    model.params["w_out"] *= 30
    batch = assembly.make_task(cfg).sample(2, rng)
    targets = _targets("counts", 2, batch.n_steps, 3, model.dt, rng)
    batch = _with_records(batch, rng, 2)
    fitted = Fitted(model, NeuralTerm(ReadoutMap(model.n_units, nonnegative=False), targets))
    fitted.map_params["neural_w"] += rng.standard_normal(fitted.map_params["neural_w"].shape)
    _check_every_group(fitted, batch, None)


def test_a_perfect_prediction_costs_nothing_and_the_readout_stays_nonnegative():
    rng = np.random.default_rng(0)
    net = small_network(n_units=30, noise_std=0.0)
    batch = SHORT.sample(2, rng)
    units = np.array([3, 4, 9])
    rates = net.simulate(batch).activity[:, :, units]  # (trials, time, neurons) Hz
    targets = NeuralTargets("psth", rates, np.ones(rates.shape[:2]), net.dt)
    batch = type(batch)(batch.inputs, batch.targets, batch.mask, batch.dt, {**batch.params, RECORD_KEY: np.arange(2)})
    fitted = Fitted(net, NeuralTerm(UnitMap(units), targets))
    _, grads, stats = fitted.loss_and_grad(batch, Penalties(0, 1e3, 0, 0), None)
    assert stats["neural_loss"] == pytest.approx(0.0, abs=1e-20)
    readout = Fitted(net, NeuralTerm(ReadoutMap(net.n_units, nonnegative=True), targets))
    readout.map_params["neural_w"] -= 1.0
    readout.enforce_constraints()
    assert readout.map_params["neural_w"].min() == 0.0


# --------------------------------------------------------------------------- the fit: data, split, scores


def _teacher_recording(tmp_path, n_neurons: int = 24, n_conditions: int = 6, trials: int = 0, seed: int = 7):
    """A teacher circuit (its own seed) on a recorded task of ``n_conditions`` input patterns: its rates
    as an ``.npz`` of condition averages, or (``trials`` > 0) Poisson single trials as a Recording."""
    from tiny import tiny_config

    from cortexsim.fit import Recording
    from cortexsim.recorded_task import RecordedTask

    cfg = tiny_config(experiment={"seed": seed})
    net = assembly.initial_rate_network(cfg, assembly.build_circuit(cfg))
    task = RecordedTask(
        cfg.task.dt, (-0.2, 0.3), n_conditions, None, tuple(range(n_conditions)), (np.empty(0, int),) * n_conditions
    )
    rng = np.random.default_rng(seed)
    net.params["w_in"] *= 1.5  # conditions that differ
    start, stop = task.window_steps
    rates = net.simulate(task.evaluation_set()).activity[:, start:stop]
    neurons = np.sort(rng.choice(net.n_units, n_neurons, replace=False))
    rates = rates[:, :, neurons]  # (conditions, bins, neurons) Hz
    if not trials:
        path = tmp_path / "teacher.npz"
        time = -0.2 + cfg.task.dt * (np.arange(rates.shape[1]) + 0.5)
        np.savez(
            path, rates=rates.transpose(2, 1, 0), time=time, conditions=np.array([f"c{i}" for i in range(n_conditions)])
        )
        return path, rates
    cond = np.repeat(np.arange(n_conditions), trials)
    counts = rng.poisson(rates[cond] * cfg.task.dt).astype(float)
    rec = Recording(
        counts,
        cond,
        counts.reshape(n_conditions, trials, *counts.shape[1:]).mean(1) / cfg.task.dt,
        tuple(map(str, range(n_conditions))),
        None,
        None,
        cfg.task.dt,
        (-0.2, 0.3),
    )
    return rec, rates


def test_the_split_is_seeded_and_training_sees_only_held_in_neurons_and_training_conditions(tmp_path):
    from cortexsim.fit import fit_task, neural_targets, split_recording
    from cortexsim.fit_config import FitConfig

    rec, _ = _teacher_recording(tmp_path, trials=6)
    fit = FitConfig(data="x.nwb", window=(-0.2, 0.3))
    split = split_recording(rec, fit, seed=3)
    again = split_recording(rec, fit, seed=3)
    assert np.array_equal(split.heldout, again.heldout) and np.array_equal(split.test_trials, again.test_trials)
    assert split.heldout.size == 6 and np.intersect1d(split.heldin, split.heldout).size == 0
    assert split.test_conditions.size == 2  # 25 % of 6, rounded
    task = fit_task(rec, split)
    targets = neural_targets(rec, split, task, "counts")
    assert targets.n_neurons == split.heldin.size
    batch = task.sample(200, np.random.default_rng(0))
    assert set(batch.params["condition"]) <= set(split.train_conditions.tolist())
    assert set(batch.params["record"]) <= set(split.train_trials.tolist())  # never a test trial


def test_the_teachers_own_rates_score_above_the_null_on_held_out_neurons(tmp_path):
    from cortexsim.fit import score_activity, split_recording
    from cortexsim.fit_config import FitConfig

    rec, rates = _teacher_recording(tmp_path, trials=20)
    split = split_recording(rec, FitConfig(data="x.nwb", window=(-0.2, 0.3)), seed=0)
    # the teacher's rates of every recorded neuron as the "model", its held-in neurons its own mapping
    truth = score_activity(rec, split, rates, rates[:, :, split.heldin])
    # noise: random activity, and each held-in neuron predicted at its mean training rate
    mean_rate = rec.psth[split.train_conditions][:, :, split.heldin].mean(axis=(0, 1))
    flat = np.broadcast_to(mean_rate, rates[:, :, split.heldin].shape)
    noise = score_activity(rec, split, np.random.default_rng(1).standard_normal(rates.shape), flat)
    assert truth.heldout_co_bps > 0.05 > noise.heldout_co_bps
    assert truth.heldout_psth_r2 > 0.5 > noise.heldout_psth_r2
    # conditions training never saw: the true rates against 20-trial PSTHs (the ceiling is the recording's
    # noise: 0.42 here, 0.75 with 100 trials); a flat prediction at the training mean scores below 0 (R² per
    # neuron over 2 conditions whose means differ from the training ones: -8 here)
    assert truth.heldout_condition_psth_r2 > 0.3
    assert noise.heldout_condition_psth_r2 < 0.05
    # without a mapping (the task-only model): a ridge map on 4 training conditions, underdetermined (below 0)
    ridge = score_activity(rec, split, rates)
    assert ridge.heldout_condition_psth_r2 < truth.heldout_condition_psth_r2


def test_fit_stage_fits_every_model_and_writes_its_scores(tmp_path):
    from tiny import tiny_config

    from cortexsim import fit_stage, store
    from cortexsim.store import read_fit

    path, _ = _teacher_recording(tmp_path)
    cfg = tiny_config(
        task={"kind": "recorded"},
        fit={"data": str(path), "window": [-0.2, 0.3], "heldout_conditions": 0.34},
        ann={"archs": ["gru"], "max_iterations": 5, "n_hidden": 8},
    )
    run = fit_stage.fit_run(cfg, log=lambda line: None)
    names = {m.name for m in run.record.models}
    assert names == {"rate", "rate_taskonly", "ann_gru"}
    for name in names:
        assert np.isnan(run.metrics[f"fit_{name}_heldout_co_bps"])  # condition averages: no trials to score
        assert np.isfinite(run.metrics[f"fit_{name}_heldout_psth_r2"])
        assert np.isfinite(run.metrics[f"fit_{name}_heldout_condition_psth_r2"])
    run_file = tmp_path / "run.h5"
    with store.open_for_update(run_file, store.provenance(cfg.to_toml(), cfg.experiment.seed)) as f:
        pass
    fit_stage.write_fit_run(run, run_file, "metrics")
    with store.open_run(run_file) as f:
        record = read_fit(f)
        metrics = store.read_metrics(f)
    assert {m.name for m in record.models} == names
    assert metrics["fit_rate_heldout_psth_r2"] == run.metrics["fit_rate_heldout_psth_r2"]
    assert np.array_equal(record.split["heldout"], run.split.heldout)


def test_a_recorded_task_runs_as_a_pipeline_of_one_fit_stage(tmp_path):
    """``task.kind = "recorded"``: ``cortexsim run`` fits and scores every model (one stage); a rerun reuses it."""
    from tiny import tiny_config

    from cortexsim import pipeline, store
    from cortexsim.assembly import make_task
    from cortexsim.recorded_task import RecordedTask

    path, _ = _teacher_recording(tmp_path)
    cfg = tiny_config(task={"kind": "recorded"}, fit={"data": str(path), "window": [-0.2, 0.3]})
    assert [s.name for s in pipeline.stages(cfg)] == ["fit"]
    task = make_task(cfg)
    assert isinstance(task, RecordedTask) and task.n_conditions == 6 and task.fixation == cfg.task.fixation
    lines = []
    run_file = pipeline.run_experiment(cfg, tmp_path / "run", log=lines.append)
    with store.open_run(run_file) as f:
        metrics = store.read_metrics(f)
    assert {"fit_rate_heldout_psth_r2", "fit_rate_taskonly_heldout_condition_psth_r2"} <= set(metrics)
    lines.clear()
    pipeline.run_experiment(cfg, tmp_path / "run", log=lines.append)
    assert any("[fit] done earlier" in line for line in lines)


def _teacher_nwb(tmp_path, trials: int = 12, n_conditions: int = 6, hand: bool = False):
    """The teacher's Poisson single trials as an NWB file (Units with a ``heldout`` column on 25 % of them, a
    trials table with ``condition`` and ``move_onset_time``; with ``hand``, a ``hand_position`` series: a 5 cm
    reach towards each condition's angle after movement onset): what an exported recording holds."""
    import datetime as dt

    pynwb = pytest.importorskip("pynwb")
    rec, rates = _teacher_recording(tmp_path, trials=trials, n_conditions=n_conditions)
    n_trials, n_bins, n_neurons = rec.counts.shape
    rng = np.random.default_rng(11)
    duration = rec.window[1] - rec.window[0]
    starts = np.arange(n_trials) * (duration + 0.3)
    onsets = starts - rec.window[0]
    nwb = pynwb.NWBFile(session_description="teacher", identifier="teacher", session_start_time=dt.datetime(2026, 1, 1))
    nwb.add_trial_column("condition", "condition")
    nwb.add_trial_column("move_onset_time", "s")
    for start, onset, c in zip(starts, onsets, rec.trial_condition):
        nwb.add_trial(start_time=start, stop_time=start + duration, condition=f"c{c}", move_onset_time=onset)
    nwb.add_unit_column("heldout", "held out")
    held = np.zeros(n_neurons, bool)
    held[rng.permutation(n_neurons)[: n_neurons // 4]] = True
    for u in range(n_neurons):
        trial, b = np.nonzero(rec.counts[:, :, u])
        k = rec.counts[trial, b, u].astype(int)
        t = np.repeat(starts[trial] + (b + 0.5) * rec.dt, k) + rng.uniform(-0.4, 0.4, k.sum()) * rec.dt
        nwb.add_unit(spike_times=np.sort(t), heldout=bool(held[u]))
    if hand:
        times = np.arange(0.0, starts[-1] + duration + 0.3, 0.001)
        position = np.zeros((times.size, 2))
        for onset, c in zip(onsets, rec.trial_condition):
            s = np.clip((times - onset) / 0.3, 0.0, 1.0)
            moving = (times >= onset - 0.5) & (times < onset + 0.5)
            profile = 0.05 * (10 * s**3 - 15 * s**4 + 6 * s**5)  # minimum jerk, 5 cm in 300 ms
            angle = 2 * np.pi * c / n_conditions
            position[moving] = profile[moving, None] * np.array([np.cos(angle), np.sin(angle)])
        behavior = nwb.create_processing_module("behavior", "hand")
        behavior.add(pynwb.TimeSeries(name="hand_position", data=position, unit="m", timestamps=times))
    path = tmp_path / "teacher.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path, rec, held


def test_cortexsim_score_reproduces_the_fits_held_out_scores_on_the_recording(tmp_path, capsys):
    """A fit run on an NWB recording (the file's held-out neurons); ``cortexsim score`` bins the file itself,
    reads each model's activity and the split from the run file and gives the run's numbers back."""
    import json

    from tiny import tiny_config

    from cortexsim import cli, pipeline, store

    path, rec, held = _teacher_nwb(tmp_path)
    cfg = tiny_config(
        task={"kind": "recorded"}, fit={"data": str(path), "window": [-0.2, 0.3], "hand": "", "test_trials": 0.34}
    )
    run_file = pipeline.run_experiment(cfg, tmp_path / "run", log=lambda line: None)
    with store.open_run(run_file) as f:
        metrics = store.read_metrics(f)
        heldout = np.asarray(f["fit/heldout"])
    assert np.array_equal(heldout, np.flatnonzero(held))  # the file's heldout column
    for model in ("rate", "rate_taskonly"):
        assert cli.main(["score", str(run_file), "--data", str(path), "--model", model, "--json", "-"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["co_bps"] == pytest.approx(metrics[f"fit_{model}_heldout_co_bps"], abs=1e-9)
        assert out["psth_r2"] == pytest.approx(metrics[f"fit_{model}_heldout_psth_r2"], abs=1e-9)
        assert out["n_scored"] == held.sum()
    assert cli.main(["score", str(run_file), "--data", str(path), "--model", "ann_gru"]) == 2
    assert "the fit has rate, rate_taskonly" in capsys.readouterr().err


@pytest.mark.slow  # about 80 s on 2 loaded cores, most of it the teacher's twin (Brian2)
@pytest.mark.brian2
def test_the_ground_truth_study_in_small(tmp_path):
    """experiments/fit_teacher.toml then fit_synthetic.toml and validation/fit_synthetic.py, cut down: a teacher
    (seed 2) exported as NWB with 25 % held out, a student (seed 1) fitted to it, every recovery number there."""
    import importlib.util

    from tiny import tiny_config

    from cortexsim import pipeline
    from cortexsim.assembly import experiment_from_text

    root = Path(__file__).resolve().parent.parent
    for name in ("fit_teacher", "fit_synthetic"):  # the study's own files load (names, kinds, sections)
        experiment_from_text((root / "experiments" / f"{name}.toml").read_text(), where=name)
    teacher = tiny_config(
        experiment={"seed": 2},
        spiking={"enabled": True, "k": 1, "trials_per_condition": 3, "target": "numpy"},
        export={"nwb": True, "heldout_fraction": 0.25},
    )
    (tmp_path / "teacher").mkdir()
    teacher_run = pipeline.run_experiment(teacher, tmp_path / "teacher", log=lambda line: None)
    student = tiny_config(
        task={"kind": "recorded"},
        fit={"data": str(tmp_path / "teacher" / "run.nwb"), "mapping": "readout", "test_trials": 0.34},
        ann={"archs": ["gru"], "n_hidden": 8, "max_iterations": 5},
    )
    student_run = pipeline.run_experiment(student, tmp_path / "student", log=lambda line: None)
    spec = importlib.util.spec_from_file_location("fit_synthetic", root / "validation" / "fit_synthetic.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    result = study.recovery(student_run, teacher_run)
    assert set(result["models"]) == {"teacher", "rate", "rate_taskonly", "ann_gru"}
    truth = result["models"]["teacher"]
    # the teacher's rate units predict its twin's held-out spikes without a map (finite; the tiny twin fires about
    # twice its rate units' rates, so below 0 here) and through the fit's ridge map (which absorbs the scale)
    assert np.isfinite(truth["true_co_bps"]) and truth["heldout_co_bps"] > truth["true_co_bps"]
    for name, row in result["models"].items():
        assert np.isfinite(row["heldout_co_bps"]) and np.isfinite(row["dsa_to_teacher"]), name
    assert set(result["targets"]) == {"jpca_ratio_within_10pct", "jpca_freq_within_10pct", "dsa_below_taskonly"}
    assert "| teacher |" in study.table(result)


def _texts(fig) -> str:
    """Every text a figure shows (titles, labels, legends), joined."""
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(Text))


def test_a_fit_run_draws_its_figures_and_tables_and_marks_a_model_that_failed_its_task(tmp_path):
    """A fit with kinematics on single trials (``units`` mapping): the three figures, the per-population table in
    ``/fit`` and ``summary.md``, the velocity R²; the tiny training misses the reach bars, and the figures and the
    summary say so -- lenient bars, and no model is marked."""
    from tiny import tiny_config

    from cortexsim import fit_stage, pipeline, store
    from cortexsim.plots import fit as fit_plots
    from cortexsim.store import read_fit

    path, rec, held = _teacher_nwb(tmp_path, hand=True)
    fit = {"data": str(path), "window": [-0.2, 0.3], "test_trials": 0.34, "populations": ["IT2/3", "PT5B", "IT5B"]}
    cfg = tiny_config(task={"kind": "recorded"}, fit=fit, ann={"archs": ["gru"], "max_iterations": 5, "n_hidden": 8})
    run = fit_stage.fit_run(cfg, log=lambda line: None)
    failed = fit_stage.failed_models(run.record)
    assert set(failed) == {"rate", "rate_taskonly", "ann_gru"}  # 20 iterations do not reach 5 cm paths
    for model in run.record.models:
        assert "position_r2" in model.task and "catch_drift_cm" not in model.task  # no catch trials: no bar
        assert np.isfinite(model.scores["velocity_r2"]) and np.isfinite(model.scores["heldout_co_bps"])
        assert model.heldout_psth.shape == (rec.n_conditions, rec.counts.shape[1], held.sum())
    rate = {m.name: m for m in run.record.models}["rate"]
    assert [row["population"] for row in rate.populations] == ["IT2/3", "IT5B", "PT5B"]  # the circuit's order
    assert sum(row["neurons"] for row in rate.populations) == run.split.heldin.size  # every mapped neuron once
    assert all(np.isfinite(row["heldout_co_bps"]) for row in rate.populations)
    assert not {m.name: m for m in run.record.models}["ann_gru"].populations  # an ANN has no populations

    run_file = tmp_path / "run" / "run.h5"
    with store.open_for_update(run_file, store.provenance(cfg.to_toml(), cfg.experiment.seed)):
        pass
    fit_stage.write_fit_run(run, run_file, "metrics")
    figures = tmp_path / "run" / "figures"
    for name in ("fit_psths.png", "fit_scores.png", "fit_populations.png"):
        assert (figures / name).stat().st_size > 10_000, name
    with store.open_run(run_file) as f:
        back = {m.name: m for m in read_fit(f).models}
        metrics = store.read_metrics(f)
    assert back["rate"].populations == rate.populations and back["rate"].failed == rate.failed
    assert np.array_equal(back["rate"].heldout_psth, rate.heldout_psth) and back["rate"].task == rate.task
    assert metrics["fit_rate_velocity_r2"] == run.metrics["fit_rate_velocity_r2"]
    summary = (run_file.parent / "summary.md").read_text()
    assert summary.startswith("# cortexsim run summary")
    assert "circuit, fitted FAILED its task: position_r2" in summary
    assert "## Per population: circuit, fitted" in summary and "| PT5B |" in summary

    # the figures name the failed models: every row of PSTHs, every legend
    psths = {
        name: {
            "predicted": s.predicted,
            "recorded": s.recorded,
            "neuron_r2": s.neuron_r2,
            "scored": s.scored_conditions,
        }
        for name, s in run.scores.items()
    }
    time = np.arange(rec.counts.shape[1]) * rec.dt
    texts = _texts(fit_plots.plot_fit_psths(psths, time, run.split.heldout, rec.conditions, failed))
    assert texts.count("(FAILED its task)") == 3 * 3  # three models, best, median and worst
    scores = {m.name: m.scores for m in run.record.models}
    assert _texts(fit_plots.plot_fit_scores(scores, failed)).count("(FAILED its task)") == 3
    assert "(FAILED its task)" not in _texts(fit_plots.plot_fit_scores(scores, ()))

    # lenient bars: the same fit did its task, and nothing is marked
    lenient = cfg.with_section("quality", position_r2=-1e6, endpoint_error_cm=1e6)
    run = pipeline.run_experiment(lenient, tmp_path / "lenient", log=lambda line: None)
    summary = (run.parent / "summary.md").read_text()
    assert "FAILED" not in summary and "| done |" in summary
    assert (run.parent / "figures" / "fit_scores.png").is_file()
