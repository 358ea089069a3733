"""The dynamics' figures: DSA matrices, fixed-point portraits and eigen-spectra (:func:`dynamics_figures`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .figure import colours as _colours
from .figure import subplots as _subplots
from .files import save

if TYPE_CHECKING:
    from ..battery import BatteryResult, DynamicsResult


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
