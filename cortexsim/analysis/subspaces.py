"""Communication subspaces between populations (Semedo et al. 2019, *Neuron* 102:249).

Semedo, Zandvakili, Machens, Yu & Kohn, "Cortical areas interact through a communication subspace".

How many dimensions of a source population's activity does a target population's activity
depend on? Semedo et al. predict the target from the source with reduced-rank regression (RRR)
and call the smallest rank that predicts as well as the full model the *dimensionality of the
interaction*; when it is smaller than the target's own dimensionality, the populations talk
through a communication subspace. What this module implements, step by step:

1. Samples are the (condition, time) points of activity arrays of shape (conditions, time, units)
   (Semedo et al. used single trials; condition averages or trials both fit the same shape).
2. Cross-validation folds are whole conditions (``n_folds`` groups of conditions), so the map is
   judged on conditions it has not seen; each fold centres source and target on its training means.
3. On the training samples, ridge regression ``B = (X^T X + alpha I)^-1 X^T Y`` (``alpha`` is
   ``ridge`` times the mean eigenvalue of ``X^T X``, a small regulariser for collinear units;
   Semedo et al. used ordinary least squares), then RRR of rank r:
   ``B_r = B V_r V_r^T`` with ``V_r`` the top r right singular vectors of the fitted values
   ``X B`` (Izenman 1975; Semedo et al., STAR Methods).
4. Performance of rank r on a held-out fold: ``1 - ||Y - X B_r||^2 / ||Y - mean_train(Y)||^2``
   (1 - normalised squared error), pooled over folds as a mean, with its standard error over folds.
5. The dimensionality is the smallest rank whose mean performance is within one standard error
   of the best rank's (Semedo et al.'s rule).

The known answer: a target that is a rank-2 linear map of the source plus noise uses 2 dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks

DEFAULT_RIDGE = 1e-3
"""Ridge regulariser, as a fraction of the mean eigenvalue of the source's covariance."""


@dataclass(frozen=True, eq=False)
class CommunicationResult:
    """Outcome of :func:`communication_subspace`.

    Attributes
    ----------
    dimensions : int
        Smallest rank within one standard error of the best (0 when no rank predicts above 0).
    performance : ndarray, shape (max_rank,)
        Cross-validated ``1 - NSE`` of ranks 1 .. max_rank (higher = better prediction; 1 = perfect).
    sem : ndarray, shape (max_rank,)
        Standard error of ``performance`` over folds.
    full_performance : float
        ``performance`` of the full-rank (ridge) map.
    n_folds : int
        Folds used (groups of conditions).
    """

    dimensions: int
    performance: np.ndarray
    sem: np.ndarray
    full_performance: float
    n_folds: int

    def __repr__(self) -> str:
        return (
            f"<CommunicationResult: {self.dimensions} dimension(s), full-rank performance "
            f"{self.full_performance:.3f}, {self.n_folds} folds>"
        )


def ridge_map(X: np.ndarray, Y: np.ndarray, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Ridge regression coefficients of centred ``Y`` (samples, q) on centred ``X`` (samples, p): shape (p, q)."""
    gram = X.T @ X
    alpha = ridge * float(np.trace(gram)) / max(1, gram.shape[0])
    return np.linalg.solve(gram + alpha * np.eye(gram.shape[0]), X.T @ Y)


def reduced_rank_maps(X: np.ndarray, Y: np.ndarray, max_rank: int, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Reduced-rank regression maps of ranks 1 .. max_rank (step 3 of the module docstring).

    Parameters
    ----------
    X : ndarray, shape (samples, p)
        Centred source.
    Y : ndarray, shape (samples, q)
        Centred target.
    max_rank : int
    ridge : float

    Returns
    -------
    ndarray, shape (max_rank, p, q)
        ``B_r`` for r = 1 .. max_rank.
    """
    B = ridge_map(X, Y, ridge)
    V = np.linalg.svd(X @ B, full_matrices=False)[2].T  # (q, min(samples, q))
    out = np.zeros((max_rank, *B.shape))
    for r in range(1, max_rank + 1):
        Vr = V[:, :r]
        out[r - 1] = B @ Vr @ Vr.T
    return out


def _folds(n_conditions: int, n_folds: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = np.arange(n_conditions) if rng is None else rng.permutation(n_conditions)
    return [np.sort(f) for f in np.array_split(order, n_folds)]


def communication_subspace(
    source: np.ndarray,
    target: np.ndarray,
    *,
    max_rank: int | None = None,
    n_folds: int = 8,
    ridge: float = DEFAULT_RIDGE,
    rng: np.random.Generator | None = None,
) -> CommunicationResult:
    """How many dimensions of ``source`` predict ``target`` (Semedo et al. 2019; see the module docstring).

    Parameters
    ----------
    source : ndarray, shape (conditions, time, units_source)
    target : ndarray, shape (conditions, time, units_target)
        The same conditions and time steps.
    max_rank : int, optional
        Largest rank tried (default ``min(units_source, units_target, 20)``).
    n_folds : int
        Folds over conditions (at most the number of conditions; at least 2).
    ridge : float
        See :data:`DEFAULT_RIDGE`.
    rng : numpy.random.Generator, optional
        Shuffles the conditions before they are split into folds (default: in order).

    Returns
    -------
    CommunicationResult
    """
    X, Y = _checks.paired(source, target)
    c = X.shape[0]
    if c < 2:
        raise ValueError(f"cross-validation over conditions needs at least 2 conditions; got {c}")
    n_folds = min(_checks.positive_int(n_folds, "n_folds", low=2), c)
    limit = min(X.shape[2], Y.shape[2], 20) if max_rank is None else max_rank
    max_rank = _checks.positive_int(limit, "max_rank", high=min(X.shape[2], Y.shape[2]))
    ridge = float(ridge)
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0; got {ridge!r}")
    scores = np.empty((n_folds, max_rank))
    full = np.empty(n_folds)
    for i, test in enumerate(_folds(c, n_folds, rng)):
        train = np.setdiff1d(np.arange(c), test)
        xtr, ytr = X[train].reshape(-1, X.shape[2]), Y[train].reshape(-1, Y.shape[2])
        mx, my = xtr.mean(axis=0), ytr.mean(axis=0)
        xte, yte = X[test].reshape(-1, X.shape[2]) - mx, Y[test].reshape(-1, Y.shape[2]) - my
        total = float(np.sum(yte**2))
        if total <= 0:
            raise ValueError("the target does not vary on a held-out fold; nothing to predict")
        maps = reduced_rank_maps(xtr - mx, ytr - my, max_rank, ridge)
        for r in range(max_rank):
            scores[i, r] = 1.0 - float(np.sum((yte - xte @ maps[r]) ** 2)) / total
        full[i] = 1.0 - float(np.sum((yte - xte @ ridge_map(xtr - mx, ytr - my, ridge)) ** 2)) / total
    perf = scores.mean(axis=0)
    sem = scores.std(axis=0, ddof=1) / np.sqrt(n_folds)
    best = int(np.argmax(perf))
    if perf[best] <= 0:
        dims = 0
    else:
        dims = int(np.flatnonzero(perf >= perf[best] - sem[best])[0]) + 1
    return CommunicationResult(
        dimensions=dims, performance=perf, sem=sem, full_performance=float(full.mean()), n_folds=n_folds
    )
