"""The circuit as a rate network, with hand-derived backpropagation through time.

Dynamics (Euler step ``dt``; unit ``i`` has time constant ``tau_i`` of its population)::

    tau_i dx_i/dt = -x_i + sum_j W_ij phi(x_j) + sum_k B_ik u_k + b_i + noise
    r = phi(x),   y = W_out r[output units] + b_out

(units silenced by a lesion, :mod:`cortexsim.lesion`, have ``r = 0``)

with ``x`` in mV, ``r`` in Hz, ``W`` in mV/Hz, inputs ``u`` dimensionless and
the hand position ``y`` in metres.  Discretised with ``alpha = dt / tau``::

    x[t+1] = (1 - alpha) x[t] + alpha (W r[t] + B u[t] + b) + sigma sqrt(2 alpha) xi[t]

so that ``sigma`` (``noise_std``, mV) is the stationary SD of the noise-driven
fluctuation of ``x`` (an Ornstein-Uhlenbeck process), ``xi ~ N(0, 1)``.

Dale's law holds by construction: ``W = M * sign[pre]`` with magnitudes ``M >= 0``
on the connectome's fixed sparsity mask; training changes magnitudes only and
projects them back to ``>= 0``.  Inputs enter only the units of the populations
the spec names for each input group; the readout reads only the output
populations (PT5B).

Trainable groups: ``w`` (magnitudes, shape (units, units), zero off the mask),
``w_in`` (units, inputs), ``b`` (units,), ``w_out`` (outputs, readout units),
``b_out`` (outputs,), ``x0`` (units,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._model import TimeMajorModel
from .circuit import Connectome
from .errors import ConfigError
from .tasks import TrialBatch
from .transfer import Transfer

GROUPS = ("w", "w_in", "b", "w_out", "b_out", "x0")
"""Names of the trainable parameter groups."""


@dataclass(frozen=True)
class Penalties:
    """Loss terms besides the task error (defaults favour simple dynamics; Sussillo et al. 2015).

    Attributes
    ----------
    rate_l2 : float
        Weight of the mean squared rate, per Hz^2.
    rate_cap : float
        Rates above this (Hz) are penalised by a hinge ...
    rate_cap_l2 : float
        ... of weight ``rate_cap_l2`` on the mean squared excess (per Hz^2).  Keeps
        rates inside the transfer function's fitted range.
    weight_l2 : float
        Weight of the mean squared recurrent magnitude, relative to the initial
        mean squared magnitude.
    """

    rate_l2: float = 1e-6
    rate_cap: float = 50.0
    rate_cap_l2: float = 1e-3
    weight_l2: float = 1e-4


class RateNetwork(TimeMajorModel):
    """A connectome simulated as a rate network.

    Parameters
    ----------
    connectome : Connectome
        Structure: mask, Dale signs, time constants, input and output units.
    transfer : Transfer
        phi, mV -> Hz.
    dt : float
        Euler step (s); must be smaller than every time constant.
    input_groups : tuple of str
        Circuit input group of each task input channel (e.g. ``("target", "target", "go")``).
    n_outputs : int
        Readout dimensions.
    noise_std : float
        Process noise (mV, stationary SD); used when a simulation is given an rng.
    dtype : numpy dtype
        float64 or float32.
    output_scale : float
        Typical output magnitude (m; the reach distance): the loss compares outputs
        in units of it.
    """

    def __init__(self, connectome: Connectome, transfer: Transfer, dt: float,
                 input_groups: tuple[str, ...] = ("target", "target", "go"), n_outputs: int = 2,
                 noise_std: float = 0.0, dtype: type = np.float64, output_scale: float = 0.1):
        tau = connectome.tau
        if dt >= tau.min():
            slowest = connectome.populations[int(np.argmin([p.spec.tau for p in connectome.populations]))]
            raise ConfigError(
                f"task.dt: {dt} s is not smaller than the smallest time constant "
                f"({slowest.spec.tau} s, population {slowest.name}); lower dt or raise that tau"
            )
        for group in input_groups:
            if group not in connectome.input_masks:
                raise ConfigError(f"input group {group!r} is not wired in the circuit spec; "
                                  f"spec inputs: {sorted(connectome.input_masks)}")
        if noise_std < 0:
            raise ConfigError(f"rate.noise_std: {noise_std} mV is negative; use >= 0")
        self.connectome = connectome
        self.transfer = transfer
        self.dt = float(dt)
        self.dtype = np.dtype(dtype)
        self.input_groups = tuple(input_groups)
        self.noise_std = float(noise_std)
        self.output_scale = float(output_scale)
        n = connectome.n_units
        self.mask = connectome.mask()
        self.sign = connectome.sign.astype(self.dtype)
        self.alpha = (dt / tau).astype(self.dtype)
        self.in_mask = np.stack([connectome.input_masks[g] for g in input_groups], axis=1)
        self.out_idx = np.flatnonzero(connectome.output_mask)
        if self.out_idx.size == 0:
            raise ConfigError("circuit: no output units (is the output population silenced?)")
        self.n_units, self.n_inputs, self.n_outputs = n, len(input_groups), int(n_outputs)
        self.params: dict[str, np.ndarray] = {}
        self.keep: np.ndarray | None = None
        """0 on silenced units, 1 elsewhere, shape (units,); None: nothing silenced (see cortexsim.lesion)."""
        self._buffers: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return (f"<RateNetwork: {self.n_units} units, {int(self.mask.sum()):,} synapses, "
                f"{self.n_inputs} inputs -> {self.out_idx.size} readout units -> {self.n_outputs} outputs, "
                f"phi={self.transfer.name}, dt={self.dt * 1e3:g} ms, {self.dtype}>")

    # -- parameters ------------------------------------------------------------
    def init_params(self, rng: np.random.Generator, rest_rate: float = 5.0, input_std: float = 2.0,
                    output_scale: float = 0.01) -> dict[str, np.ndarray]:
        """Initial parameters: connectome weights, every unit at a fixed point firing ``rest_rate``.

        Parameters
        ----------
        rng : numpy.random.Generator
        rest_rate : float
            Rate (Hz) of every unit at the initial fixed point; biases are set so
            that ``x = x_rest`` with ``phi(x_rest) = rest_rate`` is a fixed point.
        input_std : float
            SD of input weights (mV per unit input).
        output_scale : float
            Typical initial output (m).
        """
        c = self.connectome
        w = np.zeros((self.n_units, self.n_units))
        np.add.at(w, (c.post, c.pre), c.weight)
        x_rest = _inverse(self.transfer, rest_rate)
        r = np.full(self.n_units, rest_rate)
        n_out = self.out_idx.size
        w_out = rng.normal(0.0, output_scale / (np.sqrt(n_out) * rest_rate), (self.n_outputs, n_out))
        params = {
            "w": w,
            "w_in": rng.normal(0.0, input_std, (self.n_units, self.n_inputs)) * self.in_mask,
            "b": x_rest - (w * self.sign[None, :]) @ r,
            "w_out": w_out,
            "b_out": -w_out @ r[self.out_idx],
            "x0": np.full(self.n_units, x_rest),
        }
        self.set_params(params)
        return self.params

    def param_scales(self, rest_rate: float = 5.0) -> dict[str, float]:
        """Typical size of a meaningful change of each group, for the optimiser's step sizes.

        ``w``: RMS magnitude of the current weights; ``w_in``: RMS input weight
        (at least 1 mV); ``b``, ``x0``: 1 mV; ``w_out``: the weight change that moves
        the output by ``output_scale`` when all readout units fire ``rest_rate``
        incoherently; ``b_out``: a tenth of ``output_scale``.
        """
        w = self.params["w"][self.mask]
        w_in = self.params["w_in"][self.in_mask]
        return {
            "w": float(np.sqrt(np.mean(w.astype(float) ** 2))) if w.size else 1.0,
            "w_in": max(float(np.sqrt(np.mean(w_in.astype(float) ** 2))) if w_in.size else 0.0, 1.0),
            "b": 1.0, "x0": 1.0,
            "w_out": self.output_scale / (np.sqrt(self.out_idx.size) * rest_rate),
            "b_out": 0.1 * self.output_scale,
        }

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Install parameters (copied, cast to the network's dtype, constraints enforced)."""
        missing = set(GROUPS) - set(params)
        if missing:
            raise ValueError(f"missing parameter groups {sorted(missing)}")
        self.params = {k: np.array(params[k], dtype=self.dtype) for k in GROUPS}
        self.enforce_constraints()

    def enforce_constraints(self) -> None:
        """Project onto the constraints: magnitudes >= 0 on the mask, inputs on input units only."""
        w = self.params["w"]
        np.maximum(w, 0.0, out=w)
        w *= self.mask
        self.params["w_in"] *= self.in_mask

    def signed_weight(self) -> np.ndarray:
        """Signed recurrent matrix ``W[post, pre]`` (mV/Hz)."""
        return self.params["w"] * self.sign[None, :]

    def to_connectome(self) -> Connectome:
        """The connectome with the current (trained) magnitudes."""
        c = self.connectome
        return c.with_weight(self.params["w"][c.post, c.pre].astype(np.float64))

    # -- simulation ------------------------------------------------------------
    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
        """Process noise increments ``sigma sqrt(2 alpha) xi``, shape (time, trials, units)."""
        xi = rng.standard_normal((n_steps, n_trials, self.n_units), dtype=self.dtype)
        xi *= (self.noise_std * np.sqrt(2.0 * self.alpha)).astype(self.dtype)
        return xi

    def _forward(self, inputs: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        """Run the dynamics, filling buffers ``x`` and ``r`` of shape (time, trials, units).

        ``inputs`` has shape (time, trials, inputs); returns outputs (time, trials, outputs).
        """
        p, alpha = self.params, self.alpha
        n_steps, n_trials, _ = inputs.shape
        shape = (n_steps, n_trials, self.n_units)
        x, r, drive = self._buffer("x", shape), self._buffer("r", shape), self._buffer("drive", shape)
        tmp = self._buffer("tmp", shape[1:])
        wt_alpha = np.ascontiguousarray((self.signed_weight() * alpha[:, None]).T)
        # drive = alpha (B u + b) [+ noise], one matrix product over all steps and trials
        np.matmul(inputs.reshape(-1, self.n_inputs), (p["w_in"] * alpha[:, None]).T,
                  out=drive.reshape(-1, self.n_units))
        drive += alpha * p["b"]
        if noise is not None:
            drive += noise
        leak = (1.0 - alpha).astype(self.dtype)
        x[0] = p["x0"]
        phi = self.transfer
        keep = self.keep
        for t in range(n_steps):
            phi(x[t], out=r[t])
            if keep is not None:
                r[t] *= keep
            if t + 1 < n_steps:
                np.multiply(x[t], leak, out=tmp)
                tmp += drive[t]
                np.matmul(r[t], wt_alpha, out=x[t + 1])
                x[t + 1] += tmp
        return r[:, :, self.out_idx] @ p["w_out"].T + p["b_out"]

    def simulate(self, batch: TrialBatch, rng: np.random.Generator | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Simulate a batch of trials.

        Parameters
        ----------
        batch : TrialBatch
            Its ``dt`` must equal the network's.
        rng : numpy.random.Generator, optional
            Source of process noise; without it the run is noise-free.

        Returns
        -------
        states : ndarray, shape (trials, time, units)
            x (mV).
        rates : ndarray, shape (trials, time, units)
            r (Hz).
        outputs : ndarray, shape (trials, time, outputs)
            y (m).
        """
        inputs = self._inputs(batch)
        noise = None if rng is None or self.noise_std == 0 else self.noise(*inputs.shape[1::-1], rng)
        y = self._forward(inputs, noise)
        return (self._buffers["x"].transpose(1, 0, 2).copy(), self._buffers["r"].transpose(1, 0, 2).copy(),
                y.transpose(1, 0, 2).copy())

    # -- loss and gradients ----------------------------------------------------------
    def loss_and_grad(self, batch: TrialBatch, penalties: Penalties = Penalties(),
                      noise: np.ndarray | None = None, w_ref: float | None = None
                      ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and its exact gradient for every trainable group (BPTT).

        Loss = sum(mask (y - y*)^2) / (sum(mask) d^2) + rate_l2 mean(r^2)
        + rate_cap_l2 mean(max(r - cap, 0)^2) + weight_l2 mean_syn(w^2) / w_ref^2,
        where ``d`` is :attr:`output_scale` (positions are compared in units of
        the reach) and ``w_ref`` the reference magnitude.

        Parameters
        ----------
        batch : TrialBatch
        penalties : Penalties
        noise : ndarray, shape (time, trials, units), optional
            Process-noise increments (see :meth:`noise`); fixed, so the gradient is exact.
        w_ref : float, optional
            Reference magnitude for the weight penalty (default: current RMS magnitude).

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Same keys and shapes as :attr:`params`.
        stats : dict of str to float
            ``task_loss``, ``r2``, ``mean_rate``, ``max_rate``.
        """
        p, alpha, phi = self.params, self.alpha, self.transfer
        u = self._inputs(batch)
        y = self._forward(u, noise)
        x, r = self._buffers["x"], self._buffers["r"]
        n_steps, n_trials, n = x.shape
        target = batch.targets.transpose(1, 0, 2).astype(self.dtype)
        mask = batch.mask.transpose(1, 0, 2).astype(self.dtype)
        scale = self.output_scale**2
        err = (y - target) * mask
        count = max(float(mask.sum()), 1.0)
        task = float(np.sum(err**2)) / (count * scale)
        dy = (2.0 / (count * scale)) * err

        # dL/dr from the readout and the rate penalties, shape (time, trials, units)
        g = self._buffer("g", x.shape)
        np.multiply(r, 2.0 * penalties.rate_l2 / r.size, out=g)
        over = np.maximum(r - penalties.rate_cap, 0.0)
        g += (2.0 * penalties.rate_cap_l2 / r.size) * over
        g[:, :, self.out_idx] += dy @ p["w_out"]
        rate_loss = penalties.rate_l2 * float(np.mean(r * r)) + penalties.rate_cap_l2 * float(np.mean(over**2))

        # backward through time; g[t] is replaced by dL/dx[t]
        dphi = phi.derivative(x, out=self._buffer("dphi", x.shape))
        if self.keep is not None:
            dphi *= self.keep  # silenced units: r = 0 whatever x is
        w_alpha = np.ascontiguousarray(self.signed_weight() * alpha[:, None])
        leak = (1.0 - alpha).astype(self.dtype)
        tmp = self._buffer("tmp", x.shape[1:])
        for t in range(n_steps - 1, -1, -1):
            if t + 1 < n_steps:
                g[t] += g[t + 1] @ w_alpha
                g[t] *= dphi[t]
                np.multiply(g[t + 1], leak, out=tmp)
                g[t] += tmp
            else:
                g[t] *= dphi[t]

        gx = g[1:].reshape(-1, n)  # dL/dx[t+1], paired with r[t] and u[t]
        w_ref = float(np.sqrt(np.sum(p["w"] ** 2) / max(self.mask.sum(), 1))) if w_ref is None else w_ref
        n_syn = max(int(self.mask.sum()), 1)
        grads = {
            "w": ((gx.T @ r[:-1].reshape(-1, n)) * alpha[:, None]) * self.sign[None, :] * self.mask
                 + (2.0 * penalties.weight_l2 / (n_syn * w_ref**2)) * p["w"],
            "w_in": ((gx.T @ u[:-1].reshape(-1, self.n_inputs)) * alpha[:, None]) * self.in_mask,
            "b": gx.sum(0) * alpha,
            "w_out": dy.reshape(-1, self.n_outputs).T @ r[:, :, self.out_idx].reshape(-1, self.out_idx.size),
            "b_out": dy.sum((0, 1)),
            "x0": g[0].sum(0),
        }
        grads = {k: g.astype(self.dtype, copy=False) for k, g in grads.items()}
        weight_loss = penalties.weight_l2 * float(np.sum(p["w"] ** 2)) / (n_syn * w_ref**2)
        ss_tot = float(np.sum(mask * (target - _masked_mean(target, mask)) ** 2))
        stats = {"task_loss": task, "r2": 1.0 - float(np.sum(err**2)) / max(ss_tot, 1e-30),
                 "mean_rate": float(r.mean()), "max_rate": float(r.max())}
        return task + rate_loss + weight_loss, grads, stats


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over all but the last axis, counting only masked entries, shape (outputs,)."""
    axes = tuple(range(values.ndim - 1))
    return np.sum(values * mask, axis=axes) / np.maximum(np.sum(mask, axis=axes), 1)


def _inverse(transfer: Transfer, rate: float) -> float:
    """Input (mV) at which ``transfer`` gives ``rate`` (Hz), by bisection."""
    lo, hi = -100.0, 200.0
    if not transfer(np.array([lo]))[0] < rate < transfer(np.array([hi]))[0]:
        raise ConfigError(f"the transfer function {transfer.name} never reaches {rate} Hz")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if transfer(np.array([mid]))[0] < rate else (lo, mid)
    return 0.5 * (lo + hi)
