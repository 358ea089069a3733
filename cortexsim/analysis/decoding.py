"""Cross-validated linear decoding of hand kinematics from population activity.

Ridge regression from the activity at each time step to the hand position (and,
separately, velocity) at the same time step, with folds over trials or
conditions (never over time, so held-out predictions never see a neighbouring
time step of the same trial).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _checks

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 3, 13))
"""Ridge penalties tried by default (per sample, on z-scored units): 1e-3 ... 1e3."""


@dataclass(frozen=True, eq=False)
class DecodingResult:
    """Held-out decoding accuracy (:func:`decode_kinematics`).

    Attributes
    ----------
    position_r2, velocity_r2 : float
        Cross-validated R^2 (``1 - SSE / SST``, pooled over held-out trials, time
        steps and coordinates; SST around the mean of each coordinate). Higher
        = better decoding; 1 is perfect, 0 is as good as predicting the mean,
        negative is worse than that. NaN when the quantity never varies (e.g.
        the hand is still throughout, so the velocity is always 0).
    predicted_position : ndarray, shape (trials, time, dims)
        Held-out predictions (each trial predicted by the model not trained on it), in m.
    predicted_velocity : ndarray, shape (trials, time, dims)
        Same for the velocity, in m/s.
    alpha_position, alpha_velocity : ndarray, shape (n_folds,)
        Ridge penalty chosen for each outer fold.
    folds : ndarray of int, shape (trials,)
        Outer fold of each trial.
    undefined : str
        Why the quantity is undefined for this input (too few trials for the folds), its numbers then NaN;
        empty when it is defined.
    """

    position_r2: float
    velocity_r2: float
    predicted_position: np.ndarray
    predicted_velocity: np.ndarray
    alpha_position: np.ndarray
    alpha_velocity: np.ndarray
    folds: np.ndarray
    undefined: str = ""

    def __repr__(self) -> str:
        return (
            f"<DecodingResult: position R2 {self.position_r2:.3f}, velocity R2 {self.velocity_r2:.3f}, "
            f"{len(self.alpha_position)} folds>"
        )


def _ridge_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge predictions on ``test_x`` for every penalty.

    Units are z-scored with the training statistics and an intercept is fitted;
    the penalty is ``alpha * samples * ||w||^2``.

    Returns
    -------
    ndarray, shape (len(alphas), test samples, dims)
    """
    mu, sd = train_x.mean(axis=0), train_x.std(axis=0)
    sd[sd == 0] = 1.0
    U, s, vt = np.linalg.svd((train_x - mu) / sd, full_matrices=False)
    y_mean = train_y.mean(axis=0)
    uty = U.T @ (train_y - y_mean)
    test_v = ((test_x - mu) / sd) @ vt.T
    shrink = s / (s**2 + alphas[:, None] * train_x.shape[0])  # (alphas, rank)
    return y_mean + np.einsum("mr,ar,rd->amd", test_v, shrink, uty)


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


_SPREAD_RATIO = 1e-6
"""A unit whose training variance is under this fraction of its mean square about the shift is fitted by SVD."""
_VARIANCE_AGREEMENT = 1e-8
"""Largest relative gap between a unit's variance from the sums and from the samples before the SVD is used."""


class _Sums(NamedTuple):
    """Sufficient statistics of some samples, taken about fixed shifts ``x0`` and ``y0`` (see :func:`_sums`)."""

    n: int
    sx: np.ndarray  # (units,)  sum of x - x0
    sy: np.ndarray  # (dims,)   sum of y - y0
    xx: np.ndarray  # (units, units)  sum of (x - x0)(x - x0)^T
    xy: np.ndarray  # (units, dims)   sum of (x - x0)(y - y0)^T

    def __add__(self, other: _Sums) -> _Sums:  # type: ignore[override]
        return _Sums(self.n + other.n, self.sx + other.sx, self.sy + other.sy, self.xx + other.xx, self.xy + other.xy)

    def __sub__(self, other: _Sums) -> _Sums:
        return _Sums(self.n - other.n, self.sx - other.sx, self.sy - other.sy, self.xx - other.xx, self.xy - other.xy)


def _sums(x: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: np.ndarray) -> _Sums:
    """:class:`_Sums` of the samples of trials ``x`` (trials, time, units) and ``y`` (trials, time, dims)."""
    xs, ys = _flat(x) - x0, _flat(y) - y0
    return _Sums(xs.shape[0], xs.sum(axis=0), ys.sum(axis=0), xs.T @ xs, xs.T @ ys)


