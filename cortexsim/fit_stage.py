"""The ``fit`` stage: every model fitted to the held-in neurons of ``[fit] data``, scored on what it never saw.

:func:`fit_run` is the science (a pure function of the config: it reads the data file and nothing
else, trains and scores); :func:`write_fit_run` writes ``/fit`` (:mod:`cortexsim.store.fit`), the
metrics ``fit_<model>_heldout_co_bps``, ``fit_<model>_heldout_psth_r2``,
``fit_<model>_heldout_condition_psth_r2`` and ``fit_<model>_velocity_r2``, the figures
``fit_psths.png``, ``fit_scores.png`` and ``fit_populations.png`` (:mod:`cortexsim.plots.fit`) and
``summary.md`` (the score table and, per circuit model, the per-population table); :func:`run_fit` is
both, as the pipeline runs it.

Each circuit model is also scored per population of the mapping (:func:`cortexsim.fit.score_populations`),
and, with kinematics, every model's hand on the recorded conditions is held to the ``[quality]`` bars
(:func:`task_verdict`): a model that misses them is marked ``FAILED its task`` in the log, the figures and
``summary.md``, and ``/fit/<model>@failed`` says how.

The models (:mod:`cortexsim.fit` prepares the data, the split and the scores):

* ``rate`` -- the circuit trained on the recorded task with the neural term (:mod:`cortexsim.neural_loss`,
  ``[fit] mapping``, ``weight``);
* ``rate_taskonly`` -- the same circuit, same initial weights and batches, trained on the recorded task alone;
* ``ann_<arch>`` -- each ANN of ``[ann] archs`` with the neural term through a signed readout of its ``h``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from threadpoolctl import threadpool_limits

from . import metrics as reach
from . import plots, store
from .assembly import (
    ann_train_config,
    build_circuit,
    fit_data_path,
    initial_rate_network,
    make_ann_model,
    recorded_task,
    seeded_rng,
)
from .config import Config
from .errors import ConfigError
from .fit import (
    PSTH_SMOOTH_SD,
    FitScores,
    Recording,
    Split,
    neural_targets,
    score_activity,
    score_populations,
)
from .fit_config import FIT_MODELS
from .model_id import anns
from .neural_loss import Fitted, NeuralTerm, ReadoutMap, UnitMap
from .plots import fit as fit_plots
from .preflight import RUN_SUMMARY_HEAD
from .recorded_task import RecordedTask
from .store.fit import SCORES, FitModelRecord, FitRecord
from .streams import stream
from .train import new_state, train

LOG = logging.getLogger("cortexsim.pipeline")
Log = Callable[[str], None]

DEFAULT_LAYERS = ("L5B", "L2/3")
"""The ``units`` mapping's default: the excitatory units of these layers' populations."""


@dataclass(frozen=True, eq=False)
class FitRun:
    """Every model fitted and scored, before anything is written.

    Attributes
    ----------
    record : FitRecord
        What ``/fit`` holds.
    metrics : dict of str to float
        ``fit_<model>_<score>`` for every model and score.
    recording : Recording
    split : Split
    scores : dict of str to FitScores
        Every model's scores with its held-out neurons' PSTHs (what the figures draw).
    populations : dict of str to ndarray
        The populations of the mapping and their units (:func:`populations_of`; empty without a circuit).
    """

    record: FitRecord
    metrics: dict[str, float]
    recording: Recording
    split: Split
    scores: dict[str, FitScores] = field(default_factory=dict)
    populations: dict[str, np.ndarray] = field(default_factory=dict)


def data_path(config: Config) -> Path:
    """``[fit] data`` resolved against the config's folder (:func:`cortexsim.assembly.fit_data_path`)."""
    return fit_data_path(config)


