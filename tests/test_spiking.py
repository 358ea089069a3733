"""The spiking twin (cortexsim.spiking): LIF f-I curve, the mapping formula, a tiny twin that reaches.

All run on Brian2's numpy target (no compilation).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cortexsim import assembly
from cortexsim.config import Config
from cortexsim.transfer import LIFParams, make_transfer, siegert_rate

pytestmark = [
    pytest.mark.brian2,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pyparsing"),
]

LIF = LIFParams()


@pytest.fixture(scope="module")
def small_net():
    """An untrained 120-unit rate network whose readout is fitted by least squares to the reach.

    Recurrent weights are scaled to a quarter (biases re-solved so every unit still rests
    at 5 Hz) to keep rates in the working range without training; the circuit then carries
    the target direction from its inputs (L2/3, L5B) to PT5B, and a fitted readout reaches
    towards every target -- enough to test the twin.  Short trials keep Brian2 fast.
    """
    from cortexsim.spiking import decode

    cfg = Config.from_dict(
        {
            "experiment": {"seed": 3},
            "circuit": {"n_units": 120},
            "task": {"fixation": 0.1, "delay_min": 0.2, "delay_max": 0.3, "eval_delay": 0.3},
        }
    )
    net = assembly.make_rate_network(cfg, assembly.build_circuit(cfg))
    net.init_params(assembly.seeded_rng(cfg, "init"), rest_rate=5.0, input_std=5.0)
    net.set_params({**net.params, "w": 0.25 * net.params["w"]})
    net.set_params({**net.params, "b": net.params["x0"] - net.signed_weight() @ np.full(net.n_units, 5.0)})
    batch = assembly.make_task(cfg).evaluation_set()
    rates = net.simulate(batch).activity
    w_out, b_out = decode.refit_readout(rates, batch.targets, net.out_idx, ridge=0.1)
    net.set_params({**net.params, "w_out": w_out, "b_out": b_out})
    return net, cfg


def test_lif_f_i_curve_matches_siegert_after_calibration():
    from cortexsim.spiking import calibrate_offset
    from cortexsim.spiking.network import lif_rates

    offset = calibrate_offset(LIF, make_transfer("lif", LIF), dt=1e-4)
    # the Euler-Maruyama shortfall at dt = 0.1 ms is a fraction of a millivolt
    assert 0.1 < offset < 0.8
    mu = np.array([13.0, 15.0, 17.0, 19.0, 21.0])  # mV: about 7 ... 60 Hz
    expected = siegert_rate(mu, LIF)
    assert expected[0] > 5 and expected[-1] < 65
    measured = lif_rates(mu, LIF, dt=1e-4, offset_mv=offset, neurons_per_input=250, duration=3.0, seed=11)
    np.testing.assert_allclose(measured, expected, rtol=0.05)


def test_uncalibrated_euler_neuron_fires_below_siegert():
    from cortexsim.spiking.network import lif_rates

    mu = np.array([14.0, 18.0])
    measured = lif_rates(mu, LIF, dt=1e-4, offset_mv=0.0, neurons_per_input=200, duration=2.0, seed=2)
    assert np.all(measured < siegert_rate(mu, LIF))


def test_mean_field_round_trip(small_net):
    from cortexsim.spiking import map_rate_to_spiking

    net, cfg = small_net
    for k in (1, 5):
        params = map_rate_to_spiking(net, cfg.lif, k=k, offset_mv=0.4)
        rates = np.random.default_rng(k).uniform(0, 30, net.n_units)
        np.testing.assert_allclose(params.mean_current(rates), net.signed_weight() @ rates, rtol=1e-10, atol=1e-10)
        # each spike's jump is W / (K tau): K times smaller for K times more neurons
        np.testing.assert_allclose(params.syn_increment_mv * k * params.tau[params.syn_post], params.syn_weight)


def test_mapping_preserves_populations_signs_and_inputs(small_net):
    from cortexsim.spiking import map_rate_to_spiking

    net, cfg = small_net
    params = map_rate_to_spiking(net, cfg.lif, k=3, offset_mv=0.4)
    c = net.connectome
    assert [p[0] for p in params.populations] == [p.name for p in c.populations]
    assert [(p[3], p[4]) for p in params.populations] == [(p.start, p.stop) for p in c.populations]
    assert params.n_units == c.n_units
    # exactly the rate model's synapses, each with its presynaptic unit's Dale sign
    assert set(zip(params.syn_pre, params.syn_post)) == set(zip(*np.nonzero(net.signed_weight().T)))
    assert np.all(np.sign(params.syn_weight) == c.sign[params.syn_pre])
    np.testing.assert_allclose(params.tau, c.tau)
    # inputs only into the units that receive them in the rate model; readout from PT5B
    assert np.all(params.w_in[~net.in_mask] == 0)
    np.testing.assert_array_equal(params.w_in, net.params["w_in"])
    pt = c.population("PT5B")
    np.testing.assert_array_equal(params.out_idx, np.arange(pt.start, pt.stop))


def test_map_rejects_bad_k(small_net):
    from cortexsim.spiking import map_rate_to_spiking

    net, cfg = small_net
    with pytest.raises(ValueError, match="k: 0"):
        map_rate_to_spiking(net, cfg.lif, k=0, offset_mv=0.0)


def test_tiny_twin_reaches_towards_every_target(small_net):
    from cortexsim.spiking import map_rate_to_spiking
    from cortexsim.spiking.twin import run_params

    net, cfg = small_net
    params = map_rate_to_spiking(net, cfg.lif, k=5, offset_mv=0.4)
    batch = assembly.make_task(cfg).evaluation_set()
    out = run_params(net, params, batch, 1, seed=5, target="numpy")
    end = out.outputs[:, 0, -10:].mean(axis=1)  # hold period (last 0.1 s), (conditions, 2)
    error = np.angle(np.exp(1j * (np.arctan2(end[:, 1], end[:, 0]) - batch.params["angle"])))
    assert np.all(np.abs(np.degrees(error)) < 45), np.degrees(error)
    assert np.all(np.linalg.norm(end, axis=1) > 0.01)
    spikes = out.spikes
    assert spikes.ids.max() < params.n_units * params.k and np.all(np.diff(spikes.times) >= 0)
    rate = spikes.times.size / (spikes.n_neurons * spikes.duration)
    assert 1 < rate < 30
    assert out.rates.shape == (8, 1, batch.n_steps, params.n_units)


@pytest.mark.brian2
def test_the_twin_runs_off_the_main_thread():
    """Dask workers run tasks in threads; importing brian2 there must not fail (it installs a Ctrl-C handler)."""
    code = (
        "import signal, threading\n"
        "before = signal.getsignal(signal.SIGINT)  # what this process was started with\n"
        "from cortexsim.spiking.network import lif_rates\n"
        "from cortexsim.transfer import LIFParams\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(lif_rates([18.0], LIFParams(), neurons_per_input=5,\n"
        "                                                          duration=0.05, target='numpy')))\n"
        "t.start(); t.join()\n"
        "assert len(out) == 1 and out[0].shape == (1,), out\n"
        "import brian2, signal\n"
        "assert signal.getsignal(signal.SIGINT) is before, signal.getsignal(signal.SIGINT)\n"
        "assert signal.signal.__module__ == 'signal'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("task_dt", [0.01, 0.0025, 0.003])
def test_pool_rates_keep_time_for_any_task_dt(task_dt):
    """Known answer: one spike gives the sampled impulse response of the exponential filter, in its own step.

    With bins of ``task_dt / m`` (``m = ceil(task_dt / 1 ms)``), a spike in bin ``s`` gives
    ``(1 - d) / bin * d ** (n - s)`` in bin ``n >= s`` (``d = exp(-bin / tau)``), sampled at the
    last bin of every task step.
    """
    from cortexsim.spiking import decode
    from cortexsim.spiking.network import Spikes

    n_steps, spike_time = 100, 40.4 * task_dt
    spikes = Spikes(np.array([spike_time]), np.array([0]), 1, n_steps * task_dt, 0.0)
    rates = decode.pool_rates(spikes, k=1, n_units=1, n_trials=1, n_steps=n_steps, task_dt=task_dt)
    m = int(np.ceil(task_dt / 1e-3 - 1e-9))
    width = task_dt / m
    d, s = np.exp(-width / decode.FILTER_TAU), int(spike_time / width)
    last_bin = (np.arange(n_steps) + 1) * m - 1
    expected = np.where(last_bin >= s, (1 - d) / width * d ** (last_bin - s), 0.0)
    assert np.flatnonzero(rates[0, :, 0])[0] == 40  # the step [40 dt, 41 dt) holds the spike
    np.testing.assert_allclose(rates[0, :, 0], expected, rtol=1e-9, atol=1e-12)


def test_pool_rates_of_a_regular_train_equal_its_rate():
    from cortexsim.spiking import decode
    from cortexsim.spiking.network import Spikes

    task_dt, n_steps, k = 0.0025, 400, 2  # 1 s; two neurons at 100 Hz each
    times = np.repeat(np.arange(0.0, 1.0, 0.01), 2) + 1e-4
    spikes = Spikes(times, np.tile([0, 1], times.size // 2), k, n_steps * task_dt, 0.0)
    rates = decode.pool_rates(spikes, k=k, n_units=1, n_trials=2, n_steps=n_steps // 2, task_dt=task_dt)
    assert rates.shape == (2, 200, 1)
    assert rates.reshape(-1)[200:].mean() == pytest.approx(100.0, rel=0.05)  # sampled 4 times per period


def test_pool_rates_refuse_spikes_of_another_length():
    from cortexsim.spiking import decode
    from cortexsim.spiking.network import Spikes

    spikes = Spikes(np.array([0.1]), np.array([0]), 1, 2.0, 0.0)
    with pytest.raises(ValueError, match="cover 2 s"):
        decode.pool_rates(spikes, k=1, n_units=1, n_trials=1, n_steps=100, task_dt=0.01)


@pytest.mark.brian2
def test_noiseless_lif_neuron_fires_at_the_analytic_rate():
    """cortexsim's Brian2 LIF equations (spiking.equations), nearly without noise, against the closed form
    r = 1 / (t_ref + tau_m ln((mu - V_r) / (mu - theta))) for a constant drive mu above threshold."""
    from cortexsim.spiking.network import lif_rates

    lif = LIFParams(sigma=1e-3)  # Brunel's sigma in mV: the free potential fluctuates by < 0.001 mV
    mu = np.linspace(23.0, 60.0, 6)  # mV above rest; threshold 20 mV, reset 10 mV
    expected = 1.0 / (lif.refractory + lif.tau_m * np.log((mu - lif.reset) / (mu - lif.threshold)))
    measured = lif_rates(mu, lif, neurons_per_input=2, duration=1.0, settle=0.05)
    # Euler steps of 0.1 ms: each interval is lengthened by at most one step (<= 2 % at 200 Hz)
    np.testing.assert_allclose(measured, expected, rtol=0.04)
    assert np.all(np.diff(measured) > 0)
