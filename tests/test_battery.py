"""The comparison battery on known inputs and through the command line."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cortexsim import analysis, cli
from cortexsim.battery import (
    BatteryResult,
    activity_from_data,
    headline,
    headline_metrics,
    jpca_row,
    lesion_similarity,
    reduce_to_pcs,
    run_battery,
)
from cortexsim.data import NeuralData
from cortexsim.store import Activity


def rotating(n_cond: int = 8, n_time: int = 60, n_units: int = 20, seed: int = 0) -> np.ndarray:
    """Activity that rotates in one plane at 2 Hz, embedded in ``n_units`` units."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_time) * 0.01
    phase = 2 * np.pi * np.arange(n_cond)[:, None] / n_cond + 2 * np.pi * 2.0 * t[None, :]
    plane = np.stack([np.cos(phase), np.sin(phase)], -1) * np.exp(-t)[None, :, None]
    basis, _ = np.linalg.qr(rng.standard_normal((n_units, 2)))
    return 10 + plane @ basis.T


def test_identical_and_rotated_activity_are_most_similar():
    x = rotating()
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((20, 20)))
    acts = [
        Activity("rate", "model", x, 0.01, 20),
        Activity("ann:rnn", "model", (x - 10) @ q * 3.0, 0.01, 20),
        Activity("ann:gru", "model", np.random.default_rng(2).standard_normal(x.shape), 0.01, 20),
        Activity("rate:L5B", "layer", x[:, :, :10], 0.01, 20),
    ]
    result = run_battery(acts, n_pcs=4, n_null=10, rng=np.random.default_rng(0))
    rows = {(r["a"], r["b"]): r for r in result.similarity}
    same = rows[("rate", "ann:rnn")]
    assert same["cca"] == pytest.approx(1.0, abs=1e-6)
    assert same["shape_distance"] == pytest.approx(0.0, abs=1e-5)
    noise = rows[("rate", "ann:gru")]
    assert noise["cca"] < same["cca"] - 0.2
    assert ("rate:L5B", "ann:rnn") in rows and ("rate:L5B", "ann:gru") in rows
    assert headline(result)["most_ann_like_layer"] == "rate:L5B"
    jp = {r["activity"]: r for r in result.jpca}
    assert jp["rate"]["ratio"] > 0.9
    assert jp["rate"]["frequency_hz"] == pytest.approx(2.0, rel=0.05)


def test_mismatched_shapes_are_noted_not_compared():
    x = rotating()
    acts = [Activity("rate", "model", x, 0.01, 20), Activity("data", "data", x[:6], 0.01, 20)]
    result = run_battery(acts, n_pcs=3, n_null=0, rng=np.random.default_rng(0))
    assert not result.similarity
    assert any("not compared" in n for n in result.notes)


def test_compare_command_on_a_foreign_file_fails_cleanly(tmp_path, capsys):
    import h5py

    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    assert cli.main(["compare", str(path)]) == 2
    assert "not a cortexsim run file" in capsys.readouterr().err


def test_silent_or_static_activities_are_noted_not_fatal():
    """A lesion can silence a population (all zero) or freeze activity around movement onset."""
    x = rotating()
    static = x.copy()
    static[:, 15:, :] = static[:, 15:16, :]  # no change from just before movement onset on
    acts = [
        Activity("rate", "model", x, 0.01, 20),
        Activity("ann:rnn", "model", x * 2, 0.01, 20),
        Activity("rate:PT5B", "population", np.zeros_like(x[:, :, :5]), 0.01, 20),
        Activity("rate:L5B", "layer", static, 0.01, 20),
    ]
    result = run_battery(acts, n_null=0, rng=np.random.default_rng(0))
    assert "rate:PT5B" not in result.activities
    assert any(n.startswith("rate:PT5B: constant activity") for n in result.notes)
    assert any(n.startswith("rate:L5B: no jPCA") for n in result.notes)
    assert {r["activity"] for r in result.jpca} == {"rate", "ann:rnn"}
    assert ("rate:L5B", "ann:rnn") in {(r["a"], r["b"]) for r in result.similarity}


