"""Every model follows one contract (:mod:`cortexsim.model`): a typed trajectory and its own one-step map.

For every model kind -- the rate circuit, each ANN, and each of them driving the arm -- one step of the
model's ``step_map`` reproduces one step of its own ``simulate`` (so the dynamics analyses, which ask the
model for its map, analyse the model that was simulated), and ``cs.evaluate(...).activity`` is the array
``cortexsim run`` writes for that model: the circuit's rates, every ANN's hidden state h (the LSTM too).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from tiny import SMOKE, tiny_config

import cortexsim as cs
from cortexsim import assembly
from cortexsim.ann import make_ann
from cortexsim.model import Model, Trajectory
from cortexsim.tasks import CenterOutTask

KINDS = ["rate", "rnn", "gru", "lstm", "arm:rate", "arm:rnn", "arm:gru", "arm:lstm"]


def _model(kind: str):
    """A model of ``kind`` with random weights strong enough that every term of its update matters (float64)."""
    body, _, name = kind.rpartition(":")
    effector = {"kind": "arm26", "proprioception_noise": 0.0, "vision_noise": 0.0} if body else {"kind": "kinematic"}
    config = tiny_config(
        effector=effector, rate={"dtype": "float64"}, ann={"archs": [], "n_hidden": 10, "dtype": "float64"}
    )
    rng = np.random.default_rng(KINDS.index(kind))
    if name == "rate":
        model = assembly.initial_rate_network(config, assembly.build_circuit(config))
        params = {k: v.copy() for k, v in model.params.items()}
        params["w_out"] = params["w_out"] * 40 + 0.002 * rng.standard_normal(params["w_out"].shape)
        params["w_in"] += 0.5 * rng.standard_normal(params["w_in"].shape) * (params["w_in"] != 0)
    else:
        model = assembly.make_ann_model(config, name)
        params = {k: v.copy() for k, v in model.params.items()}
        params["w_out"] = 2.0 * rng.standard_normal(params["w_out"].shape)
        params["w_in"] += 0.5 * rng.standard_normal(params["w_in"].shape)
    model.set_params(params)
    return model, config


@pytest.fixture(scope="module", params=KINDS)
def model_and_batch(request):
    model, config = _model(request.param)
    batch = assembly.make_task(config).sample(3, np.random.default_rng(7))
    return request.param, model, batch


def test_simulate_returns_a_trajectory_with_named_fields(model_and_batch):
    kind, model, batch = model_and_batch
    assert isinstance(model, Model)
    run = model.simulate(batch)
    assert isinstance(run, Trajectory)
    n, T = batch.n_trials, batch.n_steps
    assert run.activity.shape[:2] == run.state.shape[:2] == run.outputs.shape[:2] == (n, T)
    assert run.outputs.shape[2] == 2  # the hand, (m)
    assert (run.body is not None) == kind.startswith("arm:")
    if kind.endswith("lstm"):  # the state is [h, c]; the compared activity is h
        assert run.state.shape[2] == 2 * run.activity.shape[2]
        np.testing.assert_array_equal(run.state[:, :, : run.activity.shape[2]], run.activity)
    elif not kind.endswith("rate"):
        np.testing.assert_array_equal(run.state, run.activity)


def test_one_step_of_the_models_map_is_one_step_of_its_simulation(model_and_batch):
    """The map under the input of step t takes the simulated state at t to the simulated state at t + 1.

    The batch's inputs change over a trial (target on, go cue), so each step uses the input it had.
    """
    kind, model, batch = model_and_batch
    run = model.simulate(batch)
    X = model.map_states(run)
    layout = model.map_layout()
    assert X.shape[2] == max(part.stop for part in layout.values())
    go = int(round(float(batch.params["go"][0]) / batch.dt))
    checked = 0
    for t in sorted({1, go - 2, go + 3, go + 15, batch.n_steps - 2}):
        for i in range(batch.n_trials):
            step, jac = model.step_map(batch.inputs[i, t])
            np.testing.assert_allclose(step(X[i, t][None])[0], X[i, t + 1], rtol=1e-9, atol=1e-9)
            checked += 1
    assert checked >= 10
    assert np.ptp(X[:, :, layout[next(iter(layout))]]) > 1e-3  # the model's own state moved


def test_the_maps_jacobian_is_the_derivative_of_its_step(model_and_batch):
    kind, model, batch = model_and_batch
    # after the go cue, while the arm moves: at rest the excitation equals the activation, the switch
    # between activation and deactivation time constants, where the plant's derivative is one-sided
    t = int(round(float(batch.params["go"][0]) / batch.dt)) + 10
    X = model.map_states(model.simulate(batch))[:, t]
    step, jac = model.step_map(batch.inputs[0, t])
    V = np.random.default_rng(1).standard_normal(X.shape)
    h = 1e-6
    fd = (step(X + h * V) - step(X - h * V)) / (2 * h)
    np.testing.assert_allclose(np.einsum("mij,mj->mi", jac.full(X), V), fd, rtol=1e-5, atol=1e-7)


def test_a_lesioned_circuit_maps_its_silenced_units_to_zero_rate():
    """The map is the lesioned network's own: silenced units feed nothing forward."""
    model, config = _model("rate")
    silenced = np.zeros(model.n_units, bool)
    silenced[:20] = True
    lesioned = model.lesioned(silenced=silenced)
    batch = CenterOutTask(dt=model.dt).sample(2, np.random.default_rng(3))
    run = lesioned.simulate(batch)
    assert np.all(run.activity[:, :, :20] == 0)
    X = lesioned.map_states(run)
    step, _ = lesioned.step_map(batch.inputs[1, 30])
    np.testing.assert_allclose(step(X[1, 30][None])[0], X[1, 31], rtol=1e-9, atol=1e-9)


def test_the_lstm_activity_is_h_and_its_state_carries_c():
    """The API's LSTM activity used to be the cell state c: now ``activity`` is h for every ANN."""
    model = make_ann("lstm", n_hidden=5, dt=0.01)
    model.init_params(np.random.default_rng(0), gain=1.3)
    batch = CenterOutTask(dt=0.01).sample(2, np.random.default_rng(0))
    run = model.simulate(batch)
    y = run.activity @ model.params["w_out"].T + model.params["b_out"]
    np.testing.assert_allclose(y, run.outputs, rtol=1e-12, atol=1e-12)  # the readout reads h
    c = run.state[:, :, 5:]
    assert not np.allclose(c, run.activity)


@pytest.fixture(scope="module")
def smoke_file(smoke_run):
    return smoke_run / "run.h5"


@pytest.mark.parametrize("name", ["rate", "ann:rnn", "ann:gru", "ann:lstm"])
def test_evaluate_activity_is_what_the_run_writes(smoke_file, name):
    """``cs.evaluate(model, config, prefix).activity`` equals ``/rate/rates`` or ``/ann/<arch>/hidden``."""
    config = cs.load_experiment(SMOKE)
    kind, _, arch = name.partition(":")
    if kind == "rate":
        model, _ = cs.train_rate(config, log=lambda line: None)
        path, prefix = "/rate/rates", "rate"
    else:
        assert arch in config.ann.archs
        model, _ = cs.train_ann(config, arch, log=lambda line: None)
        path, prefix = f"/ann/{arch}/hidden", f"ann_{arch}"
    evaluated = cs.evaluate(model, config, prefix)
    with h5py.File(smoke_file, "r") as f:
        written = f[path][()]
    assert written.shape == evaluated.activity.shape
    np.testing.assert_array_equal(evaluated.activity.astype(written.dtype), written)
