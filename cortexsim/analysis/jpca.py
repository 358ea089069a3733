"""jPCA: rotational structure of population dynamics (Churchland et al. 2012, *Nature* 487:51).

The activity (conditions, time, units) is soft-normalised, the cross-condition
mean is subtracted, the result is projected onto its top PCs, and the one-step
differences of the PC trajectories are fitted by a linear map ``M`` twice:
unconstrained ("best") and skew-symmetric (pure rotation). The ratio of the two
fits says how rotational the dynamics are; the eigenvector planes of the
skew-symmetric fit are the jPCA planes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import schur

from . import _checks


@dataclass(frozen=True, eq=False)
class JPCAResult:
    """Outcome of :func:`jpca`.

    Attributes
    ----------
    r2_best : float
        R^2 of the unconstrained fit ``dx = M x`` (uncentred; higher = the
        linear fit explains more of the one-step changes).
    r2_skew : float
        R^2 of the skew-symmetric fit (higher = more of the change is rotation).
    ratio : float
        ``r2_skew / r2_best``: near 1 for purely rotational dynamics, near 0
        for non-rotational (e.g. decaying) dynamics. Higher = more rotational.
        NaN when ``r2_best`` is 0.
    planes : ndarray, shape (n_planes, units, 2)
        Orthonormal bases of the jPCA planes in the (soft-normalised) unit
        space of the input, strongest rotation first. Within each plane the
        dynamics run counter-clockwise (from the first axis to the second) and
        the first axis carries the largest spread of the first analysed time
        step across conditions.
    frequencies_hz : ndarray, shape (n_planes,)
        Rotation frequency of each plane, ``|imag eigenvalue| / (2 pi dt)``, in Hz
        when ``dt`` is in seconds; descending.
    variance_explained : ndarray, shape (n_planes,)
        Fraction of the variance of the PC-projected data captured by each
        plane (sums to 1 when ``n_pcs`` is even).
    projections : ndarray, shape (conditions, time_window, n_planes, 2)
        The analysed (normalised, mean-subtracted, windowed, centred) data
        projected onto each plane.
    m_best, m_skew : ndarray, shape (n_pcs, n_pcs)
        The fitted maps, per time step, in PC coordinates.
    pcs : ndarray, shape (units, n_pcs)
        The orthonormal PCs the fit was done in.
    norm_factors : ndarray, shape (units,)
        The divisor applied to each unit (``range + soft_norm_constant``, or 1).
    undefined : str
        Why the quantity is undefined for this input (the activity does not change in the window), its numbers then NaN;
        empty when it is defined.
    """

    r2_best: float
    r2_skew: float
    ratio: float
    planes: np.ndarray
    frequencies_hz: np.ndarray
    variance_explained: np.ndarray
    projections: np.ndarray
    m_best: np.ndarray
    m_skew: np.ndarray
    pcs: np.ndarray
    norm_factors: np.ndarray
    undefined: str = ""

    def __repr__(self) -> str:
        f = ", ".join(f"{v:.2f}" for v in self.frequencies_hz)
        return (
            f"<JPCAResult: R2 skew {self.r2_skew:.3f} / best {self.r2_best:.3f} = {self.ratio:.3f}, "
            f"{len(self.frequencies_hz)} planes at [{f}] Hz>"
        )


def _window(window: tuple[int, int] | None, n_time: int) -> tuple[int, int]:
    """Check ``window`` = (start_index, stop_index) against ``n_time`` steps."""
    if window is None:
        return 0, n_time
    if (
        not isinstance(window, (tuple, list))
        or len(window) != 2
        or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in window)
    ):
        raise ValueError(f"window must be a pair of time indices (start, stop); got {window!r}")
    start, stop = int(window[0]), int(window[1])
    if not 0 <= start < stop <= n_time or stop - start < 2:
        raise ValueError(
            f"window={window!r} must satisfy 0 <= start, start + 2 <= stop <= {n_time} (the number of time steps)"
        )
    return start, stop


def _fit_skew(pre: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Least-squares skew-symmetric ``M`` with ``delta ~ pre @ M.T``.

    Solved as ordinary least squares in the k(k-1)/2 free entries ``M[a, b]``,
    a < b (``M[b, a] = -M[a, b]``).
    """
    n, k = pre.shape
    a, b = np.triu_indices(k, 1)
    p = np.arange(a.size)
    design = np.zeros((n, k, a.size))
    design[:, a, p] = pre[:, b]  # delta_a += M[a, b] x_b
    design[:, b, p] = -pre[:, a]  # delta_b += M[b, a] x_a = -M[a, b] x_a
    params = np.linalg.lstsq(design.reshape(n * k, -1), delta.reshape(-1), rcond=None)[0]
    M = np.zeros((k, k))
    M[a, b], M[b, a] = params, -params
    return M


