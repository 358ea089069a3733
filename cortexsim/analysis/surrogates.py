"""Surrogate data that keep simple features of a population response and nothing else.

Tensor Maximum Entropy (TME; Elsayed & Cunningham 2017, *Nat. Neurosci.*
20:1310, "Structure in neural population recordings: an expected byproduct of
simpler phenomena?"). A response x of shape (conditions, time, units) has a
mean tensor ``M`` and three marginal covariances, the second moments of
``D = x - M`` unfolded along each mode (sums, not averages, as in the paper):

    ``Sigma_C = D_(C) D_(C)^T``  (conditions x conditions)
    ``Sigma_T = D_(T) D_(T)^T``  (time x time)
    ``Sigma_N = D_(N) D_(N)^T``  (units x units)

``D_(k)`` is the mode-k unfolding (mode k along the rows, all other entries
along the columns); the three traces all equal ``||D||_F^2``. TME samples
surrogate tensors from the distribution of maximum entropy whose mean is ``M``
and whose expected marginal covariances are these. By their derivation that
distribution is Gaussian, ``vec(X) ~ N(vec(M), Lambda^-1)``, with a precision
that is a Kronecker sum of one Lagrange-multiplier matrix per mode,

    ``Lambda = Lambda_C (+) Lambda_T (+) Lambda_N = Lambda_C x I x I + I x Lambda_T x I + I x I x Lambda_N``,

where ``Lambda_k = Q_k diag(lambda_k) Q_k^T`` shares the eigenvectors ``Q_k``
of ``Sigma_k`` (eigenvalues ``s_k``). The multipliers solve the moment
equations (one per eigenvalue of each mode)

    ``s_C,i = sum_{j,l} 1 / (lambda_C,i + lambda_T,j + lambda_N,l)``, and alike for T and N.

What this module implements, step by step:

* ``M``: the paper's code removes the time mean (over units and conditions),
  then the unit mean, then the condition mean; the sum of what was removed is
  ``M``. Equivalently M is the orthogonal projection of x onto tensors
  ``a(c) + b(t) + d(n)``, so ``x - M`` has zero mean along every mode and M
  keeps every mode-wise mean of x.
* The moment equations are solved on the eigenvalues above
  ``exp(-10) * trace / mean(dims)`` (the threshold of the paper's code; the
  directions below get zero variance, a multiplier of infinity). Elsayed &
  Cunningham minimise the normalised squared error of the equations,
  ``f = sum_k sum_i (s_k,i - sum 1/L)^2 / sum_k ||s_k||^2``, in log-multipliers.
  We solve the same equations by Newton's method on the convex dual of the
  maximum-entropy problem, ``min sum_k <lambda_k, s_k> - sum_{ijl} log L_ijl``
  (its gradient is the equations' error), which reaches machine precision;
  ``f`` is reported as :attr:`TMEModel.objective` (0 at the solution).
* A mode left out of ``preserve`` gets the isotropic covariance of the same
  trace, as in the paper's code; that is the maximum-entropy solution without
  a constraint on that mode.
* Sampling: ``X = M + (Z / sqrt(L)) x_1 Q_C x_2 Q_T x_3 Q_N`` with Z standard normal.

A surrogate's marginal covariances, computed about ``M``, equal the data's in
expectation; a statistic that is about as large in surrogates as in the data
is explained by these simpler features (:func:`surrogate_p_value`).

Also :func:`shuffle_surrogates`: each unit's conditions permuted
independently (keeps every unit's set of responses and the time structure
within each, breaks the coordination of units across conditions), the
shuffle control that Elsayed & Cunningham contrast with TME;
:func:`cfr_surrogates`, their Corrected Fisher Randomization (a shuffle, then
a linear correction of the time mode that restores the three marginal
covariances); and :func:`cmpt_surrogates`, the covariance-matched permutation
test of Michaels, Dann & Scherberger (2016, *PLoS Comput. Biol.* 12:e1005175):
the same per-unit condition permutation, then a linear map of the units that
restores the unit-by-unit covariance exactly. Each function's docstring states
the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _checks

MODES = ("conditions", "time", "units")
"""Mode names, in the axis order of the activity (conditions, time, units)."""
_LOG_THRESHOLD = -10.0  # eigenvalues below exp(-10) x trace / mean(dims) count as zero (the paper's code)


def tme_mean(x: np.ndarray) -> np.ndarray:
    """The TME mean tensor: the projection of x onto ``a(c) + b(t) + d(n)``.

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)

    Returns
    -------
    ndarray, shape (conditions, time, units)
        ``M``; ``x - M`` has zero mean over any two axes for every index of the third.
    """
    x = _checks.activity(x, "x")
    d = x - x.mean(axis=(0, 2), keepdims=True)  # time mean (over conditions and units)
    d = d - d.mean(axis=(0, 1), keepdims=True)  # unit mean
    d = d - d.mean(axis=(1, 2), keepdims=True)  # condition mean
    return x - d


def marginal_covariances(x: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three marginal second-moment matrices of ``x - mean`` (sums over the other two modes).

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
    mean : ndarray, shape (conditions, time, units), optional
        Default :func:`tme_mean` of x.

    Returns
    -------
    sigma_c, sigma_t, sigma_n : ndarray
        Shapes (conditions, conditions), (time, time), (units, units), in the
        squared units of x; each trace is ``||x - mean||^2``.
    """
    x = _checks.activity(x, "x")
    mean = tme_mean(x) if mean is None else np.asarray(mean, float)
    if mean.shape != x.shape:
        raise ValueError(f"mean must have the shape of x {x.shape}; got {mean.shape}")
    d = x - mean
    c, t, n = d.shape
    flat_c = d.reshape(c, -1)
    flat_t = d.transpose(1, 0, 2).reshape(t, -1)
    flat_n = d.reshape(-1, n)
    return flat_c @ flat_c.T, flat_t @ flat_t.T, flat_n.T @ flat_n


