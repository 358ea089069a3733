"""The circuit drives the six-muscle arm in closed loop, with delayed, noisy sensory feedback.

The rate network of :mod:`cortexsim.rate` reads out six muscle excitations from PT5B (its only
output population) instead of a hand position; the arm (:class:`cortexsim.effector.ArmKernel`)
moves; what it senses comes back, delayed and noisy, as extra inputs to the populations the
anatomy names for such sources.  Per task step ``t`` (``dt``)::

    r[t] = phi(x[t]),  y[t] = W_out r_PT5B[t] + b_out                     (6,)
    e[t] = floor + (1 - floor) sigmoid(y[t])      (x (1 + motor_noise xi), clipped to [0, 1])
    s[t+1] = arm(s[t], e[t], endpoint load[t])    (q, dq, activation; 5 Euler sub-steps)
    f[t] = sensors(s[t - d]) + noise               (proprioception d = 2 steps, vision 7)
    x[t+1] = (1 - alpha) x[t] + alpha (W r[t] + B u[t] + B_fb f[t] + b) + process noise

Feedback ``f`` (14 channels, :data:`FEEDBACK_CHANNELS`): each muscle's fibre-length change from
the start posture (``length_gain`` per optimal fibre length) and fibre velocity
(``velocity_gain`` per ``vmax``) -- muscle-spindle-like proprioception -- and vision, the hand's
position relative to the shown target in units of the reach distance.  Before the delay has
elapsed the sensors report the start posture.  The hand position the task scores is the hand
relative to its start position (m), so every metric of the kinematic study applies unchanged.

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
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from . import _kernels
from .circuit import Connectome
from .effector import Arm26Params, ArmKernel, balanced_excitation, hand_position, muscle_lengths
from .errors import ConfigError
from .loss import DEFAULT_PENALTIES, Penalties, task_error
from .rate import RateNetwork
from .tasks import TrialBatch
from .transfer import Softplus, Transfer

FEEDBACK_CHANNELS: tuple[str, ...] = (
    *(f"length_{m}" for m in ("pectoralis", "deltoid", "brachioradialis", "tricepslat", "biceps", "tricepslong")),
    *(f"velocity_{m}" for m in ("pectoralis", "deltoid", "brachioradialis", "tricepslat", "biceps", "tricepslong")),
    "vision_x",
    "vision_y",
)
"""The feedback input channels, in order: 6 fibre lengths, 6 fibre velocities, 2 visual."""

DEFAULT_ARM = Arm26Params()
"""MotorNet's ``RigidTendonArm26`` numbers (:class:`cortexsim.effector.Arm26Params`)."""

FEEDBACK_GROUPS: tuple[str, ...] = ("proprioception",) * 12 + ("vision",) * 2
"""The circuit input group each feedback channel enters by."""


