"""The circuit and its spiking twin: connectivity, rates per layer, the twin's spikes and fidelity.

* :func:`plot_connectivity` -- ``connectivity.png``;
* :func:`plot_layer_rates` -- ``layer_rates.png``;
* :func:`plot_raster` -- ``raster.png``;
* :func:`plot_fidelity` -- ``spiking_fidelity.png``.

:data:`LAYER_COLOURS` colours a cortical layer wherever populations are named.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..circuit import Connectome
from .figure import subplots as _subplots
from .task import epoch_lines as _epoch_lines

LAYER_COLOURS = {
    "L1": "#8c564b",
    "L2/3": "#1f77b4",
    "L4": "#2ca02c",
    "L5A": "#ff7f0e",
    "L5B": "#d62728",
    "L6": "#9467bd",
}


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
