"""A second body: MotorNet's point mass driven by four muscles (``ReluPointMass24``), with its exact reverse step.

The body re-implements, from MotorNet's source (Codol et al. 2024, *eLife* 13:RP88591; the
repository ``OlivierCodol/MotorNet``, PyTorch version: ``motornet/effector.py``,
``motornet/skeleton.py``, ``motornet/muscle.py``), the effector ``ReluPointMass24``:

* **Skeleton** -- a point mass of 1 kg [``ReluPointMass24(mass=1)``, ``skeleton.PointMass``] in
  the plane, no gravity.  Its position is its state (``PointMass._joint2cartesian`` is the
  identity): x, y in metres, MotorNet's frame, the workspace centre at the origin.  The position
  is held in the square ``[-1, 1] x [-1, 1]`` m [``skeleton.Skeleton`` defaults
  ``pos_lower_bound = -1``, ``pos_upper_bound = +1``, which ``ReluPointMass24`` keeps: its
  docstring, "the point-mass is constrained to a (1, 1) -> (1, -1) -> (-1, -1) -> (-1, 1)
  space"], the velocity in ``[-1000, 1000]`` m/s per axis [``Skeleton`` defaults
  ``vel_lower_bound``, ``vel_upper_bound``].  No damping [``effector.Effector(damping=0.)``].
* **Muscle geometry** -- four straight muscles, each from a fixed anchor to the mass
  [``ReluPointMass24.__init__``: ``path_fixation_body = [0, 1]``, the mass end at offset
  ``(0, 0)``], anchored at the corners of a 4 m square, in MotorNet's order UpperRight ``(2,
  2)``, UpperLeft ``(-2, 2)``, LowerRight ``(2, -2)``, LowerLeft ``(-2, -2)`` m.  The
  musculotendon length is the distance ``L = |p - anchor|``, its lengthening velocity
  ``e . v`` and its moment ``dL/dp = e``, with ``e = (p - anchor) / L`` the unit vector from the
  anchor to the mass [``Effector._get_geometry``, after Sherman, Seth & Delp 2013]; the force on
  the mass is ``-sum_m F_m e_m`` [``Effector.ode``: ``-sum(forces * moments)``]: each muscle
  pulls the mass towards its corner.  At the centre every muscle is ``2 sqrt 2`` m long.
* **Muscles** -- ``ReluMuscle``: the force is linear in the activation, ``F = F_max a`` with
  ``F_max = 500`` N for each muscle [``ReluPointMass24(max_isometric_force=500)``,
  ``muscle.ReluMuscle._integrate``]; no force-length, force-velocity or passive force.
* **Activation** -- Thelen (2003, *J Biomech Eng* 125:70), eqs. 1-2, as MotorNet's
  ``muscle.Muscle.activation_ode`` writes it: ``da/dt = (u - a) / tau`` with ``tau = tau_act
  (0.5 + 1.5 a)`` when ``u > a`` and ``tau_deact / (0.5 + 1.5 a)`` otherwise, ``tau_act = 15``
  ms, ``tau_deact = 50`` ms [``Muscle`` defaults]; excitation and activation clipped to
  ``[min_activation, 1] = [0, 1]`` [``Muscle(min_activation=0.)``, ``Muscle.clip_activation``].
  The shortest time constant is that of activation from rest, ``0.5 tau_act = 7.5`` ms.
* **Integration** -- MotorNet's Euler step (``Effector._euler``, ``PointMass._integrate``,
  ``ReluMuscle._integrate``), one per sub-step of ``h``: all rates at the sub-step's start; the
  activation ``a' = clip(a + h da/dt, min_activation, 1)``; the velocity ``v' = v + h f / m``
  and the position ``p' = p + h v`` -- explicit Euler, the position advanced with the *old*
  velocity (the arm of :mod:`cortexsim.effector` is semi-implicit); the force uses the
  activation and the geometry at the sub-step's start.  Then the bounds, as
  ``Skeleton.clip_velocity`` and ``clip_position`` apply them: ``v'`` clipped to
  ``[-1000, 1000]`` m/s, set to 0 where the unclipped ``p'`` lies on or past a bound and ``v'``
  points further out, and ``p'`` clipped to ``[-1, 1]`` m.

The hard clips are kept, as MotorNet has them, although they make the step non-smooth: the
reverse step (:meth:`PointMassKernel.backward`) takes the derivative of each clip as that of the
branch in force -- 1 inside the bounds (bounds included), 0 where the value was clipped -- and
the velocity's zeroing at a wall as 0 where it acts (the wall's position dependence, a step, has
derivative 0 away from the wall).  Inside the workspace, away from the walls, the step is smooth
apart from the activation's branch switch at ``a = u``, where the derivative is that of the
deactivation branch (``u <= a``).  The sensors (:meth:`PointMassKernel.sense`) are smooth
wherever the mass is not on an anchor, which the bounds rule out.

Statics: at the centre the four lines of action are the diagonals, so equal activations cancel
exactly (:meth:`PointMassKernel.balanced_excitation`); the equilibrium is stable, with an
isotropic stiffness ``F / sqrt 2`` N/m for a force ``F`` per muscle (the lines of action turn
as the mass moves), and undamped.

Where this deviates from MotorNet: (1) ``substeps`` defaults to 5 sub-steps per task step, and a
sub-step longer than the shortest activation time constant (7.5 ms) raises ``ConfigError``, as
for the arm; MotorNet's ``ReluPointMass24`` defaults to one 10 ms step (``n_ministeps = 1``),
where Euler activation overshoots its excitation by up to a third.  (2) The sensors are
normalised: MotorNet's ``Environment.get_proprioception`` divides length and velocity by
``l0_ce`` and ``vmax``, both 1 for a ``ReluMuscle`` (``Muscle.build``), so it reads metres and
m/s; here both are divided by the muscle length at the centre, ``2 sqrt 2`` m, so that a length
reads 1 at the centre (velocity in centre lengths per second).  (3) A velocity-dependent force
field ``f = curl @ v`` and a load may act on the mass (MotorNet's ``endpoint_load``; the curl
field is cortexsim's, as for the arm).  (4) float64 throughout (MotorNet: float32).

Time convention (:func:`simulate_pointmass`): as for the arm, ``out[:, 0]`` is the initial
state and ``out[:, t + 1]`` the state after excitation step ``t``; excitation is held for a
step of ``dt``, split into ``substeps`` sub-steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validate
from .errors import ConfigError

MUSCLE_NAMES: tuple[str, ...] = ("upper_right", "upper_left", "lower_right", "lower_left")
"""The four muscles in MotorNet's order (``UpperRight``, ``UpperLeft``, ``LowerRight``, ``LowerLeft``):
each pulls the mass towards its corner."""

N_MUSCLES = len(MUSCLE_NAMES)

SENSOR_NAMES: tuple[str, ...] = (
    *(f"length_{m}" for m in MUSCLE_NAMES),
    *(f"velocity_{m}" for m in MUSCLE_NAMES),
    "hand_x",
    "hand_y",
)
"""What :meth:`PointMassKernel.sense` returns, in order: muscle length / centre length (4),
lengthening velocity / centre length (1/s; 4), the mass's position (m; 2) -- the arm's order of kinds."""

N_STATE = 2 + 2 + N_MUSCLES
"""State per trial: position x, y (m), velocity (m/s), activation of each muscle."""
N_SENSE = len(SENSOR_NAMES)

# tape layout per trial and sub-step
_T_STATE = 0  # the sub-step's starting state (8)
_T_PIN = 8  # 1 where the unclipped new position stayed inside the workspace (2)
_T_VIN = 10  # 1 where the new velocity passed its clip and the wall unchanged (2)
_T_AIN = 12  # 1 where the new activation stayed inside [min_activation, 1] (4)
_T_ACT = 16  # 1 where the starting activation was inside [min_activation, 1] (4)
_T_ARDU = 20  # d rate / d u, 0 where the excitation was clipped (4)
_T_ARDA = 24  # d rate / d a (4)
TAPE_WIDTH = 28
"""Numbers kept per trial and sub-step by :meth:`PointMassKernel.step` for its reverse step."""


@dataclass(frozen=True)
class PointMass24Params:
    """Numbers of MotorNet's ``ReluPointMass24`` (sources in the module notes).

    Attributes
    ----------
    mass : float
        The point mass (kg): 1 [``ReluPointMass24(mass=1)``].
    max_isometric_force : float
        ``F_max`` of every muscle (N): 500 [``ReluPointMass24(max_isometric_force=500)``].
    anchors : tuple of (float, float)
        Where each muscle of :data:`MUSCLE_NAMES` is anchored (m): ``(2, 2), (-2, 2), (2, -2),
        (-2, -2)`` [``ReluPointMass24`` path coordinates]; each must lie outside the workspace.
    workspace_low, workspace_high : float
        Bounds of the position on both axes (m): -1, 1 [``Skeleton`` defaults].
    velocity_bound : float
        Bound of the velocity on both axes (m/s): 1000 [``Skeleton`` defaults].
    damping : float
        Viscous damping on the mass (N s/m): 0 [``Effector(damping=0.)``].
    tau_activation, tau_deactivation : float
        Activation and deactivation time constants (s): 0.015, 0.05 [``Muscle`` defaults].
    thelen_c0, thelen_c1 : float
        The activation dependence of the time constants, ``c0 + c1 a``: 0.5, 1.5
        [``Muscle.activation_ode``; Thelen 2003 eq. 2].
    min_activation : float
        Floor of excitation and activation: 0 [``Muscle(min_activation=0.)``].
    """

    mass: float = 1.0
    max_isometric_force: float = 500.0
    anchors: tuple[tuple[float, float], ...] = ((2.0, 2.0), (-2.0, 2.0), (2.0, -2.0), (-2.0, -2.0))
    workspace_low: float = -1.0
    workspace_high: float = 1.0
    velocity_bound: float = 1000.0
    damping: float = 0.0
    tau_activation: float = 0.015
    tau_deactivation: float = 0.05
    thelen_c0: float = 0.5
    thelen_c1: float = 1.5
    min_activation: float = 0.0

    def __post_init__(self) -> None:
        w = "PointMass24Params"
        _validate.number(self.mass, f"{w}.mass", low=0.0, low_open=True)
        _validate.number(self.max_isometric_force, f"{w}.max_isometric_force", low=0.0, low_open=True)
        lo = _validate.number(self.workspace_low, f"{w}.workspace_low")
        hi = _validate.number(self.workspace_high, f"{w}.workspace_high", low=lo, low_open=True)
        _validate.number(self.velocity_bound, f"{w}.velocity_bound", low=0.0, low_open=True)
        _validate.number(self.damping, f"{w}.damping", low=0.0)
        _validate.number(self.tau_activation, f"{w}.tau_activation", low=0.0, low_open=True)
        _validate.number(self.tau_deactivation, f"{w}.tau_deactivation", low=0.0, low_open=True)
        _validate.number(self.thelen_c0, f"{w}.thelen_c0", low=0.0, low_open=True)
        _validate.number(self.thelen_c1, f"{w}.thelen_c1", low=0.0)
        amin = _validate.number(self.min_activation, f"{w}.min_activation", low=0.0)
        if amin >= 1.0:
            raise ConfigError(f"{w}.min_activation: must be < 1, got {self.min_activation!r}")
        anchors = self.anchors
        if not isinstance(anchors, tuple) or len(anchors) != N_MUSCLES:
            raise ConfigError(f"{w}.anchors: expected {N_MUSCLES} (x, y) pairs, got {anchors!r}")
        for m, pair in enumerate(anchors):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ConfigError(f"{w}.anchors[{m}]: expected an (x, y) pair in m, got {pair!r}")
            x = _validate.number(pair[0], f"{w}.anchors[{m}][0]")
            y = _validate.number(pair[1], f"{w}.anchors[{m}][1]")
            if lo <= x <= hi and lo <= y <= hi:
                raise ConfigError(
                    f"{w}.anchors[{m}]: {pair!r} lies inside the workspace [{lo:g}, {hi:g}]^2; the mass "
                    "could reach it, where the muscle has no direction"
                )

    @property
    def anchor_array(self) -> np.ndarray:
        """The anchors as an array ``(4, 2)`` (m)."""
        return np.array(self.anchors, dtype=float)

    @property
    def centre(self) -> np.ndarray:
        """The centre of the workspace (m), ``(2,)``."""
        return np.full(2, 0.5 * (self.workspace_low + self.workspace_high))

    @property
    def centre_lengths(self) -> np.ndarray:
        """Each muscle's length with the mass at the centre (m), ``(4,)``: ``2 sqrt 2`` by default."""
        return np.linalg.norm(self.centre - self.anchor_array, axis=1)

    @property
    def shortest_time_constant(self) -> float:
        """Shortest activation time constant (s): activation from ``min_activation`` (7.5 ms)."""
        return self.tau_activation * (self.thelen_c0 + self.thelen_c1 * self.min_activation)


