"""Figures.  Functions take data (and optionally an Axes) and return a Figure.

They never compute science beyond the summary they display, and never change
their inputs.  Figures are plain :class:`matplotlib.figure.Figure` objects made
directly, outside matplotlib's global figure manager: importing cortexsim never
switches the user's backend, and nothing keeps a figure alive once it is saved
(``Figure.savefig`` renders with the Agg canvas).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import analysis
from ..circuit import Connectome
from ..errors import cannot_write
from .figure import colours as _colours
from .figure import model_label as _model_label
from .figure import subplots as _subplots

if TYPE_CHECKING:
    from ..battery import BatteryResult, DynamicsResult

LAYER_COLOURS = {
    "L1": "#8c564b",
    "L2/3": "#1f77b4",
    "L4": "#2ca02c",
    "L5A": "#ff7f0e",
    "L5B": "#d62728",
    "L6": "#9467bd",
}


def save(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` atomically (folders created).

    The figure goes to a temporary file in the same folder that is renamed over ``path``
    only once complete, so a crash or Ctrl-C leaves the old figure or the new one, never
    half of one.

    Parameters
    ----------
    fig : Figure
    path : str or Path
        The image file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
    dpi : int

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CortexsimError
        The figure cannot be written (a full disk, a read-only folder): one line naming it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".").lower() or None)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc, "the figure") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _layer_ticks(ax: Axes, connectome: Connectome) -> None:
    names = [p.name for p in connectome.populations]
    layers = [p.spec.layer for p in connectome.populations]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for tick, layer in zip(ax.get_xticklabels(), layers):
        tick.set_color(LAYER_COLOURS.get(layer, "k"))
    for tick, layer in zip(ax.get_yticklabels(), layers):
        tick.set_color(LAYER_COLOURS.get(layer, "k"))
    for i in range(1, len(layers)):
        if layers[i] != layers[i - 1]:
            ax.axhline(i - 0.5, color="k", lw=0.6)
            ax.axvline(i - 0.5, color="k", lw=0.6)
    ax.set_xlabel("presynaptic population")
    ax.set_ylabel("postsynaptic population")


def plot_connectivity(connectome: Connectome) -> Figure:
    """Population x population connection probability and signed drive, grouped by layer."""
    prob, drive = connectome.population_matrices()
    fig, axes = _subplots(1, 2, figsize=(12, 5.5))
    im = axes[0].imshow(prob, cmap="viridis", vmin=0)
    fig.colorbar(im, ax=axes[0], label="connection probability")
    axes[0].set_title("Connection probability (sampled)")
    lim = np.max(np.abs(drive)) or 1.0
    im = axes[1].imshow(drive, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=axes[1], label="summed signed weight per post unit (mV/Hz)")
    axes[1].set_title("Signed drive (red excitation, blue inhibition)")
    for ax in axes:
        _layer_ticks(ax, connectome)
    fig.suptitle(f"{connectome!r}".strip("<>"))
    return fig


def _epoch_lines(ax: Axes, batch, k: int = 0) -> None:
    """Vertical markers at target onset, go, movement onset and end of trial ``k``."""
    p = batch.params
    for key, style in (("target_on", ":"), ("go", "--"), ("move_on", "-."), ("move_off", "-.")):
        value = p[key][k]
        if np.isfinite(value):
            ax.axvline(value, color="0.5", ls=style, lw=0.8)


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
    _epoch_lines(bx, evaluation)
    bx.set_xlabel("time (s)   [: target on   -- go   -. movement]")
    bx.set_ylabel("distance from centre (cm)")
    bx.legend(loc="upper left")
    bx.set_title("Distance from centre over the trial")
    return fig


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


def plot_curl(models: dict[str, dict], failed: tuple[str, ...] = ()) -> Figure:
    """The curl-field protocol: hand paths per phase, the learning curve, deviations and population changes.

    Parameters
    ----------
    models : dict
        ``/perturbation/curl`` as :func:`cortexsim.store.read_perturbation` returns it: per model
        (``rate``, ``spiking``, ``ann_<arch>``) its ``phases`` and (trained models) ``curve`` and
        ``populations`` tables, its ``hands`` (phase, condition, time, 2; m) and ``attrs["phases"]``.
    failed : tuple of str
        Prefixes of models that failed their task: marked wherever the model is named.
    """
    first = "rate" if "rate" in models else next(iter(models))
    names = list(models[first]["attrs"]["phases"])
    cols = max(len(names), 5)
    fig = Figure(figsize=(3.2 * cols, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, cols)
    hands = models[first]["hands"]
    colours = _colours("hsv", hands.shape[1])
    for j, phase in enumerate(names):
        ax = fig.add_subplot(grid[0, j])
        for k in range(hands.shape[1]):
            ax.plot(*(100 * hands[j, k].T), color=colours[k], lw=1.5)
            end = hands[0, k, -1]
            ax.plot([0, 100 * end[0]], [0, 100 * end[1]], ":", color="0.6", lw=0.8)
        on = models[first]["phases"][j]["field_on"] > 0
        ax.set_title(f"{phase.replace('_', ' ')}\n({'field on' if on else 'null field'})", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x (cm)")
        if j == 0:
            ax.set_ylabel(f"{_model_label(first, failed)}\ny (cm)")
    cx = fig.add_subplot(grid[1, :2])
    for model, entry in models.items():
        curve = entry.get("curve", ())
        if not curve:
            continue
        adapt = [r for r in curve if r["block"] == "adaptation"]
        wash = [r for r in curve if r["block"] == "washout"]
        end = adapt[-1]["iteration"] if adapt else 0.0
        xs = [r["iteration"] for r in adapt] + [end + r["iteration"] for r in wash]
        ys = [r["signed_deviation_cm"] for r in adapt] + [r["signed_deviation_cm"] for r in wash]
        cx.plot(xs, ys, "-o", ms=3, label=_model_label(model, failed))
        cx.axvline(end, color="0.5", lw=0.8, ls="--")
    cx.axhline(0, color="k", lw=0.6)
    cx.set_xlabel("training iteration (adaptation in the field, then washout after the dashed line)")
    cx.set_ylabel("signed lateral deviation (cm, + left)")
    cx.set_title("Learning curve")
    cx.legend(fontsize=8)
    dx = fig.add_subplot(grid[1, 2 : cols - 1])
    width = 0.8 / max(len(models), 1)
    for i, (model, entry) in enumerate(models.items()):
        rows = {r["phase"]: r for r in entry["phases"]}
        xs = [names.index(p) + i * width for p in rows if p in names]
        dx.bar(
            xs,
            [rows[p]["signed_deviation_cm"] for p in rows if p in names],
            width,
            label=_model_label(model, failed),
        )
    dx.set_xticks(np.arange(len(names)) + 0.4 - width / 2, [n.replace("_", "\n") for n in names], fontsize=8)
    dx.axhline(0, color="k", lw=0.6)
    dx.set_ylabel("signed lateral deviation (cm)")
    dx.set_title("Each phase, every model (aftereffect: opposite sign to first exposure)")
    dx.legend(fontsize=8)
    pops = models[first].get("populations", ())
    ex = fig.add_subplot(grid[1, cols - 1])
    if pops:
        ex.barh(np.arange(len(pops)), [r["activity_change"] for r in pops], color="C3")
        ex.set_yticks(np.arange(len(pops)), [r["population"] for r in pops], fontsize=7)
        ex.invert_yaxis()
        ex.set_xlabel("RMS rate change / RMS rate")
        ex.set_title(f"Who adapted ({_model_label(first, failed)}):\nafter adaptation vs first exposure", fontsize=9)
    else:
        ex.axis("off")
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


def plot_rotation_sources(rows: list[dict]) -> Figure:
    """The rotation-sources table as bars: jPCA ratio, frequency, DSA to intact and endpoint error per condition.

    Parameters
    ----------
    rows : list of dict
        :func:`cortexsim.rotations.rotation_sources`'s rows (``/analysis/rotation_sources``).
    """
    names = [r["condition"].replace("_", " ") for r in rows]
    fig, axes = _subplots(1, 4, figsize=(17, 4.8), sharey=True)
    y = np.arange(len(rows))
    colours = ["k" if r["condition"] == "intact" else "C0" for r in rows]
    for ax, key, label in zip(
        axes,
        ("jpca_ratio", "frequency_hz", "dsa_to_intact", "endpoint_error_cm"),
        ("jPCA ratio (skew R² / best R²)", "rotation frequency (Hz)", "DSA to intact (rad)", "endpoint error (cm)"),
    ):
        ax.barh(y, [r[key] for r in rows], color=colours)
        ax.set_xlabel(label)
        ax.axvline(rows[0][key], color="k", lw=0.6, ls=":")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.suptitle("Where the arm circuit's rotations come from: the trained circuit with parts of its loop removed")
    return fig


def plot_bumps(models: dict[str, dict], failed: tuple[str, ...] = ()) -> Figure:
    """Bump responses: the hand's displacement aligned to the bump and each population's response.

    Parameters
    ----------
    models : dict
        ``/perturbation/bumps`` as :func:`cortexsim.store.read_perturbation` returns it: per model
        its ``trials`` table and (rate models, ANNs) ``aligned_hand`` (timing, direction, window, 2;
        m), ``aligned_change`` (timing, population, window; Hz), ``window`` (s), ``latencies``
        and ``attrs`` (``timings``, ``populations``).
    failed : tuple of str
        Prefixes of models that failed their task: marked wherever the model is named.
    """
    aligned = {m: e for m, e in models.items() if "aligned_hand" in e}
    first = "rate" if "rate" in aligned else next(iter(aligned), None)
    timings = list(models[first]["attrs"]["timings"]) if first else []
    fig, axes = _subplots(2, max(len(timings), 1) + 1, figsize=(5.2 * (len(timings) + 1), 8.5), squeeze=False)
    for j, when in enumerate(timings):
        ax = axes[0, j]
        for model, entry in aligned.items():
            t = 1e3 * entry["window"]
            d = 100 * np.linalg.norm(entry["aligned_hand"][j], axis=-1)  # (directions, window)
            line = ax.plot(t, d.mean(axis=0), lw=2, label=_model_label(model, failed))[0]
            if model == first:
                for row in d:
                    ax.plot(t, row, color=line.get_color(), lw=0.5, alpha=0.4)
        ax.axhline(1.0, color="k", ls=":", lw=0.8)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(f"Bump {when.replace('_', ' ')}: hand off its unperturbed path")
        ax.set_xlabel("time from bump onset (ms)")
        ax.set_ylabel("distance (cm; dotted: 1 cm)")
        ax.legend(fontsize=8)
        bx = axes[1, j]
        entry = models[first]
        change, pops = entry["aligned_change"][j], list(entry["attrs"]["populations"])
        base = np.nanmean(change[:, entry["window"] < 0], axis=1, keepdims=True)
        t = 1e3 * entry["window"]
        image = bx.imshow(
            change - base, aspect="auto", cmap="magma", origin="upper", extent=(t[0], t[-1], len(pops), 0)
        )
        bx.set_yticks(np.arange(len(pops)) + 0.5, pops, fontsize=7)
        lat = {r["population"]: r["latency_ms"] for r in entry["latencies"] if r["timing"] == when}
        for i, pop in enumerate(pops):
            if np.isfinite(lat.get(pop, np.nan)):
                bx.plot(lat[pop], i + 0.5, "c|", ms=8, mew=2)
        bx.axvline(0, color="w", lw=0.6)
        bx.set_xlabel("time from bump onset (ms)   (cyan: response latency)")
        bx.set_title(f"{_model_label(first, failed)}: mean |delta rate| over its pre-bump floor (Hz)")
        fig.colorbar(image, ax=bx, shrink=0.8)
    cx = axes[0, -1]
    for i, entry in enumerate(models.values()):
        rec = np.array([r["recovery_ms"] for r in entry["trials"]], float)
        rec = np.where(np.isfinite(rec), rec, np.nan)
        cx.scatter(np.full(rec.size, i) + np.linspace(-0.2, 0.2, rec.size), rec, s=6, alpha=0.5)
        if np.isfinite(rec).any():
            cx.plot([i - 0.3, i + 0.3], [np.nanmedian(rec)] * 2, "k-", lw=2)
        lost = int(np.isnan(rec).sum())
        if lost:
            cx.annotate(f"{lost} not back", (i, 0), xycoords=("data", "axes fraction"), ha="center", fontsize=7)
    cx.set_xticks(range(len(models)), [_model_label(m, failed, "\n") for m in models], fontsize=8)
    cx.set_ylabel("recovery time (ms; bar: median)")
    cx.set_title("Back within 1 cm of the unperturbed path")
    axes[1, -1].axis("off")
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


def plot_layer_rates(evaluation, rates: np.ndarray, connectome: Connectome) -> Figure:
    """Population-averaged rates over the trial, one panel per layer (mean over conditions).

    Parameters
    ----------
    evaluation : TrialBatch
    rates : ndarray, shape (conditions, time, units)
        Rates in Hz.
    connectome : Connectome
    """
    layers = list(dict.fromkeys(p.spec.layer for p in connectome.populations))
    fig, axes = _subplots(len(layers), 1, figsize=(8, 1.7 * len(layers)), sharex=True)
    t = evaluation.time
    mean = rates.mean(axis=0)
    for ax, layer in zip(np.atleast_1d(axes), layers):
        for pop in connectome.populations:
            if pop.spec.layer == layer:
                ls = "-" if pop.spec.cell_class == "E" else "--"
                ax.plot(t, mean[:, pop.slice].mean(axis=1), ls, lw=1.5, label=pop.name)
        _epoch_lines(ax, evaluation)
        ax.set_ylabel(f"{layer}\nrate (Hz)")
        ax.legend(loc="upper left", fontsize=7, ncol=4, frameon=False)
    np.atleast_1d(axes)[-1].set_xlabel("time (s)   [: target on   -- go   -. movement]  (solid E, dashed I)")
    fig.suptitle("Population-averaged rates per layer (mean over reach conditions)")
    return fig


def plot_similarity(rows: list[dict], names: list[str], columns_from: str | None = None, metric: str = "cca") -> Figure:
    """Heat map of one similarity measure.

    With ``columns_from=None``: a symmetric ``names`` x ``names`` matrix of the
    pairs in ``rows``.  With ``columns_from="b"``: rows are ``names`` (e.g. layers and
    populations) and columns the distinct ``b`` entries they were compared with (ANNs).
    Higher ``cca`` means more similar; the null (condition shuffle) mean is printed
    in brackets.
    """
    if columns_from is None:
        cols = names
        mat = np.full((len(names), len(names)), np.nan)
        np.fill_diagonal(mat, 1.0)
    else:
        cols = list(dict.fromkeys(r[columns_from] for r in rows if r["a"] in names))
        mat = np.full((len(names), len(cols)), np.nan)
    null = np.full_like(mat, np.nan)
    for r in rows:
        if r["a"] in names and r["b"] in cols:
            i, j = names.index(r["a"]), cols.index(r["b"])
            mat[i, j], null[i, j] = r[metric], r.get(f"{metric}_null", np.nan)
            if columns_from is None and r["b"] in names:
                mat[j, i], null[j, i] = mat[i, j], null[i, j]
    fig, ax = _subplots(figsize=(1.2 + 1.1 * len(cols), 1.0 + 0.38 * len(names) + 0.6 * (columns_from is None)))
    im = ax.imshow(mat, cmap="magma", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(im, ax=ax, label=f"{metric} (higher = more similar)")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if np.isfinite(mat[i, j]):
                text = f"{mat[i, j]:.2f}" + (f"\n[{null[i, j]:.2f}]" if np.isfinite(null[i, j]) else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if mat[i, j] < 0.6 else "k")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title(f"{metric.upper()} similarity [condition-shuffle null]")
    return fig


def plot_jpca(results: dict, plane: int = 0) -> Figure:
    """Projections onto the first jPCA plane of each model, side by side (one line per condition)."""
    n = max(len(results), 1)
    fig, axes = _subplots(1, n, figsize=(3.6 * n, 3.8), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        proj = np.asarray(res.projections)
        if proj.ndim == 4 and proj.shape[2] > plane:
            colours = _colours("hsv", proj.shape[0])
            for c in range(proj.shape[0]):
                xy = proj[c, :, plane]
                ax.plot(xy[:, 0], xy[:, 1], color=colours[c], lw=1.5)
                ax.plot(xy[0, 0], xy[0, 1], "o", color=colours[c], ms=3)
                ax.annotate("", xy=xy[-1], xytext=xy[-2], arrowprops={"arrowstyle": "->", "color": colours[c]})
        freq = res.frequencies_hz[plane] if len(res.frequencies_hz) > plane else float("nan")
        ax.set_title(f"{name}\nR² skew/best {res.ratio:.2f}, {freq:.1f} Hz", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("jPCA plane 1 around movement onset (dot: window start)")
    return fig


def plot_pca_trajectories(trajectories: dict[str, tuple[np.ndarray, float, int]]) -> Figure:
    """Trajectories in the top two PCs of each model over the whole trial (one line per condition).

    Parameters
    ----------
    trajectories : dict
        Model name -> (projection, shape (conditions, time, 1 or 2); fraction of variance
        in those PCs; time index of movement onset).
    """
    n = max(len(trajectories), 1)
    fig, axes = _subplots(1, n, figsize=(3.6 * n, 3.8), squeeze=False)
    for ax, (name, (proj, var, move_on)) in zip(axes[0], trajectories.items()):
        c = proj.shape[0]
        second = min(1, proj.shape[2] - 1)
        colours = _colours("hsv", c)
        for k in range(c):
            ax.plot(proj[k, :, 0], proj[k, :, second], color=colours[k], lw=1.2)
            ax.plot(proj[k, move_on, 0], proj[k, move_on, second], "k.", ms=4)
        ax.set_title(f"{name}\nPC1-2: {100 * var:.0f} % of variance", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Population trajectories in the top two PCs (black dot: movement onset)")
    return fig


def plot_raster(spikes, connectome: Connectome, k: int, duration: float, max_neurons: int = 1500) -> Figure:
    """Spike raster of the first trial, neurons grouped by layer and coloured by population.

    Parameters
    ----------
    spikes : cortexsim.spiking.network.Spikes
    connectome : Connectome
        The rate circuit (pool ``u`` holds neurons ``u*k .. u*k+k-1``).
    k : int
        Neurons per rate unit.
    duration : float
        Length of the first trial (s).
    max_neurons : int
        At most this many neurons are drawn (every n-th neuron of each population).
    """
    fig, ax = _subplots(figsize=(11, 7))
    step = max(1, int(np.ceil(connectome.n_units * k / max_neurons)))
    first = spikes.times < duration
    times, ids = spikes.times[first], spikes.ids[first]
    colours = matplotlib.colormaps["tab20"](np.linspace(0, 1, len(connectome.populations)))
    ticks, labels = [], []
    for colour, pop in zip(colours, connectome.populations):
        lo, hi = pop.start * k, pop.stop * k
        sel = (ids >= lo) & (ids < hi) & ((ids - lo) % step == 0)
        ax.scatter(times[sel], ids[sel], s=1.5, color=colour, marker="|", linewidths=0.6)
        ticks.append((lo + hi) / 2)
        labels.append(f"{pop.name} ({pop.spec.layer})")
        ax.axhline(lo, color="0.85", lw=0.5)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(connectome.n_units * k, 0)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time in the first trial (s)")
    ax.set_title(f"LIF twin: spikes of {'every neuron' if step == 1 else f'1 neuron in {step}'}, pools of K = {k}")
    return fig


def plot_fidelity(rows: list[dict]) -> Figure:
    """Per-population fidelity of the spiking twin: PSTH correlation, rate ratio, rate, CV ISI."""
    names = [r["population"] for r in rows]
    fig, axes = _subplots(1, 4, figsize=(14, 4), sharey=True)
    for ax, (key, label, ref) in zip(
        axes,
        (
            ("psth_r_mean", "PSTH r (twin vs rate unit)", 0.9),
            ("rate_ratio", "rate ratio (twin / rate)", 1.0),
            ("rate_hz", "twin rate (Hz)", None),
            ("cv_isi", "CV of ISIs", 1.0),
        ),
    ):
        values = [float(r.get(key, np.nan)) for r in rows]
        ax.barh(range(len(names)), values, color="0.4")
        if ref is not None:
            ax.axvline(ref, color="r", ls="--", lw=1)
        ax.set_xlabel(label)
    axes[0].set_yticks(range(len(names)), names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("Spiking twin fidelity per population")
    return fig


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return np.nan, np.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def plot_sweep(
    rows: list[dict], param: str, metrics: list[str], others: list[str] = (), seed_key: str = "experiment.seed"
) -> Figure:
    """Each metric against one swept parameter: mean +- SD over seeds, one line per value of ``others``.

    ``rows`` are sweep summary rows (parameter values as text, metrics as floats); ``others``
    are the other swept parameters (the seed excluded).
    """
    values = list(dict.fromkeys(r[param] for r in rows))
    try:
        numeric = [float(x) for x in values]
        order = np.argsort(numeric)
        xs = [numeric[i] for i in order]
        values = [values[i] for i in order]
    except ValueError:
        numeric, xs = None, list(range(len(values)))
    others = [k for k in others if k not in (param, seed_key)]
    lines = list(dict.fromkeys(tuple(r[k] for k in others) for r in rows))
    fig, axes = _subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for line in lines:
            sel = [r for r in rows if tuple(r[k] for k in others) == line]
            stats = [_mean_sd([r.get(metric, np.nan) for r in sel if r[param] == v]) for v in values]
            mean, sd = np.array(stats).T
            label = ", ".join(f"{k.split('.')[-1]}={x}" for k, x in zip(others, line)) or None
            ax.errorbar(xs, mean, yerr=sd, marker="o", capsize=3, label=label)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_xlabel(param)
        if numeric is None:  # long values (file paths) keep their end
            labels = [v if len(v) <= 24 else "..." + v[-21:] for v in values]
            ax.set_xticks(xs, labels, rotation=45, ha="right", fontsize=8)
        elif min(xs) > 0 and max(xs) / min(xs) >= 20:
            ax.set_xscale("log")
    if len(lines) > 1:
        axes[0][-1].legend(fontsize=7)
    n_seeds = len({r.get(seed_key) for r in rows})
    fig.suptitle(f"Sweep over {param} (mean +- SD over {n_seeds} seed(s))", fontsize=10)
    return fig


def plot_lesions(rows: list[dict], key: str, populations: list[tuple[str, str, str]]) -> Figure:
    """The lesion figure: silencing each population, change in reaching and in M1-like dynamics.

    Parameters
    ----------
    rows : list of dict
        Sweep summary rows with ``delta_*`` and ``lesion_cca_to_intact_*`` columns.
    key : str
        The swept lesion parameter (``"lesion.silence"``); ``"none"`` marks the intact circuit.
    populations : list of (name, layer, cell class)
        Order and colours of the x axis.

    Notes
    -----
    A change of +inf (a lesioned circuit that never recovers from its bumps, median recovery ``inf``)
    is drawn as "∞" at the top of its panel (``∞k/n`` when it holds for k of n seeds); the bar then
    shows the finite seeds.
    """
    lesions = [p for p in populations if any(r[key] == p[0] for r in rows)]
    names = [p[0] for p in lesions]
    panels = (
        (
            "Reaching: change in position R²",
            [("delta_rate_position_r2", "rate", "#1f77b4"), ("delta_spiking_position_r2", "spiking", "#ff7f0e")],
        ),
        (
            "Rotational dynamics: change in jPCA ratio",
            [
                ("delta_compare_jpca_ratio_rate", "rate", "#1f77b4"),
                ("delta_compare_jpca_ratio_spiking", "spiking", "#ff7f0e"),
            ],
        ),
        (
            "Similarity to recorded M1 / ANNs: change in CCA",
            [
                ("delta_compare_cca_rate_data", "rate vs data", "k"),
                ("delta_compare_cca_rate_ann_mean", "rate vs ANNs", "#2ca02c"),
            ],
        ),
        (
            "Dynamics kept: CCA with the intact circuit",
            [("lesion_cca_to_intact_rate", "rate", "#1f77b4"), ("lesion_cca_to_intact_spiking", "spiking", "#ff7f0e")],
        ),
        ("Arm: change in endpoint error (cm)", [("delta_rate_endpoint_error_cm", "rate", "#1f77b4")]),
        (
            "Corrections: change in median bump recovery (ms) and peak displacement (cm x 100)",
            [
                ("delta_rate_bump_recovery_ms", "recovery", "#9467bd"),
                ("delta_rate_bump_displacement_cm_x100", "displacement", "#8c564b"),
            ],
        ),
        (
            "Adaptation: change in curl deviation ratio (after / first exposure) and aftereffect (cm)",
            [
                ("delta_rate_curl_deviation_ratio", "ratio", "#d62728"),
                ("delta_rate_curl_aftereffect_cm", "aftereffect", "#e377c2"),
            ],
        ),
    )
    rows = [
        {**r, "delta_rate_bump_displacement_cm_x100": 100 * r.get("delta_rate_bump_displacement_cm", np.nan)}
        for r in rows
    ]
    panels = [(t, [c for c in cols if any(~np.isnan(r.get(c[0], np.nan)) for r in rows)]) for t, cols in panels]
    panels = [(t, cols) for t, cols in panels if cols]
    fig, axes = _subplots(
        len(panels), 1, figsize=(max(6.0, 0.45 * len(names) + 2), 2.4 * len(panels)), sharex=True, squeeze=False
    )
    x = np.arange(len(names))
    for ax, (title, cols) in zip(axes[:, 0], panels):
        width = 0.8 / len(cols)
        for i, (col, label, colour) in enumerate(cols):
            values = [[r.get(col, np.nan) for r in rows if r[key] == n] for n in names]
            mean, sd = np.array([_mean_sd(v) for v in values]).T
            at = x + (i - (len(cols) - 1) / 2) * width
            ax.bar(at, mean, width, yerr=sd, color=colour, label=label, capsize=2, error_kw={"lw": 0.8})
            # an infinite change (the lesioned circuit never recovers from a bump) has no bar: say so where it
            # would stand, with how many seeds it holds for, rather than leave a gap that reads as "no change"
            for where, v in zip(at, values):
                n_inf = sum(np.isposinf(v))
                if n_inf:
                    ax.annotate(
                        "∞" if n_inf == len(v) else f"∞{n_inf}/{len(v)}",
                        (where, 1.0),
                        xycoords=("data", "axes fraction"),
                        ha="center",
                        va="top",
                        fontsize=7,
                        color=colour,
                        fontweight="bold",
                    )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(title, fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="best")
    ax = axes[-1, 0]
    ax.set_xticks(x, names, rotation=90, fontsize=8)
    for tick, (_, layer, cell_class) in zip(ax.get_xticklabels(), lesions):
        tick.set_color(LAYER_COLOURS.get(layer, "k"))
        tick.set_fontweight("bold" if cell_class == "E" else "normal")
    n_seeds = max(1, len({r.get("experiment.seed") for r in rows}))
    fig.suptitle(
        f"Silencing each population of the trained circuit\n(vs intact; mean +- SD over {n_seeds} "
        f"seed(s); labels coloured by layer, excitatory bold)",
        fontsize=9,
    )
    return fig


def battery_figures(result: BatteryResult, folder: str | Path) -> list[Path]:
    """The comparison battery's figures: similarity heat maps, jPCA planes and PCA trajectories.

    Parameters
    ----------
    result : BatteryResult
        From :func:`cortexsim.battery.run_battery`.
    folder : str or Path
        Written into (created): ``similarity_models.png``, ``similarity_parts_vs_ann.png`` (when layers or
        populations were compared with the ANNs), ``jpca.png`` and ``pca.png``.

    Returns
    -------
    list of Path
        The figures written, in that order.
    """
    folder = Path(folder)
    kinds = result.kinds()
    models = [n for n, kind in kinds.items() if kind in ("model", "data")]
    paths = [save(plot_similarity(list(result.similarity), models), folder / "similarity_models.png")]
    parts = [n for n, kind in kinds.items() if kind in ("layer", "population")]
    if any(r["a"] in parts for r in result.similarity):
        paths.append(
            save(
                plot_similarity(list(result.similarity), parts, columns_from="b"),
                folder / "similarity_parts_vs_ann.png",
            )
        )
    fitted = [n for n in models if n in result.jpca_results]
    paths.append(save(plot_jpca({n: result.jpca_results[n] for n in fitted}), folder / "jpca.png"))
    trajectories = {}
    for name in fitted:
        act = result.activities[name]
        fit = analysis.pca(act.rates, n_components=min(2, act.n_units))
        trajectories[name] = (fit.project(act.rates), float(fit.explained_variance_ratio.sum()), act.move_on)
    paths.append(save(plot_pca_trajectories(trajectories), folder / "pca.png"))
    return paths


def plot_dsa(rows: list[dict], names: list[str], columns_from: str | None = None) -> Figure:
    """Heat map of DSA distances (radians, lower = more similar dynamics).

    ``columns_from=None``: symmetric ``names`` x ``names`` (0 on the diagonal); ``"b"``: rows ``names``
    (layers, populations), columns the ``b`` entries they were compared with (ANNs).
    """
    if columns_from is None:
        cols = names
        mat = np.full((len(names), len(names)), np.nan)
        np.fill_diagonal(mat, 0.0)
    else:
        cols = list(dict.fromkeys(r[columns_from] for r in rows if r["a"] in names))
        mat = np.full((len(names), len(cols)), np.nan)
    for r in rows:
        if r["a"] in names and r["b"] in cols and "dsa" in r:
            i, j = names.index(r["a"]), cols.index(r["b"])
            mat[i, j] = r["dsa"]
            if columns_from is None and r["b"] in names:
                mat[j, i] = mat[i, j]
    fig, ax = _subplots(figsize=(1.2 + 1.1 * len(cols), 1.0 + 0.38 * len(names) + 0.6 * (columns_from is None)))
    top = float(np.nanmax(mat)) if np.isfinite(mat).any() and np.nanmax(mat) > 0 else 1.0
    im = ax.imshow(mat, cmap="magma_r", vmin=0, vmax=top, aspect="auto")
    fig.colorbar(im, ax=ax, label="DSA distance (rad, lower = more similar)")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if np.isfinite(mat[i, j]):
                ax.text(
                    j,
                    i,
                    f"{mat[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="k" if mat[i, j] < 0.5 * top else "w",
                )
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title("Dynamical similarity (DSA)")
    return fig


def plot_fixed_points(dynamics: DynamicsResult) -> Figure:
    """Fixed-point portraits: each model's evaluation trajectories in their top 2 PCs, and its fixed points.

    The points found under every probe input are drawn filled when stable, open when a saddle or
    unstable, square when marginal.
    """
    probes = list(dynamics.probes.values())
    fig, axes = _subplots(1, max(1, len(probes)), figsize=(3.2 * max(1, len(probes)), 3.2), squeeze=False)
    for ax, probe in zip(axes[0], probes):
        states = probe.states
        flat = states.reshape(-1, states.shape[-1])
        mean = flat.mean(axis=0)
        vt = np.linalg.svd(flat - mean, full_matrices=False)[2][:2]
        colours = _colours("hsv", states.shape[0])
        for c in range(states.shape[0]):
            xy = (states[c] - mean) @ vt.T
            ax.plot(xy[:, 0], xy[:, 1], color=colours[c], lw=0.8, alpha=0.7)
        labels = [label for label, _ in probe.inputs]
        in_colours = [
            colours[int(lab[6:]) % len(colours)] if lab.startswith("target") and lab[6:].isdigit() else "k"
            for lab in labels
        ]  # a target's points in the colour of its trajectory
        for label, colour in zip(labels, in_colours):
            fp = dynamics.fixed_point_results.get((probe.name, label))
            if fp is None or not fp.n_points:
                continue
            xy = (fp.points - mean) @ vt.T
            for (px, py), kind in zip(xy, fp.kinds):
                marker = "s" if kind == "marginal" else "o"
                face = colour if kind == "stable" else (1, 1, 1, 0)
                ax.plot(px, py, marker, ms=6, mfc=face, mec=colour, mew=1.2)
        ax.set_title(probe.name, fontsize=9)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.suptitle(
        "Trajectories and fixed points (black: zero input; colours: the delay input of that target)", fontsize=9
    )
    return fig


def plot_eigenspectra(dynamics: DynamicsResult, label: str = "zero") -> Figure:
    """Eigenvalues of the Jacobian at each model's fixed points under one input, with the unit circle."""
    found = {m: fp for (m, lab), fp in dynamics.fixed_point_results.items() if lab == label and fp.n_points}
    fig, axes = _subplots(1, max(1, len(found)), figsize=(3.0 * max(1, len(found)), 3.0), squeeze=False)
    theta = np.linspace(0, 2 * np.pi, 200)
    for ax, (model, fp) in zip(axes[0], found.items()):
        ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8)
        for i in range(fp.n_points):
            lam = fp.eigenvalues[i]
            ax.plot(lam.real, lam.imag, ".", ms=2.5, alpha=0.7, label=fp.kinds[i] if i < 3 else None)
        ax.set_aspect("equal")
        ax.set_title(f"{model} ({fp.n_points} point(s), input '{label}')", fontsize=8)
        ax.set_xlabel("Re lambda")
        ax.set_ylabel("Im lambda")
        ax.legend(fontsize=6, loc="lower left")
    return fig


