"""What every figure of :mod:`cortexsim.plots` shares: a Figure without pyplot, colours, model labels."""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..model_id import ModelId


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float],
    sharex: bool = False,
    sharey: bool = False,
    squeeze: bool = True,
) -> tuple[Figure, Any]:
    """A new Figure (constrained layout) and its grid of Axes, made directly (no global figure manager)."""
    fig = Figure(figsize=figsize, constrained_layout=True)
    return fig, fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=squeeze)


def colours(name: str, n: int) -> np.ndarray:
    """``n`` colours (RGBA rows) spread evenly over the colormap ``name``, the end left out."""
    return matplotlib.colormaps[name](np.linspace(0, 1, n, endpoint=False))


def model_label(model: str, failed: tuple[str, ...] = (), sep: str = " ") -> str:
    """A model's label from its ``/metrics`` prefix, ``sep`` + ``(FAILED its task)`` when it is in ``failed``."""
    identity = ModelId.of_prefix(model)
    return (identity.label if identity is not None else model) + (f"{sep}(FAILED its task)" if model in failed else "")


__all__ = ["colours", "model_label", "subplots"]
