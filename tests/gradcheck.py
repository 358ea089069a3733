"""Finite-difference gradient checks shared by the rate-network and ANN tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def directional_error(
    loss_and_grad: Callable[[], tuple],
    params: dict[str, np.ndarray],
    group: str,
    direction: np.ndarray,
    h: float = 1e-5,
) -> float:
    """Relative error between the analytic and the centred-difference directional derivative.

    ``loss_and_grad()`` returns ``(loss, grads, stats)`` for the current ``params``;
    ``params[group]`` is perturbed along ``direction`` by ``+-h`` and restored.
    """
    _, grads, _ = loss_and_grad()
    analytic = float(np.sum(grads[group] * direction))
    base = params[group].copy()
    values = []
    for sign in (1, -1):
        params[group] = base + sign * h * direction
        values.append(loss_and_grad()[0])
    params[group] = base
    numeric = (values[0] - values[1]) / (2 * h)
    return abs(analytic - numeric) / max(abs(numeric), abs(analytic), 1e-300)
