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
from dataclasses import dataclass, replace

import numpy as np

from . import _plant, closed_loop_map
from .circuit import Connectome
from .effector import Arm26Params, ArmKernel, balanced_excitation, hand_position, muscle_lengths
from .errors import ConfigError
from .loss import DEFAULT_PENALTIES, Penalties, task_error
from .model import Jacobian, Step, Trajectory
from .rate import GROUPS, RateNetwork
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
    def noise_sd(self) -> np.ndarray:
        """Noise SD of each of the 14 channels."""
        return np.array([self.proprioception_noise] * 12 + [self.vision_noise] * 2)


DEFAULT_FEEDBACK = Feedback()
"""The default feedback: proprioception 2 steps late, vision 7, noise SD 0.01 per channel."""


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
    states : ndarray, shape (trials, time, d)
        The model's state: the circuit's x (mV); an ANN's h, or the LSTM's ``[h, c]``.
    rates : ndarray, shape (trials, time, units)
        The activity: the circuit's r (Hz); an ANN's h.
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


@dataclass(frozen=True, eq=False)
class Body:
    """The body side of a closed loop: the arm, its sensors and how the model's readout drives it.

    Shared by every model that drives the arm (:class:`ArmRateNetwork`, :class:`ArmANN`), so that
    they move the same plant, receive the same feedback with the same delays and pay the same
    costs.  Make one with :meth:`make`.

    Attributes
    ----------
    arm : ArmKernel
        The plant, stepped at the task's ``dt``.
    feedback : Feedback
    start_posture : ndarray, shape (2,)
        Initial joint angles (rad).
    activation0 : ndarray, shape (6,)
        Initial muscle activation: the co-contraction that holds the start posture still.
    excitation_floor, motor_noise : float
        See :class:`ArmRateNetwork`.
    endpoint_load : ndarray, shape (2,)
        Constant force on the hand (N) unless a batch brings its own.
    reach, speed_scale : float
        Reach distance (m) and the minimum-jerk peak speed (m/s): units of the position and
        speed terms of the loss.
    effort_l2, speed_l2 : float
        Weights of the effort and speed terms.
    hand0 : ndarray, shape (2,)
        Hand position at the start posture, shoulder frame (m).
    length0 : ndarray, shape (6,)
        Fibre lengths at the start posture, in optimal fibre lengths.
    """

    arm: ArmKernel
    feedback: Feedback
    start_posture: np.ndarray
    activation0: np.ndarray
    excitation_floor: float
    motor_noise: float
    endpoint_load: np.ndarray
    reach: float
    speed_scale: float
    effort_l2: float
    speed_l2: float
    hand0: np.ndarray
    length0: np.ndarray

    @classmethod
    def make(
        cls,
        dt: float,
        *,
        arm: Arm26Params = DEFAULT_ARM,
        substeps: int = 5,
        feedback: Feedback = DEFAULT_FEEDBACK,
        start_posture: np.ndarray | None = None,
        excitation_floor: float = 0.01,
        motor_noise: float = 0.0,
        endpoint_load: np.ndarray | None = None,
        reach: float = 0.1,
        speed_scale: float = 0.47,
        effort_l2: float = 1e-3,
        speed_l2: float = 1.0,
        rest_excitation: float = 0.05,
    ) -> Body:
        """A body with the arm at ``start_posture`` (default: ``arm.start_posture``), held by ``rest_excitation``."""
        if not 0 <= excitation_floor < 1:
            raise ConfigError(f"effector.excitation_floor: {excitation_floor} must lie in [0, 1)")
        if motor_noise < 0:
            raise ConfigError(f"effector.motor_noise: {motor_noise} must be >= 0")
        posture = np.array(arm.start_posture if start_posture is None else start_posture, float)
        lengths = muscle_lengths(posture, arm)
        return cls(
            arm=ArmKernel(dt, arm, substeps),
            feedback=feedback,
            start_posture=posture,
            activation0=balanced_excitation(posture, rest_excitation, arm),
            excitation_floor=float(excitation_floor),
            motor_noise=float(motor_noise),
            endpoint_load=np.zeros(2) if endpoint_load is None else np.asarray(endpoint_load, float),
            reach=float(reach),
            speed_scale=float(speed_scale),
            effort_l2=float(effort_l2),
            speed_l2=float(speed_l2),
            hand0=hand_position(posture, arm),
            length0=(lengths - np.array(arm.tendon_length)) / np.array(arm.optimal_fibre_length),
        )

    def with_curl(self, curl: np.ndarray | None) -> Body:
        """The same body in the velocity-dependent force field ``f = curl @ v`` on the hand (N s/m; None: none)."""
        return replace(self, arm=self.arm.with_curl(curl))

    def with_feedback(self, enabled: bool) -> Body:
        """The same body with its feedback channels on or off (off: they carry zeros)."""
        return replace(self, feedback=replace(self.feedback, enabled=enabled))

    def rest_logit(self) -> np.ndarray:
        """The readout value (before the sigmoid) that sends :attr:`activation0`, shape (6,)."""
        e0 = (self.activation0 - self.excitation_floor) / (1.0 - self.excitation_floor)
        return np.log(e0 / (1.0 - e0))

    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray | None, ...]:
        """Sensory (time, trials, 14; already scaled) and motor (time, trials, 6) draws of one batch."""
        sd = self.feedback.noise_sd
        sensory = rng.standard_normal((n_steps, n_trials, sd.size)) * sd if sd.any() else None
        motor = rng.standard_normal((n_steps, n_trials, 6)) if self.motor_noise > 0 else None
        return sensory, motor


