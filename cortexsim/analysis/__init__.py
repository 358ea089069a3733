"""Population-dynamics analysis: pure functions of activity arrays (no I/O, no plotting).

Activity is (conditions, time, units) throughout (trials may stand in for
conditions). Each function states whether higher means more similar or more
of the property.

Dimensionality (:mod:`.pca`)
    ``pca(X, n_components=None) -> PCAResult``
    ``participation_ratio(X) -> float``  (higher = more dimensions)

Similarity of two populations (:mod:`.similarity`)
    ``cca_similarity(X, Y, k=10) -> float``  (higher = more similar, in [0, 1])
    ``shape_distance(X, Y, alpha=1.0) -> float``  (lower = more similar, radians)
    ``linear_cka(X, Y) -> float``  (higher = more similar, in [0, 1])
    ``rdm(X, metric="correlation") -> ndarray``  (higher = more different conditions)
    ``rsa(X, Y, metric="correlation") -> float``  (higher = more similar)

Rotational dynamics (:mod:`.jpca`)
    ``jpca(X, *, dt, n_pcs=6, soft_normalize=True, subtract_mean=True, window=None) -> JPCAResult``

Decoding (:mod:`.decoding`)
    ``decode_kinematics(X, positions, *, dt, n_folds=5, alphas=..., rng=None) -> DecodingResult``

Statistics (:mod:`.nulls`)
    ``shuffle_null(metric, X, Y, *, kind="condition", n=100, rng, higher_is_more_similar) -> NullResult``
    ``bootstrap_ci(metric, X, Y, *, over="units", n=200, level=0.95, rng) -> Interval``
"""

from __future__ import annotations

from .decoding import DEFAULT_ALPHAS, DecodingResult, decode_kinematics
from .jpca import JPCAResult, jpca
from .nulls import Interval, NullResult, bootstrap_ci, shuffle_null
from .pca import PCAResult, participation_ratio, pca
from .similarity import cca_similarity, linear_cka, rdm, rsa, shape_distance

__all__ = [
    "DEFAULT_ALPHAS",
    "DecodingResult",
    "Interval",
    "JPCAResult",
    "NullResult",
    "PCAResult",
    "bootstrap_ci",
    "cca_similarity",
    "decode_kinematics",
    "jpca",
    "linear_cka",
    "participation_ratio",
    "pca",
    "rdm",
    "rsa",
    "shape_distance",
    "shuffle_null",
]
