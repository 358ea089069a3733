"""What the comparison reads and writes: the activities of a run, ``/analysis`` and its units.

The meanings of the battery's columns and tables live with the battery
(:data:`cortexsim.battery.TABLE_COLUMNS`, :data:`cortexsim.battery.ANALYSIS_TABLES`); the compare
stage hands them to :func:`write_analysis`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..errors import CortexsimError
from .datasets import Row, attr_text, read_table, reader, typed_attr, write_array, write_table
from .models import anns_in


@dataclass(frozen=True)
class Activity:
    """Condition-averaged activity of one model, layer, population or data set.

    Attributes
    ----------
    name : str
        E.g. ``"rate"``, ``"rate:L5B"``, ``"rate:PT5B"``, ``"ann:gru"``, ``"spiking"``, ``"data"``.
    kind : str
        ``"model"``, ``"layer"``, ``"population"`` or ``"data"``.
    rates : ndarray, shape (conditions, time, units)
        Rates (Hz) or hidden states (dimensionless, ANNs).
    dt : float
        Time step (s).
    move_on : int
        Time index of movement onset in ``rates`` (for the jPCA window).
    start : int
        The step of the run's time grid that ``rates``' first step is (recorded data that cover only
        part of the model's time axis start later and stop earlier; models: 0).
    """

    name: str
    kind: str
    rates: np.ndarray
    dt: float
    move_on: int
    start: int = 0

    @property
    def n_units(self) -> int:
        """Number of units."""
        return self.rates.shape[2]


@reader("/task, /rate, /circuit/populations, /spiking or /ann")
def read_activities(f: h5py.File, prefix: str = "", min_units: int = 3) -> list[Activity]:
    """Activities stored in a run file: circuit, layers, populations, spiking twin, ANNs (in that order).

    Parameters
    ----------
    f : h5py.File
        An open run file (:func:`open_run`).
    prefix : str
        Put in front of every name (e.g. ``"run2/"`` for a second run compared with the first).
    min_units : int
        Populations with fewer units are left out (layers are always kept).

    Returns
    -------
    list of Activity
        ``rate`` (``/rate/rates``), ``rate:<layer>`` and ``rate:<population>`` (its units), ``spiking``
        (``/spiking/rates``) and ``ann:<arch>`` (``/ann/<arch>/hidden``) where present; all on the time grid
        of ``/task``, shape (conditions, time, units).

    Raises
    ------
    CortexsimError
        The file has no ``/rate/rates`` (the rate stage has not run).
    """
    if "rate/rates" not in f:
        raise CortexsimError(f"{f.filename}: has no /rate/rates; run the rate stage first (cortexsim run)")
    dt = float(f["task"].attrs["dt"])
    move_on = int(round(float(f["task/params/move_on"][0]) / dt))
    rates = f["rate/rates"][()]
    out = [Activity(prefix + "rate", "model", rates, dt, move_on)]
    table = f["circuit/populations"][()]
    layers: dict[str, list[int]] = {}
    for row in table:
        layer = attr_text(row["layer"])
        layers.setdefault(layer, []).extend(range(int(row["start"]), int(row["stop"])))
    for layer, units in layers.items():
        out.append(Activity(f"{prefix}rate:{layer}", "layer", rates[:, :, units], dt, move_on))
    for row in table:
        start, stop = int(row["start"]), int(row["stop"])
        if stop - start >= min_units:
            name = attr_text(row["name"])
            out.append(Activity(f"{prefix}rate:{name}", "population", rates[:, :, start:stop], dt, move_on))
    if "spiking/rates" in f:
        out.append(Activity(prefix + "spiking", "model", f["spiking/rates"][()], dt, move_on))
    if "ann" in f:
        for model in anns_in(f):
            out.append(Activity(prefix + model.stage, "model", f[model.group]["hidden"][()], dt, move_on))
    return out


ANALYSIS_TEXT = (
    "Comparison battery (cortexsim.battery): every activity reduced to its top PCs, "
    "compared pairwise with condition-shuffle nulls; jPCA around movement onset."
)
"""The ``description`` attribute of ``/analysis``."""


@dataclass(frozen=True)
class AnalysisRecord:
    """What ``/analysis`` holds (see :func:`write_analysis`).

    Attributes
    ----------
    similarity : tuple of dict
        One row per compared pair (columns: :data:`cortexsim.battery.SIMILARITY_COLUMNS`).
    jpca : tuple of dict
        One row per activity (columns: :data:`cortexsim.battery.JPCA_COLUMNS`).
    answers : dict
        The headline answers (e.g. ``most_ann_like_layer``): text or numbers.
    notes : tuple of str
        The battery's caveats.
    """

    similarity: tuple[Row, ...]
    jpca: tuple[Row, ...]
    answers: dict[str, str | float]
    notes: tuple[str, ...]
    tables: dict[str, tuple[Row, ...]] = field(default_factory=dict)


def write_analysis(
    f: h5py.File,
    similarity: Sequence[Row],
    jpca: Sequence[Row],
    answers: dict[str, str | float],
    notes: Sequence[str],
    tables: Mapping[str, Sequence[Row]] | None = None,
    *,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> None:
    """Write ``/analysis`` (replacing any): the similarity and jPCA tables, more tables and the headline answers.

    Parameters
    ----------
    f : h5py.File
        Writable run file (:func:`~cortexsim.store.open_for_update`).
    similarity : sequence of dict
        One row per compared pair; the table ``similarity``.
    jpca : sequence of dict
        One row per activity; the table ``jpca``.
    answers : dict
        Headline answers, written as attributes of ``/analysis`` (text or numbers).
    notes : sequence of str
        Caveats, written one a line as the attribute ``notes``.
    tables : mapping, optional
        More tables by name (the battery's ``calibration``, ``tangling``, ``communication``,
        ``fixed_points``, ``rotation_sources``), one row per dict.
    columns : mapping, optional
        Table name -> {column: its meaning}, written as the table's attributes ``col_<column>``
        (the battery's :data:`cortexsim.battery.TABLE_COLUMNS`).
    descriptions : mapping, optional
        Table name -> its ``description`` (the battery's :data:`cortexsim.battery.ANALYSIS_TABLES`;
        otherwise "One row per entry.").
    """
    if "analysis" in f:
        del f["analysis"]
    g = f.create_group("analysis")
    g.attrs["description"] = ANALYSIS_TEXT
    g.attrs.update(dict(answers))
    g.attrs["notes"] = "\n".join(notes)
    said = {"similarity": "One row per compared pair.", "jpca": "One row per activity.", **(descriptions or {})}
    for name, rows in {"similarity": similarity, "jpca": jpca, **(tables or {})}.items():
        write_table(g, name, list(rows), said.get(name, "One row per entry."), (columns or {}).get(name))


@reader("/analysis")
def read_analysis(f: h5py.File) -> AnalysisRecord | None:
    """``/analysis`` as an :class:`AnalysisRecord`, or None when the comparison has not run.

    Notes are split at line breaks (as :func:`write_analysis` joined them); every table besides
    ``similarity`` and ``jpca`` goes to :attr:`AnalysisRecord.tables`, by name.
    """
    if "analysis" not in f:
        return None
    g = f["analysis"]
    answers = {
        k: attr_text(v) if isinstance(v, (str, bytes)) else float(v)
        for k, v in g.attrs.items()
        if k not in ("description", "notes")
    }
    notes = attr_text(g.attrs["notes"])
    more = [n for n, obj in g.items() if isinstance(obj, h5py.Dataset) and n not in ("similarity", "jpca")]
    return AnalysisRecord(
        read_table(g, "similarity"),
        read_table(g, "jpca"),
        answers,
        tuple(notes.split("\n")) if notes else (),
        {name: read_table(g, name) for name in more},
    )


UNITS_TEXT = (
    "The comparison's units as computed (cortexsim.battery_cache): one dataset per unit (battery, data, "
    "dynamics, rotation_sources) holding its rows and notes as JSON, its attribute 'key' the hash of every "
    "input its numbers depend on. A later compare reads back a unit whose key still matches instead of "
    "computing it again (cortexsim compare --force recomputes all)."
)
"""What ``/analysis/units`` holds."""


@dataclass(frozen=True)
class AnalysisUnit:
    """One unit of the comparison as ``/analysis/units/<name>`` keeps it (:mod:`cortexsim.battery_cache`).

    Attributes
    ----------
    key : str
        Hash of every input the unit's numbers depend on (64 hex digits).
    tables : mapping of str to tuple of dict
        Its rows by table name (``similarity``, ``jpca``, ``tangling``, ``calibration``, ...), each row
        exactly as computed: the columns it has, in order, numbers as ``float`` (NaN and infinities too).
    notes : tuple of str
        Its caveats.
    figures : str
        The figure folder, relative to the run file's folder, where the figures that cannot be drawn
        from the rows alone (the fixed points) were drawn ("": none).
    """

    key: str
    tables: Mapping[str, tuple[Row, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    figures: str = ""


def write_analysis_units(f: h5py.File, units: Mapping[str, AnalysisUnit]) -> None:
    """Write ``/analysis/units/<name>`` for every unit (after :func:`write_analysis`, which replaces ``/analysis``).

    Each unit is one dataset of UTF-8 bytes holding ``{"tables": ..., "notes": ...}`` as JSON (rows keep
    their own columns and exact values: Python's JSON writes the shortest text that reads back as the
    same float), checksummed like every dataset, with the attributes ``key`` and ``figures``.
    """
    g = f["analysis"].require_group("units")
    g.attrs["description"] = UNITS_TEXT
    for name, unit in units.items():
        text = json.dumps({"tables": {k: list(v) for k, v in unit.tables.items()}, "notes": list(unit.notes)})
        write_array(
            g,
            name,
            np.frombuffer(text.encode("utf-8"), np.uint8),
            units="1",
            dims="byte",
            description=f"The comparison's '{name}' unit: its rows and notes as UTF-8 JSON.",
            key=unit.key,
            figures=unit.figures,
        )


@reader("/analysis/units")
def read_analysis_units(f: h5py.File) -> dict[str, AnalysisUnit]:
    """The units ``/analysis/units`` holds (:func:`write_analysis_units`), by name ({} when none)."""
    if "analysis/units" not in f:
        return {}
    out = {}
    for name, ds in f["analysis/units"].items():
        held = json.loads(ds[()].tobytes().decode("utf-8"))
        tables = {k: tuple(dict(r) for r in rows) for k, rows in held["tables"].items()}
        out[name] = AnalysisUnit(
            typed_attr(ds, "key", str), tables, tuple(str(n) for n in held["notes"]), typed_attr(ds, "figures", str)
        )
    return out
