"""Perturbations of an arm model: the metrics against hand-made paths, the trials, the protocols' invariants."""

from dataclasses import replace

import numpy as np
import pytest
from tiny import tiny_config

from cortexsim import metrics, perturb
from cortexsim.assembly import build_circuit, initial_rate_network, make_ann_model, make_task, validation_set
from cortexsim.config import PerturbConfig
from cortexsim.errors import ConfigError
from cortexsim.tasks import BumpedTask, CenterOutTask, TrialBatch
from cortexsim.train import new_state, train

DT = 0.01


def _batch(n_steps=60, angles=(0.0, np.pi / 2), go=0.1, catch=(False, False)) -> TrialBatch:
    """Straight reaches of 10 cm at ``angles`` (targets jump at ``go`` for simplicity)."""
    n = len(angles)
    t = np.arange(n_steps) * DT
    targets = np.zeros((n, n_steps, 2))
    for i, a in enumerate(angles):
        if not catch[i]:
            targets[i, t >= go] = 0.1 * np.array([np.cos(a), np.sin(a)])
    params = {
        "catch": np.array(catch),
        "go": np.where(np.array(catch), np.nan, go),
        "target_on": np.zeros(n),
        "move_on": np.full(n, go),
        "move_off": np.full(n, go + 0.3),
    }
    return TrialBatch(np.zeros((n, n_steps, 3)), targets, np.ones_like(targets), DT, params)


# -- the metrics ---------------------------------------------------------------------------------------


def test_lateral_deviation_is_the_signed_peak_distance_from_the_straight_path():
    batch = _batch(catch=(False, False))
    T = batch.n_steps
    s = np.linspace(0, 1, T)
    hand = np.zeros((2, T, 2))
    # reach 0 (to +x) bulges to +y (left of the reach) by 2 cm; reach 1 (to +y) bulges to +x (right) by 3 cm
    hand[0, :, 0], hand[0, :, 1] = 0.1 * s, 0.02 * np.sin(np.pi * s)
    hand[1, :, 1], hand[1, :, 0] = 0.1 * s, 0.03 * np.sin(np.pi * s)
    dev = metrics.lateral_deviation(hand, batch)
    np.testing.assert_allclose(dev, [0.02, -0.03], atol=2e-4)
    # before the go cue nothing counts: a bigger excursion there is ignored
    hand[0, :5, 1] = -0.05
    assert metrics.lateral_deviation(hand, batch)[0] == pytest.approx(0.02, abs=2e-4)
    # catch trials have no path to deviate from
    catch = _batch(catch=(False, True))
    assert np.isnan(metrics.lateral_deviation(hand, catch)[1])


def test_bump_displacement_and_recovery_time():
    T = 50
    ref = np.zeros((3, T, 2))
    hand = np.zeros((3, T, 2))
    onset = np.array([0.1, 0.1, 0.1])  # step 10
    # trial 0: out 3 cm at step 12, back within 1 cm from step 25 on -> recovery 150 ms after onset
    hand[0, 11:25, 0] = 0.03
    hand[0, 25:, 0] = 0.005
    # trial 1: never leaves 1 cm -> 0 ms; trial 2: still 2 cm off at the end -> inf
    hand[1, 12:20, 1] = 0.008
    hand[2, 12:, 1] = 0.02
    hand[2, 3, 0] = 0.5  # before the onset: not a displacement
    d = metrics.bump_displacement(hand, ref, onset, DT)
    np.testing.assert_allclose(d, [0.03, 0.008, 0.02])
    r = metrics.recovery_time_ms(hand, ref, onset, DT)
    assert r[0] == pytest.approx(150.0) and r[1] == 0.0 and np.isinf(r[2])


def test_response_latency_needs_two_steps_above_three_sd_of_the_floor():
    rng = np.random.default_rng(0)
    floor = 1.0 + 0.1 * rng.standard_normal(20)
    change = np.concatenate([floor, np.full(40, 1.0)])
    onset = 20
    change[onset + 5] = 5.0  # one step above: not a response
    change[onset + 8 :] = 2.0  # sustained from step 8 on
    assert metrics.response_latency_ms(change, floor, onset, DT) == pytest.approx(80.0)
    assert np.isnan(metrics.response_latency_ms(np.ones(60), floor, onset, DT))


