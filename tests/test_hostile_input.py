"""Structurally hostile TOML, sweep files and data/score files by type (issue 32, classes 6 and 7).

Class 6: deeply nested TOML, duplicate names in a list, and activity too degenerate for an
analysis (constant, too few trials) are refused up front or marked undefined (NaN with a reason),
never a ``RecursionError``, an internal ``ValueError`` or a crash in the comparison.
Class 7: every field of a sweep file, the mapping CSV and the recorded NWB file of ``score`` are
checked by type and shape: one line naming the file, the field and what was expected; a score that
cannot mean anything is refused, not printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_input import assert_refused, snapshot, tiny_data, write_config

from cortexsim import analysis
from cortexsim.anatomy import default_m1_spec
from cortexsim.assembly import load_experiment
from cortexsim.cli import main
from cortexsim.config import TOML_MAX_DEPTH, parse_toml
from cortexsim.errors import ConfigError

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# ---------------------------------------------------------------------------
# Class 6: nesting
# ---------------------------------------------------------------------------

NESTINGS = {
    "array": lambda d: "x = " + "[" * d + "]" * d + "\n",
    "inline-table": lambda d: "x = " + "{a = " * d + "1" + "}" * d + "\n",
    "table-header": lambda d: "[" + ".".join(["a"] * d) + "]\nx = 1\n",
    "dotted-key": lambda d: ".".join(["a"] * d) + " = 1\n",
    "array-of-tables": lambda d: "[[" + ".".join(["a"] * d) + "]]\nx = 1\n",
}


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(NESTINGS)), depth=st.integers(TOML_MAX_DEPTH + 1, 4000))
def test_deep_nesting_is_a_config_error_not_a_recursion_error(kind, depth):
    text = NESTINGS[kind](depth)
    with pytest.raises(ConfigError, match="levels") as info:
        parse_toml(text, "deep.toml")
    assert str(info.value).startswith("deep.toml: ") and "\n" not in str(info.value)


def test_the_deepest_file_cortexsim_writes_parses():
    for path in Path(__file__).resolve().parent.parent.glob("experiments/**/*.toml"):
        parse_toml(path.read_text(), str(path))
    parse_toml(NESTINGS["array"](TOML_MAX_DEPTH - 1), "ok.toml")


def test_a_very_long_dotted_key_is_refused_at_once():
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="dotted parts"):
        parse_toml("x." * 60_000 + "y = 1\n", "long.toml")  # tomllib alone takes minutes on this
    assert time.perf_counter() - t0 < 2


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURES)
@given(
    where=st.sampled_from(["config", "sweep", "spec"]),
    kind=st.sampled_from(["array", "inline-table"]),
    depth=st.integers(TOML_MAX_DEPTH + 1, 3000),
)
def test_deep_nesting_in_any_file_is_one_line(tmp_path_factory, capsys, where, kind, depth):
    tmp = tmp_path_factory.mktemp("deep")
    deep = NESTINGS[kind](depth).replace("x = ", "")
    out = tmp / "out"
    if where == "config":
        (tmp / "exp.toml").write_text(f"[ann]\narchs = {deep}")
        argv = ["run", str(tmp / "exp.toml"), "--out", str(out)]
    elif where == "sweep":
        write_config(tmp, tiny_data(), "base.toml")
        (tmp / "sweep.toml").write_text(f'[sweep]\nexperiment = "base.toml"\n[grid]\n"lesion.silence" = {deep}')
        argv = ["sweep", str(tmp / "sweep.toml"), "--out", str(out)]
    else:
        (tmp / "spec.toml").write_text(f"outputs = {deep}")
        write_config(tmp, tiny_data(circuit={"spec": "spec.toml"}))
        argv = ["run", str(tmp / "exp.toml"), "--out", str(out)]
    before = snapshot(tmp)
    assert_refused(main(argv), capsys.readouterr(), "levels")
    assert snapshot(tmp) == before


# ---------------------------------------------------------------------------
# Class 6: every list that names things names each thing once
# ---------------------------------------------------------------------------


def _name_lists() -> dict[str, tuple[str, list[str]]]:
    """Dotted key -> (section, valid names) of every list of names an experiment file holds."""
    spec = default_m1_spec()
    pops = [p.name for p in spec.populations if p.name not in spec.outputs]
    excitatory = [p.name for p in spec.populations if p.cell_class == "E"]
    projections = [p.key for p in spec.projections]
    return {
        "ann.archs": ("ann", ["rnn", "gru", "lstm"]),
        "lesion.silence": ("lesion", pops),
        "lesion.cut": ("lesion", projections),
        "task.maze_shapes": ("task", ["straight", "arc", "s_curve"]),
        "effector.proprioception_targets": ("effector", pops),
        "effector.vision_targets": ("effector", pops),
        "perturb.bump_times": ("perturb", ["hold", "peak_speed"]),
        "circuit.overrides.silence": ("circuit", pops),
        "circuit.overrides.cut": ("circuit", projections),
        "circuit.overrides.outputs": ("circuit", excitatory),
        "circuit.overrides.inputs.go": ("circuit", pops),
    }


NAME_LISTS = _name_lists()


@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES)
@given(key=st.sampled_from(sorted(NAME_LISTS)), data=st.data())
def test_a_duplicate_in_any_list_of_names_is_refused(tmp_path_factory, key, data):
    _, names = NAME_LISTS[key]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True), label="names")
    twice = data.draw(st.sampled_from(chosen), label="repeated")
    at = data.draw(st.integers(0, len(chosen)), label="at")
    value = [*chosen[:at], twice, *chosen[at:]]
    parts = key.split(".")
    table: dict = {}
    node = table
    for part in parts[1:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    path = write_config(tmp_path_factory.mktemp("dupes"), tiny_data(**{parts[0]: table}))
    with pytest.raises(ConfigError, match="listed twice") as info:
        load_experiment(path)
    assert repr(twice) in str(info.value)


def test_duplicate_ann_architectures_are_refused_before_training(tmp_path, capsys):
    cfg = write_config(tmp_path, tiny_data(ann={"archs": ["gru", "rnn", "gru"]}))
    before = snapshot(tmp_path)
    assert_refused(main(["run", str(cfg), "--out", str(tmp_path / "out")]), capsys.readouterr(), "ann.archs", "'gru'")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# Class 6: degenerate activity is undefined (NaN), never an exception
# ---------------------------------------------------------------------------


def _no_infinities(value, where: str = "result") -> None:
    """Every number in ``value`` (a float, an array, a result dataclass) is finite or NaN, never infinite."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _no_infinities(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, (float, np.floating, np.ndarray)):
        assert not np.any(np.isinf(value)), where


