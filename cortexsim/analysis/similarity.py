"""Similarity of two populations' activity on the same conditions and time steps.

All functions take ``X`` of shape (conditions, time, units_x) and ``Y`` of shape
(conditions, time, units_y): the two populations (a circuit layer and an ANN,
a model and a recording) must share conditions (same order) and time steps,
while their numbers of units may differ. Conditions and time are pooled as
samples unless stated otherwise.

Direction of each measure:

* :func:`cca_similarity`, :func:`linear_cka`, :func:`rsa` - **higher = more similar**
  (1 = identical up to the transform each ignores).
* :func:`shape_distance` - **lower = more similar** (0 = identical up to rotation
  and scale); it is a metric, in radians.
* :func:`rdm` - a dissimilarity matrix: higher entries = more different conditions.

Degenerate inputs -- a population with zero variance, a constant condition pattern, too few
conditions -- make a measure undefined: it is NaN, never an exception (wrong shapes still raise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from . import _checks

RDM_METRICS = ("correlation", "euclidean", "cosine")


def _orthonormal_scores(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and singular values of the centred samples, zero directions dropped.

    Returns
    -------
    U : ndarray, shape (samples, r)
    s : ndarray, shape (r,)
        ``r`` is 0 when X has zero variance in every unit (similarity to it is then undefined: NaN).
    """
    flat = _checks.samples(X)
    U, s, _ = np.linalg.svd(flat, full_matrices=False)
    keep = s > _checks.rank_tolerance(s, flat.shape)
    return U[:, keep], s[keep]


def cca_similarity(X: np.ndarray, Y: np.ndarray, k: int = 10) -> float:
    """Mean canonical correlation between the top-``k`` PCs of X and of Y.

    As in Sussillo et al. (2015, *Nat. Neurosci.* 18:1025): each population is
    reduced to its top ``k`` principal components (pooling conditions and
    time), then the ``k`` canonical correlations between the two reduced
    populations are averaged. **Higher = more similar**; 1 means the top-``k``
    subspaces are identical up to an invertible linear transform, 0 means they
    are uncorrelated.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units_x)
    Y : ndarray, shape (conditions, time, units_y)
        Activity of the two populations on the same conditions and time steps.
    k : int
        Number of PCs kept on each side. It is capped at the number of
        numerically nonzero PCs of either side (at most min(units, samples - 1)),
        so that rank-deficient inputs are not padded with arbitrary directions.

    Returns
    -------
    float
        Mean canonical correlation, in [0, 1]; NaN when an input has no variance.
    """
    X, Y = _checks.paired(X, Y)
    k = _checks.positive_int(k, "k")
    return _cca_of_scores(_orthonormal_scores(X)[0], _orthonormal_scores(Y)[0], k)


def _cca_of_scores(Ux: np.ndarray, Uy: np.ndarray, k: int) -> float:
    """:func:`cca_similarity` from the two sides' :func:`_orthonormal_scores`."""
    k = min(k, Ux.shape[1], Uy.shape[1])
    if k == 0:
        return float("nan")  # an input with zero variance in every unit: nothing to correlate
    # canonical correlations of two whitened (orthonormal) bases = singular values of their cross-product
    rho = np.linalg.svd(Ux[:, :k].T @ Uy[:, :k], compute_uv=False)
    return float(np.clip(rho, 0.0, 1.0).mean())


def _shape_embedding(X: np.ndarray, alpha: float) -> np.ndarray:
    """Centred, partially whitened, unit-norm representation used by :func:`shape_distance`.

    With the centred samples ``Xc = U S V^T`` and covariance ``C = Xc^T Xc / m``
    (scaled so its mean eigenvalue over units is 1), the partially whitened data
    ``Xc (alpha I + (1 - alpha) C)^(-1/2)`` equals ``U diag(w) V^T`` with
    ``w = s / sqrt(alpha + (1 - alpha) lambda)``. ``V^T`` is a rotation, which
    the metric ignores, so ``U diag(w)`` is returned (normalised to unit
    Frobenius norm). Directions of zero variance are dropped (a pseudo-inverse).
    """
    U, s = _orthonormal_scores(X)
    m, n_units = X.shape[0] * X.shape[1], X.shape[2]
    lam = s**2 / m
    if not lam.sum() > 0:  # zero variance (or so little that its square underflows): no shape to compare
        return np.full((m, 1), np.nan)
    scale = n_units / lam.sum()
    w = np.sqrt(scale) * s / np.sqrt(alpha + (1.0 - alpha) * scale * lam)
    phi = U * w
    return phi / np.linalg.norm(phi)


