"""The rate -> spiking mapping: one documented function, :func:`map_rate_to_spiking`.

The rate network (``cortexsim.rate``) obeys ``tau_i dx_i/dt = -x_i + sum_j W_ij r_j + (B u + b)_i``
with ``r = phi(x)`` and ``phi`` fitted to the Siegert rate of the ``[lif]`` neuron.  Its twin:

- each rate unit ``i`` becomes a pool of ``K`` LIF neurons (the ``[lif]`` neuron, diffusive
  noise ``sigma``), all reading the pool current ``I_i``;
- a spike of any neuron of pool ``j`` adds ``W_ij / (K tau_i)`` (mV) to ``I_i``, which
  decays with ``tau_i``.  Pool ``j`` fires ``K r_j`` spikes/s, so the mean of ``I_i`` is
  ``tau_i * sum_j W_ij K r_j / (K tau_i) + (B u + b)_i = (W r + B u + b)_i`` -- the rate
  model's ``x`` with scale factor 1; no K^2 synapses, only K per rate synapse;
- the task drive ``B u + b`` enters ``I_i`` as a current (a ``TimedArray``), so exactly the
  units that receive an input in the rate model receive it here;
- Dale signs come with ``W`` (the sign of the presynaptic unit);
- units silenced by a lesion (:mod:`cortexsim.lesion`, ``r = 0`` in the rate model) become
  pools held at ``SILENCE_MV`` with no task input: they never fire;
- one calibrated constant, ``offset`` (mV, added to every neuron's input): Euler-Maruyama
  at step ``dt`` misses threshold crossings between steps, so the simulated neuron fires
  less than the Siegert formula (about +0.4 mV at 0.1 ms); :func:`calibrate_offset` finds it
  by least squares against ``phi`` over the working range.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ..rate import RateNetwork
from ..transfer import LIFParams, Transfer
from .equations import SILENCE_MV, lif_for_class


@dataclass(frozen=True, eq=False)
class SpikingParams:
    """Everything needed to build the spiking twin (plain numbers: mV, s, Hz).

    Attributes
    ----------
    k : int
        Neurons per pool (rate unit).
    dt : float
        Simulation step (s).
    lif : LIFParams
        The neuron (``[lif]``); per-subtype overrides in :data:`~cortexsim.spiking.equations.CELL_CLASS_LIF`.
    offset_mv : float
        Calibrated input offset of every neuron (mV).
    tau : ndarray, shape (units,)
        Pool current time constant = rate unit's tau (s).
    x0 : ndarray, shape (units,)
        Pool current at each trial start = the rate model's initial state (mV).
    syn_pre, syn_post : ndarray of int64, shape (synapses,)
        Presynaptic and postsynaptic pool of every rate synapse.
    syn_weight : ndarray, shape (synapses,)
        Signed rate weight ``W_ij`` (mV/Hz).
    syn_increment_mv : ndarray, shape (synapses,)
        Jump of ``I_post`` per presynaptic spike, ``W_ij / (K tau_i)`` (mV).
    w_in : ndarray, shape (units, inputs)
        Input weights ``B`` (mV per unit input); zero on units the input does not reach.
    b : ndarray, shape (units,)
        Bias (mV).
    w_out : ndarray, shape (outputs, readout units)
        Trained readout (m/Hz).
    b_out : ndarray, shape (outputs,)
    out_idx : ndarray of int64, shape (readout units,)
        Pools read out (PT5B).
    populations : tuple of (name, subtype, cell_class, start, stop)
        Unit ranges of the populations; pool ``u`` is neurons ``u K .. u K + K - 1``.
    """

    k: int
    dt: float
    lif: LIFParams
    offset_mv: float
    tau: np.ndarray
    x0: np.ndarray
    syn_pre: np.ndarray
    syn_post: np.ndarray
    syn_weight: np.ndarray
    syn_increment_mv: np.ndarray
    w_in: np.ndarray
    b: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    out_idx: np.ndarray
    populations: tuple[tuple[str, str, str, int, int], ...] = field(default=())

    @property
    def n_units(self) -> int:
        """Number of pools (rate units)."""
        return int(self.tau.size)

    def lif_of_unit(self, unit: int) -> LIFParams:
        """LIF parameters of the neurons of pool ``unit`` (by its population's subtype)."""
        for _, subtype, _, start, stop in self.populations:
            if start <= unit < stop:
                return lif_for_class(subtype, self.lif)
        return self.lif

    def mean_current(self, rates: np.ndarray) -> np.ndarray:
        """Mean synaptic current of every pool (mV) when pool ``j`` fires ``rates[j]`` Hz per neuron.

        Each synapse delivers ``K rates[pre]`` spikes/s of size ``syn_increment_mv``, each
        decaying with ``tau[post]``: the mean is ``sum K r increment tau`` -- equal to ``W r``.
        """
        rates = np.asarray(rates, float)
        flux = self.k * rates[self.syn_pre] * self.syn_increment_mv * self.tau[self.syn_post]
        return np.bincount(self.syn_post, weights=flux, minlength=self.n_units)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Numeric fields as arrays (for writing to a run file)."""
        scalars = {"k": self.k, "dt": self.dt, "offset_mv": self.offset_mv}
        arrays = {
            name: getattr(self, name)
            for name in (
                "tau",
                "x0",
                "syn_pre",
                "syn_post",
                "syn_weight",
                "syn_increment_mv",
                "w_in",
                "b",
                "w_out",
                "b_out",
                "out_idx",
            )
        }
        return {**{k: np.asarray(val) for k, val in scalars.items()}, **arrays}

    def __repr__(self) -> str:
        return (
            f"<SpikingParams: {self.n_units} pools x K={self.k} = {self.n_units * self.k:,} LIF neurons, "
            f"{self.syn_pre.size * self.k:,} synapses, offset {self.offset_mv:+.3f} mV, dt {self.dt * 1e3:g} ms>"
        )


def map_rate_to_spiking(
    net: RateNetwork, lif: LIFParams, *, k: int = 5, dt: float = 1e-4, offset_mv: float | None = None, seed: int = 0
) -> SpikingParams:
    """Map a trained rate network to its spiking twin (see the module docstring for the formula).

    Parameters
    ----------
    net : RateNetwork
        With its (trained) parameters set; ``net.transfer`` must be the ``lif`` neuron's f-I
        curve (``lif_softplus`` or ``lif``) for the weights to carry over.
    lif : LIFParams
        The neuron ``phi`` was fitted to (the run's ``[lif]``).
    k : int
        Neurons per rate unit (1 = one-to-one, Kim et al. 2019).
    dt : float
        Simulation step (s).
    offset_mv : float, optional
        Input offset (mV); by default :func:`calibrate_offset` finds it.
    seed : int
        Seed of the calibration simulation.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k: {k} neurons per pool; use an integer >= 1")
    if dt <= 0 or dt >= net.connectome.tau.min():
        raise ValueError(f"dt: {dt} s must be positive and below the smallest tau")
    if offset_mv is None:
        offset_mv = calibrate_offset(lif, net.transfer, dt=dt, seed=seed)
    c, p = net.connectome, net.params
    tau = c.tau.astype(float)
    w = (p["w"] * net.sign[None, :]).astype(float)
    post, pre = np.nonzero(w)
    weight = w[post, pre]
    pops = tuple((pop.name, pop.spec.subtype, pop.spec.cell_class, pop.start, pop.stop) for pop in c.populations)
    x0, w_in, b = p["x0"].astype(float), p["w_in"].astype(float), p["b"].astype(float)
    if net.silenced is not None:  # silenced by a lesion: held far below threshold, no task input
        silenced = net.silenced
        x0[silenced] = b[silenced] = SILENCE_MV
        w_in[silenced] = 0.0
    return SpikingParams(
        k=int(k),
        dt=float(dt),
        lif=lif,
        offset_mv=float(offset_mv),
        tau=tau,
        x0=x0,
        syn_pre=pre.astype(np.int64),
        syn_post=post.astype(np.int64),
        syn_weight=weight,
        syn_increment_mv=weight / (k * tau[post]),
        w_in=w_in,
        b=b,
        w_out=p["w_out"].astype(float),
        b_out=p["b_out"].astype(float),
        out_idx=np.asarray(net.out_idx, np.int64),
        populations=pops,
    )


def calibrate_offset(
    lif: LIFParams,
    transfer: Transfer,
    *,
    dt: float = 1e-4,
    rate_range: tuple = (2.0, 50.0),
    seed: int = 0,
    target: str = "numpy",
) -> float:
    """Input offset (mV) that makes the simulated LIF neuron's rate follow ``transfer``.

    Measures the Brian2 neuron's f-I curve once (no offset) on a grid of inputs,
    then finds ``delta`` minimising ``sum (log f(mu + delta) - log phi(mu))^2`` over the
    inputs where ``phi`` lies in ``rate_range`` (Hz) -- a one-dimensional least squares
    (Brent) on the interpolated curve.  Cached per (lif, transfer, dt, range, seed).
    """
    a, c, s = (getattr(transfer, name, None) for name in ("gain", "threshold", "softness"))
    return _calibrate(lif, transfer.name, a, c, s, float(dt), tuple(rate_range), int(seed), target, transfer)


@functools.lru_cache(maxsize=8)
def _calibrate(lif, name, a, c, s, dt, rate_range, seed, target, transfer) -> float:
    from .network import lif_rates

    grid = np.linspace(lif.threshold - 2.0 * lif.sigma, lif.threshold + 1.5 * lif.sigma, 22)
    measured = lif_rates(grid, lif, dt=dt, neurons_per_input=100, duration=2.0, seed=seed, target=target)
    mu = grid[3:-3]
    phi = transfer(mu.copy())
    keep = (phi >= rate_range[0]) & (phi <= rate_range[1])
    if keep.sum() < 3:
        raise ValueError(f"transfer {name} has fewer than 3 grid points in {rate_range} Hz; cannot calibrate")
    log_f = np.log(np.maximum(measured, 1e-3))

    def loss(delta: float) -> float:
        return float(np.sum((np.interp(mu[keep] + delta, grid, log_f) - np.log(phi[keep])) ** 2))

    span = 3 * (grid[1] - grid[0])
    return float(optimize.minimize_scalar(loss, bounds=(-span, span), method="bounded").x)
