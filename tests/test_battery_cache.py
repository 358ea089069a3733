"""The comparison computed incrementally: units keyed by their inputs, reused, and the same numbers as recomputed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from cortexsim import battery, battery_cache, cli, compare_stage, store
from cortexsim.battery import BatterySettings, run_battery
from cortexsim.store import Activity, AnalysisUnit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runfiles import differences, same  # noqa: E402
from test_battery import rotating  # noqa: E402


def activities(data: bool = True) -> list[Activity]:
    """Three models, a layer and (optionally) recorded data covering steps 5..54 of the models' 60."""
    x = rotating()
    rng = np.random.default_rng(4)
    out = [
        Activity("rate", "model", x, 0.01, 20),
        Activity(
            "ann:rnn", "model", x @ rng.standard_normal((20, 12)) + 0.1 * rng.standard_normal((8, 60, 12)), 0.01, 20
        ),
        Activity("ann:gru", "model", rng.standard_normal(x.shape), 0.01, 20),
        Activity("rate:L5B", "layer", x[:, :, :10], 0.01, 20),
    ]
    if data:
        out.append(Activity("data", "data", (x @ rng.standard_normal((20, 15)))[:, 5:55], 0.01, 15, start=5))
    return out


def battery_of(acts: list[Activity]) -> battery.BatteryResult:
    return run_battery(acts, n_pcs=4, n_null=5, rng=np.random.default_rng(0))


def test_data_change_no_other_row_and_a_part_merges_to_the_whole():
    alone, joined = battery_of(activities(data=False)), battery_of(activities())
    with_data = {(r["a"], r["b"]): r for r in joined.similarity}
    assert [r for r in joined.similarity if "data" not in (r["a"], r["b"])] == list(alone.similarity)
    assert [r for r in joined.jpca if r["activity"] != "data"] == list(alone.jpca)
    assert ("rate", "data") in with_data and ("ann:gru", "data") in with_data
    # the pairs with the data draw their shuffles from streams of their own: other data, same model rows
    other = activities()
    other[-1] = Activity("data", "data", other[-1].rates[::-1].copy(), 0.01, 15, start=5)
    assert [r for r in battery_of(other).similarity if "data" not in (r["a"], r["b"])] == list(alone.similarity)
    # the rows of the data, computed alone, are the ones the whole battery gives
    fold_seed = int(np.random.default_rng(0).integers(2**32))
    settings = BatterySettings(4, 5, 0)
    part = battery.data_part(activities(), settings, fold_seed=fold_seed)
    assert all(r in joined.similarity for r in part.similarity)
    assert {(r["a"], r["b"]) for r in part.similarity} == {k for k in with_data if "data" in k}
    own = battery.BatteryPart(
        tuple(r for r in joined.similarity if "data" not in (r["a"], r["b"])),
        tuple(r for r in joined.jpca if r["activity"] != "data"),
        tuple(r for r in joined.tangling if r["activity"] != "data"),
        alone.notes,
    )  # as read back: rows and notes, no jPCA fits
    merged = battery.merge(activities(), (own, part), settings)
    assert merged.similarity == joined.similarity and merged.jpca == joined.jpca
    assert merged.tangling == joined.tangling and merged.notes == joined.notes
    assert merged.jpca_results.keys() == joined.jpca_results.keys()
    assert merged.jpca_results["rate"].ratio == joined.jpca_results["rate"].ratio


def test_keys_change_with_their_inputs_only():
    acts, settings, positions = activities(), BatterySettings(4, 5, 3), np.zeros((8, 60, 2))
    key = battery_cache.battery_key(acts, settings, positions, seed=1)
    assert key == battery_cache.battery_key(activities(), BatterySettings(4, 5, 3), positions.copy(), seed=1)
    assert len(key) == 64
    changed = [a if a.name != "ann:gru" else Activity(a.name, a.kind, a.rates.copy(), a.dt, a.move_on) for a in acts]
    changed[2].rates[3, 7, 1] = np.nextafter(changed[2].rates[3, 7, 1], np.inf)  # one bit of one number
    others = [
        battery_cache.battery_key(changed, settings, positions, seed=1),
        battery_cache.battery_key(acts, BatterySettings(4, 6, 3), positions, seed=1),
        battery_cache.battery_key(acts, BatterySettings(5, 5, 3), positions, seed=1),
        battery_cache.battery_key(acts, settings, positions + 1e-9, seed=1),
        battery_cache.battery_key(acts, settings, positions, seed=2),
    ]
    assert len({key, *others}) == 6
    # the data are no input of the run's own rows, but the data's rows depend on both
    assert battery_cache.battery_key(acts[:-1], settings, positions, seed=1) == key
    data_key = battery_cache.data_key(key, acts)
    assert data_key != battery_cache.data_key(others[1], acts)
    moved = [*acts[:-1], Activity("data", "data", acts[-1].rates, 0.01, 15, start=4)]
    assert data_key != battery_cache.data_key(key, moved)
    # the dynamics do not depend on the shuffles or the data, but on the models and the run's activities
    models = {"rate": {"w": np.eye(3)}, "spiking_trials": None}
    dyn = battery_cache.dynamics_key("seed = 1", models, acts, 4, 20)
    assert dyn == battery_cache.dynamics_key("seed = 1", models, acts[:-1], 4, 20)
    assert dyn != battery_cache.dynamics_key("seed = 1", {"rate": {"w": 2 * np.eye(3)}}, acts, 4, 20)
    assert dyn != battery_cache.dynamics_key("seed = 1", models, acts, 4, 21)
    assert dyn != battery_cache.dynamics_key("seed = 2", models, acts, 4, 20)