def mapped_units(config: Config, net, n_neurons: int) -> np.ndarray:
    """The circuit unit of each held-in neuron (``units`` mapping; seed stream ``fit/units``).

    Units are drawn without replacement from ``[fit] populations`` (default: the excitatory units of
    :data:`DEFAULT_LAYERS`' populations).

    Raises
    ------
    ConfigError
        An unknown population (with a did-you-mean), or fewer units than neurons.
    """
    types = net.cell_types()
    names = [name for name, *_ in types]
    sign = np.asarray(net.connectome.sign)
    if config.fit.populations:
        import difflib  # noqa: PLC0415

        for name in config.fit.populations:
            if name not in names:
                hint = difflib.get_close_matches(name, names, 1)
                raise ConfigError(
                    f"fit.populations: no population {name!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else f"; the circuit has {', '.join(names)}")
                )
        pool = np.concatenate(
            [np.arange(net.n_units)[sl] for name, _, _, sl in types if name in config.fit.populations]
        )
    else:
        pool = np.concatenate([np.arange(net.n_units)[sl] for _, layer, _, sl in types if layer in DEFAULT_LAYERS])
        pool = pool[sign[pool] > 0]
    if pool.size < n_neurons:
        raise ConfigError(
            f"fit.populations: {pool.size} circuit units for {n_neurons} held-in neurons; raise circuit.n_units "
            f"or name more populations"
        )
    return np.sort(stream(config.experiment.seed, "fit/units").choice(pool, n_neurons, replace=False))


def _train(model, task: RecordedTask, config: Config, train_config, name: str, scales: dict[str, float], log: Log):
    batches, noise = seeded_rng(config, f"fit-batches-{name}"), seeded_rng(config, f"fit-noise-{name}")
    state = new_state(model.params, scales, batches, noise)
    validation = task.sample(config.train.validation_trials, seeded_rng(config, "fit-validation"))
    # a fit trains to its neural term too, which the reach bars do not measure: no bar stop
    with threadpool_limits(limits=1, user_api="blas"):
        return train(model, task, replace(train_config, stop_at_bars=False), state, validation=validation, log=log)


def _simulate(model, task: RecordedTask) -> tuple[np.ndarray, np.ndarray]:
    """Every condition's noise-free activity on the window (conditions, bins, units) and hand (conditions, steps, 2)."""
    start, stop = task.window_steps  # type: ignore[attr-defined]
    trajectory = model.simulate(task.evaluation_set())
    return np.asarray(trajectory.activity[:, start:stop], float), np.asarray(trajectory.outputs, float)


REACH_METRICS = {
    "position_r2": lambda hand, batch: reach.position_r2(hand, batch.targets, batch.mask),
    "endpoint_error_cm": reach.endpoint_error_cm,
    "catch_drift_cm": reach.catch_drift_cm,
    "peak_speed_error": reach.peak_speed_error,
    "speed_profile_r": reach.speed_profile_r,
}
"""The reach metrics of a fitted model's hand on the recorded conditions (those ``[quality]`` has bars for)."""


def task_verdict(config: Config, task: RecordedTask, name: str, hand: np.ndarray) -> tuple[dict[str, float], str]:
    """A fitted model's reach on every recorded condition, and how it missed the ``[quality]`` bars ("" : it did not).

    Without kinematics there is no reach to measure: ``({}, "")``.  A bar whose metric the recorded task
    cannot measure (NaN on the recorded hand paths themselves: catch drift, with no catch trials) is skipped.
    """
    if task.hand is None:
        return {}, ""
    batch = task.evaluation_set()
    values, misses = {}, []
    for metric, kind, bar in config.quality.bars(name):
        key = metric.removeprefix(f"{name}_")
        if key not in REACH_METRICS or not np.isfinite(REACH_METRICS[key](batch.targets, batch)):
            continue
        value = float(REACH_METRICS[key](hand, batch))
        values[key] = value
        if not (np.isfinite(value) and (value >= bar if kind == "min" else value < bar)):
            misses.append(f"{key} = {value:.4g} (needs {'>=' if kind == 'min' else '<'} {bar:g})")
    return values, "; ".join(misses)


def populations_of(config: Config, net) -> dict[str, np.ndarray]:
    """The populations of the mapping and their units.

    ``units`` mapping: those ``[fit] populations`` names (default: the excitatory populations of
    :data:`DEFAULT_LAYERS`); a readout: every population of the circuit.
    """
    sign = np.asarray(net.connectome.sign)
    out = {}
    for name, layer, _, sl in net.cell_types():
        units = np.arange(net.n_units)[sl]
        if config.fit.mapping == "units":
            chosen = name in config.fit.populations if config.fit.populations else layer in DEFAULT_LAYERS
            if not chosen or (not config.fit.populations and not (sign[units] > 0).all()):
                continue
        out[name] = units
    return out


