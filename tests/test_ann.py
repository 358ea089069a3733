"""The ANN baselines: exact gradients, documented equations, the model contract, training."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import directional_error

from cortexsim import metrics
from cortexsim.ann import ARCHITECTURES, DEFAULT_HIDDEN, DEFAULT_TRAIN, make_ann
from cortexsim.errors import ConfigError
from cortexsim.loss import Penalties
from cortexsim.tasks import CenterOutTask, TrialBatch
from cortexsim.train import TrainConfig, new_state, train

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
# strong penalties, so every loss term contributes to the gradient
PENALTIES = Penalties(rate_l2=1e-3, weight_l2=1e-2)
W_REF = 0.2
CASES = [(arch, group) for arch in ARCHITECTURES for group in make_ann(arch, 4, SHORT.dt).groups]
QUIET = {"log": lambda line: None}


def small_network(arch: str, n_hidden: int = 12, noise_std: float = 0.3, dtype=np.float64, seed: int = 0):
    """A small network with every group away from its (often zero) initial value."""
    rng = np.random.default_rng(seed)
    net = make_ann(arch, n_hidden, SHORT.dt, noise_std=noise_std, dtype=dtype)
    net.init_params(rng, gain=1.5)
    scales = net.param_scales()
    net.set_params({k: p + scales[k] * rng.standard_normal(p.shape) for k, p in net.params.items()})
    return net


def directional_check(net, group: str, noise, batch, rng) -> float:
    """Directional gradient check of ``group`` along a random direction."""
    direction = rng.standard_normal(net.params[group].shape)
    return directional_error(
        lambda: net.loss_and_grad(batch, PENALTIES, noise, w_ref=W_REF), net.params, group, direction
    )


@pytest.mark.parametrize(("arch", "group"), CASES)
def test_gradients_match_finite_differences_with_noise(arch, group):
    rng = np.random.default_rng(3)
    net = small_network(arch)
    batch = SHORT.sample(4, rng)
    noise = net.noise(batch.n_trials, batch.n_steps, rng)
    assert directional_check(net, group, noise, batch, rng) < 1e-6


@pytest.mark.parametrize(("arch", "group"), CASES)
def test_gradients_without_noise_and_with_partial_mask(arch, group):
    rng = np.random.default_rng(4)
    net = small_network(arch, noise_std=0.0, seed=5)
    batch = SHORT.sample(3, rng)
    mask = batch.mask.copy()
    mask[:, : batch.n_steps // 2] = 0.0  # only the second half of each trial counts
    mask[0, :, 1] = 0.0  # and only x on the first trial
    batch = TrialBatch(batch.inputs, batch.targets, mask, batch.dt, batch.params)
    assert directional_check(net, group, None, batch, rng) < 1e-6


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_loss_terms_and_stats(arch):
    net = small_network(arch, noise_std=0.0)
    batch = SHORT.sample(3, np.random.default_rng(0))
    loss, grads, stats = net.loss_and_grad(batch, Penalties(rate_l2=0.0, weight_l2=0.0))
    run = net.simulate(batch)
    hidden, outputs = run.activity, run.outputs
    assert set(grads) == set(net.params) and all(grads[k].shape == net.params[k].shape for k in grads)
    task = np.sum((outputs - batch.targets) ** 2) / (batch.mask.sum() * net.output_scale**2)
    assert loss == pytest.approx(task, rel=1e-12) and stats["task_loss"] == pytest.approx(task, rel=1e-12)
    assert stats["r2"] == pytest.approx(metrics.position_r2(outputs, batch.targets, batch.mask), rel=1e-10)
    assert stats["mean_rate"] == pytest.approx(np.abs(hidden).mean())
    assert stats["max_rate"] == pytest.approx(np.abs(hidden).max())
    # the activity term reads |h| = 1 as rate_cap Hz; the weight term is relative to w_ref
    full, _, _ = net.loss_and_grad(batch, Penalties(rate_l2=1e-4, rate_cap=50.0, weight_l2=1e-2), w_ref=W_REF)
    expected = task + 1e-4 * 50.0**2 * np.mean(hidden**2) + 1e-2 * np.mean(net.params["w"] ** 2) / W_REF**2
    assert full == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_float32_matches_float64(arch):
    batch = SHORT.sample(4, np.random.default_rng(0))
    net64 = small_network(arch, dtype=np.float64, noise_std=0.0)
    net32 = small_network(arch, dtype=np.float32, noise_std=0.0)
    net32.set_params(net64.params)
    l64, g64, _ = net64.loss_and_grad(batch, PENALTIES, None, w_ref=W_REF)
    l32, g32, _ = net32.loss_and_grad(batch, PENALTIES, None, w_ref=W_REF)
    assert l32 == pytest.approx(l64, rel=1e-4)
    for k in net64.groups:
        assert g32[k].dtype == np.float32 and net32.params[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=2e-2, atol=1e-4 * np.abs(g64[k]).max())
    y32 = net32.simulate(batch).outputs
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, net64.simulate(batch).outputs, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_simulate_shapes_and_second_output(arch):
    net = small_network(arch, n_hidden=9)
    batch = SHORT.sample(5, np.random.default_rng(0))
    run = net.simulate(batch, np.random.default_rng(1))
    hidden, state, outputs = run.activity, run.state, run.outputs
    assert hidden.shape == (5, batch.n_steps, 9)
    assert state.shape == (5, batch.n_steps, 18 if arch == "lstm" else 9)  # the LSTM's state is [h, c]
    np.testing.assert_array_equal(state[:, :, :9], hidden)
    assert outputs.shape == (5, batch.n_steps, 2)
    assert net.n_units == 9 and net.noise(5, batch.n_steps, np.random.default_rng(0)).shape == (batch.n_steps, 5, 9)
    np.testing.assert_allclose(hidden[:, 0], np.broadcast_to(net.params["h0"], (5, 9)))
    np.testing.assert_allclose(outputs, hidden @ net.params["w_out"].T + net.params["b_out"], atol=1e-12)
    if arch == "lstm":  # the cell state, which is not h
        np.testing.assert_allclose(state[:, 0, 9:], np.broadcast_to(net.params["c0"], (5, 9)))
        assert not np.allclose(state[:, :, 9:], hidden)
    else:
        np.testing.assert_array_equal(state, hidden)
        assert state is not hidden


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_deterministic_for_a_seed(arch):
    batch = SHORT.sample(3, np.random.default_rng(0))
    runs = []
    for _ in range(2):
        net = make_ann(arch, 8, SHORT.dt, noise_std=0.2)
        params = net.init_params(np.random.default_rng(42))
        runs.append((params, net.simulate(batch, np.random.default_rng(7))))
    for k in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][k], runs[1][0][k])
    for field in ("state", "activity", "outputs"):
        np.testing.assert_array_equal(getattr(runs[0][1], field), getattr(runs[1][1], field))
    clean = net.simulate(batch).outputs  # without an rng the run is noise-free and repeatable
    assert not np.array_equal(clean, runs[1][1].outputs)
    np.testing.assert_array_equal(clean, net.simulate(batch).outputs)


def _one_step_reference(arch: str, p: dict, h: np.ndarray, c: np.ndarray, u: np.ndarray, alpha: float):
    """The documented update written out unit by unit (no stacking tricks): (h', c')."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    n = h.size
    block = [slice(i * n, (i + 1) * n) for i in range(4)]
    pre = [p["w_in"][s] @ u + p["b"][s] for s in block[: len(p["b"]) // n]]
    rec = [p["w"][s] @ h for s in block[: len(p["b"]) // n]]
    if arch == "rnn":
        return (1 - alpha) * h + alpha * np.tanh(rec[0] + pre[0]), c
    if arch == "gru":
        r, z = sig(pre[0] + rec[0]), sig(pre[1] + rec[1])
        m = np.tanh(pre[2] + r * (rec[2] + p["b_hn"]))
        return (1 - z) * m + z * h, c
    i, f, g, o = sig(pre[0] + rec[0]), sig(pre[1] + rec[1]), np.tanh(pre[2] + rec[2]), sig(pre[3] + rec[3])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_dynamics_follow_the_documented_equations(arch):
    net = small_network(arch, n_hidden=6, noise_std=0.0)
    batch = SHORT.sample(2, np.random.default_rng(0))
    run = net.simulate(batch)
    hidden, state = run.activity, run.state[:, :, 6:]  # the LSTM's cell state c (unused otherwise)
    p = net.params
    alpha = getattr(net, "alpha", 1.0)
    for trial in range(2):
        for t in (0, 7, batch.n_steps - 2):
            c = state[trial, t] if arch == "lstm" else None
            h_next, c_next = _one_step_reference(arch, p, hidden[trial, t], c, batch.inputs[trial, t], alpha)
            np.testing.assert_allclose(hidden[trial, t + 1], h_next, rtol=1e-12, atol=1e-12)
            if arch == "lstm":
                np.testing.assert_allclose(state[trial, t + 1], c_next, rtol=1e-12, atol=1e-12)


def test_rnn_leak_matches_exponential_and_noise_has_stated_sd():
    """No recurrence, no input: h relaxes to tanh(b) as 1 - (1 - a)^k; noise SD is the stationary SD."""
    net = make_ann("rnn", 5, SHORT.dt, noise_std=0.1, tau=0.05)
    net.init_params(np.random.default_rng(0))
    params = {k: np.zeros_like(p) for k, p in net.params.items()}
    params["b"] = np.linspace(-1, 1, 5)
    net.set_params(params)
    batch = CenterOutTask().sample(300, np.random.default_rng(0))
    batch.inputs[:] = 0.0
    hidden = net.simulate(batch).activity
    k = np.arange(batch.n_steps)[:, None]
    np.testing.assert_allclose(hidden[0], np.tanh(params["b"]) * (1 - (1 - net.alpha) ** k), atol=1e-12)
    noisy = net.simulate(batch, np.random.default_rng(1)).activity
    sd = (noisy - hidden)[:, 60:].std(axis=(0, 1))  # long after the start (tau = 5 steps)
    a = net.alpha
    np.testing.assert_allclose(sd, 0.1 * np.sqrt(2 * a / (1 - (1 - a) ** 2)), rtol=0.05)  # exact for the AR(1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_loss_falls_within_seconds(arch):
    net = make_ann(arch, 24, SHORT.dt, noise_std=0.05)
    params = net.init_params(np.random.default_rng(0))
    state = new_state(params, net.param_scales(), np.random.default_rng(1), np.random.default_rng(2))
    cfg = TrainConfig(
        batch_size=16,
        max_iterations=200,
        validation_trials=16,
        eval_every=20,
        log_every=1000,
        learning_rate=DEFAULT_TRAIN[arch]["learning_rate"],
    )
    state = train(net, SHORT, cfg, state, validation=SHORT.sample(16, np.random.default_rng(7)), **QUIET)
    loss = np.asarray(state.history["task_loss"])
    assert loss[-20:].mean() < 0.3 * loss[:10].mean()
    assert max(state.history["val_r2"]) > 0.7


def test_unknown_arch_and_bad_arguments_are_errors():
    with pytest.raises(ConfigError, match="'transformer' is not allowed.*rnn, gru, lstm"):
        make_ann("transformer", 8, 0.01)
    with pytest.raises(ValueError, match="did you mean 'gru'"):
        make_ann("gru2", 8, 0.01)
    with pytest.raises(ConfigError, match="tau"):
        make_ann("rnn", 8, 0.01, tau=0.005)
    with pytest.raises(ConfigError, match="only the leaky 'rnn'"):
        make_ann("lstm", 8, 0.01, tau=0.05)
    with pytest.raises(ConfigError, match="n_hidden"):
        make_ann("gru", 0, 0.01)
    with pytest.raises(ConfigError, match="noise_std"):
        make_ann("rnn", 8, 0.01, noise_std=-1.0)
    net = make_ann("lstm", 8, 0.01)
    with pytest.raises(ValueError, match="missing parameter groups"):
        net.set_params({"w": np.zeros((32, 8))})
    params = net.init_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        net.set_params({**params, "w": np.zeros((8, 8))})
    with pytest.raises(ConfigError, match="dt"):
        net.simulate(CenterOutTask(dt=0.005).evaluation_set())


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_trains_to_the_task_with_the_defaults(arch, request):
    if "slow" not in request.config.getoption("markexpr"):  # pyproject does not deselect `slow` by default
        pytest.skip("slow (10-30 s per architecture): run with `pytest -m slow`")
    task = CenterOutTask()
    net = make_ann(arch, DEFAULT_HIDDEN, task.dt, dtype=np.float32, output_scale=task.reach_distance)
    params = net.init_params(np.random.default_rng(0))
    state = new_state(params, net.param_scales(), np.random.default_rng(1), np.random.default_rng(2))
    cfg = TrainConfig(**{**DEFAULT_TRAIN[arch], "log_every": 10_000})
    train(net, task, cfg, state, validation=task.sample(cfg.validation_trials, np.random.default_rng(7)), **QUIET)
    test = task.sample(400, np.random.default_rng(12345))
    outputs = net.simulate(test).outputs
    assert metrics.position_r2(outputs, test.targets, test.mask) >= 0.98
    assert metrics.endpoint_error_cm(outputs, test) < 0.5
    assert metrics.catch_drift_cm(outputs, test) < 1.0
