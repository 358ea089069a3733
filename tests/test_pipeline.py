"""The main pipeline end to end on the smoke experiment, as a user runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cortexsim import cli
from cortexsim.config import load_config

SMOKE = Path(__file__).resolve().parent.parent / "experiments" / "smoke.toml"
MAIN = SMOKE.with_name("center_out.toml")
METRICS = ("rate_position_r2", "rate_endpoint_error_cm", "rate_catch_drift_cm", "rate_position_r2_noisy",
           "rate_reaction_time_ms", "rate_train_seconds")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    assert cli.main(["run", str(SMOKE), "--out", str(out)]) == 0
    return out


def test_run_writes_the_contracted_file(smoke_run):
    with h5py.File(smoke_run / "run.h5") as f:
        for key in METRICS:
            assert np.isfinite(f["metrics"].attrs[key]), key
        for name in ("states", "rates"):
            assert f[f"rate/{name}"].attrs["dims"] == "condition,time,unit"
        assert f["rate/outputs"].attrs["dims"] == "condition,time,output"
        n_conditions = f["task/targets"].shape[0]
        assert f["rate/rates"].shape[0] == n_conditions == 8
        assert f["rate/rates"].shape[2] == f["circuit"].attrs["n_units"]
        for name in ("W_in", "W_out", "b"):
            assert "units" in f[f"rate/{name}"].attrs
        assert "weight_init" in f["circuit/connectome"]
        assert len(f["training/loss"]) == f["metrics"].attrs["rate_train_iterations"]
        assert f.attrs["seed"] == 1
    for figure in ("connectivity", "trajectories", "training", "layer_rates"):
        assert (smoke_run / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_rerun_resumes_and_a_different_config_is_refused(smoke_run, tmp_path, capsys):
    out = tmp_path / "again"
    shutil.copytree(smoke_run, out)
    assert cli.main(["run", str(SMOKE), "--out", str(out)]) == 0
    assert "resuming training from iteration 40" in capsys.readouterr().out
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
