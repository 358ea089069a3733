"""Unconstrained recurrent networks (vanilla RNN, GRU, LSTM) as baselines for the circuit.

They read the same task inputs (``target_x``, ``target_y``, ``go``), produce the same
hand position and follow the same model contract as
:class:`~cortexsim.rate.RateNetwork`, so :func:`cortexsim.train.train` trains them
unchanged.  Gradients are hand-derived BPTT, batched over trials as matrix
products, in float32 or float64.

Time step ``t`` holds the state ``h[t]`` (``h[0] = h0``, trainable); the input
``u[t]`` and the noise ``n[t]`` produce ``h[t+1]``; the output is read at every
step, ``y[t] = W_out h[t] + b_out`` (m).  Activities are dimensionless.

``rnn``  -- leaky tanh RNN, ``a = dt / tau`` (tau 50 ms, like the rate network's
            excitatory units)::

                h[t+1] = (1 - a) h[t] + a tanh(W h[t] + B u[t] + b) + n[t]

``gru``  -- gated recurrent unit (Cho et al. 2014; the cuDNN/PyTorch form), one step per ``dt``::

                r = sig(B_r u + W_r h + b_r),  z = sig(B_z u + W_z h + b_z)
                m = tanh(B_m u + b_m + r * (W_m h + b_hn)),  h' = (1 - z) m + z h + n

``lstm`` -- long short-term memory (Hochreiter & Schmidhuber 1997; PyTorch gate order
            i, f, g, o; forget-gate bias initialised to 1), one step per ``dt``::

                [i, f, g, o] = [sig, sig, tanh, sig](B u + W h + b)
                c' = f c + i g,  h' = o tanh(c') + n

Process noise ``n`` is added to the hidden state ``h`` (dimensionless, in units of
``h``).  For the ``rnn`` it is ``noise_std sqrt(2a) xi`` -- ``noise_std`` is then
the stationary SD of the noise-driven fluctuation of an uncoupled unit, as for the
rate network's ``x``; for ``gru`` and ``lstm`` it is ``noise_std xi`` per step
(``xi ~ N(0, 1)``).

Loss (same task term as the rate network)::

    sum(mask (y - y*)^2) / (sum(mask) d^2)  +  rate_l2 rate_cap^2 mean(h^2)
    + weight_l2 mean(W^2) / w_ref^2

``d`` is :attr:`output_scale`.  The activity term reads ``|h| = 1`` (the tanh
saturation) as the rate network's cap (``rate_cap``, 50 Hz), so the rate network's
``rate_l2`` (per Hz^2) carries over: with the trainer's defaults its weight is
2.5e-3.  ``rate_cap_l2`` is unused (``|h|`` is bounded).  ``W`` is the recurrent
group ``w`` only.

Trainable groups: ``w`` (recurrent, shape (k H, H) with the k = 1, 3, 4 blocks
stacked as above), ``w_in`` (k H, inputs), ``b`` (k H,), ``b_hn`` (H,; GRU only),
``w_out`` (outputs, H), ``b_out`` (outputs,), ``h0`` (H,) and ``c0`` (H,; LSTM only).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _validate as v
from ._model import TimeMajorModel
from .ann_cells import AnnCell, GruCell, LstmCell, RnnCell
from .config import ANN_ARCHITECTURES
from .errors import ConfigError
from .loss import DEFAULT_PENALTIES, ActivityLoss, Penalties, task_error
from .model import Jacobian, Step, Stimulus, Trajectory, constant_input
from .tasks import TrialBatch

ARCHITECTURES = ANN_ARCHITECTURES
"""Names accepted by :func:`make_ann` (the ``ann.archs`` choices of :mod:`cortexsim.config`)."""


DEFAULT_HIDDEN = 128
"""Recommended hidden size."""

_TRAIN = {
    "batch_size": 64,
    "learning_rate": 0.04,
    "lr_final": 0.1,
    "max_iterations": 2000,
    "target_r2": 0.999,
    "patience": 10,
}
DEFAULT_TRAIN: dict[str, dict[str, float | int]] = {arch: dict(_TRAIN) for arch in ARCHITECTURES}
"""Recommended :class:`~cortexsim.train.TrainConfig` overrides per architecture, for
``DEFAULT_HIDDEN`` units on the default :class:`~cortexsim.tasks.CenterOutTask`.

