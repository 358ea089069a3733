"""How a model does its task: the training curve, the hand paths, and a task's own figure (the maze).

* :func:`plot_training` -- ``training.png``: loss and validation R² against iteration;
* :func:`plot_trajectories` -- ``trajectories*.png``: hand paths and distance from the centre;
* :func:`plot_maze` -- ``maze.png``, the maze task's own figure (:data:`TASK_FIGURES`, :func:`task_figure`);
* :func:`epoch_lines` -- the task's epochs (target on, go, movement) marked on a time axis, for every
  figure over a trial.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .figure import colours as _colours
from .figure import model_label as _model_label
from .figure import subplots as _subplots


def epoch_lines(ax: Axes, batch, k: int = 0) -> None:
    """Vertical markers at target onset, go, movement onset and end of trial ``k``."""
    p = batch.params
    for key, style in (("target_on", ":"), ("go", "--"), ("move_on", "-."), ("move_off", "-.")):
        value = p[key][k]
        if np.isfinite(value):
            ax.axvline(value, color="0.5", ls=style, lw=0.8)


def plot_training(history: dict[str, list[float]]) -> Figure:
    """Training loss (log scale) and validation R^2 against iteration."""
    fig, (ax, bx) = _subplots(1, 2, figsize=(11, 4))
    it = np.arange(1, len(history["loss"]) + 1)
    ax.semilogy(it, history["loss"], lw=0.6, label="total loss")
    ax.semilogy(it, history["task_loss"], lw=0.6, label="task loss (position MSE / reach^2)")
    if history["val_iteration"]:
        ax.semilogy(history["val_iteration"], history["val_loss"], "k.-", ms=3, label="validation (no noise)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend()
    if history["val_iteration"]:
        bx.plot(history["val_iteration"], history["val_r2"], "k.-", ms=3)
        bx.set_ylim(max(min(history["val_r2"]), -0.1), 1.0)
    bx.set_xlabel("iteration")
    bx.set_ylabel("validation position R$^2$")
    bx.grid(alpha=0.3)
    return fig


def plot_trajectories(
    evaluation,
    outputs: np.ndarray,
    catch_outputs: np.ndarray | None = None,
    test=None,
    test_outputs: np.ndarray | None = None,
    n_single: int = 40,
) -> Figure:
    """Hand paths for every target: desired (dashed) vs produced (solid), in cm.

    Parameters
    ----------
    evaluation : TrialBatch
        One trial per condition.
    outputs : ndarray, shape (conditions, time, 2)
        Produced hand position (m), noise-free.
    catch_outputs : ndarray, shape (conditions, time, 2), optional
        Produced positions on the catch versions of the conditions.
    test, test_outputs : TrialBatch and ndarray, optional
        Held-out single trials (e.g. with process noise), drawn faintly.
    """
    fig, (ax, bx) = _subplots(1, 2, figsize=(11, 5))
    colours = _colours("hsv", evaluation.n_trials)
    if test is not None and test_outputs is not None:
        reach = np.flatnonzero(~test.params["catch"])[:n_single]
        for i in reach:
            c = colours[int(test.params["condition"][i]) % len(colours)]
            ax.plot(*(100 * test_outputs[i].T), color=c, alpha=0.15, lw=0.7)
    for k in range(evaluation.n_trials):
        ax.plot(*(100 * evaluation.targets[k].T), "--", color=colours[k], lw=1)
        ax.plot(*(100 * outputs[k].T), color=colours[k], lw=2)
        ax.plot(*(100 * evaluation.targets[k, -1]), "o", mfc="none", color=colours[k], ms=12)
    if catch_outputs is not None:
        for k in range(catch_outputs.shape[0]):
            ax.plot(*(100 * catch_outputs[k].T), color="k", lw=1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (cm)")
    ax.set_ylabel("y (cm)")
    ax.set_title("Hand paths: desired (dashed), produced (solid), catch (black)")
    t = evaluation.time
    for k in range(evaluation.n_trials):
        bx.plot(t, 100 * np.linalg.norm(outputs[k], axis=-1), color=colours[k], lw=1.5)
    bx.plot(t, 100 * np.linalg.norm(evaluation.targets[0], axis=-1), "k--", lw=1, label="desired")
    epoch_lines(bx, evaluation)
    bx.set_xlabel("time (s)   [: target on   -- go   -. movement]")
    bx.set_ylabel("distance from centre (cm)")
    bx.legend(loc="upper left")
    bx.set_title("Distance from centre over the trial")
    return fig


def plot_maze(
    evaluation,
    via: np.ndarray,
    shapes: tuple[str, ...],
    paths: dict[str, np.ndarray],
    failed: tuple[str, ...] = (),
) -> Figure:
    """The maze: every condition's desired path and each model's hand path, one panel per target.

    Parameters
    ----------
    evaluation : TrialBatch
        One trial per maze condition (condition ``c`` = target ``c // len(shapes)``, shape ``c % len(shapes)``).
    via : ndarray, shape (conditions, 2, 2)
        Via points (m); NaN rows for unused slots.
    shapes : tuple of str
        The path shapes (``task.maze_shapes``).
    paths : dict of str to ndarray, shape (conditions, time, 2)
        Hand path (m) of each model, keyed by its ``/metrics`` prefix (:func:`cortexsim.store.read_hand_paths`).
    failed : tuple of str
        Prefixes of models that failed their task: marked in the legend.
    """
    n_shapes = len(shapes)
    n_targets = evaluation.n_trials // n_shapes
    ncols = min(n_targets, 5)
    nrows = int(np.ceil(n_targets / ncols))
    fig, axes = _subplots(nrows, ncols, figsize=(3.4 * ncols, 3.4 * nrows + 0.6), squeeze=False)
    styles = ("-", "--", ":")
    for ax in axes.flat[n_targets:]:
        ax.set_visible(False)
    for target in range(n_targets):
        ax = axes.flat[target]
        for j in range(n_shapes):
            c = target * n_shapes + j
            ax.plot(*(100 * evaluation.targets[c].T), color="0.6", lw=3, ls=styles[j % 3], alpha=0.6)
            points = via[c][np.all(np.isfinite(via[c]), axis=1)]
            ax.plot(*(100 * points.T), "kx", ms=6)
            for k, hand in enumerate(paths.values()):
                ax.plot(*(100 * hand[c].T), color=f"C{k}", lw=1.2, ls=styles[j % 3])
        ax.plot(*(100 * evaluation.targets[target * n_shapes, -1]), "ko", mfc="none", ms=12)
        ax.plot(0, 0, "k+", ms=8)
        ax.set_aspect("equal")
        ax.set_title(f"target {target}", fontsize=9)
        ax.tick_params(labelsize=7)
    handles = [Line2D([], [], color="0.6", lw=3, label="desired")]
    handles += [Line2D([], [], color=f"C{k}", lw=1.5, label=_model_label(m, failed)) for k, m in enumerate(paths)]
    handles += [
        Line2D([], [], color="k", ls=styles[j % 3], label=shape.replace("_", "-")) for j, shape in enumerate(shapes)
    ]
    handles += [Line2D([], [], color="k", marker="x", ls="", label="via point")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle("Maze: hand paths (cm) of every condition, desired (grey) and produced (colour)")
    return fig


def _maze_figure(task, evaluation, paths: dict[str, np.ndarray], failed: tuple[str, ...]) -> tuple[str, Figure]:
    """``maze.png`` (:func:`plot_maze`) of a ``MazeTask``."""
    via = task.via_points(np.arange(task.n_conditions))
    return "maze.png", plot_maze(evaluation, via, task.maze_shapes, paths, failed)


TASK_FIGURES = {"maze": _maze_figure}
"""A task's own figure of every model's hand paths, by the task's ``KIND``: ``fn(task, evaluation,
paths, failed) -> (file name, Figure)``.  A task without an entry has none."""


def has_task_figure(task) -> bool:
    """Whether ``task`` has its own figure in :data:`TASK_FIGURES`."""
    return task.KIND in TASK_FIGURES


def task_figure(task, evaluation, paths: dict[str, np.ndarray], failed: tuple[str, ...] = ()) -> tuple[str, Figure]:
    """``task``'s own figure (:data:`TASK_FIGURES`) of the hand ``paths`` (model prefix -> (conditions, time, 2), m)."""
    return TASK_FIGURES[task.KIND](task, evaluation, paths, failed)
