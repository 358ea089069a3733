"""The HDF5 run file: round trip, self-description, provenance, bad files, atomic writes."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import cortexsim
from cortexsim import assembly, pipeline, store
from cortexsim.circuit import build_connectome
from cortexsim.config import Config
from cortexsim.errors import CortexsimError, RunFileError

BAD_FILE_KINDS = ("foreign", "truncated", "text", "newer_schema", "missing")
ALL_LAYERS = {"L1", "L2/3", "L4", "L5A", "L5B", "L6"}


def _write(path: Path, connectome, config_text: str = "[experiment]\nseed = 4\n", seed: int = 4, **kw) -> None:
    with store.open_for_update(path, store.provenance(config_text, seed)) as f:
        store.write_circuit(f, connectome, **kw)


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.fixture
def connectome(default_spec):
    return build_connectome(default_spec, 300, np.random.default_rng(4))


# ---------------------------------------------------------------------------
# Round trip and self-description
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="default"),
        pytest.param(
            {
                "silence": ["IT2/3"],
                "cut": ["IT4 -> IT2/3"],
                "size": {"PV5B": 900},
                "inputs": {"extra": ["IT6"]},
                "gain": 0.7,
            },
            id="overridden",
        ),
    ],
)
def test_circuit_round_trip(tmp_path, default_spec, overrides):
    spec = default_spec.with_overrides(overrides) if overrides else default_spec
    original = build_connectome(spec, 400, np.random.default_rng(21))
    path = tmp_path / "c.h5"
    _write(path, original)
    with store.open_run(path) as f:
        back = store.read_circuit(f)
    assert back.spec == original.spec == spec
    assert back.populations == original.populations
    for name in ("pre", "post", "weight", "sign", "output_mask"):
        a, b = getattr(original, name), getattr(back, name)
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b), name
    assert back.input_masks.keys() == original.input_masks.keys()
    for group, mask in original.input_masks.items():
        assert np.array_equal(back.input_masks[group], mask), group
    assert np.array_equal(back.dense(), original.dense())


def _datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    found = {}
    f.visititems(lambda name, obj: found.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_every_dataset_has_units_dims_description(tmp_path, connectome):
    path = tmp_path / "c.h5"
    _write(path, connectome)
    with store.open_for_update(path) as f:
        store.write_trained_weight(f, connectome.weight * 2)
    with h5py.File(path, "r") as f:
        datasets = _datasets(f)
        assert {
            "circuit/populations",
            "circuit/connectome/pre",
            "circuit/connectome/post",
            "circuit/connectome/weight_trained",
            "circuit/connectome/sign",
            "circuit/connectome/weight_init",
            "circuit/output_mask",
            "circuit/inputs/target",
            "circuit/inputs/go",
        } <= set(datasets)
        for name, ds in datasets.items():
            for key in ("units", "dims", "description"):
                assert key in ds.attrs, f"{name} lacks '{key}'"
                assert isinstance(ds.attrs[key], str) and ds.attrs[key].strip(), (name, key)
            assert len(ds.attrs["dims"].split(",")) == ds.ndim, name
        assert datasets["circuit/connectome/weight_init"].attrs["units"] == "mV/Hz"
        assert datasets["circuit/connectome/weight_trained"].attrs["units"] == "mV/Hz"
        assert "circuit/connectome/weight" not in datasets  # one name per meaning (issue 12)


def test_pipeline_run_file_is_self_describing(reference_run_file):
    with h5py.File(reference_run_file, "r") as f:
        datasets = _datasets(f)
        assert datasets
        for name, ds in datasets.items():
            assert {"units", "dims", "description"} <= set(ds.attrs), name
            assert len(str(ds.attrs["dims"]).split(",")) == ds.ndim, name
        assert f.attrs["description"]


def test_root_provenance_attributes(tmp_path, connectome):
    text = '[experiment]\nseed = 12\nname = "prov"\n'
    path = tmp_path / "c.h5"
    _write(path, connectome, config_text=text, seed=12)
    with store.open_run(path) as f:
        attrs = dict(f.attrs)
        circuit_attrs = dict(f["circuit"].attrs)
    for key in ("schema_version", "seed", "config", "cortexsim_version", "created_utc", "git_commit"):
        assert key in attrs, key
    assert attrs["schema_version"] == store.SCHEMA_VERSION == 2
    assert attrs["seed"] == 12
    assert attrs["config"] == text
    assert attrs["cortexsim_version"] == cortexsim.__version__
    created = dt.datetime.fromisoformat(attrs["created_utc"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 600
    assert isinstance(attrs["git_commit"], str) and attrs["git_commit"]
    assert attrs["numpy_version"] == np.__version__
    assert circuit_attrs["n_units"] == connectome.n_units
    assert circuit_attrs["n_synapses"] == connectome.n_synapses


def test_populations_table_columns_and_layers(tmp_path, connectome):
    path = tmp_path / "c.h5"
    _write(path, connectome)
    with store.open_run(path) as f:
        table = f["/circuit/populations"][()]
    assert table.dtype.names == ("name", "layer", "cell_class", "subtype", "start", "stop")
    text = {
        k: [x.decode() if isinstance(x, bytes) else x for x in table[k]]
        for k in ("name", "layer", "cell_class", "subtype")
    }
    assert set(text["layer"]) >= ALL_LAYERS
    assert text["name"] == [p.name for p in connectome.populations]
    assert set(text["cell_class"]) == {"E", "I"}
    assert table["start"][0] == 0 and table["stop"][-1] == connectome.n_units
    assert np.array_equal(table["start"][1:], table["stop"][:-1])


def test_sign_dataset_is_per_synapse_dale(tmp_path, connectome):
    path = tmp_path / "c.h5"
    _write(path, connectome)
    with h5py.File(path, "r") as f:
        sign = f["/circuit/connectome/sign"][()]
        pre = f["/circuit/connectome/pre"][()]
        weight = f["/circuit/connectome/weight_init"][()]
    assert sign.shape == pre.shape == weight.shape
    assert np.array_equal(sign, connectome.sign[pre])
    assert np.all(weight >= 0)


def test_write_array_rejects_dims_mismatch(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        with pytest.raises(ValueError, match="dims"):
            store.write_array(f, "a", np.zeros((2, 3)), units="1", dims="unit", description="x")
        ds = store.write_array(f, "b", np.zeros((2, 3)), units="s", dims=("trial", "time"), description="x")
        assert ds.attrs["dims"] == "trial,time"


# ---------------------------------------------------------------------------
# Files that are not readable run files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BAD_FILE_KINDS)
def test_open_run_rejects_bad_file_naming_it(make_bad_file, kind):
    path = make_bad_file(kind)
    with pytest.raises(RunFileError) as info:
        store.open_run(path)
    assert isinstance(info.value, OSError)
    assert path.name in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", BAD_FILE_KINDS)
def test_describe_rejects_bad_file(make_bad_file, kind):
    path = make_bad_file(kind)
    with pytest.raises(RunFileError, match=path.name.replace(".", r"\.")):
        store.describe(path)


def test_newer_schema_message_says_upgrade(make_bad_file):
    with pytest.raises(RunFileError, match="99") as info:
        store.open_run(make_bad_file("newer_schema"))
    assert "upgrade" in str(info.value)


def test_schema_version_zero_is_rejected(run_file):
    with h5py.File(run_file, "r+") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(RunFileError, match=run_file.name):
        store.open_run(run_file)


def test_schema_1_file_is_refused_with_the_way_out(run_file):
    """Schema 1 kept initial, then trained weights under one name; such a file is refused, not misread."""
    with h5py.File(run_file, "r+") as f:
        f.attrs["schema_version"] = 1
    with pytest.raises(RunFileError, match="schema 1") as info:
        store.open_run(run_file)
    assert "cortexsim run --force" in str(info.value) and "\n" not in str(info.value)


def test_trained_weights_exist_only_after_training(tmp_path, connectome):
    path = tmp_path / "c.h5"
    _write(path, connectome)
    with store.open_run(path) as f:
        assert "weight_trained" not in f["circuit/connectome"]
        with pytest.raises(RunFileError, match="not trained yet"):
            store.read_circuit(f, weights="trained")
        np.testing.assert_array_equal(store.read_circuit(f).weight, connectome.weight)
    with store.open_for_update(path) as f:
        store.write_trained_weight(f, connectome.weight * 3)
    with store.open_run(path) as f:
        np.testing.assert_array_equal(store.read_circuit(f, weights="trained").weight, connectome.weight * 3)
        np.testing.assert_array_equal(store.read_circuit(f, weights="init").weight, connectome.weight)


def test_read_circuit_without_circuit_group(tmp_path):
    path = tmp_path / "empty.h5"
    with store.open_for_update(path, store.provenance("", 0)):
        pass
    with store.open_run(path) as f, pytest.raises(RunFileError, match="circuit"):
        store.read_circuit(f)


# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_update_that_raises_leaves_old_file_byte_identical(run_file):
    before = run_file.read_bytes()
    with pytest.raises(Boom), store.open_for_update(run_file) as f:
        store.write_array(f, "junk", np.arange(5), units="1", dims="x", description="junk")
        f.attrs["seed"] = 999
        raise Boom
    assert run_file.read_bytes() == before
    assert _temp_files(run_file.parent) == []


def test_new_file_that_raises_leaves_old_file_and_no_temp(run_file, connectome):
    before = run_file.read_bytes()
    with pytest.raises(Boom), store.open_for_update(run_file, store.provenance("x", 1)) as f:
        store.write_circuit(f, connectome)
        raise Boom
    assert run_file.read_bytes() == before
    assert _temp_files(run_file.parent) == []


def test_failed_first_write_creates_no_file(tmp_path, connectome):
    path = tmp_path / "new.h5"
    with pytest.raises(Boom), store.open_for_update(path, store.provenance("x", 1)) as f:
        store.write_circuit(f, connectome)
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_successful_update_replaces_file_and_leaves_no_temp(run_file):
    with store.open_for_update(run_file) as f:
        store.write_array(f, "extra", np.arange(3.0), units="s", dims="x", description="added")
    with store.open_run(run_file) as f:
        assert np.array_equal(f["extra"][()], np.arange(3.0))
        assert "circuit" in f  # the old content is kept
    assert _temp_files(run_file.parent) == []


@pytest.mark.parametrize("fail_after", [0, 1, 3, 5])
def test_crash_half_way_through_pipeline_write_keeps_old_run_file(run_file, monkeypatch, fail_after):
    before = run_file.read_bytes()
    config = Config.from_dict({"experiment": {"seed": 9}, "circuit": {"n_units": 150}})
    connectome = assembly.build_circuit(config)
    real = store.write_array
    calls = []  # every dataset write_circuit makes (it writes them through store.datasets.write_array)

    def flaky(*args, **kwargs):
        if len(calls) >= fail_after:
            raise Boom(f"simulated crash after {len(calls)} datasets")
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(store.circuit, "write_array", flaky)
    with pytest.raises(Boom):
        pipeline.write_circuit_file(config, connectome, run_file)
    assert len(calls) == fail_after  # the crash really happened half-way
    assert run_file.read_bytes() == before
    assert _temp_files(run_file.parent) == []
    monkeypatch.undo()
    with store.open_run(run_file) as f:  # still readable, still the old circuit
        assert f.attrs["seed"] == 5


def test_crash_in_write_circuit_keeps_old_run_file(run_file, monkeypatch):
    before = run_file.read_bytes()
    config = Config.from_dict({"experiment": {"seed": 9}, "circuit": {"n_units": 150}})
    connectome = assembly.build_circuit(config)

    def crash(f, c):
        f.create_group("circuit").create_dataset("partial", data=np.arange(3))
        raise Boom

    monkeypatch.setattr(store, "write_circuit", crash)
    with pytest.raises(Boom):
        pipeline.write_circuit_file(config, connectome, run_file)
    assert run_file.read_bytes() == before
    assert _temp_files(run_file.parent) == []


@pytest.mark.parametrize("kind", ["foreign", "text", "truncated"])
@pytest.mark.parametrize("new", [True, False], ids=["new-file", "update"])
def test_open_for_update_refuses_to_overwrite_non_run_file(make_bad_file, kind, new):
    path = make_bad_file(kind)
    before = path.read_bytes()
    with pytest.raises(RunFileError, match=path.name.replace(".", r"\.")):
        with store.open_for_update(path, store.provenance("", 0) if new else None):
            pytest.fail("the body must not run")
    assert path.read_bytes() == before
    assert _temp_files(path.parent) == []


def test_update_of_missing_file_is_refused(tmp_path):
    with pytest.raises(RunFileError, match="missing.h5"):
        with store.open_for_update(tmp_path / "missing.h5"):
            pytest.fail("the body must not run")
    assert list(tmp_path.iterdir()) == []


def test_bad_provenance_attribute_leaves_no_temp_file(tmp_path):
    path = tmp_path / "c.h5"
    with pytest.raises(TypeError):
        with store.open_for_update(path, {**store.provenance("", 0), "bad": None}):
            pass
    assert _temp_files(tmp_path) == []


# ---------------------------------------------------------------------------
# Checksums (Fletcher-32): a corrupted byte is reported, never used
# ---------------------------------------------------------------------------


def _flip(path: Path, dataset: str, at: int = 3) -> None:
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + at)
        byte = fh.read(1)[0]
        fh.seek(offset + at)
        fh.write(bytes([byte ^ 0x5A]))


def test_every_non_scalar_dataset_carries_a_checksum(run_file):
    unfiltered = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.size and obj.ndim and not h5py.check_string_dtype(obj.dtype):
            if not obj.fletcher32:
                unfiltered.append(name)

    with h5py.File(run_file) as f:
        f.visititems(visit)
        assert f["circuit/connectome/pre"].fletcher32 and f["circuit/populations"].fletcher32
    assert unfiltered == []


def test_write_array_checksums_numbers_but_not_scalars_or_strings(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        a = store.write_array(f, "a", np.arange(10.0), units="1", dims="x", description="d")
        big = store.write_array(f, "big", np.arange(400_000.0), units="1", dims="x", description="d")
        s = store.write_array(f, "s", np.float64(3.0), units="1", dims=(), description="d")
        e = store.write_array(f, "e", np.zeros(0), units="1", dims="x", description="d")
        t = store.write_array(f, "t", np.array(["a", "b"], dtype=object), units="1", dims="x", description="d")
        assert a.fletcher32 and big.fletcher32 and big.compression == "gzip"
        assert not s.fletcher32 and not e.fletcher32 and not t.fletcher32


@pytest.mark.parametrize(
    "dataset",
    [
        "circuit/connectome/pre",
        "circuit/connectome/weight_init",
        "circuit/populations",
        "circuit/output_mask",
        "circuit/inputs/go",
    ],
)
def test_corrupted_byte_is_a_one_line_run_file_error(run_file, dataset):
    _flip(run_file, dataset)
    with pytest.raises(RunFileError, match=dataset) as info:
        store.open_run(run_file)
    message = str(info.value)
    assert "\n" not in message and "checksum" in message and run_file.name in message
    with pytest.raises(RunFileError, match=dataset):
        store.describe(run_file)
    with pytest.raises(RunFileError, match=dataset):
        with store.open_for_update(run_file):
            pytest.fail("a corrupt file must not be updated")


def test_corrupted_byte_in_inspect_is_one_line(run_file, capsys):
    from cortexsim.cli import main

    _flip(run_file, "circuit/connectome/weight_init")
    assert main(["inspect", str(run_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cortexsim: error: ") and "connectome/weight_init" in err[0]


def test_intact_file_is_verified_once_per_version(run_file, monkeypatch):
    store._VERIFIED.clear()
    with store.open_run(run_file) as f:
        assert store.verify_checksums(f, run_file) == 0  # already verified by open_run
    store._VERIFIED.clear()
    with h5py.File(run_file) as f:
        assert store.verify_checksums(f, run_file) > 5


def test_legacy_file_without_checksums_is_still_read(tmp_path, connectome):
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(store.provenance("", 0))
        f.create_dataset("extra", data=np.arange(5))
    with store.open_run(path) as f:
        assert not f["extra"].fletcher32


# ---------------------------------------------------------------------------
# Updating needs room for a copy
# ---------------------------------------------------------------------------


def test_update_without_room_for_the_copy_is_refused(run_file, monkeypatch):
    before = run_file.read_bytes()
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=len(before)))
    with pytest.raises(RunFileError) as info:
        with store.open_for_update(run_file):
            pytest.fail("must not start copying")
    message = str(info.value)
    assert str(run_file.parent) in message and "MiB" in message and "free" in message and "\n" not in message
    assert run_file.read_bytes() == before
    assert _temp_files(run_file.parent) == []


def test_update_with_room_for_the_copy_proceeds(run_file, monkeypatch):
    real = shutil.disk_usage
    size = run_file.stat().st_size
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=2 * size + (32 << 20)))
    with store.open_for_update(run_file) as f:
        f.attrs["note"] = "ok"
    with store.open_run(run_file) as f:
        assert f.attrs["note"] == "ok"


# ---------------------------------------------------------------------------
# Figures are written atomically
# ---------------------------------------------------------------------------


def test_figure_write_that_fails_keeps_the_old_figure(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from cortexsim import plots

    path = tmp_path / "fig.png"
    fig, _ = plt.subplots()
    plots.save(fig, path)
    before = path.read_bytes()
    fig, _ = plt.subplots()

    def crash(target, *args, **kwargs):
        Path(target).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fig, "savefig", crash)
    with pytest.raises(KeyboardInterrupt):
        plots.save(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_figure_format_follows_the_suffix(tmp_path, suffix):
    import matplotlib.pyplot as plt

    from cortexsim import plots

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = plots.save(fig, tmp_path / "sub" / f"f{suffix}")
    head = path.read_bytes()[:16]
    assert {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}[suffix] in head
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# ---------------------------------------------------------------------------
# A folder in use is held by a lock file
# ---------------------------------------------------------------------------

HOLDER = """
import sys, time
from cortexsim import store
with store.hold_folder(sys.argv[1], "cortexsim run holder.toml --out " + sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """A folder held by a real second process (killed at the end)."""
    folder = tmp_path / "busy"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_second_command_on_a_held_folder_is_refused_naming_the_holder(held, capsys):
    folder, proc = held
    with pytest.raises(CortexsimError) as info:
        with store.hold_folder(folder, "cortexsim run"):
            pytest.fail("the folder is held")
    message = str(info.value)
    assert f"pid {proc.pid}" in message and "holder.toml" in message and "\n" not in message
    assert store.read_lock(folder)["pid"] == proc.pid  # the holder's lock is untouched


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_cli_run_and_sweep_on_a_held_folder_exit_2(held, tmp_path, capsys, command):
    from tiny import SMOKE

    from cortexsim.cli import main

    folder, proc = held
    if command == "run":
        args = ["run", str(SMOKE), "--out", str(folder)]
    else:
        sweep = tmp_path / "sweep.toml"
        sweep.write_text(
            f'[sweep]\nexperiment = "{SMOKE}"\n[grid]\n"experiment.seed" = [0]\n'
            "[base.spiking]\nenabled = false\n[base.ann]\narchs = []\n"
        )
        args = ["sweep", str(sweep), "--out", str(folder)]
    before = sorted(p.name for p in folder.iterdir())
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"pid {proc.pid}" in err[0], err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_folder_inside_a_held_folder_is_held(held):
    folder, proc = held
    with pytest.raises(CortexsimError, match=f"pid {proc.pid}"):
        with store.hold_folder(folder / "point-1", "cortexsim run"):
            pytest.fail("inside a held folder")
    assert not (folder / "point-1").exists()


def test_lock_is_released_on_exit_and_on_ctrl_c(tmp_path):
    folder = tmp_path / "run"
    with store.hold_folder(folder, "cortexsim run") as lock:
        assert lock.exists() and store.read_lock(folder)["pid"] == os.getpid()
        assert store.lock_holder(folder)["command"] == "cortexsim run"
    assert not lock.exists()
    with pytest.raises(KeyboardInterrupt), store.hold_folder(folder, "cortexsim run"):
        raise KeyboardInterrupt
    assert not lock.exists()
    with store.hold_folder(folder, "again"):  # free again
        pass


def test_stale_lock_is_taken_over_with_a_notice(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (folder / store.LOCK_NAME).write_text(
        json.dumps(
            {
                "pid": pid,
                "host": platform.node(),
                "command": "cortexsim run",
                "started_utc": "2024-01-01T00:00:00+00:00",
            }
        )
    )
    notes = []
    with store.hold_folder(folder, "cortexsim run again", log=notes.append):
        assert store.read_lock(folder)["pid"] == os.getpid()
    assert len(notes) == 1 and str(pid) in notes[0] and "no longer running" in notes[0]
    assert not (folder / store.LOCK_NAME).exists()


def test_lock_with_a_reused_pid_is_stale(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / store.LOCK_NAME).write_text(
        json.dumps({"pid": os.getppid(), "start": "1", "host": platform.node(), "command": "old"})
    )
    assert store.lock_holder(folder) is None  # same PID, another process start time


def test_lock_from_another_host_is_respected(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / store.LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "cortexsim sweep"}))
    with pytest.raises(CortexsimError, match="elsewhere"):
        with store.hold_folder(folder, "cortexsim run"):
            pass