def _undefined(value) -> bool:
    """True if a result says it is undefined: NaN, or a result with ``undefined`` set."""
    if dataclasses.is_dataclass(value):
        return bool(getattr(value, "undefined", ""))
    return bool(np.all(np.isnan(value)))


ANALYSES = {
    "tangling": lambda x, y: analysis.tangling(x, dt=0.01),
    "decode": lambda x, y: analysis.decode_kinematics(x, y[..., :2] if y.shape[2] >= 2 else y, dt=0.01),
    "jpca": lambda x, y: analysis.jpca(x, dt=0.01, n_pcs=2),
    "pca": lambda x, y: analysis.pca(x),
    "participation_ratio": lambda x, y: analysis.participation_ratio(x),
    "cca": lambda x, y: analysis.cca_similarity(x, y),
    "shape_distance": lambda x, y: analysis.shape_distance(x, y),
    "cka": lambda x, y: analysis.linear_cka(x, y),
    "rsa": lambda x, y: analysis.rsa(x, y),
    "rdm": lambda x, y: analysis.rdm(x),
    "dsa": lambda x, y: analysis.dsa(x, y),
    "communication": lambda x, y: analysis.communication_subspace(x, y),
}


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(ANALYSES)),
    shape=st.tuples(st.integers(1, 4), st.integers(4, 8), st.integers(2, 4)),
    level=st.floats(-1e3, 1e3, allow_nan=False),
    constant_side=st.sampled_from(["x", "y", "both"]),
    seed=st.integers(0, 2**16),
)
def test_every_analysis_of_degenerate_activity_is_finite_or_undefined(name, shape, level, constant_side, seed):
    rng = np.random.default_rng(seed)
    random = rng.normal(size=shape).cumsum(axis=1)
    flat = np.full(shape, level)
    x = flat if constant_side in ("x", "both") else random
    y = flat if constant_side in ("y", "both") else random + rng.normal(size=shape)
    result = ANALYSES[name](x, y)  # never raises
    _no_infinities(result)


