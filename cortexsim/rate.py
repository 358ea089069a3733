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

Speed (see :mod:`cortexsim._kernels` and ``benchmarks/bptt.py``): the recurrent
product runs on the synapses only when the mask is sparse (:func:`kernel_path`),
the weight gradient is a few large GEMMs shared by :func:`gradient_threads`
threads while the backward pass runs, and BLAS should run single-threaded around
training (:func:`training_threads`).  Results are bit-identical for any number of
gradient threads; the path and the BLAS thread count are fixed functions of size,
density and dtype, never of load.  (A multi-threaded OpenBLAS may split a GEMM's inner
dimension -- 0.3.30's Haswell kernels do -- so *changing* the BLAS thread count may change
the last bits; ``tests/test_kernels.py`` checks they agree to rounding.)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import scipy.sparse

from . import _kernels
from ._kernels import gradient_threads, kernel_path, training_threads
from ._model import TimeMajorModel
from .circuit import Connectome
from .errors import ConfigError
from .loss import DEFAULT_PENALTIES, ActivityLoss, Penalties, task_error
from .model import Jacobian, Step, Stimulus, Trajectory, constant_input
from .tasks import TrialBatch
from .transfer import Softplus, Transfer

GROUPS = ("w", "w_in", "b", "w_out", "b_out", "x0")
"""Names of the trainable parameter groups."""


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
    kernel : str
        Recurrent-product kernel: ``"auto"`` (default: :func:`kernel_path` of size,
        density and dtype), ``"sparse"`` or ``"dense"``.  Every choice computes the
        same function up to float rounding.
    """

    body = None
    """The body it drives: none, its readout is the hand (:class:`~cortexsim.closed_loop.ArmRateNetwork` drives one)."""

    def __init__(
        self,
        connectome: Connectome,
        transfer: Transfer,
        dt: float,
        input_groups: tuple[str, ...] = ("target", "target", "go"),
        n_outputs: int = 2,
        noise_std: float = 0.0,
        dtype: type = np.float64,
        output_scale: float = 0.1,
        kernel: str = "auto",
    ):
        tau = connectome.tau
        if dt >= tau.min():
            slowest = connectome.populations[int(np.argmin([p.spec.tau for p in connectome.populations]))]
            raise ConfigError(
                f"task.dt: {dt} s is not smaller than the smallest time constant "
                f"({slowest.spec.tau} s, population {slowest.name}); lower dt or raise that tau"
            )
        for group in input_groups:
            if group not in connectome.input_masks:
                raise ConfigError(
                    f"input group {group!r} is not wired in the circuit spec; "
                    f"spec inputs: {sorted(connectome.input_masks)}"
                )
        if noise_std < 0:
            raise ConfigError(f"rate.noise_std: {noise_std} mV is negative; use >= 0")
        if kernel not in ("auto", *_kernels.PATHS):
            raise ConfigError(f"rate kernel {kernel!r}; choose from {('auto', *_kernels.PATHS)}")
        self.kernel = kernel
        """Requested recurrent-product kernel (``"auto"``, ``"sparse"`` or ``"dense"``); see :attr:`kernel_path`."""
        self.threads: int | None = None
        """Weight-gradient threads; None: :func:`gradient_threads` of size, density and dtype."""
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
        self.silenced: np.ndarray | None = None
        """True on units silenced by a lesion (their rate is 0), shape (units,); None: none (see :meth:`lesioned`)."""
        self._keep: np.ndarray | None = None  # 0 on silenced units, 1 elsewhere, in the network's dtype
        self._buffers: dict[str, np.ndarray] = {}
        self._rec: _kernels.Recurrence | None = None

    def __repr__(self) -> str:
        return (
            f"<RateNetwork: {self.n_units} units, {int(self.mask.sum()):,} synapses, "
            f"{self.n_inputs} inputs -> {self.out_idx.size} readout units -> {self.n_outputs} outputs, "
            f"phi={self.transfer.name}, dt={self.dt * 1e3:g} ms, {self.dtype}>"
        )

    # -- parameters ------------------------------------------------------------
    def init_params(
        self, rng: np.random.Generator, rest_rate: float = 5.0, input_std: float = 2.0, output_scale: float = 0.01
    ) -> dict[str, np.ndarray]:
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
            "b": 1.0,
            "x0": 1.0,
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

    def lesioned(self, silenced: np.ndarray | None = None, cut: np.ndarray | None = None) -> RateNetwork:
        """A lesioned copy of this network; this one is left unchanged.

        Parameters
        ----------
        silenced : ndarray of bool, shape (units,), optional
            Units whose rate is clamped to 0 Hz (added to any already silenced).
        cut : ndarray of bool, shape (post units, pre units), optional
            Synapses whose weight is set to zero.

        Returns
        -------
        RateNetwork
            Same structure, transfer and settings, with its own copy of the parameters.
        """
        new = copy.copy(self)
        new.params = {k: val.copy() for k, val in self.params.items()}
        new._buffers, new._rec = {}, None
        if cut is not None and np.any(cut):
            new.params["w"][np.asarray(cut, bool)] = 0
        mask = np.zeros(self.n_units, bool) if self.silenced is None else self.silenced.copy()
        if silenced is not None:
            mask |= np.asarray(silenced, bool)
        new.silenced = mask if mask.any() else None
        new._keep = (~mask).astype(self.dtype) if mask.any() else None
        return new

    def to_connectome(self) -> Connectome:
        """The connectome with the current (trained) magnitudes."""
        c = self.connectome
        return c.with_weight(self.params["w"][c.post, c.pre].astype(np.float64))

    # -- simulation ------------------------------------------------------------
    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
        """Process noise increments ``sigma sqrt(2 alpha) xi``, shape (time, trials, units).

        The draws fill memory in (time, units, trials) order, the layout the
        simulation works in; the array returned is that memory seen as (time,
        trials, units) (a transposed view), so no copy is needed to use it.
        """
        xi = rng.standard_normal((n_steps, self.n_units, n_trials), dtype=self.dtype)
        xi *= (self.noise_std * np.sqrt(2.0 * self.alpha)).astype(self.dtype)[:, None]
        return xi.transpose(0, 2, 1)

    def _forward(
        self,
        inputs: np.ndarray,
        noise: np.ndarray | None,
        store_states: bool = True,
        rate_stats: np.ndarray | None = None,
        step: Callable[[int, np.ndarray], np.ndarray | None] | None = None,
        stimulus: Stimulus | None = None,
    ) -> np.ndarray:
        """Run the dynamics, filling the unit-major buffer ``r`` (and ``x``) of shape (units, time, trials).

        Parameters
        ----------
        inputs : ndarray, shape (time, trials, inputs)
        noise : ndarray, shape (time, trials, units), optional
            Process-noise increments (mV); fastest when its memory is (time, units,
            trials), as :meth:`noise` makes it.
        store_states : bool
            Also keep x (mV) in the buffer ``x``; the rates r (Hz) are always kept.
        rate_stats : ndarray, shape (time, 3), optional
            Filled with the sum, sum of squares and maximum of r over units and
            trials at every step.
        step : callable, optional
            ``step(t, r[t])`` is called once r[t] (units, trials) is known and may return an extra
            drive (units, trials; mV) to add to x[t+1]: how a closed loop
            (:mod:`cortexsim.closed_loop`) reads its output and feeds back what the arm senses.
        stimulus : Stimulus, optional
            Optogenetic-style stimulation (:class:`cortexsim.model.Stimulus`): at a lit step ``t`` its
            drive (mV) adds ``alpha`` times itself to x[t+1], or silence multiplies r[t] by its keep factor.

        Returns
        -------
        ndarray, shape (time, trials, outputs)
            y (m).

        Each step works on contiguous (units, trials) arrays, so that the recurrent
        product is one CSR multi-vector product (or one GEMM on the dense path) that
        accumulates straight into ``x[t+1]``; the (units, time, trials) layout makes
        ``r`` over all steps a (units, time * trials) matrix for the readout and the
        weight gradient without any transpose.
        """
        p, alpha = self.params, self.alpha
        n_steps, n_trials, _ = inputs.shape
        n = self.n_units
        rec = self._recurrence()
        rec.set_weights(p["w"])
        rates = self._buffer("r", (n, n_steps, n_trials))
        states = self._buffer("x", (n, n_steps, n_trials)) if store_states else None
        # drive[t] = alpha (B u[t] + b), shape (time, units, trials); the noise is added step by step
        drive = self._buffer("drive", (n_steps, n, n_trials))
        np.matmul(p["w_in"] * alpha[:, None], inputs.transpose(0, 2, 1), out=drive)
        drive += (alpha * p["b"])[:, None]
        if noise is not None:
            if noise.shape != (n_steps, n_trials, n):
                raise ValueError(f"noise has shape {noise.shape}, expected {(n_steps, n_trials, n)}")
            noise = noise.transpose(0, 2, 1)  # (time, units, trials); contiguous from self.noise()
        leak = (1.0 - alpha).astype(self.dtype)[:, None]
        x_now, x_next = self._buffer("x_now", (n, n_trials)), self._buffer("x_next", (n, n_trials))
        r_now, tmp = self._buffer("r_now", (n, n_trials)), self._buffer("tmp", (n, n_trials))
        x_now[...] = p["x0"][:, None]
        phi = self.transfer
        fast = (phi.gain, phi.threshold, phi.softness) if isinstance(phi, Softplus) else None
        keep = None if self._keep is None else self._keep[:, None]
        if stimulus is not None and stimulus.empty:
            stimulus = None
        if stimulus is not None and stimulus.profile.shape != (n_steps, n_trials):
            raise ValueError(f"stimulus profile {stimulus.profile.shape} does not match {(n_steps, n_trials)}")
        alpha_col = alpha[:, None].astype(self.dtype)
        with np.errstate(over="ignore"):
            for t in range(n_steps):
                if fast is not None:
                    top = _kernels.softplus(x_now, r_now, *fast)
                    if not math.isfinite(top):  # exp overflowed (or x is not finite): the stable form
                        phi(x_now, out=r_now)
                else:
                    phi(x_now, out=r_now)
                if keep is not None:
                    r_now *= keep
                lit = stimulus is not None and stimulus.lit(t)
                if lit and stimulus.silence:
                    r_now *= stimulus.keep(t, self.dtype)
                rates[:, t, :] = r_now
                if states is not None:
                    states[:, t, :] = x_now
                if rate_stats is not None:
                    rate_stats[t, 0] = r_now.sum()
                    rate_stats[t, 2] = top if fast is not None and keep is None and math.isfinite(top) else r_now.max()
                    np.multiply(r_now, r_now, out=tmp)
                    rate_stats[t, 1] = tmp.sum()
                extra = None if step is None else step(t, r_now)
                if t + 1 < n_steps:
                    np.multiply(x_now, leak, out=x_next)
                    x_next += drive[t]
                    if extra is not None:
                        x_next += extra
                    if lit and not stimulus.silence:
                        x_next += alpha_col * stimulus.current(t, self.dtype)
                    if noise is not None:
                        x_next += noise[t]
                    rec.forward(r_now, x_next, tmp)
                    x_now, x_next = x_next, x_now
        y = p["w_out"] @ self._readout_rates(rates).reshape(self.out_idx.size, -1)
        y = y.reshape(self.n_outputs, n_steps, n_trials).transpose(1, 2, 0)
        return np.ascontiguousarray(y + p["b_out"])

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> Trajectory:
        """Simulate a batch of trials.

        Parameters
        ----------
        batch : TrialBatch
            Its ``dt`` must equal the network's.
        rng : numpy.random.Generator, optional
            Source of process noise; without it the run is noise-free.
        stimulus : Stimulus, optional
            Optogenetic-style stimulation over the network's units (:mod:`cortexsim.stimulation`).

        Returns
        -------
        Trajectory
            ``state`` x (mV), ``activity`` the rates r (Hz), ``outputs`` y (m); each (trials, time, ...).
        """
        inputs = self._inputs(batch)
        noise = None if rng is None or self.noise_std == 0 else self.noise(*inputs.shape[1::-1], rng)
        y = self._forward(inputs, noise, stimulus=stimulus)
        return Trajectory(
            state=_trials_first(self._buffers["x"]),
            activity=_trials_first(self._buffers["r"]),
            outputs=y.transpose(1, 0, 2).copy(),
        )

    # -- the model's own map (what dynamics analyses ask for) ---------------------------------
    def step_map(self, u: np.ndarray) -> tuple[Step, Jacobian]:
        """The noise-free Euler map under constant input ``u``, and its Jacobian.

        ``F(x) = (1 - alpha) x + alpha (W phi(x) + B u + b)`` with ``alpha = dt / tau``
        per unit, ``W`` the signed recurrent matrix (mV/Hz), ``B`` the input
        weights, ``b`` the bias and ``phi`` the transfer (mV -> Hz); silenced units
        (a lesion) have ``phi = 0``. Its Jacobian is
        ``J = diag(1 - alpha) + diag(alpha) W diag(phi'(x))``.  The parameters are copied, so
        later training does not change the map.  Products with ``W`` run on its synapses (scipy
        CSR) when at most 20 % of its entries are nonzero (the default circuit: 4 %).

        Parameters
        ----------
        u : ndarray, shape (inputs,)
            The constant input (dimensionless, the task's channels and any feedback channels).

        Returns
        -------
        step : callable
            States x (n, units) in mV -> next states (n, units).
        jacobian : Jacobian
            Full (n, units, units) and matrix-free products.
        """
        u = constant_input(u, int(self.n_inputs))
        p = self.params
        W = np.asarray(p["w"], float) * np.asarray(self.sign, float)[None, :]
        alpha = np.asarray(self.alpha, float)
        drive = np.asarray(p["w_in"], float) @ u + np.asarray(p["b"], float)
        keep = np.ones(W.shape[0]) if self.silenced is None else (~self.silenced).astype(float)
        phi = self.transfer
        leak, c = 1.0 - alpha, alpha * drive
        times_wt, times_w = _products(W)

        def step(X: np.ndarray) -> np.ndarray:
            r = phi(np.asarray(X, float)) * keep
            return leak * X + alpha * times_wt(r) + c

        def slope(X: np.ndarray) -> np.ndarray:
            return phi.derivative(np.asarray(X, float)) * keep

        def full(X: np.ndarray) -> np.ndarray:
            J = (alpha[:, None] * W)[None] * slope(X)[:, None, :]
            J[:, np.arange(W.shape[0]), np.arange(W.shape[0])] += leak
            return J

        def linearize(X: np.ndarray):
            s = slope(X)
            return (lambda V: leak * V + alpha * times_wt(s * V), lambda V: leak * V + s * times_w(alpha * V))

        return step, Jacobian(full, linearize)

    def map_states(self, trajectory: Trajectory) -> np.ndarray:
        """The circuit's x along ``trajectory`` (trials, time, units): :meth:`step_map`'s coordinates."""
        return np.asarray(trajectory.state, float)

    def map_layout(self) -> dict[str, slice]:
        """The map's state is the circuit: ``{"circuit": slice(0, units)}``."""
        return {"circuit": slice(0, self.n_units)}

    def populations(self) -> list[tuple[str, slice]]:
        """Its populations: (name, unit slice) in the connectome's order."""
        return [(p.name, p.slice) for p in self.connectome.populations]

    def cell_types(self) -> list[tuple[str, str, str, slice]]:
        """Its populations as (name, layer, cell type, unit slice): what a stimulation protocol targets."""
        return [(p.name, p.spec.layer, p.spec.subtype, p.slice) for p in self.connectome.populations]

    def readout_matrix(self) -> np.ndarray:
        """The linear map from the activity (rates, Hz) to the readout's logits, shape (outputs, units).

        Zero outside the readout population: its row space is the output-potent space of the whole
        circuit's activity (Kaufman et al. 2014).
        """
        m = np.zeros((self.n_outputs, self.n_units))
        m[:, self.out_idx] = self.params["w_out"]
        return m

    # -- loss and gradients ----------------------------------------------------------
    def loss_and_grad(
        self,
        batch: TrialBatch,
        penalties: Penalties = DEFAULT_PENALTIES,
        noise: np.ndarray | None = None,
        w_ref: float | None = None,
        extra: ActivityLoss | None = None,
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and its exact gradient for every trainable group (BPTT).

        Loss = sum(mask (y - y*)^2) / (sum(mask) d^2) + rate_l2 mean(r^2)
        + rate_cap_l2 mean(max(r - cap, 0)^2) + weight_l2 mean_syn(w^2) / w_ref^2
        (+ ``extra(r)``), where ``d`` is :attr:`output_scale` (positions are compared in units of
        the reach) and ``w_ref`` the reference magnitude.

        Parameters
        ----------
        batch : TrialBatch
        penalties : Penalties
        noise : ndarray, shape (time, trials, units), optional
            Process-noise increments (see :meth:`noise`); fixed, so the gradient is exact.
        w_ref : float, optional
            Reference magnitude for the weight penalty (default: current RMS magnitude).
        extra : ActivityLoss, optional
            One more term on the rates (:class:`cortexsim.loss.ActivityLoss`, e.g. the neural term of
            a fit); its loss is added and its ``dL/dr`` joins the backward pass.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Same keys and shapes as :attr:`params` (new arrays, not views of work buffers).
        stats : dict of str to float
            ``task_loss``, ``r2``, ``mean_rate``, ``max_rate`` (and the extra term's stats).

        Notes
        -----
        The recurrent product runs on the path of :attr:`kernel_path`, the weight
        gradient on :attr:`gradient_threads` threads; every sum is in an order fixed
        by the shapes alone, so results are bit-identical from run to run and for any
        number of gradient threads at a given BLAS thread count (``tests/test_kernels.py``).
        For softplus transfers ``phi'(x) = a (1 - exp(-r / (a s)))`` is computed from
        the stored rate (an identity of the softplus; 0 where a unit is silenced), so
        ``x`` is not stored.
        """
        p, phi = self.params, self.transfer
        u = self._inputs(batch)
        softplus = isinstance(phi, Softplus)
        n_steps = u.shape[0]
        rate_stats = np.empty((n_steps, 3), np.float64)
        y = self._forward(u, noise, store_states=not softplus, rate_stats=rate_stats)
        rates = self._buffers["r"]
        states = None if softplus else self._buffers["x"]
        n, _, n_trials = rates.shape
        target = batch.targets.transpose(1, 0, 2).astype(self.dtype)
        mask = batch.mask.transpose(1, 0, 2).astype(self.dtype)
        error = task_error(y, target, mask, self.output_scale)
        task, dy = error.loss, error.grad
        dy_t = np.ascontiguousarray(dy.transpose(2, 0, 1)).reshape(self.n_outputs, -1)  # (outputs, T B)
        # dL/dr of the readout, shape (readout units, time, trials)
        g_out = (p["w_out"].T @ dy_t).reshape(-1, n_steps, n_trials)
        term = None if extra is None else extra(rates.transpose(1, 2, 0), batch)

        grads, (rate_loss, weight_loss), stats = self._backprop(
            u, states, rate_stats, g_out, penalties, w_ref, None if term is None else term.grad
        )
        grads["w_out"] = (dy_t @ self._readout_rates(rates).reshape(self.out_idx.size, -1).T).astype(self.dtype)
        grads["b_out"] = dy.sum((0, 1)).astype(self.dtype)
        stats = {"task_loss": task, "r2": error.r2, **stats, **({} if term is None else term.stats)}
        total = task + rate_loss + weight_loss + (0.0 if term is None else term.loss)
        return total, {k: grads[k] for k in GROUPS}, stats

    def _backprop(
        self,
        inputs: np.ndarray,
        states: np.ndarray | None,
        rate_stats: np.ndarray,
        g_out: np.ndarray | Callable[[int, np.ndarray | None], np.ndarray],
        penalties: Penalties,
        w_ref: float | None,
        g_rates: np.ndarray | None = None,
    ) -> tuple[dict[str, np.ndarray], tuple[float, float], dict[str, float]]:
        """After :meth:`_forward`: backpropagation through time and the gradients of ``w``, ``w_in``, ``b``, ``x0``.

        The weight gradient is computed in chunks alongside the backward pass (:meth:`_backward`).

        Parameters
        ----------
        inputs : ndarray, shape (time, trials, inputs)
            Every input channel as it entered (a closed loop's feedback included).
        states : ndarray, shape (units, time, trials), optional
            x, unless the transfer is a softplus (phi' from r).
        rate_stats : ndarray, shape (time, 3)
            From :meth:`_forward`.
        g_out : ndarray or callable
            The readout's dL/dr (see :meth:`_backward`).
        penalties : Penalties
        w_ref : float, optional
        g_rates : ndarray, shape (time, trials, units), optional
            dL/dr of an extra term on every unit's rate (:class:`cortexsim.loss.ActivityTerm`).

        Returns
        -------
        grads : dict
            ``w``, ``w_in``, ``b``, ``x0``.
        penalties : (float, float)
            The rate and the weight penalty's shares of the loss.
        stats : dict
            ``mean_rate``, ``max_rate``.
        """
        alpha, rec, n = self.alpha, self._rec, self.n_units
        rates = self._buffers["r"]
        # backward through time (gx[:, t] = dL/dx[t]), the weight gradient in chunks alongside
        gx = self._buffer("g", rates.shape)
        dw = _kernels.WeightGradient(rec, gx, rates, self.gradient_threads)
        try:
            sum_over2 = self._backward(rates, states, rate_stats, g_out, penalties, gx, dw, g_rates)
        finally:
            dw.close()
        dw_syn = dw.result()  # sum_t dL/dx[t+1] r[t]^T at the synapses, (post, pre) order
        gx1 = gx[:, 1:, :].reshape(n, -1)  # dL/dx[t+1], paired with r[t] and u[t]; (units, (T-1) B)
        w_vals = rec.values
        n_syn = max(rec.n_synapses, 1)
        sum_w2 = float(np.sum(w_vals.astype(np.float64) ** 2))
        w_ref = float(np.sqrt(sum_w2 / n_syn)) if w_ref is None else w_ref
        c_weight = 2.0 * penalties.weight_l2 / (n_syn * w_ref**2)
        grad_w = np.zeros((n, n), self.dtype)
        grad_w.reshape(-1)[rec.flat] = dw_syn * rec.coef + self.dtype.type(c_weight) * w_vals
        u0 = inputs[:-1].reshape(-1, self.n_inputs)
        grads = {
            "w": grad_w,
            "w_in": ((gx1 @ u0) * alpha[:, None]) * self.in_mask,
            "b": gx1.sum(axis=1) * alpha,
            "x0": gx[:, 0, :].sum(axis=1),
        }
        grads = {k: g.astype(self.dtype, copy=False) for k, g in grads.items()}
        size = gx.size
        sum_r, sum_r2 = (float(v) for v in rate_stats[:, :2].sum(axis=0))
        rate_loss = (penalties.rate_l2 * sum_r2 + penalties.rate_cap_l2 * sum_over2) / size
        weight_loss = penalties.weight_l2 * sum_w2 / (n_syn * w_ref**2)
        stats = {"mean_rate": sum_r / size, "max_rate": float(rate_stats[:, 2].max())}
        return grads, (rate_loss, weight_loss), stats

    def _backward(
        self,
        rates: np.ndarray,
        states: np.ndarray | None,
        rate_stats: np.ndarray,
        g_out: np.ndarray | Callable[[int, np.ndarray | None], np.ndarray],
        penalties: Penalties,
        gx: np.ndarray,
        dw: _kernels.WeightGradient,
        g_rates: np.ndarray | None = None,
    ) -> float:
        """Fill ``gx[:, t] = dL/dx[t]``, latest step first; returns ``sum(max(r - cap, 0)^2)``.

        dL/dx[t] = (dL/dr[t] + W_alpha^T dL/dx[t+1]) phi'(x[t]) + (1 - alpha) dL/dx[t+1],
        with dL/dr[t] from the rate penalties and the readout: ``g_out``, (readout units, time,
        trials), or a function ``g_out(t, dL/dx[t+1])`` (None at the last step) that returns
        step ``t``'s (readout units, trials) -- the closed loop, whose readout gradient at ``t``
        depends on later steps through the arm (:mod:`cortexsim.closed_loop`).  ``states`` is
        None for softplus transfers (phi' from r).  ``g_rates`` (time, trials, units), when given,
        adds an extra term's dL/dr on every unit.
        """
        phi, rec = self.transfer, self._rec
        n, n_steps, n_trials = rates.shape
        size = rates.size
        c_rate = self.dtype.type(2.0 * penalties.rate_l2 / size)
        c_cap = self.dtype.type(2.0 * penalties.rate_cap_l2 / size)
        cap = penalties.rate_cap
        leak = (1.0 - self.alpha).astype(self.dtype)[:, None]
        keep = None if self._keep is None else self._keep[:, None]
        out_rows = self._out_rows
        g_now, g_next = self._buffer("g_now", (n, n_trials)), self._buffer("g_next", (n, n_trials))
        r_t, tmp, tmp2 = (self._buffer(k, (n, n_trials)) for k in ("r_now", "tmp", "tmp2"))
        if states is None:
            c_slope = self.dtype.type(-1.0 / (phi.gain * phi.softness))
            c_gain = self.dtype.type(-phi.gain)
        sum_over2 = 0.0
        for t in range(n_steps - 1, -1, -1):
            r_t[...] = rates[:, t, :]
            np.multiply(r_t, c_rate, out=g_now)
            if rate_stats[t, 2] > cap:  # else max(r - cap, 0) is zero at this step
                np.subtract(r_t, self.dtype.type(cap), out=tmp)
                np.maximum(tmp, 0.0, out=tmp)
                np.multiply(tmp, tmp, out=tmp2)
                sum_over2 += float(tmp2.sum())
                tmp *= c_cap
                g_now += tmp
            if callable(g_out):
                g_now[out_rows] += g_out(t, g_next if t + 1 < n_steps else None)
            else:
                g_now[out_rows] += g_out[:, t, :]
            if g_rates is not None:
                g_now += g_rates[t].T
            if t + 1 < n_steps:
                rec.backward(g_next, g_now, tmp)
            if states is None:  # softplus: phi'(x) = a (1 - exp(-r / (a s))); 0 where r = 0 (silenced units)
                np.multiply(r_t, c_slope, out=tmp)
                np.expm1(tmp, out=tmp)
                tmp *= c_gain
            else:
                phi.derivative(states[:, t, :], out=tmp)
                if keep is not None:
                    tmp *= keep  # silenced units: r = 0 whatever x is
            g_now *= tmp
            if t + 1 < n_steps:
                np.multiply(g_next, leak, out=tmp)
                g_now += tmp
            gx[:, t, :] = g_now
            dw.step_done(t)
            g_now, g_next = g_next, g_now
        return sum_over2

    # -- kernels -----------------------------------------------------------------------
    @property
    def density(self) -> float:
        """Connection density: synapses / units^2 (of the connectome's fixed mask)."""
        if getattr(self, "_density", None) is None:
            self._density = float(self.mask.sum()) / self.n_units**2
        return self._density

    @property
    def kernel_path(self) -> str:
        """Kernel of the recurrent product this network uses: ``"sparse"`` or ``"dense"``.

        ``kernel="auto"`` (the default) resolves to :func:`kernel_path` of the
        network's size, density and dtype.
        """
        if self.kernel != "auto":
            return self.kernel
        return kernel_path(self.n_units, self.density, self.dtype)

    @property
    def gradient_threads(self) -> int:
        """Threads that share the weight-gradient GEMM (:func:`gradient_threads`; results do not depend on it)."""
        if self.threads is not None:
            return self.threads
        return gradient_threads(self.n_units, self.density, self.dtype)

    def kernel_info(self) -> dict[str, object]:
        """What to record about how this network trains (all fixed by size, density and dtype).

        Returns
        -------
        dict
            ``kernel_path`` (str, :attr:`kernel_path`), ``blas_threads`` (int,
            :func:`training_threads`: what to limit BLAS to around training),
            ``gradient_threads`` (int, :attr:`gradient_threads`), ``n_units``,
            ``n_synapses`` (int), ``density`` (float), ``dtype`` (str).
        """
        return {
            "kernel_path": self.kernel_path,
            "blas_threads": training_threads(self.n_units, self.density, self.dtype),
            "gradient_threads": self.gradient_threads,
            "n_units": self.n_units,
            "n_synapses": int(self.mask.sum()),
            "density": self.density,
            "dtype": str(self.dtype),
        }

    def _recurrence(self) -> _kernels.Recurrence:
        """The recurrent matrix on the mask, for the current kernel path (built once per path)."""
        path = self.kernel_path
        rec = getattr(self, "_rec", None)
        if rec is None or rec.path != path:
            coef = self.alpha[:, None] * self.sign[None, :]
            rec = self._rec = _kernels.Recurrence(self.mask, coef, path, self.dtype)
        return rec

    @property
    def _out_rows(self) -> slice | np.ndarray:
        """The readout units as a slice when they are consecutive (a view), else their indices."""
        idx = self.out_idx
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            return slice(int(idx[0]), int(idx[0]) + idx.size)
        return idx

    def _readout_rates(self, rates: np.ndarray) -> np.ndarray:
        """Rates of the readout units, shape (readout units, time, trials) (a view when possible)."""
        return rates[self._out_rows]


_SPARSE_DENSITY = 0.2
"""The map multiplies by W on its synapses (scipy CSR) up to this density."""


def _products(W: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Row products ``V @ W.T`` and ``V @ W`` for rows V (n, units), on the synapses when W is sparse."""
    if np.count_nonzero(W) <= _SPARSE_DENSITY * W.size:
        W_csr, Wt_csr = scipy.sparse.csr_array(W), scipy.sparse.csr_array(W.T)
        return (lambda V: (W_csr @ np.ascontiguousarray(V.T)).T, lambda V: (Wt_csr @ np.ascontiguousarray(V.T)).T)
    Wt = np.ascontiguousarray(W.T)
    return (lambda V: V @ Wt, lambda V: V @ W)


def _trials_first(a: np.ndarray) -> np.ndarray:
    """A (units, time, trials) array as a new (trials, time, units) array, one time step at a time."""
    n, n_steps, n_trials = a.shape
    out = np.empty((n_trials, n_steps, n), a.dtype)
    for t in range(n_steps):
        out[:, t, :] = a[:, t, :].T
    return out


def _inverse(transfer: Transfer, rate: float) -> float:
    """Input (mV) at which ``transfer`` gives ``rate`` (Hz), by bisection."""
    lo, hi = -100.0, 200.0
    if not transfer(np.array([lo]))[0] < rate < transfer(np.array([hi]))[0]:
        raise ConfigError(f"the transfer function {transfer.name} never reaches {rate} Hz")
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if transfer(np.array([mid]))[0] < rate else (lo, mid)
    return 0.5 * (lo + hi)
