"""Damaged or tampered run files are refused, never used (issue 32, class 2).

A finished run file is copied and damaged the ways a careless user or a hostile test does: a
dataset deleted, an attribute of the wrong type or out of range, one digit of an attribute
changed, NaN rates written over the data without a checksum, a trials table cut short. Every
reading command (``inspect``, ``compare``, ``spiking``, ``export``, ``score``, a resumed ``run``)
refuses it in one line ``cortexsim: error: ...`` naming the path, exit status 2, writing nothing;
``inspect`` prints the tree with the damage marked. The cases are generated from the file and from
:data:`cortexsim.integrity.SCHEMA`, so they cover paths no one listed.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import assert_refused, snapshot
from tiny import SMOKE

from cortexsim import integrity, store
from cortexsim.cli import main
from cortexsim.errors import RunFileError


def _copy(smoke_run: Path, folder: Path, checksums: bool = True) -> Path:
    """A private copy of the finished smoke run file in ``folder/run`` (without ``/checksums``: as older code wrote)."""
    path = folder / "run" / "run.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(smoke_run / "run.h5", path)
    if not checksums:
        with h5py.File(path, "r+") as f:
            if integrity.CHECKSUMS in f:
                del f[integrity.CHECKSUMS]
    return path


def _datasets(path: Path) -> list[str]:
    found: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return [n for n in found if n != integrity.CHECKSUMS]


def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(RunFileError) as info:
        store.open_run(path).close()
    text = str(info.value)
    assert "\n" not in text and path.name in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def _renew(f: h5py.File, name: str, data: np.ndarray, checksum: bool = False) -> None:
    """Replace dataset ``name`` by ``data`` with the same attributes, as a careless script does."""
    attrs = dict(f[name].attrs)
    del f[name]
    ds = f.create_dataset(name, data=data, fletcher32=checksum)
    ds.attrs.update(attrs)


# ---------------------------------------------------------------------------
# The ways of damaging a file; each names a path the refusal must name
# ---------------------------------------------------------------------------


def _nan_rates(f: h5py.File) -> None:
    rates = f["spiking/rates"][()]
    rates[0, 0, 0] = np.nan
    _renew(f, "spiking/rates", rates)


def _short_trials(f: h5py.File) -> None:
    _renew(f, "spiking/trials/condition", f["spiking/trials/condition"][:-3], checksum=True)


def _rng_digit(f: h5py.File) -> None:
    a = f["training/checkpoint"].attrs
    state = json.loads(a["rng_batch"])
    state["state"]["state"] += 1  # one digit of the random-generator state
    a["rng_batch"] = json.dumps(state)


def _passing_metric(f: h5py.File) -> None:
    f["metrics"].attrs["rate_position_r2"] = 0.999
    f["metrics"].attrs["rate_quality_passed"] = 1.0
    f["metrics"].attrs["quality_passed"] = 1.0


DAMAGE: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "no-sign": (lambda f: f.__delitem__("circuit/connectome/sign"), "/circuit/connectome/sign"),
    "no-angle": (lambda f: f.__delitem__("task/params/angle"), "/task/params/angle"),
    "no-metrics": (lambda f: f.__delitem__("metrics"), "metrics"),
    "no-stages": (lambda f: f.__delitem__("stages"), "/stages"),
    "no-trials": (lambda f: f.__delitem__("spiking/trials"), "/spiking/trials"),
    "schema-float": (lambda f: f.attrs.__setitem__("schema_version", 2.0), "schema_version"),
    "dt-nan": (lambda f: f["task"].attrs.__setitem__("dt", np.nan), "/task@dt"),
    "dt-negative": (lambda f: f["task"].attrs.__setitem__("dt", -0.01), "/task@dt"),
    "k-0": (lambda f: f["spiking"].attrs.__setitem__("k", 0), "/spiking@k"),
    "nan-rates": (_nan_rates, "/spiking/rates"),
    "short-trials": (_short_trials, "/spiking/trials/condition"),
    "rng-digit": (_rng_digit, "/training/checkpoint@rng_batch"),
    "passing-metric": (_passing_metric, "/metrics@"),
}
"""The examples of issue 32: damage -> a path the refusal names."""

COMMANDS = {
    "inspect": lambda p, tmp: ["inspect", str(p)],
    "compare": lambda p, tmp: ["compare", str(p)],
    "spiking": lambda p, tmp: ["spiking", str(p), "--target", "numpy"],
    "export": lambda p, tmp: ["export", str(p), "--nwb", str(tmp / "out.nwb")],
    "score": lambda p, tmp: ["score", str(p), "--data", str(tmp / "data.nwb"), "--json", str(tmp / "s.json")],
    "run": lambda p, tmp: ["run", str(SMOKE), "--out", str(p.parent)],
}
"""Every command that reads a run file; ``run`` resumes the finished run in the file's folder."""


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_every_reading_command_refuses_a_damaged_file(tmp_path, capsys, smoke_run, kind, command):
    damage, needle = DAMAGE[kind]
    path = _copy(smoke_run, tmp_path)
    (tmp_path / "data.nwb").write_bytes(b"only its name is read before the run file is refused")
    with h5py.File(path, "r+") as f:
        damage(f)
    before = snapshot(tmp_path)
    rc = main(COMMANDS[command](path, tmp_path))
    captured = capsys.readouterr()
    assert_refused(rc, captured, path.name, needle)
    assert snapshot(tmp_path) == before, "a refused command must write nothing"
    if command == "inspect" and kind != "schema-float":  # a file of no known schema gets no tree at all
        # the tree is printed with the damage marked, never a healthy-looking one
        assert "!! DAMAGED" in captured.out and "\nDAMAGED: " in captured.out