def test_digest_tells_types_and_shapes_apart():
    values = [1, 1.0, "1", True, None, np.ones(2), np.ones((2, 1)), np.ones(2, np.float32), [1], (1,), {"1": 1}]
    assert len({battery_cache.digest(v) for v in values}) == len(values) - 1  # a list and a tuple are one sequence
    assert battery_cache.digest(float("nan")) == battery_cache.digest(float("nan"))
    assert battery_cache.digest({"a": 1, "b": 2}) == battery_cache.digest({"b": 2, "a": 1})
    with pytest.raises(TypeError):
        battery_cache.digest(object())


def test_a_unit_reads_back_exactly(run_file):
    rows = (
        {"a": "rate", "b": "data", "cca": 0.1 + 0.2, "dsa": float("nan"), "slowest_tau_ms": float("inf")},
        {"a": "rate:L5B", "b": "data", "cca": -1e-300},  # fewer columns: kept fewer
    )
    unit = AnalysisUnit("k" * 64, {"similarity": rows, "jpca": ()}, ("a note", "Ünïcode"), "figures")
    with store.open_for_update(run_file) as f:
        store.write_analysis(f, rows, (), {}, ())
        store.write_analysis_units(f, {"data": unit})
    with store.open_run(run_file) as f:
        back = store.read_analysis_units(f)["data"]
    assert back.key == unit.key and back.notes == unit.notes and back.figures == "figures"
    assert back.tables["jpca"] == ()
    for got, want in zip(back.tables["similarity"], rows, strict=True):
        assert list(got) == list(want)
        assert all(g == w or (np.isnan(g) and np.isnan(w)) for g, w in zip(got.values(), want.values()))
    with h5py.File(run_file, "r+") as f:  # a flipped byte in a unit is refused like any other
        ds = f["analysis/units/data"]
        ds.attrs["key"] = "0" * 64
    with pytest.raises(store.RunFileError, match="analysis/units/data@key"):
        store.open_run(run_file).close()


def _recorded(run: Path, out: Path) -> Path:
    """The circuit's PT5B-like activity mixed into 30 'neurons' plus noise, (conditions, time, neurons)."""
    with h5py.File(run) as f:
        rates = f["rate/rates"][()]
        dt = f["task"].attrs["dt"]
        move_on = int(round(f["task/params/move_on"][0] / dt))
    rng = np.random.default_rng(0)
    fake = rates @ rng.standard_normal((rates.shape[2], 30)) + 0.01 * rng.standard_normal((*rates.shape[:2], 30))
    np.savez(out, rates=fake[:, 3:-2], time=(np.arange(3, rates.shape[1] - 2) - move_on) * dt)
    return out


def _refuse(*_args, **_kwargs):
    raise AssertionError("computed although its inputs did not change")


def test_adding_data_computes_its_rows_only_with_the_numbers_of_a_full_computation(
    smoke_run, tmp_path, monkeypatch, capsys
):
    reused, forced = tmp_path / "reused", tmp_path / "forced"
    for folder in (reused, forced):
        shutil.copytree(smoke_run, folder)
    data = _recorded(smoke_run / "run.h5", tmp_path / "data.npz")
    argv = ["--data", str(data), "--layout", "conditions,time,neurons"]
    with monkeypatch.context() as patch:  # the run's own rows, its dynamics and rotation sources are kept
        patch.setattr(battery, "own_part", _refuse)
        patch.setattr(compare_stage, "_dynamics_inputs", _refuse)
        patch.setattr(battery, "start_fixed_points", _refuse)
        assert cli.main(["compare", str(reused / "run.h5"), *argv]) == 0
    printed = capsys.readouterr().out
    assert "reused battery, dynamics" in printed
    assert cli.main(["compare", str(forced / "run.h5"), *argv, "--force"]) == 0
    assert differences(reused / "run.h5", forced / "run.h5")[0] == []
    text = [(f / "summary.md").read_text().replace(str(f), "RUN") for f in (reused, forced)]
    assert text[0] == text[1]
    with h5py.File(smoke_run / "run.h5") as before, h5py.File(reused / "run.h5") as after:
        sim = after["analysis/similarity"][()]
        assert any(b == b"data" for b in sim["b"])
        kept = np.array([r for r in sim if b"data" not in (r["a"], r["b"])], dtype=sim.dtype)
        assert same(kept, before["analysis/similarity"][()])  # the data changed no other row
        assert set(after["analysis/units"]) == {"battery", "data", "dynamics"}
    # the fixed-point figures cannot be drawn from the rows: without them the dynamics are computed again
    (reused / "figures" / "fixed_points.png").unlink()
    with monkeypatch.context() as patch:
        patch.setattr(battery, "own_part", _refuse)
        assert cli.main(["compare", str(reused / "run.h5"), *argv]) == 0
    assert "reused battery, data:" in capsys.readouterr().out
    assert (reused / "figures" / "fixed_points.png").is_file()
    assert differences(reused / "run.h5", forced / "run.h5")[0] == []
