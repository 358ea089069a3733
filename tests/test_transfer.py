"""Transfer functions: the Siegert fit reproduces the known LIF numbers; derivatives are exact."""

from __future__ import annotations

import numpy as np
import pytest

from cortexsim.errors import ConfigError
from cortexsim.transfer import TRANSFERS, LIFParams, fit_lif_softplus, make_transfer, siegert_rate


def test_siegert_known_limits():
    lif = LIFParams()
    # far above threshold the rate approaches the deterministic LIF rate
    mu = 60.0
    deterministic = 1 / (lif.refractory + lif.tau_m * np.log((mu - lif.reset) / (mu - lif.threshold)))
    assert siegert_rate(mu, LIFParams(sigma=0.05)) == pytest.approx(deterministic, rel=1e-3)
    # rates rise monotonically with the mean input and never exceed 1 / t_ref
    r = siegert_rate(np.linspace(-10, 80, 50), lif)
    assert np.all(np.diff(r) > 0) and r.max() < 1 / lif.refractory


def test_softplus_fit_matches_the_measured_example():
    """tau_m 10 ms, theta 20 mV, reset 10 mV, t_ref 2 ms, sigma 6 mV -> a 6.43, c 11.24, s 1.77."""
    a, c, s, err = fit_lif_softplus(LIFParams())
    assert a == pytest.approx(6.43, abs=0.02)
    assert c == pytest.approx(11.24, abs=0.05)
    assert s == pytest.approx(1.77, abs=0.02)
    assert err < 2.0
    x = np.linspace(0, 28, 60)
    phi = make_transfer("lif_softplus")
    exact = siegert_rate(x)
    keep = exact < 120
    assert np.max(np.abs(phi(x)[keep] - exact[keep])) < 2.0


@pytest.mark.parametrize("name", TRANSFERS)
def test_derivative_matches_finite_differences(name):
    phi = make_transfer(name)
    x = np.linspace(-5, 40, 91) + 0.013  # avoid the ReLU kink exactly
    h = 1e-6
    numeric = (phi(x + h) - phi(x - h)) / (2 * h)
    np.testing.assert_allclose(phi.derivative(x), numeric, rtol=1e-5, atol=1e-5)
    assert np.all(phi(x) >= 0)


@pytest.mark.parametrize("name", ["lif_softplus", "relu", "rectified_tanh", "softplus"])
def test_out_argument_and_float32(name):
    phi = make_transfer(name)
    x = np.linspace(0, 30, 7, dtype=np.float32)
    out = np.empty_like(x)
    res = phi(x, out=out)
    assert res is out and out.dtype == np.float32
    np.testing.assert_allclose(out, phi(x.astype(np.float64)), rtol=1e-5)


def test_bad_lif_parameters():
    with pytest.raises(ConfigError, match="reset"):
        LIFParams(reset=25.0)
    with pytest.raises(ConfigError, match="lif.tau_m"):
        LIFParams(tau_m=0.0)
