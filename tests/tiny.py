"""A cut-down smoke experiment for tests that run the pipeline several times (seconds per run)."""

from __future__ import annotations

from pathlib import Path

from cortexsim.config import Config, load_config

SMOKE = Path(__file__).resolve().parent.parent / "experiments" / "smoke.toml"

CHANGES = {
    "train": {
        "batch_size": 8,
        "max_iterations": 10,
        "validation_trials": 8,
        "eval_every": 5,
        "log_every": 5,
        "checkpoint_every": 5,
    },
    "ann": {"archs": []},
    "spiking": {"enabled": False},
    "compare": {"n_null": 0, "n_surrogates": 0, "fixed_point_starts": 0},
}
"""What the tiny experiment changes in ``experiments/smoke.toml``: short training, no twin, no ANNs."""


def tiny_config(**changes: dict) -> Config:
    """``experiments/smoke.toml`` with :data:`CHANGES`, then ``changes`` (section -> {key: value})."""
    config = load_config(SMOKE)
    for section, values in [*CHANGES.items(), *changes.items()]:
        config = config.with_section(section, **values)
    return config