@dataclass(frozen=True, eq=False)
class TMEModel:
    """The maximum-entropy distribution fitted by :func:`fit_tme`.

    Attributes
    ----------
    mean : ndarray, shape (conditions, time, units)
        ``M``.
    eigenvectors : tuple of 3 ndarrays
        ``Q_k`` per mode (conditions, time, units), shape (dim_k, rank_k): the
        eigenvectors of the marginal covariance kept (eigenvalue above threshold).
    multipliers : tuple of 3 ndarrays
        ``lambda_k``, shape (rank_k,): eigenvalues of the Lagrange-multiplier
        matrices (per squared unit of x).
    marginal_eigenvalues : tuple of 3 ndarrays
        ``s_k``, shape (rank_k,): the eigenvalues the distribution matches.
    preserve : tuple of str
        The modes whose covariance was constrained (the others: isotropic).
    objective : float
        Elsayed & Cunningham's normalised squared error of the moment equations at the solution (0 = exact).
    """

    mean: np.ndarray
    eigenvectors: tuple[np.ndarray, np.ndarray, np.ndarray]
    multipliers: tuple[np.ndarray, np.ndarray, np.ndarray]
    marginal_eigenvalues: tuple[np.ndarray, np.ndarray, np.ndarray]
    preserve: tuple[str, ...]
    objective: float

    def _variances(self) -> np.ndarray:
        lc, lt, ln = self.multipliers
        return 1.0 / (lc[:, None, None] + lt[None, :, None] + ln[None, None, :])

    def marginal_covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The expected marginal covariances of a sample (analytic), shapes as in :func:`marginal_covariances`."""
        v = self._variances()
        sums = (v.sum(axis=(1, 2)), v.sum(axis=(0, 2)), v.sum(axis=(0, 1)))
        return tuple((Q * s) @ Q.T for Q, s in zip(self.eigenvectors, sums))  # type: ignore[return-value]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` surrogate tensors, shape (n, conditions, time, units)."""
        n = _checks.positive_int(n, "n")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)); got {rng!r}")
        Qc, Qt, Qn = self.eigenvectors
        rc, rt, rn = Qc.shape[1], Qt.shape[1], Qn.shape[1]
        sd = np.sqrt(self._variances())
        out = np.empty((n, *self.mean.shape))
        for k in range(n):  # one surrogate at a time: three contiguous products, memory of one tensor
            z = rng.standard_normal((rc, rt, rn)) * sd
            z = (z.reshape(rc * rt, rn) @ Qn.T).reshape(rc, rt, -1)  # (rc, rt, units)
            z = np.matmul(Qt, z)  # (rc, time, units)
            out[k] = (Qc @ z.reshape(rc, -1)).reshape(self.mean.shape) + self.mean
        return out


