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

    ``Lambda = Lambda_C (+) Lambda_T (+) Lambda_N
             = Lambda_C x I x I + I x Lambda_T x I + I x I x Lambda_N``,

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
shuffle control that Elsayed & Cunningham contrast with TME. Their "corrected
Fourier" control is not implemented.
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
        ``"tme"`` or ``"shuffle"``.
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


SURROGATE_METHODS = ("tme", "shuffle")


def surrogate_p_value(
    statistic: Callable[[np.ndarray], float],
    x: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    method: str = "tme",
    preserve: tuple[str, ...] = MODES,
    greater: bool = True,
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
    method : {"tme", "shuffle"}
        :func:`tme_surrogates` (with ``preserve``) or :func:`shuffle_surrogates`.
    preserve : tuple of str
        For ``"tme"``.
    greater : bool
        Direction of the test (True: is the data's value larger?).

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
    if method == "tme":
        surrogates = tme_surrogates(x, n, rng, preserve=preserve)
    else:
        surrogates = shuffle_surrogates(x, n, rng)

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
