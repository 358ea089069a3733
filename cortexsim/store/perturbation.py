"""``/perturbation``: the curl-field and bump protocols of the trained arm models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from .datasets import Row, read_record_group, reader, write_record_group

PERTURBATION_TEXT = (
    "Perturbations of the trained arm models (cortexsim.perturb): /perturbation/curl/<model> (the "
    "curl-field protocol: phases, learning curve, population changes, hand paths) and "
    "/perturbation/bumps/<model> (bumped trials, population latencies, responses aligned to the bump); "
    "<model> is rate, spiking or ann_<arch>."
)
"""What ``/perturbation`` holds."""

PERTURBATION_TABLES = {
    "phases": "One row per phase of the curl protocol (baseline, first_exposure, after_adaptation, aftereffect, "
    "washout): mean |lateral deviation| (cm), mean signed deviation (cm, + left of the reach), endpoint error (cm).",
    "curve": "Learning curve: mean |lateral deviation| (cm) every perturb.curve_every iterations of adaptation "
    "(field on) and washout (field off).",
    "populations": "Per population: RMS rate change between first exposure and after adaptation over the RMS rate "
    "at first exposure, and the relative RMS change of its incoming weights.",
    "trials": "One row per bumped trial: timing, direction (deg), condition, onset (s), peak displacement from the "
    "unperturbed path (cm), recovery time to within 1 cm (ms; inf: not by the trial's end).",
    "latencies": "Per timing and population: response latency (ms; NaN: never 3 SD above the pre-bump floor) and "
    "the peak of the aligned mean |delta rate| (Hz).",
}
"""The tables of ``/perturbation/<kind>/<model>`` and what they hold."""


def write_perturbation(
    f: h5py.File,
    kind: str,
    model: str,
    tables: Mapping[str, Sequence[Row]],
    arrays: Mapping[str, tuple[np.ndarray, str, str, str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``/perturbation/<kind>/<model>`` (replacing it): a protocol's tables, arrays and attributes.

    Parameters
    ----------
    f : h5py.File
        Writable run file (:func:`open_for_update`).
    kind : {"curl", "bumps"}
    model : str
        ``"rate"``, ``"spiking"`` or ``"ann_<arch>"``.
    tables : mapping of str to sequence of dict
        Tables by name (:data:`PERTURBATION_TABLES`), one row per dict.
    arrays : mapping of str to (data, units, dims, description), optional
    attrs : mapping, optional
        Attributes of the group (text, numbers or lists of text).
    """
    if kind not in ("curl", "bumps"):
        raise ValueError(f"kind: {kind!r}; expected 'curl' or 'bumps'")
    top = f.require_group("perturbation")
    top.attrs["description"] = PERTURBATION_TEXT
    write_record_group(top.require_group(kind), model, tables, arrays, attrs, PERTURBATION_TABLES)


@reader("/perturbation")
def read_perturbation(f: h5py.File) -> dict[str, dict[str, dict[str, Any]]]:
    """``/perturbation`` as ``{kind: {model: {name: rows or array}}}`` (empty when absent).

    Tables come back as tuples of dict rows (:func:`read_table`), datasets as arrays, and the
    group's attributes under ``"attrs"``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if "perturbation" not in f:
        return out
    for kind, parent in f["perturbation"].items():
        out[kind] = {}
        for model, g in parent.items():
            out[kind][model] = read_record_group(g)
    return out