@pytest.mark.parametrize("name", sorted(ANALYSES))
def test_constant_activity_is_undefined(name):
    x = np.full((4, 6, 3), 7.0)
    result = ANALYSES[name](x, x)
    if name in ("pca", "rdm"):  # defined: no variance, and equal patterns at distance 0
        return
    if name == "decode":  # four trials, five folds: too few trials
        assert "folds" in result.undefined and np.isnan(result.position_r2)
        return
    assert _undefined(result), result


@pytest.mark.parametrize("n_conditions", [1, 2])
def test_too_few_conditions_are_undefined_not_errors(n_conditions):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_conditions, 6, 3))
    dec = analysis.decode_kinematics(x, rng.normal(size=(n_conditions, 6, 2)), dt=0.01, n_folds=2)
    assert np.isnan(dec.position_r2) and "folds" in dec.undefined
    assert np.isnan(analysis.rsa(x, x))
    assert np.isnan(analysis.participation_ratio(x[:1, :1]))


# ---------------------------------------------------------------------------
# Class 7: sweep files, every field by type
# ---------------------------------------------------------------------------

WRONG = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
    st.dates(),
    st.datetimes(),
    st.times(),
)
FIELDS = ["sweep", "sweep.experiment", "sweep.workers", "grid", "grid.value", "grid.item", "points", "points.item",
          "points.value", "base", "base.value"]  # fmt: skip


def _sweep_data(field: str, wrong) -> dict:
    data = {"sweep": {"experiment": "base.toml", "workers": 1}, "grid": {"experiment.seed": [0, 1]}}
    if field == "sweep":
        data["sweep"] = wrong
    elif field.startswith("sweep."):
        data["sweep"][field.split(".")[1]] = wrong
    elif field == "grid":
        data["grid"] = wrong
    elif field == "grid.value":
        data["grid"]["experiment.seed"] = wrong
    elif field == "grid.item":
        data["grid"]["experiment.seed"] = [0, wrong]
    elif field == "points":
        data["points"] = wrong
    elif field == "points.item":
        data["points"] = [{"lesion.silence": []}, wrong]
    elif field == "points.value":
        data["points"] = [{"lesion.silence": wrong}]
    elif field == "base":
        data["base"] = wrong
    else:
        data["base"] = {"train.max_iterations": wrong}
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(field=st.sampled_from(FIELDS), wrong=WRONG)
def test_any_value_in_any_sweep_field_is_accepted_or_refused_in_one_line(tmp_path_factory, capsys, field, wrong):
    tmp = tmp_path_factory.mktemp("sweep")
    write_config(tmp, tiny_data(), "base.toml")
    sweep = tmp / "sweep.toml"
    try:
        sweep.write_text(tomli_w.dumps(_sweep_data(field, wrong)))
    except (TypeError, ValueError):  # not writable as TOML (e.g. a top-level array of scalars)
        return
    capsys.readouterr()
    rc = main(["sweep", str(sweep), "--out", str(tmp / "out"), "--dry-run"])
    captured = capsys.readouterr()
    if rc != 0:
        assert_refused(rc, captured, str(sweep))


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('[sweep]\nexperiment = 3\n[grid]\n"experiment.seed" = [1]\n', ["experiment = 3", "string"]),
        ('[sweep]\nexperiment = ["base.toml"]\n[grid]\n"experiment.seed" = [1]\n', ["experiment", "string"]),
        ('sweep = 3\n[grid]\n"experiment.seed" = [1]\n', ["sweep = 3", "table"]),
        ('grid = [1, 2]\n[sweep]\nexperiment = "base.toml"\n', ["grid = [1, 2]", "table"]),
        ('base = 3\n[sweep]\nexperiment = "base.toml"\n[grid]\n"experiment.seed" = [1]\n', ["base = 3"]),
        ('[sweep]\nexperiment = "base.toml"\n[grid]\n"experiment.seed" = 3\n', ["'experiment.seed' = 3", "list"]),
        ('[sweep]\nexperiment = "base.toml"\n[grid]\n"experiment.seed" = [1979-05-27]\n', ["experiment.seed", "date"]),
        ('[sweep]\nexperiment = "base.toml"\nworkers = 100000000\n[grid]\n"experiment.seed" = [1]\n', ["workers"]),
    ],
)
def test_sweep_fields_of_the_wrong_type_name_the_field(tmp_path, capsys, text, needles):
    write_config(tmp_path, tiny_data(), "base.toml")
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(text)
    assert_refused(main(["sweep", str(sweep), "--out", str(tmp_path / "out")]), capsys.readouterr(), *needles)


