"""A sweep's figures: each metric against a swept parameter (:func:`plot_sweep`), and the lesion figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .circuit import LAYER_COLOURS
from .figure import subplots as _subplots


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
