"""The plant: a planar two-joint, six-muscle arm (MotorNet's ``RigidTendonArm26``) in numpy.

The arm re-derives, from the papers, the effector that MotorNet (Codol et al. 2024, *eLife*
13:RP88591) builds as ``RigidTendonArm26(muscle=RigidTendonHillMuscle())``:

* **Skeleton** -- two rigid links in the horizontal plane (no gravity), the segment parameters of
  Nijhof & Kouwenhoven (2000, in Winters & Crago, *Biomechanics and Neural Control of Posture and
  Movement*, pp. 363-372) as MotorNet's ``TwoDofArm`` uses them.  Angles as MotorNet defines them:
  counter-clockwise positive, the shoulder angle ``q[..., 0]`` from the +x axis, the elbow angle
  ``q[..., 1]`` relative to the upper arm (0 = fully extended).  x points to the right, y away
  from the body, the shoulder sits at the origin.
* **Muscle geometry** -- the lumped-muscle polynomials of Nijhof & Kouwenhoven (2000):
  musculotendon length ``L = a0 + sum_j (a1_j + a2_j x_j) x_j`` with ``x_j = q_j - offset_j``
  (``offset = (pi/2, 0)``: the polynomials are written about a shoulder angle of 90 deg).
  The moment arm here is ``r = -dL/dq`` (m), so that the joint torque is ``tau = r @ F``
  (positive = counter-clockwise); MotorNet stores ``+dL/dq`` and applies ``-F dL/dq``: the same
  torque.
* **Muscles** -- rigid-tendon Hill muscles after Kistemaker, Wong & Gribble (2010, *J
  Neurophysiol* 104:2985), as MotorNet's ``RigidTendonHillMuscle`` writes them: fibre length
  ``l = max(L - l_tendon, 0)``; active force-length ``f_l = max(1 - ((l/l_opt - 1) / 0.66)^2,
  0.01)``; passive force ``f_p = ((l/l_opt - 1.4) / 0.26)^2`` above a slack length of 1.4
  ``l_opt``; the force-velocity relation of Kistemaker et al. (a Hill hyperbola with
  ``a_rel = 0.41``, ``b_rel = 5.2``, ``b_rel`` falling below an activation of 0.3, and an
  eccentric hyperbola with a 1.5 ``f_l a`` asymptote and twice the concentric slope at
  ``v = 0``), with the fibre velocity divided by ``vmax = 10 l_opt / s`` as MotorNet does.
  Force ``F = (f_active + f_p) F_max``.
* **Activation** -- Thelen (2003, *J Biomech Eng* 125:70), eqs. 1-2: ``da/dt = (u - a) / tau``
  with ``tau = tau_act (0.5 + 1.5 a)`` when ``u > a`` and ``tau_deact / (0.5 + 1.5 a)``
  otherwise, ``tau_act = 15 ms``, ``tau_deact = 50 ms``; excitation ``u`` and activation clipped
  to ``[0.001, 1]``.  The shortest time constant, 7.52 ms, is that of activation from rest.

Beyond MotorNet: joint limits are smooth passive torques (softplus springs and gated dampers,
:func:`joint_limit_torque`) instead of MotorNet's hard clipping of position and velocity, so
that the plant stays differentiable; and the muscle force is evaluated at the current state in
every sub-step (MotorNet's Euler step updates the force with the new activation but the
geometry of the previous sub-step); and the eccentric force-velocity branch is kept finite where
MotorNet's has a pole (fibres beyond about 1.65 ``l_opt`` at activations near 0.001; this arm's
fibres stay within 0.15-1.36 ``l_opt`` over the joint ranges, so the two never differ).

Statics: a torque-balanced co-contraction at the start posture is an equilibrium but not a
stable one -- the linearised dynamics have a real eigenvalue of +0.95/s at a co-contraction of
0.05, +4.5/s at 0.2 and +7.4/s at 0.4 (the shoulder muscles work on the descending limb of
their force-length relation there, so co-contraction adds negative stiffness).

Time convention (all simulators): every output has the inputs' length ``T``; ``out[:, 0]`` is
the initial state and ``out[:, t + 1]`` the state after input step ``t`` (``input[:, T - 1]``
has no effect).  Inputs are held (zero-order hold) for the ``dt`` of a step, which is split into
``substeps`` integration sub-steps.

Integration (``method``): ``"euler"`` (the default) is semi-implicit (symplectic) Euler --
velocity and activation first, then position with the new velocity; ``"rk4"`` is the classical
Runge-Kutta method.  Measured by ``validation/arm26_motornet.py`` on 32 large movements inside
the joint ranges (two random bursts of excitation up to 0.2, then a low co-contraction; hand
travel median 30 cm, up to 68 cm; peak speed median 1.0 m/s, up to 1.7 m/s), hand-path error
against RK4 at 0.2 ms, max over trials (median trial in brackets):

=====================  ========  ====================  ====================
method x sub-steps     sub-step  error over 0-0.3 s    error over 0-1 s
=====================  ========  ====================  ====================
euler x 5 (default)    2 ms      2.6 mm (1.5)          2.7 mm (1.6)
euler x 10             1 ms      1.3 mm (0.7)          1.3 mm (0.8)
rk4 x 1                10 ms     1.3 mm (0.5)          5.2 mm (1.0)
rk4 x 2                5 ms      0.06 mm (0.03)        0.28 mm (0.05)
=====================  ========  ====================  ====================

(Derivative evaluations per 10 ms step: 5, 10, 4, 8.)  On 64 random excitation patterns (up
to 0.15, held 100 ms, 1 s) that drive the arm into its limits at up to 2.6 m/s, euler x 5 is
within 5.5 mm and rk4 x 2 within 0.3 mm.  Integrated finely, the model matches MotorNet 0.3
itself to 0.0007 mm over 0.3 s and 0.003 mm over 1 s (MotorNet's Euler at 0.2 and 0.1 ms,
Richardson-extrapolated; ``validation/arm26_motornet.py``).  With no muscles the energy error
of an unforced swing falls as ``h^1`` (euler) and ``h^4`` (rk4).

The sub-step must not exceed the shortest activation time constant (Euler) or twice it (RK4),
so that the activation cannot overshoot its excitation; a larger one raises ``ConfigError``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy.special import expit

from . import _plant, _validate, pointmass
from .errors import ConfigError

MUSCLE_NAMES: tuple[str, ...] = ("pectoralis", "deltoid", "brachioradialis", "tricepslat", "biceps", "tricepslong")
"""The six lumped muscles in MotorNet's order: shoulder flexor, shoulder extensor, elbow flexor,
elbow extensor, bi-articular flexor, bi-articular extensor."""

N_MUSCLES = len(MUSCLE_NAMES)
METHODS = ("euler", "rk4")
"""Integration methods: semi-implicit Euler and classical fourth-order Runge-Kutta."""

_STEP_LIMIT = {"euler": 1.0, "rk4": 2.0}
"""Largest sub-step per method, in units of the shortest activation time constant."""


@dataclass(frozen=True)
class Arm26Params:
    """Every number of the six-muscle arm, with its source.

    Sources: [NK] Nijhof & Kouwenhoven (2000), Simulation of multijoint arm movements, in Winters
    & Crago (eds.), *Biomechanics and Neural Control of Posture and Movement*, Springer,
    pp. 363-372; [KWG] Kistemaker, Wong & Gribble (2010), *J Neurophysiol* 104:2985-2994;
    [T] Thelen (2003), *J Biomech Eng* 125:70-77; [MN] MotorNet 0.3 (Codol, Michaels, Kashefi,
    Pruszynski & Gribble 2024, *eLife* 13:RP88591), classes ``RigidTendonArm26``,
    ``TwoDofArm``, ``RigidTendonHillMuscle`` and ``Muscle``, whose documented defaults these are.
    Per-muscle tuples follow :data:`MUSCLE_NAMES`; per-joint pairs are (shoulder, elbow).

    Attributes
    ----------
    segment_mass : tuple of float
        Upper arm and forearm mass (kg): 1.82, 1.43 [NK, MN ``m1``, ``m2``].
    segment_length : tuple of float
        Upper arm and forearm length (m): 0.309, 0.333 [NK, MN ``l1``, ``l2``].
    segment_com : tuple of float
        Distance of each segment's centre of mass from its proximal joint (m): 0.135, 0.165
        [NK, MN ``l1g``, ``l2g``].
    segment_inertia : tuple of float
        Moment of inertia of each segment about its centre of mass (kg m^2): 0.051, 0.057
        [NK, MN ``i1``, ``i2``].
    joint_min_deg, joint_max_deg : tuple of float
        Joint ranges (deg): shoulder 0-135, elbow 0-155 [MN ``RigidTendonArm26``].
    joint_damping : float
        Viscous joint damping (N m s / rad): 0 [MN ``Effector(damping=0.)``].
    start_posture_deg : tuple of float
        Default initial posture (deg): shoulder 45, elbow 90 (hand at (-1.7, 45.4) cm).
    max_isometric_force : tuple of float
        Maximal isometric force (N): 838, 1207, 1422, 1549, 414, 603 [MN, after NK].
    optimal_fibre_length : tuple of float
        Optimal fibre length ``l_opt`` (m): 0.134, 0.140, 0.092, 0.093, 0.137, 0.127 [MN].
    tendon_length : tuple of float
        Tendon (slack) length of the rigid tendon (m): 0.039, 0.066, 0.172, 0.187, 0.204, 0.217
        [MN].
    length_a0 : tuple of float
        Constant term of the musculotendon length polynomial (m): 0.151, 0.2322, 0.2859,
        0.2355, 0.3329, 0.2989 [NK, MN ``a0``].
    length_a1_shoulder, length_a1_elbow : tuple of float
        Linear coefficients (m / rad): shoulder -0.03, 0.03, 0, 0, -0.03, 0.03; elbow 0, 0,
        -0.014, 0.025, -0.016, 0.03 [NK, MN ``a1``].
    length_a2_shoulder, length_a2_elbow : tuple of float
        Quadratic coefficients (m / rad^2): shoulder all 0; elbow 0, 0, -0.004, -0.0022,
        -0.0057, -0.0032 [NK, MN ``a2``].
    angle_offset : tuple of float
        Joint angle about which the polynomials are written (rad): pi/2, 0 [MN ``a3``].
    passive_slack_length : float
        Fibre length, in ``l_opt``, where passive force starts: 1.4 [MN
        ``normalized_slack_muscle_length``, KWG].
    passive_unit_length : float
        Fibre length, in ``l_opt``, where passive force reaches ``F_max``: 1.66 (stiffness
        ``1 / (1.66 - 1.4)^2``) [MN, KWG].
    fl_width : float
        Half-width of the parabolic active force-length relation, in ``l_opt``: 0.66 [MN, KWG].
    fl_min : float
        Floor of the active force-length factor: 0.01 [MN].
    velocity_scale : float
        ``vmax``, the velocity (in ``l_opt / s``) by which fibre velocity is divided before it
        enters the force-velocity relation: 10 [MN].  KWG's ``a_rel``, ``b_rel`` are in units
        of ``l_opt / s`` (Van Soest & Bobbert 1993); MotorNet's normalisation makes the
        unloaded shortening velocity ``10 b_rel / a_rel = 127 l_opt / s`` instead of 12.7.
    fv_a_rel, fv_b_rel : float
        Hill constants of the concentric relation: 0.41, 5.2 [KWG, MN].  ``a_rel`` is scaled by
        the force-length factor above ``l_opt``.
    fv_q_crit, fv_b_rel_floor_activation, fv_b_rel_drop : float
        Below an activation ``q_crit = 0.3``, ``b_rel`` is scaled by
        ``(1 - 0.9 (a - 0.3) / (0.005 - 0.3))^2`` [KWG, MN].
    fv_eccentric_asymptote : float
        Eccentric force asymptote, in ``f_l a``: 1.5 [KWG, MN].
    fv_eccentric_slope_ratio : float
        Slope of the eccentric relation at ``v = 0``, relative to the concentric one: 2 [KWG, MN].
    fv_eccentric_far_slope : float
        Slope of the eccentric asymptote (``s_as``, per ``vmax``): 0.001 [KWG, MN].
    tau_activation, tau_deactivation : float
        Activation and deactivation time constants (s): 0.015, 0.05 [T, MN ``Muscle``].
    thelen_c0, thelen_c1 : float
        The activation-dependence of the time constants, ``c0 + c1 a``: 0.5, 1.5 [T eq. 2].
    min_activation : float
        Floor of excitation and activation: 0.001 [MN ``RigidTendonHillMuscle``].
    limit_stiffness : float
        Stiffness of the joint-limit springs beyond the ranges (N m / rad): 1000 (cortexsim; not
        in MotorNet, which clips).  Full triceps drive holds the elbow 1 deg past 0 and, from
        90 deg, overshoots to about -7 deg.
    limit_damping : float
        Damping of the joint-limit dampers beyond the ranges (N m s / rad): 5 (cortexsim).
    limit_width : float
        Softening width of the limits (rad): 0.01 (cortexsim); the spring torque is already
        ``k w ln 2 = 6.9 N m`` at the limit itself, 5e-4 N m 0.1 rad inside it and 1e-10 N m
        0.25 rad inside it.
    """

    segment_mass: tuple[float, ...] = (1.82, 1.43)
    segment_length: tuple[float, ...] = (0.309, 0.333)
    segment_com: tuple[float, ...] = (0.135, 0.165)
    segment_inertia: tuple[float, ...] = (0.051, 0.057)
    joint_min_deg: tuple[float, ...] = (0.0, 0.0)
    joint_max_deg: tuple[float, ...] = (135.0, 155.0)
    joint_damping: float = 0.0
    start_posture_deg: tuple[float, ...] = (45.0, 90.0)
    max_isometric_force: tuple[float, ...] = (838.0, 1207.0, 1422.0, 1549.0, 414.0, 603.0)
    optimal_fibre_length: tuple[float, ...] = (0.134, 0.140, 0.092, 0.093, 0.137, 0.127)
    tendon_length: tuple[float, ...] = (0.039, 0.066, 0.172, 0.187, 0.204, 0.217)
    length_a0: tuple[float, ...] = (0.151, 0.2322, 0.2859, 0.2355, 0.3329, 0.2989)
    length_a1_shoulder: tuple[float, ...] = (-0.03, 0.03, 0.0, 0.0, -0.03, 0.03)
    length_a1_elbow: tuple[float, ...] = (0.0, 0.0, -0.014, 0.025, -0.016, 0.03)
    length_a2_shoulder: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    length_a2_elbow: tuple[float, ...] = (0.0, 0.0, -0.004, -0.0022, -0.0057, -0.0032)
    angle_offset: tuple[float, ...] = (math.pi / 2, 0.0)
    passive_slack_length: float = 1.4
    passive_unit_length: float = 1.66
    fl_width: float = 0.66
    fl_min: float = 0.01
    velocity_scale: float = 10.0
    fv_a_rel: float = 0.41
    fv_b_rel: float = 5.2
    fv_q_crit: float = 0.3
    fv_b_rel_floor_activation: float = 0.005
    fv_b_rel_drop: float = 0.9
    fv_eccentric_asymptote: float = 1.5
    fv_eccentric_slope_ratio: float = 2.0
    fv_eccentric_far_slope: float = 0.001
    tau_activation: float = 0.015
    tau_deactivation: float = 0.05
    thelen_c0: float = 0.5
    thelen_c1: float = 1.5
    min_activation: float = 0.001
    limit_stiffness: float = 1000.0
    limit_damping: float = 5.0
    limit_width: float = 0.01

    def __post_init__(self) -> None:
        """Coerce sequences to tuples of floats and check sizes, signs and finiteness."""
        for f in fields(self):
            value = getattr(self, f.name)
            where = f"Arm26Params.{f.name}"
            if isinstance(f.default, tuple):
                if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                    raise ConfigError(f"{where}: expected a sequence of {len(f.default)} numbers, got {value!r}")
                if len(value) != len(f.default):
                    raise ConfigError(f"{where}: expected {len(f.default)} numbers, got {len(value)}")
                items = tuple(_finite(x, where) for x in value)
                object.__setattr__(self, f.name, items)
            else:
                object.__setattr__(self, f.name, _finite(value, where))
        positive = ("segment_mass", "segment_length", "segment_inertia", "optimal_fibre_length")
        for name in positive:
            if min(getattr(self, name)) <= 0:
                raise ConfigError(f"Arm26Params.{name}: every value must be > 0, got {getattr(self, name)}")
        for name in ("segment_com", "max_isometric_force", "tendon_length"):
            if min(getattr(self, name)) < 0:
                raise ConfigError(f"Arm26Params.{name}: every value must be >= 0, got {getattr(self, name)}")
        for name in ("joint_damping", "limit_stiffness", "limit_damping"):
            if getattr(self, name) < 0:
                raise ConfigError(f"Arm26Params.{name}: must be >= 0, got {getattr(self, name)!r}")
        for name in ("tau_activation", "tau_deactivation", "limit_width", "velocity_scale", "fl_width", "fv_b_rel"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"Arm26Params.{name}: must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.min_activation < 1:
            raise ConfigError(f"Arm26Params.min_activation: must be in (0, 1), got {self.min_activation!r}")
        if self.passive_unit_length <= self.passive_slack_length:
            raise ConfigError(
                f"Arm26Params.passive_unit_length: must exceed passive_slack_length "
                f"({self.passive_slack_length:g}), got {self.passive_unit_length!r}"
            )
        if any(lo >= hi for lo, hi in zip(self.joint_min_deg, self.joint_max_deg)):
            raise ConfigError(
                f"Arm26Params.joint_min_deg: each lower limit must be below its upper limit "
                f"{self.joint_max_deg}, got {self.joint_min_deg}"
            )

    @property
    def joint_min(self) -> np.ndarray:
        """Lower joint limits (rad), shape (2,)."""
        return np.deg2rad(self.joint_min_deg)

    @property
    def joint_max(self) -> np.ndarray:
        """Upper joint limits (rad), shape (2,)."""
        return np.deg2rad(self.joint_max_deg)

    @property
    def start_posture(self) -> np.ndarray:
        """Default initial joint angles (rad), shape (2,)."""
        return np.deg2rad(self.start_posture_deg)

    @property
    def shortest_time_constant(self) -> float:
        """Shortest activation time constant (s): activation from ``min_activation`` (7.52 ms)."""
        rise = self.tau_activation * (self.thelen_c0 + self.thelen_c1 * self.min_activation)
        fall = self.tau_deactivation / (self.thelen_c0 + self.thelen_c1)
        return min(rise, fall)


def _finite(value: Any, where: str) -> float:
    """``value`` as a finite float, or a one-line ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, eq=False)
