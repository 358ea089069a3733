"""What every stage of the pipeline records of its metrics: ``/metrics``' description, progress lines, the verdict.

:data:`METRICS_TEXT` describes the headline numbers every stage adds to ``/metrics``
(:func:`cortexsim.store.write_metrics`); :func:`log_metrics` says what a stage wrote and whether the
model it evaluated missed its ``[quality]`` bars; :func:`gate` is the quality verdict on every model a
run file holds.  The stage modules (:mod:`cortexsim.pipeline`, :mod:`cortexsim.perturb_stage`,
:mod:`cortexsim.spiking_stage`, :mod:`cortexsim.compare_stage`) share them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import quality, store
from .config import Config

Log = Callable[[str], None]
"""Receives one progress line."""


METRICS_TEXT = (
    "Headline numbers. rate_*: the trained rate network on held-out trials without process noise "
    "(rate_*_noisy: with the training noise). position_r2: 1 is perfect; endpoint_error_cm: mean hand-target "
    "distance over the last 50 ms of reach trials; catch_drift_cm: mean over catch trials of the largest "
    "distance from the centre; reaction_time_ms: median time from go until the hand is 1 cm out "
    "(target_reaction_time_ms: the same for the desired trajectory); peak_speed_error: mean |peak hand speed - "
    "desired peak| / desired peak over reach trials; speed_profile_r: mean correlation of the hand's speed "
    "profile with the minimum-jerk target's. When an arm drives the hand ([effector] kind = arm26) the hand is "
    "the arm's, relative to its start position. spiking_*: the LIF twin; ann_<arch>_*: the "
    "ANN baselines. compare_*: the comparison battery -- compare_cca_<a>_<b>: mean canonical correlation of the "
    "top PCs of activities a and b (1 = same dynamics up to a linear map), compare_cca_rate_ann_mean its mean "
    "over the ANNs; compare_jpca_ratio_<a>: jPCA R^2 skew / R^2 best around movement onset (rotational "
    "dynamics, the hallmark of M1 in Churchland et al. 2012); compare_participation_ratio_<a>: dimensionality; "
    "compare_decode_position_r2_<a>: hand position decoded from the activity of held-out conditions."
)


def log_metrics(config: Config, written: dict[str, float], log: Log) -> None:
    """One line per metric a stage wrote, then its quality verdict."""
    for key, value in written.items():
        log(f"  {key:32s} {value:.4g}")
    _log_gate(config, written, log)


def _log_gate(config: Config, written: dict[str, float], log: Log) -> None:
    """Say at once, in plain words, if the model a stage just evaluated missed its ``[quality]`` bars."""
    verdict = quality.check_written(written, config.quality)
    for model in verdict.failed_models:
        log(f"  QUALITY: {verdict.describe(model)}")


def gate(run_file: Path, config: Config) -> quality.QualityVerdict:
    """The quality verdict on every model whose metrics ``run_file`` holds, against ``config.quality``."""
    with store.open_run(run_file) as f:
        return quality.check_quality(store.read_metrics(f), config.quality)
