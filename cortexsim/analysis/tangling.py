"""Trajectory tangling (Russo et al. 2018, *Neuron* 97:953).

Russo, Bittner, Perkins, Seely, London, Lara, Miri, Marshall, Kohn, Jessell, Abbott, Cunningham &
Churchland, "Motor cortex embeds muscle-like commands in an untangled population response".

A population trajectory is *tangled* where two moments have similar states but different
derivatives: a smooth autonomous dynamical system cannot produce that, an input-driven one can.
For every state ``x(c, t)`` (condition c, time t) Russo et al. define

    ``Q(c, t) = max_{c', t'} ||xdot(c, t) - xdot(c', t')||^2 / (||x(c, t) - x(c', t')||^2 + epsilon)``

over all conditions and times, with ``epsilon`` a small constant that keeps the ratio finite;
they set it to 0.1 times the average squared magnitude of x (after centring), which is the rule
here. What this module implements, step by step:

1. Optionally (``n_pcs``) the activity is centred over conditions and time and projected on its
   top PCs (Russo et al. used 8 PCs of soft-normalised neural data).
2. ``xdot`` is the time derivative by central differences (:func:`numpy.gradient` along time,
   per condition; one-sided second-order differences at the ends), in units of x per second,
   unless the caller gives it.
3. ``epsilon = 0.1 * mean_{c,t} ||x(c, t) - mean||^2`` unless given.
4. ``Q`` as above (the pair ``(c, t) = (c', t')`` contributes 0).

Higher = more tangled. M1 is untangled (low Q) compared with muscle activity; a figure-eight is
tangled at its crossing (same state, two velocities) while a circle is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks

EPSILON_FRACTION = 0.1
"""Default ``epsilon``: this fraction of the mean squared distance of the states from their mean."""


@dataclass(frozen=True, eq=False)
class TanglingResult:
    """Outcome of :func:`tangling`.

    Attributes
    ----------
    q : ndarray, shape (conditions, time)
        Tangling of every state, in 1/s^2 (squared derivative units over squared state units).
    epsilon : float
        The constant used, in squared units of x.
    median, q90 : float
        Median and 90th percentile of ``q`` (Russo et al. compare distributions; the 90th percentile
        summarises the tangled tail).
    undefined : str
        Why the quantity is undefined for this input (e.g. constant activity), its numbers then NaN;
        empty when it is defined.
    """

    q: np.ndarray
    epsilon: float
    median: float
    q90: float
    undefined: str = ""

    def __repr__(self) -> str:
        return (
            f"<TanglingResult: median {self.median:.4g}, 90th percentile {self.q90:.4g} (epsilon {self.epsilon:.3g})>"
        )


def tangling(
    x: np.ndarray,
    *,
    dt: float,
    epsilon: float | None = None,
    n_pcs: int | None = None,
    xdot: np.ndarray | None = None,
) -> TanglingResult:
    """Trajectory tangling Q of activity x (Russo et al. 2018; see the module docstring).

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
        Condition-averaged activity (rates in Hz, hidden states, PCs...).
    dt : float
        Time step (s).
    epsilon : float, optional
        Softening constant (squared units of x); default 0.1 x the mean squared distance of the
        states from their mean over conditions and time.
    n_pcs : int, optional
        Project on this many top PCs first (default: all units, no projection).
    xdot : ndarray, shape (conditions, time, units), optional
        Known time derivatives of x (units of x per s), e.g. analytic ones; default: central
        differences. Projected with x when ``n_pcs`` is given.

    Returns
    -------
    TanglingResult
        ``q`` of shape (conditions, time), higher = more tangled; all NaN, with ``undefined`` saying
        why, when x is constant over conditions and time (and ``epsilon`` is not given).
    """
    x = _checks.activity(x, "x", min_time=3)
    dt = _checks.positive_float(dt, "dt")
    c, t, n = x.shape
    flat = x.reshape(-1, n)
    centred = flat - flat.mean(axis=0)
    if n_pcs is not None:
        k = _checks.positive_int(n_pcs, "n_pcs", high=n)
        vt = np.linalg.svd(centred, full_matrices=False)[2]
        centred = centred @ vt[: min(k, vt.shape[0])].T
    if xdot is not None:
        xdot = _checks.activity(xdot, "xdot")
        if xdot.shape != x.shape:
            raise ValueError(f"xdot must have the shape of x {x.shape}; got {xdot.shape}")
        xdot = xdot.reshape(-1, n) if n_pcs is None else xdot.reshape(-1, n) @ vt[: min(k, vt.shape[0])].T
    states = centred.reshape(c, t, -1)
    if epsilon is None:
        epsilon = EPSILON_FRACTION * float(np.mean(np.sum(centred**2, axis=1)))
        if not epsilon > 0:  # no state differs from another: every ratio is 0 / 0
            nan = np.full((c, t), np.nan)
            reason = "x is constant over conditions and time"
            return TanglingResult(q=nan, epsilon=float("nan"), median=float("nan"), q90=float("nan"), undefined=reason)
    else:
        epsilon = _checks.positive_float(epsilon, "epsilon")
    deriv = np.gradient(states, dt, axis=1).reshape(c * t, -1) if xdot is None else xdot
    pos = states.reshape(c * t, -1)
    q = np.empty(c * t)
    block = max(1, 4_000_000 // max(1, c * t))
    sq_pos = np.sum(pos**2, axis=1)
    sq_der = np.sum(deriv**2, axis=1)
    for start in range(0, c * t, block):
        sl = slice(start, start + block)
        d_pos = np.maximum(sq_pos[sl, None] + sq_pos[None] - 2 * pos[sl] @ pos.T, 0.0)
        d_der = np.maximum(sq_der[sl, None] + sq_der[None] - 2 * deriv[sl] @ deriv.T, 0.0)
        q[sl] = np.max(d_der / (d_pos + epsilon), axis=1)
    q = q.reshape(c, t)
    return TanglingResult(q=q, epsilon=float(epsilon), median=float(np.median(q)), q90=float(np.quantile(q, 0.9)))