class _Consts:
    """Arrays derived from :class:`Arm26Params`, computed once per parameter set."""

    l1: float
    l2: float
    i11: float  # constant part of M11
    i12: float  # constant part of M12
    i22: float  # M22
    k: float  # m2 l1 lc2: the cos(q2) part of M12, half that of M11
    a0: np.ndarray  # (6,)
    a1: np.ndarray  # (2, 6)
    a2: np.ndarray  # (2, 6)
    offset: np.ndarray  # (2,)
    f_max: np.ndarray  # (6,)
    l_opt: np.ndarray  # (6,)
    l_tendon: np.ndarray  # (6,)
    v_max: np.ndarray  # (6,) m/s
    k_pe: float
    q_min: np.ndarray  # (2,)
    q_max: np.ndarray  # (2,)
    p: Arm26Params


@functools.lru_cache(maxsize=16)
def _consts(params: Arm26Params) -> _Consts:
    """The derived constants of ``params`` (cached: parameters are frozen and hashable)."""
    m1, m2 = params.segment_mass
    l1, l2 = params.segment_length
    c1, c2 = params.segment_com
    j1, j2 = params.segment_inertia
    l_opt = np.array(params.optimal_fibre_length)
    return _Consts(
        l1=l1,
        l2=l2,
        i11=m1 * c1**2 + j1 + m2 * (l1**2 + c2**2) + j2,
        i12=m2 * c2**2 + j2,
        i22=m2 * c2**2 + j2,
        k=m2 * l1 * c2,
        a0=np.array(params.length_a0),
        a1=np.array([params.length_a1_shoulder, params.length_a1_elbow]),
        a2=np.array([params.length_a2_shoulder, params.length_a2_elbow]),
        offset=np.array(params.angle_offset),
        f_max=np.array(params.max_isometric_force),
        l_opt=l_opt,
        l_tendon=np.array(params.tendon_length),
        v_max=params.velocity_scale * l_opt,
        k_pe=1.0 / (params.passive_unit_length - params.passive_slack_length) ** 2,
        q_min=params.joint_min,
        q_max=params.joint_max,
        p=params,
    )


