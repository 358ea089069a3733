"""Dynamical Similarity Analysis (Ostrow, Eisen, Kozachkov & Fiete 2023, NeurIPS, "Beyond geometry").

Two systems are compared by their dynamics rather than by the geometry of
their states. Each one's activity, shape (conditions, time, units), is

1. optionally centred (the mean over conditions and time removed per unit),
2. delay-embedded: the Hankel matrix whose row at time t (of each condition)
   is ``[x_t, x_{t-1}, ..., x_{t-n_delays+1}]``, of width ``n_delays * units``,
3. reduced to rank r by its SVD ``H = U S W^T``: the coordinates are the
   columns of ``U[:, :r]`` ("eigen-time-delay" coordinates of HAVOK, Brunton
   et al. 2017; orthonormal, so every retained mode has unit variance),
4. fitted with a linear operator ``A`` (r x r) by least squares on consecutive
   steps within each condition: ``z_{t+1} ~ A z_t`` (reduced-rank DMD; DSA's
   ``A_v``).

The distance between operators ``A`` and ``B`` is the angular Procrustes
distance over the orthogonal group (Ostrow et al. 2023, eq. 5; Williams et al.
2021 for the angular form):

    ``d(A, B) = min_{C in O(r)} arccos( <C A C^T, B>_F / (||A||_F ||B||_F) )``

in radians, in [0, pi]. It is 0 when ``B = C A C^T`` up to scale. Delay
embedding and SVD make the operators invariant to orthogonal transforms and
isotropic rescaling of the units; the minimum over C removes the remaining
arbitrary rotation of the reduced coordinates.

There is no closed form for general ``A`` and ``B`` (the maximum of
``<C A C^T, B>`` over C is a quadratic assignment-like problem; when both are
symmetric it is attained by aligning their sorted eigenbases, von Neumann's
trace inequality, which we use as one start). It is maximised by Riemannian
gradient ascent on O(r): Cayley-transform steps with Barzilai-Borwein step
sizes and Armijo backtracking (Wen & Yin 2013, *Math. Program.* 142:397), from
several starts (the identity; alignments of the sorted eigenbases of the
symmetric parts, of ``A^T A`` with ``B^T B`` and of ``A A^T`` with ``B B^T``,
each with the eigenvector signs chosen to match; random Haar rotations),
keeping the best. The aligned starts find the exact answer when ``B`` is an
orthogonal conjugate of ``A``; O(r) has two components (det +1 and -1), and
the sign choices and random starts cover both. DSA's reference code instead runs gradient descent on an
orthogonal parametrisation in torch; the quantity is the same.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from ..streams import generator
from . import _checks

MIN_EMBEDDING = 10
"""Default rule: the fewest delays such that ``n_delays * units >= MIN_EMBEDDING``."""
VARIANCE_FRACTION = 0.99
"""Default rule: the smallest rank whose modes explain this fraction of each Hankel matrix's variance."""


@dataclass(frozen=True, eq=False)
class DMDFit:
    """A reduced-rank DMD fit of delay-embedded activity (:func:`fit_operator`).

    Attributes
    ----------
    operator : ndarray, shape (rank, rank)
        ``A`` with ``z_{t+1} ~ A z_t`` in the orthonormal eigen-time-delay coordinates.
    modes : ndarray, shape (n_delays * units, rank)
        The spatial singular vectors: the delay-embedded pattern of each coordinate.
    singular_values : ndarray, shape (rank,)
    explained : float
        Fraction of the Hankel matrix's variance (sum of squared singular values) in the rank kept.
    r2 : float
        R^2 of the one-step fit in the reduced coordinates (uncentred).
    n_delays, rank : int
    """

    operator: np.ndarray
    modes: np.ndarray
    singular_values: np.ndarray
    explained: float
    r2: float
    n_delays: int
    rank: int


