"""The body side of a closed loop: a plant, its sensors, the delayed feedback -- and their adjoint.

A model that drives a body (:mod:`cortexsim.closed_loop`) reads out one excitation per muscle; the
body's plant moves; what its sensors report comes back, delayed and noisy, as extra inputs to the
populations the anatomy names for such sources.  Per task step ``t`` (``dt``)::

    e[t] = floor + (1 - floor) sigmoid(y[t])      (x (1 + motor_noise xi), clipped to [0, 1])
    s[t+1] = plant(s[t], e[t], endpoint load[t])  (coordinates, velocities, activations; sub-steps)
    f[t] = sensors(s[t - d]) + noise              (proprioception d = 2 steps, vision 7)

Every size comes from the plant (:class:`Body`): its muscles (the readout's width), its sensors
(each muscle's length change from the start posture, ``length_gain`` per unit, and velocity,
``velocity_gain`` per unit -- muscle-spindle-like proprioception -- and vision, the hand's position
relative to the shown target in units of the reach distance) and its state.  Before the delay has
elapsed the sensors report the start posture.  The hand position the task scores is the hand
relative to its start position (m), so every metric of the kinematic study applies unchanged.

A plant is a kernel with the interface of :class:`cortexsim.effector.ArmKernel` (``N_STATE``,
``N_SENSE``, ``N_MUSCLES``, ``MUSCLES``, ``N_DOF``, ``initial``, ``tape``, ``step``, ``backward``,
``sense``, ``sense_backward``, ``with_curl``, ``start_posture``, ``rest_excitation``,
``rest_readings``); :data:`cortexsim.effector.BODIES` names the plants.  :class:`BodyLoop` runs any
of them, step by step in numpy, with its exact adjoint; :class:`ArmLoop` is the same loop compiled
for the six-muscle arm (:mod:`cortexsim._plant`), which ``tests/test_body.py`` checks against
:class:`BodyLoop` forward and backward.

The loss terms the body adds (:meth:`BodyLoop.losses`): the kinematic study's position loss on the
hand + ``speed_l2`` x mean squared error of the hand's step velocity against the target's (in units
of the minimum-jerk peak speed) + ``effort_l2`` x mean squared muscle activation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _plant
from .effector import Arm26Params, ArmKernel
from .errors import ConfigError
from .loss import task_error
from .tasks import TrialBatch

FEEDBACK_CHANNELS: tuple[str, ...] = (
    *(f"length_{m}" for m in ArmKernel.MUSCLES),
    *(f"velocity_{m}" for m in ArmKernel.MUSCLES),
    "vision_x",
    "vision_y",
)
"""The arm's feedback input channels, in order: 6 fibre lengths, 6 fibre velocities, 2 visual
(:attr:`Body.feedback_channels` of any body)."""

DEFAULT_ARM = Arm26Params()
"""MotorNet's ``RigidTendonArm26`` numbers (:class:`cortexsim.effector.Arm26Params`)."""

FEEDBACK_GROUPS: tuple[str, ...] = ("proprioception",) * 12 + ("vision",) * 2
"""The circuit input group each of the arm's feedback channels enters by (:attr:`Body.feedback_groups`)."""


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

    def noise_sd(self, n_muscles: int) -> np.ndarray:
        """Noise SD of each channel of a body with ``n_muscles`` muscles (2 x muscles proprioceptive, 2 visual)."""
        return np.array([self.proprioception_noise] * (2 * n_muscles) + [self.vision_noise] * 2)


DEFAULT_FEEDBACK = Feedback()
"""The default feedback: proprioception 2 steps late, vision 7, noise SD 0.01 per channel."""