# --------------------------------------------------------------------------- kinematics, dynamics


_array = _validate.finite_array


def hand_position(q: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Hand (end of the forearm) position from joint angles.

    Parameters
    ----------
    q : ndarray, shape (..., 2)
        Shoulder and elbow angle (rad), e.g. ``(trials, time, 2)``.
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2)
        Hand x, y (m), shoulder at the origin.
    """
    q = _array(q, "q", 2)
    c = _consts(params)
    s = q[..., 0] + q[..., 1]
    return np.stack([c.l1 * np.cos(q[..., 0]) + c.l2 * np.cos(s), c.l1 * np.sin(q[..., 0]) + c.l2 * np.sin(s)], -1)


def jacobian(q: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Jacobian of the hand position with respect to the joint angles.

    Parameters
    ----------
    q : ndarray, shape (..., 2)
        Joint angles (rad).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2, 2)
        ``J[..., i, j] = d hand_i / d q_j`` (m / rad).  An endpoint force ``f`` (N) acts as the
        joint torque ``J^T f`` (N m).
    """
    q = _array(q, "q", 2)
    c = _consts(params)
    s = q[..., 0] + q[..., 1]
    x2, y2 = c.l2 * np.cos(s), c.l2 * np.sin(s)
    x1, y1 = c.l1 * np.cos(q[..., 0]), c.l1 * np.sin(q[..., 0])
    return np.stack([np.stack([-y1 - y2, -y2], -1), np.stack([x1 + x2, x2], -1)], -2)


def hand_velocity(q: np.ndarray, dq: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Hand velocity ``J(q) dq``.

    Parameters
    ----------
    q, dq : ndarray, shape (..., 2)
        Joint angles (rad) and angular velocities (rad/s).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2)
        Hand velocity (m/s).
    """
    dq = _array(dq, "dq", 2)
    return np.einsum("...ij,...j->...i", jacobian(q, params), dq)


def mass_matrix(q: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Joint-space inertia matrix of the two-link arm.

    ``M11 = m1 lc1^2 + I1 + m2 (l1^2 + lc2^2) + I2 + 2 m2 l1 lc2 cos q2``,
    ``M12 = m2 lc2^2 + I2 + m2 l1 lc2 cos q2``, ``M22 = m2 lc2^2 + I2`` (inertias about the
    centres of mass), as in MotorNet's ``TwoDofArm``.

    Parameters
    ----------
    q : ndarray, shape (..., 2)
        Joint angles (rad).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2, 2)
        Inertia matrix (kg m^2), symmetric positive definite.
    """
    q = _array(q, "q", 2)
    c = _consts(params)
    cos2 = np.cos(q[..., 1])
    m11 = c.i11 + 2 * c.k * cos2
    m12 = c.i12 + c.k * cos2
    m22 = np.full_like(cos2, c.i22)
    return np.stack([np.stack([m11, m12], -1), np.stack([m12, m22], -1)], -2)


def _bias(q2: np.ndarray, dq1: np.ndarray, dq2: np.ndarray, c: _Consts) -> tuple[np.ndarray, np.ndarray]:
    """Coriolis and centripetal torques ``C(q, dq) dq`` (N m), per joint."""
    h = c.k * np.sin(q2)
    return -h * (2 * dq1 + dq2) * dq2, h * dq1 * dq1


def inverse_dynamics(q: np.ndarray, dq: np.ndarray, ddq: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Joint torques that give the rigid skeleton the accelerations ``ddq``.

    ``tau = M(q) ddq + C(q, dq) dq``: the skeleton alone (no muscles, damping, limits or loads),
    the inverse of :func:`simulate_skeleton`.

    Parameters
    ----------
    q, dq, ddq : ndarray, shape (..., 2)
        Joint angles (rad), velocities (rad/s) and accelerations (rad/s^2).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2)
        Shoulder and elbow torque (N m).
    """
    q, dq, ddq = _array(q, "q", 2), _array(dq, "dq", 2), _array(ddq, "ddq", 2)
    c = _consts(params)
    b1, b2 = _bias(q[..., 1], dq[..., 0], dq[..., 1], c)
    return np.einsum("...ij,...j->...i", mass_matrix(q, params), ddq) + np.stack([b1, b2], -1)


def kinetic_energy(q: np.ndarray, dq: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Kinetic energy ``dq^T M(q) dq / 2`` of the two links.

    Parameters
    ----------
    q, dq : ndarray, shape (..., 2)
        Joint angles (rad) and velocities (rad/s).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (...)
        Energy (J).
    """
    dq = _array(dq, "dq", 2)
    return 0.5 * np.einsum("...i,...ij,...j->...", dq, mass_matrix(q, params), dq)


def _accel(
    q2: np.ndarray, dq1: np.ndarray, dq2: np.ndarray, t1: np.ndarray, t2: np.ndarray, c: _Consts
) -> tuple[np.ndarray, np.ndarray]:
    """Forward dynamics ``M^-1 (tau - C dq)`` by the closed-form 2 x 2 inverse."""
    cos2 = np.cos(q2)
    m11 = c.i11 + 2 * c.k * cos2
    m12 = c.i12 + c.k * cos2
    b1, b2 = _bias(q2, dq1, dq2, c)
    r1, r2 = t1 - b1, t2 - b2
    det = m11 * c.i22 - m12 * m12
    return (c.i22 * r1 - m12 * r2) / det, (m11 * r2 - m12 * r1) / det