def dynamics_figures(result: BatteryResult, dynamics: DynamicsResult, folder: str | Path) -> list[Path]:
    """The dynamics figures: DSA matrices, fixed-point portraits and eigen-spectra.

    Writes ``dsa_models.png``, ``dsa_parts_vs_ann.png`` (when layers or populations were compared with
    the ANNs), ``fixed_points.png`` and ``eigenspectra.png`` (when fixed points were sought).

    Returns
    -------
    list of Path
        The figures written.
    """
    folder = Path(folder)
    paths: list[Path] = []
    rows = list(result.similarity)
    if rows and "dsa" in rows[0]:
        kinds = result.kinds()
        models = [n for n, kind in kinds.items() if kind in ("model", "data")]
        paths.append(save(plot_dsa(rows, models), folder / "dsa_models.png"))
        parts = [n for n, kind in kinds.items() if kind in ("layer", "population")]
        if any(r["a"] in parts for r in rows):
            paths.append(save(plot_dsa(rows, parts, columns_from="b"), folder / "dsa_parts_vs_ann.png"))
    if dynamics.fixed_point_results:
        paths.append(save(plot_fixed_points(dynamics), folder / "fixed_points.png"))
        paths.append(save(plot_eigenspectra(dynamics), folder / "eigenspectra.png"))
    return paths
