"""The experiment pipeline: config -> circuit -> rate network -> run file and figures.

Stages (each a function of the config and what earlier stages wrote):

1. **circuit** -- build the connectome, write ``/circuit`` and the connectivity figure;
2. **rate** -- train the rate network by BPTT (checkpointing into ``/training``),
   evaluate it on held-out trials and write ``/task``, ``/rate``, ``/metrics``,
   the trained connectome and figures.

The command line (``cortexsim run``) and tests call :func:`run_experiment`.
Experiments hold no science: they only choose a config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import metrics, plots, store
from .circuit import Connectome, build_connectome
from .config import Config
from .errors import ConfigError
from .rate import RateNetwork
from .train import TrainState, new_state, train
from .transfer import make_transfer

HELD_OUT_TRIALS = 400
"""Trials in the held-out test set behind the headline metrics."""


def seeded_rng(config: Config, stream: str) -> np.random.Generator:
    """Independent generator for one named use of the experiment seed.

    Different streams ("circuit", "init", "batches", "noise", "test") never share
    draws, so changing, say, the batch size leaves the circuit unchanged.
    """
    return np.random.default_rng([config.experiment.seed, *(ord(c) for c in stream)])


def build_circuit(config: Config) -> Connectome:
    """The connectome of ``config`` (deterministic for its seed)."""
    return build_connectome(config.circuit_spec(), config.circuit.n_units, seeded_rng(config, "circuit"))


def write_circuit_file(config: Config, connectome: Connectome, path: str | Path) -> Path:
    """Write a fresh run file holding the provenance and ``/circuit`` (atomically)."""
    path = Path(path)
    with store.open_for_update(path, store.provenance(config.to_toml(), config.experiment.seed)) as f:
        f.attrs["description"] = (
            "cortexsim run file: a six-layer M1 circuit and what was simulated on it. "
            "Every dataset has 'units', 'dims' and 'description' attributes."
        )
        store.write_circuit(f, connectome)
    return path


def make_rate_network(config: Config, connectome: Connectome) -> RateNetwork:
    """The rate network of ``config`` on ``connectome`` (parameters not yet set)."""
    rc = config.rate
    phi = make_transfer(rc.transfer, config.lif, rc.transfer_gain, rc.transfer_threshold)
    return RateNetwork(connectome, phi, config.task.dt, noise_std=rc.noise_std, dtype=np.dtype(rc.dtype),
                       output_scale=config.task.reach_distance)


def _resume_state(run_file: Path, config: Config, force: bool) -> TrainState | None:
    """Checkpoint to resume from, None to start afresh; refuses to clobber another run."""
    if force or not run_file.exists():
        return None
    with store.open_run(run_file) as f:
        stored = store._text(f.attrs["config"])
        if stored != config.to_toml():
            raise ConfigError(
                f"{run_file}: holds a run of a different configuration; choose another --out, "
                f"or pass --force to replace it"
            )
        return store.read_training_state(f)


def run_experiment(config: Config, out_dir: str | Path, log: Callable[[str], None] = print,
                   force: bool = False) -> Path:
    """Run every stage of the pipeline and write ``out_dir/run.h5`` and ``out_dir/figures/``.

    Re-running into the same folder with the same config resumes training from
    the last checkpoint; a different config is refused unless ``force``.

    Parameters
    ----------
    config : Config
    out_dir : str or Path
    log : callable
        Receives progress lines.
    force : bool
        Start afresh even if ``out_dir/run.h5`` holds a run.

    Returns
    -------
    Path
        The run file.
    """
    out_dir, figures = Path(out_dir), Path(out_dir) / "figures"
    run_file = out_dir / "run.h5"
    state = _resume_state(run_file, config, force)

    t0 = time.perf_counter()
    connectome = build_circuit(config)
    log(f"circuit: {connectome!r} ({time.perf_counter() - t0:.2f} s)")
    if state is None:
        write_circuit_file(config, connectome, run_file)
    plots.save(plots.plot_connectivity(connectome), figures / "connectivity.png")

    net = make_rate_network(config, connectome)
    log(f"rate: {net!r}")
    if state is None:
        params = net.init_params(seeded_rng(config, "init"), config.rate.rest_rate, config.rate.input_std,
                                 output_scale=0.1 * config.task.reach_distance)
        state = new_state(params, net.param_scales(config.rate.rest_rate), seeded_rng(config, "batches"),
                          seeded_rng(config, "noise"))
    else:
        log(f"resuming training from iteration {state.iteration} ({run_file})")
    config_text = config.to_toml()

    def checkpoint(s: TrainState) -> None:
        with store.open_for_update(run_file) as f:
            store.write_training(f, s, config_text)

    state = train(net, config.task, config.train, state, checkpoint=checkpoint, log=log)
    results = evaluate_rate(net, config)
    results["metrics"]["rate_train_seconds"] = state.elapsed
    results["metrics"]["rate_train_iterations"] = state.iteration
    with store.open_for_update(run_file) as f:
        store.write_circuit(f, net.to_connectome(), weight_init=connectome.weight)
        store.write_task(f, results["eval"], "Evaluation set: one trial per target at the evaluation "
                                             "delay (task.eval_delay).")
        attrs = {"transfer": repr(net.transfer), "dt": net.dt, "noise_std_mV": net.noise_std,
                 "readout_units": net.out_idx, "tau_s": net.connectome.tau}
        store.write_rate(f, *results["eval_activity"], params=net.params, attrs=attrs)
        store.write_metrics(f, results["metrics"], METRICS_TEXT)
    _rate_figures(results, state, net, figures)
    for key, value in results["metrics"].items():
        log(f"  {key:32s} {value:.4g}")
    log(f"wrote {run_file} and {figures}/")
    return run_file


METRICS_TEXT = (
    "Headline numbers. rate_*: the trained rate network on held-out trials without process noise "
    "(rate_*_noisy: with the training noise). position_r2: 1 is perfect; endpoint_error_cm: mean hand-target "
    "distance over the last 50 ms of reach trials; catch_drift_cm: mean over catch trials of the largest "
    "distance from the centre; reaction_time_ms: median time from go until the hand is 1 cm out "
    "(target_reaction_time_ms: the same for the desired trajectory)."
)


def evaluate_rate(net: RateNetwork, config: Config) -> dict:
    """Held-out metrics (with and without noise) and evaluation-set activity."""
    task = config.task
    test = task.sample(HELD_OUT_TRIALS, seeded_rng(config, "test"))
    _, rates, clean = net.simulate(test)
    _, _, noisy = net.simulate(test, seeded_rng(config, "test-noise"))
    out = {
        "rate_position_r2": metrics.position_r2(clean, test.targets, test.mask),
        "rate_endpoint_error_cm": metrics.endpoint_error_cm(clean, test),
        "rate_catch_drift_cm": metrics.catch_drift_cm(clean, test),
        "rate_position_r2_noisy": metrics.position_r2(noisy, test.targets, test.mask),
        "rate_endpoint_error_cm_noisy": metrics.endpoint_error_cm(noisy, test),
        "rate_catch_drift_cm_noisy": metrics.catch_drift_cm(noisy, test),
        "rate_reaction_time_ms": metrics.reaction_time_ms(clean, test),
        "target_reaction_time_ms": metrics.reaction_time_ms(test.targets, test),
        "rate_mean_rate_hz": float(rates.mean()),
        "rate_max_rate_hz": float(rates.max()),
    }
    evaluation = task.evaluation_set()
    catch = task.evaluation_set(catch=True)
    return {"metrics": out, "eval": evaluation, "eval_activity": net.simulate(evaluation),
            "catch_outputs": net.simulate(catch)[2], "test": test, "test_noisy": noisy}


def _rate_figures(results: dict, state: TrainState, net: RateNetwork, figures: Path) -> None:
    evaluation = results["eval"]
    _, rates, outputs = results["eval_activity"]
    plots.save(plots.plot_trajectories(evaluation, outputs, results["catch_outputs"],
                                       results["test"], results["test_noisy"]), figures / "trajectories.png")
    plots.save(plots.plot_training(state.history), figures / "training.png")
    plots.save(plots.plot_layer_rates(evaluation, rates, net.connectome), figures / "layer_rates.png")
