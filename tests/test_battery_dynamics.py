"""The battery's dynamics part: DSA and surrogate p-values per pair, jPCA nulls, ceilings, tangling,
communication subspaces, fixed points, their tables in /analysis and summary.md."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cortexsim import report, store
from cortexsim.ann import make_ann
from cortexsim.battery import (
    ModelProbe,
    Replicate,
    dynamics_metrics,
    fixed_point_rows,
    probe_model,
    run_battery,
    run_dynamics,
    start_fixed_points,
)
from cortexsim.quality import QualityConfig, check_quality
from cortexsim.store import Activity
from cortexsim.tasks import CenterOutTask

sys.path.insert(0, str(Path(__file__).parent))
from test_battery import rotating  # noqa: E402
from test_report import BAD_GRU, run_summary  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    with threadpool_limits(1, user_api="blas"):
        yield


def activities() -> list[Activity]:
    x = rotating()
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((20, 20)))
    return [
        Activity("rate", "model", x, 0.01, 20),
        Activity("ann:rnn", "model", (x - 10) @ q * 3.0, 0.01, 20),
        Activity("ann:gru", "model", np.random.default_rng(2).standard_normal(x.shape), 0.01, 20),
        Activity("rate:L5B", "layer", x[:, :, :10], 0.01, 20),
        Activity("rate:L2/3", "layer", x[:, :, 10:], 0.01, 20),
    ]


@pytest.fixture(scope="module")
def result():
    return run_battery(activities(), n_pcs=4, n_null=5, rng=np.random.default_rng(0), n_surrogates=9)


def test_dsa_is_zero_for_a_rotated_copy_and_large_for_noise(result):
    rows = {(r["a"], r["b"]): r for r in result.similarity}
    assert rows[("rate", "ann:rnn")]["dsa"] < 1e-4
    assert rows[("rate", "ann:gru")]["dsa"] > 0.5


def test_every_score_has_tme_cfr_and_cmpt_p_values(result):
    for r in result.similarity:
        for score in ("cca", "shape_distance", "cka", "rsa"):
            for method in ("tme", "cfr", "cmpt"):
                p = r[f"{score}_p_{method}"]
                assert np.isnan(p) or 0.1 - 1e-12 <= p <= 1.0  # (1 + count) / (1 + 9)
    same = {(r["a"], r["b"]): r for r in result.similarity}[("rate", "ann:rnn")]
    assert same["cca_p_tme"] == pytest.approx(0.1) and same["cka_p_cmpt"] == pytest.approx(0.1)


def test_jpca_rows_carry_variance_per_plane_and_null_p_values(result):
    rows = {r["activity"]: r for r in result.jpca}
    rate = rows["rate"]
    assert rate["variance_plane1"] > 0.99  # one rotation plane
    assert rate["variance_plane1"] + rate["variance_plane2"] + rate["variance_plane3"] == pytest.approx(1.0)
    assert rate["ratio_p_tme"] == pytest.approx(0.1)  # the planted rotation beats every surrogate
    assert "ratio_p_cfr" in rows["ann:gru"] and "ratio_p_tme" not in rows["rate:L5B"]  # whole models only


def test_the_same_seeds_give_the_same_numbers(result):
    again = run_battery(activities(), n_pcs=4, n_null=5, rng=np.random.default_rng(0), n_surrogates=9)
    assert again.similarity == result.similarity and again.jpca == result.jpca


def test_dynamics_ceilings_tangling_and_communication(result):
    x = rotating()
    noisy = x + 0.01 * np.random.default_rng(3).standard_normal(x.shape)
    reps = {"rate": Replicate(x, noisy, "noise seeds"), "ann:rnn": Replicate(x, x, "noise-free")}
    dyn = run_dynamics(result, rng=np.random.default_rng(0), n_pcs=4, replicates=reps)
    ceil = {r["activity"]: r for r in dyn.calibration}
    assert ceil["rate"]["ceiling_cca"] == pytest.approx(1.0, abs=1e-3)  # a model with itself: CCA ~ 1
    assert ceil["ann:rnn"]["ceiling_cca"] == pytest.approx(1.0, abs=1e-9)
    assert ceil["ann:rnn"]["ceiling_dsa"] == pytest.approx(0.0, abs=1e-6)
    assert {r["activity"] for r in dyn.tangling} == {a.name for a in activities()}
    tangled = {r["activity"]: r["tangling_q90"] for r in dyn.tangling}
    assert tangled["ann:gru"] > 10 * tangled["rate"]  # white noise is tangled, a smooth rotation is not
    comm = {(r["source"], r["target"]): r for r in dyn.communication}
    assert comm[("L2/3", "L5B")]["dimensions"] == 2  # both layers carry the same rotation plane
    metrics = dynamics_metrics(dyn)
    assert metrics["compare_comm_dims_L23_L5B"] == 2 and "compare_ceiling_cca_rate" in metrics


def test_fixed_points_of_a_known_linear_map():
    """x' = A x + b with |eig(A)| < 1: exactly one fixed point, stable, at (I - A)^-1 b."""
    rng = np.random.default_rng(4)
    Q = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    A = Q @ np.diag([0.9, 0.8, 0.5, 0.3, 0.2, 0.1]) @ Q.T
    b = rng.normal(size=6)

    def step(X):
        return X @ A.T + b

    def jac(x):  # at one state, as find_fixed_points' contract has it
        return A

    probe = ModelProbe("lin", (("zero", np.zeros(1)),), ((step, jac),), rng.normal(size=(2, 10, 6)), 0.01)
    rows, found = fixed_point_rows(probe, 30, np.random.default_rng(0))
    assert rows[0]["n_points"] == 1 and rows[0]["n_stable"] == 1
    assert rows[0]["max_abs_eig"] == pytest.approx(0.9)
    assert rows[0]["slowest_tau_ms"] == pytest.approx(-10.0 / np.log(0.9))
    np.testing.assert_allclose(found[("lin", "zero")].points[0], np.linalg.solve(np.eye(6) - A, b), atol=1e-8)


