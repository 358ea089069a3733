"""The comparison and sweep records of cortexsim.store: every writer has a reader, and they round-trip."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from cortexsim import __version__, battery, store
from cortexsim.errors import CortexsimError, RunFileError

STR = h5py.string_dtype("utf-8")
POPULATIONS = np.dtype(
    [("name", STR), ("layer", STR), ("cell_class", STR), ("subtype", STR), ("start", np.int64), ("stop", np.int64)]
)


def activity_file(path, spiking: bool = True, anns: tuple[str, ...] = ("gru", "rnn")) -> np.ndarray:
    """A file with the groups read_activities reads: 4 conditions x 30 steps of 10 ms, 8 units in 3 populations."""
    rates = np.random.default_rng(0).random((4, 30, 8))
    with h5py.File(path, "w") as f:
        f.create_group("task").attrs["dt"] = 0.01
        f["task/params/move_on"] = np.full(4, 0.12)
        f["task/targets"] = np.zeros((4, 30, 2))
        f["rate/rates"] = rates
        f["circuit/populations"] = np.array(
            [("IT2/3", "L2/3", "E", "IT", 0, 4), ("PV2/3", "L2/3", "I", "PV", 4, 6), ("PT5B", "L5B", "E", "PT", 6, 8)],
            dtype=POPULATIONS,
        )
        if spiking:
            f["spiking/rates"] = rates * 2
        for arch in anns:
            f[f"ann/{arch}/hidden"] = np.ones((4, 30, 3))
    return rates


def test_read_activities_gives_the_circuit_its_layers_populations_twin_and_anns(tmp_path):
    rates = activity_file(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5") as f:
        acts = store.read_activities(f, min_units=3)
        again = store.read_activities(f, prefix="run2/", min_units=2)
    assert [(a.name, a.kind, a.n_units) for a in acts] == [
        ("rate", "model", 8),
        ("rate:L2/3", "layer", 6),
        ("rate:L5B", "layer", 2),
        ("rate:IT2/3", "population", 4),
        ("spiking", "model", 8),
        ("ann:gru", "model", 3),
        ("ann:rnn", "model", 3),
    ]
    assert all(a.dt == 0.01 and a.move_on == 12 for a in acts)
    np.testing.assert_array_equal(acts[1].rates, rates[:, :, :6])
    np.testing.assert_array_equal(acts[4].rates, 2 * rates)
    assert [a.name for a in again][:6] == [
        "run2/rate",
        "run2/rate:L2/3",
        "run2/rate:L5B",
        "run2/rate:IT2/3",
        "run2/rate:PV2/3",
        "run2/rate:PT5B",
    ]


def test_read_activities_without_rates_says_which_stage_to_run(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        with pytest.raises(CortexsimError, match="has no /rate/rates; run the rate stage first"):
            store.read_activities(f)


def test_activity_is_frozen():
    act = store.Activity("rate", "model", np.zeros((2, 3, 4)), 0.01, 1)
    with pytest.raises(AttributeError):
        act.name = "other"  # type: ignore[misc]


def test_read_rates_and_targets(tmp_path):
    rates = activity_file(tmp_path / "run.h5", spiking=False)
    with h5py.File(tmp_path / "run.h5") as f:
        np.testing.assert_array_equal(store.read_rates(f, "rate"), rates)
        assert store.read_rates(f, "spiking") is None
        assert store.read_task_targets(f).shape == (4, 30, 2)


SIMILARITY = [
    {"a": "rate", "b": "ann:gru", "cca": 0.9, "shape_distance": 0.2, "cka": 0.8, "rsa": float("nan"), "cca_null": 0.3},
    {"a": "rate:L5B", "b": "ann:gru", "cca": 0.7, "shape_distance": 0.4, "cka": 0.5, "rsa": 0.1, "cca_null": 0.2},
]
JPCA = [
    {
        "activity": "rate",
        "r2_best": 0.9,
        "r2_skew": 0.6,
        "ratio": 0.666,
        "frequency_hz": 1.5,
        "participation_ratio": 3.2,
        "decode_position_r2": 0.8,
        "decode_velocity_r2": 0.7,
    }
]
ANSWERS = {"most_ann_like_layer": "rate:L5B", "most_ann_like_layer_cca": 0.7}


def test_analysis_round_trip(tmp_path):
    notes = ("rate:PT5B: constant activity (silenced?); left out of the battery", "data: resampled")
    with h5py.File(tmp_path / "run.h5", "w") as f:
        assert store.read_analysis(f) is None
        store.write_analysis(f, SIMILARITY, JPCA, ANSWERS, ())
        store.write_analysis(f, SIMILARITY, JPCA, ANSWERS, notes, columns=battery.TABLE_COLUMNS)  # replaces
    with h5py.File(tmp_path / "run.h5") as f:
        record = store.read_analysis(f)
        g = f["analysis"]
        assert g.attrs["description"] == store.ANALYSIS_TEXT
        assert g.attrs["notes"] == "\n".join(notes)
        assert g["similarity"].attrs["col_cca"] == battery.SIMILARITY_COLUMNS["cca"]  # the battery's meanings
        assert g["jpca"].attrs["col_ratio"] == battery.JPCA_COLUMNS["ratio"]
        assert g["similarity"].attrs["description"] == "One row per compared pair."
        assert g["jpca"].attrs["description"] == "One row per activity."
        assert list(g["similarity"].dtype.names) == list(SIMILARITY[0])
    assert record.notes == notes and record.answers == ANSWERS
    assert record.jpca == tuple(JPCA)
    assert [r["a"] for r in record.similarity] == ["rate", "rate:L5B"]
    assert np.isnan(record.similarity[0]["rsa"])
    assert record.similarity[1] == SIMILARITY[1]


def test_analysis_without_rows_or_notes(tmp_path):
    with h5py.File(tmp_path / "run.h5", "w") as f:
        store.write_analysis(f, [], [], {}, [])
        record = store.read_analysis(f)
        assert "similarity" not in f["analysis"]
    assert record == store.AnalysisRecord((), (), {}, ())


def test_read_table_decodes_text_columns(tmp_path):
    rows = [{"name": "PT5B", "x": 1.5}, {"name": "IT4", "x": float("nan")}]
    with h5py.File(tmp_path / "t.h5", "w") as f:
        store.write_table(f, "t", rows, "Two rows.")
        back = store.read_table(f, "t")
        assert store.read_table(f, "missing") == ()
    assert back[0] == rows[0] and back[1]["name"] == "IT4" and np.isnan(back[1]["x"])
    assert all(isinstance(r["name"], str) for r in back)


def test_run_summary_reads_what_summary_md_needs(tmp_path):
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(store.provenance("[experiment]\n", 11))
        f.create_group("rate").attrs["lesion"] = "silence PT5B"
        store.write_metrics(f, {"rate_position_r2": 0.5}, "Headline numbers.")
        store.write_stage(f, "train", key="k1", seconds=2.0, groups=["training"], metrics=[])
        store.write_stage(f, "rate", key="k2", seconds=1.0, groups=["rate"], metrics=["rate_position_r2"])
    with h5py.File(path) as f:
        run = store.read_run_summary(f)
        created, commit = f.attrs["created_utc"], f.attrs["git_commit"]
    assert run.filename == str(path) and run.seed == 11 and run.created_utc == created
    assert run.metrics == {"rate_position_r2": 0.5} and run.lesion == "silence PT5B"
    assert run.cortexsim_version == __version__ and run.git_commit == commit
    assert list(run.stages) == ["train", "rate"] and run.stages["rate"]["seconds"] == 1.0
    assert run.derived_from is None
    with h5py.File(path, "a") as f:
        del f["rate"]
        f.attrs["derived_from"] = "/elsewhere/run.h5"
        run = store.read_run_summary(f)
    assert run.lesion == "intact" and run.derived_from == "/elsewhere/run.h5"
    with pytest.raises(AttributeError):
        run.seed = 1  # type: ignore[misc]


ROWS = [
    {
        "point": "seed-1-ab12",
        "experiment.seed": "1",
        "status": "done",
        "error": "",
        "seconds": 12.5,
        "rate_position_r2": 0.9,
    },
    {
        "point": "seed-2-cd34",
        "experiment.seed": "2",
        "status": "failed",
        "error": "TrainingError: loss became",
        "seconds": float("nan"),
        "rate_position_r2": float("nan"),
    },
]


def test_sweep_summary_round_trip(tmp_path):
    keys = list(ROWS[0])
    path = store.write_sweep_summary(
        tmp_path / "summary.h5",
        ROWS,
        keys,
        sweep_text="[sweep]\n",
        base_config="[experiment]\n",
        parameters=("experiment.seed",),
    )
    assert [p.name for p in tmp_path.iterdir()] == ["summary.h5"]  # no temporary file left
    summary = store.read_sweep_summary(path)
    assert summary.columns == tuple(keys) and summary.parameters == ("experiment.seed",)
    assert summary.sweep_text == "[sweep]\n" and summary.base_config == "[experiment]\n"
    assert summary.rows[0] == ROWS[0]
    assert summary.rows[1]["error"] == "TrainingError: loss became" and np.isnan(summary.rows[1]["seconds"])
    with h5py.File(path) as f:
        assert f.attrs["file_kind"] == store.SWEEP_FILE_KIND == "cortexsim sweep summary"
        assert f.attrs["schema_version"] == store.SCHEMA_VERSION
        assert json.loads(f.attrs["parameters"]) == ["experiment.seed"]
        assert {"created_utc", "git_commit", "cortexsim_version", "numpy_version", "h5py_version"} <= set(f.attrs)
        assert summary.created_utc == f.attrs["created_utc"]
        assert f["points"].attrs["col_status"] == "done, failed or missing"
        assert f["points"].attrs["description"] == "One row per sweep point."


def test_reading_a_sweep_summary_refuses_other_files(tmp_path):
    with h5py.File(tmp_path / "run.h5", "w") as f:
        f.attrs["file_kind"] = "cortexsim run"
    with pytest.raises(RunFileError, match="not a cortexsim sweep summary"):
        store.read_sweep_summary(tmp_path / "run.h5")
    with pytest.raises(RunFileError, match="no such file"):
        store.read_sweep_summary(tmp_path / "missing.h5")