# --------------------------------------------------------------------------- muscles


def muscle_lengths(q: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Musculotendon lengths from the polynomials of Nijhof & Kouwenhoven (2000).

    ``L = a0 + sum_j (a1_j + a2_j x_j) x_j`` with ``x_j = q_j - angle_offset_j``.

    Parameters
    ----------
    q : ndarray, shape (..., 2)
        Joint angles (rad).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 6)
        Musculotendon length (m) of each muscle of :data:`MUSCLE_NAMES`.
    """
    q = _array(q, "q", 2)
    c = _consts(params)
    x = (q - c.offset)[..., :, None]
    return c.a0 + np.sum((c.a1 + c.a2 * x) * x, axis=-2)


def moment_arms(q: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Moment arms ``r = -dL/dq`` of the six muscles about the two joints.

    ``r_j = -(a1_j + 2 a2_j (q_j - angle_offset_j))``; a muscle of force ``F`` (N) exerts the
    joint torque ``r F`` (N m, counter-clockwise positive), so flexors have positive moment arms.
    MotorNet's geometry state holds ``+dL/dq`` and subtracts ``F dL/dq``: the same torque.

    Parameters
    ----------
    q : ndarray, shape (..., 2)
        Joint angles (rad).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2, 6)
        Moment arm (m / rad, i.e. m) of each muscle (last axis) about the shoulder and elbow.
    """
    q = _array(q, "q", 2)
    c = _consts(params)
    return -(c.a1 + 2 * c.a2 * (q - c.offset)[..., :, None])


def _force(
    a: np.ndarray, length: np.ndarray, velocity: np.ndarray, c: _Consts
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Muscle force (N), fibre length (m) and fibre velocity (m/s) of the rigid-tendon Hill muscle.

    ``a`` is clipped to ``[min_activation, 1]``; ``length`` and ``velocity`` are musculotendon
    length and lengthening velocity, which the rigid tendon passes on to the fibre.  The eccentric
    branch is MotorNet's ``(-p1 p3 + p1 s v + p2 - p3 v + s v^2) / (p1 + v)`` rewritten as
    ``e fa + s v - ((e - 1) fa)^2 / ((e - 1) fa + (2 d0 - s) v)`` (``e`` the asymptote, ``d0``
    the concentric slope at 0), with ``2 d0 - s`` floored at 0 so that it has no pole.
    """
    p = c.p
    a = np.minimum(np.maximum(a, p.min_activation), 1.0)
    fibre = np.maximum(length - c.l_tendon, 0.0)
    ln = fibre / c.l_opt
    vn = velocity / c.v_max
    passive = c.k_pe * np.maximum(ln - p.passive_slack_length, 0.0) ** 2
    fl = np.maximum(1.0 - ((ln - 1.0) / p.fl_width) ** 2, p.fl_min)
    a_rel = np.where(ln > 1.0, p.fv_a_rel * fl, p.fv_a_rel)
    low = (a - p.fv_q_crit) / (p.fv_b_rel_floor_activation - p.fv_q_crit)
    b_rel = np.where(a < p.fv_q_crit, p.fv_b_rel * (1.0 - p.fv_b_rel_drop * low) ** 2, p.fv_b_rel)
    fa = fl * a
    neg = np.minimum(vn, 0.0)  # shortening branch, evaluated safely everywhere
    concentric = (neg * a * a_rel + fa * b_rel) / (b_rel - neg)
    slope0 = a * (fl + a_rel) / b_rel  # concentric slope at v = 0
    pos = np.maximum(vn, 0.0)
    e1 = (p.fv_eccentric_asymptote - 1.0) * fa
    s = p.fv_eccentric_far_slope
    gain = np.maximum(p.fv_eccentric_slope_ratio * slope0 - s, 0.0)
    eccentric = p.fv_eccentric_asymptote * fa + s * pos - e1 * e1 / (e1 + gain * pos)
    active = np.maximum(np.where(vn < 0.0, concentric, eccentric), 0.0)
    return (active + passive) * c.f_max, fibre, velocity


def muscle_force(
    q: np.ndarray, dq: np.ndarray, activation: np.ndarray, params: Arm26Params = Arm26Params()
) -> np.ndarray:
    """Force of the six rigid-tendon Hill muscles (Kistemaker et al. 2010, as in MotorNet).

    ``F = (f_active(a, l, v) + f_passive(l)) F_max``: at optimal fibre length and zero velocity
    ``F = a F_max``.

    Parameters
    ----------
    q, dq : ndarray, shape (..., 2)
        Joint angles (rad) and velocities (rad/s).
    activation : ndarray, shape (..., 6)
        Muscle activation (clipped to ``[min_activation, 1]``).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 6)
        Musculotendon force (N), >= 0.
    """
    q, dq, activation = _array(q, "q", 2), _array(dq, "dq", 2), _array(activation, "activation", N_MUSCLES)
    c = _consts(params)
    velocity = np.einsum("...j,...jm->...m", dq, -moment_arms(q, params))
    return _force(activation, muscle_lengths(q, params), velocity, c)[0]


def muscle_torque(
    q: np.ndarray, dq: np.ndarray, activation: np.ndarray, params: Arm26Params = Arm26Params()
) -> np.ndarray:
    """Joint torques of the six muscles, ``moment_arms(q) @ muscle_force(q, dq, activation)``.

    Parameters
    ----------
    q, dq : ndarray, shape (..., 2)
        Joint angles (rad) and velocities (rad/s).
    activation : ndarray, shape (..., 6)
        Muscle activation.
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2)
        Shoulder and elbow torque (N m).
    """
    force = muscle_force(q, dq, activation, params)
    return np.einsum("...jm,...m->...j", moment_arms(q, params), force)


def joint_limit_torque(q: np.ndarray, dq: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Smooth passive torques that keep the joints within their ranges.

    Per joint, with ``k = limit_stiffness``, ``b = limit_damping``, ``w = limit_width`` and the
    range ``[lo, hi]``: ``tau = k w [softplus((lo - q) / w) - softplus((q - hi) / w)]
    - b dq [sigmoid((lo - q) / w) + sigmoid((q - hi) / w)]``: a linear spring of stiffness
    ``k`` and a damper beyond each limit, infinitely differentiable, negligible inside.

    Parameters
    ----------
    q, dq : ndarray, shape (..., 2)
        Joint angles (rad) and velocities (rad/s).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 2)
        Torque (N m).
    """
    q, dq = _array(q, "q", 2), _array(dq, "dq", 2)
    return _limit_torque(q, dq, _consts(params))


def _limit_torque(q: np.ndarray, dq: np.ndarray, c: _Consts) -> np.ndarray:
    """:func:`joint_limit_torque` without the checks."""
    p = c.p
    if p.limit_stiffness == 0 and p.limit_damping == 0:
        return np.zeros_like(q)
    w = p.limit_width
    below, above = (c.q_min - q) / w, (q - c.q_max) / w
    spring = p.limit_stiffness * w * (np.logaddexp(0.0, below) - np.logaddexp(0.0, above))
    return spring - p.limit_damping * dq * (expit(below) + expit(above))


def _activation_rate(u: np.ndarray, a: np.ndarray, p: Arm26Params) -> np.ndarray:
    """Thelen (2003) activation dynamics ``(u - a) / tau(u, a)`` (1/s)."""
    a = np.minimum(np.maximum(a, p.min_activation), 1.0)
    g = p.thelen_c0 + p.thelen_c1 * a
    return (u - a) * np.where(u > a, 1.0 / (p.tau_activation * g), g / p.tau_deactivation)


