"""The body a model drove: stick figures, hand paths and speed (``arm.png``), muscles (``muscles.png``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from .figure import colours as _colours
from .figure import subplots as _subplots
from .task import epoch_lines as _epoch_lines


def plot_arm(
    evaluation, arm: dict[str, np.ndarray], skeleton: Callable, origin: str = "shoulder", frames: int = 6
) -> Figure:
    """The body a model drove: stick figures over the reach, hand paths and speed profiles.

    Parameters
    ----------
    evaluation : TrialBatch
        One trial per condition (its targets are relative to the hand's start position).
    arm : dict
        ``q`` (conditions, time, 2) the body's coordinates (the arm's joint angles, rad) and
        ``hand`` (conditions, time, 2) the hand in the body's frame (m), as ``/<model>/effector``
        stores them.
    skeleton : callable
        The body's drawing: coordinates ``q`` (..., 2) -> points (..., k, 2) in m, joined by lines
        (the arm: shoulder, elbow, hand; the point mass: the mass alone) -- ``plant.skeleton``.
    origin : str
        What sits at (0, 0) of the frame (``shoulder``; the point mass's ``workspace centre``).
    frames : int
        Stick figures drawn per condition, evenly spaced from movement onset to its end.
    """
    fig, (ax, bx) = _subplots(1, 2, figsize=(12, 5.5))
    colours = _colours("hsv", evaluation.n_trials)
    q, hand = arm["q"], arm["hand"]
    start = hand[0, 0]
    dt = evaluation.dt
    for k in range(evaluation.n_trials):
        on, off = evaluation.params["move_on"][k], evaluation.params["move_off"][k]
        steps = np.linspace(on, off + 0.1, frames) / dt if np.isfinite(on) else np.linspace(0, q.shape[1] - 1, frames)
        for j, t in enumerate(np.clip(steps.round().astype(int), 0, q.shape[1] - 1)):
            points = 100 * skeleton(q[k, t])
            ax.plot(*points.T, "-o", color=colours[k], lw=1, ms=2, alpha=0.25 + 0.75 * j / max(frames - 1, 1))
        ax.plot(*(100 * hand[k].T), color=colours[k], lw=2)
        ax.plot(*(100 * (start + evaluation.targets[k])).T, "--", color="k", lw=0.8)
    ax.plot(0, 0, "ks", ms=8)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x (cm, {origin} at 0)")
    ax.set_ylabel("y (cm)")
    ax.set_title("Body over each reach (faint to dark: movement onset to end); desired paths dashed")
    t = evaluation.time[:-1]
    for k in range(evaluation.n_trials):
        bx.plot(t, np.linalg.norm(np.diff(hand[k], axis=0), axis=-1) / dt, color=colours[k], lw=1.5)
    desired = np.linalg.norm(np.diff(evaluation.targets[0], axis=0), axis=-1) / dt
    bx.plot(t, desired, "k--", lw=1.2, label="minimum jerk")
    _epoch_lines(bx, evaluation)
    bx.set_xlabel("time (s)   [: target on   -- go   -. movement]")
    bx.set_ylabel("hand speed (m/s)")
    bx.legend(loc="upper left")
    bx.set_title("Hand speed")
    return fig


def plot_muscles(
    evaluation,
    arm: dict[str, np.ndarray],
    muscles: tuple[str, ...],
    contributions: np.ndarray | None = None,
    populations: list[str] | None = None,
) -> Figure:
    """Muscle activation per condition and, optionally, what each population contributes to each muscle.

    Parameters
    ----------
    evaluation : TrialBatch
    arm : dict
        ``activation`` (conditions, time, 6), as ``/<model>/effector`` stores it.
    muscles : tuple of str
        Muscle names.
    contributions : ndarray, shape (populations, muscles), optional
        RMS change of each muscle's excitation when each population is silenced.
    populations : list of str, optional
        Row labels of ``contributions``.
    """
    ncols = 4 if contributions is not None else 3
    fig = Figure(figsize=(4 * ncols, 6.5), constrained_layout=True)
    grid = fig.add_gridspec(2, ncols)
    colours = _colours("hsv", evaluation.n_trials)
    t = evaluation.time
    for m, name in enumerate(muscles):
        ax = fig.add_subplot(grid[m // 3, m % 3])
        for k in range(evaluation.n_trials):
            ax.plot(t, arm["activation"][k, :, m], color=colours[k], lw=1.2)
        _epoch_lines(ax, evaluation)
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("activation")
    if contributions is not None:
        cx = fig.add_subplot(grid[:, 3])
        image = cx.imshow(contributions, aspect="auto", cmap="viridis")
        cx.set_xticks(range(len(muscles)), muscles, rotation=60, ha="right", fontsize=8)
        cx.set_yticks(range(len(populations or [])), populations or [], fontsize=8)
        cx.set_title("Silencing each population:\nRMS change of excitation")
        fig.colorbar(image, ax=cx, shrink=0.6)
    return fig
