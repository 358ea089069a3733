"""Bad input is refused before anything is computed or written (issue 10, item 4).

Every class of bad input found by a hostile test of the command line gets one line
``cortexsim: error: ...`` naming the key or argument, exit status 2, no traceback, and
no file or folder created; existing results are left untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import CHANGES, SMOKE, tiny_config

from cortexsim import paths, preflight, store
from cortexsim.cli import main
from cortexsim.config import Config, load_config
from cortexsim.errors import ConfigError, CortexsimError, RunFileError

TESTS = Path(__file__).resolve().parent


def assert_refused(rc: int, captured, *needles: str) -> str:
    """Exit status 2, exactly one line ``cortexsim: error: ...`` on stderr (no traceback), containing ``needles``."""
    assert rc == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cortexsim: error: "), lines[0]
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def tiny_data(**changes: dict) -> dict:
    """The tiny experiment as plain TOML data (``smoke.toml`` + :data:`tiny.CHANGES` + ``changes``)."""
    data = tiny_config().to_dict()
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values}
    return _toml_ready(data)


def _toml_ready(d):
    if isinstance(d, dict):
        return {k: _toml_ready(x) for k, x in d.items() if x is not None}
    if isinstance(d, tuple):
        return list(d)
    return d


def write_config(folder: Path, data: dict, name: str = "exp.toml") -> Path:
    path = folder / name
    path.write_text(tomli_w.dumps(data))
    return path


def run_refused(tmp_path: Path, capsys, data: dict | bytes, *needles: str, extra: tuple = ()) -> str:
    """`cortexsim run CONFIG --out tmp/out` is refused in one line and creates nothing."""
    cfg = tmp_path / "exp.toml"
    if isinstance(data, bytes):
        cfg.write_bytes(data)
    else:
        cfg.write_text(tomli_w.dumps(data))
    before = snapshot(tmp_path)
    rc = main(["run", str(cfg), "--out", str(tmp_path / "out"), *extra])
    line = assert_refused(rc, capsys.readouterr(), *needles)
    assert snapshot(tmp_path) == before, "a refused run must create or change nothing"
    return line


# ---------------------------------------------------------------------------
# Config files that are not UTF-8 text
# ---------------------------------------------------------------------------

NOT_TEXT = [
    pytest.param("[experiment]\nname = 'caf\u00e9'\n".encode("latin-1"), id="latin-1"),
    pytest.param(bytes(range(256)) * 4, id="binary"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + os.urandom(64), id="png"),
    pytest.param("[circuit]\nn_units = 60\n".encode("utf-16"), id="utf-16"),
    pytest.param(b"[circuit]\nn_units = 60\n\x00\x00", id="nul-bytes"),
]


@pytest.mark.parametrize("data", NOT_TEXT)
@pytest.mark.parametrize("command", ["run", "circuit", "spec", "sweep", "sweep-base", "spec-file"])
def test_config_that_is_not_utf8_text_is_refused(tmp_path, capsys, data, command):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(data)
    out = tmp_path / "out"
    args = {
        "run": ["run", str(bad), "--out", str(out)],
        "circuit": ["circuit", "--config", str(bad), "--out", str(out / "c.h5")],
        "spec": ["spec", "--config", str(bad)],
        "sweep": ["sweep", str(bad), "--out", str(out)],
    }.get(command)
    if command == "sweep-base":
        sweep = tmp_path / "sweep.toml"
        sweep.write_text('[sweep]\nexperiment = "bad.toml"\n[grid]\n"experiment.seed" = [0, 1]\n')
        args = ["sweep", str(sweep), "--out", str(out)]
    if command == "spec-file":
        cfg = write_config(tmp_path, {"circuit": {"spec": "bad.toml"}})
        args = ["run", str(cfg), "--out", str(out)]
    before = snapshot(tmp_path)
    rc = main(args)
    assert_refused(rc, capsys.readouterr(), "bad.toml")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# Huge sizes: the peak-memory estimate
# ---------------------------------------------------------------------------

HUGE = [
    pytest.param({"circuit": {"n_units": 2_000_000}}, "circuit.n_units", id="n_units"),
    pytest.param({"train": {"validation_trials": 50_000_000}}, "train.validation_trials", id="validation_trials"),
    pytest.param({"train": {"batch_size": 50_000_000}}, "train.batch_size", id="batch_size"),
    pytest.param({"task": {"n_targets": 50_000_000}}, "task.n_targets", id="n_targets"),
    pytest.param({"spiking": {"enabled": True, "k": 10_000_000}}, "spiking.k", id="spiking_k"),
    pytest.param(
        {"spiking": {"enabled": True, "trials_per_condition": 50_000_000}},
        "spiking.trials_per_condition",
        id="spiking_trials",
    ),
    pytest.param({"ann": {"archs": ["gru"], "n_hidden": 2_000_000}}, "ann.n_hidden", id="ann_hidden"),
    pytest.param({"train": {"max_iterations": 10**12}}, "train.max_iterations", id="max_iterations"),
    pytest.param({"task": {"dt": 1e-9, "reach_duration": 0.4}}, "task.dt", id="tiny_dt"),
    pytest.param({"task": {"hold": 1e9}}, "trial length", id="long_trials"),
]


@pytest.mark.parametrize(("changes", "key"), HUGE)
def test_huge_sizes_are_refused_up_front_naming_the_key(tmp_path, capsys, changes, key):
    line = run_refused(tmp_path, capsys, tiny_data(**changes), key, "memory")
    assert "%" in line and "available" in line


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        pytest.param({"circuit": {"n_units": 4000}}, "circuit.n_units", id="n_units"),
        pytest.param({"task": {"n_targets": 3000}}, "task.n_targets", id="n_targets"),
        pytest.param(
            {"spiking": {"enabled": True, "trials_per_condition": 200}},
            "spiking.trials_per_condition",
            id="spiking_trials",
        ),
    ],
)
def test_memory_limit_is_80_percent_of_available(tmp_path, capsys, monkeypatch, changes, key):
    config = Config.from_dict(tiny_data(**changes))
    need = preflight.estimate_memory(config).peak
    monkeypatch.setattr(preflight, "available_memory", lambda: need / 0.81)  # 80 % of it is just too little
    run_refused(tmp_path, capsys, tiny_data(**changes), key)
    monkeypatch.setattr(preflight, "available_memory", lambda: need / 0.79)
    preflight.check_memory(config)  # fits: nothing raised


def test_memory_estimate_names_the_stage_and_grows_with_each_size():
    base = preflight.estimate_memory(tiny_config())
    assert set(base.stages) == {"train", "rate", "compare"}  # the tiny experiment has no twin and no ANNs
    for section, key, value, stage in [
        ("circuit", "n_units", 600, "rate"),
        ("train", "batch_size", 256, "train"),
        ("train", "validation_trials", 2048, "train"),
        ("task", "n_targets", 400, "compare"),
    ]:
        bigger = preflight.estimate_memory(tiny_config(**{section: {key: value}}))
        assert bigger.stage_bytes(stage) > base.stage_bytes(stage), key
    twin = preflight.estimate_memory(tiny_config(spiking={"enabled": True}))
    assert "spiking" in twin.stages
    more = preflight.estimate_memory(tiny_config(spiking={"enabled": True, "k": 50}))
    assert more.stage_bytes("spiking") > twin.stage_bytes("spiking")
    arm = {"effector": {"kind": "arm26"}}
    bumps = preflight.estimate_memory(tiny_config(**arm, perturb={"bumps": True}))
    assert "perturb" in bumps.stages and "perturb" not in preflight.estimate_memory(tiny_config(**arm)).stages
    wider = preflight.estimate_memory(tiny_config(**arm, perturb={"bumps": True, "bump_directions": 64}))
    assert wider.stage_bytes("perturb") > bumps.stage_bytes("perturb")
    curl = preflight.estimate_memory(tiny_config(**arm, perturb={"curl": True}))
    assert curl.stage_bytes("perturb") >= curl.stage_bytes("train")  # adaptation trains like the train stage
    control = tiny_config(**arm, compare={"rotation_control": True})
    alone, beside = preflight.estimate_memory(control), preflight.estimate_memory(control, jobs=2)
    assert beside.stage_bytes("train") > alone.stage_bytes("train")  # the control trains next to it


MEASURE = """
import json, sys
sys.path.insert(0, {tests!r})
from tiny import tiny_config
from cortexsim import pipeline, preflight
config = tiny_config(**json.loads({changes!r}))
pipeline.run_experiment(config, {out!r}, log=lambda line: None)
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({{"measured": hwm, "estimated": preflight.estimate_memory(config).peak}}))
"""

MEMORY_CASES = {
    "small": {},
    "medium": {
        "circuit": {"n_units": 400},
        "train": {"batch_size": 32, "validation_trials": 64, "max_iterations": 2, "eval_every": 1},
    },
}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) to read the peak RSS")
@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c != "small" else []) for c in sorted(MEMORY_CASES)]
)  # the medium case (33 s) runs with the slow tests
def test_memory_estimate_is_within_2x_of_measured_peak(tmp_path, case):
    code = MEASURE.format(tests=str(TESTS), changes=json.dumps(MEMORY_CASES[case]), out=str(tmp_path / "run"))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = result["estimated"] / result["measured"]
    assert 0.5 <= ratio <= 2.0, (case, result)


# ---------------------------------------------------------------------------
# Integers that do not fit where they are stored
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        pytest.param("experiment", "seed", 2**64, id="seed-2**64"),
        pytest.param("experiment", "seed", 2**63, id="seed-2**63"),
        pytest.param("experiment", "seed", 2**32, id="seed-2**32"),
        pytest.param("experiment", "seed", -1, id="seed-negative"),
        pytest.param("experiment", "seed", -(2**70), id="seed-very-negative"),
        pytest.param("circuit", "n_units", 2**64, id="n_units-2**64"),
        pytest.param("train", "patience", 2**70, id="patience-2**70"),
        pytest.param("train", "log_every", 2**63, id="log_every-2**63"),
        pytest.param("spiking", "k", 2**64, id="k-2**64"),
        pytest.param("compare", "n_pcs", 10**30, id="n_pcs-10**30"),
    ],
)
def test_integers_that_do_not_fit_are_refused(tmp_path, capsys, section, key, value):
    data = tiny_data()
    data[section][key] = value
    line = run_refused(tmp_path, capsys, data, f"{section}.{key}", str(value))
    assert "allowed range" in line


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(["--seed", str(2**64)], ["experiment.seed", str(2**64)], id="seed-2**64"),
        pytest.param(["--seed", str(2**32)], ["experiment.seed", "4294967295"], id="seed-2**32"),
        pytest.param(["--n-units", str(2**64)], ["circuit.n_units", "64-bit"], id="n-units-2**64"),
        pytest.param(["--n-units", str(10**12)], ["circuit.n_units", "memory"], id="n-units-huge"),
        pytest.param(["--n-units", "not-a-number"], ["--n-units", "not-a-number"], id="n-units-text"),
    ],
)
def test_circuit_arguments_that_do_not_fit_are_refused(tmp_path, capsys, args, needles):
    rc = main(["circuit", *args, "--out", str(tmp_path / "c.h5")])
    assert_refused(rc, capsys.readouterr(), *needles)
    assert list(tmp_path.iterdir()) == []


def test_largest_seed_is_accepted():
    assert Config.from_dict({"experiment": {"seed": 2**32 - 1}}).experiment.seed == 2**32 - 1


# ---------------------------------------------------------------------------
# Output folders that cannot be written, full disks
# ---------------------------------------------------------------------------


def test_read_only_output_folder_is_refused_before_computing(tmp_path, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(paths.tempfile, "mkstemp", denied)  # the folder probe (paths.writable_folder)
    run_refused(tmp_path, capsys, tiny_data(), "--out", "cannot write", "Permission denied")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_really_read_only_output_folder_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cfg = write_config(tmp_path, tiny_data())
        rc = main(["run", str(cfg), "--out", str(ro / "run")])
        assert_refused(rc, capsys.readouterr(), "cannot write")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_output_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    cfg = write_config(tmp_path, tiny_data())
    before = snapshot(tmp_path)
    rc = main(["run", str(cfg), "--out", str(tmp_path / "afile" / "run")])
    assert_refused(rc, capsys.readouterr(), "afile", "not a folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("free", [0, 1 << 20, 20 << 20])
def test_full_disk_is_refused_before_computing(tmp_path, capsys, monkeypatch, free):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=free))
    run_refused(tmp_path, capsys, tiny_data(), "disk space", "needed")


def test_disk_estimate_grows_with_the_run():
    small = preflight.estimate_disk(tiny_config())
    assert preflight.estimate_disk(tiny_config(circuit={"n_units": 2000})) > small
    assert preflight.estimate_disk(tiny_config(spiking={"enabled": True, "trials_per_condition": 50})) > small


# ---------------------------------------------------------------------------
# Unknown populations and input groups
# ---------------------------------------------------------------------------

UNKNOWN_NAMES = [
    pytest.param(
        {"circuit": {"overrides": {"inputs": {"targte": ["PT5B"]}}}}, ["targte", "'target'"], id="override-input-group"
    ),
    pytest.param(
        {"circuit": {"overrides": {"inputs": {"go": ["PT5X"]}}}}, ["PT5X", "'PT5B'"], id="override-input-population"
    ),
    pytest.param(
        {"circuit": {"overrides": {"outputs": ["PT5X"]}}}, ["circuit.overrides.outputs", "'PT5B'"], id="override-output"
    ),
    pytest.param(
        {"circuit": {"overrides": {"probability": {"IT2/3 -> PT5X": 0.1}}}},
        ["PT5X", "'PT5B'"],
        id="override-projection-post",
    ),
    pytest.param(
        {"circuit": {"overrides": {"weight": {"IT23 -> PT5B": 1.0}}}}, ["IT23", "'IT2/3'"], id="override-projection-pre"
    ),
    pytest.param({"circuit": {"overrides": {"cut": ["IT2/3 -> PT5X"]}}}, ["PT5X", "'PT5B'"], id="override-cut"),
    pytest.param({"circuit": {"overrides": {"silence": ["SST5X"]}}}, ["SST5X", "did you mean"], id="override-silence"),
    pytest.param({"circuit": {"overrides": {"size": {"PV5X": 300}}}}, ["PV5X", "'PV5B'"], id="override-size"),
    pytest.param({"circuit": {"overrides": {"tau": {"PV5X": 0.02}}}}, ["PV5X", "'PV5B'"], id="override-tau"),
    pytest.param({"lesion": {"silence": ["PT5X"]}}, ["lesion.silence", "PT5X", "'PT5B'"], id="lesion-silence"),
    pytest.param({"lesion": {"cut": ["IT2/3 -> PT5X"]}}, ["lesion.cut", "PT5X", "'PT5B'"], id="lesion-cut"),
    pytest.param(
        {"lesion": {"cut": ["PT5B -> IT2/3"]}}, ["lesion.cut", "PT5B -> IT2/3"], id="lesion-cut-no-projection"
    ),
]


@pytest.mark.parametrize(("changes", "needles"), UNKNOWN_NAMES)
def test_unknown_population_or_input_group_is_refused_with_a_hint(tmp_path, capsys, changes, needles):
    run_refused(tmp_path, capsys, tiny_data(**changes), *needles)


@pytest.mark.parametrize(
    ("inputs", "needles"),
    [
        pytest.param({"target": ["IT2/3"], "go": ["IT4"], "goo": ["PT5B"]}, ["goo", "'go'"], id="unknown-group"),
        pytest.param({"target": ["IT2/3"]}, ["'go'", "not wired"], id="missing-group"),
        pytest.param({"target": ["IT2/3"], "go": ["XYZ"]}, ["XYZ"], id="unknown-population"),
    ],
)
def test_spec_file_input_groups_must_be_those_the_task_feeds(tmp_path, capsys, default_spec, inputs, needles):
    spec = default_spec.to_dict()
    spec["inputs"] = inputs
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    data = tiny_data(circuit={"spec": "spec.toml"})
    run_refused(tmp_path, capsys, data, *needles)


# ---------------------------------------------------------------------------
# [compare] data that is missing or does not load
# ---------------------------------------------------------------------------


def _npz(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def _write_data(tmp_path: Path, kind: str) -> str:
    rates = np.abs(np.random.default_rng(0).normal(5, 1, (20, 50, 8)))  # neurons, time, conditions
    time = (np.arange(50) - 25) * 0.01
    if kind == "missing":
        return "nowhere.npz"
    if kind == "folder":
        (tmp_path / "data.npz").mkdir()
    elif kind == "not-npz":
        (tmp_path / "data.npz").write_text("not a zip archive")
    elif kind == "no-rates":
        _npz(tmp_path / "data.npz", spikes=rates, time=time)
    elif kind == "2d-rates":
        _npz(tmp_path / "data.npz", rates=rates[:, :, 0], time=time)
    elif kind == "time-mismatch":
        _npz(tmp_path / "data.npz", rates=rates, time=time[:10])
    elif kind == "no-overlap":
        _npz(tmp_path / "data.npz", rates=rates, time=time + 100.0)
    elif kind == "suffix":
        (tmp_path / "data.csv").write_text("1,2,3\n")
        return "data.csv"
    elif kind == "nwb":
        (tmp_path / "data.nwb").write_bytes(b"")
        return "data.nwb"
    return "data.npz"


DATA_KINDS = ["missing", "folder", "not-npz", "no-rates", "2d-rates", "time-mismatch", "no-overlap", "suffix", "nwb"]


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_bad_compare_data_is_refused_before_the_run(tmp_path, capsys, kind):
    name = _write_data(tmp_path, kind)
    run_refused(tmp_path, capsys, tiny_data(compare={"data": name}), "compare.data")


def test_good_compare_data_passes(tmp_path):
    rates = np.abs(np.random.default_rng(0).normal(5, 1, (20, 50, 8)))
    _npz(tmp_path / "data.npz", rates=rates, time=(np.arange(50) - 25) * 0.01)
    config = Config.from_dict(tiny_data(compare={"data": "data.npz"}), base=tmp_path)
    preflight.check(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Errors the pipeline found only after creating the run folder
# ---------------------------------------------------------------------------

LATE_ERRORS = [
    pytest.param({"task": {"dt": 0.03, "reach_duration": 0.4}}, ["task.dt", "PV2/3"], id="dt-above-tau"),
    pytest.param({"circuit": {"overrides": {"tau": {"PV5B": 0.005}}}}, ["task.dt", "PV5B"], id="tau-below-dt"),
    pytest.param({"spiking": {"enabled": True, "dt": 3e-4}}, ["spiking.dt", "divide"], id="spiking-dt-not-dividing"),
    pytest.param(
        {"spiking": {"enabled": True, "dt": 1e-3}, "circuit": {"overrides": {"tau": {"PV5B": 0.001}}}},
        ["PV5B"],
        id="spiking-dt-above-tau",
    ),
    pytest.param(
        {"rate": {"transfer": "rectified_tanh", "rest_rate": 150.0}},
        ["rate.rest_rate", "150"],
        id="rest-rate-unreachable",
    ),
    pytest.param(
        {
            "task": {"dt": 0.06, "reach_duration": 0.4},
            "circuit": {
                "overrides": {
                    "tau": {
                        p: 0.1
                        for p in (
                            "PV2/3",
                            "PV5A",
                            "PV5B",
                            "PV6",
                            "SST2/3",
                            "SST5A",
                            "SST5B",
                            "SST6",
                            "VIP2/3",
                            "NGF1",
                            "IT2/3",
                            "IT4",
                            "IT5A",
                            "IT5B",
                            "PT5B",
                            "IT6",
                            "CT6",
                        )
                    }
                }
            },
            "ann": {"archs": ["rnn"]},
        },
        ["ann.rnn.tau", "dt"],
        id="ann-dt-above-tau",
    ),
    pytest.param(
        {"spiking": {"enabled": True}, "rate": {"transfer": "relu", "transfer_threshold": 100.0}},
        ["rate.transfer", "calibrat"],
        id="twin-cannot-calibrate",
    ),
    pytest.param({"circuit": {"n_units": 16}}, ["n_units", "17"], id="fewer-units-than-populations"),
]


@pytest.mark.parametrize(("changes", "needles"), LATE_ERRORS)
def test_errors_found_late_are_found_before_any_folder(tmp_path, capsys, changes, needles):
    run_refused(tmp_path, capsys, tiny_data(**changes), *needles)


@pytest.mark.parametrize(("changes", "needles"), LATE_ERRORS[:2])
def test_late_errors_without_out_leave_no_results_folder(tmp_path, capsys, monkeypatch, changes, needles):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path, tiny_data(**changes))
    rc = main(["run", str(cfg)])
    assert_refused(rc, capsys.readouterr(), *needles)
    assert not (tmp_path / "results").exists()


def test_existing_results_are_untouched_by_a_refused_run(tmp_path, capsys, reference_run_file):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(reference_run_file, out / "run.h5")
    (out / "summary.md").write_text("old results\n")
    before = snapshot(tmp_path)
    cfg = write_config(tmp_path, tiny_data(task={"dt": 0.03, "reach_duration": 0.4}))
    before = snapshot(tmp_path)
    rc = main(["run", str(cfg), "--out", str(out)])
    assert_refused(rc, capsys.readouterr(), "task.dt")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# Run files with a malformed or missing part
# ---------------------------------------------------------------------------


def _damage(path: Path, kind: str) -> str:
    """Damage a copy of a finished run file; returns a word the error must name."""
    with h5py.File(path, "r+") as f:
        if kind == "schema-string":
            f.attrs["schema_version"] = "1"
        elif kind == "schema-float":
            f.attrs["schema_version"] = 1.5
        elif kind == "schema-array":
            f.attrs["schema_version"] = np.array([1, 2])
        elif kind == "config-not-toml":
            f.attrs["config"] = "[circuit\nn_units = "
        elif kind == "config-number":
            f.attrs["config"] = 5
        elif kind == "no-config":
            del f.attrs["config"]
        elif kind == "no-seed":
            del f.attrs["seed"]
        elif kind == "no-connectome-pre":
            del f["circuit/connectome/pre"]
        elif kind == "no-task-dt":
            del f["task"].attrs["dt"]
        elif kind == "no-rate-w-in":
            del f["rate/W_in"]
        elif kind == "metric-text":
            f["metrics"].attrs["rate_position_r2"] = "high"
        elif kind == "stage-no-key":
            del f["stages/rate"].attrs["key"]
        elif kind == "stage-group-missing":
            del f["task"]
        elif kind == "dims-mismatch":
            f["rate/rates"].attrs["dims"] = "condition,time"
        elif kind == "n-units-text":
            f["circuit"].attrs["n_units"] = "many"
    return {
        "schema-string": "schema_version",
        "schema-float": "schema_version",
        "schema-array": "schema_version",
        "config-not-toml": "config",
        "config-number": "config",
        "no-config": "config",
        "no-seed": "seed",
        "no-connectome-pre": "pre",
        "no-task-dt": "dt",
        "no-rate-w-in": "W_in",
        "metric-text": "rate_position_r2",
        "stage-no-key": "key",
        "stage-group-missing": "task",
        "dims-mismatch": "rates",
        "n-units-text": "n_units",
    }[kind]


DAMAGE = [
    "schema-string",
    "schema-float",
    "schema-array",
    "config-not-toml",
    "config-number",
    "no-config",
    "no-seed",
    "no-connectome-pre",
    "no-task-dt",
    "no-rate-w-in",
    "metric-text",
    "stage-no-key",
    "stage-group-missing",
    "dims-mismatch",
    "n-units-text",
]


@pytest.fixture
def damaged(tmp_path, smoke_run):
    def make(kind: str) -> tuple[Path, str]:
        folder = tmp_path / f"run-{kind}"
        folder.mkdir()
        path = folder / "run.h5"
        shutil.copyfile(smoke_run / "run.h5", path)
        return path, _damage(path, kind)

    return make


@pytest.mark.parametrize("kind", DAMAGE)
@pytest.mark.parametrize("command", ["inspect", "spiking", "compare", "run"])
def test_malformed_run_file_is_one_line_error(tmp_path, capsys, damaged, kind, command):
    path, word = damaged(kind)
    args = {
        "inspect": ["inspect", str(path)],
        "spiking": ["spiking", str(path), "--target", "numpy"],
        "compare": ["compare", str(path)],
        "run": ["run", str(SMOKE), "--out", str(path.parent)],
    }[command]
    before = snapshot(tmp_path)
    rc = main(args)
    assert_refused(rc, capsys.readouterr(), path.name, word)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", DAMAGE)
def test_malformed_run_file_raises_run_file_error_in_store(damaged, kind):
    path, word = damaged(kind)
    with pytest.raises(RunFileError, match=word) as info:
        store.open_run(path).close()
    assert "\n" not in str(info.value)


def _flip_byte(path: Path, dataset: str) -> None:
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        assert ds.fletcher32, dataset
        offset = ds.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 5)
        byte = fh.read(1)
        fh.seek(offset + 5)
        fh.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    "dataset", ["rate/rates", "task/targets", "circuit/connectome/weight_trained", "ann/gru/hidden", "spiking/rates"]
)
@pytest.mark.parametrize("command", ["inspect", "compare", "spiking"])
def test_corrupted_byte_is_reported_on_read(tmp_path, capsys, smoke_run, dataset, command):
    path = tmp_path / "run" / "run.h5"
    path.parent.mkdir()
    shutil.copyfile(smoke_run / "run.h5", path)
    _flip_byte(path, dataset)
    with pytest.raises(RunFileError, match=dataset):
        store.open_run(path)
    before = path.read_bytes()
    args = {
        "inspect": ["inspect", str(path)],
        "compare": ["compare", str(path)],
        "spiking": ["spiking", str(path), "--target", "numpy"],
    }[command]
    rc = main(args)
    assert_refused(rc, capsys.readouterr(), dataset, "checksum")
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------
# Sweeps: every point is checked before any runs
# ---------------------------------------------------------------------------


def _sweep(tmp_path: Path, grid: dict, base: dict | None = None) -> Path:
    write_config(tmp_path, tiny_data(), "base.toml")
    text = {"sweep": {"experiment": "base.toml", "workers": 1}, "grid": grid}
    if base:
        text["base"] = base
    path = tmp_path / "sweep.toml"
    path.write_text(tomli_w.dumps(text))
    return path


@pytest.mark.parametrize(
    ("grid", "needles"),
    [
        pytest.param({"task.dt": [0.01, 0.03]}, ["point 2", "task.dt"], id="dt-above-tau"),
        pytest.param({"circuit.n_units": [60, 3_000_000]}, ["point 2", "memory", "circuit.n_units"], id="huge"),
        pytest.param({"experiment.seed": [0, 2**40]}, ["point 2", "experiment.seed"], id="seed"),
        pytest.param({"lesion.silence": [[], ["PT5X"]]}, ["PT5X", "'PT5B'"], id="unknown-population"),
        pytest.param({"compare.data": ["", "nowhere.npz"]}, ["compare.data", "nowhere.npz"], id="missing-data"),
    ],
)
def test_sweep_checks_every_point_before_running_any(tmp_path, capsys, grid, needles):
    sweep = _sweep(tmp_path, grid)
    before = snapshot(tmp_path)
    rc = main(["sweep", str(sweep), "--out", str(tmp_path / "out")])
    assert_refused(rc, capsys.readouterr(), *needles)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["--workers", "0"],
        ["--workers", "-3"],
        ["--workers", str(10**9)],
        ["--scheduler", "not an address"],
        ["--scheduler", "tcp://127.0.0.1:1"],
        ["--workers", "two"],
    ],
)
def test_bad_sweep_arguments_are_refused(tmp_path, capsys, args):
    sweep = _sweep(tmp_path, {"experiment.seed": [0, 1]})
    before = snapshot(tmp_path)
    rc = main(["sweep", str(sweep), "--out", str(tmp_path / "out"), *args])
    assert_refused(rc, capsys.readouterr(), args[0])
    assert snapshot(tmp_path) == before


def test_sweep_refused_on_full_disk(tmp_path, capsys, monkeypatch):
    sweep = _sweep(tmp_path, {"experiment.seed": [0, 1]})
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    before = snapshot(tmp_path)
    rc = main(["sweep", str(sweep), "--out", str(tmp_path / "out")])
    assert_refused(rc, capsys.readouterr(), "disk space")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# Other subcommands' arguments
# ---------------------------------------------------------------------------


@pytest.fixture
def finished(tmp_path, smoke_run) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(smoke_run / "run.h5", folder / "run.h5")
    return folder / "run.h5"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(["--k", "0"], ["--k", "0"], id="k-0"),
        pytest.param(["--k", "-2"], ["--k", "-2"], id="k-negative"),
        pytest.param(["--k", str(10**8)], ["spiking.k", "memory"], id="k-huge"),
        pytest.param(["--k", str(2**64)], ["--k", "64-bit"], id="k-2**64"),
        pytest.param(["--trials", "-1"], ["--trials", "-1"], id="trials-negative"),
        pytest.param(["--trials", "0"], ["--trials", "0"], id="trials-0"),
        pytest.param(["--trials", str(10**9)], ["spiking.trials_per_condition", "memory"], id="trials-huge"),
        pytest.param(["--k", "abc"], ["--k", "abc"], id="k-text"),
        pytest.param(["--target", "gpu"], ["--target", "gpu"], id="target"),
    ],
)
def test_bad_spiking_arguments_are_refused(tmp_path, capsys, finished, args, needles):
    before = snapshot(tmp_path)
    rc = main(["spiking", str(finished), *args])
    assert_refused(rc, capsys.readouterr(), *needles)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(["--n-pcs", "0"], ["--n-pcs", "0"], id="n-pcs-0"),
        pytest.param(["--n-pcs", "-4"], ["--n-pcs", "-4"], id="n-pcs-negative"),
        pytest.param(["--n-pcs", str(2**70)], ["--n-pcs", "64-bit"], id="n-pcs-huge"),
        pytest.param(["--n-null", "-1"], ["--n-null", "-1"], id="n-null-negative"),
        pytest.param(["--n-null", str(10**12)], ["--n-null"], id="n-null-huge"),
        pytest.param(["--data", "{tmp}/nowhere.npz"], ["--data", "nowhere.npz"], id="data-missing"),
        pytest.param(["--data", "{tmp}/bad.npz"], ["--data", "bad.npz"], id="data-unloadable"),
        pytest.param(["{tmp}/other.h5"], ["other.h5"], id="other-run-missing"),
    ],
)
def test_bad_compare_arguments_are_refused(tmp_path, capsys, finished, args, needles):
    (tmp_path / "bad.npz").write_text("not an archive")
    before = snapshot(tmp_path)
    rc = main(["compare", str(finished), *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    assert_refused(rc, capsys.readouterr(), *needles)
    assert snapshot(tmp_path) == before


def test_spiking_on_a_circuit_only_file_is_refused(tmp_path, capsys, run_file):
    before = run_file.read_bytes()
    rc = main(["spiking", str(run_file)])
    assert_refused(rc, capsys.readouterr(), "rate")
    assert run_file.read_bytes() == before


@pytest.mark.parametrize("jobs", ["0", "-2", str(10**9), "two"])
def test_bad_run_jobs_are_refused(tmp_path, capsys, jobs):
    run_refused(tmp_path, capsys, {"experiment": {"name": "x"}}, "--jobs", extra=("--jobs", jobs))


def test_ann_workers_count_in_the_memory_estimate():
    config = tiny_config(ann={"archs": ["rnn", "gru", "lstm"]})
    one = preflight.estimate_memory(config, jobs=1)
    three = preflight.estimate_memory(config, jobs=3)
    ann = one.stage_bytes("ann")
    assert three.stage_bytes("train") == pytest.approx(one.stage_bytes("train") + 2 * ann)
    assert three.stage_bytes("compare") == one.stage_bytes("compare")  # the workers are gone by then
    assert preflight.estimate_memory(config, jobs=9).stage_bytes("train") == pytest.approx(
        one.stage_bytes("train") + 3 * ann
    )  # at most one worker per ANN


def test_argparse_errors_are_one_line(capsys):
    assert_refused(main(["run", "--no-such-option"]), capsys.readouterr(), "--no-such-option")
    assert_refused(main(["nonsense"]), capsys.readouterr(), "nonsense")


# ---------------------------------------------------------------------------
# Generated configs: refused in one line, or accepted with nothing computed
# ---------------------------------------------------------------------------

_KEYS = {
    "experiment": {"seed": "int"},
    "circuit": {"n_units": "int", "overrides": "overrides"},
    "task": {
        "dt": "float",
        "n_targets": "int",
        "reach_duration": "float",
        "delay_max": "float",
        "hold": "float",
        "catch_fraction": "float",
        "eval_delay": "float",
    },
    "rate": {
        "noise_std": "float",
        "rest_rate": "float",
        "transfer": "transfer",
        "dtype": "dtype",
        "transfer_gain": "float",
        "transfer_threshold": "float",
    },
    "lif": {"tau_m": "float", "threshold": "float", "reset": "float", "sigma": "float"},
    "train": {"batch_size": "int", "validation_trials": "int", "max_iterations": "int", "eval_every": "int"},
    "ann": {"n_hidden": "int", "archs": "archs"},
    "spiking": {"enabled": "bool", "k": "int", "trials_per_condition": "int", "dt": "float"},
    "compare": {"n_pcs": "int", "n_null": "int", "data": "data"},
    "lesion": {"silence": "names", "cut": "projections"},
}
_NAMES = ["PT5B", "IT2/3", "PV5B", "PT5X", "", "SST5B", 3]
_INTS = st.one_of(st.integers(-5, 5000), st.sampled_from([0, -1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**40]))
_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1e-9, 1e-4, 0.01, 0.03, 1e12])
)
_VALUES = {
    "int": st.one_of(_INTS, st.floats(-10, 10), st.text(max_size=3), st.booleans()),
    "float": st.one_of(_FLOATS, _INTS, st.text(max_size=3)),
    "bool": st.one_of(st.booleans(), st.integers(0, 1)),
    "transfer": st.sampled_from(["lif_softplus", "lif", "relu", "softplus", "rectified_tanh", "tanh", 1]),
    "dtype": st.sampled_from(["float32", "float64", "float16", 8]),
    "archs": st.lists(st.sampled_from(["rnn", "gru", "lstm", "transformer"]), max_size=3),
    "data": st.sampled_from(["", "nowhere.npz", "data.npz", "data.txt"]),
    "names": st.lists(st.sampled_from(_NAMES), max_size=2),
    "projections": st.lists(
        st.sampled_from(["IT2/3 -> PT5B", "PT5B -> IT2/3", "IT2/3 -> PT5X", "nonsense", 4]), max_size=2
    ),
}
_OVERRIDE_NAMES = st.sampled_from(["PT5B", "PV5B", "IT2/3", "PT5X", "", 7])
_OVERRIDE_PROJECTIONS = st.sampled_from(["IT2/3 -> PT5B", "PT5B -> IT2/3", "IT2/3->PT5B", "X -> Y", "", 1])
_VALUES["overrides"] = st.dictionaries(
    st.sampled_from(
        ["size", "tau", "probability", "weight", "cut", "silence", "inputs", "outputs", "gain", "weight_cv", "sizes"]
    ),
    st.one_of(
        st.dictionaries(
            st.one_of(_OVERRIDE_NAMES, _OVERRIDE_PROJECTIONS, st.sampled_from(["go", "target", "goo"])),
            st.one_of(_FLOATS, st.lists(_OVERRIDE_NAMES, max_size=2)),
            max_size=2,
        ),
        st.lists(st.one_of(_OVERRIDE_NAMES, _OVERRIDE_PROJECTIONS), max_size=2),
        _FLOATS,
        st.text(max_size=2),
    ),
    max_size=3,
)
_CHANGES = st.lists(
    st.sampled_from([(s, k) for s, keys in _KEYS.items() for k in keys]), min_size=1, max_size=4, unique=True
).flatmap(lambda pairs: st.tuples(*[st.tuples(st.just(s), st.just(k), _VALUES[_KEYS[s][k]]) for s, k in pairs]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=_CHANGES)
def test_generated_configs_pass_or_are_refused_in_one_line(tmp_path_factory, changes):
    folder = tmp_path_factory.mktemp("gen")
    rates = np.ones((20, 50, 8))
    np.savez(folder / "data.npz", rates=rates, time=(np.arange(50) - 25) * 0.01)
    data = tiny_data()
    for section, key, value in changes:
        data.setdefault(section, {})[key] = value
    before = snapshot(folder)
    try:
        config = Config.from_dict(data, base=folder)
        preflight.check(config, folder / "out")
    except CortexsimError as exc:
        text = str(exc)
        assert text and "\n" not in text and "Traceback" not in text
    assert snapshot(folder) == before  # nothing computed, nothing written


def test_tiny_config_passes_every_check(tmp_path):
    estimate = preflight.check(tiny_config(), tmp_path / "out")
    assert estimate.peak < 1 << 30
    assert list(tmp_path.iterdir()) == []


def test_load_config_tiny_round_trip(tmp_path):
    path = write_config(tmp_path, tiny_data())
    assert load_config(path).to_toml() == tiny_config().to_toml()
    assert CHANGES["train"]["batch_size"] == load_config(path).train.batch_size


def test_config_error_and_store_error_are_cortexsim_errors():
    assert issubclass(ConfigError, CortexsimError) and issubclass(RunFileError, CortexsimError)


ARM = {"effector": {"kind": "arm26"}}
BAD_PERTURB = [
    pytest.param({"perturb": {"curl": True}}, ("[perturb]", "arm26"), id="perturb-without-arm"),
    pytest.param({"perturb": {"train_bump_fraction": 0.5}}, ("[perturb]", "arm26"), id="train-bumps-without-arm"),
    pytest.param({**ARM, "perturb": {"curl_field": [[0.0, 13.0]]}}, ("perturb.curl_field", "2 x 2"), id="curl-shape"),
    pytest.param({**ARM, "perturb": {"adapt_params": "some"}}, ("perturb.adapt_params", "io"), id="adapt-params"),
    pytest.param({**ARM, "perturb": {"bump_times": ["late"]}}, ("perturb.bump_times[0]", "peak_speed"), id="bump-time"),
    pytest.param({**ARM, "perturb": {"bump_force": -5.0}}, ("perturb.bump_force",), id="negative-force"),
    pytest.param({**ARM, "perturb": {"train_bump_fraction": 1.5}}, ("perturb.train_bump_fraction",), id="fraction"),
    pytest.param(
        {**ARM, "perturb": {"bumps": True, "bump_hold_time": 0.39}},
        ("perturb.bump_hold_time", "go cue"),
        id="late-hold",
    ),
    pytest.param({**ARM, "perturb": {"curl": True, "curve_every": 0}}, ("perturb.curve_every",), id="curve-every"),
]


@pytest.mark.parametrize(("changes", "needles"), BAD_PERTURB)
def test_bad_perturbation_settings_are_refused_naming_the_key(tmp_path, capsys, changes, needles):
    run_refused(tmp_path, capsys, tiny_data(**changes), *needles)


MAZE = {"kind": "maze", "n_targets": 3}
BAD_MAZE = [
    pytest.param({"task": {"kind": "mazes"}}, ("task.kind", "did you mean 'maze'"), id="kind"),
    pytest.param(
        {"task": {**MAZE, "maze_shapes": ["straight", "zigzag"]}}, ("task.maze_shapes[1]", "s_curve"), id="shape"
    ),
    pytest.param({"task": {**MAZE, "maze_shapes": []}}, ("task.maze_shapes", "at least one"), id="no-shapes"),
    pytest.param({"task": {**MAZE, "maze_shapes": ["arc", "arc"]}}, ("task.maze_shapes", "twice"), id="repeated-shape"),
    pytest.param({"task": {**MAZE, "maze_bend": 0.0}}, ("task.maze_bend",), id="flat-bend"),
    pytest.param({"task": {**MAZE, "maze_bend": 1.5}}, ("task.maze_bend",), id="huge-bend"),
    pytest.param({"task": {**MAZE, "random_angles": True}}, ("task.random_angles", "maze"), id="random-angles"),
    pytest.param(
        {**ARM, "task": MAZE, "perturb": {"curl": True}}, ("[perturb]", "maze", "center-out"), id="perturb-on-maze"
    ),
    pytest.param(
        {**ARM, "task": MAZE, "perturb": {"train_bump_fraction": 0.5}}, ("[perturb]", "maze"), id="bumps-on-maze"
    ),
]


@pytest.mark.parametrize(("changes", "needles"), BAD_MAZE)
def test_bad_maze_settings_are_refused_naming_the_key(tmp_path, capsys, changes, needles):
    run_refused(tmp_path, capsys, tiny_data(**changes), *needles)
