"""The spiking twin: a trained rate network run as pools of LIF neurons in Brian2.

This is the only package of cortexsim that imports brian2 (lazily, inside the
functions that simulate).  Modules:

- :mod:`~cortexsim.spiking.equations` -- the LIF neuron and the pool current, as Brian2 strings;
- :mod:`~cortexsim.spiking.mapping` -- rate parameters -> :class:`SpikingParams` (one function);
- :mod:`~cortexsim.spiking.network` -- builds and runs the Brian2 network, returns spikes;
- :mod:`~cortexsim.spiking.decode` -- spikes -> rates, decoded reaches and fidelity metrics;
- :mod:`~cortexsim.spiking.twin` -- :func:`run_twin`, everything above for a trained network (no file I/O);
- :mod:`~cortexsim.spiking.arm` -- the twin of a network that drives the six-muscle arm, in closed loop.
"""

from .mapping import SpikingParams, calibrate_offset, map_rate_to_spiking
from .twin import TwinResult, run_twin

__all__ = ["SpikingParams", "TwinResult", "calibrate_offset", "map_rate_to_spiking", "run_twin"]
