"""What each command may write over, and the folder locks it holds while it writes.

A command replaces only a file of its own kind that it recognises positively -- a circuit file
for ``cortexsim circuit``, a circuit spec for ``cortexsim spec``, a score file for
``cortexsim score --json``, a figure for ``--plot``, its own sweep's summary for
``cortexsim sweep`` -- never its own input, never a run file or a config; anything else is
refused in one line unless ``--force`` (:func:`cortexsim.paths.output_file` does the checking,
the recognisers here say what a file is).  NWB files are recognised in :mod:`cortexsim.export`.

Every command that writes into a folder holds that folder's lock while it does
(:func:`hold_outputs`, through :func:`cortexsim.store.hold_folder`), so it never writes into a
run folder another command is writing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from . import paths, store
from .anatomy import CircuitSpec
from .errors import CortexsimError

SWEEP_FILES = ("sweep.toml", "summary.csv", "summary.h5")
"""The files ``cortexsim sweep`` writes at the top of its ``--out`` folder."""

SCORE_KEYS = ("co_bps", "psth_r2", "vel_r2", "spec")
"""Keys every JSON file ``cortexsim score --json FILE`` writes holds."""

FIGURE_SIGNATURES = {".png": (b"\x89PNG\r\n\x1a\n",), ".pdf": (b"%PDF",), ".svg": (b"<?xml", b"<svg")}
"""The first bytes of a figure of each suffix (as matplotlib writes them)."""


def _head(path: Path, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def precious(path: Path) -> str | None:
    """What ``path`` is when no command may replace it, even with ``--force``: a run file or an experiment config.

    A run file is recognised by what :func:`cortexsim.store.file_kind` reads; a config by being a
    TOML file with an ``[experiment]`` table (every experiment file has one).
    """
    if store.file_kind(path) == "run":
        return store.FILE_KIND_TEXT["run"]
    if path.suffix.lower() == ".toml":
        try:
            text = paths.read_bytes(path).decode("utf-8")
        except (CortexsimError, UnicodeDecodeError):
            return None
        if any(line.strip().startswith("[experiment]") for line in text.splitlines()):
            return "an experiment config"
    return None


def circuit_kind(path: Path) -> str | None:
    """None for a circuit file (``cortexsim circuit`` may replace it), else what the file is."""
    kind = store.file_kind(path)
    if kind == "circuit":
        return None
    return store.FILE_KIND_TEXT[kind] + (" (it holds more than a circuit)" if kind == "run" else "")


def spec_kind(path: Path) -> str | None:
    """None for a circuit spec TOML (``cortexsim spec`` may replace it), else what the file is."""
    try:
        CircuitSpec.from_toml_text(paths.read_bytes(path).decode("utf-8"), str(path))
    except (CortexsimError, UnicodeDecodeError, RecursionError, ValueError, TypeError):
        return "not a circuit spec (an experiment config or another file)"
    return None


def score_kind(path: Path) -> str | None:
    """None for a JSON file ``cortexsim score --json FILE`` wrote, else what the file is."""
    try:
        data = json.loads(paths.read_bytes(path).decode("utf-8"))
    except (CortexsimError, UnicodeDecodeError, RecursionError, ValueError):
        return "not a score file written by cortexsim score"
    if isinstance(data, dict) and all(k in data for k in SCORE_KEYS):
        return None
    return "not a score file written by cortexsim score"


def figure_kind(path: Path) -> str | None:
    """None for a figure of the file's suffix (PNG, PDF, SVG), else what the file is."""
    head = _head(path).lstrip()
    if any(head.startswith(sig) for sig in FIGURE_SIGNATURES.get(path.suffix.lower(), ())):
        return None
    return f"not a {path.suffix.lstrip('.').upper() or 'figure'} figure"


def check_sweep_folder(out: Path, sweep_text: str, force: bool = False) -> None:
    """Refuse a sweep ``--out`` that holds another sweep's (or anything else's) summary, unless ``force``.

    The folder's ``sweep.toml`` must hold this sweep's text; ``summary.csv`` and ``summary.h5``
    are this command's only with it (a ``summary.h5`` must be a sweep summary).

    Raises
    ------
    CortexsimError
        Naming the folder and the fix (another ``--out``, or ``--force``).
    """
    if force or not out.is_dir():
        return
    fix = "choose another --out, or pass --force to replace its summary (its run folders are kept)"
    own = out / "sweep.toml"
    if os.path.lexists(own):
        try:
            text = paths.read_bytes(own, what="sweep file").decode("utf-8")
        except (CortexsimError, UnicodeDecodeError):
            text = None
        if text != sweep_text:
            raise CortexsimError(f"--out {out}: holds another sweep ({own} differs from this sweep file); {fix}")
    for name in SWEEP_FILES[1:]:
        path = out / name
        if not os.path.lexists(path):
            continue
        if not os.path.lexists(own):
            raise CortexsimError(f"--out {out}: holds a {name} that no sweep.toml explains; {fix}")
        if name.endswith(".h5") and store.file_kind(path) != "sweep summary":
            raise CortexsimError(f"--out {out}: {name} is {store.FILE_KIND_TEXT[store.file_kind(path)]}; {fix}")


@contextlib.contextmanager
def hold_outputs(folders: Iterable[str | Path | None], command: str) -> Iterator[None]:
    """Hold the lock of every folder a command writes into, for as long as it writes.

    The deepest folders are taken first: :func:`cortexsim.store.hold_folder` refuses a folder
    whose ancestor is held, so an outer folder taken first would refuse the inner one.

    Parameters
    ----------
    folders : iterable of path or None
        The folders written into (None entries are skipped, repeats taken once).
    command : str
        The command line, shown to whoever finds a folder held.

    Raises
    ------
    CortexsimError
        A folder (or one above it) is held by another live process; nothing is left held.
    """
    wanted = sorted({Path(os.path.abspath(f)) for f in folders if f is not None}, key=lambda p: -len(p.parts))
    with contextlib.ExitStack() as stack:
        for folder in wanted:
            stack.enter_context(store.hold_folder(folder, command))
        yield
