"""Lesions of the *trained* circuit: silence populations, cut projections.

A lesion is applied after training, the way an experimenter silences a cell type
optogenetically in an animal that has learned the task:

- **silence** a population: its units fire nothing.  In the rate model their rates
  are clamped to 0 Hz (``r = 0``; nothing they would have sent reaches anyone, the
  readout included); in the spiking twin their neurons receive a hyperpolarising
  current of :data:`SILENCE_MV` and emit no spikes.
- **cut** a projection ``"PRE -> POST"``: every trained synapse from a unit of
  ``PRE`` onto a unit of ``POST`` is set to zero, in both models.

Structural lesions *before* training (the circuit grows without a population or
projection) are ``[circuit.overrides]`` ``silence`` / ``cut`` instead; see
:meth:`cortexsim.anatomy.CircuitSpec.with_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import CircuitSpec
from .circuit import Connectome
from .errors import ConfigError

SILENCE_MV = -100.0
"""Hyperpolarising drive (mV) that keeps a silenced spiking pool below threshold."""


@dataclass(frozen=True)
class LesionConfig:
    """``[lesion]``: silence populations and cut projections of the trained circuit.

    The rate network is trained intact; the lesion applies to its evaluation, the
    spiking twin and the comparison.  Empty lists (the default): no lesion.

    Attributes
    ----------
    silence : tuple of str
        Populations whose units are silenced (e.g. ``["PT5B"]``).
    cut : tuple of str
        Projections to remove, each ``"PRE -> POST"`` (e.g. ``["IT2/3 -> PT5B"]``).
    """

    silence: tuple[str, ...] = ()
    cut: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("silence", "cut"):
            value = getattr(self, key)
            if isinstance(value, str) or not all(isinstance(x, str) for x in value):
                example = '["PT5B"]' if key == "silence" else '["IT2/3 -> PT5B"]'
                raise ConfigError(f"lesion.{key}: expected a list of names such as {example}, got {value!r}")

    @property
    def active(self) -> bool:
        """True when anything is silenced or cut."""
        return bool(self.silence or self.cut)

    def label(self) -> str:
        """Short description, e.g. ``"silence PT5B; cut IT2/3 -> PT5B"`` (``"intact"`` when none)."""
        parts = ([f"silence {', '.join(self.silence)}"] if self.silence else []) + (
            [f"cut {', '.join(self.cut)}"] if self.cut else [])
        return "; ".join(parts) or "intact"

    def check(self, spec: CircuitSpec) -> None:
        """Raise :class:`ConfigError` unless every name refers to the circuit of ``spec``."""
        for name in self.silence:
            if name not in spec.names:
                raise ConfigError(f"lesion.silence: no population {name!r}; populations: {', '.join(spec.names)}")
        keys = {p.key for p in spec.projections}
        for key in self.cut:
            pre, post = _split(key)
            if f"{pre} -> {post}" not in keys:
                raise ConfigError(f"lesion.cut: no projection {key!r} in the circuit; name an existing one "
                                  f"as \"PRE -> POST\" (see `cortexsim spec`)")


def _split(key: str) -> tuple[str, str]:
    parts = [p.strip() for p in key.split("->")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"lesion.cut: {key!r} is not a projection; write \"PRE -> POST\"")
    return parts[0], parts[1]


def silenced_units(connectome: Connectome, lesion: LesionConfig) -> np.ndarray:
    """Boolean mask of the silenced units, shape (units,)."""
    mask = np.zeros(connectome.n_units, bool)
    for pop in connectome.populations:
        if pop.name in lesion.silence:
            mask[pop.slice] = True
    return mask


def cut_synapses(connectome: Connectome, lesion: LesionConfig) -> np.ndarray:
    """Boolean matrix of the synapses removed by ``lesion.cut``, shape (post units, pre units)."""
    cut = np.zeros((connectome.n_units, connectome.n_units), bool)
    pops = {p.name: p for p in connectome.populations}
    for key in lesion.cut:
        pre, post = _split(key)
        cut[pops[post].slice, pops[pre].slice] = True
    return cut


def apply_lesion(net, lesion: LesionConfig) -> None:
    """Lesion a trained :class:`~cortexsim.rate.RateNetwork` in place (see the module docstring).

    Cut synapses lose their weight; silenced units get their rates clamped to zero
    (``net.keep``).  An empty lesion leaves the network unchanged.
    """
    if lesion.cut:
        cut = cut_synapses(net.connectome, lesion)
        net.params["w"][cut] = 0
    silenced = silenced_units(net.connectome, lesion)
    net.keep = (~silenced).astype(net.dtype) if silenced.any() else None
