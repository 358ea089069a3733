"""``/circuit``: the sampled circuit (populations, synapses, input and output masks), and the trained one.

The trained circuit is :class:`TrainedRate`: ``/circuit`` with ``weight_trained`` and the ``/rate`` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from ..anatomy import CircuitSpec
from ..circuit import Connectome, Population
from ..errors import RunFileError
from .datasets import STR, attr_text, checksummed, jsonable, reader, write_array

_POPULATION_DTYPE = np.dtype(
    [
        ("name", STR),
        ("layer", STR),
        ("cell_class", STR),
        ("subtype", STR),
        ("start", np.int64),
        ("stop", np.int64),
    ]
)


def write_circuit(f: h5py.File, connectome: Connectome) -> None:
    """Write ``/circuit`` (populations, connectome, input and output masks) as sampled, before training.

    The synapse magnitudes go to ``/circuit/connectome/weight_init``, which nothing changes
    afterwards; the trained ones to ``weight_trained`` (:func:`write_trained_weight`).
    """
    if "circuit" in f:
        del f["circuit"]
    g = f.create_group("circuit")
    g.attrs.update(
        {
            "spec": connectome.spec.to_toml(),
            "n_units": connectome.n_units,
            "n_synapses": connectome.n_synapses,
            "description": "The sampled circuit: populations (unit ranges) and signed synapses. "
            "Synapse k goes from unit pre[k] to unit post[k] with signed weight "
            "sign[k] * weight_init[k] as sampled and sign[k] * weight_trained[k] after "
            "training; the attribute 'spec' holds the anatomy as TOML.",
        }
    )
    table = np.array(
        [(p.name, p.spec.layer, p.spec.cell_class, p.spec.subtype, p.start, p.stop) for p in connectome.populations],
        dtype=_POPULATION_DTYPE,
    )
    ds = g.create_dataset("populations", data=table, **checksummed(table))
    ds.attrs.update(
        {
            "units": "1",
            "dims": "population",
            "description": "One row per population; units start:stop (stop exclusive).",
        }
    )
    c = g.create_group("connectome")
    c.attrs["description"] = "Synapses as parallel columns (one entry per synapse)."
    write_array(c, "pre", connectome.pre, units="1", dims="synapse", description="Index of the presynaptic unit.")
    write_array(c, "post", connectome.post, units="1", dims="synapse", description="Index of the postsynaptic unit.")
    write_array(
        c,
        "weight_init",
        connectome.weight,
        units="mV/Hz",
        dims="synapse",
        description="Weight magnitude (>= 0) as sampled, before training: change of the postsynaptic "
        "input per Hz of presynaptic rate. Signed weight = sign * weight_init.",
    )
    write_array(
        c,
        "sign",
        connectome.sign[connectome.pre],
        units="1",
        dims="synapse",
        description="+1 excitatory, -1 inhibitory (Dale's law: the presynaptic unit's class).",
    )
    ins = g.create_group("inputs")
    ins.attrs["description"] = "Per task input group: which units receive it."
    for group, mask in connectome.input_masks.items():
        write_array(
            ins, group, mask, units="1", dims="unit", description=f"True for units that receive the '{group}' input."
        )
    write_array(
        g,
        "output_mask",
        connectome.output_mask,
        units="1",
        dims="unit",
        description="True for units read by the motor readout.",
    )


def write_trained_weight(f: h5py.File, weight: np.ndarray) -> None:
    """Write ``/circuit/connectome/weight_trained``: the synapse magnitudes training ended with.

    Parameters
    ----------
    weight : ndarray, shape (synapses,)
        Magnitudes (mV/Hz, >= 0) in the synapse order of ``/circuit/connectome``.
    """
    c = f["circuit/connectome"]
    if weight.shape != c["pre"].shape:
        raise ValueError(f"trained weights have shape {weight.shape}, the connectome {c['pre'].shape}")
    if "weight_trained" in c:
        del c["weight_trained"]
    write_array(
        c,
        "weight_trained",
        weight,
        units="mV/Hz",
        dims="synapse",
        description="Weight magnitude (>= 0) after training (the best validation parameters). Signed "
        "weight = sign * weight_trained; a [lesion] is applied on load, never stored here.",
    )


@reader("/circuit")
def read_circuit(f: h5py.File, weights: str = "init") -> Connectome:
    """Read ``/circuit`` back into a :class:`~cortexsim.circuit.Connectome`.

    Parameters
    ----------
    weights : str
        ``"init"`` (the magnitudes as sampled, ``weight_init``) or ``"trained"`` (``weight_trained``).

    Raises
    ------
    RunFileError
        No ``/circuit``, or ``"trained"`` asked of a file whose circuit is not trained yet.
    """
    if "circuit" not in f:
        raise RunFileError(f"{f.filename}: has no /circuit group")
    if weights not in ("init", "trained"):
        raise ValueError(f"weights: {weights!r}; use 'init' or 'trained'")
    if weights == "trained" and "weight_trained" not in f["circuit/connectome"]:
        raise RunFileError(
            f"{f.filename}: the circuit is not trained yet (no /circuit/connectome/weight_trained); "
            f"run the train stage (cortexsim run)"
        )
    g = f["circuit"]
    spec = CircuitSpec.from_toml_text(attr_text(g.attrs["spec"]), where=f"{f.filename}:/circuit@spec")
    table = g["populations"][()]
    pops = tuple(
        Population(spec.population(attr_text(row["name"])), int(row["start"]), int(row["stop"])) for row in table
    )
    c = g["connectome"]
    pre = c["pre"][()]
    n_units = int(g.attrs["n_units"])
    sign = np.ones(n_units, np.int8)
    for p in pops:
        if p.spec.cell_class == "I":
            sign[p.start : p.stop] = -1
    inputs = {name: ds[()] for name, ds in g["inputs"].items()}
    return Connectome(spec, pops, pre, c["post"][()], c[f"weight_{weights}"][()], sign, inputs, g["output_mask"][()])


@dataclass(frozen=True)
class TrainedRate:
    """The trained rate network as a run file stores it.

    Attributes
    ----------
    connectome : Connectome
        The circuit with its trained magnitudes (``weight_trained``).
    params : dict of str to ndarray
        Every parameter group of :class:`~cortexsim.rate.RateNetwork` (``w`` dense, (post, pre), mV/Hz).
    attrs : dict
        The ``/rate`` attributes (transfer, dt, lesion label, kernel, ...).
    """

    connectome: Connectome
    params: dict[str, np.ndarray]
    attrs: dict[str, Any]


@reader("/rate")
def read_trained_rate(f: h5py.File) -> TrainedRate:
    """The trained rate network: ``/circuit`` with ``weight_trained`` and the ``/rate`` parameters.

    Raises
    ------
    RunFileError
        The file holds no trained rate network (no ``/rate`` or no ``weight_trained``).
    """
    if "rate" not in f:
        raise RunFileError(f"{f.filename}: has no /rate group (train the rate network first: cortexsim run)")
    connectome = read_circuit(f, weights="trained")
    g = f["rate"]
    w = np.zeros((connectome.n_units, connectome.n_units))
    np.add.at(w, (connectome.post, connectome.pre), connectome.weight)
    params = {
        "w": w,
        "w_in": g["W_in"][()],
        "b": g["b"][()],
        "w_out": g["W_out"][()],
        "b_out": g["b_out"][()],
        "x0": g["x0"][()],
    }
    return TrainedRate(connectome, params, {k: jsonable(val) for k, val in g.attrs.items()})
