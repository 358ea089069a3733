"""The comparison battery on known inputs and through the command line."""

from __future__ import annotations

import numpy as np
import pytest

from cortexsim import cli
from cortexsim.compare import Activity, compare, headline


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
    acts = [Activity("rate", "model", x, 0.01, 20),
            Activity("ann:rnn", "model", (x - 10) @ q * 3.0, 0.01, 20),
            Activity("ann:gru", "model", np.random.default_rng(2).standard_normal(x.shape), 0.01, 20),
            Activity("rate:L5B", "layer", x[:, :, :10], 0.01, 20)]
    result = compare(acts, n_pcs=4, n_null=10, rng=np.random.default_rng(0))
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
    result = compare(acts, n_pcs=3, n_null=0, rng=np.random.default_rng(0))
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
    static[:, 15:, :] = static[:, 15:16, :]          # no change from just before movement onset on
    acts = [Activity("rate", "model", x, 0.01, 20), Activity("ann:rnn", "model", x * 2, 0.01, 20),
            Activity("rate:PT5B", "population", np.zeros_like(x[:, :, :5]), 0.01, 20),
            Activity("rate:L5B", "layer", static, 0.01, 20)]
    result = compare(acts, n_null=0, rng=np.random.default_rng(0))
    assert "rate:PT5B" not in result.activities
    assert any(n.startswith("rate:PT5B: constant activity") for n in result.notes)
    assert any(n.startswith("rate:L5B: no jPCA") for n in result.notes)
    assert {r["activity"] for r in result.jpca} == {"rate", "ann:rnn"}
    assert ("rate:L5B", "ann:rnn") in {(r["a"], r["b"]) for r in result.similarity}
