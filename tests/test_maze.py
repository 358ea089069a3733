"""The maze (issue 14, item 3): minimum-jerk paths through via points, the maze task, and a tiny maze run."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import tiny_config

from cortexsim import battery, export, metrics, pipeline, plots, quality, store, tasks
from cortexsim.assembly import build_circuit, make_ann_model, make_rate_network
from cortexsim.config import TASK_KINDS, TaskConfig
from cortexsim.errors import ConfigError
from cortexsim.tasks import CenterOutTask, MazeTask, _jerk_spline, _via_times, minimum_jerk, minimum_jerk_via, task_of

END = np.array([0.1, 0.0])


def discrete_minimum_jerk(end, via, steps, n=600):
    """Reference: minimise the sum of squared third differences on n + 1 points, by its KKT system.

    Rest at both ends is three equal points there; via point i is pinned at grid point steps[i].
    """
    d3 = np.zeros((n - 2, n + 1))
    for i in range(n - 2):
        d3[i, i : i + 4] = [-1.0, 3.0, -3.0, 1.0]
    pins = [(0, 0.0), (1, 0.0), (2, 0.0), (n - 2, 1.0), (n - 1, 1.0), (n, 1.0)]
    out = np.zeros((n + 1, 2))
    for dim in range(2):
        rows = [(k, val * end[dim]) for k, val in pins] + [(k, p[dim]) for k, p in zip(steps, via)]
        a = np.zeros((len(rows), n + 1))
        for r, (k, _) in enumerate(rows):
            a[r, k] = 1.0
        kkt = np.block([[2 * d3.T @ d3, a.T], [a, np.zeros((len(rows), len(rows)))]])
        rhs = np.concatenate([np.zeros(n + 1), [val for _, val in rows]])
        out[:, dim] = np.linalg.solve(kkt, rhs)[: n + 1]
    return out


def test_no_via_point_is_the_straight_minimum_jerk_reach():
    s = np.linspace(0, 1, 51)
    np.testing.assert_allclose(minimum_jerk_via(END, np.zeros((0, 2)), s), minimum_jerk(s)[:, None] * END, atol=1e-15)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.7])
def test_a_via_point_on_the_straight_path_leaves_it_straight_and_is_passed_on_time(fraction):
    # the straight reach already passes the point; the smoothest path through it is that reach, at the
    # phase where the minimum-jerk profile has covered `fraction` of the way (analytic)
    s = np.linspace(0, 1, 401)
    path = minimum_jerk_via(END, [fraction * END], s)
    np.testing.assert_allclose(path, minimum_jerk(s)[:, None] * END, atol=1e-7)
    grid = np.linspace(0, 1, 200_001)
    expected = np.interp(fraction, minimum_jerk(grid), grid)
    assert _via_times(np.array([fraction * END]), END)[0] == pytest.approx(expected, abs=1e-6)


def test_a_symmetric_arc_passes_its_via_point_at_half_time_and_is_mirror_symmetric():
    via = np.array([[0.05, 0.03]])
    assert _via_times(via, END)[0] == pytest.approx(0.5, abs=1e-6)
    s = np.linspace(0, 1, 101)
    path = minimum_jerk_via(END, via, s)
    np.testing.assert_allclose(path[::-1, 0], END[0] - path[:, 0], atol=1e-9)
    np.testing.assert_allclose(path[::-1, 1], path[:, 1], atol=1e-9)


@pytest.mark.parametrize(
    "via", [np.array([[0.04, 0.03]]), np.array([[0.03, -0.02], [0.07, 0.03]])], ids=["one-via", "two-via"]
)
def test_the_spline_matches_a_discretised_minimum_jerk_solution(via):
    # at the same passage phases, the closed form and a brute-force discrete optimum agree
    n = 600
    tau = _via_times(via, END)
    steps = np.round(tau * n).astype(int)
    s = np.arange(n + 1) / n
    coef, _ = _jerk_spline(via, END, steps / n)
    basis = np.column_stack([s**3, s**4, s**5, *(np.clip(s - t, 0, None) ** 5 for t in steps / n)])
    reference = discrete_minimum_jerk(END, via, steps, n)
    assert np.abs(basis @ coef - reference).max() < 2e-3 * np.linalg.norm(END)


def test_the_passage_times_are_the_smoothest():
    via = np.array([[0.033, 0.03], [0.066, -0.03]])
    tau = _via_times(via, END)
    best = _jerk_spline(via, END, tau)[1]
    for step in ([0.01, 0], [0, 0.01], [-0.01, 0], [0, -0.01], [0.01, 0.01]):
        assert _jerk_spline(via, END, tau + np.array(step))[1] > best
    # and the path starts and ends at rest, through every via point at its phase
    h = 1e-5
    p = minimum_jerk_via(END, via, np.array([0, h, 2 * h, 1 - 2 * h, 1 - h, 1, *tau]))
    np.testing.assert_allclose(p[0], 0, atol=1e-14)
    np.testing.assert_allclose(p[5], END, atol=1e-12)
    np.testing.assert_allclose((p[1] - p[0]) / h, 0, atol=1e-6)
    np.testing.assert_allclose((p[5] - p[4]) / h, 0, atol=1e-6)
    np.testing.assert_allclose(p[6:], via, atol=1e-12)


# -- the maze task ------------------------------------------------------------------------


def maze(**kw) -> MazeTask:
    return task_of(TaskConfig(kind="maze", **{"n_targets": 4, **kw}))


def test_task_of_picks_the_task_the_section_names():
    assert type(task_of(TaskConfig())) is CenterOutTask
    task = maze()
    assert type(task) is MazeTask and task.n_conditions == 12
    assert task_of(TaskConfig(kind="maze", n_targets=9)).n_conditions == 27
    assert maze(maze_shapes=("arc",)).n_conditions == 4


def test_maze_conditions_reach_their_target_through_their_via_points():
    task = maze()
    batch = task.evaluation_set()
    assert batch.input_names == MazeTask.input_names and batch.inputs.shape[2] == 7
    assert batch.input_groups == ("target",) * 6 + ("go",)
    via = task.via_points(np.arange(task.n_conditions))
    p, d = batch.params, task.reach_distance
    for c in range(task.n_conditions):
        target, shape = divmod(c, 3)
        assert p["shape"][c] == shape and p["condition"][c] == c
        angle = 2 * np.pi * target / 4
        np.testing.assert_allclose(batch.targets[c, -1], d * np.array([np.cos(angle), np.sin(angle)]), atol=1e-12)
        used = via[c][np.all(np.isfinite(via[c]), axis=1)]
        assert len(used) == shape  # straight 0, arc 1, s_curve 2
        for point in used:  # the desired path passes within a step's travel of each via point
            gap = np.linalg.norm(batch.targets[c] - point, axis=1).min()
            assert gap < 0.004, (c, gap)
        # the via channels show the via points (0 where unused) from target onset, the target channels the target
        on = int(round(p["target_on"][c] / task.dt))
        shown = np.broadcast_to(np.nan_to_num(via[c], nan=0.0).ravel() / d, batch.inputs[c, on:, 2:6].shape)
        np.testing.assert_allclose(batch.inputs[c, on:, 2:6], shown)
        assert np.all(batch.inputs[c, :on, :6] == 0)
        np.testing.assert_allclose(batch.inputs[c, -1, :2] * d, batch.targets[c, -1], atol=1e-12)
    # arcs bend left on even targets, right on odd ones: the signed offset from the chord alternates
    for target in range(4):
        c = 3 * target + 1
        angle = 2 * np.pi * target / 4
        left = np.array([-np.sin(angle), np.cos(angle)])
        offset = via[c, 0] @ left
        assert offset == pytest.approx((1 if target % 2 == 0 else -1) * 0.3 * d)


def test_maze_straight_conditions_are_the_center_out_reaches():
    task, plain = maze(), CenterOutTask.of(TaskConfig(n_targets=4))
    curved, straight = task.evaluation_set(), plain.evaluation_set()
    np.testing.assert_allclose(curved.targets[::3], straight.targets, atol=1e-12)
    np.testing.assert_array_equal(curved.inputs[::3][:, :, [0, 1, 6]], straight.inputs)


def test_maze_sampling_is_deterministic_covers_every_condition_and_keeps_catch_trials_still():
    task = maze(catch_fraction=0.3)
    a, b = task.sample(200, np.random.default_rng(3)), task.sample(200, np.random.default_rng(3))
    np.testing.assert_array_equal(a.targets, b.targets)
    assert set(a.params["condition"]) == set(range(12))
    catch = a.params["catch"]
    assert 0 < catch.sum() < 200 and np.all(a.targets[catch] == 0)
    assert not np.array_equal(a.targets, task.sample(200, np.random.default_rng(4)).targets)


def test_maze_conditions_out_of_range_are_refused():
    with pytest.raises(ConfigError, match="maze condition"):
        maze().trials(np.array([12]), np.array([0.5]), np.array([False]))


def test_models_get_as_many_task_inputs_as_the_task_has():
    for kind, n_task in (("center_out", 3), ("maze", 7)):
        for effector, feedback in (("kinematic", 0), ("arm26", 14)):
            config = tiny_config(task={"kind": kind, "n_targets": 3}, effector={"kind": effector})
            net = make_rate_network(config, build_circuit(config))
            assert net.n_inputs == n_task + feedback, (kind, effector)
            ann = make_ann_model(config, "rnn")
            assert getattr(ann, "model", ann).n_inputs == n_task + feedback, (kind, effector)


def test_maze_model_prefixes_are_not_models():
    metrics = {"ann_rnn_position_r2": 0.99, "ann_rnn_maze_position_r2": 0.99, "rate_position_r2": 0.99}
    assert quality.model_prefixes(metrics) == ("rate", "ann_rnn")


# -- a tiny maze run through the whole pipeline ---------------------------------------------


@pytest.fixture(scope="module")
def maze_run(tmp_path_factory):
    config = tiny_config(
        task={"kind": "maze", "n_targets": 2},
        effector={"kind": "arm26"},
        ann={"archs": ["rnn"], "max_iterations": 5},
        spiking={"enabled": True, "k": 1, "dt": 5e-4, "trials_per_condition": 2},
    )
    run_file = pipeline.run_experiment(config, tmp_path_factory.mktemp("maze"), log=lambda line: None)
    return config, run_file


def test_maze_run_writes_the_maze_metrics_of_every_model(maze_run):
    config, run_file = maze_run
    with store.open_run(run_file) as f:
        held, task = store.read_metrics(f), store.read_task(f)
        paths = store.read_hand_paths(f)
    assert task.n_trials == 6 and task.input_names[2:6] == ("via1_x", "via1_y", "via2_x", "via2_y")
    for model in ("rate", "spiking", "ann_rnn"):
        for name in ("endpoint_error_cm", "position_r2"):
            assert held[f"{model}_maze_{name}"] == pytest.approx(held[f"{model}_{name}"]), (model, name)
        assert np.isfinite(held[f"{model}_maze_curvature_gain"]) and held[f"{model}_maze_via_error_cm"] > 0
        assert paths[model].shape == task.targets.shape
    assert "ann_rnn_maze_quality_passed" not in held and "ann_rnn_quality_passed" in held
    figure = run_file.parent / "figures" / "maze.png"
    assert figure.stat().st_size > 20_000
    maze_table = (run_file.parent / "summary.md").read_text().split("## Maze", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in maze_table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3 and all(row.endswith("**FAILED** |") for row in rows)  # 10 iterations: none reaches


def test_center_out_runs_write_no_maze_metrics():
    task = CenterOutTask.of(TaskConfig())
    batch = task.evaluation_set()
    assert metrics.task_metrics(task, "rate", batch.targets, batch) == {}
    assert task.trial_columns(batch) == {} and not plots.has_task_figure(task)


def test_a_task_plugs_in_by_its_registry_entries():
    """``[task] kind`` names a class of ``tasks.TASKS``; its metrics, figure and trial columns come by its KIND."""
    assert set(TASK_KINDS) - {"recorded"} == set(tasks.TASKS)  # "recorded": built from [fit] data
    for kind, cls in tasks.TASKS.items():
        assert cls.KIND == kind and type(task_of(TaskConfig(kind=kind))) is cls
    task = maze()
    batch = task.evaluation_set()
    assert set(metrics.task_metrics(task, "m", batch.targets, batch)) == {
        "m_maze_endpoint_error_cm", "m_maze_position_r2", "m_maze_curvature_gain", "m_maze_via_error_cm"
    }  # fmt: skip
    columns = task.trial_columns(batch)
    assert list(columns) == ["maze_shape", "via1_x", "via1_y", "via2_x", "via2_y"]
    assert all(values.shape == (batch.n_trials,) for _, values in columns.values())
    assert plots.has_task_figure(task) and not task.PERTURBABLE and CenterOutTask.PERTURBABLE


def test_curvature_gain_and_via_error_tell_a_curved_reach_from_a_straight_one():
    task = maze()
    batch = task.evaluation_set()
    via = task.via_points(batch.params["condition"])
    curved = batch.params["shape"] > 0
    straight = np.repeat(batch.targets[::3], 3, axis=0)  # each target's straight reach, for every shape
    assert metrics.curvature_gain(batch.targets, batch, curved) == pytest.approx(1.0)
    assert abs(metrics.curvature_gain(straight, batch, curved)) < 1e-12
    half = 0.5 * (batch.targets + straight)
    assert metrics.curvature_gain(half, batch, curved) == pytest.approx(0.5)
    assert metrics.via_error_cm(batch.targets, batch, via) < 0.4  # within a step's travel
    # the straight reach misses an arc's via point by about the bend (3 cm), an S-curve's by less
    assert 1.5 < metrics.via_error_cm(straight, batch, via) < 3.01
    out = metrics.task_metrics(task, "rate", half, batch)
    assert out["rate_maze_curvature_gain"] == pytest.approx(0.5)
    assert out["rate_maze_endpoint_error_cm"] < 1e-9


def test_the_dynamics_battery_probes_as_many_inputs_whatever_the_number_of_conditions():
    center = battery.probe_inputs(CenterOutTask.of(TaskConfig()).evaluation_set())
    assert [name for name, _ in center] == ["zero", "target0", "target4"]  # opposite targets, as before
    curved = battery.probe_inputs(maze(n_targets=9).evaluation_set())
    assert [name for name, _ in curved] == ["zero", "target0", "target13"] and curved[1][1].size == 7
    assert pipeline.communication_repeats(8) == 12  # 96 single trials of the center-out set
    assert 96 <= 27 * pipeline.communication_repeats(27) < 96 + 27


def test_a_maze_run_exports_each_trials_path_and_via_points_to_nwb(maze_run, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    config, run_file = maze_run
    out = export.export_nwb(run_file, tmp_path / "maze.nwb").path
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        trials = io.read().trials.to_dataframe()
    task = task_of(config.task)
    with store.open_run(run_file) as f:
        condition = store.read_twin_trials(f).condition
    condition = np.where(condition < task.n_conditions, condition, 0)  # catch trials: condition 0's path
    names = np.asarray(task.maze_shapes)[condition % len(task.maze_shapes)]
    assert trials["maze_shape"].tolist() == names.tolist() and set(names) == set(task.maze_shapes)
    via = task.via_points(condition).reshape(-1, 4)
    got = trials[["via1_x", "via1_y", "via2_x", "via2_y"]].to_numpy(float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(via))  # straight: none, arc: one, S-curve: two
    np.testing.assert_allclose(got[np.isfinite(via)], via[np.isfinite(via)])