@dataclass(frozen=True)
class Feedback:
    """What the arm reports back to the circuit, and how late.

    Attributes
    ----------
    proprioception_delay, vision_delay : int
        Delays in task steps (>= 0).
    proprioception_noise, vision_noise : float
        SD of additive Gaussian noise on each channel, in the channel's own (normalised) units.
    length_gain : float
        Feedback per optimal fibre length of fibre-length change.
    velocity_gain : float
        Feedback per ``vmax`` of fibre velocity.
    vision_scale : float
        Distance (m) that makes one unit of visual feedback.
    enabled : bool
        False: the feedback channels carry zeros (an open loop; for lesion-like controls).
    """

    proprioception_delay: int = 2
    proprioception_noise: float = 0.01
    vision_delay: int = 7
    vision_noise: float = 0.01
    length_gain: float = 10.0
    velocity_gain: float = 20.0
    vision_scale: float = 0.1
    enabled: bool = True

    def __post_init__(self) -> None:
        for key in ("proprioception_delay", "vision_delay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f"feedback {key}: expected a whole number of steps >= 0, got {value!r}")
        for key in ("proprioception_noise", "vision_noise"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"feedback {key}: must be >= 0, got {getattr(self, key)!r}")
        for key in ("length_gain", "velocity_gain", "vision_scale"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"feedback {key}: must be > 0, got {getattr(self, key)!r}")

    @property
    def delays(self) -> np.ndarray:
        """Delay (steps) of each of the 14 channels."""
        return np.array([self.proprioception_delay] * 12 + [self.vision_delay] * 2)

    @property
    def noise_sd(self) -> np.ndarray:
        """Noise SD of each of the 14 channels."""
        return np.array([self.proprioception_noise] * 12 + [self.vision_noise] * 2)


@dataclass(frozen=True, eq=False)
class LoopNoise:
    """The random draws of one closed-loop batch (fixed, so that the gradient is exact).

    Attributes
    ----------
    process : ndarray, shape (time, trials, units), optional
        Process-noise increments of the circuit (mV), as :meth:`RateNetwork.noise` makes them.
    sensory : ndarray, shape (time, trials, 14), optional
        Additive feedback noise, already scaled by each channel's SD.
    motor : ndarray, shape (time, trials, 6), optional
        Standard normal draws of the signal-dependent motor noise.
    """

    process: np.ndarray | None = None
    sensory: np.ndarray | None = None
    motor: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class LoopTrajectory:
    """A closed-loop simulation of a batch, trials first.

    Attributes
    ----------
    states : ndarray, shape (trials, time, units)
        x (mV).
    rates : ndarray, shape (trials, time, units)
        r (Hz).
    hand : ndarray, shape (trials, time, 2)
        Hand position relative to the start position (m): the task's output.
    hand_shoulder : ndarray, shape (trials, time, 2)
        Hand position in the shoulder frame (m).
    q, dq : ndarray, shape (trials, time, 2)
        Joint angles (rad) and velocities (rad/s).
    activation, excitation : ndarray, shape (trials, time, 6)
        Muscle activation and the excitation the circuit sent (after motor noise).
    feedback : ndarray, shape (trials, time, 14)
        The feedback the circuit received (:data:`FEEDBACK_CHANNELS`).
    """

    states: np.ndarray
    rates: np.ndarray
    hand: np.ndarray
    hand_shoulder: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    activation: np.ndarray
    excitation: np.ndarray
    feedback: np.ndarray


class ArmRateNetwork(RateNetwork):
    """The rate circuit in closed loop with the six-muscle arm (see the module notes).

    Parameters
    ----------
    connectome, transfer, dt, noise_std, dtype, output_scale, kernel
        As for :class:`~cortexsim.rate.RateNetwork`; ``output_scale`` is the reach distance (m).
        The connectome must wire the input groups ``proprioception`` and ``vision``.
    task_groups : tuple of str
        Circuit input group of each task input channel.
    arm : Arm26Params
    substeps : int
        Arm integration sub-steps per task step.
    feedback : Feedback
    start_posture : ndarray, shape (2,), optional
        Initial joint angles (rad; default ``arm.start_posture``).
    excitation_floor : float
        Lowest excitation the sigmoid map gives (in [0, 1)).
    motor_noise : float
        Signal-dependent motor noise: excitation x (1 + motor_noise xi), xi ~ N(0, 1).
    endpoint_load : ndarray, shape (2,), optional
        Constant force on the hand (N) in every trial, unless a batch brings its own
        (``batch.params["endpoint_load"]``, shape (trials, time, 2)).
    effort_l2, speed_l2 : float
        Weights of the effort and speed terms of the loss.
    rest_excitation : float
        Mean co-contraction the initial readout holds the arm with.
    speed_scale : float
        Hand speed (m/s) that makes one unit of the speed term (the task's minimum-jerk peak
        speed, 1.875 distance / duration: 0.47 m/s for 10 cm in 0.4 s).
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
        arm: Arm26Params = DEFAULT_ARM,
        substeps: int = 5,
        feedback: Feedback = Feedback(),
        start_posture: np.ndarray | None = None,
        excitation_floor: float = 0.01,
        motor_noise: float = 0.0,
        endpoint_load: np.ndarray | None = None,
        effort_l2: float = 1e-3,
        speed_l2: float = 0.1,
        rest_excitation: float = 0.05,
        speed_scale: float = 0.47,
    ):
        super().__init__(
            connectome,
            transfer,
            dt,
            input_groups=tuple(task_groups) + FEEDBACK_GROUPS,
            n_outputs=6,
            noise_std=noise_std,
            dtype=dtype,
            output_scale=output_scale,
            kernel=kernel,
        )
        if not 0 <= excitation_floor < 1:
            raise ConfigError(f"effector.excitation_floor: {excitation_floor} must lie in [0, 1)")
        if motor_noise < 0:
            raise ConfigError(f"effector.motor_noise: {motor_noise} must be >= 0")
        self.n_task_inputs = len(task_groups)
        self.arm = ArmKernel(dt, arm, substeps)
        self.feedback = feedback
        self.start_posture = np.array(arm.start_posture if start_posture is None else start_posture, float)
        self.excitation_floor = float(excitation_floor)
        self.motor_noise = float(motor_noise)
        self.endpoint_load = np.zeros(2) if endpoint_load is None else np.asarray(endpoint_load, float)
        self.effort_l2, self.speed_l2 = float(effort_l2), float(speed_l2)
        self.rest_excitation = float(rest_excitation)
        self.speed_scale = float(speed_scale)
        self.hand0 = hand_position(self.start_posture, arm)
        lengths = muscle_lengths(self.start_posture, arm)
        self._length0 = (lengths - np.array(arm.tendon_length)) / np.array(arm.optimal_fibre_length)
        self.activation0 = balanced_excitation(self.start_posture, rest_excitation, arm)

    def __repr__(self) -> str:
        return super().__repr__().replace("<RateNetwork", "<ArmRateNetwork (six-muscle arm)")

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
            SD of the initial excitation change (in logit units) that the readout's random
            weights make when every readout unit fires ``rest_rate``.
        """
        params = super().init_params(rng, rest_rate, input_std, output_scale=self.output_scale)
        n_out = self.out_idx.size
        w_out = rng.normal(0.0, output_scale / (np.sqrt(n_out) * rest_rate), (6, n_out))
        r = np.full(n_out, rest_rate)
        e0 = (self.activation0 - self.excitation_floor) / (1.0 - self.excitation_floor)
        params["w_out"] = w_out
        params["b_out"] = np.log(e0 / (1.0 - e0)) - w_out @ r
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
        new = copy.copy(self)
        new._buffers, new._rec = {}, None
        new.feedback = Feedback(**{**self.feedback.__dict__, "enabled": False})
        return new

    # -- simulation ------------------------------------------------------------
    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> LoopNoise:
        """Process, sensory and motor noise of one batch (:class:`LoopNoise`)."""
        process = super().noise(n_trials, n_steps, rng) if self.noise_std > 0 else None
        sd = self.feedback.noise_sd
        sensory = rng.standard_normal((n_steps, n_trials, sd.size)) * sd if sd.any() else None
        motor = rng.standard_normal((n_steps, n_trials, 6)) if self.motor_noise > 0 else None
        return LoopNoise(process, sensory, motor)

    def _inputs(self, batch: TrialBatch) -> np.ndarray:
        """The batch's task inputs, (time, trials, task inputs); the feedback channels are the loop's own."""
        if abs(batch.dt - self.dt) > 1e-12:
            raise ConfigError(f"trial batch dt {batch.dt} s differs from the network's dt {self.dt} s")
        if batch.inputs.shape[2] != self.n_task_inputs:
            raise ConfigError(f"batch has {batch.inputs.shape[2]} input channels, network {self.n_task_inputs}")
        return np.ascontiguousarray(batch.inputs.transpose(1, 0, 2), dtype=self.dtype)

    def _loads(self, batch: TrialBatch) -> np.ndarray:
        """Endpoint force of every step, (time, trials, 2) float64 (N)."""
        load = batch.params.get("endpoint_load")
        if load is None:
            return np.ascontiguousarray(np.broadcast_to(self.endpoint_load, (batch.n_steps, batch.n_trials, 2)))
        load = np.asarray(load, float)
        if load.shape != (batch.n_trials, batch.n_steps, 2):
            raise ConfigError(
                f"batch endpoint_load has shape {load.shape}, expected {(batch.n_trials, batch.n_steps, 2)}"
            )
        return np.ascontiguousarray(load.transpose(1, 0, 2))

    def _goals(self, u: np.ndarray) -> np.ndarray:
        """Shown target position relative to the start (m), (time, trials, 2): the target inputs x distance."""
        return u[:, :, :2].astype(float) * self.output_scale

    def _forward_loop(self, batch: TrialBatch, noise: LoopNoise | None, store_states: bool, rate_stats=None):
        """Run circuit and arm together; fills the buffers ``r`` (and ``x``) (units, time, trials).

        Returns a dict of the time-major loop records: ``y`` (time, trials, 6) readout,
        ``e`` excitation sent, ``s`` arm states (time, trials, 10), ``tape``, ``z`` raw sensor
        readings (time, trials, 14), ``f`` feedback received, ``u`` task inputs, ``load``.
        """
        p, alpha = self.params, self.alpha
        u = self._inputs(batch)
        n_steps, n_trials, _ = u.shape
        n, k_task = self.n_units, self.n_task_inputs
        process = None if noise is None else noise.process
        sensory = None if noise is None else noise.sensory
        motor = None if noise is None else noise.motor
        rec = self._recurrence()
        rec.set_weights(p["w"])
        rates = self._buffer("r", (n, n_steps, n_trials))
        states = self._buffer("x", (n, n_steps, n_trials)) if store_states else None
        drive = self._buffer("drive", (n_steps, n, n_trials))
        np.matmul(p["w_in"][:, :k_task] * alpha[:, None], u.transpose(0, 2, 1), out=drive)
        drive += (alpha * p["b"])[:, None]
        w_fb = np.ascontiguousarray(p["w_in"][:, k_task:] * alpha[:, None])  # (units, 14)
        if process is not None:
            if process.shape != (n_steps, n_trials, n):
                raise ValueError(f"noise has shape {process.shape}, expected {(n_steps, n_trials, n)}")
            process = process.transpose(0, 2, 1)
        loads = self._loads(batch)
        goals = self._goals(u)
        fb = self.feedback
        leak = (1.0 - alpha).astype(self.dtype)[:, None]
        x_now, x_next = self._buffer("x_now", (n, n_trials)), self._buffer("x_next", (n, n_trials))
        r_now, tmp = self._buffer("r_now", (n, n_trials)), self._buffer("tmp", (n, n_trials))
        x_now[...] = p["x0"][:, None]
        arm = self.arm
        s = np.empty((n_steps, n_trials, arm.N_STATE))
        s[0] = arm.initial(n_trials, self.start_posture)
        s[0, :, 4:] = self.activation0
        tape = np.empty((n_steps, n_trials, arm.substeps, _tape_width(arm)))
        z = np.empty((n_steps, n_trials, arm.N_SENSE))
        arm.sense(s[0], z[0])
        f = np.zeros((n_steps, n_trials, arm.N_SENSE))
        y = np.empty((n_steps, n_trials, 6))
        e = np.empty((n_steps, n_trials, 6))
        w_out, b_out = p["w_out"].astype(float), p["b_out"].astype(float)
        out_rows, floor = self._out_rows, self.excitation_floor
        phi = self.transfer
        fast = (phi.gain, phi.threshold, phi.softness) if isinstance(phi, Softplus) else None
        keep = None if self._keep is None else self._keep[:, None]
        with np.errstate(over="ignore"):
            for t in range(n_steps):
                if fast is not None:
                    top = _kernels.softplus(x_now, r_now, *fast)
                    if not math.isfinite(top):
                        phi(x_now, out=r_now)
                else:
                    phi(x_now, out=r_now)
                    top = math.nan
                if keep is not None:
                    r_now *= keep
                rates[:, t, :] = r_now
                if states is not None:
                    states[:, t, :] = x_now
                if rate_stats is not None:
                    rate_stats[t, 0] = r_now.sum()
                    rate_stats[t, 2] = top if keep is None and math.isfinite(top) else r_now.max()
                    np.multiply(r_now, r_now, out=tmp)
                    rate_stats[t, 1] = tmp.sum()
                # excitation and the arm
                y[t] = (w_out @ r_now[out_rows]).T + b_out
                e[t] = floor + (1.0 - floor) * expit(y[t])
                if motor is not None:
                    e[t] = np.clip(e[t] * (1.0 + self.motor_noise * motor[t]), 0.0, 1.0)
                if t + 1 < n_steps:
                    arm.step(s[t], e[t], loads[t], s[t + 1], tape[t])
                    arm.sense(s[t + 1], z[t + 1])
                # feedback received at t: the sensors at t - delay
                if fb.enabled:
                    self._feedback(t, z, goals, f[t])
                    if sensory is not None:
                        f[t] += sensory[t]
                if t + 1 < n_steps:
                    np.multiply(x_now, leak, out=x_next)
                    x_next += drive[t]
                    x_next += (w_fb @ f[t].T.astype(self.dtype)).astype(self.dtype, copy=False)
                    if process is not None:
                        x_next += process[t]
                    rec.forward(r_now, x_next, tmp)
                    x_now, x_next = x_next, x_now
        return {"y": y, "e": e, "s": s, "tape": tape, "z": z, "f": f, "u": u, "load": loads, "goals": goals}

    def _feedback(self, t: int, z: np.ndarray, goals: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` (trials, 14) with the feedback of step ``t``: the sensors ``z`` at ``t - delay``.

        ``z`` (time, trials, 14) raw readings, ``goals`` (time, trials, 2) the shown target (m).
        """
        fb = self.feedback
        dp, dv = max(t - fb.proprioception_delay, 0), max(t - fb.vision_delay, 0)
        out[:, :6] = fb.length_gain * (z[dp, :, :6] - self._length0)
        out[:, 6:12] = fb.velocity_gain * z[dp, :, 6:12]
        out[:, 12:] = (z[dv, :, 12:] - self.hand0 - goals[dv]) / fb.vision_scale

    def simulate_loop(self, batch: TrialBatch, rng: np.random.Generator | None = None) -> LoopTrajectory:
        """Simulate a batch in closed loop (noise-free without ``rng``); see :class:`LoopTrajectory`."""
        noise = None if rng is None else self.noise(batch.n_trials, batch.n_steps, rng)
        rec = self._forward_loop(batch, noise, store_states=True)
        s = rec["s"].transpose(1, 0, 2)
        hand = rec["z"][:, :, 12:].transpose(1, 0, 2)
        return LoopTrajectory(
            states=_trials_first(self._buffers["x"]),
            rates=_trials_first(self._buffers["r"]),
            hand=hand - self.hand0,
            hand_shoulder=hand.copy(),
            q=s[:, :, :2].copy(),
            dq=s[:, :, 2:4].copy(),
            activation=s[:, :, 4:].copy(),
            excitation=rec["e"].transpose(1, 0, 2).copy(),
            feedback=rec["f"].transpose(1, 0, 2).copy(),
        )

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """States (mV), rates (Hz) and the hand relative to its start (m), each (trials, time, ...)."""
        loop = self.simulate_loop(batch, rng)
        return loop.states, loop.rates, loop.hand

    # -- loss and gradients ----------------------------------------------------------
    def loss_and_grad(
        self,
        batch: TrialBatch,
        penalties: Penalties = DEFAULT_PENALTIES,
        noise: LoopNoise | None = None,
        w_ref: float | None = None,
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and its exact gradient for every trainable group, through circuit, arm and feedback.

        Loss = position loss of the hand (as :meth:`RateNetwork.loss_and_grad`)
        + speed_l2 mean(mask ((dh - dh*) / (dt v_peak))^2) + effort_l2 mean(a^2)
        + the rate and weight penalties, where ``dh`` is the hand's displacement over one step,
        ``dh*`` the target's, ``v_peak`` :attr:`speed_scale` and ``a`` the muscle activations.

        Parameters
        ----------
        batch : TrialBatch
        penalties : Penalties
        noise : LoopNoise, optional
            Fixed process, sensory and motor noise (see :meth:`noise`).
        w_ref : float, optional
            Reference magnitude for the weight penalty (default: current RMS magnitude).

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
        stats : dict of str to float
            ``task_loss``, ``r2``, ``mean_rate``, ``max_rate``, ``effort`` (mean squared
            activation), ``speed_loss``.
        """
        if noise is not None and not isinstance(noise, LoopNoise):
            noise = LoopNoise(process=noise)
        p, alpha, phi = self.params, self.alpha, self.transfer
        softplus = isinstance(phi, Softplus)
        n_steps, n_trials = batch.n_steps, batch.n_trials
        rate_stats = np.empty((n_steps, 3), np.float64)
        loop = self._forward_loop(batch, noise, store_states=not softplus, rate_stats=rate_stats)
        rates = self._buffers["r"]
        states = None if softplus else self._buffers["x"]
        rec = self._rec
        n = self.n_units
        s, z, f, y, e, tape, loads = (loop[k] for k in ("s", "z", "f", "y", "e", "tape", "load"))
        hand = z[:, :, 12:] - self.hand0
        target = batch.targets.transpose(1, 0, 2).astype(float)
        mask = batch.mask.transpose(1, 0, 2).astype(float)
        error = task_error(hand, target, mask, self.output_scale)
        g_z = np.zeros_like(z)
        g_z[:, :, 12:] = error.grad
        # speed: the hand's step displacement against the target's
        step_mask = mask[1:] * mask[:-1]
        scale = self.dt * self.speed_scale
        speed_err = ((hand[1:] - hand[:-1]) - (target[1:] - target[:-1])) / scale
        count = max(float(step_mask.sum()), 1.0)
        speed_loss = self.speed_l2 * float(np.sum(step_mask * speed_err**2)) / count
        g_speed = 2.0 * self.speed_l2 * step_mask * speed_err / (count * scale)
        g_z[1:, :, 12:] += g_speed
        g_z[:-1, :, 12:] -= g_speed
        # effort: mean squared activation
        act = s[:, :, 4:]
        effort = float(np.mean(act**2))
        g_act = 2.0 * self.effort_l2 * act / act.size

        fb, arm = self.feedback, self.arm
        w_fb = p["w_in"][:, self.n_task_inputs :] * alpha[:, None]  # (units, 14)
        gain = np.concatenate(
            [np.full(6, fb.length_gain), np.full(6, fb.velocity_gain), np.full(2, 1 / fb.vision_scale)]
        )
        lam = np.zeros((n_trials, arm.N_STATE))  # dL/ds[t + 1]
        g_s = np.zeros((n_trials, arm.N_STATE))
        g_e = np.zeros((n_trials, 6))
        gy = np.zeros((n_steps, n_trials, 6))
        w_out_t = p["w_out"].astype(float).T  # (readout units, 6)
        floor, motor = self.excitation_floor, None if noise is None else noise.motor
        dp, dv = fb.proprioception_delay, fb.vision_delay

        def readout_grad(t: int, g_next: np.ndarray | None) -> np.ndarray:
            """dL/dr of the readout units at step t, given dL/dx[t + 1]."""
            nonlocal lam, g_s
            if g_next is not None and fb.enabled:  # feedback f[t] = sensors(s[t - d]) entered x[t + 1]
                g_f = (w_fb.T @ g_next).T.astype(float) * gain  # (trials, 14)
                if t - dp >= 1:
                    g_z[t - dp, :, :12] += g_f[:, :12]
                if t - dv >= 1:
                    g_z[t - dv, :, 12:] += g_f[:, 12:]
            if t + 1 < n_steps:
                arm.backward(tape[t], loads[t], lam, g_s, g_e)
            else:
                g_s[...] = 0.0
                g_e[...] = 0.0
            if t >= 1:  # s[0] is fixed
                arm.sense_backward(s[t], g_z[t], g_s)
                g_s[:, 4:] += g_act[t]
            lam, g_s = g_s, lam
            ge = g_e
            if motor is not None:
                raw = floor + (1.0 - floor) * expit(y[t])
                noisy = raw * (1.0 + self.motor_noise * motor[t])
                ge = ge * (1.0 + self.motor_noise * motor[t]) * ((noisy >= 0.0) & (noisy <= 1.0))
            sig = expit(y[t])
            gy[t] = ge * (1.0 - floor) * sig * (1.0 - sig)
            return (w_out_t @ gy[t].T).astype(self.dtype, copy=False)

        gx = self._buffer("g", rates.shape)
        dw = _kernels.WeightGradient(rec, gx, rates, self.gradient_threads)
        try:
            sum_over2 = self._backward(rates, states, rate_stats, readout_grad, penalties, gx, dw)
        finally:
            dw.close()
        dw_syn = dw.result()

        gx1 = gx[:, 1:, :].reshape(n, -1)  # dL/dx[t+1], paired with r[t] and the inputs of step t
        w_vals = rec.values
        n_syn = max(rec.n_synapses, 1)
        sum_w2 = float(np.sum(w_vals.astype(np.float64) ** 2))
        w_ref = float(np.sqrt(sum_w2 / n_syn)) if w_ref is None else w_ref
        c_weight = 2.0 * penalties.weight_l2 / (n_syn * w_ref**2)
        grad_w = np.zeros((n, n), self.dtype)
        grad_w.reshape(-1)[rec.flat] = dw_syn * rec.coef + self.dtype.type(c_weight) * w_vals
        inputs = np.concatenate([loop["u"][:-1], f[:-1].astype(self.dtype)], axis=2)
        gy_t = gy.transpose(2, 0, 1).reshape(6, -1)
        grads = {
            "w": grad_w,
            "w_in": ((gx1 @ inputs.reshape(-1, self.n_inputs)) * alpha[:, None]) * self.in_mask,
            "b": gx1.sum(axis=1) * alpha,
            "w_out": gy_t @ self._readout_rates(rates).reshape(self.out_idx.size, -1).T.astype(float),
            "b_out": gy.sum((0, 1)),
            "x0": gx[:, 0, :].sum(axis=1),
        }
        grads = {k: np.asarray(g, dtype=self.dtype) for k, g in grads.items()}
        size = rates.size
        sum_r, sum_r2 = (float(v) for v in rate_stats[:, :2].sum(axis=0))
        rate_loss = (penalties.rate_l2 * sum_r2 + penalties.rate_cap_l2 * sum_over2) / size
        weight_loss = penalties.weight_l2 * sum_w2 / (n_syn * w_ref**2)
        stats = {
            "task_loss": error.loss,
            "r2": error.r2,
            "mean_rate": sum_r / size,
            "max_rate": float(rate_stats[:, 2].max()),
            "effort": effort,
            "speed_loss": speed_loss,
        }
        loss = error.loss + speed_loss + self.effort_l2 * effort + rate_loss + weight_loss
        return loss, grads, stats


def _tape_width(arm: ArmKernel) -> int:
    return arm.tape(1).shape[2]


def _trials_first(a: np.ndarray) -> np.ndarray:
    """(units, time, trials) -> a new contiguous (trials, time, units) array."""
    return np.ascontiguousarray(a.transpose(2, 1, 0))
