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

import datetime as _dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import metrics, plots, quality, store
from .circuit import Connectome, build_connectome
from .config import Config
from .errors import ConfigError
from .lesion import apply_lesion
from .rate import RateNetwork
from .train import TrainState, new_state, train
from .transfer import make_transfer

HELD_OUT_TRIALS = 400
"""Trials in the held-out test set behind the headline metrics."""


def seeded_rng(config: Config, stream: str) -> np.random.Generator:
    """Independent generator for one named use of the experiment seed.

    Different streams ("circuit", "init", "batches", "noise", "validation", "test", ...)
    never share draws, so changing, say, the batch size leaves the circuit unchanged.
    Every random draw of a run comes from one of these streams.
    """
    return np.random.default_rng([config.experiment.seed, *(ord(c) for c in stream)])


def validation_set(config: Config):
    """The fixed, noise-free validation trials every model's training is checked on (stream "validation")."""
    return config.task.sample(config.train.validation_trials, seeded_rng(config, "validation"))


def build_circuit(config: Config) -> Connectome:
    """The connectome of ``config`` (deterministic for its seed)."""
    return build_connectome(config.circuit_spec(), config.circuit.n_units, seeded_rng(config, "circuit"))


RUN_FILE_TEXT = ("cortexsim run file: a six-layer M1 circuit and what was simulated on it. "
                 "Every dataset has 'units', 'dims' and 'description' attributes.")


def write_circuit_file(config: Config, connectome: Connectome, path: str | Path) -> Path:
    """Write a fresh run file holding the provenance and ``/circuit`` (atomically)."""
    path = Path(path)
    with store.open_for_update(path, store.provenance(config.to_toml(), config.experiment.seed)) as f:
        f.attrs["description"] = RUN_FILE_TEXT
        store.write_circuit(f, connectome)
    return path


