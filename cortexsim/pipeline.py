"""The experiment pipeline: config -> circuit -> rate network -> run file and figures.

Stages (each a function of the config and what earlier stages wrote):

1. **train** -- build the connectome (``/circuit``, with ``weight_init``), train the rate
   network by BPTT (checkpointing into ``/training``), then write ``weight_trained``;
2. **rate** -- evaluate the trained network (lesioned as ``[lesion]`` says) on held-out
   trials and write ``/task``, ``/rate``, ``/metrics`` and figures;
3. **spiking** -- the trained circuit as LIF neurons in Brian2 (``/spikes``, ``/spiking``;
   :mod:`cortexsim.spiking_stage`);
4. **perturb** -- arm runs with ``[perturb]`` protocols: the circuit and its twin in a curl field
   and bumped (``/perturbation``; :mod:`cortexsim.perturb_stage`);
5. **ann** -- train each unconstrained ANN baseline on the same task (``/ann/<arch>``), and run it
   through the same perturbations;
6. **control** -- arm runs with ``[compare] rotation_control``: the circuit trained without
   inter-population recurrence (``/control``);
7. **stimulate** -- runs with ``[stimulation]`` protocols: the causal experiments on every trained
   model (``/stimulation``; :mod:`cortexsim.stim_stage`);
8. **compare** -- the comparison battery (``/analysis``, with the rotation sources of an arm run;
   figures, ``summary.md``; :mod:`cortexsim.compare_stage`).

A run of recorded neurons (``task.kind = "recorded"``) has one stage, **fit**
(:mod:`cortexsim.fit_stage`).  This module plans the stages (:func:`stages`, their keys and reuse),
runs them in order (:func:`run_experiment`) and records each in ``/stages``; it holds the training,
rate, ANN and control stages itself, and the others' stage modules hold theirs.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import analysis, metrics, plots, store
from .ann_stage import AnnRun as AnnRun  # re-exported: the API and the docs
from .ann_stage import ann_run, write_ann_run
from .ann_stage import run_ann as run_ann
from .ann_stage import train_ann as train_ann
from .assembly import (
    build_circuit,
    initial_rate_network,
    make_rate_network,
    make_task,
    seeded_rng,
    validation_set,
)
from .circuit import Connectome
from .closed_loop import ArmRateNetwork
from .compare_stage import circuit_fixed_points, compare_stage
from .compare_stage import communication_repeats as communication_repeats  # re-exported: the API and the docs
from .compare_stage import compare_models as compare_models
from .config import RECORDED_TASK, Config
from .errors import ConfigError
from .evaluation import effector_arrays, evaluate, evaluate_rate
from .fit_stage import run_fit
from .interrupts import StickyInterrupt
from .lesion import apply_lesion
from .model_id import ModelId, anns, of_activity
from .perturb_stage import run_perturbation
from .rate import RateNetwork
from .spiking_stage import run_spiking
from .stage_metrics import METRICS_TEXT, gate, log_metrics
from .stim_stage import run_stimulation
from .tasks import TrialBatch
from .train import TrainState, new_state, train
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
    fixed_points : dict of str to tuple of (Row, FixedPoints)
        Fixed-point searches the stage made of its models (by model name), handed to the compare
        stage of the same run in memory (:func:`cortexsim.compare_stage.model_fixed_points`); not written.
    """

    groups: tuple[str, ...]
    metrics: tuple[str, ...]
    fixed_points: dict[str, tuple] = field(default_factory=dict)


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
        *("ann.n_hidden", "ann.max_iterations", "ann.max_seconds", "ann.dtype", "ann.lr_final"),
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
            ctx.fixed_points.update(output.fixed_points)

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
                    if stage.name not in pool.done():  # this process would wait: work ahead for the comparison
                        _search_circuit_fixed_points(ctx, plan, recomputed | set(done))
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


def _search_circuit_fixed_points(ctx: _Context, plan: list[Stage], finished: set[str]) -> None:
    """Make the compare stage's fixed-point searches of the trained circuit now, if it will want them.

    Called while this process would only wait for a worker (an ANN still training): the core is
    otherwise idle, and the compare stage takes the searches as handed (the same points).  Nothing
    when the run searches no fixed points, the circuit is not trained here yet, or they are made.
    """
    if not ctx.config.compare.fixed_point_starts or "rate" in ctx.fixed_points:
        return
    if not {"train", "compare"} <= {s.name for s in plan} or "train" not in finished:
        return
    t0 = time.perf_counter()
    ctx.fixed_points["rate"] = circuit_fixed_points(ctx.config, ctx.run_file)
    ctx.log(f"[compare] the circuit's fixed points searched while a worker finishes ({time.perf_counter() - t0:.1f} s)")


@dataclass(frozen=True)
class _Context:
    config: Config
    run_file: Path
    figures: Path
    log: Log
    user_log: Log | None = None
    force: bool = False
    fixed_points: dict[str, tuple] = field(default_factory=dict)  # handed from the model stages to compare


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
            quality=config.quality,
        )
    return net, state


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
            arm = effector_arrays(results.body)  # the evaluation's own simulation, not a second one
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
    log_metrics(config, results.metrics, ctx.log)
    return StageOutput(("task", "rate"), tuple(results.metrics))


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
    written = run_perturbation(ctx.config, ctx.run_file, ctx.figures, ctx.log)
    return StageOutput(("perturbation",), tuple(written))


def _stage_spiking(ctx: _Context, name: str) -> StageOutput:
    result = run_spiking(ctx.config, ctx.run_file, ctx.figures, ctx.log)
    return StageOutput(("spikes", "spiking"), tuple(result.metrics))


def _stage_ann(ctx: _Context, name: str) -> StageOutput:
    run = ann_run(ctx.config, ModelId.parse(name).arch, ctx.log)
    return _write_ann_job(ctx.config, run, ctx.run_file, ctx.figures, ctx.log)


def _stage_compare(ctx: _Context, name: str) -> StageOutput:
    written = compare_stage(
        ctx.run_file,
        ctx.figures,
        ctx.config.compare,
        base=ctx.config.base,
        log=ctx.log,
        config=ctx.config,
        force=ctx.force,
        handed=ctx.fixed_points,
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
    model = ModelId.ann(run.arch)
    written = tuple(write_ann_run(config, run, run_file, figures, log))
    return StageOutput((model.group,), written, {model.stage: run.fixed_points} if run.fixed_points else {})


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


_JOBS = {"ann": (ann_run, _write_ann_job), "control": (control_run, write_control_run)}
"""Stages a worker process may compute (they read nothing earlier stages write): job, writer."""


def _runner(stage: str) -> str:
    """The key of a stage's runner: a model's kind (``ann:gru`` -> ``ann``), else the stage's name."""
    model = of_activity(stage)
    return model.kind if model is not None else stage
