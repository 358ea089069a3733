"""``/stimulation``: what each stimulation protocol did to each trained model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from .datasets import Row, jsonable, read_record_group, reader, write_record_group

STIMULATION_TEXT = (
    "Optogenetic-style stimulation of the trained models (cortexsim.stim_measure): /stimulation/<protocol> holds "
    "the protocol (attributes: target, fraction, effect, amplitude_mv, event, start_s, stop_s, ramp_s, trials) "
    "and /stimulation/<protocol>/<model> what it did to <model> (rate, spiking or ann_<arch>) on the held-out, "
    "noise-free evaluation conditions: the hand with and without the light, their distance, the light, which "
    "units express, the activity's change (its norm and output-potent part), per-population responses and the "
    "noisy interleaved trials."
)
"""What ``/stimulation`` holds."""

STIMULATION_TABLES = {
    "populations": "Per population: expressing (share of its units), direct (1: it expresses), change_light and "
    "change_after (mean change of activity while lit and in the 200 ms after; Hz, or h for an ANN), "
    "relative_light (change while lit over the unstimulated mean).",
    "trials": "One row per noisy trial, interleaved: condition, stimulated (1 lit), endpoint_error_cm with and "
    "without the light (the same noise), peak_deviation_cm (hand distance from the unlit run).",
}
"""The tables of ``/stimulation/<protocol>/<model>``."""

PROTOCOL_UNITS = {"amplitude": "amplitude_mv", "start": "start_s", "stop": "stop_s", "ramp": "ramp_s"}
"""Attribute names (with units) of a protocol's fields in ``/stimulation/<protocol>``."""


def write_stimulation(
    f: h5py.File,
    protocol: Mapping[str, Any],
    model: str,
    arrays: Mapping[str, tuple[np.ndarray, str, str, str]],
    tables: Mapping[str, Sequence[Row]],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``/stimulation/<protocol>/<model>`` (replacing it) and the protocol's attributes.

    Parameters
    ----------
    f : h5py.File
        Writable run file (:func:`open_for_update`).
    protocol : mapping
        The protocol's fields (:class:`cortexsim.stim_config.StimProtocol` as a dict) with ``label``.
    model : str
        ``"rate"``, ``"spiking"`` or ``"ann_<arch>"``.
    arrays : mapping of str to (data, units, dims, description)
    tables : mapping of str to sequence of dict
        :data:`STIMULATION_TABLES`, one row per dict.
    attrs : mapping, optional
        Attributes of the model's group.
    """
    top = f.require_group("stimulation")
    top.attrs["description"] = STIMULATION_TEXT
    name = str(protocol["name"])
    parent = top.require_group(name)
    for key, value in protocol.items():
        parent.attrs[PROTOCOL_UNITS.get(key, key)] = list(value) if isinstance(value, tuple) else value
    write_record_group(parent, model, tables, arrays, attrs, STIMULATION_TABLES)


@reader("/stimulation")
def read_stimulation(f: h5py.File) -> dict[str, dict[str, Any]]:
    """``/stimulation`` as ``{protocol: {"attrs": ..., model: {name: rows or array, "attrs": ...}}}`` ({}: none)."""
    out: dict[str, dict[str, Any]] = {}
    if "stimulation" not in f:
        return out
    for name, parent in f["stimulation"].items():
        entry: dict[str, Any] = {"attrs": {k: jsonable(val) for k, val in parent.attrs.items()}}
        for model, g in parent.items():
            entry[model] = read_record_group(g)
        out[name] = entry
    return out
