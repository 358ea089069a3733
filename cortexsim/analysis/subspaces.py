"""Communication subspaces between populations (Semedo et al. 2019, *Neuron* 102:249).

Semedo, Zandvakili, Machens, Yu & Kohn, "Cortical areas interact through a communication subspace".

How many dimensions of a source population's activity does a target population's activity
depend on? Semedo et al. predict the target from the source with reduced-rank regression (RRR)
and call the smallest rank that predicts as well as the full model the *dimensionality of the
interaction*; when it is smaller than the target's own dimensionality, the populations talk
through a communication subspace. What this module implements, step by step:

1. Samples are the (trial or condition, time) points of activity arrays of shape
   (trials or conditions, time, units).
2. **Single trials** (``conditions`` given, Semedo et al.'s analysis): each trial's activity minus
   the mean over the trials of its condition at each time step -- the *residuals*, the
   trial-to-trial fluctuations around the condition's mean response. What the two populations
   share because the task drives both (the condition means) is removed, so what remains is
   predicted only through their interaction. Folds are groups of whole trials.
   **Condition averages** (``conditions`` omitted): the samples are the averages themselves and the
   folds are groups of conditions. On smooth, noise-free averages every rank keeps predicting a
   little more of a held-out condition and the folds agree closely (tiny standard errors), so the
   count tends to the target's signal dimensionality -- inflated as a communication measure
   (7--17 dimensions on the default run's layers, 8 conditions); the battery uses residuals.
3. Each fold centres source and target on its training means. On the training samples, ridge
   regression ``B = (X^T X + alpha I)^-1 X^T Y`` (``alpha`` is ``ridge`` times the mean
   eigenvalue of ``X^T X``, a small regulariser for collinear units; Semedo et al. used ordinary
   least squares), then RRR of rank r: ``B_r = B V_r V_r^T`` with ``V_r`` the top r right
   singular vectors of the fitted values ``X B`` (Izenman 1975; Semedo et al., STAR Methods).
4. Performance of rank r on a held-out fold: ``1 - ||Y - X B_r||^2 / ||Y - mean_train(Y)||^2``
   (1 - normalised squared error), pooled over folds as a mean, with its standard error over folds.
5. The dimensionality is the smallest rank whose mean performance is within one standard error
   of the best rank's (Semedo et al.'s rule), rank 0 -- predicting the training mean, performance
   0 -- included: 0 dimensions when the best rank is not more than one standard error above 0 (no
   detectable communication; on the default circuit's residuals, e.g. L6 -> L4).

Known answers (tests/test_hallmarks.py): a target that is a rank-2 linear map of the source's
fluctuations plus noise uses 2 dimensions, with 4 conditions whose means drive both populations
in 10 shared dimensions; populations whose fluctuations are independent use 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        Smallest rank within one standard error of the best, rank 0 included (0 when the best is not
        more than one standard error above 0).
    performance : ndarray, shape (max_rank,)
        Cross-validated ``1 - NSE`` of ranks 1 .. max_rank (higher = better prediction; 1 = perfect).
    sem : ndarray, shape (max_rank,)
        Standard error of ``performance`` over folds.
    full_performance : float
        ``performance`` of the full-rank (ridge) map.
    n_folds : int
        Folds used (groups of trials, or of conditions).
    undefined : str
        Why the subspace is undefined (the target does not vary on a held-out fold, a single
        trial or condition), ``performance`` and ``sem`` then NaN and ``dimensions`` 0; empty when defined.
    """

    dimensions: int
    performance: np.ndarray
    sem: np.ndarray
    full_performance: float
    n_folds: int
    undefined: str = ""

    def __repr__(self) -> str:
        return (
            f"<CommunicationResult: {self.dimensions} dimension(s), full-rank performance "
            f"{self.full_performance:.3f}, {self.n_folds} folds>"
        )


