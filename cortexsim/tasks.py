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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import _validate as v
from .config import TaskConfig


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


@dataclass(frozen=True)
class CenterOutTask(TaskConfig):
    """The delayed center-out reach of a :class:`~cortexsim.config.TaskConfig`: draws and builds trials.

    Its fields are those of ``[task]`` (see :class:`~cortexsim.config.TaskConfig`, every
    duration in seconds, distance in metres); ``CenterOutTask.of(config.task)`` makes one.
    """

    @classmethod
    def of(cls, task: TaskConfig) -> CenterOutTask:
        """The task ``task`` (a ``[task]`` section) defines."""
        return task if isinstance(task, cls) else cls(**asdict(task))

    def target_angles(self) -> np.ndarray:
        """Angles of the ``n_targets`` evenly spaced targets (rad), starting at 0 (rightward)."""
        return 2 * np.pi * np.arange(self.n_targets) / self.n_targets

    def sample(self, n_trials: int, rng: np.random.Generator) -> TrialBatch:
        """Draw ``n_trials`` random trials (deterministic for ``rng``)."""
        n_trials = v.number(n_trials, "n_trials", low=1, integer=True)
        if self.random_angles:
            angle = rng.uniform(0, 2 * np.pi, n_trials)
            condition = np.full(n_trials, -1)
        else:
            condition = rng.integers(0, self.n_targets, n_trials)
            angle = self.target_angles()[condition]
        delay = rng.uniform(self.delay_min, self.delay_max, n_trials)
        delay[rng.random(n_trials) < self.zero_delay_fraction] = 0.0
        catch = rng.random(n_trials) < self.catch_fraction
        return self.build(angle, delay, catch, condition)

    def evaluation_set(self, catch: bool = False) -> TrialBatch:
        """One trial per target at ``eval_delay`` (with ``catch``: the catch versions)."""
        angle = self.target_angles()
        k = angle.size
        return self.build(angle, np.full(k, self.eval_delay), np.full(k, catch), np.arange(k))

    def build(self, angle: np.ndarray, delay: np.ndarray, catch: np.ndarray, condition: np.ndarray) -> TrialBatch:
        """Trials with given angles (rad), delays (s) and catch flags, shape (trials,) each."""
        angle, delay = np.asarray(angle, float), np.asarray(delay, float)
        catch = np.asarray(catch, bool)
        n, steps, dt = angle.size, self.n_steps, self.dt
        t = np.arange(steps) * dt  # step start times
        target_on = np.full(n, self.fixation)
        go = np.where(catch, np.nan, target_on + delay)
        move_on = go + self.reaction_time
        move_off = move_on + self.reach_duration

        inputs = np.zeros((n, steps, 3))
        shown = t[None, :] >= target_on[:, None] - 1e-9
        inputs[:, :, 0] = np.cos(angle)[:, None] * shown
        inputs[:, :, 1] = np.sin(angle)[:, None] * shown
        with np.errstate(invalid="ignore"):
            pulse = (t[None, :] >= go[:, None] - 1e-9) & (t[None, :] < go[:, None] + self.go_duration - 1e-9)
        inputs[:, :, 2] = pulse

        with np.errstate(invalid="ignore"):
            phase = (t[None, :] - move_on[:, None]) / self.reach_duration
        progress = np.where(catch[:, None], 0.0, minimum_jerk(np.nan_to_num(phase, nan=0.0)))
        targets = self.reach_distance * progress[:, :, None] * np.stack([np.cos(angle), np.sin(angle)], -1)[:, None]
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
        return TrialBatch(inputs, targets, mask, dt, params)


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
