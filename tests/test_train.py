"""The trainer: learning happens, resume is exact, NaN stops cleanly, bad config is refused."""

from __future__ import annotations

import copy
import os
import signal

import numpy as np
import pytest

from cortexsim import store
from cortexsim.anatomy import default_m1_spec
from cortexsim.circuit import build_connectome
from cortexsim.errors import TrainingError
from cortexsim.rate import RateNetwork
from cortexsim.tasks import CenterOutTask
from cortexsim.train import TrainConfig, new_state, train
from cortexsim.transfer import make_transfer

TASK = CenterOutTask(
    fixation=0.1, delay_min=0.1, delay_max=0.2, reaction_time=0.1, reach_duration=0.2, hold=0.1, eval_delay=0.1
)
QUIET = {"log": lambda line: None}


def val(cfg: TrainConfig, task: CenterOutTask = TASK):
    """A fixed validation set for ``cfg``."""
    return task.sample(cfg.validation_trials, np.random.default_rng([7, 7, 7]))


def network(seed: int = 0, n_units: int = 80) -> RateNetwork:
    rng = np.random.default_rng(seed)
    net = RateNetwork(
        build_connectome(default_m1_spec(), n_units, rng), make_transfer("lif_softplus"), TASK.dt, noise_std=1.0
    )
    net.init_params(rng)
    return net


def fresh_state(net: RateNetwork):
    return new_state(net.params, net.param_scales(), np.random.default_rng(1), np.random.default_rng(2))


def test_loss_falls_within_seconds():
    net = network()
    cfg = TrainConfig(batch_size=16, max_iterations=150, validation_trials=16, eval_every=25, log_every=1000)
    state = train(net, TASK, cfg, fresh_state(net), validation=val(cfg), **QUIET)
    loss = np.asarray(state.history["task_loss"])
    assert loss[-20:].mean() < 0.5 * loss[:10].mean()
    assert state.history["val_r2"][-1] > state.history["val_r2"][0] + 0.2


@pytest.mark.parametrize("clean_fraction", [0.0, 0.5])
def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path, clean_fraction):
    cfg = TrainConfig(
        batch_size=8,
        max_iterations=24,
        validation_trials=8,
        eval_every=4,
        log_every=1000,
        checkpoint_every=10,
        learning_rate=0.01,
        clean_fraction=clean_fraction,
    )
    net = network()
    whole = train(net, TASK, cfg, fresh_state(net), validation=val(cfg), **QUIET)

    # the same run, checkpointed to HDF5 and "killed" at iteration 10
    path = tmp_path / "run.h5"
    with store.open_for_update(path, store.provenance("", 0)):
        pass

    class Stop(Exception):
        pass

    def checkpoint(state):
        with store.open_for_update(path) as f:
            store.write_training(f, state, "")
        if state.iteration == 10:
            raise Stop

    net = network()
    with pytest.raises(Stop):
        train(net, TASK, cfg, fresh_state(net), validation=val(cfg), checkpoint=checkpoint, **QUIET)
    with store.open_run(path) as f:
        resumed_state = store.read_training_state(f)
    assert resumed_state.iteration == 10
    net = network()
    resumed = train(net, TASK, cfg, resumed_state, validation=val(cfg), **QUIET)

    for key in ("loss", "grad_norm", "val_r2"):
        np.testing.assert_array_equal(resumed.history[key], whole.history[key])
    for key in whole.params:
        np.testing.assert_array_equal(resumed.params[key], whole.params[key])


def test_nan_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    net = network()
    cfg = TrainConfig(
        batch_size=4, max_iterations=50, validation_trials=4, eval_every=5, log_every=1000, checkpoint_every=5
    )
    saved = []
    original = net.loss_and_grad

    def poisoned(batch, *args, **kwargs):
        loss, grads, stats = original(batch, *args, **kwargs)
        return (float("nan") if len(saved) >= 1 else loss), grads, stats

    net.loss_and_grad = poisoned
    with pytest.raises(TrainingError, match="loss became nan at iteration 5"):
        train(
            net,
            TASK,
            cfg,
            fresh_state(net),
            validation=val(cfg),
            checkpoint=lambda s: saved.append(s.iteration),
            **QUIET,
        )
    assert saved == [5]


def _sigint_during(net: RateNetwork, iterations: tuple[int, ...]) -> None:
    """Make ``net`` send itself a real SIGINT while computing the gradient of these iterations (1-based)."""
    original, calls = net.loss_and_grad, []

    def interrupted(batch, *args, **kwargs):
        calls.append(1)
        if len(calls) in iterations:
            os.kill(os.getpid(), signal.SIGINT)
        return original(batch, *args, **kwargs)

    net.loss_and_grad = interrupted