def test_the_result_is_a_frozen_record_and_notes_are_added_by_copy():
    x = rotating()
    result = run_battery(
        [Activity("rate", "model", x, 0.01, 20), Activity("ann:rnn", "model", x * 2, 0.01, 20)],
        n_null=0,
        rng=np.random.default_rng(0),
    )
    assert isinstance(result, BatteryResult) and isinstance(result.notes, tuple)
    assert isinstance(result.similarity, tuple) and isinstance(result.jpca, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.notes = ("x",)  # type: ignore[misc]
    more = result.with_notes(["data: resampled"])
    assert more.notes == (*result.notes, "data: resampled") and more.similarity is result.similarity
    assert result.notes == () and result.kinds() == {"rate": "model", "ann:rnn": "model"}


def test_the_same_seed_gives_the_same_battery():
    x = rotating()
    acts = [
        Activity("rate", "model", x, 0.01, 20),
        Activity("ann:gru", "model", x + np.random.default_rng(3).standard_normal(x.shape), 0.01, 20),
    ]
    a = run_battery(acts, n_pcs=4, n_null=5, rng=np.random.default_rng(7))
    b = run_battery(acts, n_pcs=4, n_null=5, rng=np.random.default_rng(7))
    assert a.similarity == b.similarity and a.jpca == b.jpca


def test_headline_metrics_name_whole_models_only():
    x = rotating()
    positions = (
        np.stack(
            [np.cos(np.linspace(0, 1, 60))[None].repeat(8, 0), np.sin(np.linspace(0, 1, 60))[None].repeat(8, 0)], -1
        )
        * np.arange(8)[:, None, None]
    )
    acts = [
        Activity("rate", "model", x, 0.01, 20),
        Activity("ann:gru", "model", x * 2, 0.01, 20),
        Activity("rate:L5B", "layer", x[:, :, :10], 0.01, 20),
    ]
    result = run_battery(acts, n_null=0, rng=np.random.default_rng(0), positions=positions)
    m = headline_metrics(result)
    assert m["compare_cca_rate_gru"] == m["compare_cca_rate_ann_mean"] == pytest.approx(1.0, abs=1e-6)
    assert {
        "compare_jpca_ratio_rate",
        "compare_jpca_ratio_gru",
        "compare_participation_ratio_rate",
        "compare_decode_position_r2_rate",
    } <= set(m)
    assert not [k for k in m if "L5B" in k]


def test_recorded_data_go_onto_the_model_time_grid():
    x = rotating()
    reference = Activity("rate", "model", x, 0.01, 20)
    time = (np.arange(10, 60) - 20) * 0.01  # the first 10 model steps are not recorded
    data = NeuralData(
        x[:, 10:, :5] + 1.0,
        time,
        tuple(f"c{i}" for i in range(8)),
        tuple(range(5)),
        align_event="move_on",
        source="test.npz",
    )
    act, notes = activity_from_data(data, reference)
    assert (act.name, act.kind, act.dt, act.move_on, act.start) == ("data", "data", 0.01, 10, 10)
    assert act.rates.shape == (8, 50, 5)  # the recorded steps only: nothing zero-filled
    np.testing.assert_allclose(act.rates, x[:, 10:, :5] + 1.0)
    assert isinstance(notes, tuple) and notes[0] == f"data: {data!r}"
    assert any("data cover 50 of 60 model time steps (10 to 59)" in n for n in notes)


def test_partial_data_are_compared_on_the_overlap_only():
    """Data covering steps 10..59 of 60: every measure and the data's jPCA as on those steps alone (issue 16)."""
    x = rotating(n_units=12)
    rng = np.random.default_rng(3)
    recorded = x[:, 10:, :6] @ rng.standard_normal((6, 6)) + 2.0
    reference = Activity("rate", "model", x, 0.01, 20)
    time = (np.arange(10, 60) - 20) * 0.01
    data = NeuralData(recorded, time, tuple(f"c{i}" for i in range(8)), tuple(range(6)), "move_on", "t.npz")
    act, _ = activity_from_data(data, reference)
    result = run_battery([reference, act], rng=np.random.default_rng(0), n_pcs=4, n_null=0)
    (row,) = result.similarity
    cropped = reduce_to_pcs(x[:, 10:], 4)
    expected = analysis.cca_similarity(cropped, reduce_to_pcs(recorded, 4), k=4)
    assert row["cca"] == pytest.approx(expected, abs=1e-12)
    assert row["cca"] > 0.99  # a linear map of the model on the overlap: the same dynamics
    alone = jpca_row(Activity("data", "data", recorded, 0.01, 10))[0]
    data_row = next(r for r in result.jpca if r["activity"] == "data")
    assert data_row["ratio"] == pytest.approx(alone["ratio"], abs=1e-12)
    padded = np.zeros((8, 60, 6))
    padded[:, 10:] = recorded  # what compare did before: zero-filled steps change the data's own jPCA
    assert jpca_row(Activity("data", "data", padded, 0.01, 20))[0]["ratio"] != pytest.approx(alone["ratio"], abs=1e-6)
    assert any("compared on the steps both cover only: 10 to 59" in n for n in result.notes)


def test_lesion_similarity_is_the_cca_of_the_top_pcs():
    x = rotating(n_units=30)
    noisy = x + 0.3 * np.random.default_rng(4).standard_normal(x.shape)
    assert lesion_similarity(x, x, 4) == pytest.approx(1.0, abs=1e-9)
    expected = analysis.cca_similarity(reduce_to_pcs(noisy, 4), reduce_to_pcs(x, 4), k=4)
    assert lesion_similarity(x, noisy, 4) == expected
    assert 0 < lesion_similarity(x, noisy, 4) < 1


def test_surrogate_columns_match_the_plain_loop():
    """surrogate_columns computes a's side of each score once: the p-values are those of score(a, s) per surrogate."""
    from cortexsim.battery.measures import SCORE_DIRECTIONS, score_functions, surrogate_columns

    rng = np.random.default_rng(8)
    a = rng.normal(size=(6, 12, 4))
    b = a @ rng.normal(size=(4, 4)) + rng.normal(size=(6, 12, 4))
    surrogates = {
        "tme": b + 0.8 * rng.normal(size=(15, *b.shape)),
        "cmpt": rng.normal(size=(15, *b.shape)),
        "flat": np.ones((3, *b.shape)),  # constant surrogates: undefined scores, left out of the null
    }
    fns = score_functions(4)
    observed = {key: fns[key](a, b) for key in ("cca", "shape_distance", "cka", "rsa")}
    got = surrogate_columns(a, b, observed, surrogates)
    for method, surr in surrogates.items():
        for key, value in observed.items():
            null = np.array([fns[key](a, s) for s in surr])
            null = null[np.isfinite(null)]
            hits = null >= value if SCORE_DIRECTIONS[key] else null <= value
            want = (1 + np.count_nonzero(hits)) / (1 + null.size)
            assert got[f"{key}_p_{method}"] == want, (key, method)
