"""The circuit (or an ANN) drives a body in closed loop, with delayed, noisy sensory feedback.

The rate network of :mod:`cortexsim.rate` reads out one excitation per muscle of its body from
PT5B (its only output population) instead of a hand position; the body (:mod:`cortexsim.body`: the
six-muscle arm by default, or any plant of :data:`cortexsim.effector.BODIES`) moves; what it senses
comes back, delayed and noisy, as extra inputs to the populations the anatomy names for such
sources.  Per task step ``t`` (``dt``)::

    r[t] = phi(x[t]),  y[t] = W_out r_PT5B[t] + b_out                     (muscles,)
    e[t] = floor + (1 - floor) sigmoid(y[t])      (x (1 + motor_noise xi), clipped to [0, 1])
    s[t+1] = plant(s[t], e[t], endpoint load[t])  (coordinates, velocities, activation; sub-steps)
    f[t] = sensors(s[t - d]) + noise               (proprioception d = 2 steps, vision 7)
    x[t+1] = (1 - alpha) x[t] + alpha (W r[t] + B u[t] + B_fb f[t] + b) + process noise

Feedback ``f`` (:attr:`cortexsim.body.Body.feedback_channels`; the arm's 14 are
:data:`FEEDBACK_CHANNELS`): each muscle's length change from the start posture and its velocity --
muscle-spindle-like proprioception -- and vision, the hand's position relative to the shown target
in units of the reach distance.  Before the delay has elapsed the sensors report the start posture.
The hand position the task scores is the hand relative to its start position (m), so every metric
of the kinematic study applies unchanged.  Every size comes from the body.

The sigmoid keeps the gradient alive where a clip would kill it; ``floor`` keeps a little tone.
The readout bias starts at the least-norm co-contraction that balances the arm at the start
posture (:func:`cortexsim.effector.balanced_excitation`), and the arm starts at rest there.

Loss (:meth:`ArmRateNetwork.loss_and_grad`) = the kinematic study's position loss on the hand +
``speed_l2`` x mean squared error of the hand's step velocity against the target's (in units of
the minimum-jerk peak speed) + ``effort_l2`` x mean squared muscle activation + the rate and
weight penalties of :class:`cortexsim.loss.Penalties`.  Its gradient is exact: backpropagation
through the circuit, the excitation map, the arm (the hand-derived reverse step of
:mod:`cortexsim._plant`) and the delay lines; ``tests/test_closed_loop.py`` checks every
parameter group against centred finite differences in float64, with and without feedback, loads
and noise.
"""

from __future__ import annotations

import copy

import numpy as np

from . import closed_loop_map
from .body import (
    DEFAULT_ARM,
    DEFAULT_FEEDBACK,
    FEEDBACK_CHANNELS,
    FEEDBACK_GROUPS,
    ArmLoop,
    Body,
    BodyLoop,
    Feedback,
    LoopNoise,
    LoopTrajectory,
)
from .circuit import Connectome
from .errors import ConfigError
from .loss import DEFAULT_PENALTIES, ActivityLoss, Penalties
from .model import Jacobian, Step, Stimulus, Trajectory
from .rate import GROUPS, RateNetwork
from .tasks import TrialBatch
from .transfer import Softplus, Transfer