def test_ctrl_c_finishes_the_iteration_and_the_resumed_run_equals_an_uninterrupted_one():
    cfg = TrainConfig(
        batch_size=4, max_iterations=12, validation_trials=4, eval_every=3, log_every=1000, checkpoint_every=100
    )
    whole = train(network(), TASK, cfg, fresh_state(network()), validation=val(cfg), **QUIET)
    net, saved, lines = network(), [], []
    _sigint_during(net, (4,))
    with pytest.raises(KeyboardInterrupt):
        train(
            net,
            TASK,
            cfg,
            fresh_state(net),
            validation=val(cfg),
            checkpoint=lambda s: saved.append(copy.deepcopy(s)),
            log=lines.append,
        )
    assert [s.iteration for s in saved] == [4]  # the iteration under way when Ctrl-C came was finished
    assert "interrupted at iteration 4; checkpoint saved" in lines[-1]
    resumed = train(network(), TASK, cfg, saved[0], validation=val(cfg), **QUIET)
    for key in ("loss", "grad_norm", "val_r2"):
        np.testing.assert_array_equal(resumed.history[key], whole.history[key])
    for key in whole.params:
        np.testing.assert_array_equal(resumed.params[key], whole.params[key])


def test_a_second_ctrl_c_stops_at_once_and_saves_nothing_half_done():
    cfg = TrainConfig(
        batch_size=4, max_iterations=12, validation_trials=4, eval_every=3, log_every=1000, checkpoint_every=2
    )
    net, saved, lines = network(), [], []
    original, calls = net.loss_and_grad, []

    def twice(batch, *args, **kwargs):  # two Ctrl-C inside the fifth iteration
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(batch, *args, **kwargs)

    net.loss_and_grad = twice
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(
            net,
            TASK,
            cfg,
            fresh_state(net),
            validation=val(cfg),
            checkpoint=lambda s: saved.append(s.iteration),
            log=lines.append,
        )
    assert saved == [2, 4]
    assert lines[-1] == "interrupted during iteration 5; the last checkpoint (iteration 4) is kept"
    assert signal.getsignal(signal.SIGINT) is before  # the guard restored the handler


def _poison(net: RateNetwork, at: int) -> None:
    """Make the loss of iteration ``at`` (1-based) infinite."""
    original, calls = net.loss_and_grad, []

    def poisoned(batch, *args, **kwargs):
        calls.append(1)
        loss, grads, stats = original(batch, *args, **kwargs)
        return (float("inf") if len(calls) == at else loss), grads, stats

    net.loss_and_grad = poisoned


def test_divergence_message_names_the_checkpoint_only_when_there_is_one():
    cfg = TrainConfig(
        batch_size=4, max_iterations=20, validation_trials=4, eval_every=5, log_every=1000, checkpoint_every=5
    )
    for poison_at, expected in (
        (3, "no checkpoint had been written yet"),
        (7, r"the last checkpoint \(iteration 5\) is kept"),
    ):
        net = network()
        _poison(net, poison_at)
        with pytest.raises(TrainingError, match=expected):
            train(net, TASK, cfg, fresh_state(net), validation=val(cfg), checkpoint=lambda s: None, **QUIET)


def test_budget_is_off_by_default_and_announces_itself_when_set():
    assert TrainConfig().max_seconds is None
    cfg = TrainConfig(
        batch_size=4, max_iterations=1000, validation_trials=4, eval_every=5, log_every=1000, max_seconds=1e-9
    )
    lines = []
    state = train(network(), TASK, cfg, fresh_state(network()), validation=val(cfg), log=lines.append)
    assert state.budget_hit and state.iteration == 1
    assert any(line.startswith("WARNING: training was stopped by the wall-clock safety net") for line in lines)
    cfg = TrainConfig(batch_size=4, max_iterations=3, validation_trials=4, eval_every=5, log_every=1000)
    assert not train(network(), TASK, cfg, fresh_state(network()), validation=val(cfg), **QUIET).budget_hit


# -- stop_at_bars: training ends when the model meets the run's own bars ------------------------


def test_bar_stop_tightens_each_bar_by_its_margin_and_names_what_it_cannot_measure():
    from cortexsim.config import QualityConfig
    from cortexsim.train import BarStop

    quality = QualityConfig(
        position_r2=0.96, endpoint_error_cm=1.0, catch_drift_cm=2.0, speed_profile_r=0.9, bump_recovery_ms=300.0
    )
    cfg = TrainConfig(validation_trials=16)
    stop = BarStop.of(quality, TASK, val(cfg), margin=0.25)
    bars = {metric: (kind, bar) for metric, kind, bar in stop.bars}
    assert bars["val_position_r2"] == ("min", pytest.approx(0.97))
    assert bars["val_endpoint_error_cm"] == ("max", pytest.approx(0.75))
    assert bars["val_catch_drift_cm"] == ("max", pytest.approx(1.5))
    assert bars["val_speed_profile_r"] == ("min", pytest.approx(0.925))
    assert stop.skipped == ("bump_recovery_ms",)  # a perturbation's bar: the gate checks it after training
    assert "bump_recovery_ms" in stop.describe()


