"""The battery's measures of one pair or one activity, as pure functions of arrays.

PCs (:func:`reduce_to_pcs`), similarity with condition- and time-shuffle nulls (:func:`compare_pair`),
jPCA around movement onset (:func:`jpca_row`) with its surrogate nulls (:func:`jpca_null_columns`), DSA
(:func:`dsa_distance`), the surrogate p-values of a pair (:func:`surrogate_columns`), tangling
(:func:`tangling_row`), and how far a lesion moves a circuit (:func:`lesion_dsa`, :func:`lesion_similarity`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .. import analysis
from ..analysis.similarity import against
from ..model_id import of_activity
from ..store import Activity, Row
from .onsets import JPCA_WINDOW, aligned_window, alignment_of, onset_shift_ms


def reduce_to_pcs(x: np.ndarray, n_pcs: int) -> np.ndarray:
    """Project activity onto its top principal components.

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
    n_pcs : int
        Components kept (fewer if there are fewer units or samples).

    Returns
    -------
    ndarray, shape (conditions, time, min(n_pcs, units, conditions * time))
    """
    k = min(n_pcs, x.shape[2], x.shape[0] * x.shape[1])
    return analysis.pca(x, n_components=k).project(x)


def _metrics(k: int) -> dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]]:
    """Similarity measures by column name: (function, higher_is_more_similar)."""
    return {
        "cca": (functools.partial(analysis.cca_similarity, k=k), True),
        "shape_distance": (analysis.shape_distance, False),
        "cka": (analysis.linear_cka, True),
        "rsa": (analysis.rsa, True),
    }


def compare_pair(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_null: int) -> dict[str, float]:
    """All similarity measures of two reduced activities, with condition- and time-shuffle nulls.

    Parameters
    ----------
    a, b : ndarray, shape (conditions, time, pcs)
        Reduced activities (:func:`reduce_to_pcs`) on the same conditions and time grid.
    rng : numpy.random.Generator
        For the shuffles.
    n_null : int
        Shuffles per measure (0: no nulls; nulls also need more than two conditions).

    Returns
    -------
    dict
        ``cca``, ``shape_distance``, ``cka``, ``rsa`` and, with nulls, ``<measure>_null``, ``cca_p``,
        ``cca_null_time``.  A measure that is undefined for the pair (e.g. RSA of a flat
        dissimilarity matrix) is NaN, and so is its null.
    """
    row: dict[str, float] = {}
    nulls: dict[str, float] = {}
    for key, (fn, higher) in _metrics(min(a.shape[2], b.shape[2])).items():
        try:
            row[key] = float(fn(a, b))
            if n_null and a.shape[0] > 2:
                res = analysis.shuffle_null(
                    fn, a, b, kind="condition", n=n_null, rng=rng, higher_is_more_similar=higher
                )
                nulls[f"{key}_null"] = float(res.mean)
                if key == "cca":
                    nulls["cca_p"] = float(res.p_value)
                    nulls["cca_null_time"] = float(
                        analysis.shuffle_null(
                            fn, a, b, kind="time", n=n_null, rng=rng, higher_is_more_similar=True
                        ).mean
                    )
        except ValueError:
            row[key] = float("nan")
            if n_null and a.shape[0] > 2:
                nulls[f"{key}_null"] = float("nan")
    return {**row, **nulls}


def jpca_row(
    act: Activity, window: tuple[float, float] = JPCA_WINDOW, n_pcs: int = 6
) -> tuple[Row, analysis.JPCAResult]:
    """The jPCA of an activity in a window around movement onset (Churchland et al. 2012's protocol).

    The window is cut around each condition's own movement onset (:func:`aligned_window`: the
    measured onset of a model on a body, the scheduled or recorded one otherwise), jPCA works in
    ``n_pcs`` PCs, and the soft normalisation (range + 5 spikes/s) is applied to rates in spikes/s
    only, not to an ANN's dimensionless hidden state (:func:`in_spikes_per_s`).

    Parameters
    ----------
    act : Activity
    window : (float, float)
        Start and end of the window (s, relative to movement onset; ``[compare] jpca_window``).
    n_pcs : int
        PCs jPCA works in (fewer if the activity has fewer units).

    Returns
    -------
    row : dict
        ``activity``, ``r2_best``, ``r2_skew``, ``ratio``, ``frequency_hz`` (Hz, strongest plane),
        ``participation_ratio`` (of the whole activity), and how it was fitted: ``window_start_s``,
        ``window_stop_s`` (the window analysed, s from onset: ``window`` unless the trial's edges cut
        it), ``alignment`` (:func:`alignment_of`) and ``onset_shift_ms`` (:func:`onset_shift_ms`).
    result : JPCAResult

    Raises
    ------
    ValueError
        jPCA is undefined (e.g. no change inside the window).
    """
    rates, (start, stop), zero = _jpca_input(act, window)
    res = analysis.jpca(
        rates,
        dt=act.dt,
        n_pcs=min(n_pcs, act.n_units),
        window=(start, stop),
        soft_normalize=in_spikes_per_s(act),
    )
    if res.undefined:
        raise ValueError(res.undefined)  # the battery notes it instead of a row
    row: Row = {
        "activity": act.name,
        "r2_best": float(res.r2_best),
        "r2_skew": float(res.r2_skew),
        "ratio": float(res.ratio),
        "frequency_hz": float(res.frequencies_hz[0]) if len(res.frequencies_hz) else float("nan"),
        "participation_ratio": float(analysis.participation_ratio(act.rates)),
        "window_start_s": round((start - zero) * act.dt, 6),
        "window_stop_s": round((stop - 1 - zero) * act.dt, 6),
        "alignment": alignment_of(act),
        "onset_shift_ms": onset_shift_ms(act),
    }
    return row, res


def _jpca_input(act: Activity, window: tuple[float, float]) -> tuple[np.ndarray, tuple[int, int], int]:
    """The activity aligned to its onsets, the window's steps in it and the onset's step (:func:`aligned_window`)."""
    rates, (start, stop), zero = aligned_window(act, window)
    if stop - start < 2:
        raise ValueError(
            f"the jPCA window {window[0]:g} to {window[1]:g} s around movement onset leaves "
            f"{max(stop - start, 0)} time steps inside the activity (at least 2 are needed)"
        )
    return rates, (start, stop), zero


def in_spikes_per_s(act: Activity) -> bool:
    """Whether ``act`` holds rates in spikes/s (jPCA soft-normalises those only): not an ANN's hidden state."""
    model = of_activity(act.name)
    return model is None or model.kind != "ann"


