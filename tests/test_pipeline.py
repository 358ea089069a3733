"""The main pipeline end to end on the smoke experiment, as a user runs it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from tiny import SMOKE, tiny_config

from cortexsim import assembly, cli, pipeline, store
from cortexsim.config import load_config
from cortexsim.quality import check_quality

MAIN = SMOKE.with_name("center_out.toml")
METRICS = (
    "rate_position_r2",
    "rate_endpoint_error_cm",
    "rate_catch_drift_cm",
    "rate_position_r2_noisy",
    "rate_reaction_time_ms",
    "rate_train_seconds",
)


def test_run_folder_is_named_by_time_and_config(smoke_run):
    config = load_config(SMOKE)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", smoke_run.name)
    assert smoke_run.name.endswith(pipeline.config_hash(config))
    assert sorted(p.name for p in smoke_run.iterdir()) == ["figures", "run.h5", "summary.md"]
    # the same config continues its newest folder; another config (or new=True) gets its own
    root = smoke_run.parent.parent
    assert pipeline.run_folder(config, root) == smoke_run
    assert pipeline.run_folder(config, root, new=True) != smoke_run
    other = config.with_section("experiment", seed=9)
    assert pipeline.run_folder(other, root).name.endswith(pipeline.config_hash(other))
    with h5py.File(smoke_run / "run.h5") as f:
        assert set(f["stages"]) == {s.name for s in pipeline.stages(config)}
        for stage in f["stages"].values():
            assert stage.attrs["seconds"] >= 0 and stage.attrs["key"]
    assert "## Stages" in (smoke_run / "summary.md").read_text()


def test_run_without_arguments_runs_the_main_experiment(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "run_experiment", lambda config, out, force, jobs: calls.append((config, out)) or out)
    monkeypatch.setattr(pipeline, "gate", lambda run_file, config: check_quality({}, config.quality))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run"]) == 0
    config, out = calls[0]
    assert config.to_toml() == load_config(MAIN).to_toml()
    assert out.parent == Path("results") / "center_out" and out.name.endswith(pipeline.config_hash(config))


def test_run_writes_the_contracted_file(smoke_run):
    with h5py.File(smoke_run / "run.h5") as f:
        for key in METRICS:
            assert np.isfinite(f["metrics"].attrs[key]), key
        for name in ("states", "rates"):
            assert f[f"rate/{name}"].attrs["dims"] == "condition,time,unit"
        assert f["rate/outputs"].attrs["dims"] == "condition,time,output"
        # how the network was computed, fixed by size, density and dtype (60 units, 3 % dense: CSR, one thread)
        assert (f["rate"].attrs["kernel_path"], f["rate"].attrs["blas_threads"]) == ("sparse", 1)
        assert f["rate"].attrs["gradient_threads"] == 1 and 0 < f["rate"].attrs["density"] < 1
        n_conditions = f["task/targets"].shape[0]
        assert f["rate/rates"].shape[0] == n_conditions == 8
        assert f["rate/rates"].shape[2] == f["circuit"].attrs["n_units"]
        for name in ("W_in", "W_out", "b"):
            assert "units" in f[f"rate/{name}"].attrs
        c = f["circuit/connectome"]
        assert "weight" not in c  # one meaning per name: as sampled, and as trained
        np.testing.assert_array_equal(c["weight_init"][()], assembly.build_circuit(store.read_config(f)).weight)
        assert c["weight_trained"].shape == c["weight_init"].shape
        assert not np.array_equal(c["weight_trained"][()], c["weight_init"][()])
        assert len(f["training/loss"]) == f["metrics"].attrs["rate_train_iterations"]
        assert f.attrs["seed"] == 1
    for figure in (
        "connectivity",
        "trajectories",
        "training",
        "layer_rates",
        "similarity_models",
        "similarity_parts_vs_ann",
        "jpca",
        "pca",
        "trajectories_gru",
    ):
        assert (smoke_run / "figures" / f"{figure}.png").stat().st_size > 10_000, figure


@pytest.mark.brian2
def test_run_writes_the_spiking_twin(smoke_run):
    with h5py.File(smoke_run / "run.h5") as f:
        for key in (
            "spiking_position_r2",
            "spiking_endpoint_error_cm",
            "spiking_position_r2_refit",
            "spiking_psth_r_median",
            "spiking_sim_seconds",
        ):
            assert np.isfinite(f["metrics"].attrs[key]), key
        n_pops = len(f["circuit/populations"])
        assert len(f["spikes"]) == n_pops
        k = f["spiking"].attrs["k"]
        total = 0
        for group in f["spikes"].values():
            assert group.attrs["sorting"] == "by_time"
            t, ids = group["timestamps"][()], group["node_ids"][()]
            assert np.all(np.diff(t) >= 0) and group["timestamps"].attrs["units"] == "s"
            assert ids.size == 0 or (ids.min() >= 0 and ids.max() < group.attrs["n_neurons"])
            total += t.size
        assert total > 0
        # read back: every population's spikes, and the pool rates they imply match /spiking
        spikes = store.read_spikes(f)
        assert set(spikes) == {p.decode() for p in f["circuit/populations"]["name"]}
        pop = f["circuit/populations"][()]
        duration = f["spiking/trials/start"][-1] + f["task/targets"].shape[1] * f["task"].attrs["dt"]
        n_neurons = sum(int(r["stop"] - r["start"]) * k for r in pop)
        rate = sum(t.size for t, _ in spikes.values()) / (n_neurons * duration)
        assert rate == pytest.approx(f["metrics"].attrs["spiking_rate_mean_hz"], rel=1e-6)
        assert f["spiking/rates"].shape == f["rate/rates"].shape
        assert f["spiking/rates"].attrs["dims"] == "condition,time,unit"
        table = f["spiking/fidelity"][()]
        assert set(table.dtype.names) >= {"population", "psth_r_mean", "rate_ratio", "rate_hz", "cv_isi"}
        assert len(table) == n_pops
        assert f["spiking/params"].attrs["k"] == k
        sim = f["analysis/similarity"][()]
        assert ("rate", "spiking") in {(a.decode(), b.decode()) for a, b in zip(sim["a"], sim["b"])}
    for figure in ("raster", "trajectories_spiking", "spiking_fidelity"):
        assert (smoke_run / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_run_trains_the_anns_and_compares(smoke_run):
    with h5py.File(smoke_run / "run.h5") as f:
        for arch in ("rnn", "gru", "lstm"):
            assert f[f"ann/{arch}/hidden"].attrs["dims"] == "condition,time,unit"
            assert f[f"ann/{arch}/hidden"].shape[:2] == f["rate/rates"].shape[:2]
            assert np.isfinite(f["metrics"].attrs[f"ann_{arch}_position_r2"])
        sim = f["analysis/similarity"][()]
        pairs = {(a.decode(), b.decode()) for a, b in zip(sim["a"], sim["b"])}
        assert ("rate", "ann:gru") in pairs and ("rate:L5B", "ann:lstm") in pairs
        assert np.all((sim["cca"] >= 0) & (sim["cca"] <= 1 + 1e-9))
        jp = f["analysis/jpca"][()]
        assert "rate" in {a.decode() for a in jp["activity"]}
        assert "most_ann_like_layer" in f["analysis"].attrs
        # the headline comparison numbers land in /metrics (and so in sweep tables)
        m = f["metrics"].attrs
        cca = {(a.decode(), b.decode()): c for a, b, c in zip(sim["a"], sim["b"], sim["cca"])}
        assert m["compare_cca_rate_gru"] == cca[("rate", "ann:gru")]
        assert m["compare_cca_rate_spiking"] == cca[("rate", "spiking")]
        assert m["compare_cca_rate_ann_mean"] == pytest.approx(
            np.mean([cca[("rate", f"ann:{x}")] for x in ("rnn", "gru", "lstm")])
        )
        ratio = {a.decode(): r for a, r in zip(jp["activity"], jp["ratio"])}
        assert m["compare_jpca_ratio_rate"] == ratio["rate"] and m["compare_jpca_ratio_lstm"] == ratio["ann:lstm"]
        assert not [k for k in m if k.startswith("compare_cca_rate:")]  # layers stay in /analysis
    summary = (smoke_run / "summary.md").read_text()
    assert "| rate circuit |" in summary and "ann:gru" in summary


def test_rerun_reuses_every_stage_and_a_different_config_is_refused(smoke_run, tmp_path, capsys):
    out = tmp_path / "again"
    shutil.copytree(smoke_run, out)
    assert cli.main(["run", str(SMOKE), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for stage in ("train", "rate", "spiking", "ann:gru", "compare"):
        assert f"[{stage}] done earlier" in printed, stage
    before = (out / "run.h5").read_bytes()
    other = tmp_path / "other.toml"
    other.write_text(SMOKE.read_text().replace("seed = 1", "seed = 2"))
    assert cli.main(["run", str(other), "--out", str(out)]) == 2
    assert "different configuration" in capsys.readouterr().err
    assert (out / "run.h5").read_bytes() == before


def test_shipped_configs_are_valid():
    main = load_config(MAIN)
    assert main.circuit.n_units == 500 and main.experiment.name == "center_out"
    smoke = load_config(SMOKE)
    assert smoke.circuit.n_units < 100


def test_compare_with_recorded_data(smoke_run, tmp_path, capsys):
    """Data made from the circuit's own PT5B-like activity plus noise: most similar to the rate model."""
    run = tmp_path / "run.h5"
    shutil.copy(smoke_run / "run.h5", run)
    with h5py.File(run) as f:
        rates = f["rate/rates"][()]
        dt = f["task"].attrs["dt"]
        move_on = int(round(f["task/params/move_on"][0] / dt))
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((rates.shape[2], 30))
    fake = rates @ mix + 0.01 * rng.standard_normal((*rates.shape[:2], 30))
    time = (np.arange(rates.shape[1]) - move_on) * dt
    np.savez(tmp_path / "data.npz", rates=fake.transpose(2, 1, 0), time=time)
    assert cli.main(["compare", str(run), "--data", str(tmp_path / "data.npz"), "--n-null", "3"]) == 0
    with h5py.File(run) as f:
        sim = f["analysis/similarity"][()]
        stages = set(f["stages"])
    rows = {(a.decode(), b.decode()): c for a, b, c in zip(sim["a"], sim["b"], sim["cca"])}
    assert rows[("rate", "data")] > 0.95
    # compared with other settings than the run's: `cortexsim run` would redo the comparison
    assert "compare" not in stages and {"train", "rate", "ann:gru"} <= stages
    assert rows[("rate", "data")] >= max(v for (a, b), v in rows.items() if b == "data" and a != "rate") - 1e-9


