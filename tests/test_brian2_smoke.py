"""Brian2 imports with the installed numpy and simulates a LIF population correctly.

Guards a known trap: brian2 2.9.0 does not import with numpy >= 2.4 (``ndarray.ptp``
was removed), which pyproject.toml pins against.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [
    pytest.mark.brian2,
    # brian2's parser calls pyparsing with deprecated argument names
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pyparsing"),
]


def test_brian2_imports_with_installed_numpy():
    import brian2

    assert brian2.__version__.startswith("2.")
    # the unit system works on numpy arrays (exercises numpy-dependent code paths)
    values = np.array([1.0, 2.0]) * brian2.mV
    assert float(np.max(values) / brian2.mV) == 2.0


@pytest.fixture
def brian2_numpy():
    """Brian2 on the pure-numpy code generation target, in a fresh scope; prefs restored after."""
    import brian2

    previous = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    brian2.start_scope()
    yield brian2
    brian2.prefs.codegen.target = previous


def analytic_lif_rate(v_inf, v_reset, v_th, tau, t_ref):
    """Rate (Hz) of a LIF neuron with constant drive: 1 / (t_ref + tau ln((v_inf - v_reset)/(v_inf - v_th)))."""
    return 1.0 / (t_ref + tau * np.log((v_inf - v_reset) / (v_inf - v_th)))


def test_lif_rate_matches_analytic_rate(brian2_numpy):
    b2 = brian2_numpy
    n = 20
    tau, t_ref = 10e-3, 2e-3             # s
    e_l, v_reset, v_th = -65e-3, -65e-3, -50e-3   # V
    r_m = 100e6                          # ohm
    # constant currents that drive v_inf = E_L + R I from 2 to 35 mV above threshold
    v_inf = v_th + np.linspace(2e-3, 35e-3, n)
    current = (v_inf - e_l) / r_m        # A

    namespace = {"tau": tau * b2.second, "E_L": e_l * b2.volt, "R": r_m * b2.ohm,
                 "v_th": v_th * b2.volt, "v_reset": v_reset * b2.volt}
    group = b2.NeuronGroup(
        n, "dv/dt = (E_L - v + R * I) / tau : volt (unless refractory)\nI : amp",
        threshold="v > v_th", reset="v = v_reset", refractory=t_ref * b2.second,
        method="exact", namespace=namespace,
    )
    group.v = v_reset * b2.volt
    group.I = current * b2.amp
    spikes = b2.SpikeMonitor(group)
    net = b2.Network(group, spikes)
    net.run(200 * b2.ms, namespace={})  # names come from the group's namespace, not this frame

    expected = analytic_lif_rate(v_inf, v_reset, v_th, tau, t_ref)
    trains = spikes.spike_trains()
    measured = np.empty(n)
    for i in range(n):
        times = np.asarray(trains[i] / b2.second)
        assert times.size >= 4, f"neuron {i} fired {times.size} spikes"
        measured[i] = 1.0 / np.mean(np.diff(times))  # steady-state rate from interspike intervals
    np.testing.assert_allclose(measured, expected, rtol=0.05)
    # the spike count over the run agrees too (the first interval lacks the refractory period)
    counts = np.asarray(spikes.count)
    assert np.all(np.abs(counts - expected * 0.2) <= 1.5)
    assert np.all(np.diff(measured) > 0)  # more drive, faster firing
