"""Motor tasks as data: trial batches of inputs, targets and loss masks.

Axis order, for the whole package: **(trials, time, channels)**.  Time step ``k``
covers ``[k*dt, (k+1)*dt)``; times are in seconds, positions in metres.

The delayed center-out reach (after Churchland et al. 2012, *Nature* 487:51):

=============  ===============================================================
fixation       hand at the centre, no input
target onset   channels ``target_x``, ``target_y`` = (cos, sin) of the target
               direction, on from onset to the end of the trial
delay          uniform in ``[delay_min, delay_max]`` (a share of trials: zero)
go cue         channel ``go`` = 1 for ``go_duration``
reaction time  the hand must not move before go + ``reaction_time``
reach          minimum-jerk path (Flash & Hogan 1985) of ``reach_distance``
               in ``reach_duration``
hold           at the target until the trial ends
=============  ===============================================================

Catch trials (``catch_fraction``) show a target but no go cue: the hand must
stay at the centre.

The maze (``[task] kind = "maze"``, :class:`MazeTask`) keeps every timing but reaches each target
by several paths, as Churchland et al.'s maze conditions do: straight, or the minimum-jerk path
through one or two via points (Flash & Hogan 1985, :func:`minimum_jerk_via`).  Its input channels
add the via points (``via1_x``, ``via1_y``, ``via2_x``, ``via2_y``), shown with the target.

Every task has the interface of :class:`Task`; :func:`task_of` builds the one a ``[task]``
section names.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np
from scipy import optimize

from . import _validate as v
from .config import TaskConfig
from .errors import ConfigError


@dataclass(frozen=True)
class TrialBatch:
    """A batch of trials.

    Attributes
    ----------
    inputs : ndarray, shape (trials, time, inputs)
        Task input channels (dimensionless).
    targets : ndarray, shape (trials, time, outputs)
        Desired hand position (m).
    mask : ndarray, shape (trials, time, outputs)
        1 where the output counts in the loss, 0 elsewhere.
    dt : float
        Time step (s).
    params : dict of str to ndarray, shape (trials,)
        Per-trial parameters: ``angle`` (rad), ``condition`` (target index, -1 when
        angles are drawn freely), ``catch`` (bool), ``target_on``, ``go``,
        ``move_on``, ``move_off`` (s; ``go``, ``move_*`` are NaN on catch trials),
        ``delay`` (s).
    input_names, input_groups : tuple of str
        Name of each input channel and the circuit input group it enters by.
    output_names : tuple of str
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    dt: float
    params: dict[str, np.ndarray] = field(default_factory=dict)
    input_names: tuple[str, ...] = ("target_x", "target_y", "go")
    input_groups: tuple[str, ...] = ("target", "target", "go")
    output_names: tuple[str, ...] = ("hand_x", "hand_y")

    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return self.inputs.shape[0]

    @property
    def n_steps(self) -> int:
        """Number of time steps."""
        return self.inputs.shape[1]

    def take(self, index: np.ndarray) -> TrialBatch:
        """The trials ``index`` (an integer array; repeats allowed), with their per-trial params."""
        index = np.asarray(index, int)
        params = {k: np.asarray(val)[index] for k, val in self.params.items()}
        return replace(
            self, inputs=self.inputs[index], targets=self.targets[index], mask=self.mask[index], params=params
        )

    def without(self, *names: str) -> TrialBatch:
        """The same trials without the per-trial params ``names`` (e.g. ``"endpoint_load"``)."""
        return replace(self, params={k: val for k, val in self.params.items() if k not in names})

    @property
    def time(self) -> np.ndarray:
        """Start time of each step (s), shape (time,)."""
        return np.arange(self.n_steps) * self.dt

    def __repr__(self) -> str:
        n_catch = int(np.sum(self.params.get("catch", 0)))
        return (
            f"<TrialBatch: {self.n_trials} trials ({n_catch} catch) x {self.n_steps} steps of "
            f"{self.dt * 1e3:g} ms, inputs {list(self.input_names)}>"
        )


