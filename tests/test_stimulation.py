"""Optogenetic-style stimulation (issue 29): known answers, one mechanism with the lesion, bad input.

Known answers, every one bit for bit:

* a protocol with zero amplitude, or whose light never comes on, changes nothing (rate circuit, each
  ANN, each on the arm; the spiking twin through its opsin equations);
* ``silence`` of every unit of a population for the whole trial is today's lesion of it (rate circuit,
  on the arm too, and the spiking twin open and closed loop);
* exciting a population with no outgoing synapses and no readout moves nothing but that population;
* before the light comes on, the lit and the dark runs are identical (the twin: common random numbers).
"""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import tomli_w
from test_bad_input import assert_refused, snapshot, tiny_data
from test_model_contract import _model
from tiny import SMOKE, tiny_config

from cortexsim import assembly
from cortexsim import stimulation as st
from cortexsim.anatomy import check_config
from cortexsim.cli import main
from cortexsim.config import Config, LesionConfig
from cortexsim.errors import ConfigError
from cortexsim.lesion import apply_lesion
from cortexsim.spiking.mapping import map_rate_to_spiking
from cortexsim.spiking.twin import run_batch
from cortexsim.stim_config import StimProtocol, StimulationConfig, lesion_protocol
from cortexsim.stim_measure import Response, measure

KINDS = ["rate", "gru", "arm:rate", "arm:lstm", "arm:rnn"]


def _protocol(**changes) -> StimProtocol:
    base = dict(name="p", target=("PV",), effect="excite", amplitude=8.0, event="go", start=0.0, stop=0.2, trials=1.0)
    return StimProtocol(**{**base, **changes})


def _units(model, protocol) -> np.ndarray:
    if model.cell_types():
        return st.expression(model, protocol, seed=0)
    return st.matched_expression(model.n_units, 0.25, protocol, seed=0)


@pytest.fixture(scope="module", params=KINDS)
def model_and_batch(request):
    model, config = _model(request.param)
    batch = assembly.make_task(config).evaluation_set().take(np.arange(4))
    return request.param, model, batch


# -- the protocol made concrete ------------------------------------------------------------------
def test_light_profile_follows_the_window_the_ramp_and_the_stimulated_trials():
    _, config = _model("rate")
    batch = assembly.make_task(config).evaluation_set().take(np.arange(4))
    p = _protocol(start=0.05, stop=0.15, ramp=0.04)
    chosen = np.array([True, False, True, True])
    light = st.light_profile(p, batch, chosen)
    assert light.shape == (batch.n_steps, 4)
    assert np.all(light[:, 1] == 0)
    go = batch.params["go"][0]
    since = batch.time - go
    np.testing.assert_array_equal(light[(since >= 0.05) & (since < 0.15), 0], 1.0)
    ramp = (since >= 0.15) & (since < 0.19)
    np.testing.assert_allclose(light[ramp, 0], 1.0 - (since[ramp] - 0.15) / 0.04)
    assert np.all(light[(since < 0.05) | (since >= 0.19), 0] == 0)


def test_a_catch_trial_has_no_go_so_a_go_window_never_lights_it():
    _, config = _model("rate")
    task = assembly.make_task(config)
    catch = task.evaluation_set(catch=True).take(np.arange(2))
    assert not st.light_profile(_protocol(), catch).any()
    assert st.light_profile(_protocol(event="target_on"), catch).any()