def plain_row(row: Mapping[str, object]) -> Row:
    """A row with numpy scalars as Python ``float`` / ``str`` (what a table stores and reads back)."""
    return {k: v if isinstance(v, str) else float(v) for k, v in row.items()}


def tangling_rows(acts: Iterable[Activity]) -> tuple[Row, ...]:
    """Tangling rows (:func:`tangling_row`) of the activities with at least 2 units and 3 steps."""
    return tuple(plain_row(tangling_row(a)) for a in acts if a.n_units >= 2 and a.rates.shape[1] >= 3)


def surrogates_of(x: np.ndarray, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` surrogates of every :data:`NULL_METHODS` family (a family that fails on x is left out)."""
    out = {}
    for method in NULL_METHODS:
        try:
            out[method] = analysis.make_surrogates(x, n, rng, method=method, cfr_max_iter=CFR_MAX_ITER)
        except ValueError:
            continue
    return out


def lesion_dsa(intact_rates: np.ndarray, lesioned_rates: np.ndarray, n_pcs: int) -> float:
    """How far a lesion moves the dynamics: DSA distance between the intact and the lesioned circuit.

    Parameters
    ----------
    intact_rates, lesioned_rates : ndarray, shape (conditions, time, units)
        The same model intact and lesioned, on the same conditions.
    n_pcs : int
        Both are reduced to this many PCs (:func:`reduce_to_pcs`) first.

    Returns
    -------
    float
        Radians, in [0, pi] (0 = the same linear dynamics up to rotation and scale); NaN when undefined.
    """
    try:
        return dsa_distance(reduce_to_pcs(intact_rates, n_pcs), reduce_to_pcs(lesioned_rates, n_pcs))
    except ValueError:
        return float("nan")


def lesion_similarity(intact_rates: np.ndarray, lesioned_rates: np.ndarray, n_pcs: int) -> float:
    """How much of the intact circuit's dynamics a lesioned circuit keeps.

    Parameters
    ----------
    intact_rates, lesioned_rates : ndarray, shape (conditions, time, units)
        The same model (rate circuit or spiking twin) intact and lesioned, on the same conditions.
    n_pcs : int
        Both are reduced to this many PCs (:func:`reduce_to_pcs`) and compared with that many
        canonical correlations.

    Returns
    -------
    float
        Mean canonical correlation, in [0, 1] (1 = the same dynamics up to a linear map).
    """
    lesioned, intact = reduce_to_pcs(lesioned_rates, n_pcs), reduce_to_pcs(intact_rates, n_pcs)
    return float(analysis.cca_similarity(lesioned, intact, k=n_pcs))


NULL_METHODS = ("tme", "cfr", "cmpt")
"""Surrogate families behind the ``*_p_<method>`` columns (:func:`cortexsim.analysis.make_surrogates`)."""

SCORE_DIRECTIONS = {"cca": True, "shape_distance": False, "cka": True, "rsa": True, "dsa": False}
"""Similarity column -> higher is more similar."""


CFR_MAX_ITER = 50
"""L-BFGS iterations per CFR surrogate in the battery: on the default run's GRU (10 PCs) the remaining
objective is 0.005 after 50 and 0.003 after 200, at a quarter of the time."""

TANGLING_PCS = 8
"""Top PCs tangling is computed in (Russo et al. 2018 used 8)."""


DSA_RANDOM_STARTS = 2
"""Random Procrustes starts per DSA distance besides the structured ones (on the default run 0, 2 and 6 give
the same distances to 4 decimals; 6 takes twice as long as 2)."""

DSA_KINDS = ("model", "data", "layer")
"""Kinds of activity ``a`` whose pairs get a ``dsa`` column (populations are left out to keep the stage fast)."""


def dsa_distance(a: np.ndarray, b: np.ndarray) -> float:
    """DSA distance (rad) of two reduced activities, :data:`DSA_RANDOM_STARTS` random Procrustes starts."""
    return float(analysis.dsa(a, b, n_random=DSA_RANDOM_STARTS).distance)


def score_functions(k: int) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Every similarity score by column name (``cca`` with ``k`` components, ..., ``dsa``)."""
    out = {key: fn for key, (fn, _) in _metrics(k).items()}
    out["dsa"] = dsa_distance
    return out


def surrogate_columns(
    a: np.ndarray,
    b: np.ndarray,
    observed: Mapping[str, float],
    surrogates: Mapping[str, np.ndarray],
    scores: Iterable[str] = ("cca", "shape_distance", "cka", "rsa"),
) -> dict[str, float]:
    """p-values of similarity scores against surrogates of ``b``: ``<score>_p_<method>``.

    Each score of ``a`` against every surrogate of ``b`` (which keeps b's mean tensor and marginal
    covariances, TME/CFR, or its unit covariance, CMPT); the p-value is the share of surrogates at
    least as similar as observed, ``(1 + count) / (1 + n)`` (small = more similar than b's primary
    features explain).

    Parameters
    ----------
    a, b : ndarray, shape (conditions, time, pcs)
        Reduced activities.
    observed : mapping
        Score name -> observed value (NaN: skipped).
    surrogates : mapping
        Method -> surrogates of b, shape (n, conditions, time, pcs).
    scores : iterable of str
        Columns tested (keys of :data:`SCORE_DIRECTIONS`).
    """
    fns = score_functions(min(a.shape[2], b.shape[2]))
    out: dict[str, float] = {}
    for method, surr in surrogates.items():
        for key in scores:
            value = observed.get(key, float("nan"))
            if not np.isfinite(value):
                out[f"{key}_p_{method}"] = float("nan")
                continue
            fn = against(fns[key], a) or functools.partial(fns[key], a)  # a's side computed once
            try:
                null = np.array([fn(s) for s in surr])
            except ValueError:
                out[f"{key}_p_{method}"] = float("nan")
                continue
            null = null[np.isfinite(null)]
            hits = null >= value if SCORE_DIRECTIONS[key] else null <= value
            out[f"{key}_p_{method}"] = float((1 + np.count_nonzero(hits)) / (1 + null.size))
    return out


def jpca_null_columns(
    act: Activity, n: int, rng: np.random.Generator, n_pcs: int = 10, window: tuple[float, float] = JPCA_WINDOW
) -> dict[str, float]:
    """p-values of the jPCA ratio against TME, CFR and CMPT surrogates: ``ratio_p_<method>``.

    jPCA's own preprocessing (soft normalisation of rates in spikes/s, the cross-condition mean
    removed) is applied once to the activity aligned to its movement onsets, the window around
    onset cut (as :func:`jpca_row` cuts it) and the result projected on its top ``n_pcs`` PCs; the
    surrogates are drawn from that tensor (as Elsayed & Cunningham 2017 test the analysed data) and
    jPCA re-fitted on each without further normalisation.
    """
    rates, (start, stop), _ = _jpca_input(act, window)
    x = rates / (np.ptp(rates.reshape(-1, act.n_units), axis=0) + 5.0) if in_spikes_per_s(act) else rates
    x = (x - x.mean(axis=0, keepdims=True))[:, start:stop]
    k = min(n_pcs, act.n_units, x.shape[0] * x.shape[1])
    z = analysis.pca(x, n_components=k).project(x)
    n_jpcs = min(6, k)

    def ratio(v: np.ndarray) -> float:
        return float(analysis.jpca(v, dt=act.dt, n_pcs=n_jpcs, soft_normalize=False).ratio)

    out: dict[str, float] = {}
    for method in NULL_METHODS:
        try:
            res = analysis.surrogate_p_value(ratio, z, n, rng, method=method, cfr_max_iter=CFR_MAX_ITER)
            out[f"ratio_p_{method}"] = float(res.p_value)
        except ValueError:
            out[f"ratio_p_{method}"] = float("nan")
    return out


def tangling_row(act: Activity) -> Row:
    """Tangling of an activity in its top :data:`TANGLING_PCS` PCs (Russo et al. 2018)."""
    res = analysis.tangling(reduce_to_pcs(act.rates, TANGLING_PCS), dt=act.dt)
    return {"activity": act.name, "tangling_median": res.median, "tangling_q90": res.q90}