def test_aftereffect_is_positive_when_opposite_to_the_first_exposure():
    assert perturb.aftereffect_cm(baseline=0.1, first=-5.0, probe=4.0) == pytest.approx(3.9)
    assert perturb.aftereffect_cm(baseline=0.0, first=5.0, probe=4.0) == pytest.approx(-4.0)  # same side: negative
    assert perturb.aftereffect_cm(baseline=0.0, first=2.0, probe=-1.5) == pytest.approx(1.5)


# -- the trials --------------------------------------------------------------------------------------------


def _task(**kw) -> CenterOutTask:
    return make_task(tiny_config(effector={"kind": "arm26"}, **kw))


def test_bumped_task_bumps_a_share_of_its_training_trials_with_pulses_of_the_asked_size():
    base = _task()
    task = BumpedTask.bumped(base, 0.5, 5.0, 0.05)
    a = task.sample(400, np.random.default_rng(3))
    b = task.sample(400, np.random.default_rng(3))
    np.testing.assert_array_equal(a.params["endpoint_load"], b.params["endpoint_load"])  # deterministic
    load = a.params["endpoint_load"]
    force = np.linalg.norm(load, axis=-1)
    bumped = force.max(axis=1) > 0
    assert 0.4 < bumped.mean() < 0.6
    np.testing.assert_allclose(force[force > 0], 5.0)
    assert np.all((force > 0).sum(axis=1)[bumped] == 5)  # 50 ms at 10 ms steps
    onset = np.argmax(force > 0, axis=1)[bumped]
    first = np.round(a.params["target_on"][bumped] / a.dt)
    assert np.all(onset >= first)
    # the same trials as the plain task would draw: the bumps are drawn after them
    plain = base.sample(400, np.random.default_rng(3))
    np.testing.assert_array_equal(plain.inputs, a.inputs)
    assert "endpoint_load" not in task.evaluation_set().params


def test_bump_trials_place_each_pulse_at_its_onset_and_refuse_a_hold_bump_past_the_go_cue():
    task = _task()
    evaluation = task.evaluation_set()
    pc = PerturbConfig(bumps=True, bump_directions=4, bump_hold_time=0.1, bump_duration=0.05)
    hand = np.zeros((evaluation.n_trials, evaluation.n_steps, 2))
    hand[:, :, 0] = evaluation.targets[:, :, 0]  # a reach whose speed peaks mid-movement
    onsets = perturb.bump_onsets(hand, evaluation, pc)
    hold = np.round((evaluation.params["target_on"] + 0.1) / DT)
    np.testing.assert_array_equal(onsets["hold"], hold)
    mid = np.round((evaluation.params["move_on"] + 0.5 * task.reach_duration) / DT)
    assert np.all(np.abs(onsets["peak_speed"] - mid) <= 1)
    trials = perturb.bump_trials(evaluation, onsets, pc)
    assert trials.batch.n_trials == 2 * 4 * evaluation.n_trials
    load = trials.batch.params["endpoint_load"]
    for i in range(0, trials.batch.n_trials, 7):
        on = np.flatnonzero(np.linalg.norm(load[i], axis=-1) > 0)
        assert on[0] == trials.onset_step[i] and on.size == 5
        np.testing.assert_allclose(
            load[i, on[0]], 5.0 * np.array([np.cos(trials.direction[i]), np.sin(trials.direction[i])])
        )
    late = PerturbConfig(bumps=True, bump_hold_time=evaluation.params["go"][0] - 0.02)
    with pytest.raises(ConfigError, match="bump_hold_time"):
        perturb.bump_onsets(hand, evaluation, late)


# -- the protocols ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm_net():
    cfg = tiny_config(effector={"kind": "arm26"})
    net = initial_rate_network(cfg, build_circuit(cfg))
    state = new_state(net.params, net.param_scales(), np.random.default_rng(0), np.random.default_rng(1))
    train(net, make_task(cfg), cfg.train, state, validation=validation_set(cfg), log=lambda line: None)
    return cfg, net