def test_expression_counts_are_exact_seeded_and_the_twin_draws_per_neuron():
    model, _ = _model("rate")
    pv = st.target_units(_protocol(), model.cell_types(), model.n_units)
    assert pv.sum() == sum(s.stop - s.start for name, _, sub, s in model.cell_types() if sub == "PV")
    half = _protocol(fraction=0.5)
    a, b = st.expression(model, half, 3), st.expression(model, half, 3)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == round(0.5 * pv.sum()) and np.all(a[~pv] == 0)
    assert not np.array_equal(a, st.expression(model, half, 4))
    k = 5
    neurons = st.neuron_expression(model.cell_types(), model.n_units, k, half, 3)
    assert neurons.sum() == round(0.5 * pv.sum() * k)
    per_pool = neurons.reshape(model.n_units, k).mean(axis=1)
    assert np.any((per_pool > 0) & (per_pool < 1)), "a pool can be partly expressing"
    assert st.matched_expression(40, 0.25, half, 3).sum() == 10
    chosen = st.stimulated_trials(_protocol(trials=0.5), 16, 3)
    assert chosen.sum() == 8 and not np.all(chosen[:8])  # interleaved, not a block


def test_targets_are_populations_layers_or_cell_types():
    model, _ = _model("rate")
    cells = model.cell_types()
    by_layer = st.target_units(_protocol(target=("L5B",)), cells, model.n_units)
    by_pop = st.target_units(_protocol(target=("IT5B", "PT5B", "PV5B", "SST5B")), cells, model.n_units)
    np.testing.assert_array_equal(by_layer, by_pop)
    with pytest.raises(ConfigError, match="no population, layer or cell type"):
        st.target_units(_protocol(target=("PT6",)), cells, model.n_units)


# -- known answers -----------------------------------------------------------------------------------
def test_zero_amplitude_or_a_dark_window_changes_nothing(model_and_batch):
    kind, model, batch = model_and_batch
    base = model.simulate(batch)
    for protocol, chosen in ((_protocol(amplitude=0.0), None), (_protocol(), np.zeros(batch.n_trials, bool))):
        stim = st.stimulus(protocol, _units(model, protocol), st.light_profile(protocol, batch, chosen))
        run = model.simulate(batch, stimulus=stim)
        np.testing.assert_array_equal(run.activity, base.activity)
        np.testing.assert_array_equal(run.outputs, base.outputs)


def test_the_light_acts_from_its_onset_on_and_not_before(model_and_batch):
    kind, model, batch = model_and_batch
    base = model.simulate(batch)
    p = _protocol(amplitude=20.0 if kind.endswith("rate") else 2.0)
    light = st.light_profile(p, batch)
    run = model.simulate(batch, stimulus=st.stimulus(p, _units(model, p), light))
    onset = int(np.flatnonzero(light[:, 0])[0])
    np.testing.assert_array_equal(run.activity[:, : onset + 1], base.activity[:, : onset + 1])
    assert not np.array_equal(run.activity[:, onset + 1 :], base.activity[:, onset + 1 :])
    assert not np.array_equal(run.outputs, base.outputs)


@pytest.mark.parametrize("kind", ["rate", "arm:rate"])
def test_silencing_a_population_for_the_whole_trial_is_its_lesion(kind):
    model, config = _model(kind)
    batch = assembly.make_task(config).evaluation_set().take(np.arange(3))
    pops = ("PT5B", "IT4")
    lesioned = apply_lesion(model, LesionConfig(silence=pops)).simulate(batch)
    protocol = lesion_protocol(pops)
    stim = st.stimulus(protocol, st.expression(model, protocol, 0), st.light_profile(protocol, batch))
    silenced = model.simulate(batch, stimulus=stim)
    np.testing.assert_array_equal(silenced.activity, lesioned.activity)
    np.testing.assert_array_equal(silenced.outputs, lesioned.outputs)


