"""The HDF5 run file: round trip, self-description, provenance, bad files, atomic writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h5py
import numpy as np
import pytest

import cortexsim
from cortexsim import pipeline, store
from cortexsim.circuit import build_connectome
from cortexsim.config import Config
from cortexsim.errors import RunFileError

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

@pytest.mark.parametrize("overrides", [
    pytest.param({}, id="default"),
    pytest.param({"silence": ["IT2/3"], "cut": ["IT4 -> IT2/3"], "size": {"PV5B": 900},
                  "inputs": {"extra": ["IT6"]}, "gain": 0.7}, id="overridden"),
])
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
    _write(path, connectome, weight_init=connectome.weight * 2)
    with h5py.File(path, "r") as f:
        datasets = _datasets(f)
        assert {"circuit/populations", "circuit/connectome/pre", "circuit/connectome/post",
                "circuit/connectome/weight", "circuit/connectome/sign", "circuit/connectome/weight_init",
                "circuit/output_mask", "circuit/inputs/target", "circuit/inputs/go"} <= set(datasets)
        for name, ds in datasets.items():
            for key in ("units", "dims", "description"):
                assert key in ds.attrs, f"{name} lacks '{key}'"
                assert isinstance(ds.attrs[key], str) and ds.attrs[key].strip(), (name, key)
            assert len(ds.attrs["dims"].split(",")) == ds.ndim, name
        assert datasets["circuit/connectome/weight"].attrs["units"] == "mV/Hz"


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
    assert attrs["schema_version"] == store.SCHEMA_VERSION == 1
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
    text = {k: [x.decode() if isinstance(x, bytes) else x for x in table[k]]
            for k in ("name", "layer", "cell_class", "subtype")}
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
        weight = f["/circuit/connectome/weight"][()]
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
    connectome = pipeline.build_circuit(config)
    real = store.write_array
    calls = []

    def flaky(*args, **kwargs):
        if len(calls) >= fail_after:
            raise Boom(f"simulated crash after {len(calls)} datasets")
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "write_array", flaky)
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
    connectome = pipeline.build_circuit(config)

    def crash(f, c, weight_init=None):
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
