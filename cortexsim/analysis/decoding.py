"""Cross-validated linear decoding of hand kinematics from population activity.

Ridge regression from the activity at each time step to the hand position (and,
separately, velocity) at the same time step, with folds over trials or
conditions (never over time, so held-out predictions never see a neighbouring
time step of the same trial).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def _choose_alpha(x: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> float:
    """Penalty with the least held-out error over inner folds of the training trials (ties: larger)."""
    n_train = x.shape[0]
    n_inner = min(max(2, n_train // 2), 5, n_train)
    inner = np.arange(n_train) % n_inner
    sse = np.zeros(alphas.size)
    for k in range(n_inner):
        fit, held = inner != k, inner == k
        pred = _ridge_predict(_flat(x[fit]), _flat(y[fit]), _flat(x[held]), alphas)
        sse += np.sum((pred - _flat(y[held])) ** 2, axis=(1, 2))
    best = np.flatnonzero(sse <= sse.min() * (1 + 1e-12))
    return float(alphas[best].max())


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def _cross_validated(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out predictions (trials, time, dims) and the penalty chosen in each outer fold."""
    pred = np.empty_like(y)
    chosen = np.empty(folds.max() + 1)
    for k in range(chosen.size):
        train, test = folds != k, folds == k
        chosen[k] = _choose_alpha(x[train], y[train], alphas)
        fit = _ridge_predict(_flat(x[train]), _flat(y[train]), _flat(x[test]), np.array([chosen[k]]))
        pred[test] = fit[0].reshape(y[test].shape)
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
    pred_pos, alpha_pos = _cross_validated(X, pos, folds, alphas)
    pred_vel, alpha_vel = _cross_validated(X, velocity, folds, alphas)
    return DecodingResult(
        position_r2=_r2(pred_pos, pos),
        velocity_r2=_r2(pred_vel, velocity),
        predicted_position=pred_pos,
        predicted_velocity=pred_vel,
        alpha_position=alpha_pos,
        alpha_velocity=alpha_vel,
        folds=folds,
    )
