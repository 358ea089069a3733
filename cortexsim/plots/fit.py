"""Figures of a fit to recorded neurons (``/fit``, :mod:`cortexsim.fit_stage`).

* :func:`plot_fit_psths` -- ``fit_psths.png``: per model, the predicted against the recorded PSTHs of
  its best, median and worst held-out neuron by PSTH R²;
* :func:`plot_fit_scores` -- ``fit_scores.png``: the score table as bars grouped by score, one bar per
  model (held-out neurons' co-bps and PSTH R², held-out conditions' PSTH R², velocity R²);
* :func:`plot_fit_populations` -- ``fit_populations.png``: the fitted circuit's mean rate per population
  of the mapping (and the task-only circuit's) next to the recorded neurons' mean rate.

A model that failed its task (missed the ``[quality]`` bars on the recorded conditions) is marked
``(FAILED its task)`` wherever it is named, and its bars are hatched.
"""

from __future__ import annotations

import numpy as np

from .figure import Figure  # matplotlib's, through the module that imports it for the package
from .figure import model_label as _model_label
from .figure import subplots as _subplots

FIT_LABELS = {"rate": "circuit, fitted", "rate_taskonly": "circuit, task only"}
"""Labels of the circuit models of a fit (the ANNs keep their own: ``GRU``)."""

SCORE_LABELS = {
    "heldout_co_bps": "held-out neurons\nco-bps (bits/spike)",
    "heldout_psth_r2": "held-out neurons\nPSTH R²",
    "heldout_condition_psth_r2": "held-out conditions\nPSTH R²",
    "velocity_r2": "hand velocity\nR² (decoded)",
}
"""The scores :func:`plot_fit_scores` draws, in order, and their axis labels."""

FAILED = " (FAILED its task)"


def fit_label(model: str, failed: tuple[str, ...] = ()) -> str:
    """A fitted model's label (``circuit, fitted``, ``GRU``), marked when it is in ``failed``."""
    if model in FIT_LABELS:
        return FIT_LABELS[model] + (FAILED if model in failed else "")
    return _model_label(model, failed)


def _order(models) -> list[str]:
    names = list(models)
    return [m for m in FIT_LABELS if m in names] + [m for m in names if m not in FIT_LABELS]


