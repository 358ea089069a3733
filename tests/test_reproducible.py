"""Same config and seed, same numbers: two smoke runs agree bit for bit, apart from volatile fields."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from runfiles import contents, differences
from tiny import SMOKE, tiny_config

from cortexsim import cli
from cortexsim.assembly import load_experiment


def run_smoke(folder: Path, *args: str) -> Path:
    assert cli.main(["run", str(SMOKE), "--out", str(folder), *args]) == 0
    return folder / "run.h5"


def other_jobs() -> str:
    """A ``--jobs`` other than the default the shared smoke run used (ANNs in worker processes or not)."""
    return "1" if cli.default_jobs(load_experiment(SMOKE)) > 1 else "2"


@pytest.fixture(scope="module")
def two_smoke_runs(smoke_run, tmp_path_factory) -> tuple[Path, Path]:
    """The shared smoke run and a second one, in another folder from another working directory.

    The second one runs with another ``--jobs`` than the first (whose default is the cores
    available): the numbers must not depend on where the ANNs were trained.
    """
    root = tmp_path_factory.mktemp("again")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return smoke_run / "run.h5", run_smoke(root / "b", "--jobs", other_jobs())
    finally:
        os.chdir(cwd)


def test_two_smoke_runs_are_bit_identical(two_smoke_runs):
    fields = contents(two_smoke_runs[0])
    assert any(k.startswith("/ann/") for k in fields) and any(k.startswith("/spikes/") for k in fields)
    differ, compared = differences(*two_smoke_runs)
    assert compared > 500
    assert differ == [], f"{len(differ)} of {compared} fields differ between two runs, e.g. {differ[:8]}"


def test_the_comparison_tells_different_runs_apart(two_smoke_runs, tmp_path):
    changed = tmp_path / "changed.h5"
    shutil.copyfile(two_smoke_runs[1], changed)
    with h5py.File(changed, "r+") as f:
        f["rate/rates"][0, 0, 0] += 1e-3
        f["metrics"].attrs["rate_position_r2"] += 1e-12
    assert differences(two_smoke_runs[0], changed)[0] == ["/metrics@rate_position_r2", "/rate/rates"]


def test_training_stops_on_iteration_counts_not_on_time(two_smoke_runs):
    with h5py.File(two_smoke_runs[0]) as f:
        m = f["metrics"].attrs
        assert m["rate_budget_hit"] == 0 and m["rate_train_iterations"] == 40
        for arch in ("rnn", "gru", "lstm"):
            assert m[f"ann_{arch}_budget_hit"] == 0 and 0 < m[f"ann_{arch}_train_iterations"] <= 60


def test_no_randomness_bypasses_the_named_seed_streams():
    """No generator in cortexsim is seeded with a literal: every draw comes from the experiment seed."""
    import ast

    package = Path(__file__).resolve().parent.parent / "cortexsim"
    literal = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", ""))
                in ("default_rng", "seed", "RandomState", "SeedSequence")
                and node.args
            ):
                if all(
                    isinstance(n, ast.Constant)
                    for n in ast.walk(node.args[0])
                    if not isinstance(n, (ast.List, ast.Tuple, ast.Load))
                ):
                    literal.append(f"{path.relative_to(package)}:{node.lineno}")
    assert literal == []


def test_validation_trials_follow_the_experiment_seed():
    from cortexsim import assembly

    a, b = (assembly.validation_set(tiny_config(experiment={"seed": s})) for s in (1, 2))
    again = assembly.validation_set(tiny_config(experiment={"seed": 1}))
    assert np.array_equal(a.inputs, again.inputs) and not np.array_equal(a.inputs, b.inputs)


def test_fixed_points_the_ann_stages_hand_over_are_those_compare_finds_alone(tmp_path):
    """An ANN stage searches its model's fixed points where it trained it; the compare stage takes them
    (says so) and they are the points it finds itself from the run file (``--force``)."""
    from cortexsim import pipeline, store
    from cortexsim.compare_stage import circuit_fixed_points, compare_stage

    config = tiny_config(ann={"archs": ["rnn"], "max_iterations": 5}, compare={"fixed_point_starts": 6})
    lines: list[str] = []
    run_file = pipeline.run_experiment(config, tmp_path / "run", log=lines.append, jobs=1)
    assert any("fixed points of ann:rnn: searched when trained" in line for line in lines)
    with store.open_run(run_file) as f:
        handed = store.read_analysis(f).tables["fixed_points"]
    compare_stage(run_file, tmp_path / "figures", config.compare, config=config, force=True, log=lines.append)
    with store.open_run(run_file) as f:
        alone = store.read_analysis(f).tables["fixed_points"]
    assert [r["model"] for r in alone] == ["rate"] * 3 + ["ann:rnn"] * 3
    _same_rows(handed, alone)
    # the circuit's, as the pipeline searches them while it waits for a worker
    circuit = [row for row, _ in circuit_fixed_points(config, run_file)]
    _same_rows(circuit, alone[:3])


def _same_rows(a_rows: list[dict], b_rows: list[dict]) -> None:
    assert len(a_rows) == len(b_rows)
    for a, b in zip(a_rows, b_rows, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key  # NaN == NaN