def _solve_multipliers(s: list[np.ndarray], max_iter: int = 200) -> tuple[list[np.ndarray], float]:
    """Newton's method on the convex dual; ``s`` are the eigenvalues (scaled so the trace is the tensor size)."""
    sizes = [v.size for v in s]
    split = np.cumsum(sizes)[:-1]
    # start: each mode carries a third of the precision, lambda_k,i = P_k / (3 s_k,i), P_k = product of the other ranks
    total = float(np.prod(sizes))
    lam = np.concatenate([total / (r * 3.0 * v) for r, v in zip(sizes, s)])
    target = np.concatenate(s)

    def pieces(lam):
        lc, lt, ln = np.split(lam, split)
        L = lc[:, None, None] + lt[None, :, None] + ln[None, None, :]
        return L, lc, lt, ln

    def dual(lam):
        L = pieces(lam)[0]
        if np.any(L <= 0):
            return np.inf
        return float(lam @ target - np.sum(np.log(L)))

    value = dual(lam)
    for _ in range(max_iter):
        L = pieces(lam)[0]
        inv, inv2 = 1.0 / L, 1.0 / L**2
        moments = np.concatenate([inv.sum(axis=(1, 2)), inv.sum(axis=(0, 2)), inv.sum(axis=(0, 1))])
        grad = target - moments
        if np.max(np.abs(grad) / target) < 1e-11:
            break
        a, b, c = sizes
        H = np.zeros((a + b + c, a + b + c))
        H[:a, :a] = np.diag(inv2.sum(axis=(1, 2)))
        H[a : a + b, a : a + b] = np.diag(inv2.sum(axis=(0, 2)))
        H[a + b :, a + b :] = np.diag(inv2.sum(axis=(0, 1)))
        H[:a, a : a + b] = inv2.sum(axis=2)
        H[:a, a + b :] = inv2.sum(axis=1)
        H[a : a + b, a + b :] = inv2.sum(axis=0)
        H = np.triu(H) + np.triu(H, 1).T
        # H is singular along the two gauge directions (lambda_C + e, lambda_T - e, ...); grad is orthogonal to
        # them. Multipliers span many orders of magnitude, so solve with H scaled to a unit diagonal.
        d = 1.0 / np.sqrt(np.diag(H))
        step = -d * np.linalg.lstsq(H * np.outer(d, d), d * grad, rcond=1e-13)[0]
        t, decrease = 1.0, float(grad @ step)
        if -decrease <= 1e-14 * abs(value):  # the Newton decrement: nothing left to gain
            break
        while t > 1e-12:
            new = lam + t * step
            new_value = dual(new)
            if new_value <= value + 1e-4 * t * decrease:
                break
            t *= 0.5
        else:
            break
        lam, value = new, new_value
    L = pieces(lam)[0]
    inv = 1.0 / L
    moments = np.concatenate([inv.sum(axis=(1, 2)), inv.sum(axis=(0, 2)), inv.sum(axis=(0, 1))])
    objective = float(np.sum((target - moments) ** 2) / np.sum(target**2))
    return list(np.split(lam, split)), objective


def _preserve(preserve) -> tuple[str, ...]:
    if isinstance(preserve, str):
        preserve = (preserve,)
    preserve = tuple(preserve)
    bad = [p for p in preserve if p not in MODES]
    if bad or not preserve:
        raise ValueError(f"preserve must name one or more of {', '.join(MODES)}; got {preserve!r}")
    return tuple(m for m in MODES if m in preserve)


