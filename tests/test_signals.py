"""The signals that stop a command (issue 32, classes 3, 9 and 10), as a user, a script and a scheduler send them.

Every command, however it was started -- SIGINT inherited ignored under ``nohup`` or a script's
``&`` included -- stops within seconds on SIGINT, SIGTERM or SIGHUP with one line and status
128 + the signal (130, 143, 129), also while the package is still being imported.  The fast
tests slow one step of a command down in a child process (so the signal lands while it works,
independent of run files and the machine's speed); the slow ones stop real runs and sweeps.
Also here: a figure that cannot be written is one line (a full disk), and a sweep point that
ends without a whole run is reported failed.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from runfiles import differences
from tiny import tiny_config

from cortexsim import cli, interrupts, plots, sweep
from cortexsim.errors import CortexsimError

ROOT = Path(__file__).resolve().parent.parent
EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
LINE = {
    "SIGINT": "cortexsim: interrupted",
    "SIGTERM": "cortexsim: stopped by SIGTERM",
    "SIGHUP": "cortexsim: stopped by SIGHUP",
}


def start(argv: list[str], ignore_sigint: bool = False, cwd: Path = ROOT) -> subprocess.Popen:
    """``argv`` in its own process group (stdout and stderr apart); with ``ignore_sigint`` it inherits SIGINT ignored.

    Whatever the test process itself was handed (pytest started with ``&`` passes SIGINT
    ignored to its children), the child gets exactly the disposition asked for.
    """
    disposition = signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
    )


def slowed(module: str, name: str, argv: list[str]) -> list[str]:
    """A child that runs the ``cortexsim`` command ``argv`` with ``module.name`` replaced by a 60-s wait.

    The replacement prints ``WORKING`` first, so the test knows the command is under way.
    """
    script = textwrap.dedent(
        f"""
        import sys, time
        import {module} as target

        def slow(*args, **kwargs):
            print("WORKING", flush=True)
            time.sleep(60)

        target.{name} = slow
        try:
            from cortexsim.__main__ import main
        except ImportError:  # before issue 32: the command's entry was cortexsim.cli:main
            from cortexsim.cli import main
        sys.exit(main({argv!r}))
        """
    )
    return [sys.executable, "-c", script]


def stop(proc: subprocess.Popen, signame: str, marker: str | None = "WORKING", delay: float = 0.0) -> tuple[str, str]:
    """Send ``signame`` to ``proc``'s group after ``marker`` appears on stdout (after ``delay`` s): (stdout, stderr).

    The command must end within 20 s of the signal.
    """
    lines = []
    if marker is not None:
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                break
        else:
            pytest.fail(f"the command ended before {marker!r}:\n{''.join(lines)}{proc.stderr.read()}")
    time.sleep(delay)
    os.killpg(proc.pid, getattr(signal, signame))
    sent = time.monotonic()
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"still running 20 s after {signame}:\n{''.join(lines)}{out}\n{err}")
    assert time.monotonic() - sent < 20
    return "".join(lines) + out, err


def assert_stopped(proc: subprocess.Popen, out: str, err: str, signame: str) -> None:
    """Status 128 + the signal, one line on stderr naming it, no traceback anywhere."""
    assert proc.returncode == EXIT[signame], (proc.returncode, out, err)
    assert "Traceback" not in out + err and "Exception ignored" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(LINE[signame]), err


# -- class 3: Ctrl-C in every command, however it was started ------------------------------------

COMMANDS = {
    "export": ("cortexsim.export", "check_fraction", ["export", "RUN.h5", "--nwb", "out.nwb"]),
    "compare": ("cortexsim.cli", "_run_config", ["compare", "RUN.h5"]),
    "sweep": ("cortexsim.sweep", "load_sweep", ["sweep", "sweep.toml", "--out", "out"]),
    "inspect": ("cortexsim.store", "describe", ["inspect", "RUN.h5"]),
    "spiking": ("cortexsim.cli", "_run_config", ["spiking", "RUN.h5"]),
    "score": ("cortexsim.score", "ScoreSpec", ["score", "RUN.h5", "--data", "x.nwb"]),
    "circuit": ("cortexsim.preflight", "check_circuit", ["circuit", "--out", "c.h5"]),
}


@pytest.fixture
def inputs(tmp_path, reference_run_file) -> Path:
    """A working folder holding the files COMMANDS name (RUN.h5, sweep.toml), so their checks pass."""
    import shutil

    shutil.copyfile(reference_run_file, tmp_path / "RUN.h5")
    (tmp_path / "base.toml").write_text(tiny_config().to_toml())
    (tmp_path / "sweep.toml").write_text('[sweep]\nexperiment = "base.toml"\n[grid]\n"experiment.seed" = [1, 2]\n')
    return tmp_path


@pytest.mark.parametrize("ignored", [False, True], ids=["sigint-default", "sigint-inherited-ignored"])
@pytest.mark.parametrize("command", ["export", "sweep", "compare"])
def test_ctrl_c_stops_every_command_with_one_line_even_when_sigint_was_inherited_ignored(command, ignored, inputs):
    module, name, argv = COMMANDS[command]
    proc = start(slowed(module, name, argv), ignore_sigint=ignored, cwd=inputs)
    out, err = stop(proc, "SIGINT")
    assert_stopped(proc, out, err, "SIGINT")


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("ignored", [False, True])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_stop_signal_stops_every_command(command, ignored, signame, inputs):
    module, name, argv = COMMANDS[command]
    proc = start(slowed(module, name, argv), ignore_sigint=ignored, cwd=inputs)
    out, err = stop(proc, signame)
    assert_stopped(proc, out, err, signame)


def entry(how: str) -> list[str]:
    """The ``cortexsim`` command as a user starts it: the console script or ``python -m cortexsim``."""
    if how == "script":
        script = Path(sys.executable).parent / "cortexsim"
        if not script.exists():
            pytest.skip("no cortexsim console script next to this Python")
        return [str(script)]
    return [sys.executable, "-m", "cortexsim"]


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("delay", [0.3, 0.8])
@pytest.mark.parametrize("how", ["script", "module"])
def test_a_signal_while_the_package_is_imported_is_one_line(how, delay, signame, tmp_path):
    """The imports take seconds; a signal in them ends the command at once, with one line, no traceback.

    (The first few tens of milliseconds, while Python itself starts, are beyond any handler.)
    """
    proc = start([*entry(how), "inspect", str(tmp_path / "none.h5")])
    time.sleep(delay)
    out, err = stop(proc, signame, marker=None)
    if proc.returncode == 2 and "Traceback" not in err:  # the imports were done already: an ordinary refusal
        return
    assert_stopped(proc, out, err, signame)


def test_a_ctrl_c_swallowed_by_a_weakref_callback_is_raised_again_and_not_printed(capsys):
    """Python only prints a KeyboardInterrupt raised in ``__del__`` and carries on; under handled_signals it is
    not printed and stops the command at the next instruction."""

    class Collected:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)

    before = {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS}
    with interrupts.handled_signals():
        thing = Collected()
        with pytest.raises(KeyboardInterrupt):
            del thing
            for _ in range(100):
                time.sleep(0.01)
        assert interrupts.exit_status() == 130 and interrupts.stopped_by() == "interrupted"
    assert "Exception ignored" not in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS} == before


@pytest.mark.slow
@pytest.mark.parametrize("ignored", [False, True])
@pytest.mark.parametrize("delay", np.linspace(0.0, 1.5, 7).round(2).tolist())
def test_ctrl_c_during_a_real_export_leaves_no_nwb_file(smoke_run, tmp_path, delay, ignored):
    """A real export, interrupted at many moments: either it finished (whole file, status 0) or it stopped
    with one line and left nothing behind."""
    nwb = tmp_path / "twin.nwb"
    proc = start([*entry("module"), "export", str(smoke_run / "run.h5"), "--nwb", str(nwb)], ignore_sigint=ignored)
    time.sleep(2.0 + delay)
    out, err = stop(proc, "SIGINT", marker=None)
    if proc.returncode == 0:
        assert nwb.exists() and "wrote" in out and "Traceback" not in err
        return
    assert_stopped(proc, out, err, "SIGINT")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- class 10: SIGTERM and SIGHUP get Ctrl-C's treatment ---------------------------------------------


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("command", ["export", "compare"])
def test_sigterm_and_sighup_stop_a_command_with_one_line_and_128_plus_the_signal(command, signame, inputs):
    module, name, argv = COMMANDS[command]
    proc = start(slowed(module, name, argv), cwd=inputs)
    out, err = stop(proc, signame)
    assert_stopped(proc, out, err, signame)


TRAINING = {"train": {"max_iterations": 150, "log_every": 10, "checkpoint_every": 1000}}


@pytest.mark.slow  # two tiny runs and a resume: 30-90 s on 2 busy cores
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_during_training_keep_the_iteration_release_the_lock_and_resume_exactly(signame, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(tiny_config(**TRAINING).to_toml())
    assert cli.main(["run", str(config), "--out", str(tmp_path / "whole")]) == 0

    out = tmp_path / "cut"
    proc = start([sys.executable, "-m", "cortexsim", "run", str(config), "--out", str(out)])
    output, err = stop(proc, signame, marker="iter    60/")
    assert_stopped(proc, output, err, signame)
    assert "rerun `cortexsim run" in err and "checkpoint saved" in output
    assert not (out / ".cortexsim.lock").exists()
    with h5py.File(out / "run.h5") as f:
        assert "stages" not in f or "train" not in f["stages"]
        assert 60 <= f["training/checkpoint"].attrs["iteration"] < 150

    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    differ, compared = differences(tmp_path / "whole" / "run.h5", out / "run.h5")
    assert compared > 100 and [d for d in differ if d != "/checksums"] == []


# -- class 10: a disk that fills while figures are written ---------------------------------------------

WRITE_ERRORS = [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO, errno.EFBIG]


@pytest.mark.parametrize("code", WRITE_ERRORS, ids=[errno.errorcode[c] for c in WRITE_ERRORS])
def test_a_figure_that_cannot_be_written_is_one_line_and_leaves_nothing(code, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def full(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"half a figure")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Figure, "savefig", full)
    with pytest.raises(CortexsimError) as caught:
        plots.save(Figure(), tmp_path / "figures" / "f.png")
    assert str(caught.value).startswith(f"{tmp_path / 'figures' / 'f.png'}: cannot write the figure")
    assert os.strerror(code) in str(caught.value) and "\n" not in str(caught.value)
    assert list((tmp_path / "figures").iterdir()) == []


def test_circuit_plot_on_a_full_disk_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    def full(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full)
    status = cli.main(
        ["circuit", "--n-units", "60", "--out", str(tmp_path / "c.h5"), "--plot", str(tmp_path / "c.png")]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("cortexsim: error: ") and "No space left on device" in err and "free some disk space" in err


# -- class 9: a sweep point that fails at run time -----------------------------------------------------------


def _point(tmp_path: Path) -> tuple[str, Path]:
    return tiny_config().to_toml(), tmp_path / "point"


@pytest.mark.parametrize(
    "failure",
    [SystemExit(3), None, "half"],
    ids=["raises-SystemExit", "returns-having-run-nothing", "leaves-a-half-run"],
)
def test_a_point_that_ends_without_a_whole_run_is_failed(failure, tmp_path, monkeypatch, reference_run_file):
    """Whatever a point's run does -- raise anything, or return without every stage -- only a whole run is done."""
    import shutil

    text, folder = _point(tmp_path)

    def run_experiment(config, out, **kwargs):
        if failure == "half":  # a run file, but not this config's finished run
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(reference_run_file, Path(out) / "run.h5")
        elif failure is not None:
            raise failure
        return Path(out) / "run.h5"

    monkeypatch.setattr("cortexsim.pipeline.run_experiment", run_experiment)
    result = sweep.run_point(text, str(folder))
    assert result["status"] == "failed", result
    assert result["error"] and (folder / "error.txt").exists()


def test_the_summary_and_exit_status_mark_a_point_failed_that_was_reported_done(tmp_path):
    """A point reported done whose run is not there (removed, damaged) is failed in summary.csv and summary.h5."""
    base = tmp_path / "base.toml"
    base.write_text(tiny_config().to_toml())
    path = tmp_path / "sweep.toml"
    path.write_text('[sweep]\nexperiment = "base.toml"\n[grid]\n"experiment.seed" = [1, 2]\n')
    spec = sweep.load_sweep(path)
    out = tmp_path / "out"
    points = spec.points(out)
    for p in points:
        p.folder.mkdir(parents=True)
    (points[1].folder / "run.h5").write_bytes(b"not a run file")
    status = {p.name: {"status": "done", "error": "", "seconds": 1.0} for p in points}
    rows = sweep.gather(spec, points, status, out, log=lambda line: None)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "no run file" in rows[0]["error"] and "not a readable HDF5 file" in rows[1]["error"]
    text = (out / "summary.csv").read_text()
    assert text.count(",failed,") == 2
    with h5py.File(out / "summary.h5") as f:
        assert [s.decode() for s in f["points"]["status"]] == ["failed", "failed"]