def shape_distance(X: np.ndarray, Y: np.ndarray, alpha: float = 1.0) -> float:
    """Angular generalized shape metric (Williams et al. 2021, NeurIPS).

    Each population is centred (over conditions x time), scaled to a mean
    variance of 1 per unit, partially whitened with
    ``(alpha I + (1 - alpha) C)^(-1/2)`` (``C`` its covariance) and normalised
    to unit Frobenius norm, giving ``phi(X)``. The distance is the angle

        ``d = arccos(|| phi(X)^T phi(Y) ||_*)``

    (``||.||_*`` the nuclear norm), i.e. the smallest angle between ``phi(X)``
    and any rotation of ``phi(Y)``. **Lower = more similar**: 0 means identical
    up to rotation and isotropic scaling (alpha = 1) or up to any invertible
    linear transform (alpha = 0); pi/2 is the maximum.

    * ``alpha = 1``: rotation-invariant angular Procrustes distance.
    * ``alpha = 0``: fully whitened, CCA-like: ``cos d`` is the sum of all
      canonical correlations divided by sqrt(rank_x * rank_y). It is 0 for any
      two inputs of rank samples - 1 (units >= conditions x time - 1), so
      reduce such inputs with PCA first.

    When ``units_x != units_y`` the smaller side is, in effect, padded with
    silent (all-zero) units: the nuclear norm of the rectangular
    ``units_x x units_y`` cross-product equals that of the padded square one,
    so no padding is materialised. For every alpha in [0, 1] the distance is a
    metric on activity modulo rotation (symmetric, triangle inequality).

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units_x)
    Y : ndarray, shape (conditions, time, units_y)
        Activity of the two populations on the same conditions and time steps.
    alpha : float
        Regularisation of the whitening, in [0, 1].

    Returns
    -------
    float
        Angular distance in radians, in [0, pi/2]; NaN when an input has no variance.
    """
    X, Y = _checks.paired(X, Y)
    alpha = _checks.unit_interval(alpha, "alpha", closed=True, hint=" (1 = Procrustes, 0 = CCA-like)")
    return _shape_of_embeddings(_shape_embedding(X, alpha), _shape_embedding(Y, alpha))