def fit_tme(x: np.ndarray, *, preserve: tuple[str, ...] = MODES) -> TMEModel:
    """Fit the Tensor Maximum Entropy distribution of x (Elsayed & Cunningham 2017; see the module docstring).

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
        Condition-averaged activity (e.g. rates in Hz).
    preserve : tuple of str
        Modes whose marginal covariance the surrogates keep: any of
        ``"conditions"``, ``"time"``, ``"units"`` (default all three, the
        paper's "surrogate-TNC"); the others are isotropic.

    Returns
    -------
    TMEModel
    """
    x = _checks.activity(x, "x")
    preserve = _preserve(preserve)
    mean = tme_mean(x)
    sigmas = marginal_covariances(x, mean)
    trace = float(np.trace(sigmas[0]))
    if trace <= 0:
        raise ValueError("x has no variance about its TME mean (x - M = 0); there is nothing to sample")
    dims = x.shape
    size = float(np.prod(dims))
    floor = np.exp(_LOG_THRESHOLD) * trace / np.mean(dims)
    vectors, values = [], []
    for mode, sigma, dim in zip(MODES, sigmas, dims):
        if mode not in preserve:
            vectors.append(np.eye(dim))
            values.append(np.full(dim, trace / dim))
            continue
        s, Q = np.linalg.eigh(0.5 * (sigma + sigma.T))
        s, Q = s[::-1], Q[:, ::-1]
        keep = s > floor
        vectors.append(Q[:, keep])
        values.append(s[keep])
    scale = size / trace  # multipliers are O(1) when the trace equals the number of entries
    lam, objective = _solve_multipliers([v * scale for v in values])
    return TMEModel(
        mean=mean,
        eigenvectors=tuple(vectors),
        multipliers=tuple(v * scale for v in lam),
        marginal_eigenvalues=tuple(values),
        preserve=preserve,
        objective=objective,
    )


def tme_surrogates(x: np.ndarray, n: int, rng: np.random.Generator, *, preserve: tuple[str, ...] = MODES) -> np.ndarray:
    """Tensor Maximum Entropy surrogates of x: same mean tensor and (in expectation) marginal covariances.

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
    n : int
        Number of surrogates.
    rng : numpy.random.Generator
    preserve : tuple of str
        See :func:`fit_tme`.

    Returns
    -------
    ndarray, shape (n, conditions, time, units)
        In the units of x.
    """
    return fit_tme(x, preserve=preserve).sample(n, rng)


def shuffle_surrogates(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Condition-shuffle control: every unit's conditions permuted independently.

    Each unit keeps its own set of condition responses (so its time course and
    its tuning spread); what is broken is which responses of different units
    occur together.

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
        At least 2 conditions.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n, conditions, time, units)
    """
    x = _checks.activity(x, "x")
    if x.shape[0] < 2:
        raise ValueError(f"a condition shuffle needs at least 2 conditions; x has {x.shape[0]}")
    n = _checks.positive_int(n, "n")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)); got {rng!r}")
    c, _, units = x.shape
    perms = np.argsort(rng.random((n, units, c)), axis=2)  # (n, units, conditions): a permutation per unit
    out = np.empty((n, *x.shape))
    for k in range(n):
        out[k] = x[perms[k].T, :, np.arange(units)[None, :]].transpose(0, 2, 1)
    return out


def _check_generator(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)); got {rng!r}")
    return rng


def _cyclic_condition_shuffle(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each unit's conditions cyclically shifted by its own random offset (CFR's shuffle, ``cyclicShfl``)."""
    c, _, units = x.shape
    shifts = rng.integers(0, c, size=units)
    idx = (np.arange(c)[:, None] + shifts[None, :]) % c  # (conditions, units)
    return x[idx, :, np.arange(units)[None, :]].transpose(0, 2, 1)


