"""The body side of a closed loop is generic: any plant, every size from the plant (:mod:`cortexsim.body`).

Known answers: the generic numpy loop (:class:`BodyLoop`) on the six-muscle arm is the compiled
:class:`ArmLoop`, forward and backward; and the circuit and the ANNs drive a second body, MotorNet's
point mass with four muscles, with gradients exact against finite differences and their own step map
reproducing their simulation.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import directional_error
from tiny import tiny_config

from cortexsim import assembly
from cortexsim.ann import make_ann
from cortexsim.body import ArmLoop, Body, BodyLoop, Feedback, LoopNoise
from cortexsim.closed_loop import ArmANN, ArmRateNetwork
from cortexsim.effector import ArmKernel
from cortexsim.loss import Penalties
from cortexsim.pointmass import PointMassKernel
from cortexsim.tasks import TrialBatch

DT = 0.01


def _config():
    return tiny_config(effector={"kind": "arm26"}, rate={"dtype": "float64", "noise_std": 1.0})


def _arm_body(**feedback) -> Body:
    return Body.make(DT, feedback=Feedback(**feedback), motor_noise=0.1, endpoint_load=np.array([1.0, -2.0]))


def _pointmass_body(**changes) -> Body:
    return Body.make(DT, plant=PointMassKernel(DT), feedback=Feedback(vision_scale=0.1), **changes)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_generic_loop_on_the_arm_is_the_compiled_arm_loop(enabled):
    """Same readouts in, same excitations, arm, sensors and feedback out, and the same adjoint (to rounding)."""
    body = _arm_body(enabled=enabled)
    batch = assembly.make_task(_config()).sample(3, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    noise = LoopNoise(None, *body.noise(3, batch.n_steps, rng))
    compiled, generic = body.loop(batch, noise), BodyLoop(body, batch, noise)
    assert type(compiled) is ArmLoop
    ys = 0.8 * rng.standard_normal((batch.n_steps, 3, 6)) + body.rest_logit()
    for t in range(batch.n_steps):
        np.testing.assert_allclose(generic.step(t, ys[t]), compiled.step(t, ys[t]), rtol=1e-12, atol=1e-12)
    for name in ("e", "s", "z", "f"):
        np.testing.assert_allclose(getattr(generic, name), getattr(compiled, name), rtol=1e-12, atol=1e-12)
    assert np.ptp(compiled.hand) > 1e-3  # the arm moved
    a, b = generic.losses(batch), compiled.losses(batch)
    assert a == pytest.approx(b, rel=1e-12)
    g_f = rng.standard_normal((batch.n_steps, 3, 14))
    for t in reversed(range(batch.n_steps)):
        got = generic.backward_step(t, None if t == batch.n_steps - 1 else g_f[t])
        want = compiled.backward_step(t, None if t == batch.n_steps - 1 else g_f[t])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_every_size_of_the_body_comes_from_its_plant():
    arm, mass = Body.make(DT), _pointmass_body()
    assert (arm.n_muscles, arm.n_feedback, len(arm.feedback_groups)) == (6, 14, 14)
    assert (mass.n_muscles, mass.n_feedback, len(mass.feedback_channels)) == (4, 10, 10)
    assert mass.feedback_channels[0] == "length_upper_right"
    assert mass.feedback_channels[-2:] == ("vision_x", "vision_y")
    assert type(mass.loop(assembly.make_task(_config()).sample(1, np.random.default_rng(0)))) is BodyLoop
    np.testing.assert_allclose(mass.hand0, 0.0)  # MotorNet's frame: the mass starts at the workspace centre
    assert mass.activation0.shape == (4,) and np.ptp(mass.activation0) == 0  # equal co-contraction holds it


def _best_error(loss_and_grad, params, group, direction) -> float:
    """The smallest relative gradient error over centred differences of step 1e-6, 1e-7 and 1e-8.

    The muscles' activation dynamics switch time constant where excitation crosses activation
    (Thelen 2003), and under a held excitation the activation reaches it exactly in floating point:
    a difference that straddles such a switch is off at every step size.  A wrong gradient agrees
    at none of them; a right one at the step that straddles none.
    """
    return min(directional_error(loss_and_grad, params, group, direction, h=h) for h in (1e-6, 1e-7, 1e-8))


def _pointmass_circuit(seed: int = 1) -> ArmRateNetwork:
    config = _config()
    connectome = assembly.build_circuit(config)
    arm = assembly.make_rate_network(config, connectome)
    net = ArmRateNetwork(
        connectome, arm.transfer, DT, arm.input_groups[: arm.n_task_inputs], 1.0, np.float64, 0.1,
        body=_pointmass_body(motor_noise=0.05, endpoint_load=np.array([0.5, -0.3])),
    )  # fmt: skip
    net.init_params(np.random.default_rng(seed))
    rng = np.random.default_rng(seed)
    for p in net.params.values():  # away from the symmetric initial point, so every path carries gradient
        p += 0.05 * rng.standard_normal(p.shape) * (np.abs(p).mean() + 1e-2)
    net.params["w_out"] *= 2
    net.enforce_constraints()
    return net


def test_the_circuit_drives_the_point_mass_with_an_exact_gradient():
    net = _pointmass_circuit()
    assert net.n_outputs == 4 and net.n_inputs == net.n_task_inputs + 10
    batch = assembly.make_task(_config()).sample(3, np.random.default_rng(2))
    noise = net.noise(3, batch.n_steps, np.random.default_rng(3))
    assert np.ptp(net.simulate(batch).outputs) > 1e-3  # the mass moved
    penalties = Penalties(rate_l2=1e-3, rate_cap=10.0, rate_cap_l2=1e-2, weight_l2=1e-3)

    def loss_and_grad():
        return net.loss_and_grad(batch, penalties, noise, w_ref=1.0)

    for group in net.params:
        d = np.random.default_rng(10).standard_normal(net.params[group].shape)
        d = d * net.mask if group == "w" else d * net.in_mask if group == "w_in" else d
        assert _best_error(loss_and_grad, net.params, group, d) < 1e-6, group


@pytest.mark.parametrize("arch", ["rnn", "lstm"])
def test_an_ann_drives_the_point_mass_with_an_exact_gradient(arch):
    body = _pointmass_body()
    model = ArmANN(make_ann(arch, 8, DT, dtype=np.float64, n_inputs=3 + body.n_feedback, n_outputs=4), body)
    model.init_params(np.random.default_rng(4))
    rng = np.random.default_rng(5)
    for p in model.params.values():
        p += 0.1 * rng.standard_normal(p.shape)
    batch = assembly.make_task(_config()).sample(2, rng)
    noise = model.noise(2, batch.n_steps, rng)
    penalties = Penalties(rate_l2=1e-3, rate_cap=2.0, weight_l2=1e-3)

    def loss_and_grad():
        return model.loss_and_grad(batch, penalties, noise, w_ref=1.0)

    for group in model.params:
        d = np.random.default_rng(20).standard_normal(model.params[group].shape)
        assert _best_error(loss_and_grad, model.params, group, d) < 1e-6, (arch, group)


def test_an_ann_refuses_a_body_of_another_size():
    with pytest.raises(Exception, match="must have 13 inputs and 4 outputs"):
        ArmANN(make_ann("gru", 8, DT, n_inputs=3 + 14, n_outputs=6), _pointmass_body())


def test_the_point_mass_loop_is_the_models_own_map():
    """One step of the closed loop's map (circuit, point mass, delay lines) is one step of the simulation."""
    net = _pointmass_circuit(seed=3)
    net = net.with_body(_pointmass_body())  # noise-free feedback and motor: the map is the noise-free loop
    net.noise_std = 0.0
    u = np.array([np.cos(0.4), np.sin(0.4), 0.0])
    inputs = np.broadcast_to(u, (2, 40, 3)).copy()
    run = net.simulate(TrialBatch(inputs, np.zeros((2, 40, 2)), np.ones((2, 40, 1)), DT, {}))
    X = net.map_states(run)
    layout = net.map_layout()
    assert set(layout) == {"circuit", "mass", "sensors"} and X.shape[2] == layout["sensors"].stop
    step, jac = net.step_map(u)
    predicted = step(X[:, :-1].reshape(-1, X.shape[2])).reshape(2, -1, X.shape[2])
    np.testing.assert_allclose(predicted, X[:, 1:], rtol=1e-9, atol=1e-9)
    assert np.ptp(run.outputs) > 1e-4


