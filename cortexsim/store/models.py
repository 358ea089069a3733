"""The trained models' groups: ``/rate``, ``/<model>/effector``, ``/ann/<arch>``, ``/control``.

And what is read across them: every model's rates or hand paths, the ANNs a file holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from ..config import ANN_ARCHITECTURES
from ..effector import PLANTS
from ..errors import RunFileError
from ..model_id import ModelId
from .datasets import jsonable, reader, write_array

PARAM_UNITS = {
    "w": ("mV/Hz", "post,pre"),
    "w_in": ("mV", "unit,input"),
    "b": ("mV", "unit"),
    "w_out": ("m/Hz", "output,readout_unit"),
    "b_out": ("m", "output"),
    "x0": ("mV", "unit"),
}
ARM_READOUT_UNITS = {"w_out": ("1/Hz", "muscle,readout_unit"), "b_out": ("1", "muscle")}
"""Units of the readout when the circuit drives the arm: PT5B rates to excitation logits (dimensionless)."""
PARAM_TEXT = {
    "w": "recurrent weight magnitudes (>= 0, zero off the connectome mask)",
    "w_in": "input weights (zero outside the units receiving each input)",
    "b": "bias input",
    "w_out": "readout weights from the output units",
    "b_out": "readout offset",
    "x0": "initial state",
}


def write_params(group: h5py.Group, params: dict[str, np.ndarray], what: str) -> None:
    """Write a rate network's parameter groups into ``group``, with :data:`PARAM_UNITS` and :data:`PARAM_TEXT`."""
    for key, value in params.items():
        units, dims = PARAM_UNITS[key]
        write_array(group, key, value, units=units, dims=dims, description=f"{what}: {PARAM_TEXT[key]}")


def write_rate(
    f: h5py.File,
    states: np.ndarray,
    rates: np.ndarray,
    outputs: np.ndarray,
    params: dict[str, np.ndarray],
    attrs: dict[str, Any],
) -> None:
    """Write ``/rate``: evaluation-set activity and the trained parameters."""
    if "rate" in f:
        del f["rate"]
    g = f.create_group("rate")
    g.attrs.update(
        {
            "description": "The trained rate network on the evaluation set (one trial per "
            "condition of /task, no process noise).",
            **attrs,
        }
    )
    write_array(g, "states", states, units="mV", dims="condition,time,unit", description="Unit input x.")
    write_array(g, "rates", rates, units="Hz", dims="condition,time,unit", description="Unit rate r = phi(x).")
    write_array(
        g,
        "outputs",
        outputs,
        units="m",
        dims="condition,time,output",
        description="Hand position relative to its start: the six-muscle arm's hand, driven by PT5B through "
        "/rate/effector (attribute effector = arm26), else the readout y = W_out r[readout units] + b_out.",
    )
    names = {"w_in": "W_in", "w_out": "W_out", "b": "b", "b_out": "b_out", "x0": "x0"}
    arm = attrs.get("effector") == "arm26"  # the readout gives the six excitation logits, not metres
    for key, name in names.items():
        units, dims = ARM_READOUT_UNITS[key] if arm and key in ARM_READOUT_UNITS else PARAM_UNITS[key]
        text = f"Trained {PARAM_TEXT[key]}" + (
            " (to the muscles' excitation logits)" if arm and key in ARM_READOUT_UNITS else ""
        )
        write_array(g, name, params[key], units=units, dims=dims, description=f"{text}.")


EFFECTOR_ARRAYS: dict[str, tuple[str, str, str]] = {
    "q": ("rad", "joint", "Shoulder and elbow angle (MotorNet's convention: shoulder from +x, elbow relative)."),
    "dq": ("rad/s", "joint", "Joint angular velocity."),
    "hand": ("m", "xy", "Hand position in the shoulder frame (x right, y away from the body)."),
    "activation": ("1", "muscle", "Muscle activation (Thelen 2003 dynamics), muscles in effector.MUSCLE_NAMES order."),
    "excitation": ("1", "muscle", "Excitation the model sent to each muscle (after motor noise)."),
    "feedback": ("1", "channel", "Delayed, noisy feedback the model received (closed_loop.FEEDBACK_CHANNELS)."),
}
"""What ``/<model>/effector`` holds: name -> (units, last axis, description) -- for the arm; a body's
plant says what its coordinates and hand are (``COORDINATES``, ``HAND_TEXT``)."""