class ArmLoop:
    """One batch in closed loop, body side: excitation map, arm, sensors, delay lines -- and their adjoint.

    A model drives it step by step: ``f = loop.step(t, y)`` takes the readout ``y[t]`` (trials, 6),
    sends the excitation, advances the arm and returns the feedback ``f[t]`` (trials, 14) the
    model receives at step ``t`` (it enters the model's state at ``t + 1``).  After the forward
    pass, :meth:`losses` scores the hand and the effort; then, latest step first,
    ``dy = loop.backward_step(t, df)`` takes dL/df[t] (None for the last step) and returns
    dL/dy[t], the readout's gradient, exact through the arm and the delays.

    Parameters
    ----------
    body : Body
    batch : TrialBatch
        Its first two input channels are the target direction (cos, sin) from target onset on.
    noise : LoopNoise, optional
        Its sensory and motor draws are used (the process noise is the model's).
    """

    def __init__(self, body: Body, batch: TrialBatch, noise: LoopNoise | None = None):
        self.body = body
        arm = body.arm
        T, n = batch.n_steps, batch.n_trials
        self.n_steps, self.n_trials = T, n
        load = batch.params.get("endpoint_load")
        if load is None:
            self.loads = np.ascontiguousarray(np.broadcast_to(body.endpoint_load, (T, n, 2)))
        else:
            load = np.asarray(load, float)
            if load.shape != (n, T, 2):
                raise ConfigError(f"batch endpoint_load has shape {load.shape}, expected {(n, T, 2)}")
            self.loads = np.ascontiguousarray(load.transpose(1, 0, 2))
        self.goals = batch.inputs[:, :, :2].transpose(1, 0, 2).astype(float) * body.reach
        self.sensory = None if noise is None else noise.sensory
        self.motor = None if noise is None else noise.motor
        self.s = np.empty((T, n, arm.N_STATE))
        self.s[0] = arm.initial(n, body.start_posture)
        self.s[0, :, 4:] = body.activation0
        self.tape = np.empty((T, n, arm.substeps, arm.tape(1).shape[2]))
        self.z = np.empty((T, n, arm.N_SENSE))
        arm.sense(self.s[0], self.z[0])
        self.f = np.zeros((T, n, arm.N_SENSE))
        self.y = np.empty((T, n, 6))
        self.e = np.empty((T, n, 6))
        fb = body.feedback
        self._gain = np.array([fb.length_gain, fb.velocity_gain, 1.0 / fb.vision_scale])
        self._none6, self._none14 = np.empty((0, 6)), np.empty((0, 14))

    # -- forward ------------------------------------------------------------------------
    def step(self, t: int, y: np.ndarray) -> np.ndarray:
        """Send the readout ``y`` (trials, 6) of step ``t``; returns the feedback of step ``t`` (trials, 14)."""
        self.send(t, y)
        return self.feedback(t)

    def send(self, t: int, y: np.ndarray) -> None:
        """Send the readout ``y`` (trials, 6) of step ``t``: excitation ``e[t]``, then the arm moves to ``s[t + 1]``."""
        body, arm = self.body, self.body.arm
        self.y[t] = y
        advance = t + 1 < self.n_steps
        nxt = min(t + 1, self.n_steps - 1)
        _plant.loop_send(
            self.y[t], body.excitation_floor, body.motor_noise, self._motor(t), self.s[t], self.loads[t], arm.curl,
            arm.scal, arm.mus, arm.h, arm.substeps, advance, self.e[t], self.s[nxt], self.tape[t], self.z[nxt],
        )  # fmt: skip

    def feedback(self, t: int) -> np.ndarray:
        """The feedback ``f[t]`` (trials, 14) the model receives at step ``t``.

        It reads the sensors at ``t - delay``, so it is known as soon as the readout of step
        ``t - 1`` has been sent (``send(t - 1, ...)``): a model whose readout lags (the spiking
        twin's rates are filtered spikes) can still receive it on time.
        """
        body, fb, out = self.body, self.body.feedback, self.f[t]
        if fb.enabled:
            sensory = self._none14 if self.sensory is None else self.sensory[t]
            _plant.loop_feedback(
                self.z, t, fb.proprioception_delay, fb.vision_delay, self._gain, body.length0, body.hand0,
                self.goals, sensory, out,
            )  # fmt: skip
        return out

    def _motor(self, t: int) -> np.ndarray:
        """The motor-noise draws of step ``t`` (trials, 6), or an empty (0, 6) array."""
        return self._none6 if self.motor is None else self.motor[t]

    @property
    def hand(self) -> np.ndarray:
        """Hand position relative to its start (m), (time, trials, 2)."""
        return self.z[:, :, 12:] - self.body.hand0

    def trajectory(self, states: np.ndarray, rates: np.ndarray) -> LoopTrajectory:
        """The loop's record, trials first, with the model's ``states`` and ``rates`` (trials, time, units)."""
        s = self.s.transpose(1, 0, 2)
        hand = self.z[:, :, 12:].transpose(1, 0, 2)
        return LoopTrajectory(
            states=states,
            rates=rates,
            hand=hand - self.body.hand0,
            hand_shoulder=hand.copy(),
            q=s[:, :, :2].copy(),
            dq=s[:, :, 2:4].copy(),
            activation=s[:, :, 4:].copy(),
            excitation=self.e.transpose(1, 0, 2).copy(),
            feedback=self.f.transpose(1, 0, 2).copy(),
        )

    # -- loss and adjoint ----------------------------------------------------------------
    def losses(self, batch: TrialBatch) -> dict[str, float]:
        """Score the hand and the effort; prepares :meth:`backward_step`.

        Returns
        -------
        dict
            ``task`` (position loss), ``r2``, ``speed`` (weighted speed term), ``effort`` (mean
            squared activation, unweighted) and ``total`` (task + speed + effort_l2 effort).
        """
        body = self.body
        hand = self.hand
        target = batch.targets.transpose(1, 0, 2).astype(float)
        mask = batch.mask.transpose(1, 0, 2).astype(float)
        error = task_error(hand, target, mask, body.reach)
        self.g_z = np.zeros_like(self.z)
        self.g_z[:, :, 12:] = error.grad
        step_mask = mask[1:] * mask[:-1]
        free = batch.params.get("speed_free")  # (trials, time): 1 where a correction may move at any speed
        if free is not None:
            step_mask = step_mask * (1.0 - np.asarray(free, float).T[1:, :, None])
        scale = body.arm.dt * body.speed_scale
        speed_err = ((hand[1:] - hand[:-1]) - (target[1:] - target[:-1])) / scale
        count = max(float(step_mask.sum()), 1.0)
        speed = body.speed_l2 * float(np.sum(step_mask * speed_err**2)) / count
        g_speed = 2.0 * body.speed_l2 * step_mask * speed_err / (count * scale)
        self.g_z[1:, :, 12:] += g_speed
        self.g_z[:-1, :, 12:] -= g_speed
        act = self.s[:, :, 4:]
        effort = float(np.mean(act**2))
        self.g_act = 2.0 * body.effort_l2 * act / act.size
        n = self.n_trials
        self._lam = np.zeros((n, body.arm.N_STATE))  # dL/ds[t + 1]
        self._g_s = np.zeros((n, body.arm.N_STATE))
        self._g_e = np.zeros((n, 6))
        total = error.loss + speed + body.effort_l2 * effort
        return {"task": error.loss, "r2": error.r2, "speed": speed, "effort": effort, "total": total}

    def backward_step(self, t: int, g_f: np.ndarray | None) -> np.ndarray:
        """dL/dy[t] (trials, 6), given dL/df[t] (trials, 14; None when f[t] reached nothing).

        Call for t = T - 1, ..., 0 in turn, after :meth:`losses`.
        """
        body, arm, fb = self.body, self.body.arm, self.body.feedback
        g_f = self._none14 if g_f is None or not fb.enabled else np.ascontiguousarray(g_f, dtype=float)
        g_y = np.empty((self.n_trials, 6))
        _plant.loop_backward(
            t, g_f, fb.proprioception_delay, fb.vision_delay, self._gain, self.g_z, self.tape[t], self.loads[t],
            arm.curl, arm.scal, arm.mus, arm.h, arm.substeps, t + 1 < self.n_steps, self.s[t], self.g_act[t],
            self._lam, self._g_s, self._g_e, self.y[t], body.excitation_floor, body.motor_noise, self._motor(t), g_y,
        )  # fmt: skip
        self._lam, self._g_s = self._g_s, self._lam
        return g_y


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
        self.n_task_inputs = len(task_groups)
        self.body = Body.make(dt, reach=output_scale) if body is None else body

    def __repr__(self) -> str:
        return super().__repr__().replace("<RateNetwork", "<ArmRateNetwork (six-muscle arm)")

    @property
    def arm(self) -> ArmKernel:
        """The plant."""
        return self.body.arm

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
        w_out = rng.normal(0.0, output_scale / (np.sqrt(n_out) * rest_rate), (6, n_out))
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
        self, batch: TrialBatch, noise: LoopNoise | None, store_states: bool, rate_stats: np.ndarray | None = None
    ) -> tuple[ArmLoop, np.ndarray]:
        """Run circuit and arm together; fills the buffers ``r`` (and ``x``) (units, time, trials).

        Returns the :class:`ArmLoop` and the task inputs (time, trials, task inputs).
        """
        p, k = self.params, self.n_task_inputs
        u = self._inputs(batch)
        n_steps, n_trials, _ = u.shape
        inputs = np.zeros((n_steps, n_trials, self.n_inputs), self.dtype)  # the feedback columns: filled below
        inputs[:, :, :k] = u
        loop = ArmLoop(self.body, batch, noise)
        w_fb = np.ascontiguousarray(p["w_in"][:, k:] * self.alpha[:, None])  # (units, 14)
        fb_drive = self._buffer("fb_drive", (self.n_units, n_trials))
        w_out, b_out = p["w_out"].astype(float), p["b_out"].astype(float)
        out_rows, enabled = self._out_rows, self.body.feedback.enabled

        def step(t: int, r_now: np.ndarray) -> np.ndarray | None:
            f = loop.step(t, (w_out @ r_now[out_rows]).T + b_out)
            inputs[t, :, k:] = f
            if not enabled or t + 1 == n_steps:
                return None
            return np.matmul(w_fb, inputs[t, :, k:].T, out=fb_drive)

        self._forward(inputs, None if noise is None else noise.process, store_states, rate_stats, step)
        return loop, inputs

    def simulate_loop(self, batch: TrialBatch, rng: np.random.Generator | None = None) -> LoopTrajectory:
        """Simulate a batch in closed loop (noise-free without ``rng``); see :class:`LoopTrajectory`."""
        noise = None if rng is None else self.noise(batch.n_trials, batch.n_steps, rng)
        loop, _ = self._forward_loop(batch, noise, store_states=True)
        return loop.trajectory(_trials_first(self._buffers["x"]), _trials_first(self._buffers["r"]))

    def simulate(self, batch: TrialBatch, rng: np.random.Generator | None = None) -> Trajectory:
        """States x (mV), rates (Hz: the activity) and the hand relative to its start (m), each (trials, time, ...).

        ``body`` holds the whole closed loop's record (:class:`LoopTrajectory`).
        """
        loop = self.simulate_loop(batch, rng)
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
        p, alpha = self.params, self.alpha
        softplus = isinstance(self.transfer, Softplus)
        rate_stats = np.empty((batch.n_steps, 3), np.float64)
        loop, inputs = self._forward_loop(batch, noise, store_states=not softplus, rate_stats=rate_stats)
        rates = self._buffers["r"]
        states = None if softplus else self._buffers["x"]
        terms = loop.losses(batch)
        w_fb = p["w_in"][:, self.n_task_inputs :] * alpha[:, None]  # (units, 14)
        w_out_t = p["w_out"].astype(float).T  # (readout units, 6)
        gy = np.zeros((batch.n_steps, batch.n_trials, 6))

        def readout_grad(t: int, g_next: np.ndarray | None) -> np.ndarray:
            """dL/dr of the readout units at step t, given dL/dx[t + 1] (None at the last step)."""
            g_f = None if g_next is None else (w_fb.T @ g_next).T.astype(float)
            gy[t] = loop.backward_step(t, g_f)
            return (w_out_t @ gy[t].T).astype(self.dtype, copy=False)

        grads, (rate_loss, weight_loss), stats = self._backprop(
            inputs, states, rate_stats, readout_grad, penalties, w_ref
        )
        gy_t = gy.transpose(2, 0, 1).reshape(6, -1)
        grads["w_out"] = gy_t @ self._readout_rates(rates).reshape(self.out_idx.size, -1).T.astype(float)
        grads["b_out"] = gy.sum((0, 1))
        grads = {k: np.asarray(grads[k], dtype=self.dtype) for k in GROUPS}
        stats = _loop_stats(terms, stats)
        return terms["total"] + rate_loss + weight_loss, grads, stats