def activation_rate(excitation: np.ndarray, activation: np.ndarray, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """Rate of change of activation (Thelen 2003, eqs. 1-2).

    ``da/dt = (u - a) / tau``, ``tau = tau_act (0.5 + 1.5 a)`` if ``u > a`` else
    ``tau_deact / (0.5 + 1.5 a)``; ``u`` and ``a`` clipped to ``[min_activation, 1]``.

    Parameters
    ----------
    excitation, activation : ndarray, shape (..., 6)
        Excitation ``u`` and activation ``a`` (dimensionless).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (..., 6)
        ``da/dt`` (1/s).
    """
    u = _array(excitation, "excitation", N_MUSCLES)
    a = _array(activation, "activation", N_MUSCLES)
    return _activation_rate(np.clip(u, params.min_activation, 1.0), a, params)


def balanced_excitation(q: np.ndarray, level: float = 0.05, params: Arm26Params = Arm26Params()) -> np.ndarray:
    """The co-contraction closest to ``level`` that holds the arm still at posture ``q``.

    At rest (``dq = 0``, activation = excitation ``a``) the muscles' joint torque is
    ``R(q) diag(f_l F_max) a + R(q) F_passive``; this is the ``a`` of least ``||a - level||``
    that makes it zero (a static equilibrium, not necessarily a stable one: see the module
    notes), clipped to ``[min_activation, 1]``.

    Parameters
    ----------
    q : ndarray, shape (2,)
        Posture (rad).
    level : float
        Mean co-contraction sought (dimensionless, in (0, 1]).
    params : Arm26Params

    Returns
    -------
    ndarray, shape (6,)
        Excitation of each muscle of :data:`MUSCLE_NAMES`.
    """
    q = _array(q, "q", 2)
    if q.shape != (2,):
        raise ConfigError(f"q: expected shape (2,), got {q.shape}")
    level = _finite(level, "level")
    if not 0 < level <= 1:
        raise ConfigError(f"level: must lie in (0, 1], got {level!r}")
    c = _consts(params)
    arms = moment_arms(q, params)  # (2, 6)
    length, still = muscle_lengths(q, params), np.zeros(N_MUSCLES)
    # at zero velocity the force is affine in the activation over [min_activation, 1]
    low = _force(np.full(N_MUSCLES, params.min_activation), length, still, c)[0]
    high = _force(np.ones(N_MUSCLES), length, still, c)[0]
    active_unit = (high - low) / (1.0 - params.min_activation)  # N per unit activation
    passive = low - params.min_activation * active_unit
    a_mat = arms * active_unit  # torque per unit activation, (2, 6)
    b = -arms @ passive
    a0 = np.full(N_MUSCLES, level)
    a = a0 + a_mat.T @ np.linalg.solve(a_mat @ a_mat.T, b - a_mat @ a0)
    return np.clip(a, params.min_activation, 1.0)


# --------------------------------------------------------------------------- state and stepping


@dataclass(frozen=True, eq=False)
class ArmState:
    """The arm's state, a batch of trials.

    Attributes
    ----------
    q : ndarray, shape (trials, 2)
        Shoulder and elbow angle (rad).
    dq : ndarray, shape (trials, 2)
        Angular velocities (rad/s).
    activation : ndarray, shape (trials, 6)
        Muscle activation (dimensionless, in ``[min_activation, 1]``).
    """

    q: np.ndarray
    dq: np.ndarray
    activation: np.ndarray

    @property
    def n_trials(self) -> int:
        """Number of trials in the batch."""
        return self.q.shape[0]


def initial_state(
    n_trials: int = 1,
    q0: np.ndarray | None = None,
    dq0: np.ndarray | None = None,
    activation0: np.ndarray | None = None,
    params: Arm26Params = Arm26Params(),
) -> ArmState:
    """A batch of initial states, by default the start posture at rest with muscles at rest.

    Parameters
    ----------
    n_trials : int
        Batch size (used when none of the arrays is given per trial).
    q0, dq0 : ndarray, shape (trials, 2) or (2,), optional
        Joint angles (rad; default ``params.start_posture``) and velocities (rad/s; default 0).
    activation0 : ndarray, shape (trials, 6) or (6,), optional
        Activation (default ``min_activation``, as MotorNet's reset).
    params : Arm26Params

    Returns
    -------
    ArmState
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ConfigError(f"n_trials: expected a whole number >= 1, got {n_trials!r}")
    parts = {
        "q0": (q0, params.start_posture, 2),
        "dq0": (dq0, np.zeros(2), 2),
        "activation0": (activation0, np.full(N_MUSCLES, params.min_activation), N_MUSCLES),
    }
    arrays = {}
    for name, (value, default, width) in parts.items():
        a = default if value is None else _array(value, name, width)
        if a.ndim not in (1, 2):
            raise ConfigError(f"{name}: expected shape (trials, {width}) or ({width},), got {a.shape}")
        arrays[name] = a
    sizes = {a.shape[0] for a in arrays.values() if a.ndim == 2}
    if len(sizes) > 1:
        raise ConfigError(f"q0, dq0, activation0: different numbers of trials {sorted(sizes)}")
    n = sizes.pop() if sizes else int(n_trials)
    act = arrays["activation0"]
    if np.any(act < 0) or np.any(act > 1):
        raise ConfigError("activation0: values must lie in [0, 1]")
    out = [np.array(np.broadcast_to(arrays[k], (n, arrays[k].shape[-1])), dtype=float) for k in arrays]
    out[2] = np.clip(out[2], params.min_activation, 1.0)
    return ArmState(out[0], out[1], out[2])


Deriv = Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]]


def _advance(state: tuple[np.ndarray, ...], deriv: Deriv, h: float, method: str) -> tuple[np.ndarray, ...]:
    """One sub-step of ``h`` seconds; ``state = (q, dq, *rest)``, ``deriv`` returns its rates."""
    if method == "euler":  # semi-implicit: velocity (and the rest) first, position with the new velocity
        rates = deriv(state)
        dq = state[1] + h * rates[1]
        return (state[0] + h * dq, dq) + tuple(x + h * r for x, r in zip(state[2:], rates[2:]))
    k1 = deriv(state)
    k2 = deriv(tuple(x + 0.5 * h * r for x, r in zip(state, k1)))
    k3 = deriv(tuple(x + 0.5 * h * r for x, r in zip(state, k2)))
    k4 = deriv(tuple(x + h * r for x, r in zip(state, k3)))
    return tuple(x + h / 6.0 * (r1 + 2.0 * r2 + 2.0 * r3 + r4) for x, r1, r2, r3, r4 in zip(state, k1, k2, k3, k4))


def _arm_deriv(
    u: np.ndarray, load: np.ndarray | None, joint_load: np.ndarray | None, c: _Consts, curl: np.ndarray | None = None
) -> Deriv:
    """Rates of ``(q, dq, activation)`` under held excitation ``u`` (clipped), loads and a force field."""
    p = c.p

    def deriv(state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        q, dq, a = state
        q1, q2, dq1, dq2 = q[:, 0], q[:, 1], dq[:, 0], dq[:, 1]
        x1 = (q1 - c.offset[0])[:, None]
        x2 = (q2 - c.offset[1])[:, None]
        dl1 = c.a1[0] + 2.0 * c.a2[0] * x1  # dL/dq1, (n, 6)
        dl2 = c.a1[1] + 2.0 * c.a2[1] * x2
        length = c.a0 + (c.a1[0] + c.a2[0] * x1) * x1 + (c.a1[1] + c.a2[1] * x2) * x2
        force = _force(a, length, dl1 * dq1[:, None] + dl2 * dq2[:, None], c)[0]
        t1 = -np.sum(force * dl1, axis=1)
        t2 = -np.sum(force * dl2, axis=1)
        limit = _limit_torque(q, dq, c)
        t1 = t1 + limit[:, 0] - p.joint_damping * dq1
        t2 = t2 + limit[:, 1] - p.joint_damping * dq2
        if load is not None or curl is not None:
            s12 = q1 + q2
            x_1, y_1 = c.l1 * np.cos(q1), c.l1 * np.sin(q1)
            x_2, y_2 = c.l2 * np.cos(s12), c.l2 * np.sin(s12)
            f = np.zeros((q.shape[0], 2)) if load is None else load
            if curl is not None:  # f = load + curl @ v, v = J(q) dq the hand velocity
                v = np.stack([-(y_1 + y_2) * dq1 - y_2 * dq2, (x_1 + x_2) * dq1 + x_2 * dq2], axis=1)
                f = f + v @ curl.T
            t1 = t1 - (y_1 + y_2) * f[:, 0] + (x_1 + x_2) * f[:, 1]
            t2 = t2 - y_2 * f[:, 0] + x_2 * f[:, 1]
        if joint_load is not None:
            t1 = t1 + joint_load[:, 0]
            t2 = t2 + joint_load[:, 1]
        ddq1, ddq2 = _accel(q2, dq1, dq2, t1, t2, c)
        return dq, np.stack([ddq1, ddq2], 1), _activation_rate(u, a, p)

    return deriv


def _step(
    state: ArmState,
    u: np.ndarray,
    dt: float,
    substeps: int,
    method: str,
    load: np.ndarray | None,
    joint_load: np.ndarray | None,
    c: _Consts,
    curl: np.ndarray | None = None,
) -> ArmState:
    """:func:`arm_step` without the checks (``u`` already clipped to ``[min_activation, 1]``)."""
    deriv = _arm_deriv(u, load, joint_load, c, curl)
    h = dt / substeps
    x = (state.q, state.dq, state.activation)
    for _ in range(substeps):
        x = _advance(x, deriv, h, method)
        x = (x[0], x[1], np.minimum(np.maximum(x[2], c.p.min_activation), 1.0))
    return ArmState(*x)


def _check_step(dt: Any, substeps: Any, method: Any, params: Arm26Params | None) -> tuple[float, int, str]:
    """Checked ``dt`` (s), ``substeps`` and ``method``; with ``params``, the sub-step too."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise ConfigError(f"dt: expected a number of seconds, got {dt!r}")
    dt = float(dt)
    if not math.isfinite(dt) or dt <= 0:
        raise ConfigError(f"dt: must be a finite number of seconds > 0, got {dt!r}")
    if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) or substeps < 1:
        raise ConfigError(f"substeps: expected a whole number >= 1, got {substeps!r}")
    if method not in METHODS:
        raise ConfigError(f"method: {method!r} is not allowed; choose one of {', '.join(METHODS)}")
    if params is not None:
        tau = params.shortest_time_constant
        limit = _STEP_LIMIT[method] * tau
        if dt / substeps > limit * (1 + 1e-12):
            raise ConfigError(
                f"dt: the sub-step dt / substeps = {dt / substeps * 1e3:g} ms exceeds {limit * 1e3:.2f} ms "
                f"({_STEP_LIMIT[method]:g} x the shortest activation time constant, {tau * 1e3:.2f} ms) for "
                f"method {method!r}; use at least {math.ceil(dt / limit - 1e-9)} substeps"
            )
    return dt, int(substeps), method


