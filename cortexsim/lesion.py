"""Lesions of the *trained* circuit: silence populations, cut projections.

A lesion is a pure transformation of a trained network (masks in, a new network
out), applied after training the way an experimenter silences a cell type
optogenetically in an animal that has learned the task:

- **silence** a population: its units fire nothing.  In the rate model their rates
  are clamped to 0 Hz (``r = 0``; nothing they would have sent reaches anyone, the
  readout included); in the spiking twin their neurons receive a hyperpolarising
  current of :data:`cortexsim.spiking.mapping.SILENCE_MV` and emit no spikes.
- **cut** a projection ``"PRE -> POST"``: every trained synapse from a unit of
  ``PRE`` onto a unit of ``POST`` is set to zero, in both models.

Structural lesions *before* training (the circuit grows without a population or
projection) are ``[circuit.overrides]`` ``silence`` / ``cut`` instead; see
:meth:`cortexsim.anatomy.CircuitSpec.with_overrides`.
"""

from __future__ import annotations

import numpy as np

from .circuit import Connectome
from .config import LesionConfig
from .errors import ConfigError
from .rate import RateNetwork
from .stim_config import lesion_protocol
from .stimulation import target_units


def _split(key: str) -> tuple[str, str]:
    parts = [p.strip() for p in key.split("->")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f'lesion.cut: {key!r} is not a projection; write "PRE -> POST"')
    return parts[0], parts[1]


def silenced_units(connectome: Connectome, lesion: LesionConfig) -> np.ndarray:
    """Boolean mask of the silenced units, shape (units,).

    The units :func:`cortexsim.stim_config.lesion_protocol` of ``lesion.silence`` targets: a lesion is
    the stimulation protocol that silences every unit of its populations, the whole trial, every trial.
    """
    if not lesion.silence:
        return np.zeros(connectome.n_units, bool)
    cell_types = [(p.name, p.spec.layer, p.spec.subtype, p.slice) for p in connectome.populations]
    return target_units(lesion_protocol(lesion.silence), cell_types, connectome.n_units)


def cut_synapses(connectome: Connectome, lesion: LesionConfig) -> np.ndarray:
    """Boolean matrix of the synapses removed by ``lesion.cut``, shape (post units, pre units)."""
    cut = np.zeros((connectome.n_units, connectome.n_units), bool)
    pops = {p.name: p for p in connectome.populations}
    for key in lesion.cut:
        pre, post = _split(key)
        cut[pops[post].slice, pops[pre].slice] = True
    return cut


def apply_lesion(net: RateNetwork, lesion: LesionConfig) -> RateNetwork:
    """The trained network ``net`` with ``lesion`` applied (see the module docstring); ``net`` is unchanged.

    Cut synapses lose their weight; silenced units have their rates clamped to zero
    (:attr:`RateNetwork.silenced`).  An empty lesion returns an unlesioned copy.

    Parameters
    ----------
    net : RateNetwork
    lesion : LesionConfig

    Returns
    -------
    RateNetwork
        A new network (:meth:`RateNetwork.lesioned` of the lesion's masks).
    """
    cut = cut_synapses(net.connectome, lesion) if lesion.cut else None
    return net.lesioned(silenced_units(net.connectome, lesion), cut)
