"""The public Python API of ``cortexsim/__init__.py`` and the README's example that uses it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cortexsim as cs

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments" / "smoke.toml"


def test_public_names_are_documented_and_importable():
    for name in cs.__all__:
        obj = getattr(cs, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"cortexsim.{name} has no docstring"


def test_the_api_trains_evaluates_and_compares_like_the_pipeline():
    """The steps of the README example (without the twin, which the slow test adds): a run of them
    gives the numbers ``cortexsim run`` writes for the same config."""
    config = cs.load_experiment(SMOKE)
    net, state = cs.train_rate(config, cs.build_circuit(config), log=lambda line: None)
    assert state.iteration == config.train.max_iterations
    rate = cs.evaluate(net, config, "rate")
    gru, _ = cs.train_ann(config, "gru", log=lambda line: None)
    ann = cs.evaluate(gru, config, "ann_gru")
    assert rate.activity.shape[:2] == ann.activity.shape[:2] == rate.outputs.shape[:2]
    result = cs.compare_models({"rate": rate.activity, "ann:gru": ann.activity}, config)
    (row,) = [r for r in result.similarity if {r["a"], r["b"]} == {"rate", "ann:gru"}]
    assert 0 < row["cca"] <= 1
    again = cs.evaluate(cs.train_rate(config, log=lambda line: None)[0], config, "rate")
    assert again.metrics == rate.metrics  # same config and seed, same numbers
    assert np.array_equal(again.activity, rate.activity)


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README shows the Python API in a ```python block"
    return blocks[0]


def test_readme_example_is_short_and_uses_the_public_api():
    code = _readme_example()
    lines = [line for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) <= 16, f"the README example has {len(lines)} lines; keep it about 15"
    used = set(re.findall(r"\bcs\.(\w+)", code))
    assert used and used <= set(cs.__all__), f"not in cortexsim.__all__: {used - set(cs.__all__)}"
    for needed in ("build_circuit", "train_rate", "run_twin", "train_ann", "compare_models"):
        assert needed in used


@pytest.mark.slow
@pytest.mark.brian2
def test_readme_example_runs_as_written(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", _readme_example()], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