class ArmANN:
    """An ANN baseline driving the same arm, with the same feedback and delays as the circuit.

    The ANN (:class:`cortexsim.ann.LeakyRNN`, ``GRU`` or ``LSTM``) gets the task inputs and the
    14 feedback channels as inputs and reads out the six excitation logits from its hidden state
    ``h``: ``y = W_out h + b_out`` through the :class:`Body`'s excitation map.  Its gradient is
    exact, through the ANN's own backpropagation and :class:`ArmLoop`'s adjoint.

    Parameters
    ----------
    model : LeakyRNN, GRU or LSTM
        Built with ``n_inputs = task inputs + 14`` and ``n_outputs = 6``.
    body : Body
    n_task_inputs : int
        Task input channels (3 for the center-out task).
    """

    def __init__(self, model, body: Body, n_task_inputs: int = 3):
        if model.n_inputs != n_task_inputs + len(FEEDBACK_CHANNELS) or model.n_outputs != 6:
            raise ConfigError(
                f"ArmANN: the {model.arch} must have {n_task_inputs + len(FEEDBACK_CHANNELS)} inputs and 6 outputs, "
                f"got {model.n_inputs} and {model.n_outputs}"
            )
        self.model, self.body, self.n_task_inputs = model, body, n_task_inputs
        self.arch = model.arch
        self.dt, self.dtype, self.n_units = model.dt, model.dtype, model.n_units

    def __repr__(self) -> str:
        return repr(self.model)[:-1] + ", driving the six-muscle arm>"

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
        params["w_out"] = rng.normal(0.0, 0.01 / np.sqrt(n), (6, n))
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
    def _run(self, batch: TrialBatch, noise: LoopNoise | None) -> tuple[ArmLoop, np.ndarray, np.ndarray]:
        """Forward pass in closed loop: the loop, the full inputs (time, trials, 17) and ``h``."""
        model, k = self.model, self.n_task_inputs
        if abs(batch.dt - self.dt) > 1e-12:
            raise ConfigError(f"trial batch dt {batch.dt} s differs from the network's dt {self.dt} s")
        if batch.inputs.shape[2] != k:
            raise ConfigError(f"batch has {batch.inputs.shape[2]} input channels, network {k}")
        u = np.zeros((batch.n_steps, batch.n_trials, model.n_inputs), self.dtype)
        u[:, :, :k] = batch.inputs.transpose(1, 0, 2)
        loop = ArmLoop(self.body, batch, noise)
        p = model.params
        w_out, b_out = p["w_out"].astype(float), p["b_out"].astype(float)
        w_fb_t = np.ascontiguousarray(p["w_in"][:, k:].T)  # (14, k H)

        def step(t: int, h_t: np.ndarray, x_t: np.ndarray | None) -> None:
            f = loop.step(t, h_t @ w_out.T + b_out)
            u[t, :, k:] = f
            if x_t is not None and self.body.feedback.enabled:
                x_t += (f @ w_fb_t).astype(self.dtype, copy=False)

        h = model.forward(u, None if noise is None else noise.process, step)
        return loop, u, h

    def simulate_loop(self, batch: TrialBatch, rng: np.random.Generator | None = None) -> LoopTrajectory:
        """Simulate a batch in closed loop (noise-free without ``rng``).

        ``rates`` is h, ``states`` h or the LSTM's ``[h, c]``.
        """
        noise = None if rng is None else self.noise(batch.n_trials, batch.n_steps, rng)
        loop, _, h = self._run(batch, noise)
        hidden = h.transpose(1, 0, 2).copy()
        state = self.model.full_state(hidden, self.model.state_history.transpose(1, 0, 2))
        return loop.trajectory(state, hidden)

    def simulate(self, batch: TrialBatch, rng: np.random.Generator | None = None) -> Trajectory:
        """The hidden state h (the activity), the state (h, or the LSTM's ``[h, c]``) and the hand (m), trials first.

        ``body`` holds the whole closed loop's record (:class:`LoopTrajectory`).
        """
        loop = self.simulate_loop(batch, rng)
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
        n = 2 * self.n_units if self.arch == "lstm" else self.n_units
        return closed_loop_map.loop_layout(self, "hidden", n)

    def loss_and_grad(
        self,
        batch: TrialBatch,
        penalties: Penalties = DEFAULT_PENALTIES,
        noise: LoopNoise | None = None,
        w_ref: float | None = None,
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss and exact gradient: the arm's loss terms, the ANN's activity and weight penalties.

        The activity and weight penalties are the ANN's own (:meth:`cortexsim.ann.GRU.loss_and_grad`).
        """
        if noise is not None and not isinstance(noise, LoopNoise):
            noise = LoopNoise(process=noise)
        model, k = self.model, self.n_task_inputs
        p = model.params
        loop, u, h = self._run(batch, noise)
        terms = loop.losses(batch)
        act_l2 = penalties.rate_l2 * penalties.rate_cap**2
        g = h * self.dtype.type(2.0 * act_l2 / h.size)  # dL/dh from the activity penalty
        w_out = p["w_out"].astype(float)
        w_fb = p["w_in"][:, k:].astype(float)  # (k H, 14)
        gy = np.zeros((batch.n_steps, batch.n_trials, 6))
        g_f: dict[int, np.ndarray] = {}

        def before(t: int, g_t: np.ndarray) -> None:  # dL/dh[t] gets the readout's share
            gy[t] = loop.backward_step(t, g_f.pop(t, None))
            g_t += (gy[t] @ w_out).astype(self.dtype, copy=False)

        def drive(t: int, dx_t: np.ndarray) -> None:  # dL/d(input drive at t) -> dL/df[t]
            if self.body.feedback.enabled:
                g_f[t] = dx_t.astype(float) @ w_fb

        grads = model.backward(u, g, before, drive)
        grads["w_out"] = gy.reshape(-1, 6).T @ h.reshape(-1, model.n_units).astype(float)
        grads["b_out"] = gy.sum((0, 1))
        w = p["w"]
        w_ref = float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) if w_ref is None else float(w_ref)
        grads["w"] += (2.0 * penalties.weight_l2 / (w.size * w_ref**2)) * w
        grads = {key: np.asarray(grads[key], dtype=self.dtype) for key in model.groups}
        act_loss = act_l2 * float(np.mean(h.astype(np.float64) ** 2))
        weight_loss = penalties.weight_l2 * float(np.mean(w.astype(np.float64) ** 2)) / w_ref**2
        habs = np.abs(h)
        stats = _loop_stats(terms, {"mean_rate": float(habs.mean()), "max_rate": float(habs.max())})
        return terms["total"] + act_loss + weight_loss, grads, stats


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
