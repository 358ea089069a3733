"""The paths every command reads and writes (issue 32, classes 1, 4, 5 and 8).

1. A command replaces only a file of its own kind that it recognises positively, never its
   own input, a run file or a config (never, not even with ``--force``); anything else unless ``--force``.
4. ``[experiment] name`` becomes a folder: only a safe set of characters and a length cap.
5. Inputs must be regular files (no FIFO, device, folder, link loop), text is read with a cap,
   and every path argument is checked (length, writability) before anything is computed.
8. Every command that writes into a folder takes its lock.

Each refusal is one line ``cortexsim: error: ...``, exit status 2, and leaves every file as it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import SMOKE, tiny_config

from cortexsim import paths, store
from cortexsim.cli import main
from cortexsim.config import Config
from cortexsim.errors import ConfigError, CortexsimError

ROOT = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def assert_refused(rc: int, captured, *needles: str) -> str:
    """Exit status 2, exactly one line ``cortexsim: error: ...`` on stderr, containing ``needles``."""
    assert rc == 2, (rc, captured.err)
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cortexsim: error: "), captured.err
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders, the target for links)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = os.readlink(p).encode()
        elif p.is_file():
            out[str(p.relative_to(folder))] = p.read_bytes()
        else:
            out[str(p.relative_to(folder))] = None
    return out


def finished_run(path: Path, reference: Path) -> Path:
    """A run file with a recorded stage and metrics (what `cortexsim run` leaves), from the reference circuit."""
    shutil.copyfile(reference, path)
    with store.open_for_update(path) as f:
        store.write_metrics(f, {"rate_position_r2": 0.97}, "headline numbers")
        store.write_stage(f, "train", key="0" * 16, seconds=1.0, groups=["metrics"], metrics=["rate_position_r2"])
    return path


def foreign_file(path: Path, kind: str, reference: Path) -> Path:
    """A file at ``path`` that no command but its own may replace."""
    if kind == "run":
        finished_run(path, reference)
    elif kind == "hdf5":
        with h5py.File(path, "w") as f:
            f["data"] = [1, 2, 3]
    elif kind == "nwb-not-ours":
        with h5py.File(path, "w") as f:
            f.attrs["neurodata_type"] = "NWBFile"
            f.create_dataset("general/source_script", data="my_lab_pipeline.py").attrs["file_name"] = "lab.py"
    elif kind == "config":
        path.write_text(tiny_config().to_toml())
    elif kind == "text":
        path.write_text("my notes\n")
    elif kind == "json":
        path.write_text('{"mine": 1}\n')
    else:
        raise AssertionError(kind)
    return path


# ---------------------------------------------------------------------------
# Class 1: never write over something that is not the command's to replace
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["run", "hdf5", "nwb-not-ours", "text"])
def test_circuit_out_never_replaces_a_file_it_did_not_write(tmp_path, capsys, reference_run_file, kind):
    target = foreign_file(tmp_path / "target.h5", kind, reference_run_file)
    before = snapshot(tmp_path)
    rc = main(["circuit", "--n-units", "100", "--out", str(target)])
    assert_refused(rc, capsys.readouterr(), "--out", "left alone")
    assert snapshot(tmp_path) == before
    if kind == "run":  # a run file is never replaced, not even with --force
        rc = main(["circuit", "--n-units", "100", "--out", str(target), "--force"])
        assert_refused(rc, capsys.readouterr(), "--out", "no command replaces")
        assert snapshot(tmp_path) == before
        return
    assert main(["circuit", "--n-units", "100", "--out", str(target), "--force"]) == 0  # explicit: replaced
    assert store.file_kind(target) == "circuit"


def test_circuit_out_replaces_a_circuit_file(tmp_path, reference_run_file):
    target = tmp_path / "c.h5"
    shutil.copyfile(reference_run_file, target)
    assert main(["circuit", "--n-units", "100", "--out", str(target)]) == 0
    with store.open_run(target) as f:
        assert int(f["circuit"].attrs["n_units"]) == 100


@pytest.mark.parametrize("kind", ["config", "text"])
def test_spec_out_never_replaces_a_config(tmp_path, capsys, reference_run_file, kind):
    target = foreign_file(tmp_path / "exp.toml", kind, reference_run_file)
    before = snapshot(tmp_path)
    fix = "no command replaces" if kind == "config" else "--force"
    assert_refused(main(["spec", "--out", str(target)]), capsys.readouterr(), "left alone", fix)
    if kind == "config":  # a config is never replaced, not even with --force
        assert_refused(main(["spec", "--out", str(target), "--force"]), capsys.readouterr(), "no command replaces")
        assert snapshot(tmp_path) == before
    # the config given is the command's input: refused even with --force
    cfg = foreign_file(tmp_path / "mine.toml", "config", reference_run_file)
    before = snapshot(tmp_path)
    assert_refused(main(["spec", "--config", str(cfg), "--out", str(cfg), "--force"]), capsys.readouterr(), "input")
    assert snapshot(tmp_path) == before
    # a spec file is replaced
    spec = tmp_path / "spec.toml"
    assert main(["spec", "--out", str(spec)]) == 0 and main(["spec", "--out", str(spec)]) == 0


@pytest.mark.parametrize("kind", ["run", "hdf5", "nwb-not-ours", "text", "input"])
def test_export_nwb_never_replaces_a_file_export_did_not_write(tmp_path, capsys, reference_run_file, kind):
    run = finished_run(tmp_path / "run.h5", reference_run_file)
    if kind == "input":  # the run file itself, named .nwb
        target = tmp_path / "run.nwb"
        shutil.copyfile(run, target)
        run = target
    else:
        target = foreign_file(tmp_path / "x.nwb", kind, reference_run_file)
    before = snapshot(tmp_path)
    rc = main(["export", str(run), "--nwb", str(target), *(["--force"] if kind in ("input", "run") else [])])
    needle = {"input": "input", "run": "no command replaces"}.get(kind, "left alone")  # run: even with --force
    assert_refused(rc, capsys.readouterr(), "--nwb", needle)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["config", "json", "run"])
def test_score_json_never_replaces_a_file_score_did_not_write(tmp_path, capsys, reference_run_file, kind):
    run = finished_run(tmp_path / "run.h5", reference_run_file)
    data = tmp_path / "rec.nwb"
    data.write_bytes(b"x")
    target = foreign_file(tmp_path / "s.json", kind, reference_run_file)
    before = snapshot(tmp_path)
    rc = main(["score", str(run), "--data", str(data), "--json", str(target)])
    assert_refused(rc, capsys.readouterr(), "--json", "left alone")
    assert snapshot(tmp_path) == before


def test_run_and_compare_never_replace_someone_elses_summary(tmp_path, capsys, reference_run_file, monkeypatch):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "summary.md").write_text("# my lab notes\n")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(tiny_config().to_toml())
    run = finished_run(out / "run.h5", reference_run_file)
    monkeypatch.setattr("cortexsim.cli._run_config", lambda *a, **k: tiny_config())  # as if trained
    before = snapshot(tmp_path)
    for argv in (["run", str(cfg), "--out", str(out)], ["compare", str(run)]):
        assert_refused(main(argv), capsys.readouterr(), "summary.md", "left alone")
        assert snapshot(tmp_path) == before


def test_circuit_plot_never_replaces_a_file_that_is_not_a_figure(tmp_path, capsys):
    plot = tmp_path / "fig.png"
    plot.write_text("not a PNG\n")
    before = snapshot(tmp_path)
    rc = main(["circuit", "--n-units", "100", "--out", str(tmp_path / "c.h5"), "--plot", str(plot)])
    assert_refused(rc, capsys.readouterr(), "--plot", "left alone")
    assert snapshot(tmp_path) == before


def _sweep_file(folder: Path, seeds: list[int]) -> Path:
    (folder / "base.toml").write_text(tiny_config().to_toml())
    path = folder / f"sweep{len(seeds)}.toml"
    path.write_text(f'[sweep]\nexperiment = "base.toml"\n[grid]\n"experiment.seed" = {seeds}\n')
    return path


@pytest.mark.parametrize("holds", ["another-sweep", "summary-without-sweep", "foreign-summary-h5"])
def test_a_second_sweep_never_replaces_another_sweeps_summary(tmp_path, capsys, monkeypatch, holds):
    from cortexsim import sweep

    def ran(*args, **kwargs):
        raise AssertionError("the sweep ran")

    monkeypatch.setattr(sweep, "run_sweep", ran)
    out = tmp_path / "out"
    out.mkdir()
    first = _sweep_file(tmp_path, [0, 1])
    if holds == "another-sweep":
        (out / "sweep.toml").write_text(first.read_text())
        (out / "summary.csv").write_text("point,status\na,done\n")
    elif holds == "summary-without-sweep":
        (out / "summary.csv").write_text("my,table\n")
    else:
        (out / "sweep.toml").write_text(_sweep_file(tmp_path, [0, 1, 2]).read_text())
        with h5py.File(out / "summary.h5", "w") as f:
            f["x"] = 1
    second = _sweep_file(tmp_path, [0, 1, 2])
    before = snapshot(tmp_path)
    assert_refused(main(["sweep", str(second), "--out", str(out)]), capsys.readouterr(), "--out", "--force")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------
# Class 4: names that become paths
# ---------------------------------------------------------------------------

UNSAFE_NAMES = st.one_of(
    st.sampled_from([".", "..", "/", "/tmp/x", "a/b", "../escape", "a\x00b", "", " ", "-x", ".hidden", "a" * 300]),
    st.text(min_size=1, max_size=30).filter(lambda s: not paths.FOLDER_NAME.fullmatch(s)),
    st.text(alphabet="abc/.", min_size=1, max_size=12).filter(lambda s: "/" in s or s.startswith(".")),
    st.text(alphabet="ab", min_size=paths.FOLDER_NAME_MAX + 1, max_size=400),
)

SAFE_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,40}", fullmatch=True)


@FAST
@given(name=UNSAFE_NAMES)
def test_unsafe_experiment_names_are_refused_at_load(name):
    with pytest.raises(ConfigError, match="experiment.name"):
        Config.from_dict({"experiment": {"name": name}})


@FAST
@given(name=SAFE_NAMES)
def test_safe_experiment_names_stay_inside_results(name, tmp_path_factory):
    from cortexsim import pipeline

    config = Config.from_dict({"experiment": {"name": name}})
    root = tmp_path_factory.mktemp("results")
    folder = pipeline.run_folder(config, root)
    assert folder.resolve().parent.parent == root.resolve() and folder.parent.name == name


@pytest.mark.parametrize("name", ["..", ".", "/tmp/elsewhere", "a/b", "a" * 300, "a\x00b"])
def test_run_with_an_unsafe_name_creates_nothing(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "exp.toml"
    cfg.write_text(tomli_w.dumps({**_plain(tiny_config().to_dict()), "experiment": {"name": name, "seed": 0}}))
    before = snapshot(tmp_path)
    assert_refused(main(["run", str(cfg)]), capsys.readouterr(), "experiment.name")
    assert snapshot(tmp_path) == before


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(x) for k, x in d.items() if x is not None}
    if isinstance(d, tuple):
        return list(d)
    return d


# ---------------------------------------------------------------------------
# Class 5: inputs that are not regular files, long paths, outputs checked first
# ---------------------------------------------------------------------------


def _not_regular(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        path = tmp_path / "in.fifo"
        os.mkfifo(path)
    elif kind == "loop":
        path = tmp_path / "loop_a"
        os.symlink(tmp_path / "loop_b", path)
        os.symlink(path, tmp_path / "loop_b")
    elif kind == "dangling":
        path = tmp_path / "dangling"
        os.symlink(tmp_path / "nowhere", path)
    elif kind == "folder":
        path = tmp_path / "folder"
        path.mkdir()
    elif kind == "zero":
        path = Path("/dev/zero")
    else:
        raise AssertionError(kind)
    return path


def _input_commands(tmp_path: Path, bad: Path) -> list[list[str]]:
    """Every command given ``bad`` as an input: config, spec named by a config, sweep file, run file, data file."""
    cfg = tmp_path / "spec_cfg.toml"
    cfg.write_text(f'[circuit]\nspec = "{bad}"\n')
    nwb = tmp_path / "bad_data.nwb"  # the same input under the name score expects
    os.symlink(bad, nwb)
    (tmp_path / "d.nwb").write_bytes(b"x")
    return [
        ["run", str(bad), "--out", str(tmp_path / "out")],
        ["circuit", "--config", str(bad), "--out", str(tmp_path / "c.h5")],
        ["spec", "--config", str(cfg)],
        ["sweep", str(bad), "--out", str(tmp_path / "sw")],
        ["inspect", str(bad)],
        ["compare", str(bad)],
        ["spiking", str(bad)],
        ["export", str(bad), "--nwb", str(tmp_path / "x.nwb")],
        ["score", str(bad), "--data", str(tmp_path / "d.nwb")],
        ["score", str(tmp_path / "none.h5"), "--data", str(nwb)],
    ]


@pytest.mark.parametrize("kind", ["loop", "dangling", "folder", "zero"])
def test_not_regular_inputs_are_refused_in_one_line(tmp_path, capsys, kind):
    bad = _not_regular(tmp_path, kind)
    for argv in _input_commands(tmp_path, bad):
        before = snapshot(tmp_path)
        assert_refused(main(argv), capsys.readouterr())
        assert snapshot(tmp_path) == before, argv


def test_a_fifo_as_any_input_is_refused_without_hanging(tmp_path):
    """A FIFO nobody writes to: every command refuses it at once (run in a child process, which would hang)."""
    bad = _not_regular(tmp_path, "fifo")
    argvs = _input_commands(tmp_path, bad)
    code = (
        "import sys, contextlib, io\nfrom cortexsim.cli import main\n"
        f"for argv in {argvs!r}:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        rc = main(argv)\n"
        "    lines = err.getvalue().strip().splitlines()\n"
        "    assert rc == 2 and len(lines) == 1 and lines[0].startswith('cortexsim: error: '), (argv, rc, lines)\n"
        "    assert 'FIFO' in lines[0], lines[0]\n"
        "print('all refused')\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a command hung on a FIFO input")
    assert done.returncode == 0 and "all refused" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("kind", ["fifo", "loop"])
def test_not_regular_data_files_are_refused(tmp_path, capsys, reference_run_file, monkeypatch, kind):
    run = finished_run(tmp_path / "run.h5", reference_run_file)
    monkeypatch.setattr("cortexsim.cli._run_config", lambda *a, **k: tiny_config())  # as if trained
    bad = _not_regular(tmp_path, kind)
    nwb = tmp_path / "bad.nwb"
    os.symlink(bad, nwb)
    before = snapshot(tmp_path)
    for argv in (["compare", str(run), "--data", str(bad)], ["score", str(run), "--data", str(nwb)]):
        assert_refused(main(argv), capsys.readouterr(), "--data")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["loop", "fifo", "folder"])
def test_a_config_naming_a_data_file_that_is_not_regular_is_refused(tmp_path, capsys, kind):
    bad = _not_regular(tmp_path, kind)
    cfg = tmp_path / "exp.toml"
    data = _plain(tiny_config().to_dict())
    data["compare"] = {**data["compare"], "data": str(bad)}
    cfg.write_text(tomli_w.dumps(data))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[sweep]\nexperiment = "exp.toml"\n[grid]\n"experiment.seed" = [0, 1]\n')
    before = snapshot(tmp_path)
    for argv in (["run", str(cfg), "--out", str(tmp_path / "o")], ["sweep", str(sweep), "--out", str(tmp_path / "s")]):
        assert_refused(main(argv), capsys.readouterr(), "compare.data")
        assert snapshot(tmp_path) == before, argv


def test_text_inputs_are_read_with_a_cap(tmp_path, capsys):
    big = tmp_path / "big.toml"
    with open(big, "wb") as fh:
        fh.truncate(paths.TEXT_MAX_BYTES + 1)  # sparse: 16 MiB of NUL bytes on paper
    assert_refused(main(["run", str(big), "--out", str(tmp_path / "o")]), capsys.readouterr(), "MiB")
    with pytest.raises(CortexsimError, match="larger than"):
        paths.read_bytes(big, limit=10)


LONG = "x" * 300


def _long_path_commands(tmp_path: Path, run: Path) -> list[list[str]]:
    long = tmp_path / LONG
    return [
        ["run", str(SMOKE), "--out", str(long)],
        ["sweep", str(_sweep_file(tmp_path, [0, 1])), "--out", str(long)],
        ["circuit", "--n-units", "100", "--out", str(long) + ".h5"],
        ["circuit", "--n-units", "100", "--out", str(tmp_path / "c.h5"), "--plot", str(long) + ".png"],
        ["spec", "--out", str(long) + ".toml"],
        ["inspect", str(long) + ".h5"],
        ["compare", str(run), "--figures", str(long)],
        ["compare", str(run), "--data", str(long) + ".npz"],
        ["export", str(run), "--nwb", str(long) + ".nwb"],
        ["score", str(run), "--data", str(tmp_path / "d.nwb"), "--json", str(long) + ".json"],
        ["score", str(run), "--data", str(long) + ".nwb"],
        ["run", str(tmp_path / LONG / "exp.toml")],
    ]


def test_a_300_character_path_is_refused_in_every_path_argument(tmp_path, capsys, reference_run_file, monkeypatch):
    run = finished_run(tmp_path / "run.h5", reference_run_file)
    monkeypatch.setattr("cortexsim.cli._run_config", lambda *a, **k: tiny_config())  # as if trained
    (tmp_path / "d.nwb").write_bytes(b"x")
    for argv in _long_path_commands(tmp_path, run):
        before = snapshot(tmp_path)
        line = assert_refused(main(argv), capsys.readouterr())
        assert "300" in line or "long" in line or "no such" in line, (argv, line)
        assert snapshot(tmp_path) == before, argv


@FAST
@given(name=st.text(alphabet=st.characters(blacklist_characters="/\x00"), min_size=1, max_size=400))
def test_check_path_accepts_exactly_what_the_file_system_takes(name):
    try:
        encoded = os.fsencode(name)
    except UnicodeError:
        encoded = None
    if encoded is None or len(encoded) > paths.NAME_MAX:
        with pytest.raises(CortexsimError):
            paths.check_path(name, "--out")
    else:
        assert paths.check_path(name, "--out") == Path(name)


def test_an_immutable_run_file_is_refused_before_computing(tmp_path, capsys, reference_run_file, monkeypatch):
    from cortexsim import pipeline

    run = finished_run(tmp_path / "run.h5", reference_run_file)
    if subprocess.run(["chattr", "+i", str(run)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:

        def computed(*args, **kwargs):
            raise AssertionError("computed")

        monkeypatch.setattr(pipeline, "compare_stage", computed)
        monkeypatch.setattr(pipeline, "run_spiking", computed)
        monkeypatch.setattr("cortexsim.cli._run_config", lambda *a, **k: tiny_config())
        for argv in (["compare", str(run)], ["spiking", str(run)]):
            assert_refused(main(argv), capsys.readouterr(), "read-only")
    finally:
        subprocess.run(["chattr", "-i", str(run)], check=True)


# ---------------------------------------------------------------------------
# Class 8: every command that writes into a folder takes its lock
# ---------------------------------------------------------------------------


def test_commands_refuse_a_folder_another_command_holds(tmp_path, capsys, reference_run_file, monkeypatch):
    folder = tmp_path / "run_folder"
    folder.mkdir()
    run = finished_run(tmp_path / "run.h5", reference_run_file)
    data = tmp_path / "rec.nwb"
    data.write_bytes(b"x")
    monkeypatch.setattr("cortexsim.cli._run_config", lambda *a, **k: tiny_config())  # as if trained, with a twin
    commands = [
        ["circuit", "--n-units", "100", "--out", str(folder / "run.h5")],
        ["circuit", "--n-units", "100", "--out", str(tmp_path / "c.h5"), "--plot", str(folder / "c.png")],
        ["spec", "--out", str(folder / "spec.toml")],
        ["export", str(run), "--nwb", str(folder / "run.nwb")],
        ["score", str(run), "--data", str(data), "--json", str(folder / "score.json")],
        ["compare", str(run), "--figures", str(folder / "figures")],
        ["spiking", str(run), "--figures", str(folder / "figures")],
    ]
    with store.hold_folder(folder, "cortexsim run exp.toml --out run_folder"):
        for argv in commands:
            before = snapshot(tmp_path)
            assert_refused(main(argv), capsys.readouterr(), "in use", "cortexsim run")
            assert snapshot(tmp_path) == before, argv
    assert main(commands[0]) == 0  # released: the same command goes through
    assert not (folder / store.LOCK_NAME).exists() and not (tmp_path / store.LOCK_NAME).exists()


def test_circuit_into_a_folder_a_run_process_holds_is_refused(tmp_path):
    """A real second process holds the folder (as `cortexsim run` does): circuit --out into it is refused."""
    folder = tmp_path / "results"
    code = (
        "import sys, time\nfrom cortexsim import store\n"
        f"with store.hold_folder({str(folder)!r}, 'cortexsim run'):\n"
        "    print('held', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            [sys.executable, "-m", "cortexsim", "circuit", "--n-units", "100", "--out", str(folder / "run.h5")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and "in use" in done.stderr, done
        assert not (folder / "run.h5").exists()
    finally:
        holder.kill()
        holder.wait()


def test_hold_outputs_holds_nested_folders_and_releases_them(tmp_path):
    from cortexsim import outputs

    inner = tmp_path / "a" / "figures"
    with outputs.hold_outputs([tmp_path / "a", inner, None, inner, tmp_path / "b"], "cortexsim test"):
        for folder in (tmp_path / "a", inner, tmp_path / "b"):
            assert (folder / store.LOCK_NAME).exists()
    assert not list(tmp_path.rglob(store.LOCK_NAME))
    with store.hold_folder(inner, "cortexsim run"):  # an inner folder held elsewhere: refused, nothing left held
        with pytest.raises(CortexsimError, match="in use"):
            with outputs.hold_outputs([tmp_path / "a", inner], "cortexsim compare"):
                pass
        assert not (tmp_path / "a" / store.LOCK_NAME).exists()
