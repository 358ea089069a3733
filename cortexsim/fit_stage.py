"""The ``fit`` stage: every model fitted to the held-in neurons of ``[fit] data``, scored on what it never saw.

:func:`fit_run` is the science (a pure function of the config: it reads the data file and nothing
else, trains and scores); :func:`write_fit_run` writes ``/fit`` (:mod:`cortexsim.fit_store`) and the
metrics ``fit_<model>_heldout_co_bps``, ``fit_<model>_heldout_psth_r2`` and
``fit_<model>_heldout_condition_psth_r2``; :func:`run_fit` is both, as the pipeline runs it.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import fit_store, store
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
from .fit import FitScores, Recording, Split, neural_targets, score_activity
from .model_id import anns
from .neural_loss import Fitted, NeuralTerm, ReadoutMap, UnitMap
from .recorded_task import RecordedTask
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
    """

    record: fit_store.FitRecord
    metrics: dict[str, float]
    recording: Recording
    split: Split


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
    with threadpool_limits(limits=1, user_api="blas"):
        return train(model, task, train_config, state, validation=validation, log=log)


def _activity(model, task: RecordedTask) -> np.ndarray:
    """Noise-free activity of every condition on the recorded window, (conditions, bins, units)."""
    start, stop = task.window_steps  # type: ignore[attr-defined]
    return np.asarray(model.simulate(task.evaluation_set()).activity[:, start:stop], float)


def fit_run(config: Config, log: Log | None = None) -> FitRun:
    """Fit and score every model of ``[fit] models`` and every ANN of ``[ann] archs`` (nothing is written)."""
    log = log or LOG.info
    fit = config.fit
    recording, split, task = recorded_task(config)  # task.kind = "recorded"
    for note in split.notes:
        log(f"fit: {note}")
    kind = fit.target if fit.target != "auto" else ("counts" if recording.single_trials else "psth")
    targets = neural_targets(recording, split, task, kind)
    models, metrics = [], {}

    def finish(name: str, model, state, arrays: dict[str, np.ndarray], fitted: Fitted | None = None) -> None:
        activity = _activity(model, task)
        heldin_rates = None if fitted is None else fitted.predict(activity)  # through its own mapping
        scores = score_activity(recording, split, activity, heldin_rates)
        models.append(fit_store.FitModelRecord(name, activity, _scores(scores), arrays, state.iteration))
        for key, value in _scores(scores).items():
            metrics[f"fit_{name}_{key}"] = value
        log(f"fit {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in _scores(scores).items()))

    connectome = build_circuit(config)
    for name in fit.models:
        net = initial_rate_network(config, connectome)
        scales = net.param_scales(config.rate.rest_rate)
        if name == "rate_taskonly":
            state = _train(net, task, config, config.train, "circuit", scales, log)  # the fitted circuit's draws
            finish(name, net, state, {})
            continue
        if fit.mapping == "units":
            units = mapped_units(config, net, split.heldin.size)
            term_map, arrays = UnitMap(units), {"units": units}
        else:
            term_map, arrays = ReadoutMap(net.n_units, nonnegative=True), {}
        model = Fitted(net, NeuralTerm(term_map, targets, fit.weight))
        model_scales = model.param_scales(scales, config.rate.rest_rate)
        state = _train(model, task, config, config.train, "circuit", model_scales, log)
        finish(name, net, state, {**arrays, **model.map_params}, model)
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
    return FitRun(fit_store.FitRecord(attrs, arrays, tuple(models)), metrics, recording, split)


def _scores(scores: FitScores) -> dict[str, float]:
    return {
        "heldout_co_bps": scores.heldout_co_bps,
        "heldout_psth_r2": scores.heldout_psth_r2,
        "heldout_condition_psth_r2": scores.heldout_condition_psth_r2,
    }


def write_fit_run(run: FitRun, run_file: Path, metrics_text: str, provenance: dict | None = None) -> list[str]:
    """Write ``/fit`` and the ``fit_*`` metrics; returns the metric names.

    ``provenance``: the root attributes of a new run file (:func:`cortexsim.store.provenance`), when the fit
    is the run's first stage (``task.kind = "recorded"``) and ``run_file`` does not exist yet.
    """
    with store.open_for_update(run_file, None if run_file.exists() else provenance) as f:
        fit_store.write_fit(f, run.record)
        store.write_metrics(f, run.metrics, metrics_text)
    return sorted(run.metrics)


def run_fit(config: Config, run_file: Path, metrics_text: str, log: Log | None = None) -> list[str]:
    """The ``fit`` stage: :func:`fit_run`, then :func:`write_fit_run`."""
    start = time.perf_counter()
    run = fit_run(config, log)
    (log or LOG.info)(f"fit: {len(run.record.models)} models fitted and scored in {time.perf_counter() - start:.0f} s")
    provenance = store.provenance(config.to_toml(), config.experiment.seed)
    return write_fit_run(run, Path(run_file), metrics_text, provenance)