def _check_step(dt: Any, substeps: Any, params: PointMass24Params) -> tuple[float, int]:
    """Checked ``dt`` (s) and ``substeps``; the sub-step may not exceed the shortest time constant."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise ConfigError(f"dt: expected a number of seconds, got {dt!r}")
    dt = float(dt)
    if not math.isfinite(dt) or dt <= 0:
        raise ConfigError(f"dt: must be a finite number of seconds > 0, got {dt!r}")
    if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) or substeps < 1:
        raise ConfigError(f"substeps: expected a whole number >= 1, got {substeps!r}")
    tau = params.shortest_time_constant
    if dt / substeps > tau * (1 + 1e-12):
        raise ConfigError(
            f"dt: the sub-step dt / substeps = {dt / substeps * 1e3:g} ms exceeds the shortest activation "
            f"time constant, {tau * 1e3:.2f} ms; use at least {math.ceil(dt / tau - 1e-9)} substeps"
        )
    return dt, int(substeps)


_curl = _validate.curl_matrix


_array = _validate.finite_array


class PointMassKernel:
    """The point mass as a task step forward and its exact reverse-mode derivative, over trials in numpy.

    The same interface as :class:`cortexsim.effector.ArmKernel`: state arrays ``(trials, 8)``
    float64, ``(x, y, vx, vy, a_1 .. a_4)`` (m, m/s, activation of :data:`MUSCLE_NAMES`).

    Parameters
    ----------
    dt : float
        Task step (s).
    params : PointMass24Params
    substeps : int
        Sub-steps per task step (default 5: 2 ms at dt = 10 ms; at most 7.5 ms each).
    curl : ndarray, shape (2, 2), optional
        A velocity-dependent force field on the mass, ``f = curl @ v`` (N s/m), added to the load
        at every sub-step.  Default: none.
    """

    NAME = "pointmass24"
    """The body's registry name (``[effector] kind``)."""
    PART = "mass"
    """What the closed loop's map calls this body's part of its state."""
    N_STATE = N_STATE
    N_SENSE = N_SENSE
    MUSCLES = MUSCLE_NAMES
    """The muscles, in the order of excitations, activations and sensors."""
    N_MUSCLES = N_MUSCLES
    N_DOF = 2
    """Degrees of freedom: the state is ``(position, velocity, activations)`` with a position of this size."""
    DESCRIPTION = "MotorNet's point mass with four ReLU muscles (ReluPointMass24, cortexsim.pointmass)"
    COORDINATES = {
        "q": ("m", "xy", "Position of the mass in MotorNet's workspace frame (centre at 0)."),
        "dq": ("m/s", "xy", "Velocity of the mass."),
        "activation": ("1", "muscle", "Muscle activation (Thelen 2003 dynamics), in pointmass.MUSCLE_NAMES order."),
        "feedback": ("1", "channel", "Delayed, noisy feedback the model received (body.Body.feedback_channels)."),
    }
    """What the run file says of the coordinates and their velocities: name -> (units, last axis, description)."""
    DOF_NAMES = ("x", "y")
    """The coordinates of ``q`` (and ``dq``), in order."""
    SERIES_NAMES = {"q": "mass_position", "dq": "mass_velocity"}
    """What a shared file (the NWB export) calls the coordinates and their velocities."""
    HAND_TEXT = "Position of the mass (the hand) in MotorNet's workspace frame (m, centre at 0)."
    ORIGIN = "workspace centre"
    """What sits at (0, 0) of the hand's frame."""

    def __init__(
        self,
        dt: float,
        params: PointMass24Params = PointMass24Params(),
        substeps: int = 5,
        curl: np.ndarray | None = None,
    ):
        if not isinstance(params, PointMass24Params):
            raise ConfigError(f"params: expected a PointMass24Params, got {type(params).__name__}")
        self.dt, self.substeps = _check_step(dt, substeps, params)
        self.h = self.dt / self.substeps
        self.params = params
        self.curl = np.ascontiguousarray(_curl(curl))
        self.anchors = params.anchor_array
        self.inv_scale = 1.0 / params.centre_lengths  # sensor normalisation, 1/m

    def with_curl(self, curl: np.ndarray | None) -> PointMassKernel:
        """The same body in the velocity-dependent force field ``f = curl @ v`` (N s/m; None: no field)."""
        return PointMassKernel(self.dt, self.params, self.substeps, curl)

    # ---------------------------------------------------------------- states

    def start_posture(self) -> np.ndarray:
        """The start position, the workspace centre (m), ``(2,)``; :meth:`initial` puts the mass there at rest."""
        return self.params.centre

    def balanced_excitation(self, level: float = 0.05) -> np.ndarray:
        """The equal co-contraction ``level`` of all four muscles, ``(4,)``: it holds the mass still at the centre.

        Exact: at the centre the lines of action are the diagonals, and equal forces cancel term
        by term (also in floating point: ``(a - a) + (a - a)`` and ``((a + a) - a) - a`` are 0).
        From rest, all four activations follow the same path, so the mass never moves.  (Only
        for the default, symmetric anchors; with others the result is not an equilibrium.)
        """
        level = _validate.number(level, "level", low=0.0, high=1.0)
        return np.full(N_MUSCLES, max(level, self.params.min_activation))

    def configured_posture(self, start_posture_deg: tuple[float, ...]) -> np.ndarray:
        """The start position: always the workspace centre (``[effector] start_posture_deg`` is the arm's)."""
        return self.start_posture()

    def skeleton(self, q: np.ndarray) -> np.ndarray:
        """Points to draw the body at positions ``q`` (..., 2): the mass alone, ``(..., 1, 2)`` (m)."""
        return np.asarray(q, float)[..., None, :]

    def rest_excitation(self, posture: np.ndarray, level: float = 0.05) -> np.ndarray:
        """The co-contraction that holds the mass still at ``posture``: :meth:`balanced_excitation` (centre only)."""
        if not np.allclose(np.asarray(posture, float), self.params.centre, rtol=0, atol=1e-12):
            raise ConfigError(
                f"point mass start position {list(np.asarray(posture, float))}: equal co-contraction holds the mass "
                f"still only at the workspace centre {list(self.params.centre)}; start there"
            )
        return self.balanced_excitation(level)

    def rest_readings(self, posture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the sensors read at rest at ``posture``: lengths / centre length ``(4,)``, position ``(2,)``."""
        z = np.empty((1, N_SENSE))
        self.sense(self.initial(1, posture), z)
        return z[0, :N_MUSCLES].copy(), z[0, 2 * N_MUSCLES :].copy()

    def initial(self, n_trials: int, p0: np.ndarray | None = None) -> np.ndarray:
        """Initial states ``(trials, 8)``: position ``p0`` (m; default the centre), at rest, muscles at rest."""
        if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
            raise ConfigError(f"n_trials: expected a whole number >= 1, got {n_trials!r}")
        p = self.start_posture() if p0 is None else _array(p0, "p0", 2)
        p = np.array(np.broadcast_to(p, (int(n_trials), 2)), dtype=float)
        out = np.zeros((int(n_trials), N_STATE))
        out[:, :2] = p
        out[:, 4:] = self.params.min_activation
        return np.ascontiguousarray(out)

    def hand(self, state: np.ndarray) -> np.ndarray:
        """The mass's position ``(trials, 2)`` (m) of states ``(trials, 8)``."""
        return np.array(state[:, :2], dtype=float)

    def tape(self, n_trials: int) -> np.ndarray:
        """An empty tape for one task step of ``n_trials`` trials, ``(trials, substeps, TAPE_WIDTH)``."""
        return np.empty((n_trials, self.substeps, TAPE_WIDTH))

    # ---------------------------------------------------------------- pieces

    def _geometry(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Muscle lengths ``(n, 4)`` (m) and unit vectors anchor -> mass ``(n, 4, 2)``."""
        d = p[:, None, :] - self.anchors[None, :, :]
        length = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2)
        return length, d / length[..., None]

    def _rate(self, u: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Thelen's activation rate and its partials ``(da/dt, d/du, d/da)``, ``u`` and ``a`` already clipped."""
        p = self.params
        g = p.thelen_c0 + p.thelen_c1 * a
        up = u > a
        inv_act = 1.0 / (p.tau_activation * g)
        rate_up = (u - a) * inv_act
        rate_dn = (u - a) * g / p.tau_deactivation
        rate = np.where(up, rate_up, rate_dn)
        d_u = np.where(up, inv_act, g / p.tau_deactivation)
        d_a = np.where(
            up,
            -inv_act - rate_up * p.thelen_c1 / g,
            (-g + (u - a) * p.thelen_c1) / p.tau_deactivation,
        )
        return rate, d_u, d_a

    # ---------------------------------------------------------------- forward and reverse

    def step(self, state: np.ndarray, u: np.ndarray, load: np.ndarray, out: np.ndarray, tape: np.ndarray) -> None:
        """Advance ``state`` by ``dt`` into ``out``; ``tape`` (:meth:`tape`) keeps what the backward step needs.

        ``u`` ``(trials, 4)`` is the excitation (clipped here to ``[min_activation, 1]``),
        ``load`` ``(trials, 2)`` the force on the mass (N).
        """
        p_ = self.params
        amin, lo, hi, vb, h = p_.min_activation, p_.workspace_low, p_.workspace_high, p_.velocity_bound, self.h
        pos = np.array(state[:, 0:2], dtype=float)
        vel = np.array(state[:, 2:4], dtype=float)
        act = np.array(state[:, 4:], dtype=float)
        uc = np.clip(u, amin, 1.0)
        u_in = ((u >= amin) & (u <= 1.0)).astype(float)
        for k in range(self.substeps):
            rec = tape[:, k]
            rec[:, _T_STATE : _T_STATE + 2] = pos
            rec[:, _T_STATE + 2 : _T_STATE + 4] = vel
            rec[:, _T_STATE + 4 : _T_STATE + 8] = act
            a_in = (act >= amin) & (act <= 1.0)
            rec[:, _T_ACT : _T_ACT + 4] = a_in
            ac = np.clip(act, amin, 1.0)
            _, e = self._geometry(pos)
            force = p_.max_isometric_force * ac
            f = load - np.einsum("nm,nmi->ni", force, e) + vel @ self.curl.T - p_.damping * vel
            rate, d_u, d_a = self._rate(uc, ac)
            rec[:, _T_ARDU : _T_ARDU + 4] = d_u * u_in
            rec[:, _T_ARDA : _T_ARDA + 4] = d_a
            a_raw = ac + h * rate
            rec[:, _T_AIN : _T_AIN + 4] = (a_raw >= amin) & (a_raw <= 1.0)
            v_raw = vel + h * (f / p_.mass)
            p_raw = pos + h * vel
            v_new = np.clip(v_raw, -vb, vb)
            wall = ((v_new < 0.0) & (p_raw <= lo)) | ((v_new > 0.0) & (p_raw >= hi))
            rec[:, _T_VIN : _T_VIN + 2] = (np.abs(v_raw) <= vb) & ~wall
            v_new[wall] = 0.0
            rec[:, _T_PIN : _T_PIN + 2] = (p_raw >= lo) & (p_raw <= hi)
            pos = np.clip(p_raw, lo, hi)
            vel = v_new
            act = np.clip(a_raw, amin, 1.0)
        out[:, 0:2] = pos
        out[:, 2:4] = vel
        out[:, 4:] = act

    def backward(
        self,
        tape: np.ndarray,
        load: np.ndarray,
        g_out: np.ndarray,
        g_state: np.ndarray,
        g_u: np.ndarray,
        g_load: np.ndarray | None = None,
    ) -> None:
        """Reverse step: from ``g_out`` = dL/d(state after), set ``g_state``, ``g_u``; add to ``g_load``.

        ``g_load`` (trials, 2) may be None when the load's derivative is not needed.  ``g_u`` is
        the derivative with respect to the excitation *before* its clip to ``[min_activation,
        1]`` (zero where the clip is active).  The load enters linearly, so ``load`` itself is not
        needed (kept for :class:`~cortexsim.effector.ArmKernel`'s signature).
        """
        p_ = self.params
        h, fmax, inv_m = self.h, p_.max_isometric_force, 1.0 / p_.mass
        gp = np.array(g_out[:, 0:2], dtype=float)
        gv = np.array(g_out[:, 2:4], dtype=float)
        ga = np.array(g_out[:, 4:], dtype=float)
        gu = np.zeros_like(ga)
        for k in range(self.substeps - 1, -1, -1):
            rec = tape[:, k]
            pos = rec[:, _T_STATE : _T_STATE + 2]
            act = rec[:, _T_STATE + 4 : _T_STATE + 8]
            # p' = clip(p + h v), v' = wall(clip(v + h f / m)), a' = clip(a_c + h rate(u_c, a_c))
            gp_raw = gp * rec[:, _T_PIN : _T_PIN + 2]
            gv_raw = gv * rec[:, _T_VIN : _T_VIN + 2]
            ga_raw = ga * rec[:, _T_AIN : _T_AIN + 4]
            gf = gv_raw * (h * inv_m)
            # f = load - sum_m F_m e_m + curl v - damping v
            if g_load is not None:
                g_load += gf
            g_vel = gv_raw + h * gp_raw + gf @ self.curl - p_.damping * gf
            length, e = self._geometry(pos)
            ge = -fmax * np.clip(act, p_.min_activation, 1.0)[..., None] * gf[:, None, :]  # dL/de_m
            g_d = (ge - e * np.sum(e * ge, axis=-1, keepdims=True)) / length[..., None]
            g_pos = gp_raw + g_d.sum(axis=1)
            g_ac = -fmax * np.einsum("nmi,ni->nm", e, gf) + ga_raw * (1.0 + h * rec[:, _T_ARDA : _T_ARDA + 4])
            gu += h * ga_raw * rec[:, _T_ARDU : _T_ARDU + 4]
            gp, gv, ga = g_pos, g_vel, g_ac * rec[:, _T_ACT : _T_ACT + 4]
        g_state[:, 0:2] = gp
        g_state[:, 2:4] = gv
        g_state[:, 4:] = ga
        g_u[...] = gu

    def sense(self, state: np.ndarray, out: np.ndarray) -> None:
        """Sensor readings ``(trials, 10)`` (:data:`SENSOR_NAMES`): length, lengthening velocity, hand."""
        length, e = self._geometry(state[:, 0:2])
        out[:, 0:4] = length * self.inv_scale
        out[:, 4:8] = np.einsum("nmi,ni->nm", e, state[:, 2:4]) * self.inv_scale
        out[:, 8:10] = state[:, 0:2]

    def sense_backward(self, state: np.ndarray, g_sense: np.ndarray, g_state: np.ndarray) -> None:
        """Add dL/d(state) of the sensor readings (``g_sense``, ``(trials, 10)``) to ``g_state``."""
        pos, vel = state[:, 0:2], state[:, 2:4]
        length, e = self._geometry(pos)
        gl = g_sense[:, 0:4] * self.inv_scale
        gw = g_sense[:, 4:8] * self.inv_scale
        # w_m = e_m . v, de_m/dp = (I - e e^T) / L
        ev = np.einsum("nmi,ni->nm", e, vel)
        g_e = gw[..., None] * vel[:, None, :]
        g_d = (g_e - e * (ev * gw)[..., None]) / length[..., None]
        g_state[:, 0:2] += np.einsum("nm,nmi->ni", gl, e) + g_d.sum(axis=1) + g_sense[:, 8:10]
        g_state[:, 2:4] += np.einsum("nm,nmi->ni", gw, e)


def simulate_pointmass(
    excitation: np.ndarray,
    dt: float,
    *,
    state0: np.ndarray | None = None,
    substeps: int = 5,
    params: PointMass24Params = PointMass24Params(),
    endpoint_load: np.ndarray | None = None,
    curl: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Simulate the point mass driven by muscle excitations.

    Parameters
    ----------
    excitation : ndarray, shape (trials, time, 4)
        Excitation of each muscle (:data:`MUSCLE_NAMES`), in ``[0, 1]``, held for each step.
    dt : float
        Task step (s), split into ``substeps`` sub-steps.
    state0 : ndarray, shape (trials, 8) or (8,), optional
        Initial state ``(x, y, vx, vy, a_1 .. a_4)`` (m, m/s, activation in ``[0, 1]``), the
        position inside the workspace; default: at rest at the centre, muscles at rest.
    substeps : int
        Sub-steps per step (default 5: 2 ms at dt = 10 ms).
    params : PointMass24Params
    endpoint_load : ndarray, shape (trials, time, 2), optional
        Force on the mass (N), held per step.
    curl : ndarray, shape (2, 2), optional
        Velocity-dependent force field ``f = curl @ v`` (N s/m).

    Returns
    -------
    dict
        ``"hand"`` (trials, time, 2): the mass's position (m, workspace centre at the origin);
        ``"velocity"`` (trials, time, 2): its velocity (m/s); ``"activation"`` (trials, time,
        4); ``"force"`` (trials, time, 4): each muscle's force (N).  ``[:, 0]`` is the initial
        state, ``[:, t + 1]`` the state after excitation step ``t``.
    """
    u = _array(excitation, "excitation", N_MUSCLES)
    if u.ndim != 3 or u.shape[0] < 1 or u.shape[1] < 1:
        raise ConfigError(f"excitation: expected shape (trials, time, {N_MUSCLES}), trials, time >= 1, got {u.shape}")
    if u.min() < 0 or u.max() > 1:
        raise ConfigError(f"excitation: values must lie in [0, 1], found [{u.min():g}, {u.max():g}]")
    kernel = PointMassKernel(dt, params, substeps, curl)
    n, T = u.shape[:2]
    if state0 is None:
        state = kernel.initial(n)
    else:
        s0 = _array(state0, "state0", N_STATE)
        if s0.ndim == 1:
            s0 = s0[None]
        if s0.ndim != 2 or s0.shape[0] != n:
            raise ConfigError(f"state0: expected shape ({n}, {N_STATE}) or ({N_STATE},), got {s0.shape}")
        if np.any(s0[:, :2] < params.workspace_low) or np.any(s0[:, :2] > params.workspace_high):
            bounds = f"[{params.workspace_low:g}, {params.workspace_high:g}]"
            raise ConfigError(f"state0: the position must lie in the workspace {bounds} m")
        if np.any(s0[:, 4:] < 0) or np.any(s0[:, 4:] > 1):
            raise ConfigError("state0: activations must lie in [0, 1]")
        state = np.array(s0, dtype=float)
        state[:, 4:] = np.clip(state[:, 4:], params.min_activation, 1.0)
    if endpoint_load is None:
        load = np.zeros((n, T, 2))
    else:
        load = _array(endpoint_load, "endpoint_load", 2)
        if load.shape != (n, T, 2):
            raise ConfigError(f"endpoint_load: expected shape {(n, T, 2)}, got {load.shape}")
    states = np.empty((n, T, N_STATE))
    states[:, 0] = state
    tape = kernel.tape(n)
    for t in range(T - 1):
        kernel.step(states[:, t], u[:, t], load[:, t], states[:, t + 1], tape)
    act = states[:, :, 4:]
    return {
        "hand": states[:, :, 0:2].copy(),
        "velocity": states[:, :, 2:4].copy(),
        "activation": act.copy(),
        "force": params.max_isometric_force * np.clip(act, params.min_activation, 1.0),
    }
