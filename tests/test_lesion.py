"""Lesions of the trained circuit: silenced units fire nothing, cut projections carry nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_rate import SHORT, directional_check, small_network

from cortexsim.anatomy import check_config
from cortexsim.config import Config
from cortexsim.errors import ConfigError
from cortexsim.lesion import LesionConfig, apply_lesion, cut_synapses, silenced_units


def _units(net, name):
    return net.connectome.population(name).slice


def test_silenced_units_fire_nothing_and_act_as_if_their_synapses_were_gone():
    net = small_network(n_units=80, noise_std=0.0)
    batch = SHORT.sample(3, np.random.default_rng(0))
    lesioned = copy.deepcopy(net)
    lesioned = apply_lesion(lesioned, LesionConfig(silence=("IT4", "PV5B")))
    run = lesioned.simulate(batch)
    rates, out = run.activity, run.outputs
    silent = silenced_units(net.connectome, LesionConfig(silence=("IT4", "PV5B")))
    assert silent.sum() == (
        _units(net, "IT4").stop - _units(net, "IT4").start + _units(net, "PV5B").stop - _units(net, "PV5B").start
    )
    assert np.all(rates[:, :, silent] == 0)
    # the same network with the silenced units' outgoing synapses removed and their rates ignored
    reference = copy.deepcopy(net)
    reference.params["w"][:, silent] = 0
    ref = reference.simulate(batch)
    ref_rates, ref_out = ref.activity, ref.outputs
    np.testing.assert_allclose(rates[:, :, ~silent], ref_rates[:, :, ~silent], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    # and it differs from the intact network
    assert not np.allclose(net.simulate(batch).activity[:, :, ~silent], rates[:, :, ~silent])


@pytest.mark.parametrize("group", ["w", "w_in", "b", "x0", "w_out"])
def test_gradients_with_silenced_units_match_finite_differences(group):
    rng = np.random.default_rng(7)
    net = small_network(n_units=40)
    net = apply_lesion(net, LesionConfig(silence=("IT2/3",)))
    batch = SHORT.sample(3, rng)
    noise = net.noise(batch.n_trials, batch.n_steps, rng)
    assert directional_check(net, group, noise, batch, rng) < 1e-6
    _, grads, _ = net.loss_and_grad(batch, noise=noise)
    silent = net.silenced
    # nothing a silenced unit's state does reaches the loss
    assert np.all(grads["b"][silent] == 0) and np.all(grads["x0"][silent] == 0)


def test_cut_removes_exactly_one_projection():
    net = small_network(n_units=80, noise_std=0.0)
    w_before = net.params["w"].copy()
    net = apply_lesion(net, LesionConfig(cut=("IT2/3 -> PT5B",)))
    block = np.zeros_like(w_before, bool)
    block[_units(net, "PT5B"), _units(net, "IT2/3")] = True
    np.testing.assert_array_equal(block, cut_synapses(net.connectome, LesionConfig(cut=("IT2/3 -> PT5B",))))
    assert np.all(net.params["w"][block] == 0) and np.any(w_before[block] > 0)
    np.testing.assert_array_equal(net.params["w"][~block], w_before[~block])
    assert net.silenced is None


def test_empty_lesion_changes_nothing():
    net = small_network(n_units=60, noise_std=0.0)
    batch = SHORT.sample(2, np.random.default_rng(1))
    before = net.simulate(batch).outputs
    net = apply_lesion(net, LesionConfig())
    assert net.silenced is None and not LesionConfig().active and LesionConfig().label() == "intact"
    np.testing.assert_array_equal(net.simulate(batch).outputs, before)


@pytest.mark.parametrize(
    "lesion, message",
    [
        ({"silence": ["PT5"]}, "lesion.silence: no population 'PT5'"),
        ({"silence": "PT5B"}, "lesion.silence: expected a list"),
        ({"cut": ["PT5B -> NGF1"]}, "lesion.cut: no projection 'PT5B -> NGF1'"),
        ({"cut": ["IT2/3 PT5B"]}, 'write "PRE -> POST"'),
        ({"remove": ["PT5B"]}, "lesion.remove: unknown key"),
    ],
)
def test_bad_lesions_are_config_errors(lesion, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        check_config(Config.from_dict({"lesion": lesion}))


def test_lesion_config_round_trips_through_toml():
    from cortexsim.config import config_from_text

    config = Config.from_dict({"lesion": {"silence": ["PT5B"], "cut": ["IT2/3 -> PT5B"]}})
    again = config_from_text(config.to_toml())
    assert again.lesion == config.lesion
    assert again.lesion.label() == "silence PT5B; cut IT2/3 -> PT5B"


@pytest.mark.brian2
def test_silenced_spiking_pools_never_spike():
    from cortexsim import assembly
    from cortexsim.spiking import map_rate_to_spiking
    from cortexsim.spiking.twin import run_params

    cfg = Config.from_dict(
        {
            "experiment": {"seed": 3},
            "circuit": {"n_units": 80},
            "task": {"fixation": 0.1, "delay_min": 0.1, "delay_max": 0.2, "eval_delay": 0.1, "n_targets": 4},
        }
    )
    net = assembly.make_rate_network(cfg, assembly.build_circuit(cfg))
    net.init_params(assembly.seeded_rng(cfg, "init"), rest_rate=5.0, input_std=5.0)
    net = apply_lesion(net, LesionConfig(silence=("IT2/3", "PV5B")))
    params = map_rate_to_spiking(net, cfg.lif, k=2, offset_mv=0.4)
    out = run_params(net, params, assembly.make_task(cfg).evaluation_set(), 1, seed=1, target="numpy")
    pools = out.spikes.ids // params.k
    silent = np.flatnonzero(net.silenced)
    assert silent.size > 0 and not np.isin(pools, silent).any()
    assert pools.size > 100  # the rest of the circuit still fires