Training stops once the noise-free validation R^2 reaches 0.999 (``target_r2``), stops
improving (``patience``) or reaches ``max_iterations``: never on wall-clock time, so the
result is a function of config and seed alone.  Measured (float32, one BLAS thread, 2 shared
cores, seeds 0-2): rnn 250-450 iterations in 8-14 s, gru 100 in 9 s, lstm 100-150 in
11-17 s; held-out R^2 0.999, endpoint error 0.03-0.10 cm, catch drift 0.2-0.4 cm.
float64 takes about twice as long.  A multi-threaded BLAS on a busy machine can make
each iteration 10-30 times slower (its threads wait for each other)."""


StepHook = Callable[[int, np.ndarray, "np.ndarray | None"], None]
"""``step(t, h[t], x[t])`` of :meth:`_Recurrent.forward`."""

GradHook = Callable[[int, np.ndarray], None]
"""``before(t, g[t])`` and ``drive(t, dx)`` of :meth:`_Recurrent.backward`."""


def _sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Logistic function as ``0.5 + 0.5 tanh(x / 2)`` (stable, keeps the dtype)."""
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


class _Recurrent(TimeMajorModel):
    """What the three architectures share: parameters, noise, simulation, loss."""

    arch = ""
    CELL: type[AnnCell] = AnnCell
    blocks = 1
    CURRENT_BLOCK = 0
    """The block of the input drive a stimulation adds its current to (:meth:`stimulation_hook`)."""
    extra_groups: tuple[str, ...] = ()
    body = None
    """The body it drives: none (its readout is the hand); :class:`cortexsim.closed_loop.ArmANN` drives one."""

    def populations(self) -> list[tuple[str, slice]]:
        """Its units as one population: ``[("hidden", slice(0, H))]``."""
        return [("hidden", slice(0, self.n_units))]

    def cell_types(self) -> list[tuple[str, str, str, slice]]:
        """None: the units of an ANN have no layer or cell type ([] -- a stimulation draws a matched share)."""
        return []

    def readout_matrix(self) -> np.ndarray:
        """The linear map from ``h`` to the outputs, shape (outputs, hidden): ``W_out``."""
        return np.asarray(self.params["w_out"], float)

    def stimulation_hook(self, stimulus: Stimulus | None) -> StepHook | None:
        """``stimulus`` as a :meth:`forward` step hook acting on the hidden units (None when it changes nothing).

        A drive enters the unit's input current -- the pre-activation of the block :attr:`CURRENT_BLOCK`
        (the RNN's ``tanh`` argument, the GRU's candidate, the LSTM's cell input) -- during the update
        from ``t``; silence multiplies ``h[t]`` by the keep factor before the update reads it (and
        before a readout does).
        """
        if stimulus is None or stimulus.empty:
            return None
        n, block = self.n_units, self.CURRENT_BLOCK

        def light(t: int, h_t: np.ndarray, x_t: np.ndarray | None) -> None:
            if not stimulus.lit(t):
                return
            if stimulus.silence:
                h_t *= stimulus.keep(t, self.dtype).T
            elif x_t is not None:
                x_t[:, block * n : (block + 1) * n] += stimulus.current(t, self.dtype).T

        return light

    def __init__(
        self,
        n_hidden: int,
        dt: float,
        n_inputs: int = 3,
        n_outputs: int = 2,
        noise_std: float = 0.0,
        dtype: type = np.float64,
        output_scale: float = 0.1,
    ):
        self.n_units = v.number(n_hidden, f"ann.{self.arch}.n_hidden", low=1, integer=True)
        self.n_inputs = v.number(n_inputs, f"ann.{self.arch}.n_inputs", low=1, integer=True)
        self.n_outputs = v.number(n_outputs, f"ann.{self.arch}.n_outputs", low=1, integer=True)
        self.dt = v.number(dt, "task.dt", low=0, low_open=True)
        self.noise_std = v.number(noise_std, f"ann.{self.arch}.noise_std", low=0)
        self.output_scale = v.number(output_scale, f"ann.{self.arch}.output_scale", low=0, low_open=True)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"ann.{self.arch}.dtype: {self.dtype} is not allowed; use float32 or float64")
        self.groups = ("w", "w_in", "b", *self.extra_groups, "w_out", "b_out", "h0")
        self.params: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}: {self.n_units} hidden units, {self.n_inputs} inputs -> "
            f"{self.n_outputs} outputs, dt={self.dt * 1e3:g} ms, noise_std={self.noise_std:g}, {self.dtype}>"
        )

    # -- parameters ----------------------------------------------------------------
    def init_params(self, rng: np.random.Generator, gain: float = 1.0, input_std: float = 1.0) -> dict[str, np.ndarray]:
        """Initial parameters: Gaussian weights, zero state, small readout.

        Parameters
        ----------
        rng : numpy.random.Generator
        gain : float
            Recurrent weights (every block) are N(0, gain^2 / H).
        input_std : float
            SD of input weights (per unit input).
        """
        n, k = self.n_units, self.blocks
        params = {
            "w": rng.normal(0.0, gain / np.sqrt(n), (k * n, n)),
            "w_in": rng.normal(0.0, input_std, (k * n, self.n_inputs)),
            "b": np.zeros(k * n),
            "w_out": rng.normal(0.0, 0.1 * self.output_scale / np.sqrt(n), (self.n_outputs, n)),
            "b_out": np.zeros(self.n_outputs),
            "h0": np.zeros(n),
        }
        params.update(self._init_extra())
        self.set_params(params)
        return self.params

    def _init_extra(self) -> dict[str, np.ndarray]:
        return {}

    def param_scales(self) -> dict[str, float]:
        """Typical size of a meaningful change of each group, for the optimiser's step sizes.

        ``w``: 1/sqrt(H), the RMS weight at gain 1; ``w_in``: 0.1 per unit input;
        ``b``, ``b_hn``, ``h0``, ``c0``: 0.1; ``w_out``: the change that moves the
        output by ``output_scale`` when all units are at ``|h| = 1`` incoherently;
        ``b_out``: a tenth of ``output_scale``.
        """
        scales = {
            "w": 1.0 / np.sqrt(self.n_units),
            "w_in": 0.1,
            "b": 0.1,
            "h0": 0.1,
            "w_out": self.output_scale / np.sqrt(self.n_units),
            "b_out": 0.1 * self.output_scale,
        }
        scales.update({k: 0.1 for k in self.extra_groups})
        return {k: float(scales[k]) for k in self.groups}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Install parameters (copied and cast to the network's dtype)."""
        missing = set(self.groups) - set(params)
        if missing:
            raise ValueError(f"missing parameter groups {sorted(missing)} for {self.arch!r}")
        new = {k: np.array(params[k], dtype=self.dtype) for k in self.groups}
        for k, p in new.items():
            expected = self._shape(k)
            if p.shape != expected:
                raise ValueError(f"parameter {k!r} has shape {p.shape}; {self.arch!r} expects {expected}")
        self.params = new

    def _shape(self, group: str) -> tuple[int, ...]:
        n, k = self.n_units, self.blocks
        return {
            "w": (k * n, n),
            "w_in": (k * n, self.n_inputs),
            "b": (k * n,),
            "w_out": (self.n_outputs, n),
            "b_out": (self.n_outputs,),
        }.get(group, (n,))

    def enforce_constraints(self) -> None:
        """Nothing to enforce: the baselines are unconstrained."""

    # -- simulation ----------------------------------------------------------------
    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
        """Noise added to ``h`` (dimensionless), shape (time, trials, hidden); ``n[t]`` enters ``h[t+1]``."""
        xi = rng.standard_normal((n_steps, n_trials, self.n_units), dtype=self.dtype)
        xi *= self._noise_factor() * self.noise_std
        return xi

    def _noise_factor(self) -> float:
        return 1.0

    def _input_drive(self, u: np.ndarray) -> np.ndarray:
        """``B u + b`` for all steps and trials in one product, shape (time, trials, k H)."""
        kn = self.blocks * self.n_units
        x = self._buffer("x", (*u.shape[:2], kn))
        np.matmul(u.reshape(-1, self.n_inputs), self.params["w_in"].T, out=x.reshape(-1, kn))
        x += self.params["b"]
        return x

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> Trajectory:
        """Simulate a batch of trials.

        Parameters
        ----------
        batch : TrialBatch
            Its ``dt`` must equal the network's.
        rng : numpy.random.Generator, optional
            Source of process noise; without it (or with ``noise_std = 0``) the run is noise-free.
        stimulus : Stimulus, optional
            Stimulation of the hidden units (:meth:`stimulation_hook`).

        Returns
        -------
        Trajectory
            ``activity`` is ``h`` (trials, time, hidden), the units' activity (dimensionless) that is
            compared with the rate network's rates; ``state`` is ``h`` again for the RNN and GRU and
            ``[h, c]`` (trials, time, 2 hidden) for the LSTM; ``outputs`` ``y`` (m).
        """
        u = self._inputs(batch)
        noise = None if rng is None or self.noise_std == 0 else self.noise(u.shape[1], u.shape[0], rng)
        h = self._forward(u, noise, self.stimulation_hook(stimulus))
        y = h @ self.params["w_out"].T + self.params["b_out"]
        hidden = h.transpose(1, 0, 2).copy()
        return Trajectory(
            state=self.full_state(hidden, self.state_history.transpose(1, 0, 2)),
            activity=hidden,
            outputs=y.transpose(1, 0, 2).copy(),
        )

    def full_state(self, hidden: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The model's state from ``h`` and :attr:`state_history` (each (..., hidden)).

        ``[h, c]`` for the LSTM, else a copy of ``h`` (so that no two fields of a record share memory).
        """
        return hidden.copy()

    @property
    def n_state(self) -> int:
        """Size of the model's state: H (the LSTM: 2H, ``[h, c]``)."""
        return self.n_units

    # -- the model's own map (what dynamics analyses ask for) ---------------------------------
    def cell(self) -> AnnCell:
        """The network's update as a function of state and input drive (its own ``CELL``; parameters copied)."""
        return self.CELL(self)

    def step_map(self, u: np.ndarray) -> tuple[Step, Jacobian]:
        """The noise-free update under constant input ``u`` (inputs,), and its Jacobian.

        States are ``h`` (n, H), or ``[h, c]`` (n, 2H) for the LSTM; equations in
        :mod:`cortexsim.ann_cells`.  The parameters are copied.
        """
        cell = self.cell()
        x_in = cell.drive(constant_input(u, int(self.n_inputs)))
        return (
            lambda X: cell.step(X, x_in),
            Jacobian(lambda X: cell.full(X, x_in), lambda X: cell.linearize(X, x_in)),
        )

    def map_states(self, trajectory: Trajectory) -> np.ndarray:
        """``trajectory.state`` (h, or the LSTM's ``[h, c]``): :meth:`step_map`'s coordinates."""
        return np.asarray(trajectory.state, float)

    def map_layout(self) -> dict[str, slice]:
        """The map's state is the hidden state: ``{"hidden": ...}`` (h, or the LSTM's ``[h, c]``)."""
        return {"hidden": slice(0, self.n_state)}

    def _forward(self, u: np.ndarray, noise: np.ndarray | None, step: StepHook | None = None) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _backward(
        self, u: np.ndarray, g: np.ndarray, before: GradHook | None = None, drive: GradHook | None = None
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError  # pragma: no cover

    def forward(self, u: np.ndarray, noise: np.ndarray | None = None, step: StepHook | None = None) -> np.ndarray:
        """Run over time-major inputs; returns ``h``, (time, trials, hidden) (a work buffer: copy to keep).

        Parameters
        ----------
        u : ndarray, shape (time, trials, inputs)
        noise : ndarray, shape (time, trials, hidden), optional
        step : callable, optional
            ``step(t, h[t], x[t])`` is called before each update with the input drive ``x[t] = B u[t]
            + b`` (trials, blocks x hidden) of that update, which it may change in place -- and once
            more after the last, with ``x = None``.  A closed loop (:class:`cortexsim.closed_loop.ArmANN`)
            reads the output of ``h[t]`` there and adds its feedback to ``x[t]``.
        """
        return self._forward(u, noise, step)

    def backward(
        self, u: np.ndarray, g: np.ndarray, before: GradHook | None = None, drive: GradHook | None = None
    ) -> dict[str, np.ndarray]:
        """Backpropagate after :meth:`forward`; returns the gradients of the core groups (not the readout's).

        ``g`` (time, trials, hidden), dL/dh from outside, becomes the full dL/dh in place.

        ``before(t, g[t])``, if given, may add to ``g[t]`` just before it is propagated (latest step first;
        each ``g[t]`` once); ``drive(t, dx)`` receives dL/d(input drive of update ``t``), (trials, blocks x
        hidden).  A closed loop adds its readout's gradient in ``before`` and turns ``dx`` into the
        gradient of its feedback in ``drive``.
        """
        return self._backward(u, g, before, drive)

    @property
    def state_history(self) -> np.ndarray:
        """The state of the last :meth:`forward`, (time, trials, hidden): ``c`` for the LSTM, ``h`` otherwise."""
        return self._buffers["h"]

    # -- loss and gradients ------------------------------------------------------------
    def loss_and_grad(
        self,
        batch: TrialBatch,
        penalties: Penalties = DEFAULT_PENALTIES,
        noise: np.ndarray | None = None,
        w_ref: float | None = None,
        extra: ActivityLoss | None = None,
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and its exact gradient for every trainable group (BPTT).

        Parameters
        ----------
        batch : TrialBatch
        penalties : Penalties
            ``rate_l2`` (per Hz^2, with ``|h| = 1`` read as ``rate_cap`` Hz) and
            ``weight_l2`` are used; see the module docstring.
        noise : ndarray, shape (time, trials, hidden), optional
            Noise on ``h`` (see :meth:`noise`); fixed, so the gradient is exact.
        w_ref : float, optional
            Reference magnitude for the weight penalty (default: current RMS of ``w``).
        extra : ActivityLoss, optional
            One more term on ``h`` (:class:`cortexsim.loss.ActivityLoss`, e.g. a fit's neural term),
            added to the loss and to dL/dh.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            Same keys and shapes as :attr:`params`.
        stats : dict of str to float
            ``task_loss``, ``r2``, ``mean_rate`` (mean ``|h|``), ``max_rate`` (max ``|h|``).
        """
        p = self.params
        u = self._inputs(batch)
        h = self._forward(u, noise)
        y = h @ p["w_out"].T + p["b_out"]
        target = batch.targets.transpose(1, 0, 2).astype(self.dtype)
        mask = batch.mask.transpose(1, 0, 2).astype(self.dtype)
        error = task_error(y, target, mask, self.output_scale)
        task, dy = error.loss, error.grad

        act_l2 = penalties.rate_l2 * penalties.rate_cap**2
        g = self._buffer("g", h.shape)  # dL/dh[t] from the readout and the activity penalty
        np.multiply(h, 2.0 * act_l2 / h.size, out=g)
        g += dy @ p["w_out"]
        term = None if extra is None else extra(h, batch)
        if term is not None:
            g += term.grad
        grads = self._backward(u, g)
        n_out = self.n_outputs
        grads["w_out"] = dy.reshape(-1, n_out).T @ h.reshape(-1, self.n_units)
        grads["b_out"] = dy.sum((0, 1))
        w = p["w"]
        w_ref = float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) if w_ref is None else float(w_ref)
        grads["w"] += (2.0 * penalties.weight_l2 / (w.size * w_ref**2)) * w
        grads = {k: grads[k].astype(self.dtype, copy=False) for k in self.groups}

        act_loss = act_l2 * float(np.mean(h.astype(np.float64) ** 2))
        weight_loss = penalties.weight_l2 * float(np.mean(w.astype(np.float64) ** 2)) / w_ref**2
        habs = np.abs(h)
        stats = {"task_loss": task, "r2": error.r2, "mean_rate": float(habs.mean()), "max_rate": float(habs.max())}
        stats |= {} if term is None else term.stats
        return task + act_loss + weight_loss + (0.0 if term is None else term.loss), grads, stats


class LeakyRNN(_Recurrent):
    """Leaky tanh RNN, ``h[t+1] = (1 - a) h[t] + a tanh(W h[t] + B u[t] + b) + n[t]``, ``a = dt / tau``.

    Parameters are those of :class:`GRU`, plus ``tau`` (s), the leak time constant
    (50 ms; ``tau = dt`` gives the plain RNN ``h[t+1] = tanh(...)``).
    """

    arch = "rnn"
    CELL = RnnCell
    """Its own update as a function of state and input drive (:meth:`cell`)."""
    blocks = 1
    CURRENT_BLOCK = 0
    """A stimulation drives the tanh argument."""

    def __init__(
        self,
        n_hidden: int,
        dt: float,
        n_inputs: int = 3,
        n_outputs: int = 2,
        noise_std: float = 0.0,
        dtype: type = np.float64,
        output_scale: float = 0.1,
        tau: float = 0.05,
    ):
        super().__init__(n_hidden, dt, n_inputs, n_outputs, noise_std, dtype, output_scale)
        self.tau = v.number(tau, "ann.rnn.tau", low=0, low_open=True)
        if self.dt > self.tau:
            raise ConfigError(f"ann.rnn.tau: {tau} s is shorter than dt = {dt} s; use tau >= dt")
        self.alpha = self.dt / self.tau

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", tau={self.tau * 1e3:g} ms>"

    def _noise_factor(self) -> float:
        return float(np.sqrt(2.0 * self.alpha))

    def _forward(self, u: np.ndarray, noise: np.ndarray | None, step: StepHook | None = None) -> np.ndarray:
        """Fill ``h`` and ``s = tanh(W h + B u + b)``, shape (time, trials, hidden); return ``h``."""
        p, a = self.params, self.alpha
        n_steps, n_trials, _ = u.shape
        shape = (n_steps, n_trials, self.n_units)
        h, s, tmp = self._buffer("h", shape), self._buffer("s", shape), self._buffer("tmp", shape[1:])
        x = self._input_drive(u)
        wt = np.ascontiguousarray(p["w"].T)
        h[0] = p["h0"]
        for t in range(n_steps - 1):
            if step is not None:
                step(t, h[t], x[t])
            np.matmul(h[t], wt, out=s[t])
            s[t] += x[t]
            np.tanh(s[t], out=s[t])
            np.multiply(h[t], 1.0 - a, out=h[t + 1])
            np.multiply(s[t], a, out=tmp)
            h[t + 1] += tmp
            if noise is not None:
                h[t + 1] += noise[t]
        if step is not None:
            step(n_steps - 1, h[n_steps - 1], None)
        return h

    def _backward(
        self, u: np.ndarray, g: np.ndarray, before: GradHook | None = None, drive: GradHook | None = None
    ) -> dict[str, np.ndarray]:
        """Turn ``g`` into dL/dh[t] (in place) and return the gradients of the core groups."""
        p, a = self.params, self.alpha
        s, h = self._buffers["s"], self._buffers["h"]
        n_steps, n = g.shape[0], self.n_units
        dz = self._buffer("dz", g.shape)  # dL/d(pre-activation) of step t
        for t in range(n_steps - 2, -1, -1):
            if before is not None:
                before(t + 1, g[t + 1])
            np.multiply(s[t], s[t], out=dz[t])
            np.subtract(1.0, dz[t], out=dz[t])
            dz[t] *= g[t + 1]
            dz[t] *= a
            if drive is not None:
                drive(t, dz[t])
            g[t] += g[t + 1] * (1.0 - a)
            g[t] += dz[t] @ p["w"]
        if before is not None:
            before(0, g[0])
        d = dz[:-1].reshape(-1, n)
        return {
            "w": d.T @ h[:-1].reshape(-1, n),
            "w_in": d.T @ u[:-1].reshape(-1, self.n_inputs),
            "b": d.sum(0),
            "h0": g[0].sum(0),
        }


class GRU(_Recurrent):
    """Gated recurrent unit (cuDNN/PyTorch form; see the module docstring).

    Parameters
    ----------
    n_hidden : int
        Hidden units H.
    dt : float
        Time step (s); one cell update per step.
    n_inputs, n_outputs : int
        Task input channels and output dimensions.
    noise_std : float
        Noise on ``h`` (dimensionless); used when a simulation is given an rng.
    dtype : numpy dtype
        float64 or float32.
    output_scale : float
        Typical output magnitude (m; the reach distance): the loss compares outputs in units of it.
    """

    arch = "gru"
    CELL = GruCell
    """Its own update as a function of state and input drive (:meth:`cell`)."""
    blocks = 3
    CURRENT_BLOCK = 2
    """A stimulation drives the candidate n (gates r, z, n)."""
    extra_groups = ("b_hn",)

    def _init_extra(self) -> dict[str, np.ndarray]:
        return {"b_hn": np.zeros(self.n_units)}

    def _forward(self, u: np.ndarray, noise: np.ndarray | None, step: StepHook | None = None) -> np.ndarray:
        """Fill ``h``, gates ``r``, ``z``, candidate ``m`` and ``W h + b_hn`` ("hh"); return ``h``."""
        p, n = self.params, self.n_units
        n_steps, n_trials, _ = u.shape
        shape = (n_steps, n_trials, n)
        h, r, z, m = (self._buffer(k, shape) for k in ("h", "r", "z", "m"))
        hh = self._buffer("hh", (n_steps, n_trials, 3 * n))
        x = self._input_drive(u)
        wt = np.ascontiguousarray(p["w"].T)
        h[0] = p["h0"]
        for t in range(n_steps - 1):
            if step is not None:
                step(t, h[t], x[t])
            np.matmul(h[t], wt, out=hh[t])
            hh[t, :, 2 * n :] += p["b_hn"]
            _sigmoid(np.add(x[t, :, :n], hh[t, :, :n], out=r[t]), r[t])
            _sigmoid(np.add(x[t, :, n : 2 * n], hh[t, :, n : 2 * n], out=z[t]), z[t])
            np.multiply(r[t], hh[t, :, 2 * n :], out=m[t])
            m[t] += x[t, :, 2 * n :]
            np.tanh(m[t], out=m[t])
            np.subtract(h[t], m[t], out=h[t + 1])  # h' = m + z (h - m)
            h[t + 1] *= z[t]
            h[t + 1] += m[t]
            if noise is not None:
                h[t + 1] += noise[t]
        if step is not None:
            step(n_steps - 1, h[n_steps - 1], None)
        return h

    def _backward(
        self, u: np.ndarray, g: np.ndarray, before: GradHook | None = None, drive: GradHook | None = None
    ) -> dict[str, np.ndarray]:
        """Turn ``g`` into dL/dh[t] (in place) and return the gradients of the core groups."""
        p, n = self.params, self.n_units
        h, r, z, m, hh = (self._buffers[k] for k in ("h", "r", "z", "m", "hh"))
        n_steps, n_trials = g.shape[:2]
        dh = self._buffer("dhh", (n_steps, n_trials, 3 * n))  # dL/d(W h + b_hn) per block
        dm = self._buffer("dm", g.shape)  # dL/d(candidate pre-activation)
        for t in range(n_steps - 2, -1, -1):
            if before is not None:
                before(t + 1, g[t + 1])
            gh = g[t + 1]
            np.multiply(gh, 1.0 - z[t], out=dm[t])
            dm[t] *= 1.0 - m[t] * m[t]
            dr, dz, dn = dh[t, :, :n], dh[t, :, n : 2 * n], dh[t, :, 2 * n :]
            np.multiply(dm[t], r[t], out=dn)
            np.multiply(dm[t], hh[t, :, 2 * n :], out=dr)
            dr *= r[t] * (1.0 - r[t])
            np.subtract(h[t], m[t], out=dz)
            dz *= gh
            dz *= z[t] * (1.0 - z[t])
            if drive is not None:  # the input drive enters r and z as dh does, the candidate as dm
                drive(t, np.concatenate([dh[t, :, : 2 * n], dm[t]], axis=1))
            g[t] += gh * z[t]
            g[t] += dh[t] @ p["w"]
        if before is not None:
            before(0, g[0])
        d = dh[:-1].reshape(-1, 3 * n)
        d_m = dm[:-1].reshape(-1, n)
        h_prev, u_prev = h[:-1].reshape(-1, n), u[:-1].reshape(-1, self.n_inputs)
        return {
            "w": d.T @ h_prev,
            "w_in": np.concatenate([d[:, : 2 * n].T @ u_prev, d_m.T @ u_prev]),
            "b": np.concatenate([d[:, : 2 * n].sum(0), d_m.sum(0)]),
            "b_hn": d[:, 2 * n :].sum(0),
            "h0": g[0].sum(0),
        }


class LSTM(_Recurrent):
    """Long short-term memory (PyTorch gate order i, f, g, o; see the module docstring).

    Parameters are those of :class:`GRU`.  The cell state starts at the trainable
    ``c0``; the forget-gate bias starts at 1 (Jozefowicz et al. 2015).
    """

    arch = "lstm"
    CELL = LstmCell
    """Its own update as a function of state and input drive (:meth:`cell`)."""

    def full_state(self, hidden: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The LSTM's state ``[h, c]`` from ``h`` and the cell state ``c`` (each (..., hidden))."""
        return np.concatenate([hidden, state], axis=-1)

    @property
    def n_state(self) -> int:
        """Size of the LSTM's state ``[h, c]``: 2H."""
        return 2 * self.n_units

    @property
    def state_history(self) -> np.ndarray:
        """The cell state ``c`` of the last :meth:`forward`, (time, trials, hidden)."""
        return self._buffers["c"]

    blocks = 4
    CURRENT_BLOCK = 2
    """A stimulation drives the cell input g (gates i, f, g, o)."""
    extra_groups = ("c0",)

    def _init_extra(self) -> dict[str, np.ndarray]:
        return {"c0": np.zeros(self.n_units)}

    def init_params(self, rng: np.random.Generator, gain: float = 1.0, input_std: float = 1.0) -> dict[str, np.ndarray]:
        """Initial parameters as for every ANN, with the forget-gate bias at 1 (Gers et al. 2000)."""
        params = super().init_params(rng, gain, input_std)
        params["b"][self.n_units : 2 * self.n_units] = 1.0
        return params

    init_params.__doc__ = _Recurrent.init_params.__doc__

    def _forward(self, u: np.ndarray, noise: np.ndarray | None, step: StepHook | None = None) -> np.ndarray:
        """Fill ``h``, ``c``, ``tanh(c)`` and the gate activations [i, f, g, o]; return ``h``."""
        p, n = self.params, self.n_units
        n_steps, n_trials, _ = u.shape
        shape = (n_steps, n_trials, n)
        h, c, tc = self._buffer("h", shape), self._buffer("c", shape), self._buffer("tc", shape)
        act = self._buffer("act", (n_steps, n_trials, 4 * n))
        x = self._input_drive(u)
        wt = np.ascontiguousarray(p["w"].T)
        h[0], c[0], tc[0] = p["h0"], p["c0"], np.tanh(p["c0"])
        for t in range(n_steps - 1):
            if step is not None:
                step(t, h[t], x[t])
            a = act[t]
            np.matmul(h[t], wt, out=a)
            a += x[t]
            _sigmoid(a[:, : 2 * n], a[:, : 2 * n])
            np.tanh(a[:, 2 * n : 3 * n], out=a[:, 2 * n : 3 * n])
            _sigmoid(a[:, 3 * n :], a[:, 3 * n :])
            np.multiply(a[:, n : 2 * n], c[t], out=c[t + 1])
            c[t + 1] += a[:, :n] * a[:, 2 * n : 3 * n]
            np.tanh(c[t + 1], out=tc[t + 1])
            np.multiply(a[:, 3 * n :], tc[t + 1], out=h[t + 1])
            if noise is not None:
                h[t + 1] += noise[t]
        if step is not None:
            step(n_steps - 1, h[n_steps - 1], None)
        return h

    def _backward(
        self, u: np.ndarray, g: np.ndarray, before: GradHook | None = None, drive: GradHook | None = None
    ) -> dict[str, np.ndarray]:
        """Turn ``g`` into dL/dh[t] (in place) and return the gradients of the core groups."""
        p, n = self.params, self.n_units
        h, c, tc, act = (self._buffers[k] for k in ("h", "c", "tc", "act"))
        n_steps, n_trials = g.shape[:2]
        da = self._buffer("dact", (n_steps, n_trials, 4 * n))  # dL/d(gate pre-activations)
        gc = np.zeros((n_trials, n), self.dtype)  # dL/dc[t+1] through the cell path
        for t in range(n_steps - 2, -1, -1):
            if before is not None:
                before(t + 1, g[t + 1])
            gh, a = g[t + 1], act[t]
            i, f, gg, o = a[:, :n], a[:, n : 2 * n], a[:, 2 * n : 3 * n], a[:, 3 * n :]
            gc += gh * o * (1.0 - tc[t + 1] * tc[t + 1])
            np.multiply(gh, tc[t + 1], out=da[t, :, 3 * n :])
            da[t, :, 3 * n :] *= o * (1.0 - o)
            np.multiply(gc, gg, out=da[t, :, :n])
            da[t, :, :n] *= i * (1.0 - i)
            np.multiply(gc, c[t], out=da[t, :, n : 2 * n])
            da[t, :, n : 2 * n] *= f * (1.0 - f)
            np.multiply(gc, i, out=da[t, :, 2 * n : 3 * n])
            da[t, :, 2 * n : 3 * n] *= 1.0 - gg * gg
            if drive is not None:
                drive(t, da[t])
            gc *= f
            g[t] += da[t] @ p["w"]
        if before is not None:
            before(0, g[0])
        d = da[:-1].reshape(-1, 4 * n)
        return {
            "w": d.T @ h[:-1].reshape(-1, n),
            "w_in": d.T @ u[:-1].reshape(-1, self.n_inputs),
            "b": d.sum(0),
            "h0": g[0].sum(0),
            "c0": gc.sum(0),
        }


_CLASSES = {"rnn": LeakyRNN, "gru": GRU, "lstm": LSTM}


def make_ann(arch: str, n_hidden: int = DEFAULT_HIDDEN, dt: float = 0.01, **kw) -> LeakyRNN | GRU | LSTM:
    """The baseline network ``arch`` (``"rnn"``, ``"gru"`` or ``"lstm"``).

    Parameters
    ----------
    arch : str
        Architecture, one of :data:`ARCHITECTURES`.
    n_hidden : int
        Hidden units.
    dt : float
        Time step (s).
    **kw
        Constructor arguments (``n_inputs``, ``n_outputs``, ``noise_std``, ``dtype``,
        ``output_scale``; ``tau`` for the RNN).
    """
    v.choice(arch, "ann.arch", ARCHITECTURES)
    if "tau" in kw and arch != "rnn":
        raise ConfigError(f"ann.tau: only the leaky 'rnn' has a time constant, not {arch!r}")
    return _CLASSES[arch](n_hidden, dt, **kw)
