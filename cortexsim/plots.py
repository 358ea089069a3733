"""Figures.  Functions take data (and optionally an Axes) and return a Figure.

They never compute science beyond the summary they display, and never change
their inputs.  Matplotlib runs on the non-interactive ``Agg`` backend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .circuit import Connectome  # noqa: E402

LAYER_COLOURS = {"L1": "#8c564b", "L2/3": "#1f77b4", "L4": "#2ca02c", "L5A": "#ff7f0e",
                 "L5B": "#d62728", "L6": "#9467bd"}


def save(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def population_matrices(connectome: Connectome) -> tuple[np.ndarray, np.ndarray]:
    """Empirical connection probability and summed signed input, population by population.

    Returns
    -------
    probability : ndarray, shape (populations, populations)
        ``[post, pre]``: fraction of possible pairs that are connected.
    drive : ndarray, shape (populations, populations)
        ``[post, pre]``: mean over post units of the summed signed weight from the
        pre population, in mV/Hz.
    """
    sizes = np.array([p.size for p in connectome.populations])
    n_pop = sizes.size
    unit_pop = connectome.unit_population
    block = unit_pop[connectome.post].astype(np.int64) * n_pop + unit_pop[connectome.pre]
    count = np.bincount(block, minlength=n_pop**2).reshape(n_pop, n_pop)
    total = np.bincount(block, weights=connectome.signed_weight, minlength=n_pop**2).reshape(n_pop, n_pop)
    return count / np.outer(sizes, sizes), total / sizes[:, None]


def _layer_ticks(ax: plt.Axes, connectome: Connectome) -> None:
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
    prob, drive = population_matrices(connectome)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), constrained_layout=True)
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
