"""The quality gate: a model that failed its task says so, in /metrics, the console and summary.md."""

from __future__ import annotations

import math

import h5py
import pytest
from tiny import tiny_config

from cortexsim import cli
from cortexsim.config import config_from_text
from cortexsim.errors import ConfigError
from cortexsim.quality import QualityConfig, check_quality

GOOD = {
    "rate_position_r2": 0.995,
    "rate_endpoint_error_cm": 0.3,
    "rate_catch_drift_cm": 0.2,
    "spiking_position_r2": 0.95,
    "ann_gru_position_r2": 0.999,
    "ann_gru_endpoint_error_cm": 0.05,
    "ann_gru_catch_drift_cm": 0.3,
    "compare_cca_rate_gru": 0.8,
}


def test_every_model_meeting_its_bars_passes():
    verdict = check_quality(GOOD, QualityConfig())
    assert verdict.passed and verdict.models == ("rate", "spiking", "ann_gru")
    assert verdict.to_metrics() == {
        "quality_passed": 1.0,
        "rate_quality_passed": 1.0,
        "spiking_quality_passed": 1.0,
        "ann_gru_quality_passed": 1.0,
    }


@pytest.mark.parametrize(
    "metric, value, model",
    [
        ("rate_position_r2", 0.65, "rate"),  # a minimum missed
        ("rate_endpoint_error_cm", 3.5, "rate"),  # a maximum missed
        ("rate_catch_drift_cm", 1.0, "rate"),  # exactly at a maximum is a miss ("below 1 cm")
        ("spiking_position_r2", 0.85, "spiking"),
        ("ann_gru_catch_drift_cm", 6.7, "ann_gru"),
        ("rate_endpoint_error_cm", math.nan, "rate"),  # not computed counts as a miss
    ],
)
def test_a_missed_bar_fails_that_model_only(metric, value, model):
    verdict = check_quality({**GOOD, metric: value}, QualityConfig())
    assert not verdict.passed and verdict.failed_models == (model,)
    assert verdict.to_metrics()["quality_passed"] == 0 and verdict.to_metrics()[f"{model}_quality_passed"] == 0
    assert "FAILED its task" in verdict.describe(model) and metric in verdict.describe(model)


def test_a_missing_metric_of_a_trained_model_is_a_miss():
    metrics = {k: v for k, v in GOOD.items() if k != "ann_gru_endpoint_error_cm"}
    assert check_quality(metrics, QualityConfig()).failed_models == ("ann_gru",)


def test_the_bars_come_from_the_config_and_are_checked():
    config = config_from_text("[quality]\nposition_r2 = 0.999\n")
    assert config.quality.position_r2 == 0.999 and config.quality.endpoint_error_cm == 1.0
    assert check_quality(GOOD, config.quality).failed_models == ("rate",)
    for text in ("[quality]\nendpoint_error_cm = -1", "[quality]\nposition_r2 = 2", "[quality]\nr2 = 0.9"):
        with pytest.raises(ConfigError, match="quality"):
            config_from_text(text)


def test_smoke_run_says_its_models_failed_everywhere_results_are_shown(smoke_run):
    with h5py.File(smoke_run / "run.h5") as f:
        m = f["metrics"].attrs
        assert m["quality_passed"] == 0 and m["rate_quality_passed"] == 0
        assert m["rate_budget_hit"] == 0
    summary = (smoke_run / "summary.md").read_text()
    head = summary.split("## Reaching")[0]
    assert "WARNING: the rate circuit FAILED its task" in head
    answers = summary.split("## Answers")[1].split("##")[0]
    answer_lines = [line for line in answers.splitlines() if line.startswith("- ")]
    assert answer_lines and all("FAILED" in line for line in answer_lines)
    assert "| rate circuit |" in summary and "**FAILED**" in summary


