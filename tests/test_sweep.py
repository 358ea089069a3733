"""Sweeps: parsing, expansion, shared training, and a real run on a Dask LocalCluster."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from tiny import tiny_config

from cortexsim import cli, sweep
from cortexsim.anatomy import circuit_spec
from cortexsim.config import Config
from cortexsim.errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def write_sweep(folder: Path, text: str) -> Path:
    (folder / "base.toml").write_text(tiny_config().to_toml())
    path = folder / "sweep.toml"
    path.write_text('[sweep]\nexperiment = "base.toml"\nworkers = 2\n' + text)
    return path


def test_grid_points_and_base_expand(tmp_path):
    path = write_sweep(
        tmp_path,
        """
[base.train]
max_iterations = 7
[grid]
"experiment.seed" = [1, 2]
[grid.circuit]
n_units = [60, 80]
[[points]]
"lesion.silence" = []
[[points]]
"lesion.silence" = ["IT2/3"]
""",
    )
    s = sweep.load_sweep(path)
    assert s.params == ("lesion.silence", "experiment.seed", "circuit.n_units")
    assert len(s.rows) == 8
    points = s.points(tmp_path / "out")
    assert len({p.folder for p in points}) == 8
    assert all(p.config.train.max_iterations == 7 for p in points)
    assert {(p.config.experiment.seed, p.config.circuit.n_units) for p in points} == {
        (1, 60),
        (1, 80),
        (2, 60),
        (2, 80),
    }
    # lesion points reuse the trained network of the intact point with the same seed and size
    trainers = [p for p in points if p.upstream is None]
    assert len(trainers) == 4 and not any(p.config.lesion.active for p in trainers)
    for p in points:
        if p.upstream is not None:
            (up,) = [t for t in trainers if t.folder == p.upstream]
            assert (up.config.experiment.seed, up.config.circuit.n_units) == (
                p.config.experiment.seed,
                p.config.circuit.n_units,
            )
    assert all("/" not in p.name and p.name.isascii() for p in points)
    assert any("silence-IT23" in p.name for p in points)


def test_swept_paths_are_relative_to_the_sweep_file(tmp_path):
    path = write_sweep(tmp_path, '[grid]\n"compare.data" = ["data/a.npz", "data/b.npz"]\n')
    points = sweep.load_sweep(path).points(tmp_path / "out")
    assert [p.config.compare.data for p in points] == [str(tmp_path / "data" / x) for x in ("a.npz", "b.npz")]
    # a point's config.toml reruns alone from its own folder with the same config
    again = Config.from_dict(Config.to_dict(points[0].config), base=points[0].folder)
    assert again.to_toml() == points[0].config.to_toml()


@pytest.mark.parametrize(
    "text, message",
    [
        ('[grid]\n"experiment.seed" = []\n', "give a non-empty list"),
        ('[grid]\n"experiment.seed" = 3\n', "give a non-empty list"),
        ('[grid]\n"trian.batch_size" = [4]\n', "'trian.batch_size' is not a config key"),
        ('[grid]\n"train.batch_sise" = [4]\n', "did you mean 'batch_size'"),
        ('[grid]\n"lesion.silence" = [["XX"]]\n', "point 1 .* no population 'XX'"),
        ('[grid]\n"train.batch_size" = [-4]\n', "train.batch_size"),
        ('[grids]\n"experiment.seed" = [1]\n', "unknown table"),
        ("", "nothing to sweep"),
    ],
)
def test_bad_sweep_files_are_clear_errors(tmp_path, text, message):
    path = write_sweep(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        sweep.load_sweep(path).points(tmp_path / "out")


def test_sweep_needs_a_base_experiment(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text('[grid]\n"experiment.seed" = [1]\n')
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "[sweep] needs experiment" in capsys.readouterr().err
    path.write_text('[sweep]\nexperiment = "nowhere.toml"\n[grid]\n"experiment.seed" = [1]\n')
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "nowhere.toml: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_shipped_sweeps_are_valid(tmp_path):
    smoke = sweep.load_sweep(EXPERIMENTS / "sweeps" / "smoke.toml")
    assert len(smoke.points(tmp_path)) == 4 and smoke.base.experiment.name == "smoke"
    lesions = sweep.load_sweep(EXPERIMENTS / "sweeps" / "lesions.toml")
    points = lesions.points(tmp_path)
    silenced = {p.config.lesion.silence for p in points}
    assert silenced == {(), *((name,) for name in circuit_spec(lesions.base).names)}
    assert sum(p.upstream is None for p in points) == len({p.config.experiment.seed for p in points}) == 2
    arm = sweep.load_sweep(EXPERIMENTS / "sweeps" / "arm_lesions.toml")
    points = arm.points(tmp_path)
    assert {p.config.lesion.silence for p in points} == silenced
    assert sum(p.upstream is None for p in points) == 2  # two circuits trained, the lesions reuse them
    for p in points:
        c = p.config
        assert (
            c.effector.kind == "arm26"
            and c.perturb.curl
            and c.perturb.bumps
            and not c.spiking.enabled
            and not c.ann.archs
        )
        assert c.perturb.train_bump_fraction == 1.0  # arm_bump's circuit: trained to correct bumps


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow  # 25-130 s on 2 busy cores: the default suite stays near 10 min
def test_sweep_on_a_local_cluster_with_a_failing_point(tmp_path, capsys):
    """Four points on two Dask workers: one fails at run time (reported, the others finish); a rerun only runs
    the point that changed."""
    pytest.importorskip("distributed")
    path = write_sweep(
        tmp_path,
        """