def write_effector(
    f: h5py.File, model: str, arrays: dict[str, np.ndarray], dt: float, trials: bool = False, kind: str = "arm26"
) -> None:
    """Write ``/<model>/effector/``: the body a model drove, on the evaluation set.

    Parameters
    ----------
    f : h5py.File
    model : str
        ``"rate"``, ``"spiking"`` or ``"ann/<arch>"``.
    arrays : dict of str to ndarray
        Keys of :data:`EFFECTOR_ARRAYS`, each (conditions, [trials,] time, k); index ``t`` along
        time is the state at ``t dt`` (``[..., 0, :]`` the initial state).
    dt : float
        Time step (s).
    trials : bool
        True when the arrays have a trials axis after the condition axis.
    kind : str
        The body (``[effector] kind``, a key of :data:`cortexsim.effector.PLANTS`): what its
        coordinates are, in which units, and its muscles.
    """
    plant = PLANTS[kind]
    table = {**EFFECTOR_ARRAYS, "hand": (*EFFECTOR_ARRAYS["hand"][:2], plant.HAND_TEXT), **plant.COORDINATES}
    parent = f.require_group(model)
    if "effector" in parent:
        del parent["effector"]
    g = parent.create_group("effector")
    g.attrs.update(
        {
            "description": f"{plant.DESCRIPTION} this model drove "
            "in closed loop on the evaluation set; index t along time is the state at t dt.",
            "dt": dt,
            "muscles": list(plant.MUSCLES),
        }
    )
    lead = "condition,trial,time" if trials else "condition,time"
    for name, array in arrays.items():
        units, last, text = table[name]
        write_array(g, name, array, units=units, dims=f"{lead},{last}", description=text)