@pytest.mark.slow  # 25-130 s on 2 busy cores: the default suite stays near 10 min
def test_strict_exits_non_zero_on_a_failed_gate_and_zero_on_a_passed_one(tmp_path, capsys):
    failing = tmp_path / "failing.toml"
    failing.write_text(tiny_config().to_toml())
    assert cli.main(["run", str(failing), "--out", str(tmp_path / "a")]) == 0  # without --strict: reported only
    out = capsys.readouterr().out
    assert "WARNING: the rate circuit FAILED its task" in out
    assert cli.main(["run", str(failing), "--out", str(tmp_path / "a"), "--strict"]) == 1
    assert "quality gate failed (--strict)" in capsys.readouterr().err

    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        tiny_config(quality={"position_r2": -100.0, "endpoint_error_cm": 100.0, "catch_drift_cm": 100.0}).to_toml()
    )
    assert cli.main(["run", str(lenient), "--out", str(tmp_path / "b"), "--strict"]) == 0
    with h5py.File(tmp_path / "b" / "run.h5") as f:
        assert f["metrics"].attrs["quality_passed"] == 1
    assert (tmp_path / "b" / "summary.md").read_text().count("FAILED") == 0


def test_a_budget_that_stops_training_is_reported_in_metrics_console_and_summary(tmp_path, capsys):
    config = tmp_path / "budget.toml"
    config.write_text(tiny_config(train={"max_seconds": 1e-6}).to_toml())
    assert cli.main(["run", str(config), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: training was stopped by the wall-clock safety net after 1 iterations" in out
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        assert f["metrics"].attrs["rate_budget_hit"] == 1 and f["metrics"].attrs["rate_train_iterations"] == 1
    head = (tmp_path / "run" / "summary.md").read_text().split("## Reaching")[0]
    assert "training of the rate circuit was stopped by its wall-clock safety net" in head


def test_speed_bars_apply_only_when_set():
    assert [b[0] for b in QualityConfig().bars("rate")] == [
        "rate_position_r2",
        "rate_endpoint_error_cm",
        "rate_catch_drift_cm",
    ]
    bars = QualityConfig(peak_speed_error=0.2, speed_profile_r=0.9).bars("ann_gru")
    assert ("ann_gru_peak_speed_error", "max", 0.2) in bars and ("ann_gru_speed_profile_r", "min", 0.9) in bars
    slow = {"rate_position_r2": 0.99, "rate_endpoint_error_cm": 0.5, "rate_catch_drift_cm": 0.5}
    slow |= {"rate_peak_speed_error": 0.45, "rate_speed_profile_r": 0.95}
    verdict = check_quality(slow, QualityConfig(peak_speed_error=0.2, speed_profile_r=0.9))
    assert verdict.failed("rate")


def test_the_twins_endpoint_bar_applies_only_when_set():
    twin = {"spiking_position_r2": 0.97, "spiking_endpoint_error_cm": 1.8}
    assert not check_quality(twin, QualityConfig()).failed("spiking")
    verdict = check_quality(twin, QualityConfig(spiking_endpoint_error_cm=1.5))
    assert verdict.failed("spiking") and "spiking_endpoint_error_cm" in verdict.describe("spiking")
    assert not check_quality(
        {**twin, "spiking_endpoint_error_cm": 1.2}, QualityConfig(spiking_endpoint_error_cm=1.5)
    ).failed("spiking")


def test_the_maze_bars_apply_to_the_circuit_the_anns_and_the_twin_when_set():
    assert not any("maze" in b[0] for m in ("rate", "spiking") for b in QualityConfig().bars(m))
    q = QualityConfig(
        maze_curvature_gain=0.5, maze_via_error_cm=1.5, spiking_maze_curvature_gain=0.4, spiking_maze_via_error_cm=2.0
    )
    assert {("ann_gru_maze_curvature_gain", "min", 0.5), ("ann_gru_maze_via_error_cm", "max", 1.5)} <= set(
        q.bars("ann_gru")
    )
    assert {("spiking_maze_curvature_gain", "min", 0.4), ("spiking_maze_via_error_cm", "max", 2.0)} <= set(
        q.bars("spiking")
    )
    straight = {**GOOD, "rate_maze_curvature_gain": 0.6, "rate_maze_via_error_cm": 1.9}
    verdict = check_quality(straight, q)
    assert verdict.failed("rate") and "rate_maze_via_error_cm" in verdict.describe("rate")
    twin = {"spiking_position_r2": 0.97, "spiking_maze_curvature_gain": 0.3, "spiking_maze_via_error_cm": 1.0}
    assert check_quality(twin, q).failed("spiking")
    with pytest.raises(ConfigError, match=r"quality\.maze_via_error_cm"):
        config_from_text("[quality]\nmaze_via_error_cm = -1")