# ---------------------------------------------------------------------------
# Class 7: recorded data for `cortexsim score`
# ---------------------------------------------------------------------------


def _model(smoke_run: Path) -> dict:
    import h5py

    with h5py.File(smoke_run / "run.h5") as f:
        return {
            "angle": f["task/params/angle"][()],
            "move_on": float(f["task/params/move_on"][0]),
            "steps": f["rate/rates"].shape[1],
            "dt": float(f["task"].attrs["dt"]),
        }


def write_nwb(path: Path, smoke_run: Path, *, units: bool | str = True, velocity=None, event_text: bool = False,
              velocity_times=None, seed: int = 0) -> Path:  # fmt: skip
    """A small recorded session (8 conditions x 3 trials) shaped like the run's task; variants are hostile.

    ``units``: False for no Units table, ``"silent"`` for units without spikes. ``velocity`` (samples, ...)
    replaces the hand velocity (default: 2-D, over the whole session);
    ``velocity_times`` its timestamps.
    """
    pynwb = pytest.importorskip("pynwb")
    rng = np.random.default_rng(seed)
    m = _model(smoke_run)
    duration = m["steps"] * m["dt"]
    conditions = np.repeat(np.arange(8), 3)
    starts = np.arange(conditions.size) * (duration + 0.5)
    nwb = pynwb.NWBFile(
        session_description="hostile test data",
        identifier="hostile",
        session_start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    nwb.add_trial_column("condition", "condition")
    nwb.add_trial_column("target_angle", "rad")
    nwb.add_trial_column("move_onset_time", "s")
    for i, (start, c) in enumerate(zip(starts, conditions)):
        onset = start + m["move_on"]
        nwb.add_trial(
            start_time=start,
            stop_time=start + duration,
            condition=f"c{c}",
            target_angle=float(m["angle"][c]),
            move_onset_time=(f"t{i}" if i == 5 else str(onset)) if event_text else onset,
        )
    if units:
        for _ in range(6):
            n_spikes = 0 if units == "silent" else 400
            nwb.add_unit(spike_times=np.sort(rng.uniform(0, starts[-1] + duration, n_spikes)))
    end = starts[-1] + duration
    times = np.arange(0, end, 0.01) if velocity_times is None else velocity_times
    values = rng.normal(size=(times.size, 2)) if velocity is None else velocity
    module = nwb.create_processing_module("behavior", "hand")
    module.add(pynwb.TimeSeries(name="hand_velocity", data=values, timestamps=times, unit="m/s"))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _session_end(smoke_run: Path) -> float:
    m = _model(smoke_run)
    return 23 * (m["steps"] * m["dt"] + 0.5) + m["steps"] * m["dt"]


def _score(smoke_run: Path, data: Path, *extra: str) -> list[str]:
    return ["score", str(smoke_run / "run.h5"), "--data", str(data), *extra]


def test_a_well_formed_recording_scores(tmp_path, capsys, smoke_run):
    assert main(_score(smoke_run, write_nwb(tmp_path / "ok.nwb", smoke_run))) == 0
    assert "vel_r2" in capsys.readouterr().out


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURES)
@given(
    case=st.sampled_from(["3-d", "short", "late", "timestamps", "no-units", "silent", "text-event"]),
    fraction=st.floats(0.1, 0.9),
    dims=st.integers(2, 4),
    seed=st.integers(0, 1000),
)
def test_malformed_recordings_are_refused_naming_the_file(tmp_path_factory, capsys, smoke_run, case, fraction, dims,
                                                          seed):  # fmt: skip
    tmp = tmp_path_factory.mktemp("nwb")
    end = _session_end(smoke_run)
    full = np.arange(0, end, 0.01)
    kwargs: dict = {"seed": seed}
    if case == "3-d":
        kwargs["velocity"] = np.zeros((full.size, 2, dims))
    elif case == "short":  # a velocity series that stops part-way through the session
        kwargs["velocity_times"] = full[: int(fraction * full.size)]
    elif case == "late":  # ... or starts part-way through
        kwargs["velocity_times"] = full[int(fraction * full.size) :]
    elif case == "timestamps":  # timestamps that do not match the samples
        kwargs["velocity"] = np.zeros((int(fraction * full.size), 2))
        kwargs["velocity_times"] = full
    elif case == "no-units":
        kwargs["units"] = False
    elif case == "silent":  # units that never fire: bits per spike are 0 / 0
        kwargs["units"] = "silent"
    else:
        kwargs["event_text"] = True
    try:
        path = write_nwb(tmp / "bad.nwb", smoke_run, **kwargs)
    except (ValueError, TypeError):  # pynwb itself refuses to write this variant
        return
    capsys.readouterr()
    line = assert_refused(main(_score(smoke_run, path)), capsys.readouterr(), str(path))
    expected = {"3-d": "shape", "short": "covers", "late": "covers", "timestamps": "timestamp",
                "no-units": "Units", "silent": "undefined", "text-event": "move_onset_time"}[case]  # fmt: skip
    assert expected in line, line


