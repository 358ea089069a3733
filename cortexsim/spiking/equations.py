"""The spiking model as Brian2 equation strings (voltages relative to rest).

**Neurons** (one string for every cell class; the parameters are per-neuron constants,
so classes may differ -- see :data:`CELL_CLASS_LIF`)::

    dv/dt = (-v + I_pool + offset) / tau_m + sigma sqrt(1 / tau_m) xi      (unless refractory)
    spike when v > theta;  then v = v_reset and v is clamped for t_ref

``xi`` is Gaussian white noise (Brian2 units s^-1/2).  ``sigma`` is in the convention of
the Siegert formula :func:`cortexsim.transfer.siegert_rate` (Brunel 2000:
``tau dv = (mu - v) dt + sigma sqrt(tau) dW``), so the free membrane potential
fluctuates with stationary SD ``sigma / sqrt(2)`` (4.2 mV for sigma = 6 mV) -- with
``sqrt(2 / tau_m)`` (SD = sigma) the neuron fires up to 2x faster than the formula
the rate transfer was fitted to.  The firing rate for a mean input ``mu`` is then
the Siegert rate, up to the Euler-Maruyama discretisation, which ``offset`` compensates.

**Pools** (one per rate unit ``i``, time constant ``tau`` = the rate unit's)::

    dI/dt = (-I + I_ext(t, i)) / tau,     I += W_ij / (K tau_i)  on each spike of pool j

``I_ext`` is the task drive ``B u + b`` (mV) of the rate unit; every neuron of pool
``i`` reads ``I`` through a linked variable ``I_pool``.  The mean of ``I`` obeys the
rate equation ``tau dI/dt = -I + W r + B u + b``, so ``I`` is the rate unit's ``x``.
"""

from __future__ import annotations

from ..transfer import LIFParams

SILENCE_MV = -100.0
"""Hyperpolarising drive (mV) that keeps a silenced spiking pool (or an opsin-silenced neuron) below threshold."""

NEURON_EQUATIONS = """
dv/dt = (-v + I_pool + offset) / tau_m + sigma * sqrt(1 / tau_m) * xi : volt (unless refractory)
I_pool : volt (linked)
tau_m : second (constant)
theta : volt (constant)
v_reset : volt (constant)
t_ref : second (constant)
sigma : volt (constant)
offset : volt (constant)
"""
"""LIF neuron with diffusive background noise; read ``I_pool`` from its pool."""

NEURON_EQUATIONS_LIT = (
    NEURON_EQUATIONS.replace("offset : volt (constant)", "offset : volt")
    + """
offset_rest : volt (constant)
opsin : volt (constant)
trial : integer (constant)
"""
)
"""The neuron under a stimulation protocol: ``offset`` becomes ``offset_rest`` plus the light's current.

An expressing neuron has ``opsin`` = the protocol's drive (mV; :data:`~cortexsim.spiking.mapping.SILENCE_MV`
for silence), every other neuron 0; at every task step :data:`NEURON_LIGHT` sets ``offset``, so a
neuron that does not express keeps ``offset = offset_rest`` exactly, and the membrane equation is
the same string as :data:`NEURON_EQUATIONS`'s."""

NEURON_LIGHT = "offset = offset_rest + opsin * light(t, trial)"
"""Run at every task step: the light (a ``TimedArray`` over task steps and trials, in [0, 1]) on the opsin."""

NEURON_THRESHOLD = "v > theta"
NEURON_RESET = "v = v_reset"
NEURON_REFRACTORY = "t_ref"

POOL_EQUATIONS = """
dI/dt = (-I + I_ext(t, i)) / tau : volt
tau : second (constant)
x0 : volt (constant)
"""
"""Pool current: the rate unit's state ``x`` (mV), driven by the task and by spikes."""

POOL_TRIAL_START = "I = start(t) * x0 + (1 - start(t)) * I"
"""Run at every task step: at the first step of a trial, put ``I`` at the rate model's ``x0``."""

LOOP_POOL_EQUATIONS = """
dI/dt = (-I + I_ext(t, i) + I_fb) / tau : volt
I_fb : volt
tau : second (constant)
x0 : volt (constant)
"""
"""Pool current in closed loop (trials side by side): ``I_ext`` the task drive, ``I_fb`` the feedback
drive, set by the loop at every task step."""

READOUT_EQUATIONS = """
dr/dt = -r / tau_r : Hz
tau_r : second (constant)
"""
"""One readout filter per readout pool and trial: its neurons' spikes through ``exp(-s / tau_r) / tau_r``."""

READOUT_ON_PRE = "r_post += inc"
"""A readout pool's spike adds ``1 / (K tau_r)`` to its filter, so ``r`` is the pool's rate per neuron (Hz)."""

SYNAPSE_MODEL = "w : volt (constant)"
SYNAPSE_ON_PRE = "I_post += w"
"""Neuron -> pool synapse: a spike of a neuron in pool j adds ``W_ij / (K tau_i)`` to pool i."""

CELL_CLASS_LIF: dict[str, LIFParams | None] = {
    "IT": None,
    "PT": None,
    "CT": None,
    "PV": None,
    "SST": None,
    "VIP": None,
    "NGF": None,
}
"""Per-subtype neuron parameters (pyramidal IT/PT/CT, PV, SST, VIP, L1 NGF); ``None`` means the run's ``[lif]`` neuron.

For the twin every class uses the ``[lif]`` neuron the rate transfer function was
fitted to (otherwise the weights would not carry over by formula); a class given
its own :class:`~cortexsim.transfer.LIFParams` here (e.g. ANATOMY.md's faster PV
membrane) gets a different f-I curve, and the mapping then calibrates only the
shared offset.
"""


def lif_for_class(subtype: str, default: LIFParams) -> LIFParams:
    """The LIF parameters of cells of ``subtype`` (``default`` unless :data:`CELL_CLASS_LIF` overrides)."""
    return CELL_CLASS_LIF.get(subtype) or default
