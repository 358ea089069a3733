"""Figures of the causal experiments (``/stimulation``, :mod:`cortexsim.stim_measure`).

* :func:`plot_stim_paths` -- ``stim_paths.png``: per protocol, the circuit's hand paths with the light
  (solid) and without (dotted), and the hand's deviation over time for every model;
* :func:`plot_stim_neural` -- ``stim_neural.png``: per protocol, the norm of the activity's change over
  time with its output-potent part (what the body can see) and the light;
* :func:`plot_stim_sweep` -- a sweep over ``stimulation.protocols``: per point and protocol, the peak
  hand deviation, the success rate and the potent share (the sweep's ``stimulation.png``);
* :func:`plot_stim_map` -- ``stim_map.png``: the population x protocol map of the circuit's responses
  while the light is on (relative to each population's unstimulated rate), expressing populations
  outlined -- driven directly or through the circuit.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from .figure import colours as _colours
from .figure import model_label as _model_label
from .figure import subplots as _subplots

MODEL_ORDER = ("rate", "spiking", "ann_rnn", "ann_gru", "ann_lstm")
"""Order in which models are drawn."""


def _models(entry: dict) -> list[str]:
    """The models a protocol's entry holds, in :data:`MODEL_ORDER` (others after)."""
    held = [k for k in entry if k != "attrs"]
    return [m for m in MODEL_ORDER if m in held] + [m for m in held if m not in MODEL_ORDER]


def _light_span(ax, time: np.ndarray, light: np.ndarray) -> None:
    """Shade where the light of condition 0 is on."""
    lit = np.flatnonzero(light[:, 0] > 0) if light.ndim == 2 else np.flatnonzero(light > 0)
    if lit.size:
        ax.axvspan(time[lit[0]], time[lit[-1]] + (time[1] - time[0]), color="#4fc3f7", alpha=0.25, lw=0)


def plot_stim_paths(stim: dict[str, dict], time: np.ndarray, failed: tuple[str, ...] = ()) -> Figure:
    """Hand paths with and without the light (the circuit), and the hand's deviation over time (every model).

    Parameters
    ----------
    stim : dict
        ``/stimulation`` as :func:`cortexsim.store.read_stimulation` returns it.
    time : ndarray, shape (time,)
        Step start times (s).
    failed : tuple of str
        Prefixes of models that failed their task: marked wherever the model is named.
    """
    names = list(stim)
    fig, axes = _subplots(2, len(names), figsize=(3.6 * len(names), 7.0), squeeze=False)
    for j, name in enumerate(names):
        entry = stim[name]
        first = "rate" if "rate" in entry else _models(entry)[0]
        hand, base = entry[first]["hand"], entry[first]["hand_unstimulated"]
        colours = _colours("hsv", hand.shape[0])
        ax = axes[0, j]
        for c in range(hand.shape[0]):
            ax.plot(*(100 * base[c].T), ":", color=colours[c], lw=1.0)
            ax.plot(*(100 * hand[c].T), "-", color=colours[c], lw=1.5)
        ax.set_aspect("equal")
        ax.set_xlabel("x (cm)")
        ax.set_ylabel("y (cm)")
        ax.set_title(f"{name}: {_model_label(first, failed)}\nlight (solid) vs none (dotted)", fontsize=9)
        bx = axes[1, j]
        _light_span(bx, time, entry[first]["light"])
        for model in _models(entry):
            dev = entry[model]["hand_deviation"]
            bx.plot(time, 100 * dev.mean(axis=0), label=_model_label(model, failed))
        bx.set_xlabel("time in trial (s; blue: light, condition 0)")
        bx.set_ylabel("hand deviation (cm)")
        bx.set_title(textwrap.fill(str(entry["attrs"].get("label", name)), 48), fontsize=7)
        bx.legend(fontsize=7)
    return fig