def _cfr_objective(
    k_flat: np.ndarray, X: np.ndarray, A: np.ndarray, targets: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[float, np.ndarray]:
    """Mean normalised squared error of the marginal covariances of ``K^T X`` (X's axis 0 the read-out mode).

    ``X`` has shape (r, a, b) with the read-out mode first; ``targets`` are the target covariances
    of modes r, a and b. Returns the objective and its gradient in ``K`` (r x r), flattened.
    """
    r, a, b = X.shape
    K = k_flat.reshape(r, r)
    S_r, S_a, S_b = targets
    X_ab = X.reshape(r, a * b)
    PX = (K @ (K.T @ X_ab)).reshape(r, a, b)
    est_r = K.T @ A @ K
    Xa = X.transpose(1, 0, 2).reshape(a, r * b)  # mode a unfolded, columns (r, b)
    Xb = X.transpose(2, 0, 1).reshape(b, r * a)  # mode b unfolded, columns (r, a)
    est_a = Xa @ PX.transpose(1, 0, 2).reshape(a, r * b).T
    est_b = Xb @ PX.transpose(2, 0, 1).reshape(b, r * a).T
    f, grad = 0.0, np.zeros_like(K)
    E = est_r - S_r
    norm = float(np.sum(S_r**2))
    f += float(np.sum(E**2)) / norm
    grad += 4.0 * A @ K @ E / norm
    E = est_a - S_a
    norm = float(np.sum(S_a**2))
    f += float(np.sum(E**2)) / norm
    EX = (E @ Xa).reshape(a, r, b).transpose(1, 0, 2).reshape(r, a * b)  # sum_j E_ij X[:, j, :]
    grad += 4.0 * (X_ab @ EX.T) @ K / norm
    E = est_b - S_b
    norm = float(np.sum(S_b**2))
    f += float(np.sum(E**2)) / norm
    EX = (E @ Xb).reshape(b, r, a).transpose(1, 2, 0).reshape(r, a * b)
    grad += 4.0 * (X_ab @ EX.T) @ K / norm
    grad -= grad.mean(axis=0, keepdims=True)  # keep 1^T K = 0 (CFR's projection of the gradient)
    return f / 3.0, (grad / 3.0).ravel()


def cfr_surrogates(
    x: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    readout: str = "units",
    max_iter: int = 200,
    return_objective: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Corrected Fisher Randomization (CFR; Elsayed & Cunningham 2017 and their ``CFR`` code).

    Algorithm, per surrogate:

    1. ``M`` = :func:`tme_mean` of x and the target marginal covariances
       ``Sigma_C, Sigma_T, Sigma_N`` of ``x - M`` (:func:`marginal_covariances`).
    2. Shuffle (Fisher randomization): each unit's conditions are cyclically
       shifted by its own random offset (their default ``cyclicShfl``, shuffle
       mode = conditions), breaking the coordination of units across conditions.
    3. Correction: the shuffled tensor ``S`` minus its mean over the other two
       modes at each index of the read-out mode is transformed along the
       read-out mode (``readout``), ``Y = S x_readout K^T``, with the square
       matrix ``K`` minimising the mean over the three modes of
       ``||Sigma_k(Y) - Sigma_k||_F^2 / ||Sigma_k||_F^2`` (their
       ``optMarginalCov``), started from the centring matrix ``I - 11^T / d``
       with the gradient kept orthogonal to the ones vector, minimised by
       L-BFGS with the analytic gradient (they use conjugate gradients,
       ``minimize.m``, 100 line searches).
    4. The surrogate is ``M + Y``.

    The read-out mode: their code's default is time (``readout="time"``
    reproduces it). A time-mode map cannot restore a unit covariance that the
    shuffle destroyed: on the planted-rotation data of the tests (30 units,
    rank-2 unit covariance) it stops at an objective of 0.35, against 5e-4 with
    the unit mode, so the default here is ``"units"``.

    It keeps the three marginal covariances up to the remaining objective
    (returned per surrogate with ``return_objective``; below 1e-2 on the test
    data), while the shuffle destroys structure that depends on which
    responses of different units go together (e.g. a population rotation with
    condition-specific phases).

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
        At least 2 conditions and 2 time steps.
    n : int
    rng : numpy.random.Generator
    readout : {"units", "time", "conditions"}
        The mode the correcting linear map acts on.
    max_iter : int
        L-BFGS iterations per surrogate.
    return_objective : bool
        Also return the final objective of each surrogate (0 = covariances matched exactly).

    Returns
    -------
    ndarray, shape (n, conditions, time, units)
        [, ndarray of shape (n,): the objectives]
    """
    import scipy.optimize

    x = _checks.activity(x, "x", min_time=2)
    if x.shape[0] < 2:
        raise ValueError(f"CFR shuffles conditions; x needs at least 2 conditions, it has {x.shape[0]}")
    n = _checks.positive_int(n, "n")
    rng = _check_generator(rng)
    max_iter = _checks.positive_int(max_iter, "max_iter")
    if readout not in MODES:
        raise ValueError(f"readout={readout!r} is not a mode; choose one of {', '.join(MODES)}")
    mean = tme_mean(x)
    targets = marginal_covariances(x, mean)
    if np.trace(targets[0]) <= 0:
        raise ValueError("x has no variance about its TME mean (x - M = 0); there is nothing to sample")
    axis = MODES.index(readout)
    order = [axis] + [m for m in range(3) if m != axis]  # read-out mode first
    back = np.argsort(order)
    ordered_targets = tuple(targets[m] for m in order)
    r = x.shape[axis]
    start = (np.eye(r) - 1.0 / r).ravel()
    out = np.empty((n, *x.shape))
    objectives = np.empty(n)
    for k in range(n):
        S = _cyclic_condition_shuffle(x, rng).transpose(order)
        S = S - S.mean(axis=(1, 2), keepdims=True)
        flat = S.reshape(r, -1)
        res = scipy.optimize.minimize(
            _cfr_objective,
            start,
            args=(S, flat @ flat.T, ordered_targets),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "ftol": 1e-12, "gtol": 1e-10},
        )
        K = res.x.reshape(r, r)
        out[k] = mean + (K.T @ flat).reshape(S.shape).transpose(back)
        objectives[k] = float(res.fun)
    return (out, objectives) if return_objective else out


def _sqrtm_psd(C: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric square root (or pseudo-inverse square root) of a positive semi-definite matrix."""
    w, V = np.linalg.eigh(0.5 * (C + C.T))
    keep = w > _checks.rank_tolerance(np.abs(w), C.shape)
    root = np.zeros_like(w)
    root[keep] = np.sqrt(w[keep]) if not inverse else 1.0 / np.sqrt(w[keep])
    return (V * root) @ V.T


def cmpt_surrogates(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Covariance-matched permutation test surrogates (CMPT; Michaels, Dann & Scherberger 2016).

    Algorithm, per surrogate:

    1. Permute: each unit's conditions are reassigned by its own uniformly
       random permutation (as :func:`shuffle_surrogates`), which keeps every
       unit's set of responses but breaks the condition structure shared
       across units.
    2. Match the covariance: with ``mu`` and ``C`` the unit means and the
       (units x units) covariance of x over all conditions and time steps, and
       ``mu_p``, ``C_p`` those of the permuted data ``P``, the surrogate is
       ``mu + (P - mu_p) C_p^(-1/2) C^(1/2)`` (symmetric square roots;
       pseudo-inverse on the numerical null space), the linear map of the units
       closest to the identity that restores the original neuron-to-neuron
       relationships.

    It keeps the unit means and covariance exactly (when the permuted data
    span the same unit subspace, which holds unless x is rank deficient in a
    way the permutation changes) and destroys structure tied to which
    condition each unit's response belongs to.

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
        At least 2 conditions.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n, conditions, time, units)
    """
    x = _checks.activity(x, "x")
    permuted = shuffle_surrogates(x, n, rng)
    units = x.shape[2]
    flat = x.reshape(-1, units)
    mu = flat.mean(axis=0)
    root = _sqrtm_psd(np.cov(flat, rowvar=False, bias=True).reshape(units, units))
    for k in range(permuted.shape[0]):
        p = permuted[k].reshape(-1, units)
        mu_p = p.mean(axis=0)
        whiten = _sqrtm_psd(np.cov(p, rowvar=False, bias=True).reshape(units, units), inverse=True)
        permuted[k] = (mu + (p - mu_p) @ whiten @ root).reshape(x.shape)
    return permuted


@dataclass(frozen=True, eq=False)
class SurrogateTest:
    """A statistic of the data against its values on surrogates (:func:`surrogate_p_value`).

    Attributes
    ----------
    observed : float
        ``statistic(x)``.
    null : ndarray, shape (n,)
        ``statistic`` of each surrogate.
    mean, sd : float
        Of ``null`` (sd with ddof=1).
    p_value : float
        One-sided: the fraction of surrogates at least as extreme as observed in
        the direction of ``greater``, ``(1 + count) / (1 + n)`` (never 0;
        Phipson & Smyth 2010). Lower = stronger evidence that the structure is
        more than the preserved features explain.
    method : str
        ``"tme"``, ``"shuffle"``, ``"cfr"`` or ``"cmpt"``.
    greater : bool
        True: the test asks whether the data's statistic is larger than the surrogates'.
    """

    observed: float
    null: np.ndarray
    mean: float
    sd: float
    p_value: float
    method: str
    greater: bool

    @property
    def z(self) -> float:
        """``(observed - mean) / sd``, signed so that positive = more extreme than the surrogates."""
        sign = 1.0 if self.greater else -1.0
        return float(sign * (self.observed - self.mean) / self.sd) if self.sd > 0 else float("nan")

    def __repr__(self) -> str:
        return (
            f"<SurrogateTest ({self.method}, n={self.null.size}): observed {self.observed:.4g}, "
            f"surrogates {self.mean:.4g} +- {self.sd:.4g}, p = {self.p_value:.3g}>"
        )


SURROGATE_METHODS = ("tme", "shuffle", "cfr", "cmpt")
"""Surrogate families :func:`surrogates` and :func:`surrogate_p_value` accept."""


def make_surrogates(
    x: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    method: str = "tme",
    preserve: tuple[str, ...] = MODES,
    cfr_max_iter: int = 200,
) -> np.ndarray:
    """``n`` surrogates of x of one family: ``"tme"`` (with ``preserve``), ``"shuffle"``, ``"cfr"`` or ``"cmpt"``.

    ``cfr_max_iter``: L-BFGS iterations per CFR surrogate (:func:`cfr_surrogates`).

    Returns
    -------
    ndarray, shape (n, conditions, time, units)
    """
    if method not in SURROGATE_METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {', '.join(SURROGATE_METHODS)}")
    if method == "tme":
        return tme_surrogates(x, n, rng, preserve=preserve)
    if method == "cfr":
        return cfr_surrogates(x, n, rng, max_iter=cfr_max_iter)
    if method == "cmpt":
        return cmpt_surrogates(x, n, rng)
    return shuffle_surrogates(x, n, rng)


def surrogate_p_value(
    statistic: Callable[[np.ndarray], float],
    x: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    method: str = "tme",
    preserve: tuple[str, ...] = MODES,
    greater: bool = True,
    cfr_max_iter: int = 200,
) -> SurrogateTest:
    """Test whether a population statistic exceeds what the preserved simple features produce.

    Parameters
    ----------
    statistic : callable
        ``statistic(X) -> float`` on arrays of shape (conditions, time, units),
        e.g. ``lambda X: jpca(X, dt=0.01).r2_skew``.
    x : ndarray, shape (conditions, time, units)
    n : int
        Number of surrogates (>= 1; Elsayed & Cunningham use 100 or more).
    rng : numpy.random.Generator
    method : {"tme", "shuffle", "cfr", "cmpt"}
        :func:`tme_surrogates` (with ``preserve``), :func:`shuffle_surrogates`,
        :func:`cfr_surrogates` or :func:`cmpt_surrogates`.
    preserve : tuple of str
        For ``"tme"``.
    greater : bool
        Direction of the test (True: is the data's value larger?).
    cfr_max_iter : int
        For ``"cfr"``: L-BFGS iterations per surrogate.

    Returns
    -------
    SurrogateTest
    """
    x = _checks.activity(x, "x")
    if method not in SURROGATE_METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {', '.join(SURROGATE_METHODS)}")
    if not isinstance(greater, (bool, np.bool_)):
        raise ValueError(f"greater must be True or False; got {greater!r}")
    n = _checks.positive_int(n, "n")
    surrogates = make_surrogates(x, n, rng, method=method, preserve=preserve, cfr_max_iter=cfr_max_iter)

    def evaluate(X: np.ndarray, what: str) -> float:
        value = float(statistic(X))
        if not np.isfinite(value):
            raise ValueError(f"statistic returned {value} on the {what}; it must return a finite number")
        return value

    observed = evaluate(x, "data")
    null = np.array([evaluate(s, "surrogates") for s in surrogates])
    extreme = null >= observed if greater else null <= observed
    return SurrogateTest(
        observed=observed,
        null=null,
        mean=float(null.mean()),
        sd=float(null.std(ddof=1)) if n > 1 else 0.0,
        p_value=float((1 + np.count_nonzero(extreme)) / (1 + n)),
        method=method,
        greater=bool(greater),
    )