def ridge_map(X: np.ndarray, Y: np.ndarray, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Ridge regression coefficients of centred ``Y`` (samples, q) on centred ``X`` (samples, p): shape (p, q)."""
    gram = X.T @ X
    alpha = ridge * float(np.trace(gram)) / max(1, gram.shape[0])
    a, b = gram + alpha * np.eye(gram.shape[0]), X.T @ Y
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        # a source without variance (or ridge 0 on a rank-deficient one) maps by the minimum-norm solution
        # (zero along the silent directions) instead of raising "singular matrix"; solve first, so that
        # every regular case keeps its numbers to the last bit
        return np.linalg.lstsq(a, b, rcond=None)[0]


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


def _fold_scores(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, max_rank: int, ridge: float
) -> tuple[np.ndarray, float]:
    """Held-out ``1 - NSE`` of ranks 1 .. max_rank and of the full ridge map, for one fold (steps 3-4).

    What :func:`reduced_rank_maps` and a prediction per rank give, computed without forming the
    fitted values or a map per rank: the fitted values' right singular vectors ``V`` are the
    eigenvectors of ``B^T (X^T X) B`` (q x q, from the Gram matrix the ridge map needs anyway), and
    with ``P = X_test B`` and orthonormal ``V`` the rank-r error is
    ``||Y||^2 - sum_{k<=r} (2 (Y v_k).(P v_k) - ||P v_k||^2)`` -- every rank in one cumulative sum.

    Parameters
    ----------
    xtr, ytr : ndarray, shape (samples, p), (samples, q)
        The fold's training source and target, centred on their means.
    xte, yte : ndarray, shape (test samples, p), (test samples, q)
        The held-out samples, centred on the training means.
    max_rank : int
    ridge : float

    Returns
    -------
    scores : ndarray, shape (max_rank,)
    full : float
    """
    gram = xtr.T @ xtr
    alpha = ridge * float(np.trace(gram)) / max(1, gram.shape[0])
    a, b = gram + alpha * np.eye(gram.shape[0]), xtr.T @ ytr
    try:
        B = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:  # as ridge_map: the minimum-norm map of a source without variance
        B = np.linalg.lstsq(a, b, rcond=None)[0]
    fitted = B.T @ gram @ B  # (q, q): the fitted values' second moment
    w, V = np.linalg.eigh(0.5 * (fitted + fitted.T))
    V = V[:, np.argsort(-w, kind="stable")[:max_rank]]
    P = xte @ B
    total = float(np.sum(yte**2))
    full = 1.0 - float(np.sum((yte - P) ** 2)) / total
    PV, YV = P @ V, yte @ V
    explained = np.cumsum(2.0 * np.sum(YV * PV, axis=0) - np.sum(PV**2, axis=0))
    return explained / total, full


def _folds(n_conditions: int, n_folds: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = np.arange(n_conditions) if rng is None else rng.permutation(n_conditions)
    return [np.sort(f) for f in np.array_split(order, n_folds)]


def _residuals(X: np.ndarray, Y: np.ndarray, conditions: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each trial minus the mean of its condition's trials (step 2); checks the labels."""
    labels = np.asarray(conditions)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"conditions must give one label per trial (shape ({X.shape[0]},)); got shape {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if np.any(counts < 2):
        raise ValueError("every condition needs at least 2 trials to form residuals around its mean")
    out = []
    for A in (X, Y):
        means = np.zeros((counts.size, *A.shape[1:]))
        np.add.at(means, inverse, A)
        out.append(A - (means / counts[:, None, None])[inverse])
    return out[0], out[1]


def communication_subspace(
    source: np.ndarray,
    target: np.ndarray,
    *,
    conditions: Any = None,
    max_rank: int | None = None,
    n_folds: int | None = None,
    ridge: float = DEFAULT_RIDGE,
    rng: np.random.Generator | None = None,
) -> CommunicationResult:
    """How many dimensions of ``source`` predict ``target`` (Semedo et al. 2019; see the module docstring).

    Parameters
    ----------
    source : ndarray, shape (trials or conditions, time, units_source)
    target : ndarray, shape (trials or conditions, time, units_target)
        The same trials (or conditions) and time steps.
    conditions : array-like, shape (trials,), optional
        The condition of each trial: the analysis then runs on the residuals around each
        condition's mean, with folds over trials (Semedo et al.). Omitted: ``source`` and
        ``target`` are condition averages and the folds are over conditions.
    max_rank : int, optional
        Largest rank tried (default ``min(units_source, units_target, 20)``).
    n_folds : int, optional
        Cross-validation folds (at least 2, at most the trials or conditions; default 10 over trials,
        8 over conditions).
    ridge : float
        See :data:`DEFAULT_RIDGE`.
    rng : numpy.random.Generator, optional
        Shuffles the trials (conditions) before they are split into folds (default: in order).

    Returns
    -------
    CommunicationResult
    """
    X, Y = _checks.paired(source, target)
    if conditions is not None:
        X, Y = _residuals(X, Y, conditions)
    c = X.shape[0]
    default_folds = 10 if conditions is not None else 8
    n_folds = min(_checks.positive_int(default_folds if n_folds is None else n_folds, "n_folds", low=2), c)
    limit = min(X.shape[2], Y.shape[2], 20) if max_rank is None else max_rank
    max_rank = _checks.positive_int(limit, "max_rank", high=min(X.shape[2], Y.shape[2]))
    ridge = float(ridge)
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0; got {ridge!r}")

    def undefined(reason: str) -> CommunicationResult:
        nan = np.full(max_rank, np.nan)
        return CommunicationResult(0, nan, nan.copy(), float("nan"), n_folds, undefined=reason)

    if c < 2:
        return undefined(f"cross-validation needs at least 2 trials or conditions; got {c}")
    scores = np.empty((n_folds, max_rank))
    full = np.empty(n_folds)
    for i, test in enumerate(_folds(c, n_folds, rng)):
        train = np.setdiff1d(np.arange(c), test)
        xtr, ytr = X[train].reshape(-1, X.shape[2]), Y[train].reshape(-1, Y.shape[2])
        mx, my = xtr.mean(axis=0), ytr.mean(axis=0)
        xte, yte = X[test].reshape(-1, X.shape[2]) - mx, Y[test].reshape(-1, Y.shape[2]) - my
        total = float(np.sum(yte**2))
        if not total > 0:
            return undefined("the target does not vary on a held-out fold; nothing to predict")
        scores[i], full[i] = _fold_scores(xtr - mx, ytr - my, xte, yte, max_rank, ridge)
    perf = scores.mean(axis=0)
    sem = scores.std(axis=0, ddof=1) / np.sqrt(n_folds)
    best = int(np.argmax(perf))
    if perf[best] - sem[best] <= 0:  # rank 0 (the training mean, performance 0) is within one SEM of the peak
        dims = 0
    else:
        dims = int(np.flatnonzero(perf >= perf[best] - sem[best])[0]) + 1
    return CommunicationResult(
        dimensions=dims, performance=perf, sem=sem, full_performance=float(full.mean()), n_folds=n_folds
    )