@dataclass(frozen=True, eq=False)
class LoopNoise:
    """The random draws of one closed-loop batch (fixed, so that the gradient is exact).

    Attributes
    ----------
    process : ndarray, shape (time, trials, units), optional
        Process-noise increments of the circuit (mV), as :meth:`RateNetwork.noise` makes them.
    sensory : ndarray, shape (time, trials, channels), optional
        Additive feedback noise, already scaled by each channel's SD.
    motor : ndarray, shape (time, trials, muscles), optional
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
        The body's coordinates and their velocities: the arm's joint angles (rad) and velocities
        (rad/s); the point mass's position (m) and velocity (m/s).
    activation, excitation : ndarray, shape (trials, time, muscles)
        Muscle activation and the excitation the circuit sent (after motor noise).
    feedback : ndarray, shape (trials, time, channels)
        The feedback the circuit received (:attr:`Body.feedback_channels`).
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
    """The body side of a closed loop: the plant, its sensors and how the model's readout drives it.

    Shared by every model that drives a body (:class:`~cortexsim.closed_loop.ArmRateNetwork`,
    :class:`~cortexsim.closed_loop.ArmANN`), so that they move the same plant, receive the same
    feedback with the same delays and pay the same costs.  Every size comes from the plant: its
    muscles (the readout's width), its sensors (the feedback channels: each muscle's length and
    velocity, then vision) and its state.  Make one with :meth:`make`.

    Attributes
    ----------
    plant : ArmKernel or PointMassKernel
        The plant (:data:`cortexsim.effector.BODIES` names them), stepped at the task's ``dt``.
    feedback : Feedback
    start_posture : ndarray, shape (2,)
        Initial coordinates (the arm's joint angles, rad; the point mass's position, m).
    activation0 : ndarray, shape (muscles,)
        Initial muscle activation: the co-contraction that holds the start posture still.
    excitation_floor, motor_noise : float
        See :class:`~cortexsim.closed_loop.ArmRateNetwork`.
    endpoint_load : ndarray, shape (2,)
        Constant force on the hand (N) unless a batch brings its own.
    reach, speed_scale : float
        Reach distance (m) and the minimum-jerk peak speed (m/s): units of the position and
        speed terms of the loss.
    effort_l2, speed_l2 : float
        Weights of the effort and speed terms.
    hand0 : ndarray, shape (2,)
        Hand position at the start posture, in the plant's frame (m).
    length0 : ndarray, shape (muscles,)
        What the length sensors read at the start posture.
    """

    plant: Any
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
        plant: Any = None,
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
        """A body at ``start_posture`` (default: the plant's), held there by ``rest_excitation``.

        ``plant`` is a plant kernel stepped at ``dt`` (default: the six-muscle arm with ``arm``'s
        numbers and ``substeps`` sub-steps).
        """
        if not 0 <= excitation_floor < 1:
            raise ConfigError(f"effector.excitation_floor: {excitation_floor} must lie in [0, 1)")
        if motor_noise < 0:
            raise ConfigError(f"effector.motor_noise: {motor_noise} must be >= 0")
        plant = ArmKernel(dt, arm, substeps) if plant is None else plant
        posture = np.array(plant.start_posture() if start_posture is None else start_posture, float)
        length0, hand0 = plant.rest_readings(posture)
        return cls(
            plant=plant,
            feedback=feedback,
            start_posture=posture,
            activation0=plant.rest_excitation(posture, rest_excitation),
            excitation_floor=float(excitation_floor),
            motor_noise=float(motor_noise),
            endpoint_load=np.zeros(2) if endpoint_load is None else np.asarray(endpoint_load, float),
            reach=float(reach),
            speed_scale=float(speed_scale),
            effort_l2=float(effort_l2),
            speed_l2=float(speed_l2),
            hand0=hand0,
            length0=length0,
        )

    @property
    def arm(self) -> Any:
        """The plant (the name from when the arm was the only body)."""
        return self.plant

    @property
    def n_muscles(self) -> int:
        """Motor commands the body takes: one excitation per muscle."""
        return int(self.plant.N_MUSCLES)

    @property
    def feedback_channels(self) -> tuple[str, ...]:
        """The feedback channels, in order: each muscle's length, each muscle's velocity, vision x and y."""
        muscles = self.plant.MUSCLES
        return (*(f"length_{m}" for m in muscles), *(f"velocity_{m}" for m in muscles), "vision_x", "vision_y")

    @property
    def feedback_groups(self) -> tuple[str, ...]:
        """The circuit input group each feedback channel enters by (``proprioception``, ``vision``)."""
        return ("proprioception",) * (2 * self.n_muscles) + ("vision",) * 2

    @property
    def n_feedback(self) -> int:
        """Feedback channels: two per muscle and two visual."""
        return 2 * self.n_muscles + 2

    def with_curl(self, curl: np.ndarray | None) -> Body:
        """The same body in the velocity-dependent force field ``f = curl @ v`` on the hand (N s/m; None: none)."""
        return replace(self, plant=self.plant.with_curl(curl))

    def with_feedback(self, enabled: bool) -> Body:
        """The same body with its feedback channels on or off (off: they carry zeros)."""
        return replace(self, feedback=replace(self.feedback, enabled=enabled))

    def rest_logit(self) -> np.ndarray:
        """The readout value (before the sigmoid) that sends :attr:`activation0`, shape (muscles,)."""
        e0 = (self.activation0 - self.excitation_floor) / (1.0 - self.excitation_floor)
        return np.log(e0 / (1.0 - e0))

    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> tuple[np.ndarray | None, ...]:
        """Sensory (time, trials, channels; already scaled) and motor (time, trials, muscles) draws of one batch."""
        sd = self.feedback.noise_sd(self.n_muscles)
        sensory = rng.standard_normal((n_steps, n_trials, sd.size)) * sd if sd.any() else None
        motor = rng.standard_normal((n_steps, n_trials, self.n_muscles)) if self.motor_noise > 0 else None
        return sensory, motor

    def loop(self, batch: TrialBatch, noise: LoopNoise | None = None) -> BodyLoop:
        """One batch in closed loop with this body: :class:`ArmLoop` (compiled) for the arm, else :class:`BodyLoop`."""
        return _LOOPS.get(type(self.plant), BodyLoop)(self, batch, noise)


class BodyLoop:
    """One batch in closed loop, body side: excitation map, plant, sensors, delay lines -- and their adjoint.

    A model drives it step by step: ``f = loop.step(t, y)`` takes the readout ``y[t]`` (trials,
    muscles), sends the excitation, advances the plant and returns the feedback ``f[t]`` (trials,
    channels) the model receives at step ``t`` (it enters the model's state at ``t + 1``).  After
    the forward pass, :meth:`losses` scores the hand and the effort; then, latest step first,
    ``dy = loop.backward_step(t, df)`` takes dL/df[t] (None for the last step) and returns
    dL/dy[t], the readout's gradient, exact through the plant and the delays.  Works for any plant
    (numpy, one plant call per step); :class:`ArmLoop` is its compiled twin for the arm.

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
        plant = body.plant
        T, n = batch.n_steps, batch.n_trials
        M, C, S = plant.N_MUSCLES, plant.N_SENSE, plant.N_STATE
        self.n_steps, self.n_trials, self.n_muscles = T, n, M
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
        self._act, self._hand = slice(S - M, S), slice(2 * M, 2 * M + 2)
        self.s = np.empty((T, n, S))
        self.s[0] = plant.initial(n, body.start_posture)
        self.s[0, :, self._act] = body.activation0
        self.tape = np.empty((T, *plant.tape(n).shape))
        self.z = np.empty((T, n, C))
        plant.sense(self.s[0], self.z[0])
        self.f = np.zeros((T, n, C))
        self.y = np.empty((T, n, M))
        self.e = np.empty((T, n, M))
        fb = body.feedback
        self._gain = np.array([fb.length_gain, fb.velocity_gain, 1.0 / fb.vision_scale])
        self._none_m, self._none_c = np.empty((0, M)), np.empty((0, C))

    # -- forward ------------------------------------------------------------------------
    def step(self, t: int, y: np.ndarray) -> np.ndarray:
        """Send the readout ``y`` (trials, muscles) of step ``t``; returns the feedback ``f[t]`` (trials, channels)."""
        self.send(t, y)
        return self.feedback(t)

    def send(self, t: int, y: np.ndarray) -> None:
        """Send the readout ``y`` (trials, muscles) of step ``t``: excitation ``e[t]``, then the plant moves on."""
        body, plant = self.body, self.body.plant
        self.y[t] = y
        e = body.excitation_floor + (1.0 - body.excitation_floor) * _sigmoid(self.y[t])
        if self.motor is not None:
            e = np.clip(e * (1.0 + body.motor_noise * self.motor[t]), 0.0, 1.0)
        self.e[t] = e
        if t + 1 < self.n_steps:
            plant.step(self.s[t], self.e[t], self.loads[t], self.s[t + 1], self.tape[t])
            plant.sense(self.s[t + 1], self.z[t + 1])

    def feedback(self, t: int) -> np.ndarray:
        """The feedback ``f[t]`` (trials, channels) the model receives at step ``t``.

        It reads the sensors at ``t - delay``, so it is known as soon as the readout of step
        ``t - 1`` has been sent (``send(t - 1, ...)``): a model whose readout lags (the spiking
        twin's rates are filtered spikes) can still receive it on time.
        """
        body, fb, out = self.body, self.body.feedback, self.f[t]
        if fb.enabled:
            M, g = self.n_muscles, self._gain
            tp, tv = max(t - fb.proprioception_delay, 0), max(t - fb.vision_delay, 0)
            out[:, :M] = g[0] * (self.z[tp, :, :M] - body.length0)
            out[:, M : 2 * M] = g[1] * self.z[tp, :, M : 2 * M]
            out[:, 2 * M :] = (self.z[tv, :, self._hand] - body.hand0 - self.goals[tv]) * g[2]
            if self.sensory is not None:
                out += self.sensory[t]
        return out

    def _motor(self, t: int) -> np.ndarray:
        """The motor-noise draws of step ``t`` (trials, muscles), or an empty (0, muscles) array."""
        return self._none_m if self.motor is None else self.motor[t]

    @property
    def hand(self) -> np.ndarray:
        """Hand position relative to its start (m), (time, trials, 2)."""
        return self.z[:, :, self._hand] - self.body.hand0

    def trajectory(self, states: np.ndarray, rates: np.ndarray) -> LoopTrajectory:
        """The loop's record, trials first, with the model's ``states`` and ``rates`` (trials, time, units)."""
        s = self.s.transpose(1, 0, 2)
        hand = self.z[:, :, self._hand].transpose(1, 0, 2)
        dof = self.body.plant.N_DOF
        return LoopTrajectory(
            states=states,
            rates=rates,
            hand=hand - self.body.hand0,
            hand_shoulder=hand.copy(),
            q=s[:, :, :dof].copy(),
            dq=s[:, :, dof : 2 * dof].copy(),
            activation=s[:, :, self._act].copy(),
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
        body, hand_cols = self.body, self._hand
        hand = self.hand
        target = batch.targets.transpose(1, 0, 2).astype(float)
        mask = batch.mask.transpose(1, 0, 2).astype(float)
        error = task_error(hand, target, mask, body.reach)
        self.g_z = np.zeros_like(self.z)
        self.g_z[:, :, hand_cols] = error.grad
        step_mask = mask[1:] * mask[:-1]
        free = batch.params.get("speed_free")  # (trials, time): 1 where a correction may move at any speed
        if free is not None:
            step_mask = step_mask * (1.0 - np.asarray(free, float).T[1:, :, None])
        scale = body.plant.dt * body.speed_scale
        speed_err = ((hand[1:] - hand[:-1]) - (target[1:] - target[:-1])) / scale
        count = max(float(step_mask.sum()), 1.0)
        speed = body.speed_l2 * float(np.sum(step_mask * speed_err**2)) / count
        g_speed = 2.0 * body.speed_l2 * step_mask * speed_err / (count * scale)
        self.g_z[1:, :, hand_cols] += g_speed
        self.g_z[:-1, :, hand_cols] -= g_speed
        act = self.s[:, :, self._act]
        effort = float(np.mean(act**2))
        self.g_act = 2.0 * body.effort_l2 * act / act.size
        n, S = self.n_trials, body.plant.N_STATE
        self._lam = np.zeros((n, S))  # dL/ds[t + 1]
        self._g_s = np.zeros((n, S))
        self._g_e = np.zeros((n, self.n_muscles))
        total = error.loss + speed + body.effort_l2 * effort
        return {"task": error.loss, "r2": error.r2, "speed": speed, "effort": effort, "total": total}

    def backward_step(self, t: int, g_f: np.ndarray | None) -> np.ndarray:
        """dL/dy[t] (trials, muscles), given dL/df[t] (trials, channels; None when f[t] reached nothing).

        Call for t = T - 1, ..., 0 in turn, after :meth:`losses`.
        """
        body, plant, fb = self.body, self.body.plant, self.body.feedback
        M, g = self.n_muscles, self._gain
        if g_f is not None and fb.enabled:
            dp, dv = fb.proprioception_delay, fb.vision_delay
            if t - dp >= 1:  # z[0] is fixed: the start posture
                self.g_z[t - dp, :, :M] += g_f[:, :M] * g[0]
                self.g_z[t - dp, :, M : 2 * M] += g_f[:, M : 2 * M] * g[1]
            if t - dv >= 1:
                self.g_z[t - dv, :, self._hand] += g_f[:, 2 * M :] * g[2]
        if t + 1 < self.n_steps:
            plant.backward(self.tape[t], self.loads[t], self._lam, self._g_s, self._g_e)
        else:
            self._g_s[...] = 0.0
            self._g_e[...] = 0.0
        if t >= 1:
            plant.sense_backward(self.s[t], self.g_z[t], self._g_s)
            self._g_s[:, self._act] += self.g_act[t]
        sig = _sigmoid(self.y[t])
        g_e = self._g_e
        if self.motor is not None:
            factor = 1.0 + body.motor_noise * self.motor[t]
            v = (body.excitation_floor + (1.0 - body.excitation_floor) * sig) * factor
            g_e = np.where((v >= 0.0) & (v <= 1.0), g_e * factor, 0.0)
        g_y = g_e * (1.0 - body.excitation_floor) * sig * (1.0 - sig)
        self._lam, self._g_s = self._g_s, self._lam
        return g_y


def _sigmoid(y: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise (float64)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(y, float)))


class ArmLoop(BodyLoop):
    """:class:`BodyLoop` compiled for the six-muscle arm: each step's excitation map, arm and sensors in one kernel.

    The same loop and adjoint as :class:`BodyLoop` with :class:`~cortexsim.effector.ArmKernel`
    (``tests/test_body.py`` checks that they agree), fused by :mod:`cortexsim._plant` into one
    compiled call per step forward and one backward.  Parameters as for :class:`BodyLoop`.
    """

    # -- forward ------------------------------------------------------------------------
    def send(self, t: int, y: np.ndarray) -> None:
        """:meth:`BodyLoop.send`, compiled."""
        body, arm = self.body, self.body.plant
        self.y[t] = y
        advance = t + 1 < self.n_steps
        nxt = min(t + 1, self.n_steps - 1)
        _plant.loop_send(
            self.y[t], body.excitation_floor, body.motor_noise, self._motor(t), self.s[t], self.loads[t], arm.curl,
            arm.scal, arm.mus, arm.h, arm.substeps, advance, self.e[t], self.s[nxt], self.tape[t], self.z[nxt],
        )  # fmt: skip

    def feedback(self, t: int) -> np.ndarray:
        """:meth:`BodyLoop.feedback`, compiled."""
        body, fb, out = self.body, self.body.feedback, self.f[t]
        if fb.enabled:
            sensory = self._none_c if self.sensory is None else self.sensory[t]
            _plant.loop_feedback(
                self.z, t, fb.proprioception_delay, fb.vision_delay, self._gain, body.length0, body.hand0,
                self.goals, sensory, out,
            )  # fmt: skip
        return out

    # -- loss and adjoint ----------------------------------------------------------------
    def backward_step(self, t: int, g_f: np.ndarray | None) -> np.ndarray:
        """:meth:`BodyLoop.backward_step`, compiled."""
        body, arm, fb = self.body, self.body.plant, self.body.feedback
        g_f = self._none_c if g_f is None or not fb.enabled else np.ascontiguousarray(g_f, dtype=float)
        g_y = np.empty((self.n_trials, self.n_muscles))
        _plant.loop_backward(
            t, g_f, fb.proprioception_delay, fb.vision_delay, self._gain, self.g_z, self.tape[t], self.loads[t],
            arm.curl, arm.scal, arm.mus, arm.h, arm.substeps, t + 1 < self.n_steps, self.s[t], self.g_act[t],
            self._lam, self._g_s, self._g_e, self.y[t], body.excitation_floor, body.motor_noise, self._motor(t), g_y,
        )  # fmt: skip
        self._lam, self._g_s = self._g_s, self._lam
        return g_y


_LOOPS: dict[type, type[BodyLoop]] = {ArmKernel: ArmLoop}
"""Plants with a compiled loop; any other plant runs in :class:`BodyLoop`."""


__all__ = [
    "DEFAULT_ARM",
    "DEFAULT_FEEDBACK",
    "FEEDBACK_CHANNELS",
    "FEEDBACK_GROUPS",
    "ArmLoop",
    "Body",
    "BodyLoop",
    "Feedback",
    "LoopNoise",
    "LoopTrajectory",
]