@pytest.mark.brian2
@pytest.mark.parametrize("kind, pops", [("arm:rate", ("PT5B",)), ("arm:rate", ("IT4",)), ("rate", ("IT5A",))])
def test_the_twins_silence_is_its_lesion_spike_for_spike(kind, pops):
    model, config = _model(kind)
    batch = assembly.make_task(config).evaluation_set().take(np.arange(2 if kind.startswith("arm") else 1))
    lesioned_net = apply_lesion(model, LesionConfig(silence=pops))
    params = map_rate_to_spiking(lesioned_net, config.lif, k=2, dt=1e-4, offset_mv=0.3)
    lesioned = run_batch(lesioned_net, params, batch, 1, seed=3, target="numpy")
    protocol = lesion_protocol(pops)
    neurons = st.neuron_expression(model.cell_types(), model.n_units, 2, protocol, 0)
    stim = st.stimulus(protocol, neurons, st.light_profile(protocol, batch))
    intact_params = map_rate_to_spiking(model, config.lif, k=2, dt=1e-4, offset_mv=0.3)
    silenced = run_batch(model, intact_params, batch, 1, seed=3, target="numpy", stimulus=stim)
    assert lesioned.spikes.times.size > 100
    np.testing.assert_array_equal(silenced.spikes.times, lesioned.spikes.times)
    np.testing.assert_array_equal(silenced.spikes.ids, lesioned.spikes.ids)
    np.testing.assert_array_equal(silenced.outputs, lesioned.outputs)


@pytest.mark.brian2
def test_the_twins_zero_amplitude_light_is_its_dark_run_and_its_light_acts_from_onset():
    model, config = _model("arm:rate")
    batch = assembly.make_task(config).evaluation_set().take(np.arange(2))
    params = map_rate_to_spiking(model, config.lif, k=2, dt=1e-4, offset_mv=0.3)

    def run(protocol, dark=False):
        neurons = st.neuron_expression(model.cell_types(), model.n_units, 2, protocol, 0)
        light = np.zeros((batch.n_steps, 2)) if dark else st.light_profile(protocol, batch)
        stimulus = st.stimulus(protocol, neurons, light)
        return run_batch(model, params, batch, 1, seed=5, target="numpy", stimulus=stimulus)

    dark, zero = run(_protocol(), dark=True), run(_protocol(amplitude=0.0))
    np.testing.assert_array_equal(zero.spikes.times, dark.spikes.times)
    lit = run(_protocol(amplitude=15.0))
    go = float(batch.params["go"][0])
    duration = batch.n_steps * batch.dt
    before = (dark.spikes.times % duration) < go
    before_lit = (lit.spikes.times % duration) < go
    np.testing.assert_array_equal(lit.spikes.times[before_lit], dark.spikes.times[before])
    assert lit.spikes.times.size != dark.spikes.times.size


@pytest.mark.parametrize("kind", ["rate", "arm:rate", "gru", "arm:gru"])
def test_exciting_units_that_send_nothing_moves_only_them(kind):
    model, config = _model(kind)
    model = copy.deepcopy(model)
    batch = assembly.make_task(config).evaluation_set().take(np.arange(3))
    p = _protocol(amplitude=10.0 if kind.endswith("rate") else 1.0, target=("IT6",))
    if model.cell_types():
        units = st.expression(model, p, 0)
    else:
        units = np.zeros(model.n_units)
        units[:4] = 1.0
    mute = units > 0
    params = {k: v.copy() for k, v in model.params.items()}
    if kind.endswith("rate"):
        params["w"][:, mute] = 0.0  # no outgoing synapses (IT6 is not read out)
        assert not np.any(np.isin(np.flatnonzero(mute), model.out_idx))
    else:
        n = model.n_units
        params["w"][:, np.flatnonzero(mute)] = 0.0  # no recurrent weight from them, in any gate
        params["w_out"][:, mute] = 0.0  # and no readout
        assert params["w"].shape[1] == n
    model.set_params(params)
    base = model.simulate(batch)
    run = model.simulate(batch, stimulus=st.stimulus(p, units, st.light_profile(p, batch)))
    np.testing.assert_array_equal(run.activity[:, :, ~mute], base.activity[:, :, ~mute])
    np.testing.assert_array_equal(run.outputs, base.outputs)
    assert not np.array_equal(run.activity[:, :, mute], base.activity[:, :, mute])