def _shape_of_embeddings(phi_x: np.ndarray, phi_y: np.ndarray) -> float:
    """:func:`shape_distance` from the two sides' :func:`_shape_embedding`."""
    if np.isnan(phi_x).any() or np.isnan(phi_y).any():
        return float("nan")  # an input with zero variance in every unit
    cos = np.linalg.svd(phi_x.T @ phi_y, compute_uv=False)
    return float(np.arccos(np.clip(cos.sum(), -1.0, 1.0)))


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019, ICML).

    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` on the centred
    samples (conditions x time). **Higher = more similar**: 1 means identical up
    to rotation and isotropic scaling, 0 means the two populations' activity
    is uncorrelated.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units_x)
    Y : ndarray, shape (conditions, time, units_y)
        Activity of the two populations on the same conditions and time steps.

    Returns
    -------
    float
        CKA, in [0, 1]; NaN when an input has no variance.
    """
    X, Y = _checks.paired(X, Y)
    Xc, Yc = _checks.samples(X), _checks.samples(Y)
    # work with whichever Gram matrices are smaller: (samples x samples) or (units x units)
    if Xc.shape[0] < max(Xc.shape[1], Yc.shape[1]):
        Kx, Ky = Xc @ Xc.T, Yc @ Yc.T
        cross, nx, ny = np.sum(Kx * Ky), np.linalg.norm(Kx), np.linalg.norm(Ky)
    else:
        cross = np.linalg.norm(Yc.T @ Xc) ** 2
        nx, ny = np.linalg.norm(Xc.T @ Xc), np.linalg.norm(Yc.T @ Yc)
    if nx == 0 or ny == 0:
        return float("nan")  # an input with zero variance in every unit: CKA is 0 / 0
    return float(np.clip(cross / (nx * ny), 0.0, 1.0))


def rdm(X: np.ndarray, metric: str = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix between conditions.

    Each condition's activity is flattened over time x units into one pattern;
    the entry (i, j) is the dissimilarity of patterns i and j. **Higher = more
    different** conditions; the diagonal is 0.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units)
        Activity (one condition gives the 1 x 1 matrix [[0]]).
    metric : {"correlation", "euclidean", "cosine"}
        ``"correlation"``: 1 - Pearson r (in [0, 2]); ``"euclidean"``: distance
        in the input's units; ``"cosine"``: 1 - cosine similarity.

    Returns
    -------
    ndarray, shape (conditions, conditions)
        Symmetric dissimilarities; the row and column of a constant (or zero) pattern are NaN
        (off the diagonal) for the correlation and cosine metrics, which are undefined for it.
    """
    X = _checks.activity(X, "X")
    if metric not in RDM_METRICS:
        raise ValueError(f"metric={metric!r} is not supported; choose one of {', '.join(RDM_METRICS)}")
    patterns = X.reshape(X.shape[0], -1)
    if X.shape[0] < 2:
        return np.zeros((1, 1))  # one condition: nothing to be dissimilar to
    flat = np.zeros(X.shape[0], dtype=bool)
    if metric in ("correlation", "cosine"):
        centred = patterns - patterns.mean(axis=1, keepdims=True) if metric == "correlation" else patterns
        flat = np.linalg.norm(centred, axis=1) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = squareform(pdist(patterns, metric=metric), checks=False)
    out[flat, :] = np.nan  # a constant (or zero) pattern has no correlation or cosine distance
    out[:, flat] = np.nan
    np.fill_diagonal(out, 0.0)
    return out


def rsa(X: np.ndarray, Y: np.ndarray, metric: str = "correlation") -> float:
    """Representational similarity: Spearman correlation of the two RDMs' upper triangles.

    **Higher = more similar**: 1 means the two populations order all pairs of
    conditions by dissimilarity in the same way; 0 means unrelated geometry.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units_x)
    Y : ndarray, shape (conditions, time, units_y)
        Activity on the same conditions (same order) and time steps; at least 3
        conditions.
    metric : str
        Dissimilarity used for both RDMs (see :func:`rdm`).

    Returns
    -------
    float
        Spearman rho, in [-1, 1]; NaN with fewer than 3 conditions or an undefined or flat RDM.
    """
    X, Y = _checks.paired(X, Y)
    if metric not in RDM_METRICS:
        raise ValueError(f"metric={metric!r} is not supported; choose one of {', '.join(RDM_METRICS)}")
    if X.shape[0] < 3:
        return float("nan")  # fewer than 2 RDM entries: nothing to rank
    upper = np.triu_indices(X.shape[0], k=1)
    return _rsa_of_entries(rdm(X, metric)[upper], rdm(Y, metric)[upper])


def _rsa_of_entries(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`rsa` from the upper triangles of the two RDMs."""
    if np.isnan(a).any() or np.isnan(b).any() or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # an undefined or flat RDM: its rank correlation is undefined
    return float(spearmanr(a, b).statistic)


# -- one side fixed: what a null or a surrogate test recomputes only for the other side -------------------------------
def _known(metric: Callable[..., float]) -> tuple[Callable[..., float], dict] | None:
    """``metric`` as (one of this module's measures, its keyword arguments), or None for any other callable."""
    kwargs: dict = {}
    if isinstance(metric, functools.partial) and not metric.args:
        metric, kwargs = metric.func, dict(metric.keywords)
    if metric in (cca_similarity, shape_distance, linear_cka, rsa):
        return metric, kwargs
    return None


def against(metric: Callable[..., float], X: np.ndarray) -> Callable[[np.ndarray], float] | None:
    """``Y -> metric(X, Y)`` with X's side (scores, embedding, RDM) computed once, or None.

    For :func:`cca_similarity`, :func:`shape_distance`, :func:`linear_cka` and :func:`rsa` (also as a
    ``functools.partial`` with keyword arguments) the function does the same arithmetic as ``metric(X, Y)``
    and returns the same number, bit for bit, and raises the same errors for a bad ``Y``. None for any
    other metric, or when ``X`` or the keyword arguments are invalid (calling ``metric`` says why).
    """
    known = _known(metric)
    if known is None:
        return None
    fn, kwargs = known
    try:
        X = _checks.activity(X, "X")
        if fn is cca_similarity and set(kwargs) <= {"k"}:
            k = _checks.positive_int(kwargs.get("k", 10), "k")
            Ux = _orthonormal_scores(X)[0]
            return lambda Y: _cca_of_scores(Ux, _orthonormal_scores(_checks.paired(X, Y)[1])[0], k)
        if fn is shape_distance and set(kwargs) <= {"alpha"}:
            alpha = _checks.unit_interval(kwargs.get("alpha", 1.0), "alpha", closed=True)
            phi_x = _shape_embedding(X, alpha)
            return lambda Y: _shape_of_embeddings(phi_x, _shape_embedding(_checks.paired(X, Y)[1], alpha))
        if fn is rsa and set(kwargs) <= {"metric"} and kwargs.get("metric", "correlation") in RDM_METRICS:
            kind = kwargs.get("metric", "correlation")
            if X.shape[0] < 3:
                return None
            upper = np.triu_indices(X.shape[0], k=1)
            a = rdm(X, kind)[upper]
            return lambda Y: _rsa_of_entries(a, rdm(_checks.paired(X, Y)[1], kind)[upper])
    except ValueError:
        return None
    return None  # linear_cka: nothing worth keeping


def row_shuffled(metric: Callable[..., float], X: np.ndarray, Y: np.ndarray) -> Callable[[np.ndarray], float] | None:
    """``rows -> metric(X, Y')`` where ``Y'`` holds Y's samples (conditions x time, flattened) in the order ``rows``.

    A reordering of the samples permutes the rows of Y's left singular vectors and leaves its singular
    values alone, so :func:`cca_similarity` and :func:`shape_distance` of a shuffled Y need only Y's
    factorisation, taken once: the value equals ``metric(X, Y')`` up to round-off (the factorisation
    of ``Y'`` itself would differ from the permuted one in its last bits). None for other metrics
    (or invalid arguments: calling ``metric`` says why).
    """
    known = _known(metric)
    if known is None:
        return None
    fn, kwargs = known
    try:
        X, Y = _checks.paired(X, Y)
        if fn is cca_similarity and set(kwargs) <= {"k"}:
            k = _checks.positive_int(kwargs.get("k", 10), "k")
            Ux, Uy = _orthonormal_scores(X)[0], _orthonormal_scores(Y)[0]
            k = min(k, Ux.shape[1], Uy.shape[1])
            if k == 0:
                return None
            ux, uy = np.ascontiguousarray(Ux[:, :k].T), np.ascontiguousarray(Uy[:, :k])
            return lambda rows: float(np.clip(np.linalg.svd(ux @ uy[rows], compute_uv=False), 0.0, 1.0).mean())
        if fn is shape_distance and set(kwargs) <= {"alpha"}:
            alpha = _checks.unit_interval(kwargs.get("alpha", 1.0), "alpha", closed=True)
            phi_x, phi_y = _shape_embedding(X, alpha), _shape_embedding(Y, alpha)
            if np.isnan(phi_x).any() or np.isnan(phi_y).any():
                return None
            px = np.ascontiguousarray(phi_x.T)
            return lambda rows: float(
                np.arccos(np.clip(np.linalg.svd(px @ phi_y[rows], compute_uv=False).sum(), -1.0, 1.0))
            )
    except ValueError:
        return None
    return None
