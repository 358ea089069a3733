"""The circuit driving the six-muscle arm in closed loop: exact gradients, time convention, config."""

import numpy as np
import pytest
from gradcheck import directional_error

from cortexsim import anatomy, assembly
from cortexsim.closed_loop import FEEDBACK_CHANNELS, ArmANN, ArmRateNetwork, LoopNoise
from cortexsim.config import Config
from cortexsim.errors import ConfigError
from cortexsim.loss import Penalties

SHORT_TASK = dict(
    delay_min=0.05,
    delay_max=0.1,
    eval_delay=0.1,
    fixation=0.05,
    reach_duration=0.1,
    reaction_time=0.05,
    hold=0.05,
    go_duration=0.03,
)


def _config(**effector) -> Config:
    cfg = Config().with_section("circuit", n_units=60).with_section("rate", dtype="float64", noise_std=1.0)
    return cfg.with_section("task", **SHORT_TASK).with_section("effector", kind="arm26", **effector)


def _network(cfg: Config, seed: int = 1) -> ArmRateNetwork:
    net = assembly.initial_rate_network(cfg, assembly.build_circuit(cfg))
    rng = np.random.default_rng(seed)
    for p in net.params.values():  # away from the symmetric initial point, so every path carries gradient
        p += 0.05 * rng.standard_normal(p.shape) * (np.abs(p).mean() + 1e-2)
    net.params["w_out"] *= 50
    net.enforce_constraints()
    return net


CASES = {
    "feedback, load, all noise": dict(motor_noise=0.1, endpoint_load=[1.0, -2.0]),
    "no feedback noise, no load": dict(proprioception_noise=0.0, vision_noise=0.0),
    "zero delays": dict(proprioception_delay=0.0, vision_delay=0.0, motor_noise=0.05),
}


@pytest.mark.parametrize("case", list(CASES) + ["feedback off", "curl field"])
def test_gradient_of_every_group_matches_finite_differences(case):
    cfg = _config(**CASES.get(case, {}))
    net = _network(cfg)
    if case == "feedback off":
        net = net.without_feedback()
    if case == "curl field":  # the hand in F = B v: the field's torque depends on q and dq
        net = net.with_body(net.body.with_curl([[0.0, 13.0], [-13.0, 0.0]]))
        assert net.arm.curl[0, 1] == 13.0
    rng = np.random.default_rng(2)
    batch = assembly.make_task(cfg).sample(3, rng)
    noise = net.noise(3, batch.n_steps, rng)
    penalties = Penalties(rate_l2=1e-3, rate_cap=10.0, rate_cap_l2=1e-2, weight_l2=1e-3)

    def loss_and_grad():
        return net.loss_and_grad(batch, penalties, noise, w_ref=1.0)

    for group in net.params:
        shape = net.params[group].shape
        for trial in range(2):
            d = np.random.default_rng(10 + trial).standard_normal(shape)
            if group == "w":
                d *= net.mask
            if group == "w_in":
                d *= net.in_mask
            # h = 1e-7: the muscles' force-velocity slope jumps (x2) where a fibre's velocity changes
            # sign, and the arm starts at rest, so a larger step can straddle that kink
            err = directional_error(loss_and_grad, net.params, group, d, h=1e-7)
            assert err < 1e-6, (case, group, err)


def test_gradient_with_feedback_off_has_no_feedback_weight_gradient():
    cfg = _config()
    net = _network(cfg).without_feedback()
    batch = assembly.make_task(cfg).sample(2, np.random.default_rng(0))
    _, grads, _ = net.loss_and_grad(batch)
    assert np.all(grads["w_in"][:, net.n_task_inputs :] == 0)
    assert np.any(grads["w_in"][:, : net.n_task_inputs] != 0)


def test_loop_time_convention_and_feedback_delays():
    cfg = _config(proprioception_noise=0.0, vision_noise=0.0)
    net = _network(cfg)
    batch = assembly.make_task(cfg).evaluation_set()
    loop = net.simulate_loop(batch)
    n, T = batch.n_trials, batch.n_steps
    assert loop.hand.shape == (n, T, 2) and loop.q.shape == (n, T, 2) and loop.activation.shape == (n, T, 6)
    assert loop.feedback.shape == (n, T, len(FEEDBACK_CHANNELS))
    np.testing.assert_allclose(loop.hand[:, 0], 0.0, atol=1e-12)  # the start position
    np.testing.assert_allclose(loop.hand_shoulder[:, 0], np.broadcast_to(net.body.hand0, (n, 2)), atol=1e-12)
    # vision at t is the hand at t - 7 relative to the target then, in units of the reach
    d = net.feedback.vision_delay
    goal = batch.inputs[:, :, :2] * cfg.task.reach_distance
    expected = (loop.hand[:, 10 - d] - goal[:, 10 - d]) / cfg.task.reach_distance
    np.testing.assert_allclose(loop.feedback[:, 10, 12:], expected, atol=1e-12)
    # before the proprioceptive delay has elapsed, the sensors report the start posture
    np.testing.assert_allclose(loop.feedback[:, : net.feedback.proprioception_delay + 1, :12], 0.0, atol=1e-12)
    # simulate gives the hand as the output
    out = net.simulate(batch).outputs
    np.testing.assert_array_equal(out, loop.hand)