@dataclass(frozen=True, eq=False)
class DSAResult:
    """Outcome of :func:`dsa`.

    Attributes
    ----------
    distance : float
        Angular Procrustes distance between the two operators, radians in
        [0, pi]. **Lower = more similar dynamics**; 0 = the same operator up to
        an orthogonal change of coordinates and scale.
    operator_x, operator_y : ndarray, shape (rank, rank)
        The fitted DMD operators of x and y.
    rotation : ndarray, shape (rank, rank)
        The orthogonal ``C`` that attains the distance (``C A_x C^T`` closest to ``A_y``).
    n_delays, rank : int
        The delay embedding and rank used (the same for both systems).
    explained_x, explained_y : float
        Fraction of each Hankel matrix's variance captured by the rank.
    undefined : str
        Why the distance is undefined (an input is constant: it has no dynamics), its numbers then
        NaN; empty when it is defined.
    """

    distance: float
    operator_x: np.ndarray
    operator_y: np.ndarray
    rotation: np.ndarray
    n_delays: int
    rank: int
    explained_x: float
    explained_y: float
    undefined: str = ""

    def __repr__(self) -> str:
        return (
            f"<DSAResult: distance {self.distance:.4f} rad ({self.n_delays} delays, rank {self.rank}; "
            f"variance explained {self.explained_x:.3f} / {self.explained_y:.3f})>"
        )


def hankel(X: np.ndarray, n_delays: int) -> np.ndarray:
    """Delay embedding of activity.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units)
    n_delays : int
        Number of delays, 1 <= n_delays <= time - 1 (at least two embedded steps remain).

    Returns
    -------
    ndarray, shape (conditions, time - n_delays + 1, n_delays * units)
        Row t holds ``[x_{t+d-1}, x_{t+d-2}, ..., x_t]`` (most recent first), d = n_delays.
    """
    X = _checks.activity(X, "X", min_time=2)
    n_delays = _checks.positive_int(n_delays, "n_delays", high=X.shape[1] - 1)
    steps = X.shape[1] - n_delays + 1
    return np.concatenate([X[:, n_delays - 1 - k : n_delays - 1 - k + steps] for k in range(n_delays)], axis=2)