def make_rate_network(config: Config, connectome: Connectome) -> RateNetwork:
    """The rate network of ``config`` on ``connectome`` (parameters not yet set)."""
    rc = config.rate
    phi = make_transfer(rc.transfer, config.lif, rc.transfer_gain, rc.transfer_threshold)
    return RateNetwork(connectome, phi, config.task.dt, noise_std=rc.noise_std, dtype=np.dtype(rc.dtype),
                       output_scale=config.task.reach_distance)


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline and what its result depends on.

    Attributes
    ----------
    name : str
        ``"train"``, ``"rate"``, ``"spiking"``, ``"ann:<arch>"`` or ``"compare"``.
    depends : tuple of str
        Config sections (``"rate"``) or keys (``"experiment.seed"``) the result depends on;
        ``"*"``: the whole config.
    after : tuple of str
        Stages whose results it reads: it is recomputed whenever one of them is.
    """

    name: str
    depends: tuple[str, ...]
    after: tuple[str, ...] = ()

    def key(self, config: Config) -> str:
        """Hash of the config parts in :attr:`depends` (16 hex digits)."""
        data = config.to_dict()
        if "*" in self.depends:
            part = data
        else:
            part = {}
            for dep in self.depends:
                section, _, key = dep.partition(".")
                part[dep] = data[section][key] if key else data[section]
        text = json.dumps(part, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_TRAINING = ("experiment.seed", "circuit", "task", "lif", "rate", "train")


def stages(config: Config) -> list[Stage]:
    """The stages ``config`` runs, in order.

    ``train`` (BPTT of the rate network) -> ``rate`` (evaluate it, with the ``[lesion]``
    applied) -> ``spiking`` (if enabled) -> ``ann:<arch>`` per baseline -> ``compare``.
    Training does not depend on ``[lesion]``, ``[spiking]``, ``[ann]`` or ``[compare]``,
    so runs that differ only there can share it (see :func:`run_experiment`'s ``upstream``).
    """
    out = [Stage("train", _TRAINING), Stage("rate", _TRAINING + ("lesion",), ("train",))]
    if config.spiking.enabled:
        out.append(Stage("spiking", _TRAINING + ("lesion", "spiking"), ("rate",)))
    ann = ("experiment.seed", "task", "train", "ann.n_hidden", "ann.max_iterations", "ann.max_seconds", "ann.dtype")
    out += [Stage(f"ann:{arch}", ann) for arch in config.ann.archs]
    out.append(Stage("compare", ("*",), tuple(s.name for s in out)))
    return out


def config_hash(config: Config) -> str:
    """Short hash (8 hex digits) of the whole configuration, as in the run folder's name."""
    return hashlib.sha256(config.to_toml().encode()).hexdigest()[:8]


def run_folder(config: Config, root: str | Path = "results", new: bool = False) -> Path:
    """The default output folder ``<root>/<experiment>/<UTC timestamp>-<config hash>/``.

    The newest existing folder of the same configuration is returned (so a rerun
    continues it) unless ``new``; otherwise a fresh name with the current time.
    """
    parent = Path(root) / config.experiment.name
    tag = config_hash(config)
    existing = sorted(parent.glob(f"*-{tag}")) if parent.is_dir() else []
    if existing and not new:
        return existing[-1]
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return parent / f"{stamp}-{tag}"


def matching_stages(f, config: Config) -> dict[str, dict]:
    """Stages recorded in the open run file ``f`` that a run of ``config`` can reuse (keys match)."""
    plan = {s.name: s.key(config) for s in stages(config)}
    return {n: info for n, info in store.read_stages(f).items() if plan.get(n) == info["key"]}


def _completed(run_file: Path, config: Config, force: bool, upstream: Path | None,
               log: Callable[[str], None]) -> dict[str, dict]:
    """Stages already done for ``config`` in ``run_file`` (after deriving it from ``upstream``).

    Refuses a run file holding a different configuration unless ``force``.
    """
    if force:
        return {}
    if run_file.exists():
        with store.open_run(run_file) as f:
            if store.read_config_text(f) != config.to_toml():
                raise ConfigError(
                    f"{run_file}: holds a run of a different configuration; choose another --out, "
                    f"or pass --force to replace it"
                )
            return matching_stages(f, config)
    if upstream is None:
        return {}
    with store.open_run(upstream) as src:
        valid = matching_stages(src, config)
        if "train" not in valid:
            return {}
        with store.open_for_update(run_file, store.provenance(config.to_toml(), config.experiment.seed)) as f:
            f.attrs["description"] = RUN_FILE_TEXT
            f.attrs["derived_from"] = str(Path(upstream).resolve())
            store.copy_stages(src, f, list(valid))
    log(f"reusing stages {', '.join(valid)} of {upstream}")
    return valid


def run_experiment(config: Config, out_dir: str | Path, log: Callable[[str], None] = print,
                   force: bool = False, upstream: str | Path | None = None) -> Path:
    """Run every stage of the pipeline and write ``out_dir/run.h5``, ``figures/`` and ``summary.md``.

    Stages already completed in ``out_dir`` for the same config are reused, and an
    interrupted training resumes from its last checkpoint; a different config is
    refused unless ``force``.  Each finished stage is recorded in ``/stages``.

    Parameters
    ----------
    config : Config
    out_dir : str or Path
    log : callable
        Receives progress lines.
    force : bool
        Recompute every stage even if ``out_dir/run.h5`` holds a run.
    upstream : str or Path, optional
        A finished run file whose stages with matching keys (:func:`stages`) seed a new
        ``out_dir/run.h5`` -- e.g. the intact run a lesion run is derived from, so the
        network is trained once.  Ignored when ``out_dir/run.h5`` exists.

    Returns
    -------
    Path
        The run file.
    """
    out_dir = Path(out_dir)
    ctx = _Context(config, out_dir / "run.h5", out_dir / "figures", log, force)
    done = _completed(ctx.run_file, config, force, Path(upstream) if upstream else None, log)
    recomputed: set[str] = set()
    timings = []
    for stage in stages(config):
        if stage.name in done and not recomputed.intersection(stage.after):
            log(f"[{stage.name}] done earlier ({done[stage.name]['seconds']:.1f} s); reused")
            timings.append((stage.name, done[stage.name]["seconds"], "reused"))
            continue
        log(f"[{stage.name}]")
        t0 = time.perf_counter()
        groups, written = _RUNNERS[stage.name.split(":")[0]](ctx, stage.name)
        seconds = time.perf_counter() - t0
        with store.open_for_update(ctx.run_file) as f:
            store.write_stage(f, stage.name, key=stage.key(config), seconds=seconds, groups=groups,
                              metrics=written)
        recomputed.add(stage.name)
        timings.append((stage.name, seconds, "ran"))
    log("stage wall times: " + ", ".join(f"{n} {t:.1f} s ({how})" for n, t, how in timings))
    log(f"wrote {ctx.run_file}, {out_dir / 'summary.md'} and {ctx.figures}/")
    verdict = gate(ctx.run_file, config)
    for line in verdict.lines() if verdict.passed else []:
        log(f"QUALITY: {line}")
    for line in verdict.warnings():
        log(line)
    return ctx.run_file


@dataclass
class _Context:
    config: Config
    run_file: Path
    figures: Path
    log: Callable[[str], None]
    force: bool = False


def _stage_train(ctx: _Context, name: str) -> tuple[list[str], list[str]]:
    """Build the circuit and train the rate network (resuming a checkpoint of the same config)."""
    config, run_file, log = ctx.config, ctx.run_file, ctx.log
    t0 = time.perf_counter()
    connectome = build_circuit(config)
    log(f"circuit: {connectome!r} ({time.perf_counter() - t0:.2f} s)")
    state = None
    if run_file.exists() and not ctx.force:  # same config: checked by _completed
        with store.open_run(run_file) as f:
            state = store.read_training_state(f)
    if state is None:
        write_circuit_file(config, connectome, run_file)
    plots.save(plots.plot_connectivity(connectome), ctx.figures / "connectivity.png")
    net = make_rate_network(config, connectome)
    log(f"rate: {net!r}")
    if state is None:
        params = net.init_params(seeded_rng(config, "init"), config.rate.rest_rate, config.rate.input_std,
                                 output_scale=0.1 * config.task.reach_distance)
        state = new_state(params, net.param_scales(config.rate.rest_rate), seeded_rng(config, "batches"),
                          seeded_rng(config, "noise"))
    else:
        state.checkpointed_at = state.iteration
        log(f"resuming training from iteration {state.iteration} ({run_file})")
    config_text = config.to_toml()

    def checkpoint(s: TrainState) -> None:
        with store.open_for_update(run_file) as f:
            store.write_training(f, s, config_text)

    info = net.kernel_info()
    log(f"kernel: {info['kernel_path']} recurrent product (density {info['density']:.3f}), "
        f"{info['gradient_threads']} weight-gradient thread(s), {info['blas_threads']} BLAS thread(s)")
    # the thread counts follow from size, density and dtype alone (never load); results do not depend on them
    with threadpool_limits(limits=info["blas_threads"], user_api="blas"):
        state = train(net, config.task, config.train, state, validation=validation_set(config),
                      checkpoint=checkpoint, log=log)
    written = {"rate_train_seconds": state.elapsed, "rate_train_iterations": state.iteration,
               "rate_budget_hit": float(state.budget_hit)}
    with store.open_for_update(run_file) as f:
        store.write_metrics(f, written, METRICS_TEXT)
    plots.save(plots.plot_training(state.history), ctx.figures / "training.png")
    return ["circuit", "training"], list(written)


def _stage_rate(ctx: _Context, name: str) -> tuple[list[str], list[str]]:
    """Evaluate the trained rate network (lesioned as ``[lesion]`` says) on held-out trials."""
    config, run_file = ctx.config, ctx.run_file
    connectome = build_circuit(config)
    net = make_rate_network(config, connectome)
    with store.open_run(run_file) as f:
        state = store.read_training_state(f)
    net.set_params(state.best_params)
    trained = net.to_connectome()
    apply_lesion(net, config.lesion)
    if config.lesion.active:
        ctx.log(f"lesion: {config.lesion.label()}")
    info = net.kernel_info()
    with threadpool_limits(limits=info["blas_threads"], user_api="blas"):
        results = evaluate_rate(net, config)
    with store.open_for_update(run_file) as f:
        store.write_circuit(f, trained, weight_init=connectome.weight)
        store.write_task(f, results["eval"], "Evaluation set: one trial per target at the evaluation "
                                             "delay (task.eval_delay).")
        attrs = {"transfer": repr(net.transfer), "dt": net.dt, "noise_std_mV": net.noise_std,
                 "readout_units": net.out_idx, "tau_s": net.connectome.tau, "lesion": config.lesion.label(),
                 **{k: info[k] for k in ("kernel_path", "blas_threads", "gradient_threads", "density")}}
        store.write_rate(f, *results["eval_activity"], params=net.params, attrs=attrs)
        store.write_metrics(f, results["metrics"], METRICS_TEXT)
    evaluation = results["eval"]
    _, rates, outputs = results["eval_activity"]
    plots.save(plots.plot_trajectories(evaluation, outputs, results["catch_outputs"], results["test"],
                                       results["test_noisy"]), ctx.figures / "trajectories.png")
    plots.save(plots.plot_layer_rates(evaluation, rates, net.connectome), ctx.figures / "layer_rates.png")
    for key, value in results["metrics"].items():
        ctx.log(f"  {key:32s} {value:.4g}")
    _log_gate(config, results["metrics"], ctx.log)
    return ["task", "rate"], list(results["metrics"])


def _stage_spiking(ctx: _Context, name: str) -> tuple[list[str], list[str]]:
    result = run_spiking(ctx.config, ctx.run_file, ctx.figures, ctx.log)
    return ["spikes", "spiking"], list(result["metrics"])


def _stage_ann(ctx: _Context, name: str) -> tuple[list[str], list[str]]:
    arch = name.split(":")[1]
    written = run_ann(ctx.config, arch, ctx.run_file, ctx.figures, ctx.log)
    return [f"ann/{arch}"], written


def _stage_compare(ctx: _Context, name: str) -> tuple[list[str], list[str]]:
    written = compare_stage(ctx.run_file, ctx.figures, ctx.config.compare, base=ctx.config.base, log=ctx.log,
                            config=ctx.config)
    return ["analysis"], written


_RUNNERS = {"train": _stage_train, "rate": _stage_rate, "spiking": _stage_spiking, "ann": _stage_ann,
            "compare": _stage_compare}


def run_ann(config: Config, arch: str, run_file: Path, figures: Path, log: Callable[[str], None] = print
            ) -> list[str]:
    """Train one ANN baseline on the same task, evaluate it and write ``/ann/<arch>``; returns the metric names."""
    from .ann import DEFAULT_TRAIN, make_ann

    ac = config.ann
    model = make_ann(arch, ac.n_hidden, config.task.dt, dtype=np.dtype(ac.dtype),
                     output_scale=config.task.reach_distance)
    params = model.init_params(seeded_rng(config, f"ann-init-{arch}"))
    changes = {**DEFAULT_TRAIN[arch], "max_seconds": ac.max_seconds}
    if ac.max_iterations is not None:
        changes["max_iterations"] = ac.max_iterations
    train_config = replace(config.train, **changes)
    log(f"ann {arch}: {model!r}")
    state = new_state(params, model.param_scales(), seeded_rng(config, f"ann-batches-{arch}"),
                      seeded_rng(config, f"ann-noise-{arch}"))
    # The ANNs' matrices are small: one BLAS thread is as fast and never stalls on a busy machine
    with threadpool_limits(limits=1, user_api="blas"):
        state = train(model, config.task, train_config, state, validation=validation_set(config), log=log)
        results = evaluate(model, config, f"ann_{arch}")
    results["metrics"].update({f"ann_{arch}_train_seconds": state.elapsed,
                               f"ann_{arch}_train_iterations": float(state.iteration),
                               f"ann_{arch}_budget_hit": float(state.budget_hit)})
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
    _log_gate(config, results["metrics"], log)
    return list(results["metrics"])


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
    _log_gate(config, result["metrics"], log)
    return result


def _log_gate(config: Config, written: dict[str, float], log: Callable[[str], None]) -> None:
    """Say at once, in plain words, if the model a stage just evaluated missed its ``[quality]`` bars."""
    verdict = quality.check_quality(written, config.quality)
    for model in verdict.failed_models:
        log(f"  QUALITY: {verdict.describe(model)}")


def gate(run_file: Path, config: Config) -> quality.QualityVerdict:
    """The quality verdict on every model whose metrics ``run_file`` holds, against ``config.quality``."""
    with store.open_run(run_file) as f:
        return quality.check_quality(store.read_metrics(f), config.quality)


def compare_stage(run_file: Path, figures: Path, cc, base: Path = Path("."), others: tuple = (),
                  log: Callable[[str], None] = print, config: Config | None = None) -> list[str]:
    """Run the comparison battery on a run file; write ``/analysis``, ``compare_*`` metrics, the quality
    verdict (``quality_passed``, ``<model>_quality_passed``), figures and ``summary.md``.

    ``config`` (default: the run's own, as stored in the file) gives the ``[quality]`` bars and the
    seed of the shuffles and decoding folds (stream "compare").  Returns the metric names.
    """
    from . import compare

    with store.open_run(run_file) as f:
        config = store.read_config(f) if config is None else config
        positions = f["task/targets"][()]
        verdict = quality.check_quality(store.read_metrics(f), config.quality)
    activities = compare.run_activities(run_file)
    for i, other in enumerate(others):
        activities += compare.run_activities(other, prefix=f"run{i + 2}/")
    notes = []
    if cc.data:
        act, note = compare.data_activity(base / cc.data, activities[0])
        activities.append(act)
        notes.extend(note)
    t0 = time.perf_counter()
    result = compare.compare(activities, n_pcs=cc.n_pcs, n_null=cc.n_null, positions=positions,
                             rng=seeded_rng(config, "compare"))
    result.notes.extend(notes)
    log(f"compare: {len(result.similarity)} pairs, {len(result.jpca)} jPCA fits "
        f"({time.perf_counter() - t0:.1f} s)")
    log(compare.format_report(result, verdict))
    written = {**compare.headline_metrics(result), **verdict.to_metrics()}
    with store.open_for_update(run_file) as f:
        compare.write_analysis(f, result)
        store.write_metrics(f, written, METRICS_TEXT)
    compare.write_figures(result, figures)
    with store.open_run(run_file) as f:
        summary = compare.summary_markdown(f, result, verdict)
    store.write_text_atomic(run_file.parent / "summary.md", summary)
    return list(written)


METRICS_TEXT = (
    "Headline numbers. rate_*: the trained rate network on held-out trials without process noise "
    "(rate_*_noisy: with the training noise). position_r2: 1 is perfect; endpoint_error_cm: mean hand-target "
    "distance over the last 50 ms of reach trials; catch_drift_cm: mean over catch trials of the largest "
    "distance from the centre; reaction_time_ms: median time from go until the hand is 1 cm out "
    "(target_reaction_time_ms: the same for the desired trajectory). spiking_*: the LIF twin; ann_<arch>_*: the "
    "ANN baselines. compare_*: the comparison battery -- compare_cca_<a>_<b>: mean canonical correlation of the "
    "top PCs of activities a and b (1 = same dynamics up to a linear map), compare_cca_rate_ann_mean its mean "
    "over the ANNs; compare_jpca_ratio_<a>: jPCA R^2 skew / R^2 best around movement onset (rotational "
    "dynamics, the hallmark of M1 in Churchland et al. 2012); compare_participation_ratio_<a>: dimensionality; "
    "compare_decode_position_r2_<a>: hand position decoded from the activity of held-out conditions."
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
