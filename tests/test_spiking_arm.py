"""The spiking twin in closed loop: the readout it sends, the trials it runs side by side, the arm it drives."""

import copy
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import expit
from tiny import tiny_config

from cortexsim import assembly, preflight
from cortexsim.closed_loop import ArmLoop, ArmRateNetwork, Body
from cortexsim.config import load_config
from cortexsim.errors import ConfigError
from cortexsim.spiking import arm as spiking_arm
from cortexsim.spiking.mapping import map_rate_to_spiking
from cortexsim.spiking.network import simulate_loop
from cortexsim.spiking.twin import evaluation_conditions, run_twin
from cortexsim.tasks import TrialBatch

TASK_DT = 0.01


@pytest.fixture(scope="module")
def arm_net():
    config = tiny_config(effector={"kind": "arm26"})
    net = assembly.initial_rate_network(config, assembly.build_circuit(config))
    assert isinstance(net, ArmRateNetwork)
    return config, net


@pytest.fixture(scope="module")
def params(arm_net):
    config, net = arm_net
    return map_rate_to_spiking(net, config.lif, k=2, dt=1e-4, offset_mv=0.4)


def _loop(params, drive, controller, r0=None, seed=3, tau=0.02):
    r0 = np.full(params.out_idx.size, 7.0) if r0 is None else r0
    return simulate_loop(params, drive, TASK_DT, controller, r0, readout_tau=tau, seed=seed, target="numpy")


def test_the_loops_readout_is_each_pools_filtered_spikes(params):
    """At t dt the controller sees r0 exp(-t / tau) + sum over earlier spikes of exp(-(t - s - h) / tau) / (K tau)."""
    n, steps, tau, h = 2, 25, 0.02, params.dt
    drive = np.broadcast_to(params.b + 3.0, (n, steps, params.n_units)).copy()
    drive[1] -= 2.0
    seen = {}

    def controller(t, rates):
        seen[t] = rates.copy()

    r0 = np.linspace(2.0, 9.0, params.out_idx.size)
    spikes = _loop(params, drive, controller, r0=r0, tau=tau)
    assert sorted(seen) == list(range(steps + 1))  # every task step, and once after the last
    length = steps * TASK_DT
    for t in (0, 1, 7, steps):
        now = t * TASK_DT
        for trial in range(n):
            mine = (spikes.times >= trial * length) & (spikes.times < (trial + 1) * length)
            times, pools = spikes.times[mine] - trial * length, spikes.ids[mine] // params.k
            for j, unit in enumerate(params.out_idx):
                s = times[(pools == unit) & (times < now - 1e-9)]
                want = r0[j] * np.exp(-now / tau) + np.exp(-(now - s - h) / tau).sum() / (params.k * tau)
                assert seen[t][trial, j] == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_trials_run_side_by_side_and_come_back_back_to_back(params):
    n, steps = 3, 20
    drive = np.broadcast_to(params.b + 2.0, (n, steps, params.n_units)).copy()
    drive[1] -= 4.0  # the middle trial is driven less
    spikes = _loop(params, drive, lambda t, r: None)
    assert spikes.n_neurons == params.n_units * params.k and spikes.ids.max() < spikes.n_neurons
    assert spikes.duration == pytest.approx(n * steps * TASK_DT)
    assert np.all(np.diff(spikes.times) >= 0)
    length = steps * TASK_DT
    counts = np.histogram(spikes.times, bins=n, range=(0, n * length))[0]
    assert counts[1] < 0.7 * min(counts[0], counts[2])
    again = _loop(params, drive, lambda t, r: None)
    np.testing.assert_array_equal(again.times, spikes.times)  # same seed, same spikes
    np.testing.assert_array_equal(again.ids, spikes.ids)


def test_the_feedback_drive_reaches_only_its_own_trials_pools(params):
    n, steps = 2, 20
    drive = np.broadcast_to(params.b, (n, steps, params.n_units)).copy()
    extra = np.zeros((n, params.n_units))
    extra[0] = 4.0  # mV on every pool of trial 0, none on trial 1

    spikes = _loop(params, drive, lambda t, r: extra)
    length = steps * TASK_DT
    first = np.sum(spikes.times < length)
    second = np.sum(spikes.times >= length)
    assert first > 1.5 * second
    quiet = _loop(params, drive, lambda t, r: None)
    assert np.sum(quiet.times < length) < 0.7 * first


def test_a_closed_loop_needs_a_runtime_target(params):
    drive = np.zeros((1, 2, params.n_units))
    with pytest.raises(ValueError, match="runtime target"):
        simulate_loop(params, drive, TASK_DT, lambda t, r: None, np.zeros(params.out_idx.size), readout_tau=0.02,
                      target="cpp_standalone")  # fmt: skip
    assert spiking_arm.loop_target("numpy") == "numpy" and spiking_arm.loop_target("cython") == "cython"
    assert spiking_arm.loop_target("cpp_standalone") in ("cython", "numpy")


@pytest.fixture(scope="module")
def twin_on_the_arm(arm_net, params):
    config, net = arm_net
    net = copy.copy(net)  # the same circuit, its sensors noise-free
    net.body = replace(net.body, feedback=replace(net.body.feedback, proprioception_noise=0.0, vision_noise=0.0))
    batch = evaluation_conditions(assembly.make_task(config), catch=True)
    return net, spiking_arm.run_arm_params(net, params, batch, 2, seed=5, target="numpy")