def plot_fit_psths(
    models: dict[str, dict[str, np.ndarray]],
    time: np.ndarray,
    neurons: np.ndarray,
    conditions: tuple[str, ...] = (),
    failed: tuple[str, ...] = (),
    max_conditions: int = 4,
) -> Figure:
    """Predicted (dashed) against recorded (solid) PSTHs of each model's best, median and worst held-out neuron.

    Parameters
    ----------
    models : dict of str to dict
        Per model (``rate``, ``rate_taskonly``, ``ann_<arch>``): ``predicted`` and ``recorded``, the
        held-out neurons' PSTHs (conditions, bins, held-out neurons; Hz), ``neuron_r2`` (held-out neurons,)
        and ``scored``, the conditions the R² is scored on.
    time : ndarray, shape (bins,)
        Bin centres (s, relative to the alignment event).
    neurons : ndarray of int
        The held-out neurons' indices in the recording (for the titles).
    conditions : tuple of str
        Condition labels.
    failed : tuple of str
        Models that failed their task: marked in their row's titles.
    max_conditions : int
        At most this many scored conditions are drawn per panel (spread over them).
    """
    names = _order(models)
    fig, axes = _subplots(
        max(len(names), 1), 3, figsize=(10.5, 2.5 * max(len(names), 1) + 0.4), squeeze=False, sharex=True
    )
    for i, model in enumerate(names):
        entry = models[model]
        r2 = np.asarray(entry["neuron_r2"], float)
        scored = np.asarray(entry["scored"], int)
        shown = scored[np.unique(np.linspace(0, scored.size - 1, min(max_conditions, scored.size)).round().astype(int))]
        order = np.argsort(np.where(np.isfinite(r2), r2, -np.inf))[::-1]
        picks = (("best", order[0]), ("median", order[order.size // 2]), ("worst", order[-1])) if r2.size else ()
        for j, (which, k) in enumerate(picks):
            ax = axes[i, j]
            for n, c in enumerate(shown):
                colour = f"C{n % 10}"
                label = conditions[c] if c < len(conditions) else str(c)
                ax.plot(time, entry["recorded"][c, :, k], "-", color=colour, lw=1.4, label=f"{label}")
                ax.plot(time, entry["predicted"][c, :, k], "--", color=colour, lw=1.2)
            ax.axvline(0.0, color="0.6", lw=0.8, zorder=0)
            title = f"{fit_label(model, failed)}\n{which}: neuron {int(neurons[k])}, R² {r2[k]:.2f}"
            ax.set_title(title, fontsize=8, color="firebrick" if model in failed else "black")
            ax.set_ylabel("rate (Hz)", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(names) - 1:
                ax.set_xlabel("time from alignment event (s)", fontsize=8)
        if picks:
            axes[i, 0].legend(fontsize=6, title="condition", title_fontsize=6, loc="upper left")
    fig.suptitle("held-out neurons: recorded PSTH (solid) vs predicted (dashed)", fontsize=10)
    return fig


def plot_fit_scores(scores: dict[str, dict[str, float]], failed: tuple[str, ...] = (), floor: float = -1.0) -> Figure:
    """The score table as bars: one group per score (:data:`SCORE_LABELS`), one bar per model.

    Every bar is labelled with its value.  A score that is not defined (NaN: no single trials, no hand)
    is written ``n/a`` in its place; a bar below ``floor`` (an R² far below 0) is cut there, its value
    still written, so that one bad score does not flatten the others.  A model that failed its task
    has hatched bars and is marked in the legend.
    """
    names = _order(scores)
    keys = list(SCORE_LABELS)
    table = np.array([[scores[m].get(k, np.nan) for k in keys] for m in names], float).reshape(len(names), len(keys))
    finite = table[np.isfinite(table)]
    low = max(min(float(finite.min(initial=0.0)), 0.0), floor)
    high = max(float(finite.max(initial=0.0)), 0.0)
    span = max(high - low, 0.5)
    fig, ax = _subplots(figsize=(2.2 + 1.9 * len(keys), 3.8))
    width = 0.8 / max(len(names), 1)
    for i, model in enumerate(names):
        x = np.arange(len(keys)) + (i - (len(names) - 1) / 2) * width
        values = table[i]
        bad = model in failed
        ax.bar(
            x,
            np.where(np.isfinite(values), np.clip(values, low, None), np.nan),  # NaN: no bar, `n/a`
            width * 0.92,
            color=f"C{i}",
            hatch="//" if bad else None,
            edgecolor="firebrick" if bad else "none",
            label=fit_label(model, failed),
        )
        for xi, v in zip(x, values):
            if not np.isfinite(v):
                ax.text(xi, 0.02 * span, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
            elif v >= 0:
                ax.text(xi, v + 0.02 * span, f"{v:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
            else:
                cut = "cut " if v < low else ""
                ax.text(xi, max(v, low) - 0.02 * span, f"{cut}{v:.2f}", ha="center", va="top", fontsize=6, rotation=90)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_ylim(low - 0.25 * span, high + 0.25 * span)
    ax.set_xticks(np.arange(len(keys)), [SCORE_LABELS[k] for k in keys], fontsize=8)
    ax.set_ylabel("score (higher is better)")
    ax.set_title(
        f"held-out scores of every model (n/a: not defined for this recording; bars below {floor:g} cut there)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_fit_populations(
    time: np.ndarray,
    rates: dict[str, dict[str, np.ndarray]],
    data: dict[str, np.ndarray],
    data_label: str = "recorded neurons",
    failed: tuple[str, ...] = (),
    mapped: dict[str, np.ndarray] | None = None,
) -> Figure:
    """The circuit's mean rate per population of the mapping next to the recorded neurons' mean rate.

    Parameters
    ----------
    time : ndarray, shape (bins,)
        Bin centres (s, relative to the alignment event).
    rates : dict of str to dict of str to ndarray
        Per circuit model (``rate``, ``rate_taskonly``): each population's rate (Hz, mean over its units
        and every condition), shape (bins,).
    data : dict of str to ndarray
        Per population, the recorded mean rate (Hz) drawn next to it: of the held-in neurons mapped to
        it (``units`` mapping), or of every recorded neuron (the same in every panel).
    data_label : str
        What ``data`` is, for the legend.
    failed : tuple of str
        Models that failed their task: marked in the legend.
    mapped : dict of str to ndarray, optional
        Per population, the fitted circuit's mean rate (Hz) over only the units recorded neurons are
        mapped to (``units`` mapping): what the neural term fits to ``data``.
    """
    pops = list(next(iter(rates.values()), {}))
    n = max(len(pops), 1)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = _subplots(rows, cols, figsize=(2.9 * cols + 0.4, 2.4 * rows + 0.5), squeeze=False, sharex=True)
    styles = {"rate": ("C0", "-"), "rate_taskonly": ("C1", "--")}
    for p, pop in enumerate(pops):
        ax = axes[p // cols, p % cols]
        for model in _order(rates):
            colour, style = styles.get(model, ("C2", ":"))
            ax.plot(time, rates[model][pop], style, color=colour, lw=1.4, label=fit_label(model, failed))
        if mapped and pop in mapped:
            label = fit_label("rate", failed) + ": mapped units"
            ax.plot(time, mapped[pop], "-.", color="C0", lw=1.0, label=label)
        if pop in data:
            ax.plot(time, data[pop], "-", color="k", lw=1.6, label=data_label)
        ax.axvline(0.0, color="0.6", lw=0.8, zorder=0)
        ax.set_title(pop, fontsize=9)
        ax.tick_params(labelsize=7)
        if p % cols == 0:
            ax.set_ylabel("mean rate (Hz)", fontsize=8)
        if p + cols >= len(pops):  # no panel below: its own time axis
            ax.set_xlabel("time from alignment event (s)", fontsize=8)
            ax.tick_params(labelbottom=True)
    for q in range(len(pops), rows * cols):
        axes[q // cols, q % cols].set_visible(False)
    if pops:
        axes[0, 0].legend(fontsize=6, loc="best")
    fig.suptitle("population rates of the circuit (mean over units and conditions) and of the recording", fontsize=10)
    return fig


__all__ = ["fit_label", "plot_fit_populations", "plot_fit_psths", "plot_fit_scores"]
