"""The delayed center-out reach: timing invariants as properties, determinism, bad values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortexsim.errors import ConfigError
from cortexsim.tasks import CenterOutTask, minimum_jerk

timings = st.fixed_dictionaries(
    {
        "fixation": st.floats(0.0, 0.3),
        "delay_min": st.floats(0.0, 0.4),
        "extra_delay": st.floats(0.0, 0.5),
        "reaction_time": st.floats(0.0, 0.3),
        "reach_duration": st.floats(0.05, 0.6),
        "hold": st.floats(0.0, 0.3),
        "n_targets": st.integers(1, 12),
        "catch_fraction": st.floats(0.0, 1.0),
        "zero_delay_fraction": st.floats(0.0, 1.0),
        "seed": st.integers(0, 2**16),
    }
)


def make(t: dict) -> CenterOutTask:
    return CenterOutTask(
        fixation=t["fixation"],
        delay_min=t["delay_min"],
        delay_max=t["delay_min"] + t["extra_delay"],
        reaction_time=t["reaction_time"],
        reach_duration=t["reach_duration"],
        hold=t["hold"],
        n_targets=t["n_targets"],
        catch_fraction=t["catch_fraction"],
        zero_delay_fraction=t["zero_delay_fraction"],
        eval_delay=t["delay_min"],
    )


@settings(max_examples=40, deadline=None)
@given(timings)
def test_timing_invariants(t):
    task = make(t)
    batch = task.sample(16, np.random.default_rng(t["seed"]))
    p, time = batch.params, batch.time
    assert batch.inputs.shape == (16, task.n_steps, 3)
    assert batch.targets.shape == batch.mask.shape == (16, task.n_steps, 2)
    dist = np.linalg.norm(batch.targets, axis=-1)
    for i in range(16):
        # target input: off before onset, the unit direction after
        before = time < p["target_on"][i] - 1e-9
        assert np.all(batch.inputs[i, before, :2] == 0)
        np.testing.assert_allclose(np.linalg.norm(batch.inputs[i, ~before, :2], axis=-1), 1.0)
        if p["catch"][i]:
            assert np.all(batch.inputs[i, :, 2] == 0)  # no go cue
            assert np.all(dist[i] == 0)  # hold at the centre
            continue
        assert task.delay_min - 1e-12 <= p["delay"][i] <= task.delay_max + 1e-12 or p["delay"][i] == 0
        go = batch.inputs[i, :, 2] > 0
        assert np.isclose(time[go][0], p["go"][i], atol=task.dt)
        # the hand does not move before go + reaction time
        assert np.all(dist[i, time < p["move_on"][i] - 1e-9] == 0)
        # it reaches the target by the end of the movement and holds there to the end
        done = time >= p["move_off"][i] - 1e-9
        assert done.any(), "every trial must contain the whole reach"
        np.testing.assert_allclose(dist[i, done], task.reach_distance, rtol=1e-9)
        # distance from the centre never decreases (minimum-jerk is monotonic)
        assert np.all(np.diff(dist[i]) >= -1e-15)


def test_minimum_jerk_profile():
    s = np.linspace(0, 1, 101)
    x = minimum_jerk(s)
    assert x[0] == 0 and x[-1] == 1 and x[50] == pytest.approx(0.5)
    v = np.gradient(x, s)
    assert v[0] == pytest.approx(0, abs=1e-3) and v[-1] == pytest.approx(0, abs=1e-3)
    assert np.argmax(v) == 50  # bell-shaped, symmetric speed


def test_sampling_is_deterministic_and_seed_dependent():
    task = CenterOutTask()
    a, b = task.sample(32, np.random.default_rng(5)), task.sample(32, np.random.default_rng(5))
    c = task.sample(32, np.random.default_rng(6))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert not np.array_equal(a.targets, c.targets)


def test_catch_share_and_targets():
    task = CenterOutTask(n_targets=5)
    batch = task.sample(4000, np.random.default_rng(0))
    assert batch.params["catch"].mean() == pytest.approx(0.2, abs=0.03)
    assert set(np.unique(batch.params["condition"])) == set(range(5))
    ev = task.evaluation_set()
    assert ev.n_trials == 5 and not ev.params["catch"].any()
    np.testing.assert_allclose(ev.params["delay"], task.eval_delay)
    ends = ev.targets[:, -1]
    np.testing.assert_allclose(np.linalg.norm(ends, axis=-1), task.reach_distance)


def test_random_angles():
    batch = CenterOutTask(random_angles=True).sample(500, np.random.default_rng(0))
    assert np.all(batch.params["condition"] == -1)
    assert np.unique(batch.params["angle"]).size == 500


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"n_targets": 0}, "task.n_targets"),
        ({"dt": -0.01}, "task.dt"),
        ({"catch_fraction": 1.5}, "task.catch_fraction"),
        ({"delay_min": 0.9, "delay_max": 0.5}, "task.delay_min"),
        ({"reach_duration": 0.0}, "task.reach_duration"),
    ],
)
def test_bad_task_values(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        CenterOutTask(**kwargs)