_curl = _validate.curl_matrix


def _load(value: Any, name: str, shape: tuple[int, ...], width: int) -> np.ndarray | None:
    """A checked optional load of ``shape`` (or None)."""
    if value is None:
        return None
    a = _array(value, name, width)
    if a.shape != shape:
        raise ConfigError(f"{name}: expected shape {shape}, got {a.shape}")
    return a


def _excitation(value: Any, name: str = "excitation") -> np.ndarray:
    """Excitation as a finite float array with values in ``[0, 1]``."""
    u = _array(value, name, N_MUSCLES)
    if u.min() < 0 or u.max() > 1:
        raise ConfigError(f"{name}: values must lie in [0, 1], found [{u.min():g}, {u.max():g}]")
    return u


def arm_step(
    state: ArmState,
    excitation: np.ndarray,
    dt: float,
    params: Arm26Params = Arm26Params(),
    *,
    substeps: int = 5,
    endpoint_load: np.ndarray | None = None,
    joint_load: np.ndarray | None = None,
    method: str = "euler",
    curl: np.ndarray | None = None,
) -> ArmState:
    """Advance the arm by one task step of ``dt`` under a held excitation.

    Parameters
    ----------
    state : ArmState
        Current state, ``trials`` in the batch.
    excitation : ndarray, shape (trials, 6)
        Neural excitation of each muscle, in ``[0, 1]`` (clipped to ``[min_activation, 1]``).
    dt : float
        Task step (s), split into ``substeps`` integration sub-steps.
    params : Arm26Params
    substeps : int
        Integration sub-steps per task step (default 5: 2 ms at dt = 10 ms).
    endpoint_load : ndarray, shape (trials, 2), optional
        Force on the hand (N), applied as the joint torque ``J(q)^T f`` at every sub-step.
    joint_load : ndarray, shape (trials, 2), optional
        Extra joint torque (N m).
    method : {"euler", "rk4"}
        Semi-implicit Euler or classical Runge-Kutta (see the module notes).
    curl : ndarray, shape (2, 2), optional
        Velocity-dependent force field on the hand, ``f = curl @ v`` (N s/m), added to the load.

    Returns
    -------
    ArmState
        The state after ``dt``.
    """
    if not isinstance(state, ArmState):
        raise ConfigError(f"state: expected an ArmState, got {type(state).__name__}")
    dt, substeps, method = _check_step(dt, substeps, method, params)
    n = state.n_trials
    u = _excitation(excitation)
    if u.shape != (n, N_MUSCLES):
        raise ConfigError(f"excitation: expected shape ({n}, {N_MUSCLES}), got {u.shape}")
    load = _load(endpoint_load, "endpoint_load", (n, 2), 2)
    jload = _load(joint_load, "joint_load", (n, 2), 2)
    u = np.clip(u, params.min_activation, 1.0)
    field = _curl(curl)
    return _step(state, u, dt, substeps, method, load, jload, _consts(params), field if field.any() else None)


# --------------------------------------------------------------------------- trajectories