class Interrupt:
    """A log callback that raises KeyboardInterrupt (like Ctrl-C) at the first line starting with ``at``."""

    def __init__(self, at: str):
        self.at, self.lines = at, []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.at and line.startswith(self.at):
            self.at = ""
            raise KeyboardInterrupt


def test_resume_after_an_interrupted_stage(tmp_path):

    config = tiny_config(
        train={"max_iterations": 20}, ann={"archs": ["rnn", "gru"], "n_hidden": 8, "max_iterations": 20}
    )
    out = tmp_path / "run"
    # Ctrl-C while the second ANN trains: the stages before it are kept
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_experiment(config, out, log=Interrupt("[ann:gru]"))
    with h5py.File(out / "run.h5") as f:
        assert set(f["stages"]) == {"train", "rate", "ann:rnn"}
        first = {n: g.attrs["finished_utc"] for n, g in f["stages"].items()}
        trained = f["training/checkpoint/params/w"][()]
    log = Interrupt("")
    pipeline.run_experiment(config, out, log=log)
    reused = [line.split("]")[0][1:] for line in log.lines if line.endswith("; reused")]
    assert reused == ["train", "rate", "ann:rnn"]
    assert "[ann:gru]" in log.lines and "[compare]" in log.lines and "[train]" not in log.lines
    with h5py.File(out / "run.h5") as f:
        assert set(f["stages"]) == {"train", "rate", "ann:rnn", "ann:gru", "compare"}
        assert {n: f["stages"][n].attrs["finished_utc"] for n in first} == first
        np.testing.assert_array_equal(f["training/checkpoint/params/w"][()], trained)
        assert np.isfinite(f["metrics"].attrs["ann_gru_position_r2"])


