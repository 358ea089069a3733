"""``/fit`` in the run file: what a fit to recorded neurons trained and scored (the store's door for it).

Written by the ``fit`` stage (:mod:`cortexsim.fit_stage`) inside :func:`cortexsim.store.open_for_update`
(so it is checksummed like every group) and read back by :func:`read_fit`.  Layout::

    /fit                       attrs: data, target, mapping, weight, window (s), dt (s), notes
      heldin, heldout          neuron indices (int)
      train_conditions, test_conditions, train_trials, test_trials
      <model>/                 rate, rate_taskonly, ann_<arch>; attrs: the scores, iterations, failed,
                               task_<metric> (its reach on every recorded condition; with kinematics)
        activity               (conditions, bins, units): noise-free activity on the window
        neural_w, neural_b     the fitted readout (models mapped by a readout)
        units                  the circuit unit of each held-in neuron (``units`` mapping)
        heldout_psth           (conditions, bins, held-out neurons): their PSTHs it predicts (Hz)
        populations            table: the held-out scores per population (circuit models)

"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np

from .datasets import read_table, write_array, write_table

FIT_TEXT = (
    "A fit of the models to recorded neurons ([fit]): the split, each model's activity on the recorded window "
    "and its scores on held-out neurons and held-out conditions (cortexsim.fit)."
)

SCORES = ("heldout_co_bps", "heldout_psth_r2", "heldout_condition_psth_r2", "velocity_r2")
"""The scores each model's group holds as attributes (and ``/metrics`` as ``fit_<model>_<score>``)."""

POPULATION_COLUMNS = {
    "population": "the circuit population",
    "units": "its units in the circuit",
    "neurons": "held-in neurons mapped to its units (units mapping; 0 for a readout)",
    "heldout_co_bps": "held-out neurons predicted from this population's units alone: bits per spike on test trials",
    "heldout_psth_r2": "held-out neurons predicted from this population's units alone: PSTH R²",
    "heldout_condition_psth_r2": "the held-in neurons mapped to it, on the held-out conditions: PSTH R² (NaN: none)",
}
"""The columns of ``/fit/<model>/populations`` and their meaning."""


@dataclass(frozen=True, eq=False)
class FitModelRecord:
    """One fitted model as stored: its activity, its mapping and its scores.

    Attributes
    ----------
    name : str
        ``rate``, ``rate_taskonly`` or ``ann_<arch>`` (the metrics prefix).
    activity : ndarray, shape (conditions, bins, units)
    scores : dict of str to float
    arrays : dict of str to ndarray
        The mapping: ``neural_w``, ``neural_b`` or ``units``.
    iterations : int
    populations : tuple of dict
        The per-population table (:data:`POPULATION_COLUMNS`; empty for an ANN).
    task : dict of str to float
        Its reach metrics on every recorded condition (``position_r2``, ...; empty without kinematics).
    failed : str
        How it missed the ``[quality]`` bars on the recorded task ("" : it did its task, or there is none).
    heldout_psth : ndarray, shape (conditions, bins, held-out neurons), or None
        The held-out neurons' PSTHs (Hz) it predicts through the co-smoothing map.
    """

    name: str
    activity: np.ndarray
    scores: dict[str, float]
    arrays: dict[str, np.ndarray]
    iterations: int
    populations: tuple[dict[str, str | float], ...] = ()
    task: dict[str, float] = field(default_factory=dict)
    failed: str = ""
    heldout_psth: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class FitRecord:
    """``/fit``: the split, the protocol and every model's record."""

    attrs: dict[str, object]
    split: dict[str, np.ndarray]
    models: tuple[FitModelRecord, ...]


def write_fit(f: h5py.File, record: FitRecord) -> None:
    """Write ``/fit`` (replacing any) into a run file open for update."""
    if "fit" in f:
        del f["fit"]
    g = f.create_group("fit")
    g.attrs["description"] = FIT_TEXT
    for key, value in record.attrs.items():
        g.attrs[key] = value
    for key, value in record.split.items():
        write_array(g, key, np.asarray(value, np.int64), units="1", dims="index", description=f"the split: {key}")
    for model in record.models:
        m = g.create_group(model.name)
        m.attrs["iterations"] = int(model.iterations)
        m.attrs["failed"] = model.failed
        for key, value in model.scores.items():
            m.attrs[key] = float(value)
        for key, value in model.task.items():
            m.attrs[f"task_{key}"] = float(value)
        write_table(m, "populations", list(model.populations), "the held-out scores per population", POPULATION_COLUMNS)
        write_array(
            m,
            "activity",
            model.activity,
            units="model",
            dims="conditions,time,units",
            description="noise-free activity of each recorded condition on the fitted window",
        )
        if model.heldout_psth is not None:
            write_array(
                m,
                "heldout_psth",
                model.heldout_psth,
                units="Hz",
                dims="conditions,time,neurons",
                description="the held-out neurons' PSTHs predicted through the co-smoothing map (a ridge map "
                "fitted on the training trials), on every condition",
            )
        for key, value in model.arrays.items():
            write_array(
                m,
                key,
                value,
                units="1",
                dims="neurons,units" if np.ndim(value) == 2 else "neurons",
                description=f"the fitted mapping: {key}",
            )


def read_fit(f: h5py.File) -> FitRecord | None:
    """``/fit`` of a run file (None when the run has no fit)."""
    if "fit" not in f:
        return None
    g = f["fit"]
    attrs = {k: v for k, v in g.attrs.items() if k != "description"}
    split = {k: np.asarray(g[k]) for k in g if isinstance(g[k], h5py.Dataset)}
    models = []
    for name in g:
        if not isinstance(g[name], h5py.Group):
            continue
        m = g[name]
        arrays = {k: np.asarray(m[k]) for k in m if k not in ("activity", "populations", "heldout_psth")}
        scores = {k: float(m.attrs[k]) for k in SCORES if k in m.attrs}
        task = {k.removeprefix("task_"): float(v) for k, v in m.attrs.items() if k.startswith("task_")}
        failed = m.attrs.get("failed", "")
        models.append(
            FitModelRecord(
                name,
                np.asarray(m["activity"]),
                scores,
                arrays,
                int(m.attrs["iterations"]),
                read_table(m, "populations"),
                task,
                failed.decode() if isinstance(failed, bytes) else str(failed),
                np.asarray(m["heldout_psth"]) if "heldout_psth" in m else None,
            )
        )
    return FitRecord(attrs, split, tuple(models))
