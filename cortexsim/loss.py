"""The training objective every model shares: masked squared error, R^2, penalties.

The rate circuit (:mod:`cortexsim.rate`) and the ANN baselines (:mod:`cortexsim.ann`)
compute their task error here, so "loss" and "R^2" mean the same thing for every model:

    task loss = sum(mask (y - y*)^2) / (sum(mask) d^2)
    R^2       = 1 - sum(mask (y - y*)^2) / sum(mask (y* - mean_mask(y*))^2)

with ``d`` the typical output magnitude (the reach distance, m), so positions are
compared in units of the reach.  The penalty weights are those of ``[train]``
(:class:`~cortexsim.config.TrainConfig`); :class:`Penalties` takes its defaults from there.

Every model's ``loss_and_grad`` also takes one more, optional term on **its activity** (the array
:attr:`cortexsim.model.Trajectory.activity` holds: the circuit's rates, an ANN's ``h``): an
:class:`ActivityLoss`, called with the batch's activity, returns an :class:`ActivityTerm` (its loss
and ``dL/d activity``), which the model adds to its loss and to the gradient its backpropagation
starts from.  The neural term of a fit to recorded neurons (:mod:`cortexsim.neural_loss`) is one;
no model knows what the term is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .config import TrainConfig


@dataclass(frozen=True)
class Penalties:
    """Loss terms besides the task error (defaults favour simple dynamics; Sussillo et al. 2015).

    The defaults are :class:`~cortexsim.config.TrainConfig`'s, written once, there.

    Attributes
    ----------
    rate_l2 : float
        Weight of the mean squared rate, per Hz^2.
    rate_cap : float
        Rates above this (Hz) are penalised by a hinge ...
    rate_cap_l2 : float
        ... of weight ``rate_cap_l2`` on the mean squared excess (per Hz^2).  Keeps
        rates inside the transfer function's fitted range.
    weight_l2 : float
        Weight of the mean squared recurrent magnitude, relative to the initial
        mean squared magnitude.
    """

    rate_l2: float = TrainConfig.rate_l2
    rate_cap: float = TrainConfig.rate_cap
    rate_cap_l2: float = TrainConfig.rate_cap_l2
    weight_l2: float = TrainConfig.weight_l2

    @classmethod
    def of(cls, train: TrainConfig) -> Penalties:
        """The penalties a ``[train]`` section sets."""
        return cls(train.rate_l2, train.rate_cap, train.rate_cap_l2, train.weight_l2)


DEFAULT_PENALTIES = Penalties()
"""The penalties of the default ``[train]`` section."""


def masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over all but the last axis, counting only masked entries.

    Parameters
    ----------
    values, mask : ndarray, shape (..., outputs)

    Returns
    -------
    ndarray, shape (outputs,)
    """
    axes = tuple(range(values.ndim - 1))
    return np.sum(values * mask, axis=axes) / np.maximum(np.sum(mask, axis=axes), 1)


def r2_from_sse(sse: float, targets: np.ndarray, mask: np.ndarray) -> float:
    """``1 - sse / SST``, SST taken around the masked mean target of each output dimension.

    Parameters
    ----------
    sse : float
        Sum of masked squared errors.
    targets, mask : ndarray, shape (..., outputs)
    """
    sst = float(np.sum(mask * (targets - masked_mean(targets, mask)) ** 2))
    return 1.0 - float(sse) / max(sst, 1e-30)


def r2_score(outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Coefficient of determination over all masked samples (1 is perfect, 0 the mean target).

    Parameters
    ----------
    outputs, targets : ndarray, shape (..., outputs)
    mask : ndarray, same shape, optional
        1 where a sample counts (default: all).
    """
    mask = np.ones_like(targets) if mask is None else mask
    err = (outputs - targets) * mask
    return r2_from_sse(float(np.sum(err**2)), targets, mask)


@dataclass(frozen=True)
class TaskError:
    """The masked squared task error of a batch and its gradient.

    Attributes
    ----------
    loss : float
        ``sum(mask (y - y*)^2) / (sum(mask) d^2)`` (dimensionless).
    grad : ndarray
        d loss / d y, same shape as the outputs (1/m when ``d`` is in m).
    r2 : float
        R^2 of the outputs on the masked samples.
    """

    loss: float
    grad: np.ndarray
    r2: float


def task_error(outputs: np.ndarray, targets: np.ndarray, mask: np.ndarray, scale: float) -> TaskError:
    """Masked mean squared error in units of ``scale`` (the output magnitude), its gradient and R^2.

    Parameters
    ----------
    outputs, targets, mask : ndarray, shape (..., outputs)
        Any common leading axes (time-major or trials-first); positions in m.
    scale : float
        Typical output magnitude ``d`` (m).

    Returns
    -------
    TaskError
    """
    err = (outputs - targets) * mask
    count = max(float(mask.sum()), 1.0)
    sse = float(np.sum(err**2))
    norm = count * scale**2
    return TaskError(sse / norm, (2.0 / norm) * err, r2_from_sse(sse, targets, mask))


@dataclass(frozen=True, eq=False)
class ActivityTerm:
    """One extra loss term on a model's activity, evaluated on one batch.

    Attributes
    ----------
    loss : float
        The term's share of the loss (dimensionless, its weight included).
    grad : ndarray, shape (time, trials, units)
        ``d loss / d activity`` (time-major, as models backpropagate), per unit of the activity
        (1/Hz for the circuit's rates).
    stats : dict of str to float
        What training records of it (e.g. ``neural_loss``).
    """

    loss: float
    grad: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)


class ActivityLoss(Protocol):
    """A loss term on a model's activity, added by every model's ``loss_and_grad(..., extra=term)``."""

    def __call__(self, activity: np.ndarray, batch) -> ActivityTerm:
        """The term and its gradient for ``activity`` (time, trials, units) of ``batch`` (a ``TrialBatch``).

        ``activity`` may be a view of the model's work buffer: read it, never keep or change it.
        """
        ...