def test_the_arm_body_keeps_its_numbers():
    """The arm built through the generic path reads what it read before: its rest readings are the kernel's own."""
    body = Body.make(DT)
    z = np.empty((1, 14))
    state = body.plant.initial(1, body.start_posture)
    state[:, 4:] = body.activation0
    body.plant.sense(state, z)
    np.testing.assert_allclose(z[0, :6], body.length0, rtol=1e-12)
    np.testing.assert_allclose(z[0, 12:], body.hand0, rtol=1e-12)
    assert isinstance(body.plant, ArmKernel) and body.arm is body.plant


def test_a_body_plugs_in_by_its_registry_entry():
    """``[effector] kind`` names a plant of ``effector.PLANTS``; the models are built for its sizes."""
    from cortexsim.config import EFFECTOR_KINDS
    from cortexsim.effector import BODIES, PLANTS

    assert set(EFFECTOR_KINDS) - {"kinematic"} == set(PLANTS) == set(BODIES)
    config = tiny_config(effector={"kind": "pointmass24"}, ann={"archs": ["gru"], "n_hidden": 8})
    net = assembly.initial_rate_network(config, assembly.build_circuit(config))
    assert isinstance(net.body.plant, PointMassKernel) and net.n_outputs == 4
    assert net.input_groups[net.n_task_inputs :] == net.body.feedback_groups
    ann = assembly.make_ann_model(config, "gru")
    assert isinstance(ann, ArmANN) and ann.model.n_inputs == 3 + 10 and ann.model.n_outputs == 4
    batch = assembly.make_task(config).evaluation_set()
    run = net.simulate(batch)
    np.testing.assert_allclose(run.outputs[:, 0], 0.0, atol=1e-12)  # the hand starts where the task measures from
    assert run.body.activation.shape[2] == 4