[[points]]
"experiment.seed" = 1
[[points]]
"experiment.seed" = 2
[[points]]
"experiment.seed" = 1
"lesion.silence" = ["IT4"]
[[points]]
"experiment.seed" = 1
"train.learning_rate" = 1e9
""",
    )
    out = tmp_path / "out"
    assert cli.main(["sweep", str(path), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "1 of 4 points failed" in printed and "loss became" in printed
    rows = read_csv(out / "summary.csv")
    assert [r["status"] for r in rows] == ["done", "done", "done", "failed"]
    assert "TrainingError: loss became" in rows[3]["error"]
    assert [float(r["quality_passed"]) for r in rows[:3]] == [0.0] * 3  # the gate per point: tiny models fail it
    failed = out / rows[3]["point"]
    assert "Traceback" in (failed / "error.txt").read_text()
    assert (failed / "config.toml").exists()
    for row in rows[:3]:
        assert np.isfinite(float(row["rate_position_r2"]))
        assert (out / row["point"] / "run.h5").exists() and (out / row["point"] / "summary.md").exists()
    # the lesion point reused the seed-1 training: same trained weights, IT4 silent
    with h5py.File(out / rows[0]["point"] / "run.h5") as intact, h5py.File(out / rows[2]["point"] / "run.h5") as les:
        assert les.attrs["derived_from"].endswith(f"{rows[0]['point']}/run.h5")
        assert les["stages/train"].attrs["finished_utc"] == intact["stages/train"].attrs["finished_utc"]
        np.testing.assert_array_equal(
            les["circuit/connectome/weight_trained"][()], intact["circuit/connectome/weight_trained"][()]
        )
        it4 = [r for r in les["circuit/populations"][()] if r["name"] == b"IT4"][0]
        assert np.all(les["rate/rates"][:, :, it4["start"] : it4["stop"]] == 0)
        assert les["rate"].attrs["lesion"] == "silence IT4"
        r2_intact = intact["metrics"].attrs["rate_position_r2"]
    assert float(rows[2]["delta_rate_position_r2"]) == pytest.approx(
        float(rows[2]["rate_position_r2"]) - r2_intact, abs=1e-5
    )
    assert 0 < float(rows[2]["lesion_cca_to_intact_rate"]) <= 1
    with h5py.File(out / "summary.h5") as f:
        assert f.attrs["file_kind"] == "cortexsim sweep summary"
        table = f["points"][()]
        assert [s.decode() for s in table["status"]] == ["done", "done", "done", "failed"]
    assert (out / "figures" / "lesions.png").stat().st_size > 10_000

    # replace the failing point by one compared with recorded data; the rerun runs only that one
    with h5py.File(out / rows[0]["point"] / "run.h5") as f:
        rates, dt = f["rate/rates"][()], f["task"].attrs["dt"]
        time = (np.arange(rates.shape[1]) - round(f["task/params/move_on"][0] / dt)) * dt
    np.savez(tmp_path / "recorded.npz", rates=rates[:, :, :20].transpose(2, 1, 0), time=time)
    stamps = {r["point"]: (out / r["point"] / "run.h5").stat().st_mtime_ns for r in rows[:3]}
    path.write_text(path.read_text().replace('"train.learning_rate" = 1e9', '"compare.data" = "recorded.npz"'))
    assert cli.main(["sweep", str(path), "--out", str(out)]) == 0
    assert "3 finished earlier, 1 to run" in capsys.readouterr().out
    assert {p: (out / p / "run.h5").stat().st_mtime_ns for p in stamps} == stamps
    rows = read_csv(out / "summary.csv")
    assert [r["status"] for r in rows] == ["done"] * 4
    assert float(rows[3]["compare_cca_rate_data"]) > 0.9


def test_sweep_of_a_missing_dask_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask") or name.startswith("distributed"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    path = write_sweep(tmp_path, '[grid]\n"experiment.seed" = [1]\n')
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "pip install 'cortexsim[sweep]'" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_smoke_sweep_runs(tmp_path):
    """`experiments/sweeps/smoke.toml` as the README runs it (about 2 minutes on 2 cores)."""
    pytest.importorskip("distributed")
    out = tmp_path / "sweep"
    assert cli.main(["sweep", str(EXPERIMENTS / "sweeps" / "smoke.toml"), "--out", str(out)]) == 0
    rows = read_csv(out / "summary.csv")
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    assert (out / "figures" / "circuit_n_units.png").exists()
    shutil.rmtree(out)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT", "1s")
    path = write_sweep(tmp_path, '[grid]\n"experiment.seed" = [1]\n')
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "--scheduler tcp://127.0.0.1:9: cannot connect" in capsys.readouterr().err


@pytest.mark.slow  # 29 s: starts a dask LocalCluster
def test_sweep_on_a_running_scheduler(tmp_path):
    """--scheduler ADDRESS: the points go to an existing cluster (here a LocalCluster started by the test)."""
    distributed = pytest.importorskip("distributed")
    path = write_sweep(tmp_path, '[grid]\n"experiment.seed" = [1, 2]\n')
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        assert cli.main(["sweep", str(path), "--out", str(out), "--scheduler", cluster.scheduler_address]) == 0
    rows = read_csv(out / "summary.csv")
    assert [r["status"] for r in rows] == ["done", "done"]
    assert rows[0]["rate_position_r2"] != rows[1]["rate_position_r2"]  # two seeds, two networks


def test_the_lesion_figure_marks_a_lesion_that_never_recovers_instead_of_leaving_a_gap():
    from cortexsim import plots

    pops = [("IT4", "L4", "E"), ("PT5B", "L5B", "E"), ("PV5B", "L5B", "I")]
    delta = {"IT4": (40.0, 60.0), "PT5B": (np.inf, np.inf), "PV5B": (np.inf, 20.0)}
    rows = [
        {"lesion.silence": name, "experiment.seed": str(seed), "delta_rate_bump_recovery_ms": d[seed]}
        for name, d in delta.items()
        for seed in (0, 1)
    ]
    fig = plots.plot_lesions(rows, "lesion.silence", pops)
    (ax,) = [a for a in fig.axes if a.get_title(loc="left").startswith("Corrections")]
    marks = {round(t.xy[0]): t.get_text() for t in ax.texts}
    assert marks == {1: "∞", 2: "∞1/2"}  # none over IT4, whose bars are finite
    heights = [b.get_height() for b in ax.patches]
    assert heights[0] == pytest.approx(50.0) and heights[2] == pytest.approx(20.0)  # the finite seed's bar