# -- the measures -------------------------------------------------------------------------------------
def test_measures_on_a_constructed_response():
    """A change along the readout is all potent, one orthogonal to it all null; distances are as built."""
    _, config = _model("rate")
    batch = assembly.make_task(config).evaluation_set().take(np.arange(2))
    T, n = batch.n_steps, 6
    readout = np.zeros((2, n))
    readout[0, 0] = readout[1, 1] = 1.0
    p = _protocol(start=0.0, stop=0.1)
    light = st.light_profile(p, batch)
    onset = int(np.flatnonzero(light[:, 0])[0])
    hand_base = np.zeros((2, T, 2))
    hand = hand_base.copy()
    hand[:, onset + 2 :, 0] = 0.03  # 3 cm to the right after the light
    base = np.ones((2, T, n))
    for axis, share in ((0, 1.0), (3, 0.0)):
        act = base.copy()
        act[:, onset + 1 : onset + 5, axis] += 2.0
        response = Response(hand, hand_base, act, base, light, np.ones(n))
        result = measure(p, "rate", response, batch, readout, [("A", slice(0, 3)), ("B", slice(3, 6))], bar_cm=1.0)
        assert result.metric("potent_share") == pytest.approx(share)
        assert result.metric("potent_chance") == pytest.approx(2 / 6)
        assert result.metric("peak_deviation_cm") == pytest.approx(3.0)
        assert result.metric("endpoint_deviation_cm") == pytest.approx(3.0)
        assert result.metric("neural_peak_deviation") == pytest.approx(2.0)
        assert result.metric("neural_recovery_ms") == pytest.approx(0.0)  # back once the change is over
        rows = {r["population"]: r for r in result.populations}
        assert (rows["A"]["change_light"] > 0) == (axis == 0)


# -- the config and bad input ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"fraction": 1.5}, "fraction"),
        ({"trials": -0.1}, "trials"),
        ({"effect": "zap"}, "effect"),
        ({"event": "reward"}, "event"),
        ({"start": 0.3, "stop": 0.1}, "window"),
        ({"amplitude": -5.0}, "amplitude"),
        ({"name": "2 bad"}, "name"),
        ({"target": []}, "target"),
    ],
)
def test_a_bad_protocol_value_is_one_clear_line(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        _protocol(**changes)


def test_protocol_names_are_unique_and_the_section_round_trips():
    with pytest.raises(ConfigError, match="given twice"):
        StimulationConfig(protocols=(_protocol(), _protocol()))
    config = tiny_config(stimulation={"protocols": [{"name": "a", "target": ["PV"], "amplitude": 3.0}]})
    again = Config.from_dict(config.to_dict())
    assert again.stimulation == config.stimulation
    assert again.stimulation.protocols[0].target == ("PV",)


def test_an_unknown_target_gets_a_did_you_mean():
    config = tiny_config(stimulation={"protocols": [{"name": "a", "target": ["PT5"], "amplitude": 3.0}]})
    with pytest.raises(ConfigError, match="did you mean 'PT5B'"):
        check_config(config)


@pytest.mark.parametrize(
    "protocol, needle",
    [
        ({"target": ["PV5"]}, "did you mean"),
        ({"event": "go", "start": 5.0, "stop": 6.0}, "outside every trial"),
        ({"amplitude": 400.0}, "transfer function's range"),
        ({"fraction": 2.0}, "fraction"),
    ],
)
def test_bad_stimulation_input_is_refused_before_anything_is_written(tmp_path, capsys, protocol, needle):
    data = tiny_data(stimulation={"protocols": [{"name": "bad", "target": ["PV"], "amplitude": 5.0, **protocol}]})
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(data))
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    assert_refused(main(["run", str(path), "--out", str(out)]), capsys.readouterr(), needle)
    assert snapshot(tmp_path) == before


def test_lesion_protocol_is_the_whole_trial_on_every_trial():
    p = lesion_protocol(("PT5B",))
    assert p.effect == "silence" and p.fraction == 1.0 and p.trials == 1.0
    _, config = _model("rate")
    batch = assembly.make_task(config).evaluation_set().take(np.arange(2))
    assert np.all(st.light_profile(p, batch) == 1.0)


