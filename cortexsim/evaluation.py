"""How well a trained model does its task: held-out metrics and its activity on the evaluation set.

:func:`evaluate` scores any model (:class:`cortexsim.model.Model`) on :data:`HELD_OUT_TRIALS`
held-out trials of the run's task, with and without noise, plus the metrics the task adds
(``metrics.task_metrics``), and simulates it on the evaluation set (one trial per condition) and its
catch versions; :func:`evaluate_rate` adds the rate circuit's rate statistics.  Pure: a model and a
config in, an :class:`Evaluation` out; every draw from the config's named streams ("test",
"test-noise").  The pipeline records what it returns; the public API's ``cs.evaluate`` is this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics
from .config import Config
from .streams import stream
from .tasks import TrialBatch, task_of
from .train import Trainable

HELD_OUT_TRIALS = 400
"""Trials in the held-out test set behind the headline metrics."""


@dataclass(frozen=True)
class Evaluation:
    """A trained model on held-out trials and on the evaluation set.

    Attributes
    ----------
    metrics : dict of str to float
        ``<prefix>_position_r2``, ``_endpoint_error_cm``, ``_catch_drift_cm``, ``_reaction_time_ms``
        (noise-free) and, for a noisy model, the ``*_noisy`` versions.
    evaluation : TrialBatch
        One trial per target at the evaluation delay.
    states, activity : ndarray, shape (conditions, time, units)
        The model's :class:`~cortexsim.model.Trajectory` state and activity on :attr:`evaluation`
        (rate model: x in mV and r in Hz; ANN: h, or the LSTM's ``[h, c]``, and h).
    outputs : ndarray, shape (conditions, time, outputs)
        Hand position on :attr:`evaluation` (m).
    catch_outputs : ndarray, shape (conditions, time, outputs)
        Hand position on the catch versions of :attr:`evaluation` (m).
    test : TrialBatch
        The held-out trials (:data:`HELD_OUT_TRIALS`, stream "test").
    test_activity : ndarray, shape (trials, time, units)
        Activity on :attr:`test`, noise-free.
    test_noisy : ndarray, shape (trials, time, outputs)
        Outputs on :attr:`test` with process noise (stream "test-noise").
    body : LoopTrajectory, optional
        For a model that drives a body, the body's record on :attr:`evaluation` (noise-free); None without one.
    """

    metrics: dict[str, float]
    evaluation: TrialBatch
    states: np.ndarray
    activity: np.ndarray
    outputs: np.ndarray
    catch_outputs: np.ndarray
    test: TrialBatch
    test_activity: np.ndarray
    test_noisy: np.ndarray
    body: Any = None


def evaluate(model: Trainable, config: Config, prefix: str) -> Evaluation:
    """Held-out metrics (with and without noise, keys ``<prefix>_*``) and evaluation-set activity.

    The held-out trials are the plain task's even when training bumps some (``[perturb]
    train_bump_fraction``): reaching is scored unperturbed, the bumps by the ``perturb`` stage.
    On the maze (``task.kind = "maze"``) the endpoint error and position R^2 are also written as
    ``<prefix>_maze_endpoint_error_cm`` and ``<prefix>_maze_position_r2``: the same held-out numbers,
    over its straight and curved conditions.
    """
    task = task_of(config.task)
    test = task.sample(HELD_OUT_TRIALS, stream(config.experiment.seed, "test"))
    held_out = model.simulate(test)
    rates, clean = held_out.activity, held_out.outputs
    noisy = model.simulate(test, stream(config.experiment.seed, "test-noise")).outputs
    out = metrics.reach_metrics(task, prefix, clean, test)
    if model.noise_std > 0:
        out.update(
            {
                f"{prefix}_position_r2_noisy": metrics.position_r2(noisy, test.targets, test.mask),
                f"{prefix}_endpoint_error_cm_noisy": metrics.endpoint_error_cm(noisy, test),
                f"{prefix}_catch_drift_cm_noisy": metrics.catch_drift_cm(noisy, test),
            }
        )
    evaluation = task.evaluation_set()
    run = model.simulate(evaluation)
    catch = model.simulate(task.evaluation_set(catch=True)).outputs
    return Evaluation(out, evaluation, run.state, run.activity, run.outputs, catch, test, rates, noisy, run.body)


def evaluate_rate(net, config: Config) -> Evaluation:
    """:func:`evaluate` for the rate network, plus rate statistics and the nominal reaction time."""
    results = evaluate(net, config, "rate")
    results.metrics.update(
        {
            "target_reaction_time_ms": metrics.reaction_time_ms(results.test.targets, results.test),
            "rate_mean_rate_hz": float(results.test_activity.mean()),
            "rate_max_rate_hz": float(results.test_activity.max()),
        }
    )
    return results


__all__ = ["HELD_OUT_TRIALS", "Evaluation", "evaluate", "evaluate_rate"]


def effector_arrays(loop) -> dict[str, np.ndarray]:
    """The arm's record of a closed-loop simulation, as ``/<model>/effector`` stores it."""
    return {
        "q": loop.q,
        "dq": loop.dq,
        "hand": loop.hand_shoulder,
        "activation": loop.activation,
        "excitation": loop.excitation,
        "feedback": loop.feedback,
    }
