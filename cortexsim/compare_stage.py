"""The ``compare`` stage: the comparison battery on a run file, and what it found written once.

:func:`compare_models` is the battery on activities computed in Python (nothing read or written);
:func:`compare_stage` is the stage on a run file: it reads the run's activities and rebuilds its models
(:class:`ComparisonSources`), computes -- or reuses, by the key of their inputs
(:mod:`cortexsim.battery_cache`) -- the battery's rows, the dynamics (noise ceilings, fixed points,
communication subspaces: :func:`dynamics_inputs`) and an arm run's rotation sources
(:func:`rotation_sources_of`), and writes ``/analysis``, the ``compare_*`` metrics, the quality
verdict, the figures and ``summary.md``.  The pipeline runs it last; ``cortexsim compare`` runs it
on a finished run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import battery, battery_cache, plots, quality, store
from .analysis import split_halves
from .assembly import build_circuit, make_ann_model, make_rate_network, make_task, seeded_rng, trained_rate_network
from .battery import BatteryResult
from .closed_loop import ArmRateNetwork
from .config import Config
from .model_id import ModelId, of_activity
from .perturb_stage import perturbation_figures
from .stage_metrics import METRICS_TEXT
from .tasks import task_of
from .train import Trainable

LOG = logging.getLogger("cortexsim.pipeline")
"""Progress of the stage (the pipeline's logger)."""

Log = Callable[[str], None]
"""Receives one progress line."""


def compare_models(activities: dict[str, np.ndarray], config: Config) -> BatteryResult:
    """The comparison battery on evaluation-set activities computed in Python (nothing is read or written).

    Parameters
    ----------
    activities : dict of str to ndarray, shape (conditions, time, units)
        Name (``"rate"``, ``"ann:gru"``, ``"spiking"``, ...) -> activity on the evaluation set of
        ``config`` (e.g. :attr:`cortexsim.evaluation.Evaluation.activity`, or the twin's trial-averaged reach rates).
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
        jpca_window=config.compare.jpca_window,
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
    handed: Mapping[str, tuple[battery.Search, ...]] | None = None,
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
    settings other than the run's, which ``cortexsim run`` redoes).  ``handed``: fixed-point searches
    already made of some models with ``cc``'s starts (:func:`model_fixed_points`, by model name; the
    pipeline's ANN stages make their own while the circuit's stages run): taken instead of searched
    again, the same points.  Returns the metric names.
    """
    from . import report
    from .data import load_neural_data

    log = log or LOG.info
    with store.open_run(run_file) as f:
        config = store.read_config(f) if config is None else config
        positions = store.read_task_targets(f)
        verdict = quality.check_quality(store.read_metrics(f), config.quality)
        activities = battery.movement_aligned(  # on a body: each model's own measured movement onset (jPCA)
            store.read_activities(f),
            store.read_hand_paths(f),
            store.read_task(f).params["go"],
            fraction=cc.jpca_onset_fraction,
            body=config.effector.has_body,
        )
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
    settings = battery.BatterySettings.of(cc)
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
            done = {name: found for name, found in (handed or {}).items() if name in probes}
            searches = battery.start_fixed_points(
                probes, cc.fixed_point_starts, fixed_point_rngs(config, probes), done=done
            )
            if done:
                log(f"fixed points of {', '.join(done)}: searched when trained, taken as they are")
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


def task_figure(run_file: Path, config: Config, folder: Path, verdict: quality.QualityVerdict) -> Path | None:
    """The task's own figure of every model's hand paths (``plots.TASK_FIGURES``: the maze's ``maze.png``), or None."""
    task = task_of(config.task)
    if not plots.has_task_figure(task):
        return None
    with store.open_run(run_file) as f:
        evaluation, paths = store.read_task(f), store.read_hand_paths(f)
    name, fig = plots.task_figure(task, evaluation, paths, verdict.failed_models)
    return plots.save(fig, folder / name)


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


FIXED_POINT_STREAM = "compare-fixed-points"
"""Each model's fixed-point starts come from stream ``compare-fixed-points/<model>`` (``rate``, ``ann:gru``, ...)."""


def fixed_point_rngs(config: Config, names) -> dict[str, np.random.Generator]:
    """The generators of the fixed-point searches of the models ``names``, one stream per model."""
    return {name: seeded_rng(config, f"{FIXED_POINT_STREAM}/{name}") for name in names}


def model_fixed_points(
    config: Config, name: str, model: Trainable, groups: Mapping[str, np.ndarray] | None = None
) -> tuple[battery.Search, ...]:
    """The fixed-point searches the compare stage makes of one trained model, made now.

    The same probes (:func:`cortexsim.battery.probe_model` on the run's evaluation set), starts
    (``[compare] fixed_point_starts``) and stream as :func:`compare_stage`, so the points are the ones
    it would find: an ANN stage makes its own in the process that trained it, while the circuit's
    stages run, and the pipeline hands them to :func:`compare_stage`.  Empty when the run searches
    none (``fixed_point_starts = 0``).  ``name``: the model's activity name (``"ann:gru"``);
    ``groups``: its populations (the circuit's: :func:`circuit_fixed_points`).
    """
    starts = config.compare.fixed_point_starts
    if not starts:
        return ()
    with threadpool_limits(limits=1, user_api="blas"):
        probe = battery.probe_model(name, model, make_task(config).evaluation_set(), groups)
        return tuple(battery.start_fixed_points({name: probe}, starts, fixed_point_rngs(config, [name]), 1).searches())


def circuit_fixed_points(config: Config, run_file: Path) -> tuple[battery.Search, ...]:
    """The compare stage's fixed-point searches of the run's trained circuit (:func:`model_fixed_points`).

    The pipeline makes them while it waits for a worker process (the circuit is trained and
    simulated, an ANN is still training) and hands them to :func:`compare_stage`.
    """
    with store.open_run(run_file) as f:
        trained = store.read_trained_rate(f)
    return model_fixed_points(config, "rate", trained_rate_network(config, trained), _population_units(trained))


def _population_units(trained: store.TrainedRate) -> dict[str, np.ndarray]:
    """Population name -> the circuit's unit indices (the fixed points' mode loadings)."""
    return {p.name: np.arange(p.start, p.stop) for p in trained.connectome.populations}


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
    cc = config.compare
    rows = rotation_sources(
        net,
        make_task(config).evaluation_set(),
        n_pcs,
        control=control,
        window=tuple(cc.jpca_window),
        onset_fraction=cc.jpca_onset_fraction,
    )
    (log or LOG.info)(
        "rotation sources: "
        + ", ".join(f"{r['condition']} {r['jpca_ratio']:.2f} @ {r['frequency_hz']:.2f} Hz" for r in rows)
        + f" ({time.perf_counter() - t0:.1f} s)"
    )
    return rows


def control_net(config: Config) -> ArmRateNetwork:
    """The control circuit of ``config``: its connectome without inter-population synapses (parameters unset)."""
    return make_rate_network(config, build_circuit(config).within_populations())


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
    groups = _population_units(trained)
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