@pytest.mark.parametrize("kind", ["no-sign", "no-angle", "no-trials", "schema-float", "dt-nan", "k-0", "nan-rates"])
def test_a_file_without_checksums_is_still_validated(tmp_path, smoke_run, kind):
    """Files written before /checksums existed open, but the schema still refuses their damage."""
    damage, needle = DAMAGE[kind]
    path = _copy(smoke_run, tmp_path, checksums=False)
    store.open_run(path).close()
    with h5py.File(path, "r+") as f:
        damage(f)
    _refused(path, needle)


def test_a_file_without_checksums_opens_and_inspects(tmp_path, capsys, smoke_run):
    path = _copy(smoke_run, tmp_path, checksums=False)
    store.open_run(path).close()
    assert main(["inspect", str(path)]) == 0
    assert "DAMAGED" not in capsys.readouterr().out


def test_the_pipeline_writes_checksums_that_match(smoke_run):
    with store.open_run(smoke_run / "run.h5") as f:
        assert integrity.CHECKSUMS in f
        rows = f[integrity.CHECKSUMS].shape[0]
        assert integrity.checksum_damage(f, "run.h5") == []
        assert rows == len(integrity.digests(f)) > 500


# ---------------------------------------------------------------------------
# Generated cases: every dataset deleted, every attribute of the schema broken, any digit changed
# ---------------------------------------------------------------------------

QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@QUICK
@given(data=st.data())
def test_deleting_any_dataset_is_refused(tmp_path_factory, smoke_run, data):
    folder = tmp_path_factory.mktemp("deleted")
    path = _copy(smoke_run, folder)
    name = data.draw(st.sampled_from(_datasets(path)))
    with h5py.File(path, "r+") as f:
        del f[name]
    parent = "/" + name.rsplit("/", 1)[0] if "/" in name else "/"
    text = _refused(path)
    assert f"/{name}" in text or f"{parent} " in text, text


def test_deleting_any_dataset_of_a_file_without_checksums_is_refused(tmp_path, smoke_run):
    """The schema alone names every dataset a reader needs, in files written before /checksums."""
    path = _copy(smoke_run, tmp_path, checksums=False)
    names = _datasets(path)
    rules = [r for r in integrity.SCHEMA if r.need and not r.group and "*" not in r.path.rsplit("/", 1)[-1]]
    needed = [n for n in names if any(_matches(r.path, n) for r in rules)]
    assert len(needed) > 20
    for name in random.Random(32).sample(needed, 12):
        shutil.copyfile(smoke_run / "run.h5", path)
        with h5py.File(path, "r+") as f:
            del f[integrity.CHECKSUMS]
            del f[name]
        _refused(path, f"/{name}")


def _matches(pattern: str, name: str) -> bool:
    a, b = pattern.strip("/").split("/"), name.split("/")
    return len(a) == len(b) and all(x in ("*", y) for x, y in zip(a, b))


