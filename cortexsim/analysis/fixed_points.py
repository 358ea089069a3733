"""Fixed and slow points of a discrete-time map under constant input.

For a map ``x[t+1] = F(x[t])`` (a recurrent network with its input held at a
constant value ``u``) the fixed points solve ``F(x) = x``. Following Sussillo &
Barak (2013, *Neural Comput.* 25:626) and Golub & Sussillo (2018, *JOSS* 3:1003,
"FixedPointFinder") they are found as the minima of the speed

    ``q(x) = 1/2 ||F(x) - x||^2``

from many starting states sampled along the network's own trajectories. Minima
with ``q = 0`` are fixed points; minima with small ``q > 0`` are slow points.
Each point is then classified by the eigenvalues of the map's Jacobian there
(for a discrete-time map, stable means every ``|lambda| < 1``).

Minimisation: q is a nonlinear least-squares objective with residual
``g(x) = F(x) - x`` and residual Jacobian ``K = J - I``, so its gradient is
``grad q = K^T g = (J - I)^T (F(x) - x)`` (:func:`speed_and_gradient`). All
starts are descended at once, each with its own step control:

* ``method="dense"``: Levenberg-Marquardt steps ``(K^T K + mu I) delta = -K^T g``,
  with the Jacobians formed ((starts, d, d), in chunks) and one batched
  ``np.linalg.solve`` per iteration; the damping ``mu`` follows the gain ratio
  (Nielsen 1999).
* ``method="matrix-free"``: only the products ``J v`` and ``J^T v`` are used,
  batched over starts as one matrix product each. Every iteration first
  tries an inexact Newton step ``K delta = -g`` by GMRES (Saad & Schultz 1986;
  forcing term of Eisenstat & Walker 1996) with up to two halvings; starts
  where that does not lower q (near slow points, where K is singular) take
  a Levenberg-Marquardt step solved by damped CGLS (conjugate gradients on
  the normal equations) instead. Needs a :class:`Jacobian` with
  ``linearize``, as :func:`rate_map` and :func:`ann_map` return. GMRES
  and CGLS multiply and orthogonalise only the rows still open (a row leaves
  the working set once its solve has converged), and a row whose Newton step
  failed goes straight to Levenberg-Marquardt, retrying Newton every fourth
  iteration.

A start stops once ``q < 1e-4 min(tol, 1e-12)``, when its step becomes negligible, when
no damping lowers q (a local minimum: a slow point, or a failure if ``q >=
tol``), when it comes within ``dedup_tol`` of a point another start has
already converged to (early deduplication: it takes that point, as the final
deduplication would have merged it), or, while ``q >= tol``, when q is
stationary (``gtol``: a slow point that would not be kept anyway).

Cost (``benchmarks/fixed_points.py``, 2026-12-01, one core of a machine at
load 3): the trained default N = 500 circuit, 1,000 trajectory-sampled
starts under each of 9 inputs (zero and the 8 delay-period inputs) in 35 s,
of which about 3.5 s classify the 25 points found; before the working sets,
the early deduplication and the stationarity stop it took about 100 s of CPU.

Units: ``q`` is in (state units)^2 per step^2 (mV^2 for the rate network).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import Jacobian, Step
from . import _checks

KINDS = ("stable", "marginal", "saddle", "unstable")
METHODS = ("auto", "dense", "matrix-free")
DENSE_MAX_DIM = 128
"""``method="auto"`` forms Jacobians up to this state dimension (or when no ``linearize`` is given)."""
_CGLS_RTOL = 1e-6  # Levenberg-Marquardt steps by CGLS stop when ||K^T r|| has fallen by this
_KRYLOV_ENTRIES = 2**21  # Krylov basis entries per GMRES block (16 MiB: faster than larger blocks, measured)
_CHUNK_ENTRIES = 2**23  # Jacobian entries formed at once on the dense path (64 MiB of float64)
DEFAULT_GTOL = 1e-3
"""Relative gradient below which a start counts as stalled on a slow point (see :func:`find_fixed_points`)."""
_NEWTON_RETRY = 4  # a row whose Newton step failed retries Newton every this many iterations
_CGLS_FACTOR = 1  # CGLS iterations per Levenberg-Marquardt step at most, per Krylov vector allowed to GMRES


@dataclass(frozen=True, eq=False)
class FixedPoints:
    """Outcome of :func:`find_fixed_points`: the distinct fixed and slow points found.

    Attributes
    ----------
    points : ndarray, shape (n_points, d)
        The points, in state units, lowest ``q`` first.
    q : ndarray, shape (n_points,)
        Speed ``1/2 ||F(x) - x||^2`` at each point (0 for an exact fixed point).
    eigenvalues : ndarray of complex, shape (n_points, d)
        Eigenvalues of the Jacobian ``dF/dx`` at each point, sorted by ``|lambda|``
        descending (slowest-decaying first).
    kinds : tuple of str
        ``"stable"`` (every ``|lambda| < 1 - marginal_tol``), ``"marginal"`` (none
        above ``1 + marginal_tol``, at least one within ``marginal_tol`` of 1: a
        continuous attractor direction), ``"unstable"`` (every ``|lambda| > 1 +
        marginal_tol``) or ``"saddle"`` (the rest: some above, some not).
    modes : ndarray of complex, shape (n_points, d, n_modes)
        Unit-norm right eigenvectors of the ``n_modes`` largest ``|lambda|``
        (the slowest modes), in the order of ``eigenvalues``; each is scaled so
        that its largest entry is real and positive.
    counts : ndarray of int, shape (n_points,)
        Number of starts that converged onto each point.
    n_starts : int
        Number of starting states.
    n_converged : int
        Starts that reached ``q < tol`` (before deduplication).
    marginal_tol : float
        The tolerance used for ``kinds``.
    """

    points: np.ndarray
    q: np.ndarray
    eigenvalues: np.ndarray
    kinds: tuple[str, ...]
    modes: np.ndarray
    counts: np.ndarray
    n_starts: int
    n_converged: int
    marginal_tol: float

    @property
    def n_points(self) -> int:
        """Number of distinct points."""
        return int(self.points.shape[0])

    @property
    def stable(self) -> np.ndarray:
        """Ndarray of bool, shape (n_points,): every ``|lambda| < 1`` at the point."""
        if self.eigenvalues.size == 0:
            return np.zeros(self.n_points, bool)
        return np.all(np.abs(self.eigenvalues) < 1.0, axis=1)

    def of_kind(self, kind: str) -> np.ndarray:
        """The points classified as ``kind``, shape (n, d)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")
        return self.points[np.array([k == kind for k in self.kinds], bool)]

    def __repr__(self) -> str:
        tally = ", ".join(f"{self.kinds.count(k)} {k}" for k in KINDS if k in self.kinds) or "none"
        return (
            f"<FixedPoints: {self.n_points} points in {self.points.shape[1]} dimensions ({tally}) "
            f"from {self.n_starts} starts, {self.n_converged} converged>"
        )


