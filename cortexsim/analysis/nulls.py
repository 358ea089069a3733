"""Null distributions and confidence intervals for any similarity measure.

``metric`` is any function ``metric(X, Y) -> float`` on arrays of shape
(conditions, time, units), e.g. :func:`~cortexsim.analysis.linear_cka` or
``functools.partial(shape_distance, alpha=0.5)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _checks, similarity

Metric = Callable[[np.ndarray, np.ndarray], float]
SHUFFLE_KINDS = ("condition", "time")
BOOTSTRAP_OVER = ("units", "conditions")


@dataclass(frozen=True, eq=False)
class NullResult:
    """An observed similarity against its shuffle null (:func:`shuffle_null`).

    Attributes
    ----------
    observed : float
        ``metric(X, Y)``.
    null : ndarray, shape (n,)
        ``metric(X, shuffled Y)`` for each shuffle.
    mean, sd : float
        Mean and standard deviation (ddof=1) of ``null``.
    p_value : float
        One-sided permutation p value for "X and Y are more similar than under
        the null": the fraction of shuffles at least as similar as observed,
        ``(1 + count) / (1 + n)`` (never 0; Phipson & Smyth 2010). Lower = stronger
        evidence of similarity beyond the null.
    kind : str
        ``"condition"`` or ``"time"``.
    higher_is_more_similar : bool
        The direction used for ``p_value``.
    """

    observed: float
    null: np.ndarray
    mean: float
    sd: float
    p_value: float
    kind: str
    higher_is_more_similar: bool

    @property
    def z(self) -> float:
        """``(observed - mean) / sd``, signed so that positive = more similar than the null."""
        sign = 1.0 if self.higher_is_more_similar else -1.0
        return float(sign * (self.observed - self.mean) / self.sd) if self.sd > 0 else float("nan")

    def __repr__(self) -> str:
        return (
            f"<NullResult ({self.kind} shuffle, n={self.null.size}): observed {self.observed:.4g}, "
            f"null {self.mean:.4g} +- {self.sd:.4g}, p = {self.p_value:.3g}>"
        )


class Interval(NamedTuple):
    """A confidence interval ``(low, high)`` in the metric's own units."""

    low: float
    high: float


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)); got {rng!r}")
    return rng


def _evaluate(metric: Metric, X: np.ndarray, Y: np.ndarray, what: str) -> float:
    value = float(metric(X, Y))
    if not np.isfinite(value):
        raise ValueError(f"metric returned {value} on the {what} data; it must return a finite number")
    return value