UPDATER = """
import sys, time
import numpy as np
from cortexsim import store

path, generation = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
t0 = time.perf_counter()
with store.open_for_update(path) as f:
    g = f.require_group("updates")
    for i in range(12):  # 12 MiB of new datasets, then the checksums, the fsync and the rename
        store.write_array(g, f"block{i}", np.full(1 << 17, generation, float), units="1", dims="x", description="x")
    g.attrs["generation"] = float(generation)
print(f"done {time.perf_counter() - t0:.3f}", flush=True)
"""


def test_an_update_killed_at_random_moments_leaves_a_complete_file(run_file):
    """SIGKILL at 10 random moments of an update: each time the file is the previous complete one or the new one."""
    import random
    import signal

    def start(generation: int) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", UPDATER, str(run_file), str(generation)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def generation() -> int:
        with store.open_run(run_file) as f:  # every check on open: schema, layout, checksums, values
            g = f.get("updates")
            held = int(g.attrs["generation"]) if g is not None and "generation" in g.attrs else 0
            blocks = [np.unique(g[f"block{i}"][()]).tolist() for i in range(12)] if held else []
        assert blocks == [[float(held)]] * 12 if held else blocks == []  # whole, never half of an update
        return held

    proc = start(1)  # an update left alone: how long the window to kill in is
    seconds = float(proc.stdout.readline().split()[1])
    assert proc.wait(timeout=120) == 0 and generation() == 1
    chance = random.Random(28)
    outcomes = []
    for attempt in range(2, 12):
        before = generation()
        proc = start(attempt)
        time.sleep(chance.uniform(0, 1.2 * seconds))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        after = generation()
        assert after in (before, attempt), (before, after, attempt)
        outcomes.append(after == attempt)
    assert not all(outcomes), "no kill landed inside an update: the test did not test"
    assert len(_temp_files(run_file.parent)) <= 1  # a killed writer's temporary file is removed by the next update