def _skew_planes(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal rotation planes of a skew-symmetric ``M``, fastest first.

    Returns
    -------
    planes : ndarray, shape (k // 2, k, 2)
        Each plane's basis (u1, u2), oriented so that ``M u1 = +omega u2``.
    omega : ndarray, shape (k // 2,)
        Rotation per step (radians), ``|imag eigenvalue|``.
    """
    T, Z = schur(M, output="real")
    k = M.shape[0]
    tol = 1e-12 * max(1.0, np.abs(M).max())
    pairs, single, i = [], [], 0
    while i < k:
        if i + 1 < k and abs(T[i + 1, i]) > tol:
            sign = 1.0 if T[i + 1, i] > 0 else -1.0
            pairs.append((np.column_stack([Z[:, i], sign * Z[:, i + 1]]), np.sqrt(abs(T[i, i + 1] * T[i + 1, i]))))
            i += 2
        else:
            single.append(Z[:, i])
            i += 1
    # directions with zero rotation are paired up into zero-frequency planes (one is left over when k is odd)
    pairs += [(np.column_stack(single[j : j + 2]), 0.0) for j in range(0, len(single) - 1, 2)]
    pairs.sort(key=lambda pair: -pair[1])
    return np.stack([p for p, _ in pairs]), np.array([w for _, w in pairs])


def _align_to_initial_spread(planes: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Rotate each plane's basis (keeping its orientation) so axis 1 holds the most spread of ``first``.

    ``first`` is (conditions, k), the PC-space states at the first analysed step.
    """
    out = np.empty_like(planes)
    for i, basis in enumerate(planes):
        q = first @ basis
        q = q - q.mean(axis=0)
        _, vecs = np.linalg.eigh(q.T @ q)
        e = vecs[:, -1] * np.sign(vecs[np.argmax(np.abs(vecs[:, -1])), -1])
        rot = np.array([[e[0], -e[1]], [e[1], e[0]]])  # proper rotation by the angle of e
        out[i] = basis @ rot
    return out


def jpca(
    X: np.ndarray,
    *,
    dt: float,
    n_pcs: int = 6,
    soft_normalize: bool = True,
    subtract_mean: bool = True,
    window: tuple[int, int] | None = None,
    soft_norm_constant: float = 5.0,
) -> JPCAResult:
    """Fit rotational dynamics to condition-averaged population activity (jPCA).

    Steps, following Churchland et al. (2012) and their published code:

    1. Soft normalisation (``soft_normalize``): each unit is divided by its
       range over all conditions and time steps plus ``soft_norm_constant``
       (5 spikes/s for rates in Hz), so that strong units do not dominate
       while weak ones are not inflated.
    2. ``subtract_mean``: the mean over conditions is subtracted at each time
       step, leaving the condition-dependent part of the activity.
    3. ``window`` = (start_index, stop_index): only time steps
       ``start_index <= t < stop_index`` are analysed.
    4. The analysed samples (conditions x time) are centred and projected on
       their top ``n_pcs`` PCs, giving ``x[c, t]``.
    5. The one-step differences ``dx = x[t+1] - x[t]`` (within each condition)
       are fitted as ``dx = M x[t]`` by least squares, once with ``M``
       unconstrained and once with ``M`` skew-symmetric (a pure rotation). Each
       fit's R^2 is ``1 - SSE / sum ||dx||^2`` (uncentred, as in the original code).
    6. The eigenvalues of the skew-symmetric ``M`` come in pairs ``+-i omega``;
       each pair's real plane (from the real Schur form, so planes are exactly
       orthonormal) is mapped back through the PCs into unit space.

    Parameters
    ----------
    X : ndarray, shape (conditions, time, units)
        Condition-averaged activity, e.g. rates in Hz (the default normalisation
        constant assumes Hz).
    dt : float
        Time step of ``X`` in seconds (sets ``frequencies_hz``).
    n_pcs : int
        Number of PCs, 2 <= n_pcs <= min(units, conditions x window length).
        There are ``n_pcs // 2`` planes: with ``n_pcs`` odd, one PC direction
        is left without a partner, so there is one fewer plane than
        ``n_pcs / 2`` rounded up.
    soft_normalize : bool
        Divide each unit by (range + ``soft_norm_constant``).
    subtract_mean : bool
        Subtract the cross-condition mean at each time step.
    window : (int, int), optional
        (start_index, stop_index) of the analysed time steps (at least 2).
    soft_norm_constant : float
        Added to each unit's range before dividing, in the units of ``X``
        (Churchland et al.: 5 spikes/s). Must be >= 0.

    Returns
    -------
    JPCAResult
        ``ratio = r2_skew / r2_best`` (higher = more rotational), planes
        (strongest rotation first), their frequencies, variance fractions and
        projections.
    """
    X = _checks.activity(X, "X", min_time=2)
    dt = _checks.positive_float(dt, "dt")
    n_cond, n_time, n_units = X.shape
    start, stop = _window(window, n_time)
    n_pcs = _checks.positive_int(n_pcs, "n_pcs", low=2, high=min(n_units, n_cond * (stop - start)))
    if not soft_normalize:
        factors = np.ones(n_units)
    else:
        if not (np.isfinite(soft_norm_constant) and soft_norm_constant >= 0):
            raise ValueError(f"soft_norm_constant must be a finite number >= 0; got {soft_norm_constant!r}")
        factors = np.ptp(X.reshape(-1, n_units), axis=0) + soft_norm_constant
        if np.any(factors == 0):
            raise ValueError("a unit is constant and soft_norm_constant is 0, so it cannot be normalised; use > 0")
    Z = X / factors
    if subtract_mean:
        Z = Z - Z.mean(axis=0, keepdims=True)
    flat = Z[:, start:stop].reshape(-1, n_units)
    flat = flat - flat.mean(axis=0)
    pcs = np.linalg.svd(flat, full_matrices=False)[2][:n_pcs].T
    x = (flat @ pcs).reshape(n_cond, stop - start, n_pcs)

    pre = x[:, :-1].reshape(-1, n_pcs)
    delta = np.diff(x, axis=1).reshape(-1, n_pcs)
    total = np.sum(delta**2)
    if not total > 0:  # no change over time: no dynamics to fit, every R^2 is 0 / 0
        n_planes = n_pcs // 2

        def nan(*shape: int) -> np.ndarray:
            return np.full(shape, np.nan)

        return JPCAResult(
            r2_best=float("nan"),
            r2_skew=float("nan"),
            ratio=float("nan"),
            planes=nan(n_planes, n_units, 2),
            frequencies_hz=nan(n_planes),
            variance_explained=nan(n_planes),
            projections=nan(n_cond, stop - start, n_planes, 2),
            m_best=nan(n_pcs, n_pcs),
            m_skew=nan(n_pcs, n_pcs),
            pcs=pcs,
            norm_factors=factors,
            undefined="the analysed activity does not change over time; there are no dynamics to fit",
        )
    m_best = np.linalg.lstsq(pre, delta, rcond=None)[0].T
    m_skew = _fit_skew(pre, delta)
    r2_best = 1.0 - np.sum((delta - pre @ m_best.T) ** 2) / total
    r2_skew = 1.0 - np.sum((delta - pre @ m_skew.T) ** 2) / total

    pc_planes, omega = _skew_planes(m_skew)
    pc_planes = _align_to_initial_spread(pc_planes, x[:, 0])
    proj = np.einsum("ctk,pkj->ctpj", x, pc_planes)
    return JPCAResult(
        r2_best=float(r2_best),
        r2_skew=float(r2_skew),
        ratio=float(r2_skew / r2_best) if r2_best > 0 else float("nan"),
        planes=np.einsum("uk,pkj->puj", pcs, pc_planes),
        frequencies_hz=omega / (2 * np.pi * dt),
        variance_explained=np.sum(proj**2, axis=(0, 1, 3)) / np.sum(x**2),
        projections=proj,
        m_best=m_best,
        m_skew=m_skew,
        pcs=pcs,
        norm_factors=factors,
    )