def fit_run(config: Config, log: Log | None = None) -> FitRun:
    """Fit and score every model of ``[fit] models`` and every ANN of ``[ann] archs`` (nothing is written)."""
    log = log or LOG.info
    fit = config.fit
    recording, split, task = recorded_task(config)  # task.kind = "recorded"
    for note in split.notes:
        log(f"fit: {note}")
    kind = fit.target if fit.target != "auto" else ("counts" if recording.single_trials else "psth")
    targets = neural_targets(recording, split, task, kind)
    models, metrics, predictions = [], {}, {}

    def finish(
        name: str,
        model,
        state,
        arrays: dict[str, np.ndarray],
        fitted: Fitted | None = None,
        populations: dict[str, np.ndarray] | None = None,
        mapped: np.ndarray | None = None,
    ) -> None:
        activity, hand = _simulate(model, task)
        heldin_rates = None if fitted is None else fitted.predict(activity)  # through its own mapping
        scores = score_activity(recording, split, activity, heldin_rates)
        rows = ()
        if populations:
            rows = tuple(
                {"population": row.population, "units": float(row.units), "neurons": float(row.neurons)}
                | {k: v for k, v in _scores(row.scores).items() if k != "velocity_r2"}
                for row in score_populations(recording, split, activity, populations, mapped, heldin_rates)
            )
        reached, failed = task_verdict(config, task, name, hand)
        record = FitModelRecord(
            name, activity, _scores(scores), arrays, state.iteration, rows, reached, failed, scores.predicted
        )
        models.append(record)
        predictions[name] = scores
        for key, value in _scores(scores).items():
            metrics[f"fit_{name}_{key}"] = value
        log(f"fit {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in _scores(scores).items()))
        if failed:
            log(f"fit {name}: FAILED its task on the recorded conditions: {failed}")

    connectome = build_circuit(config)
    for name in fit.models:
        net = initial_rate_network(config, connectome)
        scales = net.param_scales(config.rate.rest_rate)
        populations = populations_of(config, net)
        # the fitted circuit's units (the same draw for the task-only circuit's per-population table)
        mapped = (
            mapped_units(config, net, split.heldin.size) if fit.mapping == "units" and "rate" in fit.models else None
        )
        if name == "rate_taskonly":
            state = _train(net, task, config, config.train, "circuit", scales, log)  # the fitted circuit's draws
            finish(name, net, state, {}, populations=populations, mapped=mapped)
            continue
        if mapped is not None:
            units = mapped
            term_map, arrays = UnitMap(units), {"units": units}
        else:
            term_map, arrays = ReadoutMap(net.n_units, nonnegative=True), {}
        model = Fitted(net, NeuralTerm(term_map, targets, fit.weight))
        model_scales = model.param_scales(scales, config.rate.rest_rate)
        state = _train(model, task, config, config.train, "circuit", model_scales, log)
        finish(name, net, state, {**arrays, **model.map_params}, model, populations, mapped)
    for model_id in anns(config.ann.archs):
        ann = make_ann_model(config, model_id.arch)
        model = Fitted(ann, NeuralTerm(ReadoutMap(ann.n_units, nonnegative=False), targets, fit.weight))
        scales = model.param_scales(ann.param_scales(), 1.0)
        state = _train(model, task, config, ann_train_config(config, model_id.arch), model_id.prefix, scales, log)
        finish(model_id.prefix, ann, state, dict(model.map_params), model)
    attrs = {
        "data": str(fit.data),
        "target": kind,
        "mapping": fit.mapping,
        "weight": float(fit.weight),
        "window": np.asarray(fit.window, float),
        "dt": float(recording.dt),
        "notes": "\n".join(split.notes),
        "conditions": json.dumps(list(recording.conditions)),  # the label of each condition row (JSON)
    }
    arrays = {
        "heldin": split.heldin,
        "heldout": split.heldout,
        "train_conditions": split.train_conditions,
        "test_conditions": split.test_conditions,
        "train_trials": split.train_trials,
        "test_trials": split.test_trials,
    }
    pops = populations_of(config, initial_rate_network(config, connectome)) if fit.models else {}
    return FitRun(FitRecord(attrs, arrays, tuple(models)), metrics, recording, split, predictions, pops)


def _scores(scores: FitScores) -> dict[str, float]:
    return {key: float(getattr(scores, key)) for key in SCORES}


def write_fit_run(
    run: FitRun, run_file: Path, metrics_text: str, provenance: dict | None = None, figures: Path | None = None
) -> list[str]:
    """Write ``/fit``, the ``fit_*`` metrics, the figures and ``summary.md``; returns the metric names.

    ``provenance``: the root attributes of a new run file (:func:`cortexsim.store.provenance`), when the fit
    is the run's first stage (``task.kind = "recorded"``) and ``run_file`` does not exist yet.  ``figures``:
    the run's figures folder (default: ``figures/`` next to the run file), which receives ``fit_psths.png``,
    ``fit_scores.png`` and ``fit_populations.png`` (:mod:`cortexsim.plots.fit`); ``summary.md`` next to the
    run file holds the score tables (:func:`summary_markdown`).
    """
    with store.open_for_update(run_file, None if run_file.exists() else provenance) as f:
        store.write_fit(f, run.record)
        store.write_metrics(f, run.metrics, metrics_text)
    write_figures(run, run_file.parent / "figures" if figures is None else Path(figures))
    store.write_text_atomic(run_file.parent / "summary.md", summary_markdown(run.record))
    return sorted(run.metrics)


def failed_models(record: FitRecord) -> tuple[str, ...]:
    """The models that missed the ``[quality]`` bars on the recorded conditions."""
    return tuple(m.name for m in record.models if m.failed)


def write_figures(run: FitRun, folder: Path) -> list[Path]:
    """``fit_psths.png``, ``fit_scores.png`` and (with a circuit) ``fit_populations.png`` into ``folder``."""
    rec, record, failed = run.recording, run.record, failed_models(run.record)
    time = rec.window[0] + rec.dt * (np.arange(rec.psth.shape[1]) + 0.5)
    psths = {
        name: {
            "predicted": s.predicted,
            "recorded": s.recorded,
            "neuron_r2": s.neuron_r2,
            "scored": s.scored_conditions,
        }
        for name, s in run.scores.items()
        if s.predicted is not None
    }
    saved = []
    with threadpool_limits(limits=1, user_api="blas"):
        fig = fit_plots.plot_fit_psths(psths, time, run.split.heldout, rec.conditions, failed)
        saved.append(plots.save(fig, folder / "fit_psths.png"))
        fig = fit_plots.plot_fit_scores({m.name: m.scores for m in record.models}, failed)
        saved.append(plots.save(fig, folder / "fit_scores.png"))
        circuits = {m.name: m for m in record.models if m.name in FIT_MODELS}
        if circuits and run.populations:
            rates = {
                name: {pop: m.activity[:, :, units].mean(axis=(0, 2)) for pop, units in run.populations.items()}
                for name, m in circuits.items()
            }
            data, label, mapped = _data_rates(run)
            fig = fit_plots.plot_fit_populations(time, rates, data, label, failed, mapped)
            saved.append(plots.save(fig, folder / "fit_populations.png"))
    return saved


def _data_rates(run: FitRun) -> tuple[dict[str, np.ndarray], str, dict[str, np.ndarray]]:
    """What :func:`cortexsim.plots.fit.plot_fit_populations` draws next to the circuit's population rates.

    The recorded mean rate (Hz, smoothed as the scores smooth) per population, what it is, and the fitted
    circuit's mean rate over the units mapped to it (``units`` mapping; else empty).
    """
    rec, heldin = run.recording, run.split.heldin
    psth = gaussian_filter1d(rec.psth, PSTH_SMOOTH_SD / rec.dt, axis=1, mode="nearest")
    fitted = next((m for m in run.record.models if m.name == "rate" and "units" in m.arrays), None)
    if fitted is None:
        return {pop: psth.mean(axis=(0, 2)) for pop in run.populations}, "recorded neurons (all)", {}
    units = np.asarray(fitted.arrays["units"])
    data, mapped = {}, {}
    for pop, pop_units in run.populations.items():
        mine = np.isin(units, pop_units)
        if mine.any():
            data[pop] = psth[:, :, heldin[mine]].mean(axis=(0, 2))
            mapped[pop] = fitted.activity[:, :, units[mine]].mean(axis=(0, 2))
    return data, "recorded neurons mapped to it", mapped


SCORE_WORDS = {
    "heldout_co_bps": "held-out neurons co-bps",
    "heldout_psth_r2": "held-out neurons PSTH R²",
    "heldout_condition_psth_r2": "held-out conditions PSTH R²",
    "velocity_r2": "velocity R²",
}
"""The score table's columns (:data:`cortexsim.store.fit.SCORES`) in words."""


def _number(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def score_table(record: FitRecord) -> list[str]:
    """The score table as Markdown lines: one row per model, its scores and whether it did its task."""
    head = ["model", *SCORE_WORDS.values(), "task"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for m in record.models:
        task = "n/a (no kinematics)" if not m.task else ("FAILED: " + m.failed if m.failed else "done")
        cells = [fit_plots.fit_label(m.name), *(_number(m.scores.get(k, np.nan)) for k in SCORE_WORDS), task]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def population_table(model: FitModelRecord) -> list[str]:
    """One circuit model's per-population table as Markdown lines (empty without one)."""
    if not model.populations:
        return []
    head = ["population", "units", "neurons mapped", *(SCORE_WORDS[k] for k in list(SCORE_WORDS)[:3])]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in model.populations:
        cells = [str(row["population"]), f"{row['units']:.0f}", f"{row['neurons']:.0f}"]
        cells += [_number(float(row[k])) for k in list(SCORE_WORDS)[:3]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_markdown(record: FitRecord) -> str:
    """``summary.md`` of a fit run: the protocol, the score table, the failed models, the per-population tables."""
    attrs = record.attrs
    heldin, heldout = (np.asarray(record.split[k]).size for k in ("heldin", "heldout"))
    lines = [
        RUN_SUMMARY_HEAD.decode(),
        "",
        f"A fit to recorded neurons: `{attrs.get('data')}`, target `{attrs.get('target')}`, mapping "
        f"`{attrs.get('mapping')}`, weight {float(attrs.get('weight', np.nan)):g}; {heldin} held-in and {heldout} "
        f"held-out neurons, {np.asarray(record.split['test_conditions']).size} held-out conditions.",
        "",
        "## Held-out scores",
        "",
        *score_table(record),
        "",
        "co-bps: bits per spike of the held-out neurons' test trials (NaN for condition averages); PSTH R²: "
        "their condition means; held-out conditions: the held-in neurons on conditions training never saw; "
        "velocity R²: the hand velocity decoded from the predictions of every neuron (test trials).",
    ]
    failed = [m for m in record.models if m.failed]
    if failed:
        lines += ["", *(f"WARNING: {fit_plots.fit_label(m.name)} FAILED its task: {m.failed}" for m in failed)]
        lines.append("results drawn from a model that failed its task do not show how a working circuit solves it")
    for m in record.models:
        table = population_table(m)
        if table:
            lines += ["", f"## Per population: {fit_plots.fit_label(m.name)}", "", *table]
    if any(m.populations for m in record.models):
        lines += [
            "",
            "Per population: the held-out neurons predicted from that population's units alone, and the held-in "
            "neurons mapped to it on the held-out conditions (units mapping). A population that predicts "
            "well spans the neurons' dynamics; it does not make them its cell type (docs/fit.md).",
        ]
    return "\n".join(lines) + "\n"


def run_fit(
    config: Config, run_file: Path, metrics_text: str, log: Log | None = None, figures: Path | None = None
) -> list[str]:
    """The ``fit`` stage: :func:`fit_run`, then :func:`write_fit_run` (figures into ``figures``)."""
    log = log or LOG.info
    start = time.perf_counter()
    run = fit_run(config, log)
    log(f"fit: {len(run.record.models)} models fitted and scored in {time.perf_counter() - start:.0f} s")
    for line in score_table(run.record):
        log(f"fit: {line}")
    provenance = store.provenance(config.to_toml(), config.experiment.seed)
    return write_fit_run(run, Path(run_file), metrics_text, provenance, figures)
