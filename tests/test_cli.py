"""The ``cortexsim`` command: circuit, inspect, spec, and clean errors (exit 2, one line)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from cortexsim import store
from cortexsim.anatomy import CircuitSpec
from cortexsim.cli import main

SCRIPT = Path(sys.executable).parent / "cortexsim"
BAD_FILE_KINDS = ("foreign", "truncated", "text", "newer_schema", "missing")


def assert_clean_error(rc: int, captured, *needles: str) -> str:
    """Exit status 2, nothing on stdout, exactly one 'cortexsim: error: ...' line on stderr."""
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cortexsim: error: ")
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------
# `cortexsim circuit` end to end (run once for the module)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def circuit_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    out, plot = folder / "c.h5", folder / "c.png"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["circuit", "--n-units", "1000", "--seed", "3", "--out", str(out), "--plot", str(plot)])
    return {"rc": rc, "out": out, "plot": plot, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def test_circuit_command_succeeds_and_writes_both_files(circuit_run):
    assert circuit_run["rc"] == 0, circuit_run["stderr"]
    assert circuit_run["stderr"] == ""
    assert circuit_run["out"].is_file()
    assert circuit_run["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with store.open_run(circuit_run["out"]) as f:
        assert f.attrs["seed"] == 3
        assert f["circuit"].attrs["n_units"] == 1000
        connectome = store.read_circuit(f)
    assert connectome.n_units == 1000


def test_circuit_command_prints_a_row_per_population(circuit_run, default_spec):
    lines = circuit_run["stdout"].splitlines()
    for name in default_spec.names:
        rows = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(rows) == 1, name
    assert any("seed 3" in line for line in lines)
    assert any(line.split()[:2] == ["population", "layer"] for line in lines if line.split())


def test_inspect_json(circuit_run, capsys):
    assert main(["inspect", str(circuit_run["out"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["attrs"]["schema_version"] == store.SCHEMA_VERSION == 2
    assert info["attrs"]["seed"] == 3
    assert "[circuit]" in info["attrs"]["config"] and "n_units = 1000" in info["attrs"]["config"]
    items = {item["path"]: item for item in info["items"]}
    for path in (
        "/circuit/populations",
        "/circuit/connectome/pre",
        "/circuit/connectome/post",
        "/circuit/connectome/weight_init",
        "/circuit/connectome/sign",
    ):
        assert items[path]["kind"] == "dataset"
        assert {"units", "dims"} <= set(items[path]["attrs"]), path
    assert items["/circuit/connectome/weight_init"]["attrs"]["units"] == "mV/Hz"
    assert items["/circuit"]["kind"] == "group"
    n_syn = items["/circuit"]["attrs"]["n_synapses"]
    assert items["/circuit/connectome/pre"]["shape"] == [n_syn]


def test_inspect_tree(circuit_run, capsys):
    assert main(["inspect", str(circuit_run["out"])]) == 0
    out = capsys.readouterr().out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert f"@schema_version = {store.SCHEMA_VERSION}" in out
    assert "circuit/" in out and "connectome/" in out
    weight_line = next(line for line in out.splitlines() if line.strip().startswith("weight_init "))
    assert "units=mV/Hz" in weight_line and "dims=synapse" in weight_line


def test_spec_prints_default_spec_toml(capsys, default_spec):
    assert main(["spec"]) == 0
    assert CircuitSpec.from_toml_text(capsys.readouterr().out) == default_spec


def test_spec_with_config_overrides_to_file(tmp_path, capsys, default_spec):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('[circuit.overrides]\ncut = ["IT2/3 -> IT5A"]\nsilence = ["VIP2/3"]\n')
    out = tmp_path / "spec.toml"
    assert main(["spec", "--config", str(cfg), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    expected = default_spec.with_overrides({"cut": ["IT2/3 -> IT5A"], "silence": ["VIP2/3"]})
    assert CircuitSpec.from_toml(out) == expected


def test_circuit_with_config_file(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('[experiment]\nseed = 8\n[circuit]\nn_units = 120\n[circuit.overrides]\nsilence = ["PV5B"]\n')
    out = tmp_path / "c.h5"
    assert main(["circuit", "--config", str(cfg), "--out", str(out)]) == 0
    capsys.readouterr()
    with store.open_run(out) as f:
        c = store.read_circuit(f)
        assert f.attrs["seed"] == 8
    assert c.n_units == 120 and c.spec.silenced == ("PV5B",)


def test_same_arguments_same_file_content(tmp_path, capsys):
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in paths:
        assert main(["circuit", "--n-units", "100", "--seed", "2", "--out", str(path)]) == 0
    capsys.readouterr()
    with store.open_run(paths[0]) as f, store.open_run(paths[1]) as g:
        a, b = store.read_circuit(f), store.read_circuit(g)
    assert (a.pre == b.pre).all() and (a.weight == b.weight).all()


# ---------------------------------------------------------------------------
# Errors: exit 2, one line, no output written
# ---------------------------------------------------------------------------

SPEC_WITH_UNKNOWN_POPULATION = "__spec_with_unknown_population__"

BAD_CONFIGS = [
    pytest.param("[circut]\nn_units = 100\n", ["circut", "'circuit'"], id="unknown-section"),
    pytest.param("[circuit]\nn_unit = 5\n", ["n_unit", "'n_units'"], id="unknown-key"),
    pytest.param('[circuit.overrides]\nsizes = { "PV5B" = 300 }\n', ["sizes", "'size'"], id="unknown-override-key"),
    pytest.param(
        '[circuit.overrides]\nprobability = { "IT2/3 -> PT5B" = 1.5 }\n',
        ["IT2/3 -> PT5B", "1.5", "[0, 1]"],
        id="probability-above-1",
    ),
    pytest.param(
        '[circuit.overrides]\nprobability = { "IT2/3 -> PT5B" = -0.2 }\n',
        ["IT2/3 -> PT5B", "-0.2"],
        id="probability-below-0",
    ),
    pytest.param(
        '[circuit.overrides]\nprobability = { "PT5B -> IT2/3" = 0.1 }\n',
        ["PT5B -> IT2/3"],
        id="override-missing-projection",
    ),
    pytest.param('[circuit.overrides]\ncut = ["PT5B -> IT5A"]\n', ["PT5B -> IT5A"], id="cut-missing-projection"),
    pytest.param(
        '[circuit.overrides]\nweight = { "IT2/3 -> XYZ" = 1.0 }\n', ["IT2/3 -> XYZ"], id="override-unknown-population"
    ),
    pytest.param('[circuit.overrides]\nsize = { "PV5X" = 300 }\n', ["PV5X"], id="size-unknown-population"),
    pytest.param('[circuit.overrides]\nsize = { "PV5B" = 0 }\n', ["PV5B", "size", "0"], id="zero-size"),
    pytest.param('[circuit.overrides]\nsize = { "PV5B" = -3 }\n', ["PV5B", "size", "-3"], id="negative-size"),
    pytest.param('[circuit.overrides]\ntau = { "PT5B" = 0.0 }\n', ["PT5B", "tau", "0.0"], id="zero-tau"),
    pytest.param('[circuit.overrides]\ntau = { "PT5B" = -0.02 }\n', ["PT5B", "tau", "-0.02"], id="negative-tau"),
    pytest.param('[circuit.overrides]\noutputs = ["PV5B"]\n', ["PV5B", "inhibitory"], id="inhibitory-output"),
    pytest.param('[circuit.overrides]\nsilence = ["XYZ"]\n', ["silence", "XYZ"], id="silence-unknown"),
    pytest.param("[circuit]\nn_units = 16\n", ["n_units", "16", "17"], id="fewer-units-than-populations"),
    pytest.param("[circuit]\nn_units = 0\n", ["n_units", "0"], id="zero-units"),
    pytest.param("[circuit]\nn_units = -10\n", ["n_units", "-10"], id="negative-units"),
    pytest.param("[experiment]\nseed = -1\n", ["seed", "-1"], id="negative-seed"),
    pytest.param("[circuit\nn_units = 5\n", ["not valid TOML"], id="invalid-toml"),
    pytest.param('[circuit]\nspec = "nowhere.toml"\n', ["nowhere.toml"], id="missing-spec-file"),
    pytest.param(SPEC_WITH_UNKNOWN_POPULATION, ["IT2/3 -> XYZ", "XYZ"], id="spec-projection-unknown-population"),
]


def _write_config(folder: Path, text: str, default_spec) -> Path:
    cfg = folder / "exp.toml"
    if text == SPEC_WITH_UNKNOWN_POPULATION:
        data = default_spec.to_dict()
        data["projections"].append({"pre": "IT2/3", "post": "XYZ", "probability": 0.1, "weight": 1.0})
        (folder / "bad_spec.toml").write_text(tomli_w.dumps(data))
        text = '[circuit]\nspec = "bad_spec.toml"\n'
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-output"])
@pytest.mark.parametrize(("text", "needles"), BAD_CONFIGS)
def test_bad_config_exits_2_and_writes_nothing(
    tmp_path, capsys, default_spec, reference_run_file, text, needles, existing
):
    cfg = _write_config(tmp_path, text, default_spec)
    out, plot = tmp_path / "c.h5", tmp_path / "c.png"
    if existing:
        shutil.copyfile(reference_run_file, out)
        before = out.read_bytes()
    rc = main(["circuit", "--config", str(cfg), "--out", str(out), "--plot", str(plot)])
    assert_clean_error(rc, capsys.readouterr(), *needles)
    assert not plot.exists()
    if existing:
        assert out.read_bytes() == before
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_key_suggests_the_right_one(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[circuit]\nn_unit = 5\n")
    rc = main(["circuit", "--config", str(cfg), "--out", str(tmp_path / "c.h5")])
    line = assert_clean_error(rc, capsys.readouterr(), "n_unit", "n_units")
    assert "did you mean 'n_units'" in line


# the unit count is only compared with the population count when a circuit is built
@pytest.mark.parametrize(("text", "needles"), [p for p in BAD_CONFIGS if p.id != "fewer-units-than-populations"])
def test_bad_config_in_spec_command_exits_2(tmp_path, capsys, default_spec, text, needles):
    cfg = _write_config(tmp_path, text, default_spec)
    out = tmp_path / "spec.toml"
    rc = main(["spec", "--config", str(cfg), "--out", str(out)])
    assert_clean_error(rc, capsys.readouterr(), *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(["--n-units", "16"], ["n_units", "16", "17"], id="n-units-16"),
        pytest.param(["--n-units", "5"], ["n_units", "5"], id="n-units-5"),
        pytest.param(["--n-units", "0"], ["n_units", "0"], id="n-units-0"),
        pytest.param(["--seed", "-1"], ["seed", "-1"], id="negative-seed"),
        pytest.param(["--config", "{tmp}/missing.toml"], ["missing.toml"], id="missing-config"),
        pytest.param(["--plot", "{tmp}/c.jpg"], ["--plot", "c.jpg"], id="bad-plot-suffix"),
    ],
)
def test_bad_circuit_arguments_exit_2_and_write_nothing(tmp_path, capsys, args, needles):
    out, plot = tmp_path / "c.h5", tmp_path / "c.png"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--plot" not in args:
        args += ["--plot", str(plot)]
    rc = main(["circuit", *args, "--out", str(out)])
    assert_clean_error(rc, capsys.readouterr(), *needles)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("out_name", "needles"),
    [
        pytest.param("c.txt", ["--out", "c.txt", ".h5"], id="bad-suffix"),
        pytest.param(".", ["--out", "is a folder"], id="folder"),
    ],
)
def test_bad_out_path_exits_2(tmp_path, capsys, out_name, needles):
    rc = main(["circuit", "--n-units", "50", "--out", str(tmp_path / out_name)])
    assert_clean_error(rc, capsys.readouterr(), *needles)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["foreign", "text", "truncated"])
def test_circuit_refuses_to_overwrite_a_non_run_file(make_bad_file, capsys, kind):
    path = make_bad_file(kind)
    before = path.read_bytes()
    rc = main(["circuit", "--n-units", "50", "--out", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("cortexsim: error: ") and path.name in err and "Traceback" not in err
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kind", BAD_FILE_KINDS)
@pytest.mark.parametrize("as_json", [False, True], ids=["tree", "json"])
def test_inspect_bad_file_exits_2(make_bad_file, capsys, kind, as_json):
    path = make_bad_file(kind)
    rc = main(["inspect", str(path), *(["--json"] if as_json else [])])
    assert_clean_error(rc, capsys.readouterr(), path.name)


@pytest.mark.parametrize("target", ["missing_folder/spec.toml", "."])
def test_spec_to_unwritable_path_exits_2(tmp_path, capsys, target):
    rc = main(["spec", "--out", str(tmp_path / target)])
    assert_clean_error(rc, capsys.readouterr(), "--out")


def test_scalar_override_exits_2(tmp_path, capsys):
    cfg = tmp_path / "exp.toml"
    cfg.write_text("[circuit.overrides]\nsize = 300\n")
    rc = main(["circuit", "--config", str(cfg), "--out", str(tmp_path / "c.h5")])
    assert_clean_error(rc, capsys.readouterr(), "size")


# ---------------------------------------------------------------------------
# The installed console script
# ---------------------------------------------------------------------------


def test_console_script_builds_a_circuit(tmp_path):
    assert SCRIPT.is_file(), f"console script not installed at {SCRIPT}"
    out = tmp_path / "c.h5"
    proc = subprocess.run(
        [str(SCRIPT), "circuit", "--n-units", "200", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "PT5B" in proc.stdout
    with store.open_run(out) as f:
        assert f["circuit"].attrs["n_units"] == 200


def test_console_script_bad_argument_exits_2_without_traceback(tmp_path):
    out = tmp_path / "c.h5"
    proc = subprocess.run(
        [str(SCRIPT), "circuit", "--n-units", "5", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("cortexsim: error: ") and "n_units" in proc.stderr
    assert not out.exists()