def default_delays(n_units: int, n_time: int) -> int:
    """The default number of delays: fewest with ``n_delays * units >= MIN_EMBEDDING``, at most ``(time - 1) // 2``."""
    return max(1, min(math.ceil(MIN_EMBEDDING / n_units), (n_time - 1) // 2))


def _svd(X: np.ndarray, n_delays: int, center: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    if center:
        X = X - X.mean(axis=(0, 1), keepdims=True)
    H = hankel(X, n_delays)
    shape = H.shape[:2]
    U, s, Wt = np.linalg.svd(H.reshape(-1, H.shape[2]), full_matrices=False)
    keep = s > _checks.rank_tolerance(s, (U.shape[0], Wt.shape[1]))
    if not np.sum(s[keep] ** 2) > 0:  # nothing kept, or variance so small that its square underflows
        raise ValueError(CONSTANT)
    return U[:, keep], s[keep], Wt[keep].T, shape


CONSTANT = "the activity is constant (zero variance after centring); it has no dynamics to fit"
"""Why :func:`fit_operator` refuses a constant input and :func:`dsa` calls its distance undefined."""


def _rank_for(s: np.ndarray, fraction: float) -> int:
    cumulative = np.cumsum(s**2) / np.sum(s**2)
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)


def _fit(U: np.ndarray, s: np.ndarray, W: np.ndarray, shape: tuple[int, int], rank: int, n_delays: int) -> DMDFit:
    Z = U[:, :rank].reshape(*shape, rank)
    before, after = Z[:, :-1].reshape(-1, rank), Z[:, 1:].reshape(-1, rank)
    A = np.linalg.lstsq(before, after, rcond=None)[0].T
    total = np.sum(after**2)
    r2 = 1.0 - np.sum((after - before @ A.T) ** 2) / total if total > 0 else float("nan")
    return DMDFit(
        operator=A,
        modes=W[:, :rank],
        singular_values=s[:rank],
        explained=float(np.sum(s[:rank] ** 2) / np.sum(s**2)),
        r2=float(r2),
        n_delays=n_delays,
        rank=rank,
    )


def fit_operator(
    X: np.ndarray,
    *,
    n_delays: int | None = None,
    rank: int | None = None,
    variance_fraction: float = VARIANCE_FRACTION,
    center: bool = True,
) -> DMDFit:
    """Reduced-rank DMD of delay-embedded activity (steps 1-4 of the module docstring).

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units)
        Activity; conditions may be single trials. Consecutive time steps are
        paired only within a condition.
    n_delays : int, optional
        Default :func:`default_delays`.
    rank : int, optional
        Default: the smallest rank explaining ``variance_fraction`` of the Hankel
        matrix's variance. Capped at its numerical rank.
    variance_fraction : float
        In (0, 1].
    center : bool
        Remove each unit's mean over conditions and time first (else a constant
        offset enters the fit as a mode with eigenvalue near 1).

    Returns
    -------
    DMDFit
    """
    X = _checks.activity(X, "X", min_time=3)
    n_delays = default_delays(X.shape[2], X.shape[1]) if n_delays is None else n_delays
    fraction = _fraction(variance_fraction)
    U, s, W, shape = _svd(X, n_delays, center)
    r = _rank_for(s, fraction) if rank is None else _checks.positive_int(rank, "rank")
    return _fit(U, s, W, shape, min(r, s.size), n_delays)


def _fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value <= 1:
        raise ValueError(f"variance_fraction must be a number in (0, 1]; got {value!r}")
    return float(value)


# -- the orthogonal Procrustes problem on operators -----------------------------------------------------------------
def _cayley(C: np.ndarray, W: np.ndarray, tau: float, eye: np.ndarray | None = None) -> np.ndarray:
    eye = np.eye(C.shape[0]) if eye is None else eye
    return np.linalg.solve(eye - 0.5 * tau * W, (eye + 0.5 * tau * W) @ C)


def _ascend(A: np.ndarray, B: np.ndarray, C: np.ndarray, max_iter: int, gtol: float) -> tuple[float, np.ndarray]:
    """Local maximum of ``f(C) = <C A C^T, B>`` on O(r) from ``C`` (Wen & Yin 2013)."""
    # per-step constants made once; every step does the same arithmetic as written out in full
    # (``x.sum()`` is ``np.sum(x)`` without its dispatch), so the path and result are unchanged
    At, Bt, eye = A.T, B.T, np.eye(C.shape[0])

    def value_and_direction(C):
        G = B @ C @ At + Bt @ C @ A  # Euclidean gradient of f
        W = G @ C.T - C @ G.T  # skew: f increases along the Cayley curve of W
        return float(((C @ A @ C.T) * B).sum()), W

    f, W = value_and_direction(C)
    tau = 1.0 / max(np.linalg.norm(A) * np.linalg.norm(B), 1e-300)
    prev_C = prev_grad = None
    for it in range(max_iter):
        slope = 0.5 * (W * W).sum()  # = df/dtau at 0
        if np.sqrt(2 * slope) <= gtol:
            break
        grad = W @ C
        if prev_C is not None:  # Barzilai-Borwein step (alternating the two formulas)
            S, Y = C - prev_C, grad - prev_grad
            sy = abs((S * Y).sum())
            if sy > 0:
                tau = (S * S).sum() / sy if it % 2 else sy / max((Y * Y).sum(), 1e-300)
        for _back in range(40):
            C_new = _cayley(C, W, tau, eye)
            f_new, W_new = value_and_direction(C_new)
            if f_new >= f + 1e-4 * tau * slope:
                break
            tau *= 0.5
        else:
            break
        prev_C, prev_grad = C, grad
        if f_new - f <= 1e-15 * max(abs(f), 1e-300):
            C, f, W = C_new, f_new, W_new
            break
        C, f, W = C_new, f_new, W_new
    return f, C


def _best_signs(K: np.ndarray) -> np.ndarray:
    """Signs s (+-1) that approximately maximise ``s^T K s``: the leading eigenvector's signs, then greedy flips."""
    K = 0.5 * (K + K.T)
    np.fill_diagonal(K, 0.0)  # s_i^2 = 1: the diagonal is a constant
    vals, vecs = np.linalg.eigh(K)
    s = np.where(vecs[:, -1] >= 0, 1.0, -1.0)
    for _ in range(4 * K.shape[0]):
        gain = -4.0 * s * (K @ s)  # change of s^T K s when s_i flips
        i = int(np.argmax(gain))
        if gain[i] <= 1e-15 * max(np.abs(K).max(), 1e-300):
            break
        s[i] = -s[i]
    return s


def _eigen_alignments(A: np.ndarray, B: np.ndarray) -> list[np.ndarray]:
    """Starts ``C = Q_B diag(s) Q_A^T`` aligning sorted eigenbases of symmetric summaries of A and B.

    If ``B = C A C^T`` exactly (and the eigenvalues are distinct) the
    eigenvectors of each summary agree up to signs; the signs are chosen to
    maximise ``<diag(s) M_A diag(s), M_B>`` with ``M = Q^T A Q`` (see
    :func:`_best_signs`). For symmetric A and B the symmetric-part alignment
    is the global optimum (von Neumann's trace inequality).
    """
    starts = []
    for fa, fb in (((A + A.T) / 2, (B + B.T) / 2), (A.T @ A, B.T @ B), (A @ A.T, B @ B.T)):
        qa = np.linalg.eigh(fa)[1][:, ::-1]
        qb = np.linalg.eigh(fb)[1][:, ::-1]
        signs = _best_signs((qa.T @ A @ qa) * (qb.T @ B @ qb))
        starts.append((qb * signs) @ qa.T)
    return starts


def _haar(r: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((r, r)))
    return Q * np.sign(np.diag(R))


def procrustes_angle(
    A: np.ndarray, B: np.ndarray, *, n_random: int = 6, rng: np.random.Generator | None = None, max_iter: int = 1000
) -> tuple[float, np.ndarray]:
    """Angular Procrustes distance between two square operators over the orthogonal group.

    ``min_C arccos(<C A C^T, B> / (||A|| ||B||))``, C orthogonal; see the module
    docstring for the optimiser.

    Parameters
    ----------
    A, B : ndarray, shape (r, r)
    n_random : int
        Random Haar-orthogonal starts besides the structured ones (>= 0).
    rng : numpy.random.Generator, optional
        For the random starts (the pipeline passes the run's "compare" stream); default: a
        generator seeded by the bytes of ``A`` and ``B``, so the result is a function of the data alone.
    max_iter : int
        Ascent iterations per start.

    Returns
    -------
    angle : float
        Radians in [0, pi] (lower = more similar).
    C : ndarray, shape (r, r)
        The best orthogonal matrix found.
    """
    A, B = np.asarray(A, float), np.asarray(B, float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape != B.shape or A.size == 0:
        raise ValueError(f"A and B must be square matrices of the same shape; got {A.shape} and {B.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise ValueError("A and B must be finite")
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if na == 0 or nb == 0:
        raise ValueError("an operator is all zeros; the angle to it is undefined")
    if rng is None:  # a function of the data alone: the starts are seeded by the operators' bytes
        rng = generator(zlib.crc32(A.tobytes() + B.tobytes()))
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator or None; got {rng!r}")
    n_random = _checks.positive_int(n_random, "n_random", low=0)
    r = A.shape[0]
    A, B = A / na, B / nb
    starts = [np.eye(r), *_eigen_alignments(A, B), *(_haar(r, rng) for _ in range(n_random))]
    best, best_C = -np.inf, starts[0]
    for C in starts:
        f, C = _ascend(A, B, C, max_iter, gtol=1e-12)
        if f > best:
            best, best_C = f, C
    return float(np.arccos(np.clip(best, -1.0, 1.0))), best_C


def dsa(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_delays: int | None = None,
    rank: int | None = None,
    rng: np.random.Generator | None = None,
    variance_fraction: float = VARIANCE_FRACTION,
    center: bool = True,
    n_random: int = 6,
) -> DSAResult:
    """Dynamical similarity of two systems: the angular Procrustes distance between their DMD operators.

    See the module docstring for the steps (Ostrow et al. 2023). The two
    inputs need not share conditions, time steps or units.

    Rules for the free choices (override them with ``n_delays`` and ``rank``):

    * ``n_delays``: the fewest delays such that the embedding has at least
      ``MIN_EMBEDDING`` (10) dimensions for the system with fewer units,
      ``ceil(10 / units)``, capped so that at least half of each condition's
      time steps remain (``(time - 1) // 2``).
    * ``rank``: the smallest rank explaining ``variance_fraction`` (99 %) of the
      Hankel matrix's variance, taken for each system and the larger of the two
      used for both (the operators must have the same size); capped at each
      Hankel matrix's numerical rank.

    Parameters
    ----------
    x : ndarray, shape (conditions_x, time_x, units_x)
    y : ndarray, shape (conditions_y, time_y, units_y)
        Activity (trials may stand in for conditions; single-trial data carry
        the dynamics that condition averages can hide).
    n_delays, rank : int, optional
    rng : numpy.random.Generator, optional
        Random starts of the Procrustes optimisation; default: seeded by the fitted operators
        (see :func:`procrustes_angle`), so the result is a function of the data alone.
    variance_fraction : float
        For the default rank, in (0, 1].
    center : bool
        Remove each unit's mean over conditions and time first (default True;
        the DSA package does not, so pass False to compare with it).
    n_random : int
        Random starts of the Procrustes optimisation besides the structured ones.

    Returns
    -------
    DSAResult
        ``distance`` in radians (lower = more similar dynamics), both
        operators, the aligning rotation and the delays and rank used; NaN, with
        ``undefined`` saying why, when an input is constant.
    """
    x = _checks.activity(x, "x", min_time=3)
    y = _checks.activity(y, "y", min_time=3)
    fraction = _fraction(variance_fraction)
    if n_delays is None:
        n_delays = default_delays(min(x.shape[2], y.shape[2]), min(x.shape[1], y.shape[1]))
    n_delays = _checks.positive_int(n_delays, "n_delays", high=min(x.shape[1], y.shape[1]) - 2)
    try:
        Ux, sx, Wx, shape_x = _svd(x, n_delays, center)
        Uy, sy, Wy, shape_y = _svd(y, n_delays, center)
    except ValueError as exc:  # a constant input: no operator to compare
        if str(exc) != CONSTANT:
            raise
        nan = np.full((0, 0), np.nan)
        return DSAResult(
            distance=float("nan"),
            operator_x=nan,
            operator_y=nan,
            rotation=nan,
            n_delays=n_delays,
            rank=0,
            explained_x=float("nan"),
            explained_y=float("nan"),
            undefined=f"an input is constant: {CONSTANT}",
        )
    if rank is None:
        rank = max(_rank_for(sx, fraction), _rank_for(sy, fraction))
    rank = min(_checks.positive_int(rank, "rank"), sx.size, sy.size)
    fx = _fit(Ux, sx, Wx, shape_x, rank, n_delays)
    fy = _fit(Uy, sy, Wy, shape_y, rank, n_delays)
    angle, C = procrustes_angle(fx.operator, fy.operator, n_random=n_random, rng=rng)
    return DSAResult(
        distance=angle,
        operator_x=fx.operator,
        operator_y=fy.operator,
        rotation=C,
        n_delays=n_delays,
        rank=rank,
        explained_x=fx.explained,
        explained_y=fy.explained,
    )