@pytest.mark.slow  # 25-130 s on 2 busy cores: the default suite stays near 10 min
def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):

    config = tiny_config(train={"max_iterations": 20})
    whole = pipeline.run_experiment(config, tmp_path / "whole", log=lambda line: None)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_experiment(config, tmp_path / "cut", log=Interrupt("iter    10/20"))
    log = Interrupt("")
    pipeline.run_experiment(config, tmp_path / "cut", log=log)
    assert any(line.startswith("resuming training from iteration 10") for line in log.lines)
    with h5py.File(whole) as a, h5py.File(tmp_path / "cut" / "run.h5") as b:
        for key in ("rate_position_r2", "rate_endpoint_error_cm", "rate_train_iterations"):
            assert a["metrics"].attrs[key] == b["metrics"].attrs[key], key
        np.testing.assert_array_equal(a["rate/rates"][()], b["rate/rates"][()])
    # --force recomputes every stage from scratch (no resume, no reuse) and gets the same numbers
    log = Interrupt("")
    pipeline.run_experiment(config, tmp_path / "cut", log=log, force=True)
    assert not any("resuming" in line or line.endswith("reused") for line in log.lines)
    assert "[train]" in log.lines and "[compare]" in log.lines
    with h5py.File(whole) as a, h5py.File(tmp_path / "cut" / "run.h5") as b:
        np.testing.assert_array_equal(a["rate/rates"][()], b["rate/rates"][()])