def test_curl_protocol_without_a_field_or_learning_changes_nothing(arm_net):
    cfg, net = arm_net
    pc = PerturbConfig(curl=True, curl_field=((0.0, 0.0), (0.0, 0.0)), adapt_iterations=0, washout_iterations=0)
    result = perturb.curl_protocol(net, make_task(cfg), cfg.train, pc, validation_set(cfg), seed=0, prefix="rate")
    rows = {r["phase"]: r for r in result.phases}
    base = rows["baseline"]["signed_deviation_cm"]
    for phase in perturb.PHASES:
        assert rows[phase]["signed_deviation_cm"] == pytest.approx(base, abs=1e-9), phase
    assert result.metrics["rate_curl_deviation_ratio"] == pytest.approx(1.0)
    assert result.metrics["rate_curl_aftereffect_cm"] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(result.adapted_params["w"], net.params["w"])


def test_curl_field_pushes_the_reach_sideways_and_io_adaptation_leaves_the_circuit_alone(arm_net):
    cfg, net = arm_net
    before = {k: p.copy() for k, p in net.params.items()}
    pc = PerturbConfig(curl=True, adapt_iterations=4, washout_iterations=2, curve_every=2, adapt_params="io")
    result = perturb.curl_protocol(net, make_task(cfg), cfg.train, pc, validation_set(cfg), seed=0, prefix="rate")
    rows = {r["phase"]: r for r in result.phases}
    # the clockwise field pushes every reach to its right: the signed deviation falls
    assert rows["first_exposure"]["signed_deviation_cm"] < rows["baseline"]["signed_deviation_cm"] - 0.1
    for group in ("w", "b", "x0"):  # only w_in, w_out and b_out may learn
        np.testing.assert_array_equal(result.adapted_params[group], before[group])
    assert any(not np.array_equal(result.adapted_params[g], before[g]) for g in perturb.IO_GROUPS)
    for group, p in net.params.items():  # the trained model itself is untouched
        np.testing.assert_array_equal(p, before[group])
    assert [r["iteration"] for r in result.curve] == [0, 2, 4, 0, 2]
    assert {r["block"] for r in result.curve} == {"adaptation", "washout"}
    assert [r["population"] for r in result.populations] == [p.name for p in net.connectome.populations]


def test_bump_protocol_on_circuit_and_ann(arm_net):
    cfg, net = arm_net
    pc = PerturbConfig(bumps=True, bump_directions=4, bump_hold_time=0.1)
    task = make_task(cfg)
    result = perturb.bump_protocol(net, task, pc, seed=0, prefix="rate")
    n_cond = task.evaluation_set().n_trials
    assert len(result.trials) == 2 * 4 * n_cond
    assert result.aligned_hand.shape[:2] == (2, 4) and result.aligned_change.shape[:2] == (2, 17)
    assert np.all(np.array([r["peak_displacement_cm"] for r in result.trials]) > 0.1)  # 5 N moves the hand
    # before the bump the aligned displacement is exactly zero (noise-free, same trial)
    before = result.window < 0
    np.testing.assert_allclose(result.aligned_hand[:, :, before], 0.0, atol=1e-9)  # batch-size rounding only
    assert result.metrics["rate_bump_recovery_ms"] >= 0
    ann = make_ann_model(cfg.with_section("ann", n_hidden=8), "gru")
    out = perturb.bump_protocol(ann, task, pc, seed=0, prefix="ann_gru")
    assert out.populations == ("hidden",) and "ann_gru_bump_recovery_ms" in out.metrics


def test_protocols_refuse_a_model_without_an_arm():
    cfg = tiny_config()
    net = initial_rate_network(cfg, build_circuit(cfg))
    with pytest.raises(ConfigError, match="arm26"):
        perturb.bump_protocol(net, make_task(cfg), PerturbConfig(bumps=True), seed=0, prefix="rate")


