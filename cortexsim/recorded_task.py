"""The task recorded conditions define (``[fit]``): each condition a trial type, fitted on a recorded window.

A recording brings its own conditions.  With kinematics (each condition's mean hand path, m, relative
to its start), the hand must follow that path: the target channels show where the recorded hand ends
(in units of ``reach_distance``) and the go cue comes ``reaction_time`` before the recorded movement
onset, as in the center-out task.  Without kinematics (the CURBD setting, Perich et al. 2021), each
condition gets its own input pattern -- the target channels at the angle ``2 pi c / C`` -- and the task
loss is empty (mask 0): the circuit is fitted to the neurons alone.

Trial timeline (s): target onset at ``fixation``; go at ``align - reaction_time``; the alignment event
(recorded movement onset) at ``align``, the first step at which the recording's window
``[align + window[0], align + window[1])`` fits after target onset and a delay of at least
``min_delay``; the trial ends with the window.  Each trial of :meth:`RecordedTask.sample` is drawn from
the training conditions and names, in its ``record`` parameter, the target row it is fitted to
(:data:`cortexsim.neural_loss.RECORD_KEY`): a training trial of its condition (single trials) or the
condition's PSTH (averages).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .tasks import TrialBatch


@dataclass(frozen=True, eq=False)
class RecordedTask:
    """Recorded conditions as a task (the :class:`cortexsim.tasks.Task` interface); see the module notes.

    Attributes
    ----------
    dt : float
        Step (s).
    window : (float, float)
        The recorded window (s) around the alignment event.
    n_conditions : int
    hand : ndarray, shape (conditions, window steps, 2), or None
        Each condition's mean hand position over the window, relative to its position at the window's
        start (m); None: no kinematics.
    train_conditions : tuple of int
        The conditions training draws from.
    records : tuple of ndarray
        For each condition, the target rows its training trials may be fitted to (empty: none).
    fixation, reaction_time, min_delay, go_duration : float
        Timing (s).
    """

    KIND = "recorded"
    PERTURBABLE = False
    input_names = ("target_x", "target_y", "go")
    input_groups = ("target", "target", "go")
    output_names = ("hand_x", "hand_y")

    dt: float
    window: tuple[float, float]
    n_conditions: int
    hand: np.ndarray | None
    train_conditions: tuple[int, ...]
    records: tuple[np.ndarray, ...]
    fixation: float = 0.2
    reaction_time: float = 0.15
    min_delay: float = 0.3
    go_duration: float = 0.1

    def __post_init__(self) -> None:
        if not self.train_conditions:
            raise ConfigError("fit: no training conditions are left; lower fit.heldout_conditions")
        if len(self.records) != self.n_conditions:
            raise ValueError(f"records for {len(self.records)} conditions, expected {self.n_conditions}")
        w0, w1 = self.window
        earliest = self.fixation + self.min_delay + self.reaction_time
        align = max(earliest, -w0)
        step = int(round(align / self.dt))
        object.__setattr__(self, "align_step", step)
        object.__setattr__(self, "window_steps", (step + round(w0 / self.dt), step + round(w1 / self.dt)))
        object.__setattr__(self, "n_steps", self.window_steps[1])  # type: ignore[attr-defined]
        if self.hand is not None and self.hand.shape != (self.n_conditions, self.n_window, 2):
            raise ValueError(f"hand {self.hand.shape}, expected {(self.n_conditions, self.n_window, 2)}")

    @property
    def n_window(self) -> int:
        """Steps of the recorded window."""
        start, stop = self.window_steps  # type: ignore[attr-defined]
        return stop - start

    @property
    def reach_distance(self) -> float:
        """The median distance (m) of the recorded hand's end from its start (0.1 m without kinematics)."""
        if self.hand is None:
            return 0.1
        return float(max(np.median(np.linalg.norm(self.hand[:, -1], axis=1)), 1e-3))

    def cues(self) -> np.ndarray:
        """Each condition's target-channel pattern, (conditions, 2)."""
        if self.hand is not None:
            return self.hand[:, -1] / self.reach_distance
        angle = 2 * np.pi * np.arange(self.n_conditions) / self.n_conditions
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)

    def trials(self, condition: np.ndarray, record: np.ndarray | None = None) -> TrialBatch:
        """One trial per entry of ``condition`` (ints), fitted to ``record`` (rows; default -1: none)."""
        condition = np.asarray(condition, int)
        n, steps, dt = condition.size, self.n_steps, self.dt  # type: ignore[attr-defined]
        record = np.full(n, -1) if record is None else np.asarray(record, int)
        on, go = round(self.fixation / dt), self.align_step - round(self.reaction_time / dt)  # type: ignore[attr-defined]
        inputs = np.zeros((n, steps, 3))
        inputs[:, on:, :2] = self.cues()[condition][:, None, :]
        inputs[:, go : go + max(1, round(self.go_duration / dt)), 2] = 1.0
        targets = np.zeros((n, steps, 2))
        mask = np.zeros((n, steps, 2))
        start, stop = self.window_steps  # type: ignore[attr-defined]
        if self.hand is not None:
            targets[:, start:stop] = self.hand[condition]
            targets[:, stop:] = self.hand[condition][:, -1:]
            mask[:] = 1.0
        align = self.align_step * dt  # type: ignore[attr-defined]
        params = {
            "condition": condition,
            "record": record,
            "angle": np.arctan2(self.cues()[condition][:, 1], self.cues()[condition][:, 0]),
            "catch": np.zeros(n, bool),
            "target_on": np.full(n, on * dt),
            "go": np.full(n, go * dt),
            "move_on": np.full(n, align),
            "move_off": np.full(n, stop * dt),
            "delay": np.full(n, go * dt - on * dt),
        }
        return TrialBatch(inputs, targets, mask, dt, params, self.input_names, self.input_groups, self.output_names)

    def sample(self, n_trials: int, rng: np.random.Generator) -> TrialBatch:
        """``n_trials`` trials of training conditions, each fitted to one of its condition's records."""
        condition = rng.choice(np.asarray(self.train_conditions), n_trials)
        record = np.array([rng.choice(self.records[c]) if self.records[c].size else -1 for c in condition], int)
        return self.trials(condition, record)

    def evaluation_set(self, catch: bool = False) -> TrialBatch:
        """One trial of every condition (held out or not), fitted to nothing."""
        del catch
        return self.trials(np.arange(self.n_conditions))

    def trial_columns(self, batch) -> dict[str, tuple[str, np.ndarray]]:
        """Nothing beyond the reach."""
        del batch
        return {}