# -- the stage, as a user runs it --------------------------------------------------------------------
@pytest.mark.parametrize("twin", [False, pytest.param(True, marks=[pytest.mark.slow, pytest.mark.brian2])])
def test_a_run_with_stimulation_writes_every_model_under_its_contract_names(tmp_path, capsys, twin):
    changes = {
        "effector": {"kind": "arm26"},
        "ann": {"archs": ["gru"], "max_iterations": 3, "n_hidden": 8},
        "spiking": {"enabled": twin, "k": 1, "trials_per_condition": 2, "target": "numpy"},
        "stimulation": {
            "trials_per_condition": 1,
            "spiking_trials": 1 if twin else 0,
            "protocols": [
                {"name": "pv_delay", "target": ["PV"], "amplitude": 10.0, "event": "target_on", "start": 0.1,
                 "stop": 0.3},
                {"name": "pt_move", "target": ["PT5B"], "effect": "inhibit", "amplitude": 10.0, "event": "go",
                 "stop": 0.2, "ramp": 0.1},
            ],
        },
    }  # fmt: skip
    path = tmp_path / "stim.toml"
    path.write_text(tomli_w.dumps(tiny_data(**changes)))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--jobs", "1"]) == 0
    with h5py.File(out / "run.h5") as f:
        m = f["metrics"].attrs
        for protocol in ("pv_delay", "pt_move"):
            for model in ("rate", "ann_gru") + (("spiking",) if twin else ()):
                assert np.isfinite(m[f"stim_{protocol}_{model}_peak_deviation_cm"])
                assert 0 <= m[f"stim_{protocol}_{model}_potent_share"] <= 1
                g = f[f"stimulation/{protocol}/{model}"]
                assert g["hand"].attrs["units"] == "m" and g["hand"].shape == g["hand_unstimulated"].shape
                light = g["light"][()]
                onset = int(np.flatnonzero(light[:, 0])[0])
                assert np.all(g["neural_deviation"][:onset] == 0), "identical before the light (common noise)"
            assert f[f"stimulation/{protocol}"].attrs["amplitude_mv"] == 10.0
            assert (f"stim_{protocol}_twin_magnitude_ratio" in m) == twin
    for name in ("stim_paths.png", "stim_neural.png", "stim_map.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    summary = (out / "summary.md").read_text()
    assert "## Stimulation" in summary and "What the circuit's reach needs" in summary
    if twin:  # the NWB file is the twin's
        _check_nwb(out)


def _check_nwb(out) -> None:
    """The export holds one ogen site per protocol the twin ran, its light and its lit trials."""
    pynwb = pytest.importorskip("pynwb")
    nwb_path = out / "stim.nwb"
    assert main(["export", str(out / "run.h5"), "--nwb", str(nwb_path)]) == 0
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        nwb = io.read()
        assert set(nwb.trials["stimulation"][:]) == {"none"}
        assert set(nwb.ogen_sites) == {"pv_delay", "pt_move"}
        assert nwb.ogen_sites["pt_move"].location == "PT5B"
        assert nwb.ogen_sites["pv_delay"].excitation_lambda == 470.0
        _check_lit_trials(nwb, out)
    from nwbinspector import inspect_nwbfile

    serious = [
        m for m in inspect_nwbfile(nwbfile_path=str(nwb_path)) if m.importance.name != "BEST_PRACTICE_SUGGESTION"
    ]
    assert not serious, serious


def _check_lit_trials(nwb, out) -> None:
    """The twin's light and lit trials in the NWB file are the run file's."""
    rows = nwb.intervals["stimulation"].to_dataframe()
    with h5py.File(out / "run.h5") as f:
        for name in ("pv_delay", "pt_move"):
            light = f[f"stimulation/{name}/spiking/light"][()]
            series = nwb.stimulus[f"stimulation_{name}"]
            np.testing.assert_array_equal(series.data[:], light.T.reshape(-1))
            mine = rows[rows["protocol"] == name]
            assert len(mine) == light.shape[1]
            peak = 100 * f[f"stimulation/{name}/spiking/hand_deviation"][()].max(axis=1)
            np.testing.assert_allclose(mine["peak_deviation_cm"], peak)
    assert np.all(rows["light_on_time"] >= rows["start_time"])
    assert np.all(rows["light_off_time"] <= rows["stop_time"])
    assert rows["start_time"].min() >= nwb.trials["stop_time"][-1] - 1e-9  # after every exported trial


def test_the_population_by_epoch_sweep_trains_one_circuit():
    from cortexsim.sweep import load_sweep

    sweep = load_sweep(SMOKE.parent / "sweeps" / "arm_stim.toml")
    points = sweep.points("/nonexistent/sweep")
    assert len(points) == 17
    assert sum(p.upstream is None for p in points) == 1  # every point reuses the first point's training
    assert len({p.config.stimulation.protocols[0].target[0] for p in points}) == 17
    assert all({pr.event for pr in p.config.stimulation.protocols} == {"target_on", "go"} for p in points)


def test_a_stimulation_sweep_draws_its_protocols_measures():
    """The sweep figure reads each point's own protocols from its metrics (and marks what is missing as blank)."""
    from cortexsim.plots.stimulation import plot_stim_sweep

    rows = [
        {"stimulation.protocols": "a_delay+a_move", "stim_a_delay_rate_peak_deviation_cm": 0.5,
         "stim_a_delay_rate_success_rate": 1.0, "stim_a_delay_rate_potent_share": 0.01,
         "stim_a_move_rate_peak_deviation_cm": 9.0, "stim_a_move_rate_success_rate": 0.0,
         "stim_a_move_rate_potent_share": 0.2},
        {"stimulation.protocols": "b_delay", "stim_b_delay_rate_peak_deviation_cm": 2.0,
         "stim_b_delay_rate_success_rate": 0.5, "stim_b_delay_rate_potent_share": 0.1},
    ]  # fmt: skip
    fig = plot_stim_sweep(rows, "stimulation.protocols")
    peak = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(peak.data[0], [0.5, 9.0])
    assert peak.data[1, 0] == 2.0 and np.isnan(peak.data[1, 1])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["delay", "move"]  # the names' shared suffixes


def test_cs_stimulate_is_what_the_stage_measures(tmp_path):
    """``cs.stimulate`` on a trained model gives the numbers the ``stimulate`` stage writes for it."""
    import cortexsim as cs

    protocol = {"name": "pt_move", "target": ["PT5B"], "effect": "inhibit", "amplitude": 10.0, "stop": 0.2}
    changes = {"stimulation": {"trials_per_condition": 1, "protocols": [protocol]}, "ann": {"archs": ["gru"]}}
    config = tiny_config(**{k: {**tiny_config().to_dict()[k], **v} for k, v in changes.items()})
    config = config.with_section("ann", max_iterations=3, n_hidden=8)
    out = tmp_path / "run"
    cs.run_experiment(config, out, log=lambda line: None)
    with h5py.File(out / "run.h5") as f:
        stored = {k: float(v) for k, v in f["metrics"].attrs.items() if k.startswith("stim_pt_move_")}
    from cortexsim import store

    with store.open_run(out / "run.h5") as f:
        net = assembly.trained_rate_network(config, store.read_trained_rate(f))
        gru = assembly.make_ann_model(config, "gru")
        gru.set_params(store.read_ann(f, "gru").params)
    rate = cs.stimulate(net, config.stimulation.protocols[0], config)
    assert rate.metrics and all(
        stored[k] == v or (np.isnan(v) and np.isnan(stored[k])) for k, v in rate.metrics.items()
    )
    ann = cs.stimulate(gru, config.stimulation.protocols[0], config, name="ann_gru")  # default share and scale 1
    assert ann.metric("expressing_share") == pytest.approx(rate.metric("expressing_share"), abs=1 / gru.n_units)
