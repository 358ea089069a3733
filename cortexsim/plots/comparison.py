"""The comparison battery's figures: similarity heat maps, jPCA planes, PCA trajectories, rotation sources.

:func:`battery_figures` draws a :class:`~cortexsim.battery.BatteryResult` (``similarity_models.png``,
``similarity_parts_vs_ann.png``, ``jpca.png``, ``pca.png``); :func:`plot_rotation_sources` an arm run's
rotation-sources table (``rotation_sources.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .. import analysis
from .figure import colours as _colours
from .figure import subplots as _subplots
from .files import save

if TYPE_CHECKING:
    from ..battery import BatteryResult


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