def test_stop_at_bars_stops_at_the_first_validation_that_meets_them_and_keeps_its_parameters():
    from cortexsim.config import QualityConfig
    from cortexsim.train import BARS_STOP, BarStop

    quality = QualityConfig(position_r2=0.2, endpoint_error_cm=20.0, catch_drift_cm=20.0)
    cfg = TrainConfig(
        batch_size=8, max_iterations=120, validation_trials=16, eval_every=5, log_every=1000, checkpoint_every=5
    )
    validation = val(cfg)
    stop = BarStop.of(quality, TASK, validation, cfg.bar_margin)
    # the reference: the same training without the stop, judged at every validation
    net = network()
    seen = {}
    train(
        net,
        TASK,
        cfg,
        fresh_state(net),
        validation=validation,
        checkpoint=lambda s: seen.setdefault(s.iteration, {k: p.copy() for k, p in s.params.items()}),
        **QUIET,
    )
    judge = network()
    first = None
    for iteration in sorted(seen):
        judge.set_params(seen[iteration])
        if iteration and stop.met(TASK, judge.simulate(validation).outputs, validation):
            first = iteration
            break
    assert first is not None and first < cfg.max_iterations, "the bars must be reachable for this test to mean much"
    net = network()
    stopping = replace_cfg(cfg, stop_at_bars=True)
    state = train(net, TASK, stopping, fresh_state(net), validation=validation, quality=quality, **QUIET)
    assert state.done.startswith(BARS_STOP)
    assert state.iteration == first and state.best_iteration == first
    for k, p in seen[first].items():
        np.testing.assert_array_equal(state.best_params[k], p)
        np.testing.assert_array_equal(net.params[k], p)


def test_stop_at_bars_trains_on_when_the_bars_are_out_of_reach_and_needs_the_bars():
    from cortexsim.config import QualityConfig

    cfg = TrainConfig(
        batch_size=4, max_iterations=10, validation_trials=8, eval_every=5, log_every=1000, stop_at_bars=True
    )
    impossible = QualityConfig(position_r2=0.9999, endpoint_error_cm=1e-6, catch_drift_cm=1e-6)
    state = train(network(), TASK, cfg, fresh_state(network()), validation=val(cfg), quality=impossible, **QUIET)
    assert state.iteration == 10 and state.done.startswith("reached max_iterations")
    with pytest.raises(ValueError, match="stop_at_bars needs the \\[quality\\] bars"):
        train(network(), TASK, cfg, fresh_state(network()), validation=val(cfg), **QUIET)


def replace_cfg(cfg: TrainConfig, **changes) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, **changes)


# -- clean_fraction: some iterations without process noise -----------------------------------------


def test_clean_iterations_are_spread_evenly():
    from cortexsim.train import clean_iteration

    assert [clean_iteration(i, 0.5) for i in range(6)] == [False, True] * 3
    assert [clean_iteration(i, 0.25) for i in range(8)] == [False, False, False, True] * 2
    assert not any(clean_iteration(i, 0.0) for i in range(10)) and all(clean_iteration(i, 1.0) for i in range(10))
    assert sum(clean_iteration(i, 0.3) for i in range(1000)) == 300


def test_all_clean_iterations_train_exactly_as_a_noise_free_network_and_half_differ():
    cfg = TrainConfig(batch_size=8, max_iterations=6, validation_trials=8, eval_every=3, log_every=1000)
    clean = replace_cfg(cfg, clean_fraction=1.0)
    noisy_net = network()  # noise_std 1 mV, but no iteration draws noise
    a = train(noisy_net, TASK, clean, fresh_state(noisy_net), validation=val(cfg), **QUIET)
    quiet_net = network()
    quiet_net.noise_std = 0.0
    b = train(quiet_net, TASK, cfg, fresh_state(quiet_net), validation=val(cfg), **QUIET)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    half_net = network()
    half = train(
        half_net, TASK, replace_cfg(cfg, clean_fraction=0.5), fresh_state(half_net), validation=val(cfg), **QUIET
    )
    loss_half, loss_clean = np.asarray(half.history["loss"]), np.asarray(a.history["loss"])
    assert loss_half[0] != loss_clean[0]  # iteration 0 is noisy
    assert loss_half[1] != loss_clean[1]  # iteration 1 is clean, but after a different (noisy) step