# -- input checks -------------------------------------------------------------------------------------------------
def _states(X: Any, name: str) -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2 or min(arr.shape) == 0:
        hint = " (for one state use X[None])" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d) of states; got shape {arr.shape}{hint}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds {np.count_nonzero(~np.isfinite(arr))} NaN or infinite values")
    return arr


def _call_step(step: Step, X: np.ndarray) -> np.ndarray:
    out = np.asarray(step(X), dtype=float)
    if out.shape != X.shape:
        raise ValueError(f"step(X) must return an array of the shape of X {X.shape}; got {out.shape}")
    return out


def _call_jacobian(jacobian: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    out = np.asarray(jacobian(X), dtype=float)
    n, d = X.shape
    if out.shape != (n, d, d):
        raise ValueError(
            f"jacobian(X) must return an array of shape {(n, d, d)} for X of shape {X.shape}; got {out.shape}"
        )
    return out


def _as_jacobian(jacobian, step: Step) -> Jacobian:
    """``jacobian`` as a :class:`Jacobian`: per-state callables batched, None by finite differences of ``step``."""
    if isinstance(jacobian, Jacobian):
        return jacobian
    if jacobian is None:
        return Jacobian(lambda X: _finite_difference_jacobian(step, X))
    if not callable(jacobian):
        raise TypeError(f"jacobian must be a callable x -> (d, d), a Jacobian or None; got {type(jacobian).__name__}")
    return Jacobian(lambda X: np.stack([np.asarray(jacobian(x), dtype=float) for x in X]))


def _finite_difference_jacobian(step: Step, X: np.ndarray, rel: float = 1e-6) -> np.ndarray:
    """Centred finite-difference Jacobians of ``step`` at the rows of ``X``, shape (n, d, d)."""
    n, d = X.shape
    h = rel * np.maximum(1.0, np.abs(X))  # (n, d)
    J = np.empty((n, d, d))
    for j in range(d):
        plus, minus = X.copy(), X.copy()
        plus[:, j] += h[:, j]
        minus[:, j] -= h[:, j]
        J[:, :, j] = (_call_step(step, plus) - _call_step(step, minus)) / (2.0 * h[:, j, None])
    return J


def _chunk_size(d: int) -> int:
    """Rows whose (d, d) Jacobians are formed at once."""
    return max(1, _CHUNK_ENTRIES // (d * d))


def _chunks(n: int, d: int) -> list[slice]:
    size = _chunk_size(d)
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


# -- the objective --------------------------------------------------------------------------------------------------
def speed_and_gradient(
    step: Step, jacobian: Callable[[np.ndarray], np.ndarray], X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The speed ``q(x) = 1/2 ||F(x) - x||^2`` and its analytic gradient at each state.

    ``grad q = (J - I)^T (F(x) - x)`` with ``J = dF/dx`` (Sussillo & Barak 2013).

    Parameters
    ----------
    step : callable
        ``step(X)``: states (n, d) -> ``F(X)`` (n, d).
    jacobian : callable or Jacobian
        ``jacobian(X)`` -> (n, d, d); a :class:`Jacobian` with ``linearize`` is
        used matrix-free.
    X : ndarray, shape (n, d)
        States.

    Returns
    -------
    q : ndarray, shape (n,)
        In (state units)^2.
    grad : ndarray, shape (n, d)
        ``dq/dx``, in state units.
    """
    X = _states(X, "X")
    g = _call_step(step, X) - X
    linearize = getattr(jacobian, "linearize", None)
    if linearize is not None:
        _, vjp = linearize(X)
        grad = vjp(g) - g
    else:
        grad = np.empty_like(X)
        for sl in _chunks(*X.shape):
            grad[sl] = np.einsum("nij,ni->nj", _call_jacobian(jacobian, X[sl]), g[sl]) - g[sl]
    return 0.5 * np.sum(g * g, axis=1), grad


# -- Levenberg-Marquardt steps ------------------------------------------------------------------------------------
def _dense_steps(jacobian, X: np.ndarray, g: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LM steps from the full Jacobians; returns the steps (n, d) and the model's q after them (n,)."""
    n, d = X.shape
    delta = np.empty_like(X)
    q_model = np.empty(n)
    eye = np.eye(d)
    for sl in _chunks(n, d):
        K = _call_jacobian(jacobian, X[sl]) - eye
        KtK = np.matmul(K.transpose(0, 2, 1), K)
        KtK[:, np.arange(d), np.arange(d)] += mu[sl, None]
        rhs = -np.einsum("nij,ni->nj", K, g[sl])
        step = np.linalg.solve(KtK, rhs[..., None])[..., 0]
        delta[sl] = step
        r = g[sl] + np.einsum("nij,nj->ni", K, step)
        q_model[sl] = 0.5 * np.sum(r * r, axis=1)
    return delta, q_model


def _cgls_steps(
    linearize, X: np.ndarray, g: np.ndarray, mu: np.ndarray, rtol: float, max_cg: int
) -> tuple[np.ndarray, np.ndarray]:
    """LM steps by damped CGLS, matrix-free: minimise ``||K delta + g||^2 + mu ||delta||^2`` per row.

    Rows leave the working set once converged (re-linearised on the rest when an eighth has left).
    """
    jvp, vjp = linearize(X)
    delta = np.zeros_like(X)
    r = -g  # residual -g - K delta
    s = vjp(r) - r  # K^T r - mu delta
    p = s.copy()
    gamma = np.sum(s * s, axis=1)
    stop = (rtol**2) * gamma
    active = gamma > 0
    live = np.arange(X.shape[0])  # rows in the working set
    for _ in range(max_cg):
        if not np.any(active[live]):
            break
        if np.count_nonzero(~active[live]) >= max(1, live.size // 8):  # leave the working set
            live = live[active[live]]
            jvp, vjp = linearize(X[live])
        a_ = active[live]
        pl, m_ = p[live], mu[live]
        t = jvp(pl) - pl
        denom = np.sum(t * t, axis=1) + m_ * np.sum(pl * pl, axis=1)
        a = np.where(a_ & (denom > 0), gamma[live] / np.where(denom > 0, denom, 1.0), 0.0)
        delta[live] += a[:, None] * pl
        r[live] -= a[:, None] * t
        rl = r[live]
        sl = vjp(rl) - rl - m_[:, None] * delta[live]
        gamma_new = np.sum(sl * sl, axis=1)
        gl = gamma[live]
        beta = np.where(a_ & (gl > 0), gamma_new / np.where(gl > 0, gl, 1.0), 0.0)
        p[live] = np.where(a_[:, None], sl + beta[:, None] * pl, pl)
        gamma[live] = np.where(a_, gamma_new, gl)
        active[live] = a_ & (gamma[live] > stop[live])
    return delta, 0.5 * np.sum(r * r, axis=1)


def _gmres(
    matvec: Callable[[np.ndarray, np.ndarray], np.ndarray], b: np.ndarray, rtol: np.ndarray, max_krylov: int
) -> tuple[np.ndarray, np.ndarray]:
    """Batched GMRES (Saad & Schultz 1986) from 0 for ``A x = b`` row by row.

    ``matvec(V, rows)`` gives the products ``A_r V[i]`` for the rows ``r = rows[i]``
    of the batch (indices into b). Classical Gram-Schmidt, repeated for rows that
    lost more than 30 % of their norm (Kahan-Parlett "twice is enough"), Givens
    rotations for the per-row residual; a row stops growing its space once its
    residual is below ``rtol * ||b||`` and leaves the working set then (its
    solution is formed at once), so the rows still open are the only ones
    multiplied and orthogonalised (no restarts: after ``max_krylov`` vectors the
    best iterate so far is returned). Returns the solutions (n, d) and residual
    norms (n,).
    """
    n, d = b.shape
    m = max_krylov
    beta = np.sqrt(np.sum(b * b, axis=1))
    x_out = np.zeros_like(b)
    res_out = beta.copy()
    live = np.flatnonzero(beta > 0)  # rows of the batch in the working set, in order
    size_live = live.size
    V = np.empty((size_live, m + 1, d))
    V[:, 0] = b[live] / beta[live, None]
    R = np.zeros((size_live, m, m))
    e = np.zeros((size_live, m + 1))
    e[:, 0] = beta[live]
    cs, sn = np.ones((size_live, m)), np.zeros((size_live, m))
    bound = rtol[live] * beta[live]
    finished = np.zeros(size_live, bool)  # finalised, waiting to leave the working set
    for k in range(m):
        if live.size == 0:
            break
        w = matvec(V[:, k], live)
        basis = V[:, : k + 1]
        size = np.sqrt(np.sum(w * w, axis=1))
        h = np.matmul(basis, w[:, :, None])[:, :, 0]
        w -= np.matmul(h[:, None, :], basis)[:, 0]
        h_next = np.sqrt(np.sum(w * w, axis=1))
        again = np.flatnonzero(h_next < 0.7 * size)  # cancellation: orthogonalise those rows once more
        if again.size:
            wa, ba = w[again], basis[again]
            h2 = np.matmul(ba, wa[:, :, None])[:, :, 0]
            wa -= np.matmul(h2[:, None, :], ba)[:, 0]
            w[again], h[again] = wa, h[again] + h2
            h_next[again] = np.sqrt(np.sum(wa * wa, axis=1))
        V[:, k + 1] = w / np.where(h_next > 0, h_next, 1.0)[:, None]
        for j in range(k):  # earlier rotations, applied to the new column
            top = cs[:, j] * h[:, j] + sn[:, j] * h[:, j + 1]
            h[:, j + 1] = -sn[:, j] * h[:, j] + cs[:, j] * h[:, j + 1]
            h[:, j] = top
        radius = np.hypot(h[:, k], h_next)
        safe = np.where(radius > 0, radius, 1.0)
        cs[:, k] = np.where(radius > 0, h[:, k] / safe, 1.0)
        sn[:, k] = np.where(radius > 0, h_next / safe, 0.0)
        h[:, k] = radius
        R[:, : k + 1, k] = h
        e[:, k + 1] = -sn[:, k] * e[:, k]
        e[:, k] = cs[:, k] * e[:, k]
        closing = ~finished & ((np.abs(e[:, k + 1]) <= bound) | (h_next <= 0) | (k == m - 1))
        if np.any(closing):
            c = np.flatnonzero(closing)
            Rc = R[c, : k + 1, : k + 1].copy()
            diag = np.arange(k + 1)
            Rc[:, diag, diag] = np.where(Rc[:, diag, diag] == 0, 1.0, Rc[:, diag, diag])
            y = np.linalg.solve(Rc, e[c, : k + 1, None])[:, :, 0]
            x_out[live[c]] = np.matmul(y[:, None, :], V[c, : k + 1])[:, 0]
            res_out[live[c]] = np.abs(e[c, k + 1])
            finished[c] = True
            if np.count_nonzero(finished) >= max(1, finished.size // 8) or k == m - 1:  # leave the working set
                keep = np.flatnonzero(~finished)
                V_new = np.empty((keep.size, m + 1, d))
                V_new[:, : k + 2] = V[keep, : k + 2]
                V, R, e, cs, sn = V_new, R[keep], e[keep], cs[keep], sn[keep]
                bound, live, finished = bound[keep], live[keep], finished[keep]
    return x_out, res_out


def _newton_steps(linearize, X: np.ndarray, g: np.ndarray, eta: np.ndarray, max_krylov: int) -> np.ndarray:
    """Inexact Newton steps ``(J - I) delta = -g`` by GMRES to relative residual ``eta``, in row blocks.

    The products are re-linearised on the rows still open whenever GMRES's working set shrinks.
    """
    n, d = X.shape
    block = max(1, min(n, _KRYLOV_ENTRIES // ((max_krylov + 1) * d)))
    delta = np.empty_like(X)
    for i in range(0, n, block):
        Xb = X[i : min(i + block, n)]
        cache: dict[str, Any] = {"rows": np.arange(Xb.shape[0]), "jvp": linearize(Xb)[0]}

        def matvec(V: np.ndarray, rows: np.ndarray, Xb=Xb, cache=cache) -> np.ndarray:
            if rows.size != cache["rows"].size:  # the working set only shrinks
                cache["rows"], cache["jvp"] = rows, linearize(Xb[rows])[0]
            return cache["jvp"](V) - V

        delta[i : i + Xb.shape[0]] = _gmres(matvec, -g[i : i + Xb.shape[0]], eta[i : i + Xb.shape[0]], max_krylov)[0]
    return delta


def _gradients(jacobian, X: np.ndarray, g: np.ndarray, matrix_free: bool) -> np.ndarray:
    """``grad q = (J - I)^T g`` at the states X (n, d) with residuals g (n, d)."""
    if matrix_free:
        return jacobian.linearize(X)[1](g) - g
    out = np.empty_like(X)
    for sl in _chunks(*X.shape):
        out[sl] = np.einsum("nij,ni->nj", _call_jacobian(jacobian, X[sl]), g[sl]) - g[sl]
    return out


def _minimise(
    step: Step,
    jacobian,
    X0: np.ndarray,
    *,
    matrix_free: bool,
    tol: float,
    max_iter: int,
    krylov_rtol: float,
    max_krylov: int,
    gtol: float = 0.0,
    snap_tol: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Descend q from every start at once; returns the final states (n, d) and their q (n,).

    Dense: Levenberg-Marquardt steps. Matrix-free: an inexact Newton step by
    GMRES (forcing term of Eisenstat & Walker 1996, choice 2, never tighter
    than needed to reach the stopping speed) with up to two
    halvings; rows where it does not lower q take a Levenberg-Marquardt step
    by CGLS instead (near slow points and other singular Jacobians).
    """
    X = X0.copy()
    n, d = X.shape
    g = _call_step(step, X) - X
    q = 0.5 * np.sum(g * g, axis=1)
    linearize = getattr(jacobian, "linearize", None)
    # initial damping: 1e-3 x a scale of K^T K (its largest diagonal entry, or ||K g||^2 / ||g||^2 matrix-free)
    if matrix_free:
        jvp, _ = linearize(X)
        kg = jvp(g) - g
        gg = np.sum(g * g, axis=1)
        scale = np.where(gg > 0, np.sum(kg * kg, axis=1) / np.where(gg > 0, gg, 1.0), 1.0)
    else:
        scale = np.empty(n)
        for sl in _chunks(n, d):
            K = _call_jacobian(jacobian, X[sl]) - np.eye(d)
            scale[sl] = np.max(np.sum(K * K, axis=1), axis=1)
    scale = np.maximum(scale, np.finfo(float).tiny)
    mu = 1e-3 * scale
    nu = np.full(n, 2.0)
    eta = np.full(n, 0.1)
    q_done = min(tol, 1e-12) * 1e-4  # well below the acceptance threshold, so duplicates coincide closely
    active = q > q_done
    newton_failed = np.zeros(n, bool)
    anchors, anchor_rows = np.empty((0, d)), []  # converged points so far (for snap_tol) and their rows
    for iteration in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        x, gi, qi = X[idx], g[idx], q[idx]
        x_new, g_new, q_new = x.copy(), gi.copy(), qi.copy()
        ok = np.zeros(idx.size, bool)
        step_size = np.zeros(idx.size)
        if matrix_free:
            # rows whose Newton step failed last iteration (near a slow point) go straight to
            # Levenberg-Marquardt, retrying Newton every NEWTON_RETRY-th iteration
            newton = np.flatnonzero(~newton_failed[idx] | (iteration % _NEWTON_RETRY == 0))
            delta = np.zeros_like(x)
            delta[newton] = _newton_steps(linearize, x[newton], gi[newton], eta[idx[newton]], max_krylov)
            ok[np.setdiff1d(np.arange(idx.size), newton)] = False
            tried = np.zeros(idx.size, bool)
            tried[newton] = True
            for frac in (1.0, 0.5, 0.25):
                rows = np.flatnonzero(~ok & tried)
                if rows.size == 0:
                    break
                xt = x[rows] + frac * delta[rows]
                gt = _call_step(step, xt) - xt
                qt = 0.5 * np.sum(gt * gt, axis=1)
                good = np.isfinite(qt) & (qt < qi[rows])
                r = rows[good]
                x_new[r], g_new[r], q_new[r], ok[r] = xt[good], gt[good], qt[good], True
                step_size[r] = frac * np.sqrt(np.sum(delta[r] * delta[r], axis=1))
        if matrix_free:
            newton_failed[idx[newton]] = ~ok[newton]
        lm = np.flatnonzero(~ok)
        if lm.size:  # Levenberg-Marquardt for the rest (every row on the dense path)
            rows = idx[lm]
            if matrix_free:
                dl, q_model = _cgls_steps(linearize, x[lm], gi[lm], mu[rows], _CGLS_RTOL, _CGLS_FACTOR * max_krylov)
            else:
                dl, q_model = _dense_steps(jacobian, x[lm], gi[lm], mu[rows])
            xt = x[lm] + dl
            gt = _call_step(step, xt) - xt
            qt = 0.5 * np.sum(gt * gt, axis=1)
            predicted = qi[lm] - q_model
            rho = np.where(predicted > 0, (qi[lm] - qt) / np.where(predicted > 0, predicted, 1.0), -1.0)
            good = np.isfinite(qt) & (qt < qi[lm]) & (rho > 0)
            # Nielsen's damping update: shrink after a good step, grow geometrically after a rejected one
            mu[rows] = np.where(
                good, mu[rows] * np.maximum(1 / 3, 1 - (2 * np.clip(rho, 0, 1) - 1) ** 3), mu[rows] * nu[rows]
            )
            nu[rows] = np.where(good, 2.0, nu[rows] * 2.0)
            r = lm[good]
            x_new[r], g_new[r], q_new[r], ok[r] = xt[good], gt[good], qt[good], True
            step_size[r] = np.sqrt(np.sum(dl[good] * dl[good], axis=1))
        # Eisenstat-Walker choice 2 (gamma = 0.9, alpha = 2) with their safeguard, within [krylov_rtol, 0.1]
        ratio = np.where(ok, q_new / qi, 1.0)  # = (||g_new|| / ||g||)^2
        new_eta = 0.9 * ratio
        previous = 0.9 * eta[idx] ** 2
        new_eta = np.where(previous > 0.1, np.maximum(new_eta, previous), new_eta)
        # no need to solve more accurately than takes q below q_done: ||g_new|| ~ eta ||g||
        floor = np.maximum(krylov_rtol, 0.5 * np.sqrt(q_done / np.maximum(q_new, q_done)))
        eta[idx] = np.clip(new_eta, np.minimum(floor, 0.1), 0.1)
        X[idx], g[idx], q[idx] = x_new, g_new, q_new
        small_step = ok & (step_size <= 1e-12 * (1.0 + np.sqrt(np.sum(x * x, axis=1))))
        stuck = mu[idx] > 1e16 * scale[idx]  # no decrease at any damping: a minimum of q (a slow point)
        done = (q_new <= q_done) | small_step | stuck
        if snap_tol > 0:  # early deduplication: a start within snap_tol of a converged point takes that point
            fresh = idx[done & (q_new <= q_done)]
            for i in fresh:
                if anchors.shape[0] == 0 or np.min(np.sum((anchors - X[i]) ** 2, axis=1)) >= snap_tol**2:
                    anchors = np.vstack([anchors, X[i]])
                    anchor_rows.append(int(i))
            rest = np.flatnonzero(~done)
            if rest.size and anchors.shape[0]:
                d2 = (
                    np.sum(x_new[rest] ** 2, axis=1)[:, None]
                    - 2.0 * x_new[rest] @ anchors.T
                    + np.sum(anchors**2, axis=1)[None, :]
                )
                near = np.argmin(d2, axis=1)
                hit = d2[np.arange(rest.size), near] < snap_tol**2
                if np.any(hit):
                    rows, src = idx[rest[hit]], np.asarray(anchor_rows)[near[hit]]
                    X[rows], g[rows], q[rows] = X[src], g[src], q[src]
                    done[rest[hit]] = True
        # a stationary point of q with q at or above tol: a slow point that will not be kept, no further descent
        rest = np.flatnonzero(~done & (q_new >= tol))
        if rest.size and gtol > 0:
            grad = _gradients(jacobian, x_new[rest], g_new[rest], matrix_free)
            size = np.sqrt(scale[idx[rest]] * np.sum(g_new[rest] ** 2, axis=1))
            done[rest] = np.sqrt(np.sum(grad * grad, axis=1)) < gtol * size
        active[idx[done]] = False
    return X, q


# -- classification ------------------------------------------------------------------------------------------------
def _classify(moduli: np.ndarray, tol: float) -> str:
    outside = moduli > 1.0 + tol
    near = np.abs(moduli - 1.0) <= tol
    if not outside.any():
        return "marginal" if near.any() else "stable"
    return "unstable" if outside.all() else "saddle"


def _deduplicate(X: np.ndarray, q: np.ndarray, dedup_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy, lowest q first: keep a point unless it lies within ``dedup_tol`` of one kept; return kept, counts."""
    order = np.argsort(q, kind="stable")
    kept: list[int] = []
    counts: list[int] = []
    centres = np.empty((0, X.shape[1]))
    for i in order:
        if centres.shape[0]:
            dist = np.sqrt(np.sum((centres - X[i]) ** 2, axis=1))
            j = int(np.argmin(dist))
            if dist[j] < dedup_tol:
                counts[j] += 1
                continue
        kept.append(int(i))
        counts.append(1)
        centres = np.vstack([centres, X[i]])
    return np.array(kept, int), np.array(counts, int)


def find_fixed_points(
    step: Step,
    x_init: np.ndarray,
    *,
    jacobian: Callable[[np.ndarray], np.ndarray] | Jacobian | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
    dedup_tol: float = 1e-3,
    marginal_tol: float = 1e-3,
    n_modes: int = 3,
    method: str = "auto",
    krylov_rtol: float = 1e-10,
    max_krylov: int = 40,
    gtol: float = DEFAULT_GTOL,
) -> FixedPoints:
    """Fixed and slow points of ``x[t+1] = F(x)`` by minimising ``q = 1/2 ||F(x) - x||^2`` from many starts.

    The method of Sussillo & Barak (2013) as packaged by Golub & Sussillo
    (2018): every start descends q (batched Levenberg-Marquardt, see the module
    docstring), points with ``q < tol`` are kept, points closer than
    ``dedup_tol`` are merged (the lowest ``q`` stands for the group) and each
    is classified by the eigenvalues of ``dF/dx`` there.

    Parameters
    ----------
    step : callable
        ``step(X)``: states (n, d) -> ``F(X)`` (n, d), vectorised over rows;
        the map under a constant input (see :func:`rate_map`, :func:`ann_map`).
    x_init : ndarray, shape (n_starts, d)
        Initial states, e.g. from :func:`sample_starts`.
    jacobian : callable or Jacobian, optional
        ``jacobian(x)``: one state (d,) -> ``dF/dx`` (d, d); or a :class:`Jacobian`, whose
        ``full`` is batched (states (n, d) -> (n, d, d)) and whose ``linearize`` also allows
        the matrix-free solver (:func:`rate_map`, :func:`ann_map` and
        :func:`~cortexsim.analysis.loop_map.arm_loop_map` return one).  None: centred finite
        differences of ``step`` (2 d extra evaluations per state; for small maps).
    tol : float
        Points with ``q < tol`` are kept (state units squared per step squared).
        Starts stop early once ``q < 1e-4 min(tol, 1e-12)`` (so raising ``tol`` keeps more slow
        points without locating the fixed points less precisely).
    max_iter : int
        Levenberg-Marquardt iterations per start at most.
    dedup_tol : float
        Points closer than this (Euclidean, state units) count as one.
    marginal_tol : float
        ``|lambda|`` within this of 1 counts as marginal (see :class:`FixedPoints`).
    n_modes : int
        Number of slowest eigenvectors kept per point (capped at d).
    method : {"auto", "dense", "matrix-free"}
        ``"auto"``: matrix-free when ``jacobian`` has ``linearize`` and
        ``d > DENSE_MAX_DIM``, dense otherwise.
    krylov_rtol : float
        Matrix-free only: the smallest relative residual asked of a Newton
        step's GMRES (the forcing term adapts between it and 0.1).
    max_krylov : int
        Matrix-free only: Krylov vectors per Newton step at most (GMRES is not
        restarted; CGLS steps take at most twice as many iterations).
    gtol : float
        A start whose ``q >= tol`` stops at a stationary point of q (a slow
        point that would not be kept) once ``||grad q|| < gtol ||K|| ||g||``
        (``||K||`` estimated at the start, see the module docstring); 0 turns
        the test off. Starts with ``q < tol`` always descend to the stopping
        speed, so kept slow points are located as precisely as before.

    Returns
    -------
    FixedPoints
        Distinct points (lowest q first) with their q, Jacobian eigenvalues
        (sorted by modulus, descending), kinds, slowest modes and counts.
        Empty (``n_points == 0``) when no start reaches ``q < tol``.
    """
    starts = _states(x_init, "x_init")
    n, d = starts.shape
    jacobian = _as_jacobian(jacobian, step)
    tol = _checks.positive_float(tol, "tol")
    dedup_tol = _checks.positive_float(dedup_tol, "dedup_tol")
    marginal_tol = _checks.positive_float(marginal_tol, "marginal_tol")
    krylov_rtol = _checks.positive_float(krylov_rtol, "krylov_rtol")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    max_krylov = _checks.positive_int(max_krylov, "max_krylov")
    if isinstance(gtol, bool) or not np.isfinite(gtol) or not 0 <= gtol < 1:
        raise ValueError(f"gtol must be a number in [0, 1); got {gtol!r}")
    n_modes = min(_checks.positive_int(n_modes, "n_modes"), d)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {', '.join(METHODS)}")
    if not callable(step) or not callable(jacobian):
        raise ValueError("step and jacobian must be callables (see rate_map / ann_map)")
    has_linearize = getattr(jacobian, "linearize", None) is not None
    if method == "matrix-free" and not has_linearize:
        raise ValueError("method='matrix-free' needs a Jacobian with linearize (as rate_map and ann_map return)")
    matrix_free = method == "matrix-free" or (method == "auto" and has_linearize and d > DENSE_MAX_DIM)

    X, q = _minimise(
        step,
        jacobian,
        starts,
        matrix_free=matrix_free,
        tol=tol,
        max_iter=max_iter,
        krylov_rtol=krylov_rtol,
        max_krylov=max_krylov,
        gtol=gtol,
        snap_tol=dedup_tol,
    )
    good = np.flatnonzero(np.isfinite(q) & (q < tol))
    kept, counts = _deduplicate(X[good], q[good], dedup_tol)
    points, q_kept = X[good][kept], q[good][kept]

    k = points.shape[0]
    eigenvalues = np.empty((k, d), complex)
    modes = np.empty((k, d, n_modes), complex)
    for sl in _chunks(k, d):
        J = _call_jacobian(jacobian, points[sl])
        vals, vecs = np.linalg.eig(J)
        order = np.argsort(-np.abs(vals), axis=1, kind="stable")
        vals = np.take_along_axis(vals, order, axis=1)
        vecs = np.take_along_axis(vecs, order[:, None, :], axis=2)[:, :, :n_modes]
        vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        lead = np.take_along_axis(vecs, np.argmax(np.abs(vecs), axis=1)[:, None, :], axis=1)
        vecs = vecs * (np.abs(lead) / lead)  # largest entry real and positive
        eigenvalues[sl] = vals
        modes[sl] = vecs
    kinds = tuple(_classify(np.abs(ev), marginal_tol) for ev in eigenvalues)
    return FixedPoints(
        points=points,
        q=q_kept,
        eigenvalues=eigenvalues,
        kinds=kinds,
        modes=modes,
        counts=counts,
        n_starts=n,
        n_converged=int(good.size),
        marginal_tol=marginal_tol,
    )


# -- starts and loadings -------------------------------------------------------------------------------------------
def sample_starts(states: np.ndarray, n: int, rng: np.random.Generator, noise_std: float = 0.0) -> np.ndarray:
    """Starting states for :func:`find_fixed_points`, drawn from simulated trajectories.

    As in Sussillo & Barak (2013) and Golub & Sussillo (2018): states visited by
    the network, optionally jittered by isotropic Gaussian noise so that starts
    also fall off the trajectories (where unstable points and saddles lie).

    Parameters
    ----------
    states : ndarray, shape (trials, time, d)
        Trajectories of the state (e.g. x in mV for the rate network; ``h``, or
        ``[h, c]`` for the LSTM).
    n : int
        Number of starts. Drawn without replacement when ``n <= trials * time``,
        else with replacement.
    rng : numpy.random.Generator
    noise_std : float
        SD of the added noise, in state units (>= 0).

    Returns
    -------
    ndarray, shape (n, d)
    """
    states = _checks.activity(states, "states")
    n = _checks.positive_int(n, "n")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)); got {rng!r}")
    if isinstance(noise_std, bool) or not np.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0 (state units); got {noise_std!r}")
    flat = states.reshape(-1, states.shape[-1])
    pick = rng.choice(flat.shape[0], size=n, replace=n > flat.shape[0])
    out = flat[pick].copy()
    if noise_std > 0:
        out += rng.normal(0.0, noise_std, out.shape)
    return out


def mode_loadings(modes: np.ndarray, groups: Mapping[str, Any]) -> dict[str, float]:
    """Each group's (population's) share of a mode's squared norm.

    Parameters
    ----------
    modes : ndarray, shape (d,) or (d, k)
        A mode (e.g. ``FixedPoints.modes[i, :, 0]``), real or complex; with k
        columns each is normalised to unit norm and the shares are averaged
        over the k modes (the share of the subspace).
    groups : dict of str to index
        Units of each group: an integer index array, a boolean mask of length d
        or a slice (e.g. ``{p.name: p.slice for p in connectome.populations}``).

    Returns
    -------
    dict of str to float
        ``sum_{i in group} |v_i|^2 / ||v||^2``, in [0, 1]. The shares sum to 1
        when the groups partition the units; overlapping groups are each counted.
    """
    v = np.asarray(modes)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"modes must be a finite, non-empty (d,) or (d, k) array; got shape {np.shape(modes)}")
    power = np.abs(v) ** 2
    norms = power.sum(axis=0)
    if np.any(norms == 0):
        raise ValueError("a mode is all zeros; its loadings are undefined")
    share = (power / norms).mean(axis=1)
    d = v.shape[0]
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty dict of name -> unit indices")
    out = {}
    for name, index in groups.items():
        if isinstance(index, slice):
            idx = np.arange(d)[index]
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (d,):
                    raise ValueError(f"group {name!r}: a boolean mask must have length {d}; got shape {idx.shape}")
                idx = np.flatnonzero(idx)
            elif idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < -d or idx.max() >= d):
                raise ValueError(f"group {name!r}: indices must be integers in [0, {d}); got {index!r}")
        out[str(name)] = float(share[np.unique(np.asarray(idx, int) % d)].sum()) if np.size(idx) else 0.0
    return out


# -- cortexsim models: each owns its map ------------------------------------------------------------------------------
def rate_map(net: Any, u: np.ndarray) -> tuple[Step, Jacobian]:
    """The noise-free map of a :class:`~cortexsim.rate.RateNetwork` under constant input ``u``: ``net.step_map(u)``.

    Kept for scripts written against earlier releases; the model owns its map
    (:meth:`cortexsim.rate.RateNetwork.step_map`, equations there).
    """
    return net.step_map(u)


def arm_loop_map(net: Any, u: np.ndarray) -> tuple[Step, Jacobian]:
    """The noise-free closed loop of a model driving the arm, under constant task input ``u``: ``net.step_map(u)``.

    Kept for scripts written against earlier releases; the model owns its map (:mod:`cortexsim.closed_loop_map`).
    """
    return net.step_map(u)


def ann_map(model: Any, u: np.ndarray) -> tuple[Step, Jacobian]:
    """The noise-free update of a :mod:`cortexsim.ann` baseline under constant input ``u``: ``model.step_map(u)``.

    Kept for scripts written against earlier releases; the model owns its map (equations in
    :mod:`cortexsim.ann_cells`).
    """
    return model.step_map(u)