@pytest.fixture(scope="module")
def recording(smoke_run, tmp_path_factory) -> Path:
    return write_nwb(tmp_path_factory.mktemp("rec") / "rec.nwb", smoke_run)


CSV_JUNK = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(lambda t: ("recorded,model\n" + t).encode("latin-1", "replace")),
    st.text(alphabet='c0123456789,é\n\r"x', max_size=60).map(lambda t: ("recorded,model\n" + t).encode("latin-1")),
    st.lists(st.tuples(st.sampled_from([f"c{i}" for i in range(8)]), st.integers(-2, 9)), max_size=10).map(
        lambda rows: ("recorded,model\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode()
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(junk=CSV_JUNK)
def test_any_mapping_table_scores_or_is_refused_in_one_line(tmp_path_factory, capsys, smoke_run, recording, junk):
    table = tmp_path_factory.mktemp("map") / "map.csv"
    table.write_bytes(junk)
    capsys.readouterr()
    rc = main(_score(smoke_run, recording, "--mapping", str(table)))
    captured = capsys.readouterr()
    if rc != 0:
        assert_refused(rc, captured, "--mapping")
    else:
        assert all(math.isfinite(float(w)) for w in captured.out.split() if _is_float(w))


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        pytest.param("recorded,model\nc\u00e9,1\n".encode("latin-1"), ["UTF-8", "0xe9"], id="latin-1"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00junk", ["UTF-8"], id="binary"),
        pytest.param(b"recorded,model\nc0,1\x00\n", ["binary"], id="nul"),
        pytest.param(b"recorded,model\nc0\n", ["line 2", "model"], id="short-row"),
        pytest.param(b"recorded,model\nc0,1\nc0,2\n", ["'c0'", "twice"], id="duplicate"),
    ],
)
def test_mapping_tables_that_are_not_csv_text_name_the_problem(tmp_path, capsys, smoke_run, recording, data,
                                                                needles):  # fmt: skip
    table = tmp_path / "map.csv"
    table.write_bytes(data)
    assert_refused(main(_score(smoke_run, recording, "--mapping", str(table))), capsys.readouterr(), *needles)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(
    suffix=st.sampled_from([".npz", ".mat", ".nwb"]),
    junk=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b),  # a zip header, then junk
        st.binary(max_size=200).map(lambda b: b"\x89HDF\r\n\x1a\n" + b),  # an HDF5 signature, then junk
        st.text(max_size=100).map(lambda t: t.encode("latin-1", "replace")),
    ),
)
def test_junk_data_files_are_data_errors(tmp_path_factory, suffix, junk):
    from cortexsim.data import load_neural_data, load_nwb_trials
    from cortexsim.errors import CortexsimError

    path = tmp_path_factory.mktemp("junk") / f"junk{suffix}"
    path.write_bytes(junk)
    for load in (lambda: load_neural_data(path, align_event="move_on"), lambda: load_nwb_trials(path)):
        with pytest.raises(CortexsimError) as info:
            load()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "char", ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x1b"]
)
def test_an_error_quoting_a_line_break_or_control_character_is_still_one_line(tmp_path, capsys, char):
    """Whatever a message quotes (a file name the user typed), the command line prints it as one line."""
    missing = tmp_path / f"conf{char}ig.toml"
    line = assert_refused(main(["run", str(missing), "--out", str(tmp_path / "out")]), capsys.readouterr())
    assert char not in line and "conf" in line