def _value(value: float) -> float:
    """:func:`_evaluate`'s check of a value computed without calling the metric (a shuffled-data value)."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"metric returned {value} on the shuffled data; it must return a finite number")
    return value


def _shuffled_rows(shape: tuple[int, ...], kind: str, rng: np.random.Generator) -> np.ndarray:
    """One shuffle of Y (see :func:`shuffle_null`) as the order of its flattened samples (conditions x time).

    ``Y.reshape(-1, units)[rows].reshape(Y.shape)`` is the shuffled Y. It draws ``rng.permutation(conditions)``
    or one shift in [1, time - 1] per condition (step t of a shifted condition is its step t - shift, as
    ``np.roll`` moves it).
    """
    n_cond, n_time = shape[0], shape[1]
    steps = np.arange(n_time)
    if kind == "condition":
        return (rng.permutation(n_cond)[:, None] * n_time + steps).ravel()
    shifts = rng.integers(1, n_time, size=n_cond)  # never 0: every condition is moved
    return (np.arange(n_cond)[:, None] * n_time + (steps - shifts[:, None]) % n_time).ravel()


def shuffle_null(
    metric: Metric,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    kind: str = "condition",
    n: int = 100,
    rng: np.random.Generator,
    higher_is_more_similar: bool,
) -> NullResult:
    """Compare ``metric(X, Y)`` with its values after shuffling Y.

    * ``kind="condition"``: the condition order of Y is permuted (a uniformly
      random permutation, so the identity can occur). This keeps each
      population's structure but breaks which condition matches which; any
      condition-independent time course shared by X and Y survives the
      shuffle, so the null tests condition-specific correspondence.
    * ``kind="time"``: each condition of Y is circularly shifted in time by its
      own random shift in [1, time - 1], keeping Y's temporal smoothness but
      breaking its alignment with X.

    Parameters
    ----------
    metric : callable
        ``metric(X, Y) -> float``.
    X : ndarray, shape (conditions, time, units_x)
    Y : ndarray, shape (conditions, time, units_y)
    kind : {"condition", "time"}
    n : int
        Number of shuffles (>= 1).
    rng : numpy.random.Generator
    higher_is_more_similar : bool
        True for similarities (CCA, CKA, RSA), False for distances
        (:func:`~cortexsim.analysis.shape_distance`); sets the direction of the p value.

    Returns
    -------
    NullResult
        Observed value, null samples, their mean and SD, and the one-sided p
        value for "more similar than the null" (lower p = stronger evidence).
    """
    X, Y = _checks.paired(X, Y)
    if kind not in SHUFFLE_KINDS:
        raise ValueError(f"kind={kind!r} is not a shuffle; choose one of {', '.join(SHUFFLE_KINDS)}")
    if not isinstance(higher_is_more_similar, (bool, np.bool_)):
        raise ValueError(f"higher_is_more_similar must be True or False; got {higher_is_more_similar!r}")
    axis = 0 if kind == "condition" else 1
    if Y.shape[axis] < 2:
        raise ValueError(f"a {kind} shuffle needs at least 2 {kind}s; Y has {Y.shape[axis]}")
    n = _checks.positive_int(n, "n")
    rng = _check_rng(rng)
    observed = _evaluate(metric, X, Y, "observed")
    # the measures of .similarity are evaluated from factorisations taken once (row_shuffled: Y's,
    # its rows permuted per shuffle, equal to recomputing up to round-off; against: X's, bit for bit)
    permuted = similarity.row_shuffled(metric, X, Y)
    against = similarity.against(metric, X) if permuted is None else None
    flat = Y.reshape(-1, Y.shape[2])
    identity = np.arange(flat.shape[0])
    null = np.empty(n)
    for i in range(n):
        rows = _shuffled_rows(Y.shape, kind, rng)
        if permuted is not None and not np.array_equal(rows, identity):
            null[i] = _value(permuted(rows))
        else:  # the identity permutation is evaluated as the observed value was: equal to it exactly
            shuffled = flat[rows].reshape(Y.shape)
            null[i] = _evaluate(metric, X, shuffled, "shuffled") if against is None else _value(against(shuffled))
    as_similar = null >= observed if higher_is_more_similar else null <= observed
    return NullResult(
        observed=observed,
        null=null,
        mean=float(null.mean()),
        sd=float(null.std(ddof=1)) if n > 1 else 0.0,
        p_value=float((1 + np.count_nonzero(as_similar)) / (1 + n)),
        kind=kind,
        higher_is_more_similar=bool(higher_is_more_similar),
    )


def bootstrap_ci(
    metric: Metric,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    over: str = "units",
    n: int = 200,
    level: float = 0.95,
    rng: np.random.Generator,
) -> Interval:
    """Percentile bootstrap confidence interval of ``metric(X, Y)``.

    * ``over="units"``: units are resampled with replacement, independently
      for X and Y (each keeps its number of units). This describes how much
      the value depends on which units were recorded or simulated.
    * ``over="conditions"``: conditions are resampled with replacement, with
      the same draw for X and Y (conditions are paired).

    The interval is not bias-corrected: resampling units duplicates some of
    them, which lowers measures such as CKA, so the interval need not contain
    the observed value.

    Parameters
    ----------
    metric : callable
        ``metric(X, Y) -> float``.
    X : ndarray, shape (conditions, time, units_x)
    Y : ndarray, shape (conditions, time, units_y)
    over : {"units", "conditions"}
    n : int
        Number of bootstrap samples (>= 2).
    level : float
        Coverage, in (0, 1).
    rng : numpy.random.Generator

    Returns
    -------
    Interval
        ``(low, high)``, in the metric's units (its direction unchanged).
    """
    X, Y = _checks.paired(X, Y)
    if over not in BOOTSTRAP_OVER:
        raise ValueError(f"over={over!r} is not supported; choose one of {', '.join(BOOTSTRAP_OVER)}")
    n = _checks.positive_int(n, "n", low=2)
    level = _checks.unit_interval(level, "level", closed=False, hint=", e.g. 0.95")
    rng = _check_rng(rng)
    values = np.empty(n)
    for i in range(n):
        if over == "units":
            xb = X[..., rng.integers(0, X.shape[2], X.shape[2])]
            yb = Y[..., rng.integers(0, Y.shape[2], Y.shape[2])]
        else:
            pick = rng.integers(0, X.shape[0], X.shape[0])
            xb, yb = X[pick], Y[pick]
        values[i] = _evaluate(metric, xb, yb, "resampled")
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high))