def read_effector(f: h5py.File, model: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``/<model>/effector`` (None when the model drove no arm)."""
    path = f"{model}/effector"
    if path not in f:
        return None
    return {name: f[path][name][()] for name in EFFECTOR_ARRAYS if name in f[path]}


def write_ann(
    f: h5py.File,
    arch: str,
    hidden: np.ndarray,
    outputs: np.ndarray,
    params: dict[str, np.ndarray],
    attrs: dict[str, Any],
) -> None:
    """Write ``/ann/<arch>``: evaluation-set hidden states, outputs and trained weights."""
    g = f.require_group("ann")
    g.attrs["description"] = (
        "Unconstrained ANN baselines trained on the same task and inputs as the "
        "rate circuit; activity on the evaluation set of /task, without noise."
    )
    if arch in g:
        del g[arch]
    a = g.create_group(arch)
    a.attrs.update({"description": f"{arch.upper()} baseline.", **attrs})
    write_array(
        a, "hidden", hidden, units="1", dims="condition,time,unit", description="Hidden state h (dimensionless)."
    )
    write_array(a, "outputs", outputs, units="m", dims="condition,time,output", description="Decoded hand position.")
    w = a.create_group("weights")
    w.attrs["description"] = "Trained parameters (names as in cortexsim.ann; gates stacked along axis 0)."
    for key, value in params.items():
        dims = ",".join(f"{key}_axis{i}" for i in range(np.ndim(value)))
        write_array(
            w,
            key,
            value,
            units="m" if key == "b_out" else ("m/1" if key == "w_out" else "1"),
            dims=dims,
            description=f"Trained '{key}'.",
        )


@dataclass(frozen=True)
class AnnRecord:
    """One ANN baseline as ``/ann/<arch>`` stores it.

    Attributes
    ----------
    arch : str
    hidden : ndarray, shape (conditions, time, units)
        Hidden state on the evaluation set (dimensionless).
    outputs : ndarray, shape (conditions, time, outputs)
        Decoded hand position (m).
    params : dict of str to ndarray
        Trained parameters (names as in :mod:`cortexsim.ann`).
    attrs : dict
        ``config``, ``n_hidden``, ``iterations``, ``train_seconds``.
    """

    arch: str
    hidden: np.ndarray
    outputs: np.ndarray
    params: dict[str, np.ndarray]
    attrs: dict[str, Any]


@reader("/ann")
def read_ann(f: h5py.File, arch: str) -> AnnRecord:
    """``/ann/<arch>`` as :func:`write_ann` wrote it."""
    group = ModelId.ann(arch).group if arch in ANN_ARCHITECTURES else None
    if group is None or group not in f:
        have = ", ".join(f["ann"]) if "ann" in f else "none"
        raise RunFileError(f"{f.filename}: has no ANN baseline {arch!r} (ANNs in the file: {have})")
    a = f[group]
    return AnnRecord(
        arch,
        a["hidden"][()],
        a["outputs"][()],
        {k: ds[()] for k, ds in a["weights"].items()},
        {k: jsonable(val) for k, val in a.attrs.items() if k != "description"},
    )


def write_control(f: h5py.File, params: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """Write ``/control`` (replacing it): the trained parameters of the no-inter-population-recurrence circuit.

    Its connectome is the run's ``/circuit`` without the synapses between populations (rebuilt
    from the config, :meth:`cortexsim.circuit.Connectome.within_populations`); ``attrs`` says so.
    """
    if "control" in f:
        del f["control"]
    g = f.create_group("control")
    g.attrs["description"] = (
        "The circuit trained from scratch without inter-population recurrence (the rotation-sources control)."
    )
    g.attrs.update(dict(attrs))
    for key, value in params.items():  # the control drives the arm: its readout gives excitation logits
        units, dims = ARM_READOUT_UNITS.get(key, PARAM_UNITS[key])
        write_array(g, key, value, units=units, dims=dims, description=f"Control circuit: {PARAM_TEXT[key]}.")


@reader("/control")
def read_control(f: h5py.File) -> dict[str, np.ndarray] | None:
    """The control circuit's trained parameters (``/control``), or None when the run has none."""
    if "control" not in f:
        return None
    g = f["control"]
    return {name: g[name][()] for name in g if isinstance(g[name], h5py.Dataset)}


def anns_in(f: h5py.File) -> list[ModelId]:
    """The ANN baselines ``/ann`` holds; a group named for no architecture is a damaged file."""
    out = []
    for arch in f["ann"] if "ann" in f else ():
        try:
            out.append(ModelId.ann(arch))
        except ValueError:
            raise RunFileError(
                f"{f.filename}: /ann holds {arch!r}, which is no ANN baseline cortexsim trains; restore the file"
            ) from None
    return out


@reader("/rate or /spiking")
def read_rates(f: h5py.File, group: str) -> np.ndarray | None:
    """``/<group>/rates`` (``group`` = ``"rate"`` or ``"spiking"``), or None when the file has none.

    Returns
    -------
    ndarray, shape (conditions, time, units), or None
        Rates (Hz) on the evaluation conditions of ``/task``.
    """
    key = f"{group}/rates"
    return f[key][()] if key in f else None


@reader("/task/targets")
def read_hand_paths(f: h5py.File) -> dict[str, np.ndarray]:
    """Each model's hand path on the evaluation conditions (m), shape (conditions, time, 2) each.

    Keys are the ``/metrics`` prefixes: ``rate`` (``/rate/outputs``), ``spiking`` (``/spiking/outputs``
    averaged over trials, reach conditions only) and ``ann_<arch>`` (``/ann/<arch>/outputs``), where
    present.
    """
    n = f["task/targets"].shape[0]
    paths = {"rate": f["rate/outputs"][()]} if "rate/outputs" in f else {}
    if "spiking/outputs" in f:
        paths["spiking"] = f["spiking/outputs"][()][:n].mean(axis=1)
    for model in anns_in(f):
        if "outputs" in f[model.group]:
            paths[model.prefix] = f[model.group]["outputs"][()]
    return paths