@dataclass(frozen=True, eq=False)
class ArmTrajectory(Mapping):
    """Simulated trajectories of a batch of trials; also a read-only mapping (``result["q"]``).

    Index ``t`` of every array is the state at time ``t dt`` (``[:, 0]`` the initial state).

    Attributes
    ----------
    q : ndarray, shape (trials, time, 2)
        Joint angles (rad).
    dq : ndarray, shape (trials, time, 2)
        Joint velocities (rad/s).
    hand : ndarray, shape (trials, time, 2)
        Hand position (m), shoulder at the origin.
    hand_velocity : ndarray, shape (trials, time, 2)
        Hand velocity (m/s).
    activation : ndarray, shape (trials, time, 6)
        Muscle activation.
    muscle_force : ndarray, shape (trials, time, 6)
        Musculotendon force (N) at each state.
    fibre_length : ndarray, shape (trials, time, 6)
        Fibre length (m).
    fibre_velocity : ndarray, shape (trials, time, 6)
        Fibre lengthening velocity (m/s).
    excitation : ndarray, shape (trials, time, 6)
        The excitation applied in each step, after motor noise (``[:, T - 1]`` unused).
    dt : float
        Task step (s).
    """

    q: np.ndarray
    dq: np.ndarray
    hand: np.ndarray
    hand_velocity: np.ndarray
    activation: np.ndarray
    muscle_force: np.ndarray
    fibre_length: np.ndarray
    fibre_velocity: np.ndarray
    excitation: np.ndarray
    dt: float

    def _keys(self) -> tuple[str, ...]:
        """The array fields."""
        return tuple(f.name for f in fields(self) if f.name != "dt")

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def _inputs(
    x: Any, name: str, width: int, q0: Any, dq0: Any, params: Arm26Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(trials, time, width)`` input and initial ``q0``, ``dq0`` of shape ``(trials, 2)``."""
    a = _array(x, name, width)
    if a.ndim != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ConfigError(f"{name}: expected shape (trials, time, {width}) with trials, time >= 1, got {a.shape}")
    n = a.shape[0]
    s = initial_state(n, q0, dq0, None, params)
    if s.n_trials != n:
        raise ConfigError(f"q0, dq0: {s.n_trials} trials, but {name} has {n}")
    return a, s.q, s.dq


def simulate_skeleton(
    torque: np.ndarray,
    dt: float,
    q0: np.ndarray | None = None,
    dq0: np.ndarray | None = None,
    *,
    params: Arm26Params = Arm26Params(),
    substeps: int = 5,
    method: str = "euler",
) -> tuple[np.ndarray, np.ndarray]:
    """Forward dynamics of the rigid two-link skeleton under applied joint torques.

    ``M(q) ddq + C(q, dq) dq = tau``: no muscles, damping, gravity or joint limits.

    Parameters
    ----------
    torque : ndarray, shape (trials, time, 2)
        Shoulder and elbow torque (N m), held for each step.
    dt : float
        Step (s), split into ``substeps`` sub-steps.
    q0, dq0 : ndarray, shape (trials, 2) or (2,), optional
        Initial angles (rad; default the start posture) and velocities (rad/s; default 0).
    params : Arm26Params
    substeps : int
        Integration sub-steps per step.
    method : {"euler", "rk4"}
        Semi-implicit Euler or classical Runge-Kutta.

    Returns
    -------
    q, dq : ndarray, shape (trials, time, 2)
        Angles (rad) and velocities (rad/s); ``[:, 0]`` the initial state, ``[:, t + 1]`` after
        torque step ``t`` (``torque[:, -1]`` has no effect).
    """
    dt, substeps, method = _check_step(dt, substeps, method, None)
    tau, q, dq = _inputs(torque, "torque", 2, q0, dq0, params)
    c = _consts(params)
    n, T = tau.shape[:2]
    q_out, dq_out = np.empty((n, T, 2)), np.empty((n, T, 2))
    q_out[:, 0], dq_out[:, 0] = q, dq
    h = dt / substeps
    x: tuple[np.ndarray, ...] = (q, dq)
    for t in range(T - 1):
        tt = tau[:, t]

        def deriv(s: tuple[np.ndarray, ...], tt: np.ndarray = tt) -> tuple[np.ndarray, ...]:
            ddq1, ddq2 = _accel(s[0][:, 1], s[1][:, 0], s[1][:, 1], tt[:, 0], tt[:, 1], c)
            return s[1], np.stack([ddq1, ddq2], 1)

        for _ in range(substeps):
            x = _advance(x, deriv, h, method)
        q_out[:, t + 1], dq_out[:, t + 1] = x
    return q_out, dq_out


def simulate_arm(
    excitation: np.ndarray,
    dt: float,
    q0: np.ndarray | None = None,
    dq0: np.ndarray | None = None,
    endpoint_load: np.ndarray | None = None,
    params: Arm26Params = Arm26Params(),
    substeps: int = 5,
    *,
    activation0: np.ndarray | None = None,
    joint_load: np.ndarray | None = None,
    motor_noise: float = 0.0,
    rng: np.random.Generator | None = None,
    method: str = "euler",
    curl: np.ndarray | None = None,
) -> ArmTrajectory:
    """Simulate the six-muscle arm driven by muscle excitations.

    Parameters
    ----------
    excitation : ndarray, shape (trials, time, 6)
        Neural excitation of each muscle (:data:`MUSCLE_NAMES`), in ``[0, 1]``, held for each
        step (clipped to ``[min_activation, 1]`` as MotorNet does).
    dt : float
        Task step (s), split into ``substeps`` sub-steps.
    q0, dq0 : ndarray, shape (trials, 2) or (2,), optional
        Initial angles (rad; default the start posture) and velocities (rad/s; default 0).
    endpoint_load : ndarray, shape (trials, time, 2), optional
        Force on the hand (N), held per step and applied as the joint torque ``J(q)^T f``.
    params : Arm26Params
    substeps : int
        Integration sub-steps per step (default 5: 2 ms at dt = 10 ms).
    activation0 : ndarray, shape (trials, 6) or (6,), optional
        Initial activation (default ``min_activation``).
    joint_load : ndarray, shape (trials, time, 2), optional
        Extra joint torque (N m), held per step.
    motor_noise : float
        Signal-dependent noise: the SD of a Gaussian perturbation relative to the excitation,
        ``u (1 + motor_noise xi)``, drawn per trial, step and muscle, clipped to ``[0, 1]``
        (default 0: off).
    rng : numpy.random.Generator, optional
        Source of the motor noise (required when ``motor_noise > 0``).
    method : {"euler", "rk4"}
        Semi-implicit Euler (default) or classical Runge-Kutta (see the module notes).
    curl : ndarray, shape (2, 2), optional
        Velocity-dependent force field on the hand, ``f = curl @ v`` (N s/m), added to the load
        at every sub-step (e.g. ``[[0, 13], [-13, 0]]``, a curl field).

    Returns
    -------
    ArmTrajectory
        ``q``, ``dq``, ``hand``, ``hand_velocity`` ``(trials, time, 2)``; ``activation``,
        ``muscle_force``, ``fibre_length``, ``fibre_velocity``, ``excitation``
        ``(trials, time, 6)``.  ``[:, 0]`` is the initial state, ``[:, t + 1]`` the state
        after excitation step ``t`` (``excitation[:, -1]`` has no effect).
    """
    dt, substeps, method = _check_step(dt, substeps, method, params)
    u, q, dq = _inputs(excitation, "excitation", N_MUSCLES, q0, dq0, params)
    u = _excitation(u)
    n, T = u.shape[:2]
    load = _load(endpoint_load, "endpoint_load", (n, T, 2), 2)
    jload = _load(joint_load, "joint_load", (n, T, 2), 2)
    noise = _finite(motor_noise, "motor_noise")
    if noise < 0:
        raise ConfigError(f"motor_noise: must be >= 0, got {motor_noise!r}")
    if noise > 0:
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng: motor_noise > 0 needs a numpy.random.Generator, got {type(rng).__name__}")
        u = np.clip(u * (1.0 + noise * rng.standard_normal(u.shape)), 0.0, 1.0)
    state = initial_state(n, q, dq, activation0, params)
    c = _consts(params)
    field = _curl(curl)
    field = field if field.any() else None
    drive = np.clip(u, params.min_activation, 1.0)
    qs, dqs, acts = np.empty((n, T, 2)), np.empty((n, T, 2)), np.empty((n, T, N_MUSCLES))
    qs[:, 0], dqs[:, 0], acts[:, 0] = state.q, state.dq, state.activation
    for t in range(T - 1):
        lt = None if load is None else load[:, t]
        jt = None if jload is None else jload[:, t]
        state = _step(state, drive[:, t], dt, substeps, method, lt, jt, c, field)
        qs[:, t + 1], dqs[:, t + 1], acts[:, t + 1] = state.q, state.dq, state.activation
    velocity = np.einsum("...j,...jm->...m", dqs, -moment_arms(qs, params))
    force, fibre, fibre_velocity = _force(acts, muscle_lengths(qs, params), velocity, c)
    return ArmTrajectory(
        q=qs,
        dq=dqs,
        hand=hand_position(qs, params),
        hand_velocity=hand_velocity(qs, dqs, params),
        activation=acts,
        muscle_force=force,
        fibre_length=fibre,
        fibre_velocity=fibre_velocity,
        excitation=u,
        dt=dt,
    )


# --------------------------------------------------------------------------- bodies


def _simulate_arm26(excitation: np.ndarray, dt: float, *, state0: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The arm as a body of :data:`BODIES`: :func:`simulate_arm` with defaults, its outputs as a dict.

    ``state0`` is :class:`ArmKernel`'s state ``(q1, q2, dq1, dq2, a_1 .. a_6)``, ``(trials, 10)``
    or ``(10,)``; None: the start posture at rest.  ``"hand"`` is in metres with the shoulder at
    the origin (:func:`hand_position`).
    """
    q0 = dq0 = a0 = None
    if state0 is not None:
        s = _array(state0, "state0", _plant.N_STATE)
        if s.ndim not in (1, 2):
            raise ConfigError(
                f"state0: expected shape (trials, {_plant.N_STATE}) or ({_plant.N_STATE},), got {s.shape}"
            )
        q0, dq0, a0 = s[..., 0:2], s[..., 2:4], s[..., 4:]
    arm = simulate_arm(excitation, dt, q0, dq0, activation0=a0)
    return {"hand": arm.hand, "velocity": arm.hand_velocity, "activation": arm.activation, "force": arm.muscle_force}


BODIES: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "arm26": _simulate_arm26,
    "pointmass24": pointmass.simulate_pointmass,
}
"""The bodies :func:`simulate_body` knows: the six-muscle arm (this module) and MotorNet's point mass
with four muscles (:mod:`cortexsim.pointmass`)."""


def simulate_body(kind: str, excitation: np.ndarray, dt: float, *, state0: np.ndarray | None = None) -> dict:
    """Simulate a body of :data:`BODIES` driven by muscle excitations (default parameters, no loads).

    Parameters
    ----------
    kind : str
        ``"arm26"`` or ``"pointmass24"``.
    excitation : ndarray, shape (trials, time, muscles)
        Excitation of each muscle, in ``[0, 1]``, held for each step (6 muscles for the arm, 4
        for the point mass).
    dt : float
        Task step (s).
    state0 : ndarray, shape (trials, n_state) or (n_state,), optional
        The initial state in the layout of the body's kernel (:class:`ArmKernel`,
        :class:`cortexsim.pointmass.PointMassKernel`); default: the body's start, at rest.

    Returns
    -------
    dict
        ``"hand"`` (trials, time, 2): the endpoint (m; the arm's with the shoulder at the origin,
        the point mass's with the workspace centre at the origin); ``"velocity"`` (trials, time,
        2; m/s); ``"activation"`` (trials, time, muscles); ``"force"`` (trials, time, muscles;
        N).  ``[:, 0]`` is the initial state, ``[:, t + 1]`` the state after step ``t``.
    """
    _validate.choice(kind, "kind", BODIES)
    return BODIES[kind](excitation, dt, state0=state0)


# --------------------------------------------------------------------------- fused kernels


