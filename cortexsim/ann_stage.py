"""The ANN baselines' stage: each architecture trained on the run's task, evaluated, written.

:func:`train_ann` trains one baseline; :func:`ann_run` trains and evaluates it (with the run's
perturbation protocols and the compare stage's fixed-point searches of it) and writes nothing, so a
worker process can run it (:mod:`cortexsim.workers`); :func:`write_ann_run` writes what it returns
into ``/ann/<arch>`` (the pipeline calls it for a worker's result too); :func:`run_ann` does both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import plots, store
from .assembly import ann_train_config, make_ann_model, make_task, seeded_rng, validation_set
from .compare_stage import model_fixed_points
from .config import Config
from .evaluation import Evaluation, effector_arrays, evaluate
from .model_id import ModelId
from .perturb_stage import Parts, perturbation_run
from .stage_metrics import METRICS_TEXT, log_metrics
from .train import Trainable, TrainState, new_state, train

LOG = logging.getLogger("cortexsim.pipeline")
Log = Callable[[str], None]


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
            model,
            make_task(config),
            ann_train_config(config, arch),
            state,
            validation=validation_set(config),
            log=log,
            quality=config.quality,
        )
    return model, state


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
        On an arm run, the arm it moved on the evaluation set (:func:`effector_arrays`).
    perturbation : dict
        On an arm run with ``[perturb]`` protocols, their parts
        (:attr:`~cortexsim.perturb_stage.PerturbationRun.parts`); their metrics are in :attr:`metrics` too.
    fixed_points : tuple of (Row, FixedPoints)
        The compare stage's fixed-point searches of this model
        (:func:`~cortexsim.compare_stage.model_fixed_points`), made where it was trained; not written.
    """

    arch: str
    results: Evaluation
    params: dict[str, np.ndarray]
    metrics: dict[str, float]
    attrs: dict
    arm: dict[str, np.ndarray] | None
    perturbation: Parts = field(default_factory=dict)
    fixed_points: tuple = ()


def ann_run(config: Config, arch: str, log: Log | None = None) -> AnnRun:
    """Train ANN baseline ``arch`` on the run's task and evaluate it; nothing is written.

    A pure function of ``config`` and ``arch`` (its generators are seeded from the config), so
    it gives the same numbers in the pipeline's own process or in a worker process.  It also makes
    the compare stage's fixed-point searches of the model (:attr:`AnnRun.fixed_points`): in a
    worker they run while this process trains and simulates the circuit.
    """
    log = log or LOG.info
    prefix = ModelId.ann(arch).prefix
    model, state = train_ann(config, arch, log)
    parts: Parts = {}
    with threadpool_limits(limits=1, user_api="blas"):
        results = evaluate(model, config, prefix)
        arm = effector_arrays(results.body) if results.body is not None else None
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
    fixed = model_fixed_points(config, ModelId.ann(arch).stage, model)
    return AnnRun(arch, results, dict(model.params), written, attrs, arm, parts, fixed)


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
    log_metrics(config, run.metrics, log)
    return list(run.metrics)


def run_ann(config: Config, arch: str, run_file: Path, figures: Path, log: Log | None = None) -> list[str]:
    """Train one ANN baseline on the same task, evaluate it and write ``/ann/<arch>``; returns the metric names."""
    return write_ann_run(config, ann_run(config, arch, log), run_file, figures, log)
