"""The experiment pipeline: config -> circuit -> rate network -> run file and figures.

Stages (each a function of the config and what earlier stages wrote):

1. **train** -- build the connectome (``/circuit``, with ``weight_init``), train the rate
   network by BPTT (checkpointing into ``/training``), then write ``weight_trained``;
2. **rate** -- evaluate the trained network (lesioned as ``[lesion]`` says) on held-out
   trials and write ``/task``, ``/rate``, ``/metrics`` and figures;
3. **spiking** -- the trained circuit as LIF neurons in Brian2 (``/spikes``, ``/spiking``);
4. **perturb** -- arm runs with ``[perturb]`` protocols: the circuit and its twin in a curl field
   and bumped (``/perturbation``; :mod:`cortexsim.perturb`);
5. **ann** -- train each unconstrained ANN baseline on the same task (``/ann/<arch>``), and run it
   through the same perturbations;
6. **control** -- arm runs with ``[compare] rotation_control``: the circuit trained without
   inter-population recurrence (``/control``);
7. **compare** -- the comparison battery (``/analysis``, with the rotation sources of an arm run;
   figures, ``summary.md``).

The pipeline reads and writes the run file through :mod:`cortexsim.store`; below it,
models, training, the twin, lesions and analyses never touch a file: they receive
objects and return typed records (:class:`Evaluation`, :class:`~cortexsim.train.TrainState`,
:class:`~cortexsim.spiking.twin.TwinResult`, :class:`~cortexsim.battery.BatteryResult`),
and the pipeline writes them (``tests/test_architecture.py`` checks it).  The objects
themselves are built by :mod:`cortexsim.assembly`.

The command line (``cortexsim run``) and tests call :func:`run_experiment`.
Experiments hold no science: they only choose a config.  Progress goes to the
``cortexsim`` loggers (the command line prints it; ``--quiet`` / ``--verbose``) unless
a ``log`` callable is given.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import analysis, battery, battery_cache, metrics, perturb, plots, quality, store
from .analysis import split_halves
from .assembly import (
    ann_train_config,
    build_circuit,
    initial_rate_network,
    make_ann_model,
    make_rate_network,
    make_task,
    seeded_rng,
    trained_rate_network,
    validation_set,
)
from .battery import BatteryResult
from .circuit import Connectome
from .closed_loop import ArmRateNetwork
from .config import RECORDED_TASK, Config
from .errors import ConfigError
from .evaluation import Evaluation, evaluate, evaluate_rate
from .fit_stage import run_fit
from .interrupts import StickyInterrupt
from .lesion import apply_lesion
from .model_id import ModelId, anns, of_activity
from .rate import RateNetwork
from .spiking.arm import loop_target
from .spiking.network import best_target
from .spiking.result import flat_batch
from .spiking.twin import TwinResult, run_twin
from .stim_stage import run_stimulation
from .tasks import CenterOutTask, TrialBatch, task_of
from .train import Trainable, TrainState, new_state, train
from .workers import WorkerPool

LOG = logging.getLogger(__name__)
"""Progress of the stages (INFO), their warnings (WARNING)."""

Log = Callable[[str], None]
"""Receives one progress line."""


def _warn(log: Log | None, line: str) -> None:
    """A warning line: to ``log`` when one is given, else to the logger at WARNING (shown under --quiet)."""
    (log or LOG.warning)(line)


def write_circuit_file(config: Config, connectome: Connectome, path: str | Path, replace: bool = False) -> Path:
    """Write a fresh run file holding the provenance and ``/circuit`` (atomically).

    ``replace``: replace whatever file is at ``path`` (``cortexsim circuit --force``); by default only a run file.
    """
    path = Path(path)
    attrs = store.provenance(config.to_toml(), config.experiment.seed)
    with store.open_for_update(path, attrs, replace=replace) as f:
        store.write_circuit(f, connectome)
    return path


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


@dataclass(frozen=True)
class StageOutput:
    """What one stage wrote into the run file.

    Attributes
    ----------
    groups : tuple of str
        Top-level groups (or ``ann/<arch>``) the stage wrote.
    metrics : tuple of str
        ``/metrics`` attributes the stage wrote.
    """

    groups: tuple[str, ...]
    metrics: tuple[str, ...]


_TRAINING = (
    *("experiment.seed", "circuit", "task", "lif", "rate", "train", "effector"),
    *("perturb.train_bump_fraction", "perturb.bump_force", "perturb.bump_duration"),  # the training bumps
)


def stages(config: Config) -> list[Stage]:
    """The stages ``config`` runs, in order.

    ``train`` (BPTT of the rate network) -> ``rate`` (evaluate it, with the ``[lesion]``
    applied) -> ``spiking`` (if enabled) -> ``perturb`` (if ``[perturb]`` asks for a protocol)
    -> ``ann:<arch>`` per baseline (with its own perturbation protocols) -> ``stimulate`` (if
    ``[stimulation]`` gives protocols: :mod:`cortexsim.stim_stage`) -> ``compare``.
    Training does not depend on ``[lesion]``, ``[spiking]``, ``[ann]`` or ``[compare]``,
    so runs that differ only there can share it (see :func:`run_experiment`'s ``upstream``).
    With ``task.kind = "recorded"`` the one stage is ``fit``: every model fitted to the recording.
    """
    if config.task.kind == RECORDED_TASK:  # a fit: every model fitted and scored (cortexsim.fit_stage), nothing else
        return [Stage("fit", _TRAINING + ("fit", "ann"))]
    out = [Stage("train", _TRAINING), Stage("rate", _TRAINING + ("lesion",), ("train",))]
    if config.spiking.enabled:
        out.append(Stage("spiking", _TRAINING + ("lesion", "spiking"), ("rate",)))
    if config.perturb.active:
        out.append(Stage("perturb", _TRAINING + ("lesion", "spiking", "perturb"), ("rate",)))
    ann = (
        *("experiment.seed", "task", "train", "effector", "perturb"),
        *("ann.n_hidden", "ann.max_iterations", "ann.max_seconds", "ann.dtype"),
    )
    out += [Stage(model.stage, ann) for model in anns(config.ann.archs)]
    if config.compare.rotation_control and config.effector.has_body:
        out.append(Stage("control", _TRAINING + ("compare.rotation_control",)))
    if config.stimulation.active:  # every model is trained: the causal experiments
        models = ("rate", *(model.stage for model in anns(config.ann.archs)))
        out.append(Stage("stimulate", _TRAINING + ("lesion", "spiking", "stimulation", "quality", "ann"), models))
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


def _completed(run_file: Path, config: Config, force: bool, upstream: Path | None, log: Log) -> dict[str, dict]:
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
        attrs = store.provenance(config.to_toml(), config.experiment.seed, derived_from=upstream)
        with store.open_for_update(run_file, attrs) as f:
            store.copy_stages(src, f, list(valid))
    log(f"reusing stages {', '.join(valid)} of {upstream}")
    return valid


def run_experiment(
    config: Config,
    out_dir: str | Path,
    log: Log | None = None,
    force: bool = False,
    upstream: str | Path | None = None,
    jobs: int = 1,
) -> Path:
    """Run every stage of the pipeline and write ``out_dir/run.h5``, ``figures/`` and ``summary.md``.

    Stages already completed in ``out_dir`` for the same config are reused, and an
    interrupted training resumes from its last checkpoint; a different config is
    refused unless ``force``.  Each finished stage is recorded in ``/stages``.

    Parameters
    ----------
    config : Config
    out_dir : str or Path
    log : callable, optional
        Receives progress lines (default: the ``cortexsim.pipeline`` logger).  With ``jobs``
        > 1 it is also called from a helper thread (for the workers' lines).
    force : bool
        Recompute every stage even if ``out_dir/run.h5`` holds a run.
    upstream : str or Path, optional
        A finished run file whose stages with matching keys (:func:`stages`) seed a new
        ``out_dir/run.h5`` -- e.g. the intact run a lesion run is derived from, so the
        network is trained once.  Ignored when ``out_dir/run.h5`` exists.
    jobs : int
        Stages computed at the same time.  With ``jobs`` > 1 the ANN baselines train in
        ``jobs - 1`` spawned worker processes (:mod:`cortexsim.workers`) while this process
        trains the circuit and runs its twin; they need nothing the circuit's stages make.
        This process alone writes the run file, and the numbers are the same for any
        ``jobs`` (each stage seeds its own generators from the config).

    Returns
    -------
    Path
        The run file.
    """
    if jobs < 1:
        raise ConfigError(f"jobs = {jobs}: run at least one stage at a time (jobs >= 1)")
    out_dir = Path(out_dir)
    say = log or LOG.info

    def checked(line: str) -> None:  # every progress line is a safe point for a swallowed Ctrl-C
        sticky.check()
        say(line)

    ctx = _Context(config, out_dir / "run.h5", out_dir / "figures", checked, log, force)
    with StickyInterrupt() as sticky:
        done = _completed(ctx.run_file, config, force, Path(upstream) if upstream else None, ctx.log)
        recomputed: set[str] = set()
        timings: list[tuple[str, float, str]] = []
        plan = stages(config)
        # ANN and control stages read nothing earlier stages write (after = ()): whether they run is known now
        background = [s for s in plan if _runner(s.name) in _JOBS and s.name not in done] if jobs > 1 else []
        pool = WorkerPool(min(jobs - 1, len(background)), say) if background else None

        def record(stage: Stage, output: StageOutput, seconds: float, how: str) -> None:
            with store.open_for_update(ctx.run_file) as f:
                store.write_stage(
                    f,
                    stage.name,
                    key=stage.key(config),
                    seconds=seconds,
                    groups=list(output.groups),
                    metrics=list(output.metrics),
                )
            recomputed.add(stage.name)
            timings.append((stage.name, seconds, how))

        def collect(stage: Stage) -> None:
            """Write a worker's finished stage (waiting for it), as its stage runner would."""
            run, seconds = pool.result(stage.name, check=sticky.check)  # a Ctrl-C stops the wait
            ctx.log(f"[{stage.name}] finished in a worker process ({seconds:.1f} s)")
            output = _JOBS[_runner(stage.name)][1](config, run, ctx.run_file, ctx.figures, ctx.log)
            record(stage, output, seconds, "ran in a worker")

        try:
            if pool is not None:
                ctx.log(
                    f"training {', '.join(s.name for s in background)} in {pool.slots} worker process(es) "
                    f"next to this one (jobs = {jobs})"
                )
                for stage in background:
                    model = ModelId.parse(stage.name)
                    pool.submit(stage.name, _JOBS[model.kind][0], config, *((model.arch,) if model.arch else ()))
            for stage in plan:
                if stage.name in recomputed:  # an ANN stage a worker finished early, written already
                    continue
                if stage.name in done and not recomputed.intersection(stage.after):
                    ctx.log(f"[{stage.name}] done earlier ({done[stage.name]['seconds']:.1f} s); reused")
                    timings.append((stage.name, done[stage.name]["seconds"], "reused"))
                    continue
                if stage in background:
                    collect(stage)
                    continue
                ctx.log(f"[{stage.name}]")
                t0 = time.perf_counter()
                output = _RUNNERS[_runner(stage.name)](ctx, stage.name)
                record(stage, output, time.perf_counter() - t0, "ran")
                sticky.check()  # a Ctrl-C swallowed during the stage stops the run here, the stage recorded whole
                finished = pool.done() if pool is not None else []
                for job in (s for s in background if s.name in finished and s.name not in recomputed):
                    collect(job)  # write what the workers finished, so an interruption keeps it
                    sticky.check()
        finally:
            if pool is not None:
                pool.close()
        if config.export.nwb:  # [export] nwb = true: the twin as NWB next to the run file (not a stage: rewritten)
            from .export import export_nwb

            done = export_nwb(
                ctx.run_file, out_dir / "run.nwb", heldout_fraction=config.export.heldout_fraction, force=force
            )
            ctx.log(f"wrote {done.path} ({done.n_neurons} units, {done.size_bytes / 2**20:.1f} MiB)")
        ctx.log("stage wall times: " + ", ".join(f"{n} {t:.1f} s ({how})" for n, t, how in timings))
        ctx.log(f"wrote {ctx.run_file}, {out_dir / 'summary.md'} and {ctx.figures}/")
        verdict = gate(ctx.run_file, config)
        for line in verdict.lines() if verdict.passed else []:
            ctx.log(f"QUALITY: {line}")
        for line in verdict.warnings():
            _warn(ctx.user_log, line)
        return ctx.run_file


@dataclass(frozen=True)
class _Context:
    config: Config
    run_file: Path
    figures: Path
    log: Log
    user_log: Log | None = None
    force: bool = False


def train_rate(
    config: Config,
    connectome: Connectome | None = None,
    state: TrainState | None = None,
    *,
    checkpoint: Callable[[TrainState], None] | None = None,
    log: Log | None = None,
) -> tuple[RateNetwork, TrainState]:
    """Train the rate network of ``config`` by BPTT, as ``cortexsim run`` does (nothing is written).

    Parameters
    ----------
    config : Config
    connectome : Connectome, optional
        Default: :func:`~cortexsim.assembly.build_circuit` of ``config``.
    state : TrainState, optional
        A checkpoint to resume from (default: a fresh start from the initial parameters).
    checkpoint : callable, optional
        Receives the state at every checkpoint (the pipeline writes it to the run file).
    log : callable, optional
        Receives progress lines (default: the ``cortexsim.pipeline`` logger).

    Returns
    -------
    net : RateNetwork
        With the best validation parameters installed.
    state : TrainState
    """
    log = log or LOG.info
    connectome = build_circuit(config) if connectome is None else connectome
    net = initial_rate_network(config, connectome) if state is None else make_rate_network(config, connectome)
    log(f"rate: {net!r}")
    if state is None:
        state = new_state(
            net.params,
            net.param_scales(config.rate.rest_rate),
            seeded_rng(config, "batches"),
            seeded_rng(config, "noise"),
        )
    else:
        state.checkpointed_at = state.iteration
        log(f"resuming training from iteration {state.iteration}")
    info = net.kernel_info()
    log(
        f"kernel: {info['kernel_path']} recurrent product (density {info['density']:.3f}), "
        f"{info['gradient_threads']} weight-gradient thread(s), {info['blas_threads']} BLAS thread(s)"
    )
    # the thread counts follow from size, density and dtype alone (never load); results do not depend on them
    with threadpool_limits(limits=info["blas_threads"], user_api="blas"):
        state = train(
            net,
            make_task(config),
            config.train,
            state,
            validation=validation_set(config),
            checkpoint=checkpoint,
            log=log,
        )
    return net, state


def train_ann(config: Config, arch: str, log: Log | None = None) -> tuple[Trainable, TrainState]:
    """Train ANN baseline ``arch`` (``"rnn"``, ``"gru"``, ``"lstm"``) of ``config`` on the same task.

    Returns the model (best validation parameters installed) and its final :class:`TrainState`.
    """
    log = log or LOG.info
    model = make_ann_model(config, arch)
    log(f"ann {arch}: {model!r}")
    state = new_state(
        model.params,
        model.param_scales(),
        seeded_rng(config, f"ann-batches-{arch}"),
        seeded_rng(config, f"ann-noise-{arch}"),
    )
    # The ANNs' matrices are small: one BLAS thread is as fast and never stalls on a busy machine
    with threadpool_limits(limits=1, user_api="blas"):
        state = train(
            model, make_task(config), ann_train_config(config, arch), state, validation=validation_set(config), log=log
        )
    return model, state


def _stage_train(ctx: _Context, name: str) -> StageOutput:
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
    else:
        log(f"checkpoint found in {run_file}")
    plots.save(plots.plot_connectivity(connectome), ctx.figures / "connectivity.png")
    config_text = config.to_toml()

    def checkpoint(s: TrainState) -> None:
        with store.open_for_update(run_file) as f:
            store.write_training(f, s, config_text)

    net, state = train_rate(config, connectome, state, checkpoint=checkpoint, log=log)
    written = {
        "rate_train_seconds": state.elapsed,
        "rate_train_iterations": state.iteration,
        "rate_budget_hit": float(state.budget_hit),
    }
    with store.open_for_update(run_file) as f:
        store.write_trained_weight(f, net.to_connectome().weight)
        store.write_metrics(f, written, METRICS_TEXT)
    plots.save(plots.plot_training(state.history), ctx.figures / "training.png")
    return StageOutput(("circuit", "training"), tuple(written))


def _stage_rate(ctx: _Context, name: str) -> StageOutput:
    """Evaluate the trained rate network (lesioned as ``[lesion]`` says) on held-out trials."""
    config, run_file = ctx.config, ctx.run_file
    connectome = build_circuit(config)
    net = make_rate_network(config, connectome)
    with store.open_run(run_file) as f:
        state = store.read_training_state(f)
    net.set_params(state.best_params)
    net = _lesioned(net, config, ctx.log)
    info = net.kernel_info()
    with threadpool_limits(limits=info["blas_threads"], user_api="blas"):
        results = evaluate_rate(net, config)
        arm = None
        if net.body is not None:
            arm = _effector_arrays(results.body)  # the evaluation's own simulation, not a second one
            results.metrics.update(_potent_null_metrics(net, results.evaluation, results.activity))
            open_loop = net.without_feedback().simulate(results.test).outputs
            results.metrics["rate_endpoint_error_cm_no_feedback"] = metrics.endpoint_error_cm(open_loop, results.test)
    with store.open_for_update(run_file) as f:
        store.write_task(
            f, results.evaluation, "Evaluation set: one trial per target at the evaluation delay (task.eval_delay)."
        )
        attrs = {
            "transfer": repr(net.transfer),
            "dt": net.dt,
            "noise_std_mV": net.noise_std,
            "readout_units": net.out_idx,
            "tau_s": net.connectome.tau,
            "lesion": config.lesion.label(),
            **{k: info[k] for k in ("kernel_path", "blas_threads", "gradient_threads", "density")},
        }
        if net.body is not None:
            attrs["effector"] = config.effector.kind
            attrs["feedback_channels"] = list(net.body.feedback_channels)
        store.write_rate(f, results.states, results.activity, results.outputs, params=net.params, attrs=attrs)
        if arm is not None:
            store.write_effector(f, "rate", arm, net.dt, kind=config.effector.kind)
        store.write_metrics(f, results.metrics, METRICS_TEXT)
    if arm is not None:
        _arm_figures(net, results.evaluation, arm, ctx.figures)
    plots.save(
        plots.plot_trajectories(
            results.evaluation, results.outputs, results.catch_outputs, results.test, results.test_noisy
        ),
        ctx.figures / "trajectories.png",
    )
    plots.save(
        plots.plot_layer_rates(results.evaluation, results.activity, net.connectome), ctx.figures / "layer_rates.png"
    )
    _log_metrics(config, results.metrics, ctx.log)
    return StageOutput(("task", "rate"), tuple(results.metrics))


def _effector_arrays(loop) -> dict[str, np.ndarray]:
    """The arm's record of a closed-loop simulation, as ``/<model>/effector`` stores it."""
    return {
        "q": loop.q,
        "dq": loop.dq,
        "hand": loop.hand_shoulder,
        "activation": loop.activation,
        "excitation": loop.excitation,
        "feedback": loop.feedback,
    }


def _potent_null_metrics(net: ArmRateNetwork, evaluation: TrialBatch, rates: np.ndarray) -> dict[str, float]:
    """Share of PT5B's preparatory and movement activity in the muscles' output-potent space (Kaufman 2014)."""
    p, t = evaluation.params, evaluation.time[None, :]
    prep = (t >= p["target_on"][:, None] - 1e-9) & (t < p["go"][:, None] - 1e-9)
    move = (t >= p["move_on"][:, None] - 1e-9) & (t < p["move_off"][:, None] - 1e-9)
    result = analysis.potent_null(rates[:, :, net.out_idx], net.params["w_out"], prep, move)
    return {
        "rate_prep_potent_share": result.prep_potent,
        "rate_move_potent_share": result.move_potent,
        "rate_potent_chance": result.chance,
    }


def muscle_contributions(net: ArmRateNetwork, evaluation: TrialBatch) -> tuple[np.ndarray, list[str]]:
    """RMS change of each muscle's excitation when each population is silenced, (populations, 6).

    Parameters
    ----------
    net : ArmRateNetwork
    evaluation : TrialBatch
        The trials to simulate (noise-free).

    Returns
    -------
    contributions : ndarray, shape (populations, muscles)
        RMS over conditions and time of the excitation change (dimensionless).
    names : list of str
        The populations, in the connectome's order.
    """
    intact = net.simulate_loop(evaluation).excitation
    rows, names = [], []
    for pop in net.connectome.populations:
        silenced = np.zeros(net.n_units, bool)
        silenced[pop.slice] = True
        changed = net.lesioned(silenced=silenced).simulate_loop(evaluation).excitation
        rows.append(np.sqrt(np.mean((changed - intact) ** 2, axis=(0, 1))))
        names.append(pop.name)
    return np.array(rows), names


def _arm_figures(net: ArmRateNetwork, evaluation: TrialBatch, arm: dict[str, np.ndarray], folder: Path) -> None:
    """``arm.png`` (stick figures, hand paths, speed) and ``muscles.png`` (activations, contributions)."""
    plant = net.body.plant
    plots.save(plots.plot_arm(evaluation, arm, plant.skeleton, plant.ORIGIN), folder / "arm.png")
    contributions, names = muscle_contributions(net, evaluation)
    plots.save(plots.plot_muscles(evaluation, arm, plant.MUSCLES, contributions, names), folder / "muscles.png")


def _lesioned(net, config: Config, log: Log):
    """``net`` with ``config.lesion`` applied (said in the log when there is one)."""
    if config.lesion.active:
        log(f"lesion: {config.lesion.label()}")
    return apply_lesion(net, config.lesion)


def _stage_perturb(ctx: _Context, name: str) -> StageOutput:
    """The trained circuit (lesioned as ``[lesion]`` says) and its twin through ``[perturb]``'s protocols."""
    config, run_file, log = ctx.config, ctx.run_file, ctx.log
    with store.open_run(run_file) as f:
        trained = store.read_trained_rate(f)
    net = trained_rate_network(config, trained)
    with threadpool_limits(limits=net.kernel_info()["blas_threads"], user_api="blas"):
        run = perturbation_run(config, net, "rate", log)
    parts = dict(run.parts)
    if config.spiking.enabled and config.perturb.spiking_trials > 0:
        parts.update(spiking_perturbation_parts(config, net, run.curl, log))
    written = write_perturbation_parts(parts, run_file)
    perturbation_figures(run_file, ctx.figures, gate(run_file, config))
    _log_metrics(config, written, log)
    return StageOutput(("perturbation",), tuple(written))


Parts = dict[tuple[str, str], tuple[dict, dict, dict, dict[str, float]]]
"""``(kind, model) -> (tables, arrays, attrs, metrics)``: what :func:`store.write_perturbation` writes."""


@dataclass(frozen=True)
class PerturbationRun:
    """One model through ``[perturb]``'s protocols (:func:`perturbation_run`), before anything is written.

    Attributes
    ----------
    parts : dict
        ``(kind, model) -> (tables, arrays, attrs, metrics)`` for :func:`store.write_perturbation`.
    curl : CurlResult or None
        The curl protocol's result (the twin runs the adapted parameters).
    """

    parts: Parts
    curl: perturb.CurlResult | None = None


def perturbation_run(config: Config, model, prefix: str, log: Log | None = None) -> PerturbationRun:
    """Run ``[perturb]``'s protocols on one trained arm model (circuit or ANN); nothing is written.

    A pure function of its arguments and the config's seed (so an ANN's runs the same in a worker).
    """
    log = log or LOG.info
    pc = config.perturb
    task = make_task(config)  # adaptation trains on the run's own task (randomly bumped if it was)
    plain = CenterOutTask.of(config.task)  # the bump protocol's test trials are the evaluation set's
    parts: Parts = {}
    curl = None
    seed = config.experiment.seed
    if pc.curl:
        identity = ModelId.of_prefix(prefix)
        is_ann = identity is not None and identity.kind == "ann"
        train_config = ann_train_config(config, identity.arch) if is_ann else config.train
        curl = perturb.curl_protocol(
            model, task, train_config, pc, validation_set(config), seed=seed, prefix=prefix, log=log
        )
        parts[("curl", prefix)] = _curl_parts(
            curl.phases, curl.hands, config, curl.metrics, curl.curve, curl.populations
        )
    if pc.bumps:
        bumps = perturb.bump_protocol(model, plain, pc, seed=seed, prefix=prefix)
        arrays = {
            "aligned_hand": (bumps.aligned_hand, "m", "timing,direction,window,xy",
                             "Hand displacement from the unperturbed path aligned to the bump, mean over conditions."),
            "aligned_change": (bumps.aligned_change, "Hz", "timing,population,window",
                               "Mean |delta rate| per population, noisy bumped vs calm PSTHs, aligned to the bump."),
            "window": (bumps.window, "s", "window", "Time relative to the bump's onset."),
        }  # fmt: skip
        attrs = {"timings": list(bumps.timings), "populations": list(bumps.populations)}
        parts[("bumps", prefix)] = (
            {"trials": bumps.trials, "latencies": bumps.latencies},
            arrays,
            attrs,
            bumps.metrics,
        )
        m = bumps.metrics
        log(
            f"[bumps] {prefix}: median peak displacement {m[f'{prefix}_bump_displacement_cm']:.2f} cm, "
            f"median recovery {m[f'{prefix}_bump_recovery_ms']:.0f} ms (max {m[f'{prefix}_bump_recovery_max_ms']:.0f})"
        )
    return PerturbationRun(parts, curl)


def _curl_parts(phases, hands, config: Config, values, curve=(), populations=()) -> tuple:
    """The curl protocol's tables, arrays and attributes for :func:`store.write_perturbation`."""
    names = [row["phase"] for row in phases]
    arrays = {
        "hands": (
            np.stack([hands[ph] for ph in names]),
            "m",
            "phase,condition,time,xy",
            "Hand paths relative to the start on the evaluation reaches, per phase (attribute phases).",
        )
    }
    attrs = {"phases": names, "field_N_s_per_m": config.perturb.field.ravel().tolist()}
    tables = {"phases": phases, "curve": curve, "populations": populations}
    return ({k: rows for k, rows in tables.items() if rows}, arrays, attrs, values)


def spiking_perturbation_parts(config: Config, net: ArmRateNetwork, curl, log: Log | None = None) -> Parts:
    """The circuit's spiking twin through the perturbations (``perturb.spiking_trials`` trials per condition)."""
    log = log or LOG.info
    sc, pc = config.spiking, config.perturb
    twin = perturb.TwinSettings(config.experiment.seed, sc.k, sc.dt, loop_target(sc.target), sc.readout_tau)
    plain = CenterOutTask.of(config.task)
    parts: Parts = {}
    if curl is not None:
        t0 = time.perf_counter()
        rows, values, hands = perturb.curl_twin(net, curl, pc, config.lif, plain, twin)
        parts[("curl", "spiking")] = _curl_parts(tuple(rows), hands, config, values)
        log(
            f"[curl] spiking: first exposure {values['spiking_curl_first_exposure_deviation_cm']:.2f} cm, after "
            f"adaptation {values['spiking_curl_after_adaptation_deviation_cm']:.2f} cm (ratio "
            f"{values['spiking_curl_deviation_ratio']:.2f}), aftereffect "
            f"{values['spiking_curl_aftereffect_cm']:+.2f} cm ({time.perf_counter() - t0:.0f} s)"
        )
    if pc.bumps:
        t0 = time.perf_counter()
        rows, values = perturb.bump_twin(net, pc, config.lif, plain, twin)
        parts[("bumps", "spiking")] = ({"trials": tuple(rows)}, {}, {"timings": list(pc.bump_times)}, values)
        log(
            f"[bumps] spiking: median recovery {values['spiking_bump_recovery_ms']:.0f} ms "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    return parts


def write_perturbation_parts(parts: Parts, run_file: Path) -> dict[str, float]:
    """Write every part under ``/perturbation`` and its metrics; returns the metrics written."""
    written: dict[str, float] = {}
    with store.open_for_update(run_file) as f:
        for (kind, model), (tables, arrays, attrs, values) in parts.items():
            store.write_perturbation(f, kind, model, tables, arrays, attrs)
            written.update(values)
        store.write_metrics(f, written, METRICS_TEXT)
    return written


def perturbation_figures(run_file: Path, folder: Path, verdict: quality.QualityVerdict) -> list[Path]:
    """``curl.png`` and ``bumps.png`` of every model ``/perturbation`` holds (none when it holds nothing).

    A model in ``verdict.failed_models`` is marked as having failed its task in both.
    """
    with store.open_run(run_file) as f:
        held = store.read_perturbation(f)
    failed = verdict.failed_models
    saved = []
    if held.get("curl"):
        saved.append(plots.save(plots.plot_curl(held["curl"], failed), folder / "curl.png"))
    if held.get("bumps"):
        saved.append(plots.save(plots.plot_bumps(held["bumps"], failed), folder / "bumps.png"))
    return saved


def task_figure(run_file: Path, config: Config, folder: Path, verdict: quality.QualityVerdict) -> Path | None:
    """The task's own figure of every model's hand paths (``plots.TASK_FIGURES``: the maze's ``maze.png``), or None."""
    task = task_of(config.task)
    if not plots.has_task_figure(task):
        return None
    with store.open_run(run_file) as f:
        evaluation, paths = store.read_task(f), store.read_hand_paths(f)
    name, fig = plots.task_figure(task, evaluation, paths, verdict.failed_models)
    return plots.save(fig, folder / name)


def _stage_spiking(ctx: _Context, name: str) -> StageOutput:
    result = run_spiking(ctx.config, ctx.run_file, ctx.figures, ctx.log)
    return StageOutput(("spikes", "spiking"), tuple(result.metrics))


def _stage_ann(ctx: _Context, name: str) -> StageOutput:
    model = ModelId.parse(name)
    written = run_ann(ctx.config, model.arch, ctx.run_file, ctx.figures, ctx.log)
    return StageOutput((model.group,), tuple(written))


def _stage_compare(ctx: _Context, name: str) -> StageOutput:
    written = compare_stage(
        ctx.run_file,
        ctx.figures,
        ctx.config.compare,
        base=ctx.config.base,
        log=ctx.log,
        config=ctx.config,
        force=ctx.force,
    )
    return StageOutput(("analysis",), tuple(written))


@dataclass(frozen=True)
class ControlRun:
    """The trained no-inter-population-recurrence control circuit (:func:`control_run`), before it is written.

    Attributes
    ----------
    params : dict of str to ndarray
        Its trained parameters (best validation iteration).
    metrics : dict of str to float
        ``control_*``: held-out reach metrics, training time and iterations.
    """

    params: dict[str, np.ndarray]
    metrics: dict[str, float]


def control_net(config: Config) -> ArmRateNetwork:
    """The control circuit of ``config``: its connectome without inter-population synapses (parameters unset)."""
    return make_rate_network(config, build_circuit(config).within_populations())


def control_run(config: Config, log: Log | None = None) -> ControlRun:
    """Train the circuit without inter-population recurrence from scratch, with feedback; nothing is written.

    The same task, streams and settings as the circuit's own training (:func:`train_rate`), on
    :meth:`~cortexsim.circuit.Connectome.within_populations` of its connectome.
    """
    net, state = train_rate(config, build_circuit(config).within_populations(), log=log or LOG.info)
    with threadpool_limits(limits=1, user_api="blas"):
        results = evaluate(net, config, "control")
    values = {
        **{k: val for k, val in results.metrics.items() if not k.endswith("_noisy")},
        "control_train_seconds": state.elapsed,
        "control_train_iterations": float(state.iteration),
    }
    return ControlRun({k: p.copy() for k, p in net.params.items()}, values)


def write_control_run(config: Config, run: ControlRun, run_file: Path, figures: Path, log: Log | None = None):
    """Write ``/control`` and its metrics; returns the stage's output."""
    with store.open_for_update(run_file) as f:
        store.write_control(f, run.params, {"connectome": "within_populations", "config": config.to_toml()})
        store.write_metrics(f, run.metrics, METRICS_TEXT)
    for key, value in run.metrics.items():
        (log or LOG.info)(f"  {key:32s} {value:.4g}")
    return StageOutput(("control",), tuple(run.metrics))


def _stage_control(ctx: _Context, name: str) -> StageOutput:
    return write_control_run(ctx.config, control_run(ctx.config, ctx.log), ctx.run_file, ctx.figures, ctx.log)


def _write_ann_job(config: Config, run, run_file: Path, figures: Path, log: Log) -> StageOutput:
    return StageOutput((ModelId.ann(run.arch).group,), tuple(write_ann_run(config, run, run_file, figures, log)))


def _stage_stimulate(ctx: _Context, name: str) -> StageOutput:
    """Every ``[stimulation]`` protocol on every trained model (:mod:`cortexsim.stim_stage`)."""
    failed = gate(ctx.run_file, ctx.config).failed_models
    written = run_stimulation(ctx.config, ctx.run_file, ctx.figures, METRICS_TEXT, ctx.log, failed)
    return StageOutput(("stimulation",), tuple(written))


def _stage_fit(ctx: _Context, name: str) -> StageOutput:
    """Every model fitted to the held-in neurons of ``[fit] data`` and scored (:mod:`cortexsim.fit_stage`)."""
    return StageOutput(("fit",), tuple(run_fit(ctx.config, ctx.run_file, METRICS_TEXT, ctx.log)))


_RUNNERS = {
    "train": _stage_train,
    "fit": _stage_fit,
    "stimulate": _stage_stimulate,
    "rate": _stage_rate,
    "spiking": _stage_spiking,
    "perturb": _stage_perturb,
    "ann": _stage_ann,
    "control": _stage_control,
    "compare": _stage_compare,
}


@dataclass(frozen=True)
class AnnRun:
    """One trained and evaluated ANN baseline, before anything is written (see :func:`ann_run`).

    Attributes
    ----------
    arch : str
        ``"rnn"``, ``"gru"`` or ``"lstm"``.
    results : Evaluation
        Its held-out metrics and evaluation-set activity (hidden states).
    params : dict of str to ndarray
        The trained parameters (best validation iteration).
    metrics : dict of str to float
        ``ann_<arch>_*`` metrics, with the training time, iterations and budget flag.
    attrs : dict
        Attributes of ``/ann/<arch>`` (config, size, iterations, effector).
    arm : dict of str to ndarray or None
        On an arm run, the arm it moved on the evaluation set (:func:`_effector_arrays`).
    perturbation : dict
        On an arm run with ``[perturb]`` protocols, their parts (:attr:`PerturbationRun.parts`);
        their metrics are in :attr:`metrics` too.
    """

    arch: str
    results: Evaluation
    params: dict[str, np.ndarray]
    metrics: dict[str, float]
    attrs: dict
    arm: dict[str, np.ndarray] | None
    perturbation: Parts = field(default_factory=dict)


def ann_run(config: Config, arch: str, log: Log | None = None) -> AnnRun:
    """Train ANN baseline ``arch`` on the run's task and evaluate it; nothing is written.

    A pure function of ``config`` and ``arch`` (its generators are seeded from the config), so
    it gives the same numbers in the pipeline's own process or in a worker process.
    """
    log = log or LOG.info
    prefix = ModelId.ann(arch).prefix
    model, state = train_ann(config, arch, log)
    parts: Parts = {}
    with threadpool_limits(limits=1, user_api="blas"):
        results = evaluate(model, config, prefix)
        arm = _effector_arrays(results.body) if results.body is not None else None
        if arm is not None and config.perturb.active:
            parts = perturbation_run(config, model, prefix, log).parts
    written = {
        **results.metrics,
        **{k: val for *_, values in parts.values() for k, val in values.items()},
        f"{prefix}_train_seconds": state.elapsed,
        f"{prefix}_train_iterations": float(state.iteration),
        f"{prefix}_budget_hit": float(state.budget_hit),
    }
    attrs = {
        "config": config.to_toml(),
        "n_hidden": config.ann.n_hidden,
        "iterations": state.iteration,
        "train_seconds": state.elapsed,
        "effector": config.effector.kind,
    }
    return AnnRun(arch, results, dict(model.params), written, attrs, arm, parts)


def write_ann_run(config: Config, run: AnnRun, run_file: Path, figures: Path, log: Log | None = None) -> list[str]:
    """Write ``/ann/<arch>``, its metrics and ``trajectories_<arch>.png``; returns the metric names."""
    log = log or LOG.info
    results, arch = run.results, run.arch
    with store.open_for_update(run_file) as f:
        store.write_ann(f, arch, results.activity, results.outputs, run.params, run.attrs)
        if run.arm is not None:
            store.write_effector(f, ModelId.ann(arch).group, run.arm, config.task.dt, kind=config.effector.kind)
        for (kind, model), (tables, arrays, attrs, _) in run.perturbation.items():
            store.write_perturbation(f, kind, model, tables, arrays, attrs)
        store.write_metrics(f, run.metrics, METRICS_TEXT)
    plots.save(
        plots.plot_trajectories(results.evaluation, results.outputs, results.catch_outputs),
        figures / f"trajectories_{arch}.png",
    )
    _log_metrics(config, run.metrics, log)
    return list(run.metrics)


def run_ann(config: Config, arch: str, run_file: Path, figures: Path, log: Log | None = None) -> list[str]:
    """Train one ANN baseline on the same task, evaluate it and write ``/ann/<arch>``; returns the metric names."""
    return write_ann_run(config, ann_run(config, arch, log), run_file, figures, log)


_JOBS = {"ann": (ann_run, _write_ann_job), "control": (control_run, write_control_run)}
"""Stages a worker process may compute (they read nothing earlier stages write): job, writer."""


def _runner(stage: str) -> str:
    """The key of a stage's runner: a model's kind (``ann:gru`` -> ``ann``), else the stage's name."""
    model = of_activity(stage)
    return model.kind if model is not None else stage


def run_spiking(config: Config, run_file: Path, figures: Path, log: Log | None = None) -> TwinResult:
    """Simulate the trained circuit as LIF pools in Brian2; write ``/spikes``, ``/spiking``, metrics, figures.

    On an arm run the twin drives the arm in closed loop (:mod:`cortexsim.spiking.arm`) and
    ``/spiking/effector`` and ``arm_spiking.png`` record the arm it moved.
    """
    log = log or LOG.info
    sc = config.spiking
    arm_run = config.effector.has_body
    if arm_run:
        target = loop_target(sc.target)
    else:
        target = best_target() if sc.target == "auto" else sc.target
    log(
        f"spiking: K = {sc.k} LIF neurons per unit, {sc.trials_per_condition} trials per condition "
        f"(Brian2 target {target})"
        + (
            f", driving the {config.effector.kind} body (PT5B read through a {sc.readout_tau * 1e3:g} ms filter)"
            if arm_run
            else ""
        )
    )
    with store.open_run(run_file) as f:
        trained = store.read_trained_rate(f)
        n_reach = store.read_task_targets(f).shape[0]
    net = trained_rate_network(config, trained)
    task = make_task(config)
    result = run_twin(
        net,
        config.lif,
        task,
        seed=config.experiment.seed,
        k=sc.k,
        trials_per_condition=sc.trials_per_condition,
        target=target,
        dt=sc.dt,
        readout_tau=sc.readout_tau,
    )
    n_trials = result.outputs.shape[1]  # single trials, condition-major, as the twin's own metrics
    hands = result.outputs.reshape(-1, *result.outputs.shape[2:])
    hands_batch = flat_batch(result.batch, n_trials)
    result.metrics.update(metrics.task_metrics(task_of(config.task), "spiking", hands, hands_batch))
    connectome = trained.connectome
    with store.open_for_update(run_file) as f:
        store.write_spiking(f, result, connectome, n_reach)
        if result.effector is not None:
            store.write_effector(f, "spiking", result.effector, result.batch.dt, trials=True, kind=config.effector.kind)
        store.write_metrics(f, result.metrics, METRICS_TEXT)
    plots.save(
        plots.plot_raster(result.spikes, connectome, result.params.k, duration=result.batch.n_steps * result.batch.dt),
        figures / "raster.png",
    )
    mean_out = result.outputs.mean(axis=1)
    plots.save(
        plots.plot_trajectories(task.evaluation_set(), mean_out[:n_reach], mean_out[n_reach:]),
        figures / "trajectories_spiking.png",
    )
    if result.effector is not None:
        first_trials = {name: a[:n_reach, 0] for name, a in result.effector.items()}
        plots.save(
            plots.plot_arm(task.evaluation_set(), first_trials, net.body.plant.skeleton, net.body.plant.ORIGIN),
            figures / "arm_spiking.png",
        )
    plots.save(plots.plot_fidelity(result.fidelity), figures / "spiking_fidelity.png")
    _log_metrics(config, result.metrics, log)
    return result


def _log_metrics(config: Config, written: dict[str, float], log: Log) -> None:
    """One line per metric a stage wrote, then its quality verdict."""
    for key, value in written.items():
        log(f"  {key:32s} {value:.4g}")
    _log_gate(config, written, log)


def _log_gate(config: Config, written: dict[str, float], log: Log) -> None:
    """Say at once, in plain words, if the model a stage just evaluated missed its ``[quality]`` bars."""
    verdict = quality.check_written(written, config.quality)
    for model in verdict.failed_models:
        log(f"  QUALITY: {verdict.describe(model)}")


def gate(run_file: Path, config: Config) -> quality.QualityVerdict:
    """The quality verdict on every model whose metrics ``run_file`` holds, against ``config.quality``."""
    with store.open_run(run_file) as f:
        return quality.check_quality(store.read_metrics(f), config.quality)


def compare_models(activities: dict[str, np.ndarray], config: Config) -> BatteryResult:
    """The comparison battery on evaluation-set activities computed in Python (nothing is read or written).

    Parameters
    ----------
    activities : dict of str to ndarray, shape (conditions, time, units)
        Name (``"rate"``, ``"ann:gru"``, ``"spiking"``, ...) -> activity on the evaluation set of
        ``config`` (e.g. :attr:`Evaluation.activity`, or the twin's trial-averaged reach rates).
    config : Config
        Gives ``[compare]`` (PCs, shuffles), the task's dt and movement onset, and the seed
        (stream "compare").

    Returns
    -------
    BatteryResult
    """
    evaluation = make_task(config).evaluation_set()
    move_on = int(round(float(evaluation.params["move_on"][0]) / evaluation.dt))
    records = [store.Activity(name, "model", np.asarray(x), evaluation.dt, move_on) for name, x in activities.items()]
    return battery.run_battery(
        records,
        n_pcs=config.compare.n_pcs,
        n_null=config.compare.n_null,
        positions=evaluation.targets,
        rng=seeded_rng(config, "compare"),
    )


def compare_stage(
    run_file: Path,
    figures: Path,
    cc,
    base: Path = Path("."),
    others: tuple = (),
    log: Log | None = None,
    config: Config | None = None,
    force: bool = False,
    forget: bool = False,
) -> list[str]:
    """Run the comparison battery on a run file and write what it found.

    Writes ``/analysis``, the ``compare_*`` metrics, the quality verdict (``quality_passed``,
    ``<model>_quality_passed``), figures and ``summary.md``.

    The comparison's units (:mod:`cortexsim.battery_cache`: the run's own rows, the rows of recorded
    data, the dynamics, the rotation sources) are kept in ``/analysis/units`` with the key of their
    inputs; a unit whose key still matches is read back instead of computed (the fixed-point figures,
    which the rows cannot redraw, must still be in ``figures``), so adding recorded data to a finished
    run computes only the rows that involve the data -- the same numbers a full computation gives.

    ``config`` (default: the run's own, as stored in the file) gives the ``[quality]`` bars and the
    seed of the shuffles and decoding folds (stream "compare").  ``force``: compute every unit, reuse
    nothing.  ``forget``: drop the ``compare`` stage's record in the same write (a comparison with
    settings other than the run's, which ``cortexsim run`` redoes).  Returns the metric names.
    """
    from . import report
    from .data import load_neural_data

    log = log or LOG.info
    with store.open_run(run_file) as f:
        config = store.read_config(f) if config is None else config
        positions = store.read_task_targets(f)
        verdict = quality.check_quality(store.read_metrics(f), config.quality)
        activities = store.read_activities(f)
        sources = comparison_sources(f, activities)
        held = {} if force else store.read_analysis_units(f)
    for i, other in enumerate(others):
        with store.open_run(other) as f:
            activities += store.read_activities(f, prefix=f"run{i + 2}/")
    notes: tuple[str, ...] = ()
    if cc.data:  # recorded data, put on the run's time grid
        recorded = load_neural_data(base / cc.data, **cc.loader_options())
        data, notes = battery.activity_from_data(recorded, activities[0])
        activities.append(data)
    settings = battery.BatterySettings(cc.n_pcs, cc.n_null, cc.n_surrogates)
    keys = _unit_keys(config, cc, settings, activities, positions, sources)
    drawn = os.path.relpath(Path(figures).resolve(), run_file.parent.resolve())
    reuse = {name: held[name] for name, key in keys.items() if name in held and held[name].key == key}
    if "dynamics" in reuse and not _figures_kept(reuse["dynamics"], drawn, Path(figures)):
        del reuse["dynamics"]  # its fixed-point figures are not where they are wanted: draw them again
    rng = seeded_rng(config, "compare")
    fold_seed = int(rng.integers(2**32))  # as battery.run_battery draws it: the same decoding folds
    # one BLAS thread for the whole comparison: the limit is process-wide, and the fixed-point
    # searches (which need only the models) run on threads while the battery runs here
    with threadpool_limits(limits=1, user_api="blas"):
        if "dynamics" not in reuse:
            replicates, probes, trials = _dynamics_inputs(sources, config, cc)
            fixed = seeded_rng(config, "compare-fixed-points")
            searches = battery.start_fixed_points(probes, cc.fixed_point_starts, fixed)
        t0 = time.perf_counter()
        own = battery_cache.unit_part(reuse["battery"]) if "battery" in reuse else None
        if own is None:
            own = battery.own_part(
                [a for a in activities if a.kind != "data"],
                settings,
                rng=rng,
                fold_seed=fold_seed,
                positions=positions,
                surrogate_rng=seeded_rng(config, "compare-surrogates"),
            )
        data = battery_cache.unit_part(reuse["data"]) if "data" in reuse else None
        if data is None:
            data = battery.data_part(activities, settings, fold_seed=fold_seed, positions=positions)
        result = battery.merge(activities, (own, data), settings).with_notes(notes)
        t1 = time.perf_counter()
        if "rotation_sources" in reuse:
            rotation_rows = list(reuse["rotation_sources"].tables.get("rotation_sources", ()))
        else:  # while the searches run
            rotation_rows = _rotation_sources(sources, config, cc.n_pcs, log) if "rotation_sources" in keys else []
        if "dynamics" in reuse:
            computed = battery_cache.unit_dynamics(reuse["dynamics"])
        else:
            computed = battery.model_dynamics(
                result.activities,
                rng=seeded_rng(config, "compare-dynamics"),
                n_pcs=cc.n_pcs,
                replicates=replicates,
                probes=probes,
                fixed_point_starts=cc.fixed_point_starts,
                trials=trials,
                fixed_points=searches.result(),
            )
        dynamics = battery.with_battery(computed, result)
    fresh = [p for name, p in (("battery", own), ("data", data)) if name not in reuse]
    log(
        f"compare: {len(result.similarity)} pairs, {len(result.jpca)} jPCA fits "
        f"({sum(len(p.similarity) for p in fresh)} and {sum(len(p.jpca) for p in fresh)} computed, {t1 - t0:.1f} s); "
        f"dynamics: {len(dynamics.fixed_points)} fixed-point searches, {len(dynamics.calibration)} ceilings "
        f"({'reused' if 'dynamics' in reuse else 'computed'}, {time.perf_counter() - t1:.1f} s)"
        + (f"; reused {', '.join(reuse)}: their inputs are as when computed (--force recomputes)" if reuse else "")
    )
    log(report.format_report(result, verdict))
    written = {**battery.headline_metrics(result), **battery.dynamics_metrics(dynamics), **verdict.to_metrics()}
    units = {
        "battery": battery_cache.part_unit(own, keys["battery"]),
        "data": battery_cache.part_unit(data, keys["data"]),
        "dynamics": reuse.get("dynamics") or battery_cache.dynamics_unit(computed, keys["dynamics"], drawn),
    }
    if "rotation_sources" in keys:
        units["rotation_sources"] = battery_cache.rows_unit("rotation_sources", rotation_rows, keys["rotation_sources"])
    if not any(a.kind == "data" for a in activities):
        del units["data"]
    with store.open_for_update(run_file) as f:
        tables = {**dynamics.tables(), **({"rotation_sources": rotation_rows} if rotation_rows else {})}
        answers = battery.headline(result)
        store.write_analysis(
            f,
            result.similarity,
            result.jpca,
            answers,
            result.notes,
            tables,
            columns=battery.TABLE_COLUMNS,
            descriptions=battery.ANALYSIS_TABLES,
        )
        store.write_analysis_units(f, units)
        store.write_metrics(f, written, METRICS_TEXT)
        if forget:
            store.forget_stages(f, ["compare"])
    with threadpool_limits(limits=1, user_api="blas"):  # the figures' PCAs: small SVDs, slower on shared cores
        plots.battery_figures(result, figures)
        plots.dynamics_figures(result, dynamics, figures)  # fixed-point figures only when searched now
        perturbation_figures(run_file, figures, verdict)  # every model's protocols, the ANNs' included
        task_figure(run_file, config, figures, verdict)
        if rotation_rows:
            plots.save(plots.plot_rotation_sources(rotation_rows), figures / "rotation_sources.png")
    with store.open_run(run_file) as f:
        summary = report.summary_markdown(store.read_run_summary(f), result, verdict, dynamics, rotation_rows)
    store.write_text_atomic(run_file.parent / "summary.md", summary)
    return list(written)


@dataclass(frozen=True)
class ComparisonSources:
    """What the comparison rebuilds the run's models from, read once from the run file (:func:`comparison_sources`).

    Attributes
    ----------
    trained : store.TrainedRate
        The trained circuit.
    anns : dict of ModelId to store.AnnRecord
        Every ANN baseline whose activity the run holds.
    spiking_trials : ndarray or None, shape (conditions, trials, time, units)
        The twin's single-trial rates (Hz) on the reach conditions.
    control : dict of str to ndarray, or None
        The control circuit's parameters (``[compare] rotation_control``).
    rate_done : bool
        Whether the ``rate`` stage is recorded as finished (the rotation sources need it).
    """

    trained: store.TrainedRate
    anns: dict[ModelId, store.AnnRecord]
    spiking_trials: np.ndarray | None
    control: dict[str, np.ndarray] | None
    rate_done: bool

    def circuit(self) -> dict[str, object]:
        """The trained circuit's arrays (for the units' keys)."""
        c = self.trained.connectome
        return {"params": self.trained.params, "pre": c.pre, "post": c.post, "weight": c.weight}


def comparison_sources(f, activities: list[store.Activity]) -> ComparisonSources:
    """The :class:`ComparisonSources` of an open run file whose activities are ``activities``."""
    ids = [of_activity(a.name) for a in activities if a.kind == "model"]
    return ComparisonSources(
        trained=store.read_trained_rate(f),
        anns={m: store.read_ann(f, m.arch) for m in ids if m is not None and m.kind == "ann"},
        spiking_trials=store.read_spiking_trials(f),
        control=store.read_control(f),
        rate_done="rate" in store.read_stages(f),
    )


def _unit_keys(
    config: Config,
    cc,
    settings: battery.BatterySettings,
    activities: list[store.Activity],
    positions: np.ndarray,
    sources: ComparisonSources,
) -> dict[str, str]:
    """The key of every unit the comparison of ``activities`` has (:mod:`cortexsim.battery_cache`)."""
    text = config.to_toml()
    own_key = battery_cache.battery_key(activities, settings, positions, config.experiment.seed)
    models = {
        "rate": sources.circuit(),
        "ann": {m.stage: r.params for m, r in sources.anns.items()},
        "spiking_trials": sources.spiking_trials,
    }
    keys = {
        "battery": own_key,
        "data": battery_cache.data_key(own_key, activities),
        "dynamics": battery_cache.dynamics_key(text, models, activities, cc.n_pcs, cc.fixed_point_starts),
    }
    if config.effector.has_body and sources.rate_done:
        rotation = {"rate": sources.circuit(), "control": sources.control}
        keys["rotation_sources"] = battery_cache.rotation_key(text, rotation, cc.n_pcs)
    return keys


def _figures_kept(unit: store.AnalysisUnit, drawn: str, figures: Path) -> bool:
    """Whether the figures a reused ``dynamics`` unit cannot redraw (the fixed points) are in ``figures``."""
    if not unit.tables.get("fixed_points"):
        return True
    return unit.figures == drawn and all((figures / n).is_file() for n in ("fixed_points.png", "eigenspectra.png"))


def rotation_sources_of(run_file: Path, config: Config, n_pcs: int, log: Log | None = None) -> list[dict]:
    """An arm run's rotation-sources table (:func:`cortexsim.rotations.rotation_sources`); [] otherwise."""
    if not config.effector.has_body:
        return []
    with store.open_run(run_file) as f:
        if "rate" not in store.read_stages(f):  # the circuit has not been evaluated (yet)
            return []
        sources = comparison_sources(f, store.read_activities(f))
    return _rotation_sources(sources, config, n_pcs, log)


def _rotation_sources(sources: ComparisonSources, config: Config, n_pcs: int, log: Log | None = None) -> list[dict]:
    from .rotations import rotation_sources

    t0 = time.perf_counter()
    net = trained_rate_network(config, sources.trained, lesion=False)  # the intact circuit: the table's reference
    control = None
    if sources.control is not None:
        control = control_net(config)
        control.set_params(sources.control)
    rows = rotation_sources(net, make_task(config).evaluation_set(), n_pcs, control=control)
    (log or LOG.info)(
        "rotation sources: "
        + ", ".join(f"{r['condition']} {r['jpca_ratio']:.2f} @ {r['frequency_hz']:.2f} Hz" for r in rows)
        + f" ({time.perf_counter() - t0:.1f} s)"
    )
    return rows


def dynamics_inputs(
    run_file: Path, config: Config, cc
) -> tuple[dict[str, battery.Replicate], dict[str, battery.ModelProbe], battery.SingleTrials | None]:
    """The run's models rebuilt from the file: noise seeds (ceilings), maps (fixed points), single trials.

    Single trials: noisy runs of the rate circuit, for communication subspaces on residuals.
    The rate circuit (lesioned as the run was) and each ANN; the spiking twin's trials split in halves.
    Streams "ceiling-a", "ceiling-b" (noise seeds), "ceiling-halves" and "communication-trials"
    (:func:`communication_repeats` noisy runs of the evaluation set; none for a noise-free circuit);
    no probes when ``cc.fixed_point_starts`` is 0.  A circuit that drives the arm gets the fixed
    points of the whole closed loop (circuit, arm and delay lines:
    :func:`cortexsim.analysis.arm_loop_map`), and so does an ANN that drives it.
    """
    with store.open_run(run_file) as f:
        sources = comparison_sources(f, store.read_activities(f))
    return _dynamics_inputs(sources, config, cc)


def _dynamics_inputs(
    sources: ComparisonSources, config: Config, cc
) -> tuple[dict[str, battery.Replicate], dict[str, battery.ModelProbe], battery.SingleTrials | None]:
    evaluation = make_task(config).evaluation_set()
    trained = sources.trained
    models: dict[str, Trainable] = {"rate": trained_rate_network(config, trained)}
    for identity, record in sources.anns.items():
        model = make_ann_model(config, identity.arch)
        model.set_params(record.params)
        models[identity.stage] = model
    replicates: dict[str, battery.Replicate] = {}
    probes: dict[str, battery.ModelProbe] = {}
    groups = {p.name: np.arange(p.start, p.stop) for p in trained.connectome.populations}
    with threadpool_limits(limits=1, user_api="blas"):
        for name, model in models.items():
            if model.noise_std > 0:
                a = model.simulate(evaluation, seeded_rng(config, "ceiling-a")).activity
                b = model.simulate(evaluation, seeded_rng(config, "ceiling-b")).activity
                replicates[name] = battery.Replicate(a, b, "noise seeds")
            else:
                h = model.simulate(evaluation).activity
                replicates[name] = battery.Replicate(h, h, "noise-free")
            if cc.fixed_point_starts:  # a model on the arm: the whole closed loop (analysis.arm_loop_map)
                probes[name] = battery.probe_model(name, model, evaluation, groups if name == "rate" else None)
        trials = None
        rate = models["rate"]
        if rate.noise_std > 0:
            noise = seeded_rng(config, "communication-trials")
            repeats = communication_repeats(evaluation.n_trials)
            runs = [rate.simulate(evaluation, noise).activity for _ in range(repeats)]
            units: dict[str, list[int]] = {}
            for p in trained.connectome.populations:
                units.setdefault(p.spec.layer, []).extend(range(p.start, p.stop))
                units[p.name] = list(range(p.start, p.stop))
            trials = battery.SingleTrials(
                np.concatenate(runs, axis=0),
                np.tile(np.arange(evaluation.n_trials), repeats),
                {name: np.asarray(idx, int) for name, idx in units.items()},
            )
    if sources.spiking_trials is not None and sources.spiking_trials.shape[1] >= 2:
        halves = split_halves(sources.spiking_trials, seeded_rng(config, "ceiling-halves"))
        replicates["spiking"] = battery.Replicate(*halves, "trial halves")
    return replicates, probes, trials


COMMUNICATION_TRIALS = 96
"""Single trials behind the communication subspaces: noisy runs of the evaluation set (one trial per
condition each), 12 x 8 center-out targets = 96, 4 x 27 maze conditions = 108; 10-fold
cross-validation over them (Semedo et al. 2019 used 10 folds)."""


def communication_repeats(n_conditions: int) -> int:
    """Noisy runs of the evaluation set that give at least :data:`COMMUNICATION_TRIALS` trials (at least 2)."""
    return max(2, -(-COMMUNICATION_TRIALS // n_conditions))


METRICS_TEXT = (
    "Headline numbers. rate_*: the trained rate network on held-out trials without process noise "
    "(rate_*_noisy: with the training noise). position_r2: 1 is perfect; endpoint_error_cm: mean hand-target "
    "distance over the last 50 ms of reach trials; catch_drift_cm: mean over catch trials of the largest "
    "distance from the centre; reaction_time_ms: median time from go until the hand is 1 cm out "
    "(target_reaction_time_ms: the same for the desired trajectory); peak_speed_error: mean |peak hand speed - "
    "desired peak| / desired peak over reach trials; speed_profile_r: mean correlation of the hand's speed "
    "profile with the minimum-jerk target's. When an arm drives the hand ([effector] kind = arm26) the hand is "
    "the arm's, relative to its start position. spiking_*: the LIF twin; ann_<arch>_*: the "
    "ANN baselines. compare_*: the comparison battery -- compare_cca_<a>_<b>: mean canonical correlation of the "
    "top PCs of activities a and b (1 = same dynamics up to a linear map), compare_cca_rate_ann_mean its mean "
    "over the ANNs; compare_jpca_ratio_<a>: jPCA R^2 skew / R^2 best around movement onset (rotational "
    "dynamics, the hallmark of M1 in Churchland et al. 2012); compare_participation_ratio_<a>: dimensionality; "
    "compare_decode_position_r2_<a>: hand position decoded from the activity of held-out conditions."
)
