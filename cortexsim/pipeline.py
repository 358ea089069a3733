"""The experiment pipeline: config -> circuit -> rate network -> run file and figures.

Stages (each a function of the config and what earlier stages wrote):

1. **circuit** -- build the connectome, write ``/circuit`` and the connectivity figure;
2. **rate** -- train the rate network by BPTT (checkpointing into ``/training``),
   evaluate it on held-out trials and write ``/task``, ``/rate``, ``/metrics``,
   the trained connectome and figures;
3. **spiking** -- the trained circuit as LIF neurons in Brian2 (``/spikes``, ``/spiking``);
4. **ann** -- train each unconstrained ANN baseline on the same task (``/ann/<arch>``);
5. **compare** -- the comparison battery (``/analysis``, figures, ``summary.md``).

The command line (``cortexsim run``) and tests call :func:`run_experiment`.
Experiments hold no science: they only choose a config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

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
        stored = store.attr_text(f.attrs["config"])
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
    if config.spiking.enabled:
        run_spiking(config, run_file, figures, log)
    for arch in config.ann.archs:
        run_ann(config, arch, run_file, figures, log)
    compare_stage(run_file, figures, config.compare, base=config.base, log=log)
    log(f"wrote {run_file}, {out_dir / 'summary.md'} and {figures}/")
    return run_file


def run_ann(config: Config, arch: str, run_file: Path, figures: Path, log: Callable[[str], None] = print) -> None:
    """Train one ANN baseline on the same task, evaluate it and write ``/ann/<arch>`` (skipped if done)."""
    from .ann import DEFAULT_TRAIN, make_ann

    ac = config.ann
    with store.open_run(run_file) as f:
        if f"ann/{arch}" in f and f[f"ann/{arch}"].attrs.get("config") == config.to_toml():
            log(f"ann {arch}: already trained in {run_file}; skipped")
            return
    model = make_ann(arch, ac.n_hidden, config.task.dt, dtype=np.dtype(ac.dtype),
                     output_scale=config.task.reach_distance)
    params = model.init_params(seeded_rng(config, f"ann-init-{arch}"))
    train_config = replace(config.train, **{**DEFAULT_TRAIN[arch], "max_seconds": ac.max_seconds})
    log(f"ann {arch}: {model!r}")
    state = new_state(params, model.param_scales(), seeded_rng(config, f"ann-batches-{arch}"),
                      seeded_rng(config, f"ann-noise-{arch}"))
    # The ANNs' matrices are small: one BLAS thread is as fast and never stalls on a busy machine
    with threadpool_limits(limits=1, user_api="blas"):
        state = train(model, config.task, train_config, state, log=log)
        results = evaluate(model, config, f"ann_{arch}")
    results["metrics"][f"ann_{arch}_train_seconds"] = state.elapsed
    hidden, _, outputs = results["eval_activity"]
    with store.open_for_update(run_file) as f:
        store.write_ann(f, arch, hidden, outputs, model.params,
                        {"config": config.to_toml(), "n_hidden": ac.n_hidden, "iterations": state.iteration,
                         "train_seconds": state.elapsed})
        store.write_metrics(f, results["metrics"], METRICS_TEXT)
    plots.save(plots.plot_trajectories(results["eval"], outputs, results["catch_outputs"]),
               figures / f"trajectories_{arch}.png")
    for key, value in results["metrics"].items():
        log(f"  {key:32s} {value:.4g}")


def run_spiking(config: Config, run_file: Path, figures: Path, log: Callable[[str], None] = print) -> dict:
    """Simulate the trained circuit as LIF pools in Brian2; write ``/spikes``, ``/spiking``, metrics, figures."""
    from . import spiking
    from .spiking.network import best_target

    sc = config.spiking
    target = best_target() if sc.target == "auto" else sc.target
    log(f"spiking: K = {sc.k} LIF neurons per unit, {sc.trials_per_condition} trials per condition "
        f"(Brian2 target {target})")
    result = spiking.run_twin(run_file, k=sc.k, trials_per_condition=sc.trials_per_condition, target=target,
                              dt=sc.dt)
    with store.open_run(run_file) as f:
        connectome = store.read_circuit(f)
        n_reach = f["task/targets"].shape[0]
    with store.open_for_update(run_file) as f:
        store.write_spiking(f, result, connectome, n_reach)
        store.write_metrics(f, result["metrics"], METRICS_TEXT)
    plots.save(plots.plot_raster(result["spikes"], connectome, result["params"].k,
                                 duration=result["batch"].n_steps * result["batch"].dt), figures / "raster.png")
    mean_out = result["outputs"].mean(axis=1)
    plots.save(plots.plot_trajectories(config.task.evaluation_set(), mean_out[:n_reach], mean_out[n_reach:]),
               figures / "trajectories_spiking.png")
    plots.save(plots.plot_fidelity(result["fidelity"]), figures / "spiking_fidelity.png")
    for key, value in result["metrics"].items():
        log(f"  {key:32s} {value:.4g}")
    return result


def compare_stage(run_file: Path, figures: Path, cc, base: Path = Path("."), others: tuple = (),
                  log: Callable[[str], None] = print) -> None:
    """Run the comparison battery on a run file and write ``/analysis``, figures and ``summary.md``."""
    from . import compare

    activities = compare.run_activities(run_file)
    for i, other in enumerate(others):
        activities += compare.run_activities(other, prefix=f"run{i + 2}/")
    notes = []
    if cc.data:
        act, note = compare.data_activity(base / cc.data, activities[0])
        activities.append(act)
        notes.extend(note)
    t0 = time.perf_counter()
    with store.open_run(run_file) as f:
        positions = f["task/targets"][()]
    result = compare.compare(activities, n_pcs=cc.n_pcs, n_null=cc.n_null, positions=positions)
    result.notes.extend(notes)
    log(f"compare: {len(result.similarity)} pairs, {len(result.jpca)} jPCA fits "
        f"({time.perf_counter() - t0:.1f} s)")
    log(compare.format_report(result))
    with store.open_for_update(run_file) as f:
        compare.write_analysis(f, result)
    compare.write_figures(result, figures)
    with store.open_run(run_file) as f:
        summary = compare.summary_markdown(f, result)
    (run_file.parent / "summary.md").write_text(summary)


METRICS_TEXT = (
    "Headline numbers. rate_*: the trained rate network on held-out trials without process noise "
    "(rate_*_noisy: with the training noise). position_r2: 1 is perfect; endpoint_error_cm: mean hand-target "
    "distance over the last 50 ms of reach trials; catch_drift_cm: mean over catch trials of the largest "
    "distance from the centre; reaction_time_ms: median time from go until the hand is 1 cm out "
    "(target_reaction_time_ms: the same for the desired trajectory)."
)


def evaluate(model, config: Config, prefix: str) -> dict:
    """Held-out metrics (with and without noise, keys ``<prefix>_*``) and evaluation-set activity."""
    task = config.task
    test = task.sample(HELD_OUT_TRIALS, seeded_rng(config, "test"))
    _, rates, clean = model.simulate(test)
    _, _, noisy = model.simulate(test, seeded_rng(config, "test-noise"))
    out = {
        f"{prefix}_position_r2": metrics.position_r2(clean, test.targets, test.mask),
        f"{prefix}_endpoint_error_cm": metrics.endpoint_error_cm(clean, test),
        f"{prefix}_catch_drift_cm": metrics.catch_drift_cm(clean, test),
        f"{prefix}_reaction_time_ms": metrics.reaction_time_ms(clean, test),
    }
    if model.noise_std > 0:
        out.update({
            f"{prefix}_position_r2_noisy": metrics.position_r2(noisy, test.targets, test.mask),
            f"{prefix}_endpoint_error_cm_noisy": metrics.endpoint_error_cm(noisy, test),
            f"{prefix}_catch_drift_cm_noisy": metrics.catch_drift_cm(noisy, test),
        })
    evaluation = task.evaluation_set()
    catch = task.evaluation_set(catch=True)
    return {"metrics": out, "eval": evaluation, "eval_activity": model.simulate(evaluation), "rates": rates,
            "catch_outputs": model.simulate(catch)[2], "test": test, "test_noisy": noisy}


def evaluate_rate(net: RateNetwork, config: Config) -> dict:
    """:func:`evaluate` for the rate network, plus rate statistics and the nominal reaction time."""
    results = evaluate(net, config, "rate")
    results["metrics"].update({
        "target_reaction_time_ms": metrics.reaction_time_ms(results["test"].targets, results["test"]),
        "rate_mean_rate_hz": float(results["rates"].mean()),
        "rate_max_rate_hz": float(results["rates"].max()),
    })
    return results


def _rate_figures(results: dict, state: TrainState, net: RateNetwork, figures: Path) -> None:
    evaluation = results["eval"]
    _, rates, outputs = results["eval_activity"]
    plots.save(plots.plot_trajectories(evaluation, outputs, results["catch_outputs"],
                                       results["test"], results["test_noisy"]), figures / "trajectories.png")
    plots.save(plots.plot_training(state.history), figures / "training.png")
    plots.save(plots.plot_layer_rates(evaluation, rates, net.connectome), figures / "layer_rates.png")