def test_fixed_points_do_not_depend_on_the_thread_count():
    """Each (model, input) search draws its starts from its own seed: threads change the time, not the points."""
    A = np.array([[0.9, 0.2], [-0.2, 0.9]])
    inputs = tuple((f"u{i}", np.array([float(i)])) for i in range(4))

    def linear(u):
        b = np.array([u[0], -u[0]])
        return (lambda X: X @ A.T + b), (lambda x: A)  # jacobian(x): at one state

    states = np.random.default_rng(4).standard_normal((3, 20, 2))
    probe = ModelProbe("lin", inputs, tuple(linear(u) for _, u in inputs), states, 0.01, {})
    one, found_one = fixed_point_rows(probe, 25, np.random.default_rng(7), threads=1)
    two, found_two = fixed_point_rows(probe, 25, np.random.default_rng(7), threads=3)
    assert one == two
    for key, fp in found_one.items():
        np.testing.assert_array_equal(fp.points, found_two[key].points)
    expected = np.linalg.solve(np.eye(2) - A, np.array([3.0, -3.0]))  # x = A x + b under u3
    np.testing.assert_allclose(found_two[("lin", "u3")].points[0], expected, atol=1e-8)


def _linear_probe(name: str) -> ModelProbe:
    A = np.array([[0.9, 0.2], [-0.2, 0.9]])
    inputs = tuple((f"u{i}", np.array([float(i)])) for i in range(3))

    def linear(u):
        b = np.array([u[0], -u[0]])
        return (lambda X: X @ A.T + b), (lambda x: A)

    states = np.random.default_rng(4).standard_normal((3, 20, 2))
    return ModelProbe(name, inputs, tuple(linear(u) for _, u in inputs), states, 0.01, {})


def test_a_model_searched_elsewhere_with_its_own_stream_gives_the_same_rows():
    """Per-model generators: one model's searches made alone equal those made with the others, and are
    taken as they are (not searched again) when handed in as ``done``."""
    probes = {n: _linear_probe(n) for n in ("a", "b")}
    rngs = {n: np.random.default_rng(ord(n)) for n in probes}
    together = start_fixed_points(probes, 15, rngs, threads=2).searches()
    alone = start_fixed_points({"b": probes["b"]}, 15, {"b": np.random.default_rng(ord("b"))}, 1).searches()
    assert [row for row, _ in together[3:]] == [row for row, _ in alone]
    marked = tuple(({**row, "n_starts": -1.0}, fp) for row, fp in alone)  # recognisable if taken
    rngs = {n: np.random.default_rng(ord(n)) for n in probes}
    rows, found = start_fixed_points(probes, 15, rngs, done={"b": marked}).result()
    assert [r["n_starts"] for r in rows] == [15.0] * 3 + [-1.0] * 3
    assert found[("b", "u2")] is marked[2][1]
    with pytest.raises(ValueError, match="2 searches were made elsewhere for 3 probe inputs"):
        start_fixed_points(probes, 15, rngs, done={"b": marked[:2]})
    with pytest.raises(ValueError, match="without a probe: c"):
        start_fixed_points(probes, 15, rngs, done={"c": marked})


