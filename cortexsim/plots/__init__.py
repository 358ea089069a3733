"""Figures.  Functions take data (and optionally an Axes) and return a Figure.

They never compute science beyond the summary they display, and never change
their inputs.  Figures are plain :class:`matplotlib.figure.Figure` objects made
directly, outside matplotlib's global figure manager: importing cortexsim never
switches the user's backend, and nothing keeps a figure alive once it is saved
(``Figure.savefig`` renders with the Agg canvas).

One module per family of figures, each name re-exported here (``plots.plot_arm``, ``plots.save``):

* :mod:`~cortexsim.plots.figure` -- what every figure shares (a Figure without pyplot, colours, model labels);
* :mod:`~cortexsim.plots.files` -- :func:`save`, a figure written to a file atomically;
* :mod:`~cortexsim.plots.task` -- training, hand paths, a task's own figure (the maze);
* :mod:`~cortexsim.plots.circuit` -- connectivity, rates per layer, the twin's raster and fidelity;
* :mod:`~cortexsim.plots.body` -- the body a model drove and its muscles;
* :mod:`~cortexsim.plots.perturbation` -- the curl field and the bumps;
* :mod:`~cortexsim.plots.comparison` -- the comparison battery (:func:`battery_figures`), rotation sources;
* :mod:`~cortexsim.plots.dynamics` -- DSA, fixed points, eigen-spectra (:func:`dynamics_figures`);
* :mod:`~cortexsim.plots.sweep` -- a sweep's metrics and the lesion figure;
* :mod:`~cortexsim.plots.stimulation` -- the causal experiments, and :mod:`~cortexsim.plots.fit` -- a fit to
  recorded neurons (each imported as its own module).
"""

from __future__ import annotations

from .body import plot_arm, plot_muscles
from .circuit import LAYER_COLOURS, plot_connectivity, plot_fidelity, plot_layer_rates, plot_raster
from .comparison import battery_figures, plot_jpca, plot_pca_trajectories, plot_rotation_sources, plot_similarity
from .dynamics import dynamics_figures, plot_dsa, plot_eigenspectra, plot_fixed_points
from .files import save
from .perturbation import plot_bumps, plot_curl
from .sweep import plot_lesions, plot_sweep
from .task import TASK_FIGURES, has_task_figure, plot_maze, plot_training, plot_trajectories, task_figure

__all__ = [
    "LAYER_COLOURS",
    "TASK_FIGURES",
    "battery_figures",
    "dynamics_figures",
    "has_task_figure",
    "plot_arm",
    "plot_bumps",
    "plot_connectivity",
    "plot_curl",
    "plot_dsa",
    "plot_eigenspectra",
    "plot_fidelity",
    "plot_fixed_points",
    "plot_jpca",
    "plot_layer_rates",
    "plot_lesions",
    "plot_maze",
    "plot_muscles",
    "plot_pca_trajectories",
    "plot_raster",
    "plot_rotation_sources",
    "plot_similarity",
    "plot_sweep",
    "plot_training",
    "plot_trajectories",
    "save",
    "task_figure",
]