def _bad_values(rule: integrity.A) -> list[object]:
    """Values an attribute of ``rule`` must refuse: the wrong type, then out of range."""
    if rule.kind is int:
        low = 0 if rule.low is None else rule.low
        return [float(low + 2), "3", low - 1]
    if rule.kind is float:
        out: list[object] = ["0.5", np.array([0.5, 0.5])]
        if not rule.nan or rule.finite:
            out.append(np.nan)
        if rule.finite:
            out.append(np.inf)
        if rule.above is not None or rule.low is not None:
            out.append(-1.0)
        return out
    if rule.kind is str:
        return [5, np.array([1, 2])]
    if rule.kind == "json":
        return ["{not json", 7]
    return ["text", np.array([[1.0]])]


ATTRIBUTE_CASES = [
    pytest.param(rule.path, name, i, id=f"{rule.path}@{name}-{i}")
    for rule in integrity.SCHEMA
    if "*" not in rule.path
    for name, arule in rule.attrs.items()
    if name != "*"
    for i in range(len(_bad_values(arule)))
] + [pytest.param("/metrics", "rate_position_r2", i, id=f"/metrics@rate_position_r2-{i}") for i in range(2)]


@pytest.mark.parametrize(("group", "name", "i"), ATTRIBUTE_CASES)
def test_an_attribute_of_the_wrong_type_or_value_is_refused(tmp_path, smoke_run, group, name, i):
    path = _copy(smoke_run, tmp_path, checksums=False)  # no checksums: the schema must catch it alone
    rule = next((r.attrs[name] for r in integrity.SCHEMA if r.path == group and name in r.attrs), None)
    value = _bad_values(rule)[i] if rule else ["high", np.array([1.0, 2.0])][i]
    with h5py.File(path, "r+") as f:
        if group.lstrip("/") not in f and group != "/":
            pytest.skip(f"{group} is not in the smoke run")
        f[group].attrs[name] = value
    _refused(path, name)


def _one_digit(value: object) -> object:
    """``value`` with one character (preferably a digit) changed; numbers nudged in their last digit."""
    if isinstance(value, (bytes, str)):
        text = value.decode() if isinstance(value, bytes) else value
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        if not digits:
            return text + "x"
        i = digits[len(digits) // 2]
        return text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :]
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return np.nextafter(arr, np.inf).astype(arr.dtype)
    if arr.dtype.kind in "iu":
        return (arr + 1).astype(arr.dtype)
    if arr.dtype.kind == "b":
        return ~arr
    return np.array([_one_digit(x) for x in arr.ravel()], dtype=h5py.string_dtype()).reshape(arr.shape)


@QUICK
@given(data=st.data())
def test_changing_one_digit_of_any_attribute_is_refused(tmp_path_factory, smoke_run, data):
    folder = tmp_path_factory.mktemp("digit")
    path = _copy(smoke_run, folder)
    with h5py.File(path, "r") as f:
        attrs = [("/", k) for k in f.attrs]
        f.visititems(lambda n, o: attrs.extend(("/" + n, k) for k in o.attrs) if n != integrity.CHECKSUMS else None)
    where, name = data.draw(st.sampled_from(sorted(attrs)))
    with h5py.File(path, "r+") as f:
        obj = f[where]
        obj.attrs[name] = _one_digit(obj.attrs[name])
    text = _refused(path)
    assert name in text, text


@pytest.mark.parametrize("dataset", ["rate/rates", "spiking/rates", "ann/gru/hidden", "task/targets", "rate/W_in"])
@pytest.mark.parametrize("checksums", [True, False], ids=["checksummed", "older-file"])
def test_nan_written_without_a_checksum_is_refused(tmp_path, smoke_run, dataset, checksums):
    path = _copy(smoke_run, tmp_path, checksums=checksums)
    with h5py.File(path, "r+") as f:
        data = f[dataset][()]
        data.flat[data.size // 2] = np.nan
        _renew(f, dataset, data)
    _refused(path, f"/{dataset}")


@pytest.mark.parametrize(
    "dataset", ["spiking/trials/condition", "spiking/trials/start", "task/params/move_on", "circuit/output_mask"]
)
def test_a_table_cut_short_is_refused(tmp_path, smoke_run, dataset):
    path = _copy(smoke_run, tmp_path, checksums=False)
    with h5py.File(path, "r+") as f:
        _renew(f, dataset, f[dataset][:-1], checksum=True)
    _refused(path, f"/{dataset}")
