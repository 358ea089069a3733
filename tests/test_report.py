"""The comparison in words: the console report, summary.md and the caveats on answers from failed models."""

from __future__ import annotations

import numpy as np
import pytest

from cortexsim.battery import run_battery
from cortexsim.quality import QualityConfig, check_quality
from cortexsim.report import answer_caveat, format_report, summary_markdown
from cortexsim.store import Activity, RunSummary


def rotating(n_cond: int = 8, n_time: int = 60, n_units: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_time) * 0.01
    phase = 2 * np.pi * np.arange(n_cond)[:, None] / n_cond + 2 * np.pi * 2.0 * t[None, :]
    plane = np.stack([np.cos(phase), np.sin(phase)], -1) * np.exp(-t)[None, :, None]
    basis, _ = np.linalg.qr(rng.standard_normal((n_units, 2)))
    return 10 + plane @ basis.T


@pytest.fixture(scope="module")
def result():
    x = rotating()
    noise = np.random.default_rng(2).standard_normal(x.shape)
    acts = [
        Activity("rate", "model", x, 0.01, 20),
        Activity("ann:gru", "model", x + noise, 0.01, 20),
        Activity("rate:L5B", "layer", x[:, :, :10], 0.01, 20),
        Activity("rate:PT5B", "population", x[:, :, 10:15], 0.01, 20),
    ]
    return run_battery(acts, n_pcs=4, n_null=3, rng=np.random.default_rng(0)).with_notes(["data: none here"])


GOOD = {
    "rate_position_r2": 0.99,
    "rate_endpoint_error_cm": 0.5,
    "rate_catch_drift_cm": 0.5,
    "ann_gru_position_r2": 0.99,
    "ann_gru_endpoint_error_cm": 0.5,
    "ann_gru_catch_drift_cm": 0.5,
}
BAD_GRU = {**GOOD, "ann_gru_position_r2": 0.5}


def run_summary(**changes) -> RunSummary:
    fields = {
        "filename": "/runs/x/run.h5",
        "metrics": dict(GOOD),
        "lesion": "intact",
        "created_utc": "2026-01-02T03:04:05+00:00",
        "seed": 7,
        "cortexsim_version": "0.1.0",
        "git_commit": "abc123",
        "stages": {},
        "derived_from": None,
    }
    return RunSummary(**{**fields, **changes})


def test_answer_caveat_names_the_failed_models_an_answer_comes_from():
    quality = QualityConfig()
    passed, gru_failed = check_quality(GOOD, quality), check_quality(BAD_GRU, quality)
    assert answer_caveat("most_ann_like_layer", None) == ""
    assert answer_caveat("most_ann_like_layer", passed) == ""
    assert answer_caveat("most_ann_like_layer_cca", gru_failed) == "drawn from the GRU, which FAILED its task"
    assert answer_caveat("most_rotational_layer", gru_failed) == ""  # the rate circuit alone
    both = check_quality({**BAD_GRU, "rate_position_r2": 0.1}, quality)
    assert answer_caveat("most_ann_like_population", both) == (
        "drawn from the rate circuit and the GRU, which FAILED their task"
    )
    rate_only = "drawn from the rate circuit, which FAILED its task"
    assert answer_caveat("most_rotational_layer_jpca_ratio", both) == rate_only
    assert answer_caveat("something_else", both) == ""


def test_format_report_has_a_table_per_kind_the_answers_and_notes(result):
    text = format_report(result)
    assert "== similarity: models" in text and "== similarity: layers vs ANNs" in text
    assert "== similarity: populations vs ANNs" in text and "== per activity: jPCA" in text
    assert "most_ann_like_layer: rate:L5B" in text and "note: data: none here" in text
    assert "WARNING" not in text and not text.endswith("\n")
    head = next(line for line in text.splitlines() if line.startswith("a "))
    assert head.split() == [
        "a",
        "b",
        "cca",
        "cca_null",
        "cca_null_time",
        "cca_p",
        "shape_distance",
        "shape_distance_null",
        "cka",
        "rsa",
    ]


def test_format_report_is_headed_by_the_quality_warnings(result):
    verdict = check_quality(BAD_GRU, QualityConfig())
    lines = format_report(result, verdict).splitlines()
    assert lines[: len(verdict.warnings())] == verdict.warnings() and lines[len(verdict.warnings())] == ""
    assert "most_ann_like_layer: rate:L5B  [drawn from the GRU, which FAILED its task]" in lines


def test_summary_markdown_from_a_run_summary(result):
    verdict = check_quality(GOOD, QualityConfig())
    text = summary_markdown(run_summary(), result, verdict)
    lines = text.splitlines()
    assert lines[0] == "# cortexsim run summary" and text.endswith("\n")
    assert "Quality gate: passed (the rate circuit, the GRU met the [quality] bars)." in lines
    assert "- file: `/runs/x/run.h5`" in lines
    assert "- created 2026-01-02T03:04:05+00:00, seed 7, cortexsim 0.1.0 (abc123)" in lines
    assert not [line for line in lines if "lesion" in line]
    assert "| rate circuit | 0.9900 | 0.50 | 0.50 | nan | nan | passed |" in lines
    assert "| GRU | 0.9900 | 0.50 | 0.50 | nan | nan | passed |" in lines
    assert "- effector: kinematic -- PT5B's linear readout is the hand position" in lines
    assert any(line.startswith("| rate | ann:gru | ") for line in lines)
    assert not any(line.startswith("| rate:PT5B | ") for line in lines)  # populations stay in /analysis
    assert "- most ann like layer: **rate:L5B**" in lines
    assert "## Stages (wall time when computed)" not in text
    assert lines[-2:] == ["", "- data: none here"]


def test_summary_markdown_says_what_failed_the_lesion_and_the_stages(result):
    verdict = check_quality(BAD_GRU, QualityConfig())
    stages = {"train": {"seconds": 2.5, "finished_utc": "T1"}, "rate": {"seconds": 1.0, "finished_utc": "T2"}}
    text = summary_markdown(
        run_summary(metrics=dict(BAD_GRU), lesion="silence PT5B", stages=stages, derived_from="/runs/intact/run.h5"),
        result,
        verdict,
    )
    lines = text.splitlines()
    assert lines[2].startswith("> **WARNING: the GRU FAILED its task") and lines[2].endswith("  ")
    assert "- **lesion: silence PT5B** (applied to the trained circuit)" in lines
    assert "| GRU | 0.5000 | 0.50 | 0.50 | nan | nan | **FAILED** |" in lines
    assert "- most ann like layer: **rate:L5B** (**drawn from the GRU, which FAILED its task**)" in lines
    assert "| train | 2.5 | T1 |" in lines and "| compare | (writing this summary) | |" in lines
    assert "Stages with matching keys were reused from `/runs/intact/run.h5`." in lines


def test_summary_markdown_without_a_verdict(result):
    text = summary_markdown(run_summary(stages={"compare": {"seconds": 1.0, "finished_utc": "T"}}), result)
    assert "Quality gate" not in text and "WARNING" not in text
    assert "| rate circuit | 0.9900 | 0.50 | 0.50 | nan | nan |  |" in text.splitlines()
    assert "(writing this summary)" not in text
