"""The rate network: exact gradients, Dale's law, analytic dynamics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import directional_error

from cortexsim.anatomy import default_m1_spec
from cortexsim.circuit import build_connectome
from cortexsim.errors import ConfigError
from cortexsim.loss import Penalties
from cortexsim.rate import GROUPS, RateNetwork
from cortexsim.tasks import CenterOutTask
from cortexsim.train import TrainConfig, new_state, train
from cortexsim.transfer import make_transfer

SHORT = CenterOutTask(
    dt=0.01,
    fixation=0.05,
    delay_min=0.05,
    delay_max=0.1,
    reaction_time=0.05,
    reach_duration=0.1,
    hold=0.05,
    eval_delay=0.05,
    catch_fraction=0.3,
)
# strong penalties with a low cap, so every loss term contributes to the gradient
PENALTIES = Penalties(rate_l2=1e-4, rate_cap=8.0, rate_cap_l2=1e-2, weight_l2=1e-2)


def small_network(
    transfer: str = "lif_softplus",
    n_units: int = 40,
    seed: int = 0,
    noise_std: float = 1.5,
    dtype=np.float64,
    spec=None,
) -> RateNetwork:
    rng = np.random.default_rng(seed)
    connectome = build_connectome(spec or default_m1_spec(), n_units, rng)
    net = RateNetwork(connectome, make_transfer(transfer), SHORT.dt, noise_std=noise_std, dtype=dtype)
    net.init_params(rng)
    return net


def directional_check(net: RateNetwork, group: str, noise, batch, rng) -> float:
    """Directional gradient check of ``group`` inside the mask (and ``w >= 0``)."""
    allowed = {"w": net.mask, "w_in": net.in_mask}.get(group, np.ones_like(net.params[group], bool))
    direction = rng.standard_normal(net.params[group].shape) * allowed
    if group == "w":  # stay inside w >= 0 so the projection never acts
        direction *= 0.1 * net.params["w"]
    return directional_error(
        lambda: net.loss_and_grad(batch, PENALTIES, noise, w_ref=0.01), net.params, group, direction
    )


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("transfer", ["lif_softplus", "rectified_tanh", "softplus"])
def test_gradients_match_finite_differences(group, transfer):
    rng = np.random.default_rng(3)
    net = small_network(transfer)
    batch = SHORT.sample(4, rng)
    noise = net.noise(batch.n_trials, batch.n_steps, rng)
    assert directional_check(net, group, noise, batch, rng) < 1e-6


@pytest.mark.parametrize("group", GROUPS)
def test_gradients_without_noise_and_with_partial_mask(group):
    rng = np.random.default_rng(4)
    net = small_network(noise_std=0.0, seed=5)
    batch = SHORT.sample(3, rng)
    mask = batch.mask.copy()
    mask[:, : batch.n_steps // 2] = 0.0  # only the second half of each trial counts
    batch = type(batch)(batch.inputs, batch.targets, mask, batch.dt, batch.params)
    assert directional_check(net, group, None, batch, rng) < 1e-6


def test_gradient_is_zero_off_the_mask_and_inputs():
    rng = np.random.default_rng(0)
    net = small_network()
    batch = SHORT.sample(3, rng)
    _, grads, _ = net.loss_and_grad(batch, PENALTIES, None)
    assert np.all(grads["w"][~net.mask] == 0)
    assert np.all(grads["w_in"][~net.in_mask] == 0)
    assert np.any(grads["w"][net.mask] != 0)


def test_leaky_decay_matches_exponential():
    """With no recurrence and no input, x relaxes to b as 1 - (1 - dt/tau)^k ~ exp(-t/tau)."""
    net = small_network(noise_std=0.0)
    params = {k: np.zeros_like(p) for k, p in net.params.items()}
    params["b"] = np.full(net.n_units, 4.0)
    params["w_out"] = net.params["w_out"]
    net.set_params(params)
    batch = SHORT.evaluation_set()
    states = net.simulate(batch).state
    k = np.arange(batch.n_steps)
    expected = 4.0 * (1 - (1 - net.alpha[None, :]) ** k[:, None])
    np.testing.assert_allclose(states[0], expected, rtol=1e-10, atol=1e-12)
    # and the Euler solution is within first-order error of the exact exponential
    exact = 4.0 * (1 - np.exp(-k[:, None] * SHORT.dt / net.connectome.tau[None, :]))
    assert np.max(np.abs(states[0] - exact)) < 4.0 * 0.5 * np.max(net.alpha)


def test_noise_has_the_stated_stationary_sd():
    net = small_network(noise_std=2.0)
    params = {k: np.zeros_like(p) for k, p in net.params.items()}
    params["w_out"] = net.params["w_out"]
    net.set_params(params)
    task = CenterOutTask()
    batch = task.sample(200, np.random.default_rng(0))
    states = net.simulate(batch, np.random.default_rng(1)).state
    late = states[:, 100:]  # long after the start (time constants <= 50 ms)
    sd = late.std(axis=(0, 1))
    alpha = net.alpha
    expected = 2.0 * np.sqrt(2 * alpha / (1 - (1 - alpha) ** 2))  # exact for the discrete AR(1)
    np.testing.assert_allclose(sd, expected, rtol=0.1)


def test_dale_and_mask_hold_after_training():
    net = small_network(n_units=40)
    signs = net.sign.copy()
    state = new_state(net.params, net.param_scales(), np.random.default_rng(1), np.random.default_rng(2))
    cfg = TrainConfig(
        batch_size=8, max_iterations=25, validation_trials=8, eval_every=5, log_every=100, learning_rate=0.05
    )
    train(net, SHORT, cfg, state, validation=SHORT.sample(8, np.random.default_rng(7)), log=lambda s: None)
    w = net.params["w"]
    assert np.all(w >= 0) and np.all(w[~net.mask] == 0)
    signed = net.signed_weight()
    assert np.all(signed[:, signs > 0] >= 0) and np.all(signed[:, signs < 0] <= 0)
    assert np.all(net.params["w_in"][~net.in_mask] == 0)
    trained = net.to_connectome()
    assert np.all(trained.weight >= 0)
    np.testing.assert_array_equal(trained.pre, net.connectome.pre)


def test_float32_matches_float64():
    rng = np.random.default_rng(0)
    net64 = small_network(dtype=np.float64)
    net32 = small_network(dtype=np.float32)
    net32.set_params(net64.params)
    batch = SHORT.sample(4, rng)
    l64, g64, _ = net64.loss_and_grad(batch, PENALTIES, None, w_ref=0.01)
    l32, g32, _ = net32.loss_and_grad(batch, PENALTIES, None, w_ref=0.01)
    assert l32 == pytest.approx(l64, rel=1e-4)
    for k in GROUPS:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-2, atol=1e-4 * np.abs(g64[k]).max())


def test_dt_not_smaller_than_tau_is_an_error():
    connectome = build_connectome(default_m1_spec(), 40, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="smallest time constant"):
        RateNetwork(connectome, make_transfer("relu"), dt=0.025)


def test_negative_tau_and_unknown_transfer_are_errors():
    with pytest.raises(ConfigError, match="tau"):
        default_m1_spec().with_overrides({"tau": {"PV2/3": -0.01}})
    with pytest.raises(ConfigError, match="rate.transfer"):
        make_transfer("sigmoid")


def test_init_sits_at_a_fixed_point():
    net = small_network(noise_std=0.0)
    batch = SHORT.sample(2, np.random.default_rng(0))
    batch.inputs[:] = 0.0
    run = net.simulate(batch)
    rates, outputs = run.activity, run.outputs
    np.testing.assert_allclose(rates, 5.0, rtol=1e-6)
    np.testing.assert_allclose(outputs, 0.0, atol=1e-9)
