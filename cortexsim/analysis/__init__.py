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

Fixed and slow points (:mod:`.fixed_points`)
    ``find_fixed_points(step, x_init, *, jacobian=None, tol=1e-10, max_iter=200, dedup_tol=1e-3) -> FixedPoints``
    ``model.step_map(u) -> (step, Jacobian)``: every model owns its map (:mod:`cortexsim.model`);
    ``rate_map(net, u)`` and ``ann_map(model, u)`` are that, kept for earlier scripts
    ``sample_starts(states, n, rng, noise_std=0.0)``, ``mode_loadings(modes, groups) -> dict``
    ``speed_and_gradient(step, jacobian, X) -> (q, grad q)``

The closed loop as one map (:mod:`cortexsim.closed_loop_map`): circuit, six-muscle arm and delay lines
    a model on the arm owns it too: ``net.step_map(u)``, ``net.map_states(net.simulate(batch))``,
    ``net.map_layout()``; ``arm_loop_map(net, u)`` is ``net.step_map(u)``, kept for earlier scripts

Dynamical similarity (:mod:`.dsa`)
    ``dsa(x, y, *, n_delays=None, rank=None, rng=None) -> DSAResult``  (lower = more similar dynamics, radians)
    ``fit_operator(X, ...) -> DMDFit``, ``hankel(X, n_delays)``, ``procrustes_angle(A, B) -> (angle, C)``

Surrogates (:mod:`.surrogates`)
    ``tme_surrogates(x, n, rng, *, preserve=...) -> ndarray (n, conditions, time, units)``
    ``fit_tme(x) -> TMEModel``, ``tme_mean(x)``, ``marginal_covariances(x)``, ``shuffle_surrogates(x, n, rng)``
    ``surrogate_p_value(statistic, x, n, rng, *, method="tme", greater=True) -> SurrogateTest``
    ``cfr_surrogates(x, n, rng, *, readout="units")`` (Corrected Fisher Randomization),
    ``cmpt_surrogates(x, n, rng)`` (covariance-matched permutation), ``make_surrogates(x, n, rng, method=...)``

M1 hallmarks (:mod:`.tangling`, :mod:`.subspaces`)
    ``tangling(X, *, dt, epsilon=None, n_pcs=None) -> TanglingResult``  (higher = more tangled)
    ``communication_subspace(source, target, *, max_rank=None, n_folds=8, rng=None) -> CommunicationResult``
    ``reduced_rank_maps(X, Y, max_rank)``, ``ridge_map(X, Y)``

Calibration (:mod:`.calibration`)
    ``split_halves(trials, rng) -> (half_a, half_b)``, ``ceiling(metric, half_a, half_b) -> float``

Output-potent and output-null subspaces (:mod:`.output_null`, Kaufman et al. 2014)
    ``potent_null(rates, readout, prep, move) -> PotentNull``  (share of prep / movement variance the muscles read)
    ``potent_basis(readout) -> ndarray (units, rank)``

Statistics (:mod:`.nulls`)
    ``shuffle_null(metric, X, Y, *, kind="condition", n=100, rng, higher_is_more_similar) -> NullResult``
    ``bootstrap_ci(metric, X, Y, *, over="units", n=200, level=0.95, rng) -> Interval``
"""

from __future__ import annotations

from .calibration import ceiling, split_halves
from .decoding import DEFAULT_ALPHAS, DecodingResult, decode_kinematics
from .dsa import DMDFit, DSAResult, dsa, fit_operator, hankel, procrustes_angle
from .fixed_points import (
    FixedPoints,
    Jacobian,
    ann_map,
    arm_loop_map,
    find_fixed_points,
    mode_loadings,
    rate_map,
    sample_starts,
    speed_and_gradient,
)
from .jpca import JPCAResult, jpca
from .nulls import Interval, NullResult, bootstrap_ci, shuffle_null
from .output_null import PotentNull, potent_basis, potent_null
from .pca import PCAResult, participation_ratio, pca
from .similarity import cca_similarity, linear_cka, rdm, rsa, shape_distance
from .subspaces import CommunicationResult, communication_subspace, reduced_rank_maps, ridge_map
from .surrogates import (
    SURROGATE_METHODS,
    SurrogateTest,
    TMEModel,
    cfr_surrogates,
    cmpt_surrogates,
    fit_tme,
    make_surrogates,
    marginal_covariances,
    shuffle_surrogates,
    surrogate_p_value,
    tme_mean,
    tme_surrogates,
)
from .tangling import TanglingResult, tangling

__all__ = [
    "DEFAULT_ALPHAS",
    "SURROGATE_METHODS",
    "CommunicationResult",
    "DMDFit",
    "DSAResult",
    "DecodingResult",
    "FixedPoints",
    "Interval",
    "JPCAResult",
    "Jacobian",
    "NullResult",
    "PCAResult",
    "PotentNull",
    "SurrogateTest",
    "TMEModel",
    "TanglingResult",
    "ann_map",
    "bootstrap_ci",
    "cca_similarity",
    "ceiling",
    "cfr_surrogates",
    "cmpt_surrogates",
    "communication_subspace",
    "decode_kinematics",
    "dsa",
    "find_fixed_points",
    "fit_operator",
    "fit_tme",
    "hankel",
    "jpca",
    "linear_cka",
    "make_surrogates",
    "marginal_covariances",
    "mode_loadings",
    "participation_ratio",
    "pca",
    "potent_basis",
    "potent_null",
    "procrustes_angle",
    "rate_map",
    "arm_loop_map",
    "rdm",
    "reduced_rank_maps",
    "ridge_map",
    "rsa",
    "sample_starts",
    "shape_distance",
    "shuffle_null",
    "shuffle_surrogates",
    "speed_and_gradient",
    "split_halves",
    "surrogate_p_value",
    "tangling",
    "tme_mean",
    "tme_surrogates",
]