class ArmRateNetwork(RateNetwork):
    """The rate circuit in closed loop with the six-muscle arm (see the module notes).

    Parameters
    ----------
    connectome, transfer, dt, noise_std, dtype, output_scale, kernel
        As for :class:`~cortexsim.rate.RateNetwork`; ``output_scale`` is the reach distance (m).
        The connectome must wire the input groups ``proprioception`` and ``vision``.
    task_groups : tuple of str
        Circuit input group of each task input channel.
    body : Body, optional
        The arm side (default: :meth:`Body.make` at ``dt`` with ``reach = output_scale``).
    """

    def __init__(
        self,
        connectome: Connectome,
        transfer: Transfer,
        dt: float,
        task_groups: tuple[str, ...] = ("target", "target", "go"),
        noise_std: float = 0.0,
        dtype: type = np.float64,
        output_scale: float = 0.1,
        kernel: str = "auto",
        *,
        body: Body | None = None,
    ):
        body = Body.make(dt, reach=output_scale) if body is None else body
        super().__init__(
            connectome,
            transfer,
            dt,
            input_groups=tuple(task_groups) + body.feedback_groups,
            n_outputs=body.n_muscles,
            noise_std=noise_std,
            dtype=dtype,
            output_scale=output_scale,
            kernel=kernel,
        )
        self.n_task_inputs = len(task_groups)
        self.body = body

    def __repr__(self) -> str:
        return super().__repr__().replace("<RateNetwork", f"<ArmRateNetwork ({self.body.plant.NAME})")

    @property
    def arm(self):
        """The body's plant (:attr:`Body.plant`)."""
        return self.body.plant

    @property
    def feedback(self) -> Feedback:
        """The feedback settings."""
        return self.body.feedback

    # -- parameters ------------------------------------------------------------
    def init_params(
        self,
        rng: np.random.Generator,
        rest_rate: float = 5.0,
        input_std: float = 2.0,
        output_scale: float = 0.01,
        feedback_std: float = 0.5,
    ) -> dict[str, np.ndarray]:
        """Initial parameters: every unit at rest, the arm held still by the readout bias.

        Parameters
        ----------
        rng : numpy.random.Generator
        rest_rate : float
            Rate (Hz) of every unit at the initial fixed point.
        input_std, feedback_std : float
            SD (mV per unit input) of the task and the feedback input weights.
        output_scale : float
            SD of the initial change of each excitation's logit that the readout's random
            weights make when every readout unit fires ``rest_rate``.
        """
        params = super().init_params(rng, rest_rate, input_std, output_scale=self.output_scale)
        n_out = self.out_idx.size
        w_out = rng.normal(0.0, output_scale / (np.sqrt(n_out) * rest_rate), (self.body.n_muscles, n_out))
        params["w_out"] = w_out
        params["b_out"] = self.body.rest_logit() - w_out @ np.full(n_out, rest_rate)
        params["w_in"][:, self.n_task_inputs :] *= feedback_std / input_std
        self.set_params(params)
        return self.params

    def param_scales(self, rest_rate: float = 5.0) -> dict[str, float]:
        """As :meth:`RateNetwork.param_scales`, with the readout in logit units of excitation.

        ``w_out``: the weight change that moves an excitation's logit by 0.1 when every readout
        unit fires ``rest_rate`` incoherently; ``b_out``: 0.1 logit units.
        """
        scales = super().param_scales(rest_rate)
        scales["w_out"] = 0.1 / (np.sqrt(self.out_idx.size) * rest_rate)
        scales["b_out"] = 0.1
        return scales

    def lesioned(self, silenced: np.ndarray | None = None, cut: np.ndarray | None = None) -> ArmRateNetwork:
        """A lesioned copy (see :meth:`RateNetwork.lesioned`)."""
        return super().lesioned(silenced, cut)  # type: ignore[return-value]

    def without_feedback(self) -> ArmRateNetwork:
        """A copy whose feedback channels carry zeros (the loop opened after training)."""
        return self.with_body(self.body.with_feedback(False))

    def with_body(self, body: Body) -> ArmRateNetwork:
        """A copy (its own parameter arrays) driving ``body``, e.g. ``net.body.with_curl(B)`` (a force field)."""
        new = copy.copy(self)
        new._buffers, new._rec = {}, None
        new.body = body
        new.set_params({k: p.copy() for k, p in self.params.items()})
        return new

    # -- simulation ------------------------------------------------------------
    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> LoopNoise:
        """Process, sensory and motor noise of one batch (:class:`LoopNoise`)."""
        process = super().noise(n_trials, n_steps, rng) if self.noise_std > 0 else None
        return LoopNoise(process, *self.body.noise(n_trials, n_steps, rng))

    def _inputs(self, batch: TrialBatch, width: int | None = None) -> np.ndarray:
        """The batch's task inputs, (time, trials, task inputs); the feedback channels are the loop's own."""
        return super()._inputs(batch, self.n_task_inputs if width is None else width)

    def _forward_loop(
        self,
        batch: TrialBatch,
        noise: LoopNoise | None,
        store_states: bool,
        rate_stats: np.ndarray | None = None,
        stimulus: Stimulus | None = None,
    ) -> tuple[BodyLoop, np.ndarray]:
        """Run circuit and arm together; fills the buffers ``r`` (and ``x``) (units, time, trials).

        Returns the body's loop (:meth:`Body.loop`) and the task inputs (time, trials, task inputs).
        """
        p, k = self.params, self.n_task_inputs
        u = self._inputs(batch)
        n_steps, n_trials, _ = u.shape
        inputs = np.zeros((n_steps, n_trials, self.n_inputs), self.dtype)  # the feedback columns: filled below
        inputs[:, :, :k] = u
        loop = self.body.loop(batch, noise)
        w_fb = np.ascontiguousarray(p["w_in"][:, k:] * self.alpha[:, None])  # (units, channels)
        fb_drive = self._buffer("fb_drive", (self.n_units, n_trials))
        w_out, b_out = p["w_out"].astype(float), p["b_out"].astype(float)
        out_rows, enabled = self._out_rows, self.body.feedback.enabled

        def step(t: int, r_now: np.ndarray) -> np.ndarray | None:
            f = loop.step(t, (w_out @ r_now[out_rows]).T + b_out)
            inputs[t, :, k:] = f
            if not enabled or t + 1 == n_steps:
                return None
            return np.matmul(w_fb, inputs[t, :, k:].T, out=fb_drive)

        self._forward(inputs, None if noise is None else noise.process, store_states, rate_stats, step, stimulus)
        return loop, inputs

    def simulate_loop(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> LoopTrajectory:
        """Simulate a batch in closed loop (noise-free without ``rng``); see :class:`LoopTrajectory`."""
        noise = None if rng is None else self.noise(batch.n_trials, batch.n_steps, rng)
        loop, _ = self._forward_loop(batch, noise, store_states=True, stimulus=stimulus)
        return loop.trajectory(_trials_first(self._buffers["x"]), _trials_first(self._buffers["r"]))

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> Trajectory:
        """States x (mV), rates (Hz: the activity) and the hand relative to its start (m), each (trials, time, ...).

        ``body`` holds the whole closed loop's record (:class:`LoopTrajectory`); ``stimulus`` an
        optogenetic-style stimulation of the circuit (:mod:`cortexsim.stimulation`).
        """
        loop = self.simulate_loop(batch, rng, stimulus)
        return Trajectory(state=loop.states, activity=loop.rates, outputs=loop.hand, body=loop)

    # -- the model's own map: the whole closed loop ------------------------------------------
    def step_map(self, u: np.ndarray) -> tuple[Step, Jacobian]:
        """The noise-free closed loop (circuit, arm, delay lines) under the constant task input ``u``.

        See :mod:`cortexsim.closed_loop_map`; states (m, d) with :meth:`map_layout`'s parts.
        """
        return closed_loop_map.loop_map(self, closed_loop_map.circuit_controller(self, u, self.n_task_inputs), u)

    def map_states(self, trajectory: Trajectory) -> np.ndarray:
        """The closed-loop states along a simulated ``trajectory``: x, the arm, the delayed sensor readings."""
        return closed_loop_map.trajectory_states(self, trajectory)

    def map_layout(self) -> dict[str, slice]:
        """Parts of :meth:`step_map`'s state: ``circuit``, ``arm``, ``sensors``."""
        return closed_loop_map.loop_layout(self, "circuit", self.n_units)

    # -- loss and gradients ----------------------------------------------------------
    def loss_and_grad(
        self,
        batch: TrialBatch,
        penalties: Penalties = DEFAULT_PENALTIES,
        noise: LoopNoise | None = None,
        w_ref: float | None = None,
        extra: ActivityLoss | None = None,
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and its exact gradient for every trainable group, through circuit, arm and feedback.

        Loss = position loss of the hand (as :meth:`RateNetwork.loss_and_grad`)
        + speed_l2 mean(mask ((dh - dh*) / (dt v_peak))^2) + effort_l2 mean(a^2)
        + the rate and weight penalties, where ``dh`` is the hand's displacement over one step,
        ``dh*`` the target's, ``v_peak`` the body's ``speed_scale`` and ``a`` the muscle activations.

        Parameters
        ----------
        batch : TrialBatch
        penalties : Penalties
        noise : LoopNoise, optional
            Fixed process, sensory and motor noise (see :meth:`noise`).
        w_ref : float, optional
            Reference magnitude for the weight penalty (default: current RMS magnitude).
        extra : ActivityLoss, optional
            One more term on the rates (e.g. a fit's neural term), added to the loss and the backward pass.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
        stats : dict of str to float
            ``task_loss``, ``r2``, ``mean_rate``, ``max_rate``, ``effort`` (mean squared
            activation), ``speed_loss`` (and the extra term's stats).
        """
        if noise is not None and not isinstance(noise, LoopNoise):
            noise = LoopNoise(process=noise)
        p, alpha = self.params, self.alpha
        softplus = isinstance(self.transfer, Softplus)
        rate_stats = np.empty((batch.n_steps, 3), np.float64)
        loop, inputs = self._forward_loop(batch, noise, store_states=not softplus, rate_stats=rate_stats)
        rates = self._buffers["r"]
        states = None if softplus else self._buffers["x"]
        terms = loop.losses(batch)
        w_fb = p["w_in"][:, self.n_task_inputs :] * alpha[:, None]  # (units, channels)
        w_out_t = p["w_out"].astype(float).T  # (readout units, muscles)
        gy = np.zeros((batch.n_steps, batch.n_trials, self.n_outputs))

        def readout_grad(t: int, g_next: np.ndarray | None) -> np.ndarray:
            """dL/dr of the readout units at step t, given dL/dx[t + 1] (None at the last step)."""
            g_f = None if g_next is None else (w_fb.T @ g_next).T.astype(float)
            gy[t] = loop.backward_step(t, g_f)
            return (w_out_t @ gy[t].T).astype(self.dtype, copy=False)

        term = None if extra is None else extra(rates.transpose(1, 2, 0), batch)
        grads, (rate_loss, weight_loss), stats = self._backprop(
            inputs, states, rate_stats, readout_grad, penalties, w_ref, None if term is None else term.grad
        )
        gy_t = gy.transpose(2, 0, 1).reshape(self.n_outputs, -1)
        grads["w_out"] = gy_t @ self._readout_rates(rates).reshape(self.out_idx.size, -1).T.astype(float)
        grads["b_out"] = gy.sum((0, 1))
        grads = {k: np.asarray(grads[k], dtype=self.dtype) for k in GROUPS}
        stats = _loop_stats(terms, stats) | ({} if term is None else term.stats)
        return terms["total"] + rate_loss + weight_loss + (0.0 if term is None else term.loss), grads, stats


class ArmANN:
    """An ANN baseline driving the same body, with the same feedback and delays as the circuit.

    The ANN (:class:`cortexsim.ann.LeakyRNN`, ``GRU`` or ``LSTM``) gets the task inputs and the
    body's feedback channels as inputs and reads out one excitation logit per muscle from its
    hidden state ``h``: ``y = W_out h + b_out`` through the :class:`Body`'s excitation map.  Its
    gradient is exact, through the ANN's own backpropagation and the body loop's adjoint.

    Parameters
    ----------
    model : LeakyRNN, GRU or LSTM
        Built with ``n_inputs = task inputs + feedback channels`` and ``n_outputs = muscles``
        (the arm: 14 and 6).
    body : Body
    n_task_inputs : int
        Task input channels (3 for the center-out task).
    """

    def __init__(self, model, body: Body, n_task_inputs: int = 3):
        n_in, n_out = n_task_inputs + body.n_feedback, body.n_muscles
        if model.n_inputs != n_in or model.n_outputs != n_out:
            raise ConfigError(
                f"ArmANN: the {model.arch} must have {n_in} inputs and {n_out} outputs, "
                f"got {model.n_inputs} and {model.n_outputs}"
            )
        self.model, self.body, self.n_task_inputs = model, body, n_task_inputs
        self.arch = model.arch
        self.dt, self.dtype, self.n_units = model.dt, model.dtype, model.n_units

    def __repr__(self) -> str:
        return repr(self.model)[:-1] + f", driving a body of {self.body.n_muscles} muscles>"

    def populations(self) -> list[tuple[str, slice]]:
        """Its units as one population: ``[("hidden", slice(0, H))]``."""
        return self.model.populations()

    def cell_types(self) -> list[tuple[str, str, str, slice]]:
        """None: an ANN's units have no cell types (see :meth:`cortexsim.ann._Recurrent.cell_types`)."""
        return self.model.cell_types()

    def readout_matrix(self) -> np.ndarray:
        """The linear map from ``h`` to the muscles' logits, shape (muscles, hidden)."""
        return self.model.readout_matrix()

    def with_body(self, body: Body) -> ArmANN:
        """A copy (its own parameters) driving ``body`` -- e.g. ``ann.body.with_curl(B)``, the arm in a force field."""
        return ArmANN(copy.deepcopy(self.model), body, self.n_task_inputs)

    # -- the Trainable protocol ------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """The ANN's parameter groups."""
        return self.model.params

    @params.setter
    def params(self, value: dict[str, np.ndarray]) -> None:
        self.model.params = value

    @property
    def noise_std(self) -> float:
        """The ANN's noise SD on ``h``."""
        return self.model.noise_std

    @property
    def output_scale(self) -> float:
        """The reach distance (m)."""
        return self.body.reach

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Install (a copy of) ``params``."""
        self.model.set_params(params)

    def enforce_constraints(self) -> None:
        """Nothing to enforce: the baselines are unconstrained."""

    def init_params(self, rng: np.random.Generator, feedback_scale: float = 0.25) -> dict[str, np.ndarray]:
        """The ANN's initial parameters, its readout holding the arm still and weaker feedback inputs.

        ``feedback_scale`` multiplies the feedback columns of ``w_in`` (the circuit's default ratio
        of feedback to task input weights, 0.5 / 2 mV).
        """
        params = self.model.init_params(rng)
        n = self.model.n_units
        params["w_out"] = rng.normal(0.0, 0.01 / np.sqrt(n), (self.body.n_muscles, n))
        params["b_out"] = self.body.rest_logit()
        params["w_in"][:, self.n_task_inputs :] *= feedback_scale
        self.model.set_params(params)
        return self.model.params

    def param_scales(self) -> dict[str, float]:
        """The ANN's step sizes, with the readout in logit units (``w_out`` 0.1 / sqrt(H), ``b_out`` 0.1)."""
        scales = self.model.param_scales()
        scales["w_out"] = 0.1 / np.sqrt(self.model.n_units)
        scales["b_out"] = 0.1
        return scales

    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> LoopNoise:
        """Hidden-state, sensory and motor noise of one batch."""
        process = self.model.noise(n_trials, n_steps, rng) if self.model.noise_std > 0 else None
        return LoopNoise(process, *self.body.noise(n_trials, n_steps, rng))

    # -- the loop ----------------------------------------------------------------
    def _run(
        self, batch: TrialBatch, noise: LoopNoise | None, stimulus: Stimulus | None = None
    ) -> tuple[BodyLoop, np.ndarray, np.ndarray]:
        """Forward pass in closed loop: the loop, the full inputs (time, trials, task + feedback) and ``h``."""
        model, k = self.model, self.n_task_inputs
        if abs(batch.dt - self.dt) > 1e-12:
            raise ConfigError(f"trial batch dt {batch.dt} s differs from the network's dt {self.dt} s")
        if batch.inputs.shape[2] != k:
            raise ConfigError(f"batch has {batch.inputs.shape[2]} input channels, network {k}")
        u = np.zeros((batch.n_steps, batch.n_trials, model.n_inputs), self.dtype)
        u[:, :, :k] = batch.inputs.transpose(1, 0, 2)
        loop = self.body.loop(batch, noise)
        p = model.params
        w_out, b_out = p["w_out"].astype(float), p["b_out"].astype(float)
        w_fb_t = np.ascontiguousarray(p["w_in"][:, k:].T)  # (channels, k H)

        light = model.stimulation_hook(stimulus)

        def step(t: int, h_t: np.ndarray, x_t: np.ndarray | None) -> None:
            if light is not None:
                light(t, h_t, x_t)
            f = loop.step(t, h_t @ w_out.T + b_out)
            u[t, :, k:] = f
            if x_t is not None and self.body.feedback.enabled:
                x_t += (f @ w_fb_t).astype(self.dtype, copy=False)

        h = model.forward(u, None if noise is None else noise.process, step)
        return loop, u, h

    def simulate_loop(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> LoopTrajectory:
        """Simulate a batch in closed loop (noise-free without ``rng``).

        ``rates`` is h, ``states`` h or the LSTM's ``[h, c]``; ``stimulus`` acts on the hidden units
        (:meth:`cortexsim.ann._Recurrent.stimulation_hook`).
        """
        noise = None if rng is None else self.noise(batch.n_trials, batch.n_steps, rng)
        loop, _, h = self._run(batch, noise, stimulus)
        hidden = h.transpose(1, 0, 2).copy()
        state = self.model.full_state(hidden, self.model.state_history.transpose(1, 0, 2))
        return loop.trajectory(state, hidden)

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> Trajectory:
        """The hidden state h (the activity), the state (h, or the LSTM's ``[h, c]``) and the hand (m), trials first.

        ``body`` holds the whole closed loop's record (:class:`LoopTrajectory`).
        """
        loop = self.simulate_loop(batch, rng, stimulus)
        return Trajectory(state=loop.states, activity=loop.rates, outputs=loop.hand, body=loop)

    # -- the model's own map: the whole closed loop ------------------------------------------
    def step_map(self, u: np.ndarray) -> tuple[Step, Jacobian]:
        """The noise-free closed loop (ANN, arm, delay lines) under the constant task input ``u``."""
        return closed_loop_map.loop_map(self, closed_loop_map.ann_controller(self, u, self.n_task_inputs), u)

    def map_states(self, trajectory: Trajectory) -> np.ndarray:
        """The closed-loop states along a simulated ``trajectory``: the ANN's state, the arm, the sensor readings."""
        return closed_loop_map.trajectory_states(self, trajectory)

    def map_layout(self) -> dict[str, slice]:
        """Parts of :meth:`step_map`'s state: ``hidden`` (h, or the LSTM's ``[h, c]``), ``arm``, ``sensors``."""
        n = self.model.n_state
        return closed_loop_map.loop_layout(self, "hidden", n)

    def loss_and_grad(
        self,
        batch: TrialBatch,
        penalties: Penalties = DEFAULT_PENALTIES,
        noise: LoopNoise | None = None,
        w_ref: float | None = None,
        extra: ActivityLoss | None = None,
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and exact gradient: the arm's loss terms, the ANN's activity and weight penalties.

        The activity and weight penalties are the ANN's own (:meth:`cortexsim.ann.GRU.loss_and_grad`);
        ``extra``, one more term on ``h`` (e.g. a fit's neural term), is added to the loss and to dL/dh.
        """
        if noise is not None and not isinstance(noise, LoopNoise):
            noise = LoopNoise(process=noise)
        model, k = self.model, self.n_task_inputs
        p = model.params
        loop, u, h = self._run(batch, noise)
        terms = loop.losses(batch)
        act_l2 = penalties.rate_l2 * penalties.rate_cap**2
        g = h * self.dtype.type(2.0 * act_l2 / h.size)  # dL/dh from the activity penalty
        term = None if extra is None else extra(h, batch)
        if term is not None:
            g += term.grad
        w_out = p["w_out"].astype(float)
        w_fb = p["w_in"][:, k:].astype(float)  # (k H, channels)
        gy = np.zeros((batch.n_steps, batch.n_trials, self.body.n_muscles))
        g_f: dict[int, np.ndarray] = {}

        def before(t: int, g_t: np.ndarray) -> None:  # dL/dh[t] gets the readout's share
            gy[t] = loop.backward_step(t, g_f.pop(t, None))
            g_t += (gy[t] @ w_out).astype(self.dtype, copy=False)

        def drive(t: int, dx_t: np.ndarray) -> None:  # dL/d(input drive at t) -> dL/df[t]
            if self.body.feedback.enabled:
                g_f[t] = dx_t.astype(float) @ w_fb

        grads = model.backward(u, g, before, drive)
        grads["w_out"] = gy.reshape(-1, self.body.n_muscles).T @ h.reshape(-1, model.n_units).astype(float)
        grads["b_out"] = gy.sum((0, 1))
        w = p["w"]
        w_ref = float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) if w_ref is None else float(w_ref)
        grads["w"] += (2.0 * penalties.weight_l2 / (w.size * w_ref**2)) * w
        grads = {key: np.asarray(grads[key], dtype=self.dtype) for key in model.groups}
        act_loss = act_l2 * float(np.mean(h.astype(np.float64) ** 2))
        weight_loss = penalties.weight_l2 * float(np.mean(w.astype(np.float64) ** 2)) / w_ref**2
        habs = np.abs(h)
        stats = _loop_stats(terms, {"mean_rate": float(habs.mean()), "max_rate": float(habs.max())})
        stats |= {} if term is None else term.stats
        return terms["total"] + act_loss + weight_loss + (0.0 if term is None else term.loss), grads, stats


def _loop_stats(terms: dict[str, float], activity: dict[str, float]) -> dict[str, float]:
    """Training statistics of a closed-loop batch: the loop's terms and the model's ``mean_rate``, ``max_rate``."""
    return {
        "task_loss": terms["task"],
        "r2": terms["r2"],
        **activity,
        "effort": terms["effort"],
        "speed_loss": terms["speed"],
    }


def _trials_first(a: np.ndarray) -> np.ndarray:
    """(units, time, trials) -> a new contiguous (trials, time, units) array."""
    return np.ascontiguousarray(a.transpose(2, 1, 0))


__all__ = [
    "DEFAULT_ARM",
    "DEFAULT_FEEDBACK",
    "FEEDBACK_CHANNELS",
    "FEEDBACK_GROUPS",
    "ArmANN",
    "ArmLoop",
    "ArmRateNetwork",
    "Body",
    "BodyLoop",
    "Feedback",
    "LoopNoise",
    "LoopTrajectory",
]