def test_initial_circuit_holds_the_arm_at_rest_without_inputs():
    cfg = _config(proprioception_noise=0.0, vision_noise=0.0)
    net = assembly.initial_rate_network(cfg, assembly.build_circuit(cfg))
    batch = assembly.make_task(cfg).evaluation_set()
    batch.inputs[...] = 0.0
    loop = net.simulate_loop(batch)
    # the start posture is a static but unstable equilibrium: no input, no motion (to rounding)
    assert np.abs(loop.hand).max() < 1e-6


def test_noise_object_and_plain_process_noise():
    cfg = _config(motor_noise=0.1)
    net = _network(cfg)
    noise = net.noise(2, 10, np.random.default_rng(0))
    assert isinstance(noise, LoopNoise)
    assert noise.process.shape == (10, 2, net.n_units) and noise.sensory.shape == (10, 2, 14)
    assert noise.motor.shape == (10, 2, 6)


def test_feedback_targets_are_wired_by_the_effector_config():
    cfg = _config(vision_targets=["IT2/3"])
    spec = anatomy.circuit_spec(cfg)
    assert spec.inputs["vision"] == ("IT2/3",)
    assert spec.inputs["proprioception"] == ("IT2/3", "IT4", "IT5A", "PT5B")
    assert "vision" not in anatomy.circuit_spec(Config()).inputs  # the kinematic circuit is unchanged


@pytest.mark.parametrize(
    "text, message",
    [
        ('kind = "arm27"', "effector.kind"),
        ("vision_delay = 0.075", "whole number of task steps"),
        ('vision_targets = ["PT5"]', "PT5B"),
        ("proprioception_noise = -0.1", "effector.proprioception_noise"),
        ("start_posture_deg = [45.0]", "start_posture_deg"),
        ("substeps = 1", "effector.substeps"),
    ],
)
def test_bad_effector_config_is_one_clear_error(text, message):
    head = "[effector]\n" if "kind" in text else '[effector]\nkind = "arm26"\n'
    with pytest.raises(ConfigError, match=message) as info:
        assembly.experiment_from_text(f"[spiking]\nenabled = false\n{head}{text}\n", where="arm.toml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("case", ["feedback, load, all noise", "feedback off"])
def test_ann_on_the_arm_gradient_matches_finite_differences(arch, case):
    cfg = _config(**CASES.get(case, {})).with_section("ann", n_hidden=12, dtype="float64")
    model = assembly.make_ann_model(cfg, arch)
    assert isinstance(model, ArmANN)
    if case == "feedback off":
        model.body = model.body.with_feedback(False)
    rng = np.random.default_rng(3)
    for p in model.params.values():
        p += 0.1 * rng.standard_normal(p.shape)
    model.params["w_out"] *= 30
    model.model.noise_std = 0.05
    batch = assembly.make_task(cfg).sample(3, rng)
    noise = model.noise(3, batch.n_steps, rng)
    penalties = Penalties(rate_l2=1e-3, rate_cap=2.0, weight_l2=1e-3)

    def loss_and_grad():
        return model.loss_and_grad(batch, penalties, noise, w_ref=1.0)

    for group in model.params:
        d = np.random.default_rng(20).standard_normal(model.params[group].shape)
        err = directional_error(loss_and_grad, model.params, group, d, h=1e-7)
        assert err < 1e-6, (arch, case, group, err)


def test_ann_on_the_arm_simulates_the_same_loop():
    cfg = _config(proprioception_noise=0.0, vision_noise=0.0).with_section("ann", n_hidden=12)
    model = assembly.make_ann_model(cfg, "gru")
    batch = assembly.make_task(cfg).evaluation_set()
    loop = model.simulate_loop(batch)
    np.testing.assert_allclose(loop.hand[:, 0], 0.0, atol=1e-12)
    run = model.simulate(batch)
    hidden, hand = run.activity, run.outputs
    assert hidden.shape == (batch.n_trials, batch.n_steps, 12) and hand.shape == (batch.n_trials, batch.n_steps, 2)
    np.testing.assert_array_equal(hand, loop.hand)
    # at initialisation the readout bias holds the arm at the same co-contraction as the circuit's
    circuit = assembly.initial_rate_network(cfg, assembly.build_circuit(cfg))
    np.testing.assert_allclose(model.body.activation0, circuit.body.activation0)


def test_a_batch_brings_its_own_endpoint_load():
    cfg = _config(proprioception_noise=0.0, vision_noise=0.0)
    net = _network(cfg)
    batch = assembly.make_task(cfg).evaluation_set()
    loaded = _config(proprioception_noise=0.0, vision_noise=0.0, endpoint_load=[3.0, -1.0])
    net_loaded = _network(loaded)
    force = np.broadcast_to([3.0, -1.0], (batch.n_trials, batch.n_steps, 2)).copy()
    per_batch = type(batch)(batch.inputs, batch.targets, batch.mask, batch.dt, {**batch.params, "endpoint_load": force})
    a = net_loaded.simulate_loop(batch).hand
    b = net.simulate_loop(per_batch).hand
    np.testing.assert_array_equal(a, b)
    assert np.abs(b - net.simulate_loop(batch).hand).max() > 1e-3  # 3 N moves the hand
    params = {**batch.params, "endpoint_load": force[:, :5]}
    bad = type(batch)(batch.inputs, batch.targets, batch.mask, batch.dt, params)
    with pytest.raises(ConfigError, match="endpoint_load has shape"):
        net.simulate(bad)
