"""Rate transfer functions phi(x): input x in mV to rate r in Hz.

The default, ``"lif_softplus"``, is a softplus fitted to the Siegert (Ricciardi)
rate of the noisy leaky integrate-and-fire neuron that the spiking twin uses, so
that the trained rate network is that spiking network's mean-field twin:

    r = a * s * log(1 + exp((x - c) / s))

with ``a`` (Hz/mV), ``c`` (mV) and ``s`` (mV) fitted by least squares to

    1 / r = t_ref + tau_m * sqrt(pi) * integral_{(V_r - x)/sigma}^{(theta - x)/sigma} e^{u^2} (1 + erf u) du

(Ricciardi 1977; Brunel 2000, eq. 21) over inputs whose rate is at most
``fit_max_rate``.  For tau_m 10 ms, theta 20 mV, V_r 10 mV, t_ref 2 ms and
sigma 6 mV this gives a = 6.43 Hz/mV, c = 11.23 mV, s = 1.77 mV (max error
1.8 Hz below 120 Hz).  Nothing here is hard-coded: the fit runs from the formula.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import integrate, optimize, special

from . import _validate as v
from .config import TRANSFER_NAMES, LIFParams

DEFAULT_LIF = LIFParams()
"""The default ``[lif]`` neuron."""

TRANSFERS = TRANSFER_NAMES
"""Names accepted by :func:`make_transfer` (the ``rate.transfer`` choices of :mod:`cortexsim.config`)."""


def siegert_rate(mu: float | np.ndarray, lif: LIFParams = DEFAULT_LIF) -> np.ndarray:
    """Stationary firing rate (Hz) of a LIF neuron with white-noise input.

    Parameters
    ----------
    mu : float or ndarray
        Mean input, as the free membrane potential it would reach (mV above rest).
    lif : LIFParams

    Returns
    -------
    ndarray
        Rate in Hz, same shape as ``mu``.
    """
    mu = np.asarray(mu, dtype=float)
    out = np.empty(mu.shape)
    for idx, m in np.ndenumerate(mu):
        lo, hi = (lif.reset - m) / lif.sigma, (lif.threshold - m) / lif.sigma
        # e^{u^2}(1 + erf u) = erfcx(-u), finite for any u
        area, _ = integrate.quad(lambda u: special.erfcx(-u), lo, hi, limit=200)
        out[idx] = 1.0 / (lif.refractory + lif.tau_m * np.sqrt(np.pi) * area)
    return out


@functools.lru_cache(maxsize=16)
def fit_lif_softplus(lif: LIFParams = DEFAULT_LIF, fit_max_rate: float = 120.0) -> tuple[float, float, float, float]:
    """Fit ``a * s * log(1 + exp((x - c)/s))`` to :func:`siegert_rate`.

    Returns
    -------
    a : float
        Gain (Hz/mV).
    c : float
        Threshold (mV).
    s : float
        Softness (mV).
    max_error : float
        Largest absolute error (Hz) over the fitted range.
    """
    x = np.linspace(lif.reset - 3 * lif.sigma, lif.threshold + 6 * lif.sigma, 601)
    r = siegert_rate(x, lif)
    keep = r <= fit_max_rate

    def model(x, a, c, s):
        return a * s * np.logaddexp(0.0, (x - c) / s)

    p0 = [1.0 / (lif.tau_m * lif.sigma), lif.threshold - lif.sigma, lif.sigma / 3]
    (a, c, s), _ = optimize.curve_fit(model, x[keep], r[keep], p0=p0, maxfev=20000)
    err = float(np.max(np.abs(model(x[keep], a, c, s) - r[keep])))
    return float(a), float(c), float(abs(s)), err


class Transfer:
    """A rate transfer function with its derivative.

    Call ``phi(x)`` for rates (Hz) and ``phi.derivative(x)`` for dr/dx (Hz/mV);
    both accept arrays of any shape and an optional ``out`` array.
    """

    name: str = "transfer"

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rate phi(x) (Hz) of input ``x`` (mV), any shape; written into ``out`` when given."""
        raise NotImplementedError

    def derivative(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Slope phi'(x) (Hz/mV), same shape as ``x``; written into ``out`` when given."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={val:.4g}" for k, val in vars(self).items() if isinstance(val, float))
        return f"<Transfer {self.name}: {params}>"


class Softplus(Transfer):
    """``r = gain * s * log(1 + exp((x - threshold)/s))``; slope -> ``gain`` far above threshold."""

    name = "softplus"

    def __init__(self, gain: float, threshold: float, softness: float, name: str = "softplus"):
        self.gain, self.threshold, self.softness, self.name = float(gain), float(threshold), float(softness), name

    def __call__(self, x, out=None):
        """phi(x) (Hz) of input ``x`` (mV), into ``out`` when given."""
        # softplus(z) = max(z, 0) + log1p(exp(-|z|)): stable, and numpy's exp/log1p are
        # SIMD-vectorised (about 5x faster than np.logaddexp in float32)
        z = np.subtract(x, self.threshold, out=out)
        z *= 1.0 / self.softness
        tail = np.abs(z)
        np.negative(tail, out=tail)
        np.exp(tail, out=tail)
        np.log1p(tail, out=tail)
        np.maximum(z, 0.0, out=z)
        z += tail
        z *= self.gain * self.softness
        return z

    def derivative(self, x, out=None):
        """phi'(x) (Hz/mV), into ``out`` when given."""
        # gain * sigmoid(z), computed via tanh to avoid overflow warnings
        z = np.subtract(x, self.threshold, out=out)
        z *= 0.5 / self.softness
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5 * self.gain
        return z


class ReLU(Transfer):
    """``r = gain * max(x - threshold, 0)``."""

    name = "relu"

    def __init__(self, gain: float, threshold: float):
        self.gain, self.threshold = float(gain), float(threshold)

    def __call__(self, x, out=None):
        """phi(x) (Hz) of input ``x`` (mV), into ``out`` when given."""
        z = np.subtract(x, self.threshold, out=out)
        np.maximum(z, 0.0, out=z)
        z *= self.gain
        return z

    def derivative(self, x, out=None):
        """phi'(x) (Hz/mV), into ``out`` when given."""
        out = np.empty_like(x) if out is None else out
        np.greater(x, self.threshold, out=out)
        out *= self.gain
        return out


class RectifiedTanh(Transfer):
    """``r = r_max * tanh(gain * max(x - threshold, 0) / r_max)``: saturates at ``r_max`` Hz."""

    name = "rectified_tanh"

    def __init__(self, gain: float, threshold: float, r_max: float = 100.0):
        self.gain, self.threshold, self.r_max = float(gain), float(threshold), float(r_max)

    def __call__(self, x, out=None):
        """phi(x) (Hz) of input ``x`` (mV), into ``out`` when given."""
        z = np.subtract(x, self.threshold, out=out)
        np.maximum(z, 0.0, out=z)
        z *= self.gain / self.r_max
        np.tanh(z, out=z)
        z *= self.r_max
        return z

    def derivative(self, x, out=None):
        """phi'(x) (Hz/mV), into ``out`` when given."""
        r = self(x)
        out = np.empty_like(r) if out is None else out
        np.multiply(r, r, out=out)
        out *= -self.gain / self.r_max**2
        out += self.gain
        out *= np.asarray(x) > self.threshold
        return out


class TabulatedLIF(Transfer):
    """The Siegert rate itself, as a cubic spline on a 0.1 mV grid (slower; exact twin)."""

    name = "lif"

    def __init__(self, lif: LIFParams):
        from scipy.interpolate import CubicSpline

        self.lo, self.hi = lif.reset - 4 * lif.sigma, lif.threshold + 12 * lif.sigma
        grid = np.arange(self.lo, self.hi + 0.05, 0.1)
        self._spline = CubicSpline(grid, siegert_rate(grid, lif), extrapolate=True)
        self._slope = self._spline.derivative()

    def __call__(self, x, out=None):
        """phi(x) (Hz) of input ``x`` (mV), into ``out`` when given."""
        r = self._spline(np.clip(x, self.lo, self.hi))
        np.maximum(r, 0.0, out=r)
        if out is not None:
            out[...] = r
            return out
        return r

    def derivative(self, x, out=None):
        """phi'(x) (Hz/mV), into ``out`` when given."""
        d = self._slope(np.clip(x, self.lo, self.hi)) * ((x > self.lo) & (x < self.hi))
        if out is not None:
            out[...] = d
            return out
        return d


def make_transfer(
    name: str, lif: LIFParams = DEFAULT_LIF, gain: float | None = None, threshold: float | None = None
) -> Transfer:
    """Build a transfer function by name.

    Parameters
    ----------
    name : str
        One of :data:`TRANSFERS`.
    lif : LIFParams
        Neuron whose Siegert curve ``"lif_softplus"`` and ``"lif"`` follow; the
        generic forms take their default gain and threshold from its fit, so every
        choice works in the same mV / Hz range.
    gain, threshold : float, optional
        Override the gain (Hz/mV) and threshold (mV) of ``softplus``, ``relu`` and
        ``rectified_tanh``.
    """
    v.choice(name, "rate.transfer", TRANSFERS)
    a, c, s, _ = fit_lif_softplus(lif)
    if name == "lif_softplus":
        return Softplus(a, c, s, name="lif_softplus")
    if name == "lif":
        return TabulatedLIF(lif)
    gain = a if gain is None else gain
    threshold = c if threshold is None else threshold
    if name == "softplus":
        return Softplus(gain, threshold, 1.0)
    if name == "relu":
        return ReLU(gain, threshold)
    return RectifiedTanh(gain, threshold)