def minimum_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk position profile 10 s^3 - 15 s^4 + 6 s^5 for phase ``s`` clipped to [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


class Task(Protocol):
    """What every task offers the models, trainers and analyses (:class:`CenterOutTask`, :class:`MazeTask`).

    ``input_names`` / ``input_groups`` name each input channel and the circuit input group it
    enters by; every batch the task draws carries them.  The first two channels are the target's
    position divided by ``reach_distance`` (the closed loop's visual feedback is relative to it).
    """

    KIND: str
    """Its name in ``[task] kind`` and :data:`TASKS`; the key of its entries in the metric and figure
    registries of the layers below (``metrics.TASK_METRICS``, ``plots.TASK_FIGURES``)."""
    PERTURBABLE: bool
    """Whether the ``[perturb]`` protocols (curl field, bumps; measured on straight reaches) apply."""
    dt: float
    reach_distance: float
    n_steps: int
    n_conditions: int
    input_names: tuple[str, ...]
    input_groups: tuple[str, ...]

    def sample(self, n_trials: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``n_trials`` random trials (deterministic for ``rng``)."""
        ...

    def evaluation_set(self, catch: bool = False) -> TrialBatch:
        """One trial per condition at ``eval_delay`` (with ``catch``: the catch versions)."""
        ...

    def trial_columns(self, batch: TrialBatch) -> dict[str, tuple[str, np.ndarray]]:
        """What a trials table records of each trial of ``batch`` besides the reach: name -> (description, values)."""
        ...


def task_of(task: TaskConfig) -> CenterOutTask:
    """The task a ``[task]`` section names (:data:`TASKS`, by ``kind``).

    Raises
    ------
    ConfigError
        ``kind = "recorded"``: that task is built from ``[fit] data`` (:func:`cortexsim.assembly.make_task`).
    """
    if task.kind not in TASKS:
        raise ConfigError(
            f'task.kind = "{task.kind}": its conditions come from [fit] data; this command needs a center_out '
            "or maze run"
        )
    return TASKS[task.kind].of(task)


def _jerk_spline(via: np.ndarray, end: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, float]:
    """The minimum-jerk path from 0 to ``end`` through ``via`` (m, 2) at phases ``tau`` (m,).

    Flash & Hogan (1985): between via points the path is a quintic, continuous up to its fourth
    derivative at each via point, so ``x(s) = a3 s^3 + a4 s^4 + a5 s^5 + sum_i c_i (s - tau_i)_+^5``
    (rest at the start removes the lower terms).  Returns the coefficients ``(a3, a4, a5, c_1..c_m)``
    (3 + m, 2) and the integrated squared jerk over s in [0, 1].
    """
    m = tau.size
    rows = np.zeros((3 + m, 3 + m))
    rest = 1.0 - tau
    rows[0] = [1.0, 1.0, 1.0, *rest**5]  # position at the end
    rows[1] = [3.0, 4.0, 5.0, *(5 * rest**4)]  # velocity at the end: 0
    rows[2] = [6.0, 12.0, 20.0, *(20 * rest**3)]  # acceleration at the end: 0
    for i, t in enumerate(tau):
        rows[3 + i] = [t**3, t**4, t**5, *(np.clip(t - tau, 0.0, None) ** 5)]
    rhs = np.vstack([end, np.zeros(2), np.zeros(2), via])
    coef = np.linalg.solve(rows, rhs)
    # the jerk is quadratic on each piece: three-point Gauss-Legendre integrates its square exactly
    nodes, weights = np.polynomial.legendre.leggauss(3)
    edges = np.concatenate([[0.0], tau, [1.0]])
    cost = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        s = lo + (hi - lo) * (nodes + 1) / 2
        cost += (hi - lo) / 2 * float(weights @ np.sum(_jerk(coef, tau, s) ** 2, axis=1))
    return coef, cost


def _jerk(coef: np.ndarray, tau: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Third derivative in phase of :func:`_jerk_spline`'s path at phases ``s``, (len(s), 2)."""
    ramps = [60 * np.clip(s - t, 0, None) ** 2 for t in tau]
    return np.column_stack([np.full_like(s, 6.0), 24 * s, 60 * s**2, *ramps]) @ coef


def _via_times(via: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The passage phases (m,) at which the path through ``via`` has the least jerk (deterministic)."""
    m = via.shape[0]
    if m == 0:
        return np.zeros(0)

    def phases(u: np.ndarray) -> np.ndarray:  # u in (0, 1)^m -> increasing phases in (0, 1)
        return 1.0 - np.cumprod(1.0 - u)

    # start from phases proportional to the distance along the polygon through the via points
    legs = np.linalg.norm(np.diff(np.vstack([np.zeros(2), via, end]), axis=0), axis=1)
    start = np.cumsum(legs)[:-1] / legs.sum()
    u0 = 1.0 - (1.0 - start) / np.concatenate([[1.0], 1.0 - start[:-1]])
    best = optimize.minimize(
        lambda u: _jerk_spline(via, end, phases(u))[1],
        u0,
        method="Powell",  # robust here; Nelder-Mead and L-BFGS-B stall on some rotations of a path
        bounds=[(1e-3, 1 - 1e-3)] * m,
        options={"xtol": 1e-10, "ftol": 1e-14},
    )
    return phases(np.asarray(best.x, float))


@functools.lru_cache(maxsize=4096)
def _via_plan(end: tuple, via: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Passage phases and spline coefficients of the path to ``end`` through ``via`` (solved once per path)."""
    end_a, via_a = np.asarray(end, float), np.asarray(via, float).reshape(-1, 2)
    tau = _via_times(via_a, end_a)
    return tau, _jerk_spline(via_a, end_a, tau)[0]


def minimum_jerk_via(end: np.ndarray, via: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Minimum-jerk path from the origin to ``end`` through the via points ``via`` (Flash & Hogan 1985).

    The hand starts and ends at rest (zero velocity and acceleration).  The phases at which it
    passes the via points are those that minimise the integrated squared jerk, found numerically.
    With no via point it is the straight :func:`minimum_jerk` reach.

    Parameters
    ----------
    end : ndarray, shape (2,)
        The target (m).
    via : ndarray, shape (m, 2)
        Via points in the order they are passed (m); ``m`` may be 0.
    phase : ndarray, shape (n,)
        Normalised time: 0 at movement onset, 1 at its end (clipped to [0, 1]).

    Returns
    -------
    ndarray, shape (n, 2)
        Position (m) at each phase.
    """
    end, via = np.asarray(end, float), np.asarray(via, float).reshape(-1, 2)
    s = np.clip(np.asarray(phase, float), 0.0, 1.0)
    tau, coef = _via_plan(tuple(end), tuple(map(tuple, via)))
    return np.column_stack([s**3, s**4, s**5, *(np.clip(s - t, 0, None) ** 5 for t in tau)]) @ coef


@dataclass(frozen=True)
class CenterOutTask(TaskConfig):
    """The delayed center-out reach of a :class:`~cortexsim.config.TaskConfig`: draws and builds trials.

    Its fields are those of ``[task]`` (see :class:`~cortexsim.config.TaskConfig`, every
    duration in seconds, distance in metres); ``CenterOutTask.of(config.task)`` makes one.
    """

    KIND = "center_out"
    """Its name in ``[task] kind``."""
    PERTURBABLE = True
    """The curl-field and bump protocols are measured on its straight reaches."""
    input_names = ("target_x", "target_y", "go")
    """Name of each input channel."""
    input_groups = ("target", "target", "go")
    """Circuit input group each channel enters by."""

    def trial_columns(self, batch: TrialBatch) -> dict[str, tuple[str, np.ndarray]]:
        """Nothing beyond the reach (its target, delay and timing are every task's columns)."""
        return {}

    @classmethod
    def of(cls, task: TaskConfig) -> CenterOutTask:
        """The task ``task`` (a ``[task]`` section) defines."""
        return task if type(task) is cls else cls(**asdict(task))

    def target_angles(self) -> np.ndarray:
        """Angles of the ``n_targets`` evenly spaced targets (rad), starting at 0 (rightward)."""
        return 2 * np.pi * np.arange(self.n_targets) / self.n_targets

    def sample(self, n_trials: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``n_trials`` random trials (deterministic for ``rng``)."""
        n_trials = v.number(n_trials, "n_trials", low=1, integer=True)
        if self.random_angles:
            angle = rng.uniform(0, 2 * np.pi, n_trials)
        else:
            condition = rng.integers(0, self.n_conditions, n_trials)
        delay = rng.uniform(self.delay_min, self.delay_max, n_trials)
        delay[rng.random(n_trials) < self.zero_delay_fraction] = 0.0
        catch = rng.random(n_trials) < self.catch_fraction
        if self.random_angles:
            return self.build(angle, delay, catch, np.full(n_trials, -1))
        return self.trials(condition, delay, catch)

    def evaluation_set(self, catch: bool = False) -> TrialBatch:
        """One trial per condition at ``eval_delay`` (with ``catch``: the catch versions)."""
        k = self.n_conditions
        return self.trials(np.arange(k), np.full(k, self.eval_delay), np.full(k, catch))

    def trials(self, condition: np.ndarray, delay: np.ndarray, catch: np.ndarray) -> TrialBatch:
        """Trials of given conditions (indices), delays (s) and catch flags, shape (trials,) each."""
        condition = np.asarray(condition, int)
        return self.build(self.target_angles()[condition], delay, catch, condition)

    def build(self, angle: np.ndarray, delay: np.ndarray, catch: np.ndarray, condition: np.ndarray) -> TrialBatch:
        """Straight reaches at given angles (rad), delays (s) and catch flags, shape (trials,) each."""
        angle = np.asarray(angle, float)
        return self._assemble(angle, delay, catch, condition, np.full((angle.size, 0, 2), np.nan))

    def _assemble(
        self, angle: np.ndarray, delay: np.ndarray, catch: np.ndarray, condition: np.ndarray, via: np.ndarray
    ) -> TrialBatch:
        """The batch of reaches to the targets at ``angle`` through ``via`` (trials, slots, 2; m, NaN: none)."""
        angle, delay = np.asarray(angle, float), np.asarray(delay, float)
        catch = np.asarray(catch, bool)
        n, steps, dt, d = angle.size, self.n_steps, self.dt, self.reach_distance
        t = np.arange(steps) * dt  # step start times
        target_on = np.full(n, self.fixation)
        go = np.where(catch, np.nan, target_on + delay)
        move_on = go + self.reaction_time
        move_off = move_on + self.reach_duration
        end = d * np.stack([np.cos(angle), np.sin(angle)], -1)  # (trials, 2)

        # channels: the target, then each via-point slot (0 where the path has none), then go
        shown = (t[None, :] >= target_on[:, None] - 1e-9)[:, :, None]
        seen = np.concatenate([end[:, None], np.nan_to_num(via, nan=0.0)], axis=1).reshape(n, -1) / d
        with np.errstate(invalid="ignore"):
            pulse = (t[None, :] >= go[:, None] - 1e-9) & (t[None, :] < go[:, None] + self.go_duration - 1e-9)
        inputs = np.concatenate([shown * seen[:, None, :], pulse[:, :, None]], axis=2).astype(float)

        with np.errstate(invalid="ignore"):
            phase = np.nan_to_num((t[None, :] - move_on[:, None]) / self.reach_duration, nan=0.0)
        targets = np.zeros((n, steps, 2))
        for i in np.flatnonzero(~catch):
            points = via[i][np.all(np.isfinite(via[i]), axis=1)]
            if points.size:
                targets[i] = minimum_jerk_via(end[i], points, phase[i])
            else:
                targets[i] = minimum_jerk(phase[i])[:, None] * end[i]
        mask = np.ones_like(targets)
        params = {
            "angle": angle,
            "condition": np.asarray(condition, int),
            "catch": catch,
            "delay": delay,
            "target_on": target_on,
            "go": go,
            "move_on": move_on,
            "move_off": move_off,
        }
        return TrialBatch(inputs, targets, mask, dt, params, self.input_names, self.input_groups)


@dataclass(frozen=True)
class MazeTask(CenterOutTask):
    """Curved reaches through via points, after Churchland et al. (2012)'s maze conditions.

    Each of ``n_targets`` targets is reached by every path of ``maze_shapes``: ``straight``,
    ``arc`` (through one via point beside the midpoint) or ``s_curve`` (through two, at one and
    two thirds of the way, on opposite sides).  A via point lies ``maze_bend x reach_distance``
    beside the straight path; arcs bend left on even targets and right on odd ones, S-curves start
    the other way.  Paths are minimum-jerk through their via points (:func:`minimum_jerk_via`) in
    ``reach_duration``; the via points are shown, as the maze's barriers are, from target onset
    on.  Condition ``c`` is target ``c // len(maze_shapes)``, shape ``c % len(maze_shapes)``.
    Batches also carry ``params["shape"]`` (index into ``maze_shapes``).
    """

    KIND = "maze"
    """Its name in ``[task] kind``."""
    PERTURBABLE = False
    """The curl-field and bump protocols are measured on straight center-out reaches, not here."""
    input_names = ("target_x", "target_y", "via1_x", "via1_y", "via2_x", "via2_y", "go")
    """Name of each input channel: the target, two via-point slots (0 when unused), go."""
    input_groups = ("target",) * 6 + ("go",)
    """The via points enter where the target does."""

    def trial_columns(self, batch: TrialBatch) -> dict[str, tuple[str, np.ndarray]]:
        """Each trial's path: its shape's name (``maze_shape``) and its via points (``via1_x`` .. ``via2_y``, m)."""
        p = batch.params
        out = {
            "maze_shape": (
                f"path through the via points: one of {', '.join(self.maze_shapes)}",
                np.asarray(self.maze_shapes)[p["shape"]],
            )
        }
        via = self.via_points(p["condition"]).reshape(-1, 4)
        for j, name in enumerate(("via1_x", "via1_y", "via2_x", "via2_y")):
            text = f"via point {name[3]}, {name[-1]} (m, from the centre; NaN: the path has no such via point)"
            out[name] = (text, via[:, j])
        return out

    def via_points(self, condition: np.ndarray) -> np.ndarray:
        """Via points of each condition (m), shape (trials, 2, 2); NaN rows for unused slots."""
        condition = np.asarray(condition, int)
        if np.any((condition < 0) | (condition >= self.n_conditions)):
            raise ConfigError(
                f"maze condition out of range: the task has {self.n_conditions} (0..{self.n_conditions - 1})"
            )
        target, shape = np.divmod(condition, len(self.maze_shapes))
        angle = self.target_angles()[target]
        along = np.stack([np.cos(angle), np.sin(angle)], -1)
        left = np.stack([-np.sin(angle), np.cos(angle)], -1)
        side = np.where(target % 2 == 0, 1.0, -1.0)[:, None] * self.maze_bend * self.reach_distance
        d = self.reach_distance
        via = np.full((condition.size, 2, 2), np.nan)
        for i, name in enumerate(np.asarray(self.maze_shapes)[shape]):
            if name == "arc":
                via[i, 0] = 0.5 * d * along[i] + side[i] * left[i]
            elif name == "s_curve":
                via[i, 0] = d / 3 * along[i] - side[i] * left[i]
                via[i, 1] = 2 * d / 3 * along[i] + side[i] * left[i]
        return via

    def trials(self, condition: np.ndarray, delay: np.ndarray, catch: np.ndarray) -> TrialBatch:
        """Trials of given conditions (indices), delays (s) and catch flags, shape (trials,) each."""
        condition = np.asarray(condition, int)
        via = self.via_points(condition)  # checks the range
        target, shape = np.divmod(condition, len(self.maze_shapes))
        batch = self._assemble(self.target_angles()[target], delay, catch, condition, via)
        return replace(batch, params={**batch.params, "shape": shape})

    def build(self, angle: np.ndarray, delay: np.ndarray, catch: np.ndarray, condition: np.ndarray) -> TrialBatch:
        """The maze's trials are built from condition indices: use :meth:`trials`."""
        raise ConfigError("MazeTask.build: maze trials are named by condition; call trials(condition, delay, catch)")


@dataclass(frozen=True)
class BumpedTask(CenterOutTask):
    """The center-out task with random force pulses on the hand in a share of its training trials.

    How networks learn to correct perturbations: the Computation-through-Dynamics benchmark's
    RandomTarget task bumps half its trials, MotorNet's examples a share of theirs.  Each bumped
    trial gets one pulse of ``bump_force`` N for ``bump_duration`` s, in a uniformly random
    direction, starting at a uniformly random time between target onset and the end of the reach
    (``move_off``; for catch trials, the trial's end less the pulse).  The pulse is the batch's
    ``params["endpoint_load"]`` (trials, time, 2), which the arm applies
    (:class:`cortexsim.closed_loop.ArmLoop`).  From a bump's onset to the trial's end,
    ``params["speed_free"]`` (trials, time) is 1: the loss's speed term, which holds an unperturbed
    reach to the minimum-jerk speed profile, would otherwise penalise the fast corrective movement
    back to the path.  :meth:`evaluation_set` stays unperturbed.

    Attributes
    ----------
    bump_fraction : float
        Share of sampled trials bumped, in [0, 1].
    bump_force : float
        Pulse amplitude (N).
    bump_duration : float
        Pulse length (s).
    """

    bump_fraction: float = 0.5
    bump_force: float = 5.0
    bump_duration: float = 0.05

    @classmethod
    def bumped(cls, task: TaskConfig, fraction: float, force: float, duration: float) -> BumpedTask:
        """``task`` with ``fraction`` of its sampled trials bumped by ``force`` N for ``duration`` s."""
        base = {k: val for k, val in asdict(task).items() if k not in ("bump_fraction", "bump_force", "bump_duration")}
        return cls(**base, bump_fraction=float(fraction), bump_force=float(force), bump_duration=float(duration))

    def sample(self, n_trials: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``n_trials`` random trials, then their bumps (deterministic for ``rng``)."""
        batch = super().sample(n_trials, rng)
        n, steps, dt = batch.n_trials, batch.n_steps, batch.dt
        hit = rng.random(n) < self.bump_fraction
        direction = rng.uniform(0.0, 2 * np.pi, n)
        pulse = max(1, int(round(self.bump_duration / dt)))
        p = batch.params
        first = np.round(p["target_on"] / dt).astype(int)
        last = np.where(p["catch"], steps - pulse, np.round(np.nan_to_num(p["move_off"], nan=0.0) / dt).astype(int))
        last = np.clip(last, first, steps - pulse)
        onset = first + np.floor(rng.random(n) * (last - first + 1)).astype(int)
        force = self.bump_force * np.stack([np.cos(direction), np.sin(direction)], axis=1)
        load = np.zeros((n, steps, 2))
        free = np.zeros((n, steps))
        for i in np.flatnonzero(hit):
            load[i, onset[i] : onset[i] + pulse] = force[i]
            free[i, onset[i] :] = 1.0
        return replace(batch, params={**p, "endpoint_load": load, "speed_free": free})


TASKS: dict[str, type[CenterOutTask]] = {CenterOutTask.KIND: CenterOutTask, MazeTask.KIND: MazeTask}
"""The tasks ``[task] kind`` names that ``[task]`` alone defines (``config.TASK_KINDS`` lists them and
``"recorded"``, which :func:`cortexsim.assembly.make_task` builds from ``[fit] data``; a test keeps them equal)."""