def plot_stim_neural(stim: dict[str, dict], time: np.ndarray, failed: tuple[str, ...] = ()) -> Figure:
    """The activity's change over time and its output-potent part, per protocol and model."""
    names = list(stim)
    fig, axes = _subplots(1, len(names), figsize=(3.8 * len(names), 3.6), squeeze=False)
    for j, name in enumerate(names):
        entry = stim[name]
        ax = axes[0, j]
        first = _models(entry)[0]
        _light_span(ax, time, entry[first]["light"])
        for i, model in enumerate(m for m in _models(entry) if m in ("rate", "spiking")):
            total, potent = entry[model]["neural_deviation"], entry[model]["neural_potent"]
            null = np.sqrt(np.maximum(total**2 - potent**2, 0.0))
            ax.plot(time, total, color=f"C{i}", lw=1.6, label=f"{_model_label(model, failed)}: all")
            ax.plot(time, null, color=f"C{i}", lw=1.0, ls="--", label="output-null")
            ax.plot(time, potent, color=f"C{i}", lw=1.0, ls=":", label="output-potent")
        ax.set_xlabel("time in trial (s)")
        ax.set_ylabel("|change of rates| (Hz, norm over units)")
        ax.set_title(f"{name}\n(mean over conditions)", fontsize=9)
        ax.legend(fontsize=6)
    return fig


def plot_stim_map(stim: dict[str, dict], model: str = "rate") -> Figure:
    """Population x protocol map of ``model``'s responses while lit (relative change), expressing ones outlined."""
    names = [n for n in stim if model in stim[n]]
    pops = [r["population"] for r in stim[names[0]][model]["populations"]] if names else []
    grid = np.full((len(pops), len(names)), np.nan)
    direct = np.zeros_like(grid, bool)
    for j, name in enumerate(names):
        for i, row in enumerate(stim[name][model]["populations"]):
            grid[i, j] = row["relative_light"]
            direct[i, j] = row["direct"] > 0
    fig, ax = _subplots(figsize=(1.2 + 1.1 * max(len(names), 1), 1.0 + 0.32 * max(len(pops), 1)))
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    limit = min(max(limit, 0.05), 2.0)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i, j in zip(*np.nonzero(direct)):
        ax.add_patch(_box(j, i))
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(pops)), pops, fontsize=7)
    ax.set_title(f"{model}: change of rate while lit / unstimulated rate\n(outlined: the light's target)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="relative change")
    return fig


def plot_stim_sweep(rows: list[dict], param: str, model: str = "rate") -> Figure:
    """A sweep over ``stimulation.protocols``: per point and protocol, peak deviation, success, potent share.

    Parameters
    ----------
    rows : list of dict
        The sweep's finished rows (``summary.csv``): the swept value (protocol names joined by ``+``) and
        every ``stim_<protocol>_<model>_*`` metric.
    param : str
        The swept parameter (``"stimulation.protocols"``).
    model : str
        Whose measures (``rate``, ``spiking``, ``ann_<arch>``).
    """
    names = [str(r[param]).split("+") for r in rows]
    width = max((len(n) for n in names), default=1)
    measures = (
        ("peak_deviation_cm", "peak hand deviation (cm)", "magma_r", "{:.1f}"),
        ("success_rate", "reaches meeting the bar", "RdYlGn", "{:.0%}"),
        ("potent_share", "output-potent share of the change", "viridis", "{:.0%}"),
    )
    shared = [{n[j].rsplit("_", 1)[-1] for n in names if j < len(n)} for j in range(width)]  # e.g. {"delay"}, {"move"}
    columns = [next(iter(c)) if len(c) == 1 else f"protocol {j + 1}" for j, c in enumerate(shared)]
    fig, axes = _subplots(1, 3, figsize=(3.2 * 3 + 1.5, 0.9 + 0.3 * max(len(rows), 1)), squeeze=False)
    for ax, (key, title, cmap, text) in zip(axes[0], measures):
        grid = np.full((len(rows), width), np.nan)
        for i, (r, row_names) in enumerate(zip(rows, names)):
            for j, name in enumerate(row_names):
                value = r.get(f"stim_{name}_{model}_{key}", np.nan)
                grid[i, j] = float(value) if value not in ("", None) else np.nan
        image = ax.imshow(grid, cmap=cmap, aspect="auto", vmin=0, vmax=1 if key != "peak_deviation_cm" else None)
        for i, j in zip(*np.nonzero(np.isfinite(grid))):
            r, g, b, _ = image.cmap(image.norm(grid[i, j]))
            ink = "k" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "w"  # readable on the cell's colour
            ax.text(j, i, text.format(grid[i, j]), ha="center", va="center", fontsize=6, color=ink)
        ax.set_xticks(np.arange(width), columns, fontsize=8)
        ax.set_yticks(np.arange(len(rows)), [str(r[param]) for r in rows], fontsize=6)
        ax.set_title(f"{_model_label(model)}: {title}", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.6)
    return fig


def _box(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="k", lw=1.5)


__all__ = ["plot_stim_map", "plot_stim_neural", "plot_stim_paths", "plot_stim_sweep"]