def test_the_twin_drives_the_arm_and_hears_it_on_time(twin_on_the_arm):
    net, result = twin_on_the_arm
    body, fb = net.body, net.body.feedback
    arm, batch = result.effector, result.batch
    n_cond, n_trials, n_steps = result.rates.shape[:3]
    for name, width in (("q", 2), ("dq", 2), ("hand", 2), ("activation", 6), ("excitation", 6), ("feedback", 14)):
        assert arm[name].shape == (n_cond, n_trials, n_steps, width), name
    np.testing.assert_allclose(result.outputs, arm["hand"] - body.hand0, atol=1e-12)
    # f[t] reports the sensors dv (vision) steps earlier, on time (no extra lag from the spikes' readout)
    goal = batch.inputs[:, None, :, :2] * body.reach
    dv = fb.vision_delay
    want = (arm["hand"][:, :, : n_steps - dv] - body.hand0 - goal[:, :, : n_steps - dv]) / fb.vision_scale
    np.testing.assert_allclose(arm["feedback"][:, :, dv:, 12:], want, atol=1e-12)
    # e[t] = floor + (1 - floor) sigmoid(W_out r + b_out), r = PT5B's filtered spikes at the end of step t
    p, tau, h = result.params, spiking_arm.READOUT_TAU, result.params.dt
    r0 = net.transfer(np.array(p.x0[p.out_idx]))
    length = n_steps * batch.dt
    ends = (np.arange(n_steps) + 1) * batch.dt
    for c, trial in ((0, 0), (n_cond - 1, n_trials - 1)):
        n = c * n_trials + trial
        mine = (result.spikes.times >= n * length) & (result.spikes.times < (n + 1) * length)
        times, pools = result.spikes.times[mine] - n * length, result.spikes.ids[mine] // p.k
        r = np.empty((n_steps, p.out_idx.size))
        for j, unit in enumerate(p.out_idx):
            s = times[pools == unit]
            lag = ends[:, None] - s[None, :] - h
            r[:, j] = r0[j] * np.exp(-ends / tau) + np.where(lag > -h / 2, np.exp(-lag / tau), 0).sum(1) / (p.k * tau)
        want = body.excitation_floor + (1 - body.excitation_floor) * expit(r @ p.w_out.T + p.b_out)
        np.testing.assert_allclose(arm["excitation"][c, trial], want, rtol=1e-9)


def test_a_twin_without_readout_weights_holds_the_arm_still(arm_net, params):
    """W_out = 0: every excitation is the resting co-contraction, which holds the start posture."""
    config, net = arm_net
    still = replace(params, w_out=np.zeros_like(params.w_out), b_out=net.body.rest_logit())
    batch = evaluation_conditions(assembly.make_task(config.with_section("task", n_targets=2)), catch=True)
    result = spiking_arm.run_arm_params(net, still, batch, 1, seed=1, target="numpy")
    np.testing.assert_allclose(
        result.effector["excitation"], np.broadcast_to(net.body.activation0, (3, 1, batch.n_steps, 6))
    )
    assert np.abs(result.outputs).max() < 1e-6  # m


def test_the_twins_metrics_score_the_arm(twin_on_the_arm):
    _, result = twin_on_the_arm
    m = result.metrics
    for key in (
        "spiking_position_r2",
        "spiking_endpoint_error_cm",
        "spiking_catch_drift_cm",
        "spiking_peak_speed_error",
    ):
        assert np.isfinite(m[key]), key
    assert m["spiking_readout_tau_ms"] == pytest.approx(20.0)
    assert "spiking_position_r2_refit" not in m  # the readout drives muscles: no hand readout to refit


def test_run_twin_on_an_arm_network_drives_the_arm(arm_net):
    config, net = arm_net
    task = assembly.make_task(config.with_section("task", n_targets=2))
    result = run_twin(net, config.lif, task, seed=0, k=1, trials_per_condition=1, target="numpy")
    assert result.effector is not None and result.effector["q"].shape[:2] == (3, 1)


def test_the_twin_on_the_arm_refuses_cpp_standalone_before_training():
    with pytest.raises(ConfigError, match=r'spiking.target = "cpp_standalone" with effector.kind = "arm26"') as info:
        assembly.experiment_from_text(
            '[effector]\nkind = "arm26"\n[spiking]\ntarget = "cpp_standalone"\n', where="a.toml"
        )
    assert "\n" not in str(info.value) and 'target = "auto"' in str(info.value)
    assembly.experiment_from_text('[effector]\nkind = "arm26"\n')  # the twin runs on the arm by default


def test_the_memory_check_counts_one_network_copy_per_trial_on_the_arm():
    arm = tiny_config(effector={"kind": "arm26"}, spiking={"enabled": True})
    kinematic = tiny_config(spiking={"enabled": True})
    s = preflight.sizes(arm)
    assert s.twin_copies == (arm.task.n_targets + 1) * arm.spiking.trials_per_condition
    assert preflight.sizes(kinematic).twin_copies == 1
    default = load_config("experiments/center_out.toml").with_section("spiking", k=40, trials_per_condition=1)
    on_the_arm = default.with_section("effector", kind="arm26")

    def twin_bytes(config):
        return preflight.estimate_memory(config, ("spiking",)).stage_bytes("spiking")

    assert twin_bytes(on_the_arm) > 1.3 * twin_bytes(default)  # 9 copies of the network (synapses, neurons)


def test_the_readout_the_muscles_get_is_the_sigmoid_of_the_trained_readout():
    y = np.array([[-3.0, 0.0, 2.0, 10.0, -10.0, 0.5]])
    floor = 0.01
    body = Body.make(TASK_DT, excitation_floor=floor)
    batch = TrialBatch(np.zeros((1, 3, 3)), np.zeros((1, 3, 2)), np.ones((1, 3, 1)), TASK_DT, {})
    loop = ArmLoop(body, batch)
    loop.send(0, y)
    np.testing.assert_allclose(loop.e[0], floor + (1 - floor) * expit(y), rtol=1e-14)