def test_probe_model_builds_maps_for_an_ann_under_each_task_input():
    task = CenterOutTask(n_targets=4)
    evaluation = task.evaluation_set()
    model = make_ann("gru", 8)
    model.init_params(np.random.default_rng(0))
    probe = probe_model("ann:gru", model, evaluation)
    assert [label for label, _ in probe.inputs] == ["zero", "target0", "target2"]  # two opposite targets
    assert probe.states.shape == (4, evaluation.n_steps, 8)
    rows, _ = fixed_point_rows(probe, 20, np.random.default_rng(0))
    assert len(rows) == 3 and all(r["n_points"] >= 1 for r in rows)


def test_tables_round_trip_through_the_run_file(result, tmp_path):
    dyn = run_dynamics(result, rng=np.random.default_rng(0), n_pcs=4)
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        store.write_analysis(f, result.similarity, result.jpca, {}, (), dyn.tables())
    with h5py.File(path, "r") as f:
        record = store.read_analysis(f)
    assert set(record.tables) == {"tangling", "communication"}  # empty tables are not written
    assert record.tables["communication"][0]["source"] == "L2/3"
    assert record.similarity[0]["dsa"] == pytest.approx(result.similarity[0]["dsa"])


def test_summary_has_the_dynamics_section_and_flags_a_failed_model(result):
    dyn = run_dynamics(result, rng=np.random.default_rng(0), n_pcs=4)
    text = report.summary_markdown(run_summary(), result, check_quality(BAD_GRU, QualityConfig()), dyn)
    assert "## Dynamics, not only geometry" in text
    assert "### Trajectory tangling" in text and "### Communication subspaces" in text
    assert "| ann:gru (**FAILED its task**) |" in text  # in the tangling table
    good = report.summary_markdown(
        run_summary(), result, check_quality({**BAD_GRU, "ann_gru_position_r2": 0.99}, QualityConfig()), dyn
    )
    assert "FAILED" not in good


def test_summary_reports_the_p_value_floor_next_to_every_p_value(result):
    """9 surrogates: no p below 1/10; 5 shuffles: none below 1/6; a p at its floor is marked so."""
    assert result.n_surrogates == 9 and result.n_null == 5
    assert result.p_floor("surrogate") == pytest.approx(0.1) and result.p_floor("shuffle") == pytest.approx(1 / 6)
    lines = report.dynamics_markdown(result, None)
    text = "\n".join(lines)
    assert "p >= 1/10 = 0.100" in text and "p >= 1/6 = 0.167" in text
    head = next(line for line in lines if line.startswith("| a | b | DSA"))
    assert "p TME (floor 0.100)" in head and "p shuffle (floor 0.167)" in head and "cka p CMPT (floor 0.100)" in head
    row = next(line for line in lines if line.startswith("| rate | ann:rnn |"))
    assert "0.100 (floor)" in row  # the rotated copy beats every surrogate
    jpca_head = next(line for line in lines if line.startswith("| activity | ratio |"))
    assert "p TME (floor 0.100)" in jpca_head
    none = run_battery(activities()[:2], n_pcs=4, n_null=0, rng=np.random.default_rng(0), dsa=True)
    assert np.isnan(none.p_floor("surrogate")) and "No nulls were computed." in "\n".join(
        report.dynamics_markdown(none, None)
    )


def test_dynamics_figures_are_written(result, tmp_path):
    from cortexsim import plots

    task = CenterOutTask(n_targets=4)
    model = make_ann("rnn", 6)
    model.init_params(np.random.default_rng(1))
    probe = probe_model("ann:rnn", model, task.evaluation_set())
    dyn = run_dynamics(result, rng=np.random.default_rng(0), n_pcs=4, probes={"ann:rnn": probe}, fixed_point_starts=10)
    paths = plots.dynamics_figures(result, dyn, tmp_path)
    names = [p.name for p in paths]
    assert names == ["dsa_models.png", "dsa_parts_vs_ann.png", "fixed_points.png", "eigenspectra.png"]
    assert all(p.stat().st_size > 0 for p in paths)
