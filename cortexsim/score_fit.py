"""``cortexsim score`` on a fit run (``task.kind = "recorded"``): the fit's held-out scores, reproduced from the files.

:func:`score_fit` reads a fitted model's activity, the held-out neurons and the training and test trials
from the run's ``/fit`` (:mod:`cortexsim.store.fit`), bins the recording itself with the fit's window,
bins and columns, and scores it with :mod:`cortexsim.score`'s measures through the same ridge map as
:func:`cortexsim.fit.score_activity` (:func:`cortexsim.score.map_counts`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from . import store
from .data import DataError, load_nwb_trials
from .errors import ConfigError, CortexsimError
from .score import (
    ScoreResult,
    ScoreSpec,
    bin_trials,
    bits_per_spike,
    condition_label,
    eval_psth,
    map_counts,
    numeric_column,
    velocity_score,
)


def fit_models(run_file: str | Path) -> tuple[str, ...]:
    """The models of a fit run's ``/fit`` (empty: not a fit run, or one that also has ``/rate``)."""
    with store.open_run(Path(run_file)) as f:
        if "rate" in f or "fit" not in f:
            return ()
        record = store.read_fit(f)
    return tuple(m.name for m in record.models)


def score_fit(run_file: str | Path, data: str | Path, spec: ScoreSpec) -> ScoreResult:
    """Score a fitted model of a fit run (``task.kind = "recorded"``) on the recording it was fitted to.

    The protocol is the fit's, read back from the run file: its window and bins (``[fit] window``, one bin
    per ``task.dt``), its alignment event and condition column, its held-out neurons and its training and
    test trials (``/fit``); ``spec.model`` names the model (``rate``, ``rate_taskonly``, ``ann_<arch>``).
    The recorded spikes are binned here from ``data`` and the model's activity read from ``/fit``, then
    mapped to the held-out neurons as :func:`cortexsim.fit.score_activity` does (:func:`map_counts`), so
    ``co_bps`` and ``psth_r2`` reproduce the run's ``fit_<model>_heldout_co_bps`` and
    ``fit_<model>_heldout_psth_r2``.  ``vel_r2`` decodes hand velocity from the model's predictions of
    every recorded neuron (a second map, fitted to all of them); NaN without velocity.

    Raises
    ------
    RunFileError, DataError, ConfigError
        Unreadable files, a model the fit does not have, a recording that is not the fit's.
    """
    run_file = Path(run_file)
    with store.open_run(run_file) as f:
        record = store.read_fit(f)
        config = store.read_config(f)
    if record is None:
        raise CortexsimError(f"{run_file}: has no /fit; run `cortexsim run` on a config with [fit] data first")
    models = {m.name: m for m in record.models}
    if spec.model not in models:
        raise ConfigError(f"--model {spec.model!r}: the fit has {', '.join(models)}")
    activity = models[spec.model].activity  # (conditions, bins, units)
    fit = config.fit
    dt = float(record.attrs["dt"])
    spec = ScoreSpec(
        **{
            **asdict(spec),
            "align_event": fit.align_event,
            "window": tuple(float(w) for w in fit.window),
            "bin_size": dt,
            "condition_column": fit.condition_column,
            "seed": config.experiment.seed,
        }
    )
    recorded = load_nwb_trials(data, spec.velocity)
    cols, where = recorded.columns, recorded.source
    for name, option in ((spec.align_event, "fit.align_event"), (spec.condition_column, "fit.condition_column")):
        if name not in cols:
            raise DataError(f"{where}: the trials table has no column {name!r} ({option} of the fit)")
    events = numeric_column(cols, spec.align_event, where, "fit.align_event", "event times in s")
    rows = np.flatnonzero(np.isfinite(events))
    labels = [condition_label(x) for x in cols[spec.condition_column][rows]]
    names = [str(x) for x in json.loads(str(record.attrs["conditions"]))]
    unknown = sorted(set(labels) - set(names))
    if unknown or activity.shape[0] != len(names):
        raise DataError(f"{where}: not the recording the fit was fitted to (conditions {unknown or labels[:3]})")
    cond = np.array([names.index(x) for x in labels])
    counts = bin_trials(recorded, events[rows], spec)
    if counts.shape[1] != activity.shape[1]:
        raise DataError(f"{where}: {counts.shape[1]} bins per trial, the fit has {activity.shape[1]}")
    train, test = np.asarray(record.split["train_trials"]), np.asarray(record.split["test_trials"])
    held = np.asarray(record.split["heldout"])
    if test.size == 0 or max(train.max(initial=0), test.max()) >= rows.size or held.max() >= counts.shape[2]:
        raise DataError(f"{where}: not the recording the fit was fitted to (its trials or neurons differ)")
    features = activity[cond]
    pred, alpha = map_counts(features, counts[:, :, held], train)
    co_bps = bits_per_spike(pred[test], counts[test][:, :, held])
    psth = np.stack([counts[cond == c].mean(axis=0) for c in range(len(names))])
    if spec.psth_smooth_sd > 0:
        psth = gaussian_filter1d(psth, spec.psth_smooth_sd / spec.bin_size, axis=1, mode="nearest")
    tc = cond[test]
    psth_r2 = eval_psth(psth[:, :, held], pred[test], [np.flatnonzero(tc == c) for c in range(len(names))])
    notes = [
        f"the fit's protocol: model {spec.model!r}, {spec.n_bins} bins of {dt * 1e3:g} ms from {spec.window[0]:+g} "
        f"to {spec.window[1]:+g} s around {spec.align_event}; its {train.size} training and {test.size} test trials",
        f"co_bps and psth_r2 on the fit's {held.size} held-out neurons of {counts.shape[2]}",
    ]
    vel_r2 = velocity_score(
        recorded, spec, events[rows], lambda: map_counts(features, counts, train)[0], train, test, notes
    )
    return ScoreResult(
        co_bps=float(co_bps),
        psth_r2=float(psth_r2),
        vel_r2=float(vel_r2),
        spec=spec,
        train_trials=tuple(int(rows[i]) for i in train),
        test_trials=tuple(int(rows[i]) for i in test),
        mapping={name: i for i, name in enumerate(names)},
        n_neurons=int(counts.shape[2]),
        n_scored=int(held.size),
        alpha=alpha,
        notes=tuple(notes),
    )
