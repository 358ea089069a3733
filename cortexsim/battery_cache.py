"""The comparison computed incrementally: every unit of it keyed by the inputs its numbers depend on.

The compare stage (:func:`cortexsim.compare_stage.compare_stage`) is split into units, each a function of
inputs that can be named and hashed:

====================  ==========================================================================
unit                  what it holds, and what its key hashes
====================  ==========================================================================
``battery``           the rows of the run's own activities (:func:`cortexsim.battery.own_part`):
                      every such activity (name, kind, grid, rates, movement onsets), the hand
                      positions, the :class:`~cortexsim.battery.BatterySettings` (with the jPCA
                      window) and the seed
``data``              the rows that involve recorded data (:func:`cortexsim.battery.data_part`):
                      the ``battery`` key and the data (name, grid, rates)
``dynamics``          ceilings, communication subspaces and fixed points
                      (:func:`cortexsim.battery.model_dynamics`): the config, the trained models
                      (circuit weights and parameters, every ANN's parameters, the twin's
                      single trials), the run's own activities, ``n_pcs`` and
                      ``fixed_point_starts``
``rotation_sources``  arm runs: the rotation-sources table (:mod:`cortexsim.rotations`): the config,
                      the trained circuit, the control circuit and ``n_pcs``
====================  ==========================================================================

Every key also hashes the code (:func:`code_key`: every module of cortexsim, and the numpy and scipy
versions), so results are reused only when the same code would compute them again.  A unit whose key
matches the one stored with it in the run file (``/analysis/units``, :func:`cortexsim.store.read_analysis_units`)
is read back instead of computed: adding recorded data to a finished run computes the ``data`` unit
alone, with the same numbers a full recomputation gives -- the data's rows draw from streams of their
own (:func:`cortexsim.battery.data_part`), so no other row depends on them.

Pure: hashes and conversions between the battery's records and :class:`cortexsim.store.AnalysisUnit`;
the pipeline reads and writes the units through :mod:`cortexsim.store`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import battery
from .battery import BatteryPart, BatterySettings, DynamicsResult
from .store import Activity, AnalysisUnit, Row

UNITS = ("battery", "data", "dynamics", "rotation_sources")
"""The units of the comparison, in the order the stage computes them."""

DYNAMICS_TABLES = ("calibration", "communication", "fixed_points")
"""The tables of the ``dynamics`` unit (its ceilings without ``decode_position_r2``, which the battery adds)."""


def _feed(h: Any, value: Any) -> None:
    """Feed ``value`` into hash ``h``: its type, shape and content, unambiguously."""
    if value is None:
        h.update(b"N")
    elif isinstance(value, bool):
        h.update(b"B1" if value else b"B0")
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        h.update(b"S%d:" % len(raw) + raw)
    elif isinstance(value, (int, np.integer)):
        h.update(b"I" + str(int(value)).encode() + b";")
    elif isinstance(value, (float, np.floating)):
        h.update(b"F" + float(value).hex().encode() + b";")
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        if a.dtype.kind == "O":
            raise TypeError("digest: object arrays are not hashed")
        h.update(b"A" + a.dtype.str.encode() + repr(a.shape).encode())
        h.update(a.tobytes())
    elif isinstance(value, Mapping):
        h.update(b"M%d:" % len(value))
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(b"L%d:" % len(value))
        for item in value:
            _feed(h, item)
    else:
        raise TypeError(f"digest: cannot hash a {type(value).__name__}")


def digest(*values: Any) -> str:
    """SHA-256 (64 hex digits) of ``values``: text, numbers, arrays, and lists and mappings of them.

    Arrays are hashed with their dtype and shape, floats bit for bit (``float.hex``), mappings by
    sorted key: equal inputs give equal digests on any machine, and any changed element changes it.
    """
    h = hashlib.sha256()
    _feed(h, list(values))
    return h.hexdigest()


@functools.cache
def code_key() -> str:
    """Digest of the code that computes the comparison: every ``.py`` file of cortexsim, numpy's and scipy's versions.

    Read once per process; a changed module (or another numpy or scipy) changes every unit's key.
    """
    root = Path(__file__).resolve().parent
    files = sorted(root.rglob("*.py"))
    versions = [importlib.metadata.version(pkg) for pkg in ("numpy", "scipy")]
    return digest(versions, [(str(p.relative_to(root)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files])


def activities_digest(activities: Iterable[Activity]) -> str:
    """Digest of activities in order: name, kind, time step, movement onset, first step and rates.

    The movement onset is the scheduled one and the onset of every condition with what it is
    (:func:`cortexsim.battery.onsets_of`, :func:`cortexsim.battery.alignment_of`): aligning a model
    to its measured onset, or a changed ``[compare] jpca_onset_fraction``, changes the digest.
    """
    return digest(
        [
            (
                a.name,
                a.kind,
                float(a.dt),
                int(a.move_on),
                int(a.start),
                a.rates,
                battery.onsets_of(a),
                battery.alignment_of(a),
            )
            for a in activities
        ]
    )


def battery_key(
    activities: Iterable[Activity], settings: BatterySettings, positions: np.ndarray | None, seed: int
) -> str:
    """Key of the ``battery`` unit: the run's own activities (no data), settings, hand positions and seed.

    The settings include the jPCA window (``[compare] jpca_window``) and the activities their movement
    onsets (:func:`activities_digest`), so a changed window or alignment recomputes the unit.

    ``seed`` names the streams the rows draw from ("compare", "compare-surrogates").
    """
    own = [a for a in activities if a.kind != "data"]
    return digest(
        "battery",
        code_key(),
        activities_digest(own),
        [settings.n_pcs, settings.n_null, settings.n_surrogates, settings.dsa, list(settings.jpca_window)],
        positions,
        int(seed),
    )


def data_key(base_key: str, activities: Iterable[Activity]) -> str:
    """Key of the ``data`` unit: the ``battery`` key (the data's partners and settings) and the data."""
    return digest("data", base_key, activities_digest(a for a in activities if a.kind == "data"))


def dynamics_key(
    config_text: str,
    models: Mapping[str, Any],
    activities: Iterable[Activity],
    n_pcs: int,
    fixed_point_starts: int,
) -> str:
    """Key of the ``dynamics`` unit.

    Parameters
    ----------
    config_text : str
        The run's config (TOML): the models are rebuilt from it, and its seed names the streams.
    models : mapping
        What the models are rebuilt from, by name (arrays, or mappings of arrays): the trained
        circuit's parameters and weights, each ANN's parameters, the twin's single trials.
    activities : iterable of Activity
        The run's own activities (recorded data are left out).
    n_pcs, fixed_point_starts : int
    """
    own = [a for a in activities if a.kind != "data"]
    return digest(
        "dynamics", code_key(), config_text, models, activities_digest(own), int(n_pcs), int(fixed_point_starts)
    )


def rotation_key(config_text: str, models: Mapping[str, Any], n_pcs: int) -> str:
    """Key of the ``rotation_sources`` unit: the config, the trained and control circuits, ``n_pcs``."""
    return digest("rotation_sources", code_key(), config_text, models, int(n_pcs))


def part_unit(part: BatteryPart, key: str) -> AnalysisUnit:
    """A battery part as the unit the run file keeps (its rows and notes; the jPCA fits are left out)."""
    return AnalysisUnit(key, part.tables(), part.notes)


def unit_part(unit: AnalysisUnit) -> BatteryPart:
    """The battery part a unit holds (:func:`part_unit` read back)."""
    t = unit.tables
    return BatteryPart(t.get("similarity", ()), t.get("jpca", ()), t.get("tangling", ()), unit.notes)


def dynamics_unit(dynamics: DynamicsResult, key: str, figures: str) -> AnalysisUnit:
    """The ``dynamics`` unit of :func:`cortexsim.battery.model_dynamics`'s result.

    ``figures``: where its fixed-point figures were drawn (relative to the run file's folder), which
    need the models' states and cannot be drawn again from the rows.
    """
    tables = dynamics.tables()
    return AnalysisUnit(key, {name: tables[name] for name in DYNAMICS_TABLES}, (), figures)


def unit_dynamics(unit: AnalysisUnit) -> DynamicsResult:
    """The :class:`~cortexsim.battery.DynamicsResult` a ``dynamics`` unit holds (rows only: no probes, no points)."""
    t = unit.tables
    return DynamicsResult(
        calibration=t.get("calibration", ()),
        communication=t.get("communication", ()),
        fixed_points=t.get("fixed_points", ()),
    )


def rows_unit(name: str, rows: Iterable[Row], key: str) -> AnalysisUnit:
    """A unit of one table (``rotation_sources``)."""
    return AnalysisUnit(key, {name: tuple(battery.plain_row(r) for r in rows)})