def test_train_keep_last_installs_the_last_iteration(arm_net):
    cfg, net = arm_net
    model = net.with_body(net.body)
    state = new_state(model.params, model.param_scales(), np.random.default_rng(5), np.random.default_rng(6))
    config = replace(cfg.train, max_iterations=3, eval_every=1, log_every=100, checkpoint_every=1)
    seen = {}

    def checkpoint(s):  # the first call at an iteration sees the parameters that iteration left
        seen.setdefault(s.iteration, {k: p.copy() for k, p in s.params.items()})

    val = validation_set(cfg)
    # reaches the opposite way: the better the training, the worse this loss, so "best" is an early iteration
    wrong = TrialBatch(val.inputs, -val.targets, val.mask, val.dt, val.params)
    out = train(
        model, make_task(cfg), config, state, validation=wrong, checkpoint=checkpoint,
        log=lambda line: None, keep="last",
    )  # fmt: skip
    assert out.iteration == 3 and sorted(seen) == [1, 2, 3]
    for group in model.params:
        np.testing.assert_array_equal(model.params[group], seen[3][group])
        np.testing.assert_array_equal(out.best_params[group], seen[3][group])
    with pytest.raises(ValueError, match="keep"):
        train(model, make_task(cfg), config, state, validation=validation_set(cfg), keep="first")


def test_rotation_variants_cut_only_what_they_name(arm_net):
    from cortexsim import rotations

    _, net = arm_net
    cut = rotations.interpopulation_synapses(net)
    label = np.empty(net.n_units, int)
    for i, pop in enumerate(net.connectome.populations):
        label[pop.slice] = i
    assert cut.any() and not np.any(cut & (label[:, None] == label[None, :]))
    assert np.all(net.mask[cut] > 0)
    v = rotations.variants(net)
    w = v["no_interpopulation_recurrence"].params["w"]
    assert np.all(w[cut] == 0) and np.array_equal(w[~cut], net.params["w"][~cut])
    assert not v["no_feedback"].body.feedback.enabled and net.body.feedback.enabled
    l5b = v["silenced_L5B"].silenced
    expected = np.zeros(net.n_units, bool)
    for pop in net.connectome.populations:
        if pop.spec.layer == "L5B":
            expected[pop.slice] = True
    np.testing.assert_array_equal(l5b, expected)


def test_a_stage_is_judged_on_the_bars_of_what_it_wrote():
    from cortexsim import quality
    from cortexsim.config import QualityConfig

    bars = QualityConfig(bump_recovery_ms=300.0, curl_deviation_ratio=0.5)
    reach = {"rate_position_r2": 0.99, "rate_endpoint_error_cm": 0.5, "rate_catch_drift_cm": 0.5}
    assert quality.check_written(reach, bars).passed  # the perturbation metrics come later: not a miss
    assert not quality.check_quality(reach, bars).passed  # at the end they must be there
    later = {"rate_bump_recovery_ms": 450.0, "ann_gru_curl_deviation_ratio": 0.2}
    verdict = quality.check_written(later, bars)
    assert verdict.failed_models == ("rate",) and verdict.models == ("rate", "ann_gru")
    assert [s.metric for s in verdict.shortfalls] == ["rate_bump_recovery_ms"]


def test_default_jobs_counts_the_rotation_control_as_a_worker_stage(monkeypatch):
    from cortexsim import cli, workers

    monkeypatch.setattr(workers, "available_cores", lambda: 8)
    arm = tiny_config(effector={"kind": "arm26"})
    assert cli.default_jobs(arm) == 1  # the tiny config has no ANNs
    assert cli.default_jobs(arm.with_section("compare", rotation_control=True)) == 2
    assert cli.default_jobs(tiny_config(compare={"rotation_control": True})) == 1  # no arm, no control


def test_take_and_without_keep_every_field_of_a_batch():
    batch = _task().evaluation_set()
    named = replace(batch, input_names=("a", "b", "c"), input_groups=("target", "target", "go"))
    picked = named.take(np.array([2, 2, 0]))
    assert picked.input_names == ("a", "b", "c") and picked.n_trials == 3
    np.testing.assert_array_equal(picked.inputs[0], batch.inputs[2])
    np.testing.assert_array_equal(picked.params["angle"], batch.params["angle"][[2, 2, 0]])
    loaded = replace(picked, params={**picked.params, "endpoint_load": np.zeros((3, batch.n_steps, 2))})
    plain = loaded.without("endpoint_load")
    assert "endpoint_load" not in plain.params and plain.input_names == ("a", "b", "c")
