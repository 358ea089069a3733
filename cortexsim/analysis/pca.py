"""Principal components and the participation ratio of population activity.

Both functions pool all conditions and time steps as samples: an input of shape
(conditions, time, units) is flattened to (conditions * time, units) and each
unit is centred on its mean over those samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks


@dataclass(frozen=True, eq=False)
class PCAResult:
    """Principal axes of activity pooled over conditions and time.

    Attributes
    ----------
    components : ndarray, shape (k, units)
        Orthonormal principal axes (rows), ordered by decreasing variance.
    explained_variance : ndarray, shape (k,)
        Variance along each axis, in the input's units squared (e.g. Hz^2),
        with the unbiased ``1 / (samples - 1)`` normalisation.
    explained_variance_ratio : ndarray, shape (k,)
        Fraction of the total variance (over all units) along each axis; higher
        means the axis carries more of the activity. Sums to 1 when ``k`` covers
        every nonzero direction.
    mean : ndarray, shape (units,)
        Mean activity of each unit over the pooled samples.
    """

    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray

    def project(self, X: np.ndarray) -> np.ndarray:
        """Coordinates of activity along the principal axes.

        Parameters
        ----------
        X : ndarray, shape (..., units)
            Activity in the same units as the data the PCA was fitted on.

        Returns
        -------
        ndarray, shape (..., k)
            ``(X - mean) @ components.T``.
        """
        X = np.asarray(X, dtype=float)
        if X.ndim < 1 or X.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"X must end in a units axis of length {self.mean.shape[0]} (the fitted data's); got shape {X.shape}"
            )
        return (X - self.mean) @ self.components.T

    def __repr__(self) -> str:
        k, n = self.components.shape
        top = float(np.sum(self.explained_variance_ratio))
        return f"<PCAResult: {k} of {n} units' axes, {100 * top:.1f}% of variance>"


def _pooled(X: np.ndarray) -> np.ndarray:
    """(conditions, time, units) or (samples, units) -> (samples, units), checked."""
    arr = np.asarray(X, dtype=float)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"X must be a 3-D array (conditions, time, units) or a 2-D array (samples, units); got shape {arr.shape}"
        )
    arr = _checks.activity(arr[None] if arr.ndim == 2 else arr, "X")
    return arr.reshape(-1, arr.shape[-1])


def pca(X: np.ndarray, n_components: int | None = None) -> PCAResult:
    """Principal component analysis of activity pooled over conditions and time.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units) or (samples, units)
        Activity (any unit, e.g. Hz). Conditions and time are pooled as samples; with a
        single sample the variances are NaN (undefined).
    n_components : int, optional
        Number of axes ``k`` to keep, 1 <= k <= min(samples, units). Default:
        min(samples, units).

    Returns
    -------
    PCAResult
        Axes, their variances and variance fractions (higher = more variance
        along that axis), the mean and a ``project`` method.
    """
    flat = _pooled(X)
    m, n = flat.shape
    limit = min(m, n)
    k = limit if n_components is None else _checks.positive_int(n_components, "n_components", high=limit)
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    variance = s**2 / (m - 1) if m > 1 else np.full(s.shape, np.nan)  # one sample: no variance to speak of
    total = variance.sum()
    ratio = variance / total if total > 0 else np.where(np.isnan(variance), np.nan, 0.0)
    return PCAResult(components=vt[:k], explained_variance=variance[:k], explained_variance_ratio=ratio[:k], mean=mean)


def participation_ratio(X: np.ndarray) -> float:
    """Participation ratio ``(sum lambda)^2 / sum lambda^2`` of the covariance eigenvalues.

    A linear measure of dimensionality: it equals ``k`` for activity spread
    equally over ``k`` orthogonal directions and lies in [1, units]. Higher
    means activity is spread over more dimensions (less low-dimensional).

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units) or (samples, units)
        Activity; conditions and time are pooled as samples.

    Returns
    -------
    float
        The participation ratio (dimensionless); NaN when X has one sample or no variance.
    """
    flat = _pooled(X)
    lam = np.linalg.svd(flat - flat.mean(axis=0), compute_uv=False) ** 2
    if flat.shape[0] < 2 or not lam.sum() > 0:
        return float("nan")  # one sample, or zero variance in every unit: no dimensions to count
    return float(lam.sum() ** 2 / np.sum(lam**2))