def plant_constants(params: Arm26Params = Arm26Params()) -> tuple[np.ndarray, np.ndarray]:
    """The arm's constants packed for the fused kernels of :class:`ArmKernel`.

    Returns
    -------
    scal : ndarray, shape (38,)
        Scalars (segment and inertia terms, muscle-model constants, activation, limits).
    mus : ndarray, shape (11, 6)
        Per-muscle rows: ``a0``, ``a1`` (shoulder, elbow), ``a2`` (shoulder, elbow), ``F_max``,
        ``l_opt``, tendon length, ``vmax`` (m/s) and the reciprocals of ``l_opt`` and ``vmax``.
    """
    c, p = _consts(params), params
    named = {f.name: getattr(p, f.name) for f in fields(p) if not isinstance(f.default, tuple)}
    named.update(l1=c.l1, l2=c.l2, i11=c.i11, i12=c.i12, i22=c.i22, k=c.k, k_pe=c.k_pe)
    for j, joint in enumerate(("shoulder", "elbow")):
        named.update({f"q_min_{joint}": c.q_min[j], f"q_max_{joint}": c.q_max[j], f"offset_{joint}": c.offset[j]})
    named.update(
        inv_fl_width=1.0 / p.fl_width,
        inv_fv_q_span=1.0 / (p.fv_b_rel_floor_activation - p.fv_q_crit),
        inv_tau_activation=1.0 / p.tau_activation,
        inv_tau_deactivation=1.0 / p.tau_deactivation,
        inv_limit_width=1.0 / p.limit_width,
    )
    scal = np.array([named[name] for name in _plant.SCALARS], dtype=float)
    rows = {
        "a0": c.a0,
        "a1_shoulder": c.a1[0],
        "a1_elbow": c.a1[1],
        "a2_shoulder": c.a2[0],
        "a2_elbow": c.a2[1],
        "f_max": c.f_max,
        "l_opt": c.l_opt,
        "l_tendon": c.l_tendon,
        "v_max": c.v_max,
        "inv_l_opt": 1.0 / c.l_opt,
        "inv_v_max": 1.0 / c.v_max,
    }
    mus = np.stack([rows[name] for name in _plant.MUSCLE_ROWS]).astype(float)
    return scal, np.ascontiguousarray(mus)


class ArmKernel:
    """The arm as fused, compiled kernels: a task step forward and its exact reverse-mode derivative.

    The arithmetic of :func:`arm_step` (semi-implicit Euler, ``substeps`` sub-steps per task step,
    excitation held) per trial in scalar code compiled by numba (:mod:`cortexsim._plant`), one call
    per task step for all trials and sub-steps, and the hand-derived backward step.  This is what
    the closed loop (:mod:`cortexsim.closed_loop`) trains through; :func:`arm_step` stays the
    readable reference it is tested against (``tests/test_plant.py``: forward to 1e-12, backward
    against centred finite differences).

    State arrays are ``(trials, 10)`` float64: ``(q1, q2, dq1, dq2, a_1 .. a_6)``.

    Parameters
    ----------
    dt : float
        Task step (s).
    params : Arm26Params
    substeps : int
        Sub-steps per task step (default 5: 2 ms at dt = 10 ms; see the module notes for accuracy).
    curl : ndarray, shape (2, 2), optional
        A velocity-dependent force field on the hand, ``f = curl @ v`` (N s/m, ``v`` the hand
        velocity in the shoulder frame), added to the endpoint load at every sub-step -- e.g.
        the curl field ``[[0, 13], [-13, 0]]`` of Shadmehr & Mussa-Ivaldi (1994).  Default: none.
    """

    NAME = "arm26"
    """The body's registry name (``[effector] kind``)."""
    PART = "arm"
    """What the closed loop's map calls this body's part of its state."""
    N_STATE = _plant.N_STATE
    N_SENSE = _plant.N_SENSE
    MUSCLES = MUSCLE_NAMES
    """The muscles, in the order of excitations, activations and sensors."""
    N_MUSCLES = N_MUSCLES
    N_DOF = 2
    """Degrees of freedom: the state is ``(q, dq, activations)`` with ``q`` of this size."""
    DESCRIPTION = "The six-muscle arm (MotorNet's RigidTendonArm26, cortexsim.effector)"
    COORDINATES = {
        "q": ("rad", "joint", "Shoulder and elbow angle (MotorNet's convention: shoulder from +x, elbow relative)."),
        "dq": ("rad/s", "joint", "Joint angular velocity."),
    }
    """What the run file says of the coordinates and their velocities: name -> (units, last axis, description)."""
    DOF_NAMES = ("shoulder", "elbow")
    """The coordinates of ``q`` (and ``dq``), in order."""
    SERIES_NAMES = {"q": "joint_angles", "dq": "joint_velocities"}
    """What a shared file (the NWB export) calls the coordinates and their velocities."""
    HAND_TEXT = "Hand position in the shoulder frame (x right, y away from the body)."
    ORIGIN = "shoulder"
    """What sits at (0, 0) of the hand's frame."""

    def __init__(
        self, dt: float, params: Arm26Params = Arm26Params(), substeps: int = 5, curl: np.ndarray | None = None
    ):
        self.dt, self.substeps, _ = _check_step(dt, substeps, "euler", params)
        self.h = self.dt / self.substeps
        self.params = params
        self.scal, self.mus = plant_constants(params)
        self.curl = np.ascontiguousarray(_curl(curl))

    def with_curl(self, curl: np.ndarray | None) -> ArmKernel:
        """The same arm in the velocity-dependent force field ``f = curl @ v`` (N s/m; None: no field)."""
        return ArmKernel(self.dt, self.params, self.substeps, curl)

    def start_posture(self) -> np.ndarray:
        """The default start posture, joint angles (rad), ``(2,)``."""
        return np.array(self.params.start_posture, float)

    def configured_posture(self, start_posture_deg: tuple[float, ...]) -> np.ndarray:
        """The start posture ``[effector] start_posture_deg`` names (shoulder, elbow; deg), in rad."""
        return np.deg2rad(np.asarray(start_posture_deg, float))

    def skeleton(self, q: np.ndarray) -> np.ndarray:
        """Points to draw the arm at joint angles ``q`` (..., 2): shoulder, elbow, hand, ``(..., 3, 2)`` (m)."""
        q = np.asarray(q, float)
        upper = self.params.segment_length[0]
        elbow = upper * np.stack([np.cos(q[..., 0]), np.sin(q[..., 0])], axis=-1)
        return np.stack([np.zeros_like(elbow), elbow, hand_position(q, self.params)], axis=-2)

    def rest_excitation(self, posture: np.ndarray, level: float = 0.05) -> np.ndarray:
        """The least-norm co-contraction that holds ``posture`` still, ``(6,)`` (:func:`balanced_excitation`)."""
        return balanced_excitation(posture, level, self.params)

    def rest_readings(self, posture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sensor readings at ``posture``: fibre lengths / l_opt ``(6,)``, the hand (m, shoulder frame) ``(2,)``."""
        p = self.params
        lengths = (muscle_lengths(posture, p) - np.array(p.tendon_length)) / np.array(p.optimal_fibre_length)
        return lengths, hand_position(posture, p)

    def initial(self, n_trials: int, q0: np.ndarray | None = None) -> np.ndarray:
        """Initial states ``(trials, 10)``: posture ``q0`` (rad; default the start posture), at rest."""
        s = initial_state(n_trials, q0, params=self.params)
        return np.ascontiguousarray(np.concatenate([s.q, s.dq, s.activation], axis=1))

    def tape(self, n_trials: int) -> np.ndarray:
        """An empty tape for one task step of ``n_trials`` trials, ``(trials, substeps, TAPE_WIDTH)``."""
        return np.empty((n_trials, self.substeps, _plant.TAPE_WIDTH))

    def step(self, state: np.ndarray, u: np.ndarray, load: np.ndarray, out: np.ndarray, tape: np.ndarray) -> None:
        """Advance ``state`` by ``dt`` into ``out``; ``tape`` (:meth:`tape`) keeps what the backward step needs.

        ``u`` ``(trials, 6)`` is the excitation (clipped here to ``[min_activation, 1]``), ``load``
        ``(trials, 2)`` the force on the hand (N).
        """
        _plant.step_forward(state, u, load, self.curl, self.scal, self.mus, self.h, self.substeps, out, tape)

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

        ``g_load`` (trials, 2) may be None when the load's derivative is not needed (saves time).

        ``g_u`` is the derivative with respect to the excitation *before* its clip to
        ``[min_activation, 1]`` (zero where the clip is active).
        """
        want_load = g_load is not None
        g_load = g_load if want_load else np.empty((1, 2))
        _plant.step_backward(
            tape, load, self.curl, self.scal, self.mus, self.h, self.substeps, g_out, g_state, g_u, g_load, want_load
        )

    def sense(self, state: np.ndarray, out: np.ndarray) -> None:
        """Sensor readings ``(trials, 14)``: fibre length / l_opt, fibre velocity / vmax (6 each), hand (m)."""
        _plant.sense(state, self.scal, self.mus, out)

    def sense_backward(self, state: np.ndarray, g_sense: np.ndarray, g_state: np.ndarray) -> None:
        """Add dL/d(state) of the sensor readings (``g_sense``, ``(trials, 14)``) to ``g_state``."""
        _plant.sense_backward(state, self.scal, self.mus, g_sense, g_state)


PLANTS: dict[str, type] = {"arm26": ArmKernel, "pointmass24": pointmass.PointMassKernel}
"""The plant kernel of each body (``[effector] kind``): what a closed loop steps and differentiates
(:mod:`cortexsim.body`).  A new body is a kernel with this interface and an entry here (and in
:data:`BODIES`, and its name in ``config.EFFECTOR_KINDS``)."""