class _GramRidge:
    """The ridge fits of :func:`_ridge_predict` from a training set's :class:`_Sums`, for every penalty.

    With ``Z`` the z-scored training samples and ``yc`` the centred targets, the fit
    ``Z^T Z = V diag(lam) V^T`` (an eigendecomposition of the units x units Gram matrix, built from
    the sums: ``sum (x - mu)(x - mu)^T = sum (x - x0)(x - x0)^T - n (mu - x0)(mu - x0)^T``) predicts
    ``y_mean + z V diag(1 / (lam + alpha n)) V^T Z^T yc``: the SVD's ``V diag(s / (s^2 + alpha n)) U^T yc``
    written without ``U``. Units constant on the training set (SD 0) are left out, as their zero
    columns are by the SVD. ``ok`` is False when the sums cannot be trusted to round-off (a unit whose
    training variance is tiny next to its spread about the shift, so the subtraction would cancel, or
    whose SD is round-off itself) or when there are no fewer units than samples (the SVD is then the
    cheaper): the caller then uses :func:`_ridge_predict`.
    """

    def __init__(self, sums: _Sums, train_x: np.ndarray, train_y: np.ndarray) -> None:
        n = sums.n
        self.mu, sd = train_x.mean(axis=0), train_x.std(axis=0)  # exactly as _ridge_predict
        self.y_mean = train_y.mean(axis=0)
        live = sd > 0
        sd[~live] = 1.0
        self.sd, self.n = sd, n
        gram = sums.xx - np.outer(sums.sx, sums.sx / n)
        var = np.diag(gram) / n
        spread = np.diag(sums.xx) / n
        s2 = sd[live] ** 2
        self.ok = bool(
            np.count_nonzero(live) < n
            and np.all(s2 >= _SPREAD_RATIO * spread[live])
            and np.all(np.abs(var[live] - s2) <= _VARIANCE_AGREEMENT * s2)
        )
        if not self.ok:
            return
        s = sd[live]
        self.live = live
        gz = gram[np.ix_(live, live)] / np.outer(s, s)
        zty = (sums.xy[live] - np.outer(sums.sx[live], sums.sy / n)) / s[:, None]
        self.lam, self.V = np.linalg.eigh(gz)
        self.w = self.V.T @ zty  # (rank, dims)

    def predict(self, test_x: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """Predictions (len(alphas), test samples, dims), as :func:`_ridge_predict` returns them."""
        zv = ((test_x - self.mu) / self.sd)[:, self.live] @ self.V
        coef = self.w / (self.lam[:, None] + alphas[:, None, None] * self.n)  # (alphas, rank, dims)
        return self.y_mean + zv @ coef


def _fit_predict(
    sums: _Sums, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, alphas: np.ndarray
) -> np.ndarray:
    """:func:`_ridge_predict` on flattened samples, from the Gram matrix when that is safe (see :class:`_GramRidge`)."""
    fit = _GramRidge(sums, train_x, train_y)
    if fit.ok:
        return fit.predict(test_x, alphas)
    return _ridge_predict(train_x, train_y, test_x, alphas)


def _cross_validated(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, alphas: np.ndarray, groups: Sequence[slice]
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out predictions (trials, time, dims) and the penalty chosen in each outer fold, per column group.

    Each group of columns of ``y`` (e.g. position and velocity) is decoded on its own, exactly as if
    it were the only target: ridge fits each column independently, so the groups share the
    factorisations and only the penalty choice and the prediction are made per group. In each outer
    fold the penalty with the least held-out error over inner folds of the training trials is chosen
    (min(5, training trials // 2) inner folds, at least 2; ties: the larger penalty). The Gram sums
    of each inner fold are taken once per outer fold; an inner training set's are its outer
    training set's minus the held-out fold's.

    Returns
    -------
    pred : ndarray, like ``y``
    chosen : ndarray, shape (len(groups), n_folds)
    """
    x0, y0 = _flat(x).mean(axis=0), _flat(y).mean(axis=0)  # shifts: keep the sums' cancellation small
    pred = np.empty_like(y)
    chosen = np.empty((len(groups), folds.max() + 1))
    for k in range(chosen.shape[1]):
        train, test = folds != k, folds == k
        xt, yt = x[train], y[train]
        n_train = xt.shape[0]
        n_inner = min(max(2, n_train // 2), 5, n_train)
        inner = np.arange(n_train) % n_inner
        held_sums = [_sums(xt[inner == j], yt[inner == j], x0, y0) for j in range(n_inner)]
        total = held_sums[0]
        for part in held_sums[1:]:
            total = total + part
        sse = np.zeros((len(groups), alphas.size))
        for j in range(n_inner):
            fit, held = inner != j, inner == j
            p = _fit_predict(total - held_sums[j], _flat(xt[fit]), _flat(yt[fit]), _flat(xt[held]), alphas)
            err = p - _flat(yt[held])
            for g, cols in enumerate(groups):
                sse[g] += np.sum(err[:, :, cols] ** 2, axis=(1, 2))
        for g in range(len(groups)):
            best = np.flatnonzero(sse[g] <= sse[g].min() * (1 + 1e-12))
            chosen[g, k] = alphas[best].max()
        fitted = _fit_predict(total, _flat(xt), _flat(yt), _flat(x[test]), chosen[:, k])
        for g, cols in enumerate(groups):
            pred[test, :, cols] = fitted[g][:, cols].reshape(pred[test, :, cols].shape)
    return pred, chosen


def _r2(pred: np.ndarray, truth: np.ndarray) -> float:
    flat = _flat(truth)
    sst = np.sum((flat - flat.mean(axis=0)) ** 2)
    if sst == 0:
        return float("nan")  # constant kinematics (e.g. zero velocity throughout): R^2 is undefined
    return float(1.0 - np.sum((pred - truth) ** 2) / sst)


def decode_kinematics(
    X: np.ndarray,
    positions: np.ndarray,
    *,
    dt: float,
    n_folds: int = 5,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    rng: np.random.Generator | None = None,
) -> DecodingResult:
    """Cross-validated ridge decoding of hand position and velocity from activity.

    Trials (or conditions) are split into ``n_folds`` outer folds; each fold is
    predicted by a model trained on the others. Within the training trials the
    ridge penalty is chosen by an inner cross-validation, again over trials
    (min(5, training trials // 2) inner folds, at least 2).
    The activity at time t predicts the kinematics at the same t (no lag).
    Velocity is the finite difference of ``positions`` (``np.gradient``:
    central differences inside, one-sided at the ends) divided by ``dt``.

    Parameters
    ----------
    X : ndarray, shape (trials, time, units)
        Activity (trials or conditions on axis 0), any unit.
    positions : ndarray, shape (trials, time, dims)
        Hand position (e.g. dims = 2, in m) on the same trials and time steps.
    dt : float
        Time step in seconds.
    n_folds : int
        Outer folds, at least 2. With fewer trials than folds, or folds that leave a
        training set under 2 trials, decoding is undefined: the R^2 values are NaN and
        ``undefined`` says why.
    alphas : sequence of float
        Candidate penalties (> 0), per sample on z-scored units: the fit
        minimises ``||y - X w||^2 + alpha * samples * ||w||^2``.
    rng : numpy.random.Generator, optional
        Shuffles the trials before they are dealt into folds. Without it, trial
        ``i`` goes to fold ``i % n_folds`` (deterministic).

    Returns
    -------
    DecodingResult
        Held-out ``position_r2`` and ``velocity_r2`` (higher = better decoding),
        predictions and chosen penalties.
    """
    X = _checks.activity(X, "X", min_time=2)
    pos = _checks.activity(positions, "positions", min_time=2)
    if pos.shape[:2] != X.shape[:2]:
        raise ValueError(
            f"positions must share X's (trials, time) = {X.shape[:2]}; got {pos.shape[:2]}. "
            "Align activity and kinematics to the same trials and time steps."
        )
    dt = _checks.positive_float(dt, "dt")
    n_trials = X.shape[0]
    n_folds = _checks.positive_int(n_folds, "n_folds", low=2)
    alphas = np.asarray(alphas, dtype=float).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ValueError(f"alphas must be a non-empty sequence of finite numbers > 0; got {alphas!r}")
    if n_folds > n_trials or n_trials - -(-n_trials // n_folds) < 2:
        nan = np.full(pos.shape, np.nan)
        return DecodingResult(
            position_r2=float("nan"),
            velocity_r2=float("nan"),
            predicted_position=nan,
            predicted_velocity=nan.copy(),
            alpha_position=np.full(n_folds, np.nan),
            alpha_velocity=np.full(n_folds, np.nan),
            folds=np.full(n_trials, -1),
            undefined=f"{n_trials} trials cannot fill {n_folds} folds with 2 or more training trials each",
        )
    order = np.arange(n_trials) if rng is None else rng.permutation(n_trials)
    folds = np.empty(n_trials, dtype=int)
    folds[order] = np.arange(n_trials) % n_folds

    velocity = np.gradient(pos, dt, axis=1)
    dims = pos.shape[2]
    # one factorisation per training set serves both targets (ridge fits each column on its own)
    pred, (alpha_pos, alpha_vel) = _cross_validated(
        X, np.concatenate([pos, velocity], axis=2), folds, alphas, (slice(0, dims), slice(dims, 2 * dims))
    )
    pred_pos, pred_vel = pred[..., :dims].copy(), pred[..., dims:].copy()
    return DecodingResult(
        position_r2=_r2(pred_pos, pos),
        velocity_r2=_r2(pred_vel, velocity),
        predicted_position=pred_pos,
        predicted_velocity=pred_vel,
        alpha_position=alpha_pos,
        alpha_velocity=alpha_vel,
        folds=folds,
    )
