"""The HDF5 run file: schema v2, owned by this module alone.

A run file explains itself to anyone with h5py: every dataset carries ``units``,
``dims`` (comma-separated axis names) and ``description`` attributes, and the root
records where the numbers came from (config, seed, versions, code commit).

Layout (see ``docs/schema.md`` for every path)::

    /                       attrs: schema_version, cortexsim_version, created_utc, seed,
                                   config (TOML text), git_commit, *_version
    /circuit                attrs: spec (TOML text), n_units, n_synapses
    /circuit/populations    table: name, layer, cell_class, subtype, start, stop
    /circuit/connectome/    pre, post, sign, weight_init (per synapse) [, weight_trained after training]
    /circuit/inputs/<group> bool per unit: receives that task input group
    /circuit/output_mask    bool per unit: read by the motor readout

Writes are atomic: everything goes to a temporary file in the same folder that is
renamed over the target only when complete (:func:`open_for_update`), so a crash
leaves either the old file or the new one.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import integrity, paths
from ._version import __version__
from .anatomy import CircuitSpec
from .circuit import Connectome, Population
from .config import ANN_ARCHITECTURES, Config, config_from_text, parse_toml
from .effector import PLANTS
from .errors import ConfigError, CortexsimError, RunFileError, cannot_write
from .model_id import ModelId
from .spiking.twin import TwinResult
from .tasks import TrialBatch
from .train import TrainState

SCHEMA_VERSION = 2
"""Version of the layout written by this module."""

FILE_KIND = "cortexsim run"

COPY_MARGIN = 16 << 20
"""Free disk space (bytes) kept beyond a run file's size when it is copied to be updated."""

LOCK_NAME = ".cortexsim.lock"
"""The lock file :func:`hold_folder` keeps in a folder while a command writes into it."""

_STR = h5py.string_dtype("utf-8")
_POPULATION_DTYPE = np.dtype(
    [
        ("name", _STR),
        ("layer", _STR),
        ("cell_class", _STR),
        ("subtype", _STR),
        ("start", np.int64),
        ("stop", np.int64),
    ]
)


# ---------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    """Commit of the cortexsim source tree (``+dirty`` when modified), or ``"unknown"``."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


RUN_FILE_TEXT = (
    "cortexsim run file: a six-layer M1 circuit and what was simulated on it. "
    "Every dataset has 'units', 'dims' and 'description' attributes."
)
"""The root ``description`` attribute of a run file."""


def provenance(config_text: str, seed: int, derived_from: str | Path | None = None) -> dict[str, Any]:
    """Root attributes recording where a run file came from.

    ``derived_from``: the run file whose finished stages seeded this one (its absolute path is recorded).
    """
    extra = {} if derived_from is None else {"derived_from": str(Path(derived_from).resolve())}
    return {
        "description": RUN_FILE_TEXT,
        **extra,
        "file_kind": FILE_KIND,
        "schema_version": SCHEMA_VERSION,
        "cortexsim_version": __version__,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": int(seed),
        "config": config_text,
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        **{f"{pkg}_version": _package_version(pkg) for pkg in ("numpy", "scipy", "h5py", "brian2", "matplotlib")},
    }


# ---------------------------------------------------------------------------
# Opening and atomic writing
# ---------------------------------------------------------------------------


def check_run_file(f: h5py.File, path: str | Path) -> None:
    """Raise :class:`RunFileError` unless ``f`` is a cortexsim run file this version reads."""
    if "schema_version" not in f.attrs:
        raise RunFileError(
            f"{path}: not a cortexsim run file (no 'schema_version' attribute at the root); "
            f"it was written by another program"
        )
    version = _attr(f, "schema_version", int, path)
    raw = f.attrs["schema_version"]
    if not isinstance(raw, (int, np.integer)):  # 2.0 is not a schema this code wrote
        shown = _short(raw.item() if isinstance(raw, np.generic) else raw)
        raise RunFileError(f"{path}: /@schema_version must be an integer, is {shown}; the file was altered")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"{path}: written with run-file schema {version}, but this cortexsim "
            f"({__version__}) reads schema <= {SCHEMA_VERSION}; upgrade cortexsim"
        )
    if version < 1:
        raise RunFileError(f"{path}: unknown run-file schema version {version} (/@schema_version)")
    if version < SCHEMA_VERSION:
        raise RunFileError(
            f"{path}: written with run-file schema {version} (before cortexsim 0.2 named the initial and the trained "
            f"weights apart); rerun the experiment with this cortexsim (cortexsim run --force), or read it with "
            f"cortexsim 0.1"
        )


def _open_h5(path: Path, mode: str) -> h5py.File:
    paths.input_file(path, error=RunFileError)  # missing, a FIFO (h5py would hang), a device, a link loop
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        reason = str(exc).split("(")[0].strip() or "unreadable"
        raise RunFileError(
            f"{path}: not a readable HDF5 file (truncated, corrupt or another format: {reason})"
        ) from None


def open_run(path: str | Path, verify: bool = True) -> h5py.File:
    """Open a run file read-only after checking that it is one, is complete and is intact.

    Checks the schema (:func:`check_run_file`), the layout every reader relies on
    (:func:`check_layout`) and, with ``verify``, every dataset's Fletcher-32 checksum
    (:func:`verify_checksums`; once per version of the file in this process).

    Raises
    ------
    RunFileError
        The file is missing, not HDF5, truncated, foreign, from a newer schema, misses a
        group or attribute a reader needs, holds a malformed attribute, or a corrupted byte.
    """
    path = Path(path)
    f = _open_h5(path, "r")
    try:
        check_run_file(f, path)
        check_layout(f, path)
        if verify:
            verify_checksums(f, path)
    except BaseException:
        f.close()
        raise
    return f


def file_kind(path: str | Path) -> str:
    """What an existing file is, for a command deciding whether it may replace it (reads attributes only).

    Returns
    -------
    str
        ``"circuit"`` (a cortexsim run file holding ``/circuit`` and nothing computed from it: no
        ``/stages``, ``/training``, ``/task``, ``/rate``, ... -- what ``cortexsim circuit`` writes),
        ``"run"`` (a cortexsim run file with more), ``"sweep summary"``, ``"nwb export"`` (an NWB
        file ``cortexsim export`` wrote), ``"nwb"`` (another NWB file), ``"hdf5"`` (another HDF5
        file) or ``"other"`` (not HDF5, or unreadable).
    """
    try:
        f = h5py.File(paths.input_file(path), "r")
    except (OSError, CortexsimError):
        return "other"
    with f:
        try:
            kind = attr_text(f.attrs.get("file_kind", ""))
            if kind == SWEEP_FILE_KIND:
                return "sweep summary"
            if kind == FILE_KIND or "schema_version" in f.attrs:
                computed = {"stages", "training", "task", "rate", "ann", "spiking", "spikes", "analysis", "metrics"}
                return "circuit" if kind == FILE_KIND and "circuit" in f and not computed & set(f) else "run"
            if attr_text(f.attrs.get("neurodata_type", "")) == "NWBFile":
                script = f.get("general/source_script")
                mark = attr_text(script.attrs.get("file_name", "")) if isinstance(script, h5py.Dataset) else ""
                return "nwb export" if mark == NWB_EXPORT_MARK else "nwb"
        except (OSError, KeyError, TypeError, ValueError):
            return "hdf5"
    return "hdf5"


NWB_EXPORT_MARK = "cortexsim/export.py"
"""``general/source_script``'s ``file_name`` in every NWB file ``cortexsim export`` writes: how it is recognised."""

FILE_KIND_TEXT = {
    "circuit": "a cortexsim circuit file",
    "run": "a cortexsim run file",
    "sweep summary": "a cortexsim sweep summary",
    "nwb export": "an NWB file written by cortexsim export",
    "nwb": "an NWB file that cortexsim export did not write",
    "hdf5": "an HDF5 file that cortexsim did not write",
    "other": "not a file cortexsim wrote",
}
""":func:`file_kind`'s answers in words, for messages."""


@contextmanager
def open_for_update(
    path: str | Path, provenance_attrs: dict[str, Any] | None = None, replace: bool = False
) -> Iterator[h5py.File]:
    """Write a run file atomically.

    With ``provenance_attrs`` a new file is started (replacing any existing run
    file at ``path`` only once the new one is complete); without, the existing run
    file is copied and updated -- after checking that its disk has room for the copy
    (:func:`check_space_for_copy`).  Either way the work happens in a temporary file in
    the same folder, renamed into place on success and removed on any error.

    Parameters
    ----------
    path : str or Path
        The run file.
    provenance_attrs : dict, optional
        Root attributes of a new file (see :func:`provenance`).
    replace : bool, optional
        With ``provenance_attrs``: replace whatever file is at ``path`` (the caller checked that it
        may, e.g. ``cortexsim circuit --force``); by default only a readable run file is replaced.

    Yields
    ------
    h5py.File
        Writable handle on the temporary file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.exists() and not (replace and provenance_attrs is not None):
        open_run(path).close()  # never overwrite a foreign or corrupt file
    elif provenance_attrs is None:
        raise RunFileError(f"{path}: no such run file to update")
    f = None
    if provenance_attrs is None:
        check_space_for_copy(path)
    try:
        if provenance_attrs is None:
            shutil.copyfile(path, tmp)
            f = h5py.File(tmp, "r+")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = h5py.File(tmp, "w")
            f.attrs.update(provenance_attrs)
        yield f
        integrity.write_checksums(f)  # last: every attribute and object as written
        f.flush()
        f.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        # this process wrote every byte (checksummed as written): the next open need not re-read them
        _VERIFIED.add(_version(path))
    except BaseException:
        if f is not None:
            f.close()
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# Folder locks
# ---------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot, from /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` still runs on this host (and is the same process, where its start time is known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    now = _process_start(pid)
    return start is None or now is None or now == start


def read_lock(folder: str | Path) -> dict[str, Any] | None:
    """The holder recorded in ``folder``'s lock file (pid, host, command, started_utc), or None without one.

    A lock file that cannot be parsed is returned as ``{"pid": 0, "host": "", "command": "?", "garbled": True}``.
    """
    lock = Path(folder) / LOCK_NAME
    try:
        text = lock.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return {"pid": 0, "host": "", "command": "?", "garbled": True}
    try:
        info = json.loads(text)
        if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
            raise ValueError
    except ValueError:
        return {"pid": 0, "host": "", "command": "?", "garbled": True}
    return info


def lock_holder(folder: str | Path) -> dict[str, Any] | None:
    """The live holder of ``folder``'s lock, or None when it is free or its lock is stale.

    A lock is stale when it names this host and a process that no longer runs (or a
    process with another start time: its PID was reused).  A lock from another host is
    taken as live; a garbled one as live for 10 s after it was written, stale after.
    """
    info = read_lock(folder)
    if info is None:
        return None
    if info.get("garbled"):
        try:
            age = time.time() - (Path(folder) / LOCK_NAME).stat().st_mtime
        except OSError:
            return None
        return info if age < 10 else None
    if info.get("host") != platform.node():
        return info
    return info if _alive(int(info["pid"]), info.get("start")) else None


def _describe_holder(info: dict[str, Any], lock: Path) -> str:
    if info.get("garbled"):
        return f"a process whose lock file {lock} is being written"
    return (
        f"`{info.get('command', '?')}` (pid {info.get('pid')} on {info.get('host', '?')}, since "
        f"{info.get('started_utc', '?')})"
    )


@contextmanager
def hold_folder(folder: str | Path, command: str, log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold ``folder`` for one command: a lock file that a second command on the same folder refuses on.

    Creates ``folder`` (and its parents) and ``folder/.cortexsim.lock`` atomically
    (``O_CREAT | O_EXCL``) holding this process's PID, start time, host, the command
    and the start time; removes it on exit, including on Ctrl-C.  A stale lock (its
    process is gone from this host) is taken over with a notice.  A folder inside a
    held folder (a sweep's point) counts as held.

    Parameters
    ----------
    folder : str or Path
    command : str
        The command line, shown to whoever finds the folder held.
    log : callable, optional
        Receives the notice of a stale lock taken over (default: standard error).

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    CortexsimError
        The folder, or one above it, is held by a live process; the message names it.
    """
    import sys

    folder = Path(folder)
    say = log or (lambda line: print(line, file=sys.stderr))
    for above in [folder, *folder.absolute().parents]:
        holder = lock_holder(above) if above != folder else None
        if holder is not None:
            raise CortexsimError(
                f"{folder}: in use: {above} is held by {_describe_holder(holder, above / LOCK_NAME)}; "
                f"wait for it to finish"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CortexsimError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    lock = folder / LOCK_NAME
    info = {
        "pid": os.getpid(),
        "start": _process_start(os.getpid()),
        "host": platform.node(),
        "command": command,
        "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(folder)
            if holder is not None:
                raise CortexsimError(
                    f"{folder}: in use by {_describe_holder(holder, lock)}; wait for it to finish, "
                    f"or if that process is gone, remove {lock}"
                ) from None
            stale = read_lock(folder) or {}
            grave = lock.with_name(f"{LOCK_NAME}.{os.getpid()}.stale")
            try:
                os.rename(lock, grave)  # atomic: of two takers only one gets the stale lock
            except FileNotFoundError:
                continue
            grave.unlink(missing_ok=True)
            say(
                f"cortexsim: note: {folder} was locked by {_describe_holder(stale, lock)}, which is no longer "
                f"running; taking the folder over"
            )
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(info) + "\n")
        break
    else:  # pragma: no cover - five takers racing for one stale lock
        raise CortexsimError(f"{folder}: could not take the lock {lock}; try again")
    try:
        yield lock
    finally:
        current = read_lock(folder)
        if current is not None and current.get("pid") == info["pid"] and current.get("host") == info["host"]:
            lock.unlink(missing_ok=True)


def check_space_for_copy(path: Path, margin: int = COPY_MARGIN) -> None:
    """Refuse to update ``path`` by copying when its disk lacks room for the copy (its size plus ``margin``).

    Raises
    ------
    RunFileError
        Naming the folder, the space needed and the space free.
    """
    size = path.stat().st_size
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    needed = size + margin + size // 20
    if free < needed:
        raise RunFileError(
            f"{path.parent}: not enough free disk space to update {path.name}: the update writes a copy of it "
            f"({_mib(size)} MiB) and needs about {_mib(needed)} MiB free, but {_mib(free)} MiB are; free some space"
        )


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


# ---------------------------------------------------------------------------
# Checking what a file holds
# ---------------------------------------------------------------------------

_KINDS = {int: "a whole number", float: "a number", str: "text"}


def _reader(what: str) -> Callable:
    """Decorate a reader ``fn(f, ...)`` so that a missing or malformed part of the file is a one-line RunFileError."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(f: h5py.File, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(f, *args, **kwargs)
            except CortexsimError:
                raise
            except (KeyError, ValueError, TypeError, IndexError, AttributeError, OSError) as exc:
                name = getattr(f, "filename", "run file")
                text = " ".join(str(exc).split()) or type(exc).__name__
                raise RunFileError(
                    f"{name}: {what} is incomplete or malformed ({text}); rerun the stage that "
                    f"writes it (with --force if need be)"
                ) from None

        return wrapper

    return decorate


def _attr(obj: Any, name: str, kind: type, path: str | Path | None = None) -> Any:
    """Attribute ``name`` of an HDF5 object as ``kind`` (int, float, str); a one-line RunFileError if missing or bad."""
    path = path or obj.file.filename
    where = f"{path}@{name}" if obj.name == "/" else f"{path}:{obj.name}@{name}"
    try:
        value = obj.attrs[name]
    except KeyError:
        raise RunFileError(
            f"{where}: the attribute is missing; the file is incomplete (rerun the stage that "
            f"writes it, with --force if need be)"
        ) from None
    except Exception as exc:  # h5py cannot decode it
        raise RunFileError(f"{where}: unreadable attribute ({type(exc).__name__}: {exc})") from None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if kind is str:
        if isinstance(value, (bytes, np.bytes_)):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise RunFileError(f"{where}: expected UTF-8 text, got undecodable bytes") from None
        if isinstance(value, str):
            return str(value)
    elif not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating)):
        if kind is float:
            return float(value)
        if float(value).is_integer():
            return int(value)
    raise RunFileError(f"{where}: expected {_KINDS[kind]}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ROOT_TEXT = ("config", "created_utc", "cortexsim_version", "git_commit")
_STAGE_ATTRS = {"key": str, "seconds": float, "order": int, "finished_utc": str, "groups": str, "metrics": str}


def check_layout(f: h5py.File, path: str | Path) -> None:
    """Raise :class:`RunFileError` if ``f`` lacks a part a reader needs, or holds one of the wrong kind.

    The parts, their dtypes, shapes and attributes are those of :data:`cortexsim.integrity.SCHEMA`
    (:func:`cortexsim.integrity.structure_damage`); also checks the root's provenance, that each
    dataset's ``dims`` matches its shape, and that the groups a stage recorded in ``/stages`` say
    it wrote are there. Groups that are absent are not required (a run file grows stage by stage).
    """
    try:
        _check_layout(f, path)
    except RunFileError:
        raise
    except Exception as exc:  # h5py fails on damaged metadata
        raise RunFileError(f"{path}: damaged file structure ({type(exc).__name__}: {exc})") from None


def _check_layout(f: h5py.File, path: str | Path) -> None:
    if attr_text(f.attrs.get("file_kind", FILE_KIND)) == FILE_KIND:
        for name in _ROOT_TEXT:
            _attr(f, name, str, path)
        _attr(f, "seed", int, path)
        try:
            parse_toml(_attr(f, "config", str, path), f"{path}@config")
        except ConfigError as exc:
            raise RunFileError(f"{exc}; the file is damaged") from None
    for damage in integrity.structure_damage(f, str(path)):
        raise RunFileError(damage.text)
    if "stages" in f:
        for name, g in f["stages"].items():
            for attr, kind in _STAGE_ATTRS.items():
                _attr(g, attr, kind, path)
            try:
                groups = json.loads(_attr(g, "groups", str, path))
                json.loads(_attr(g, "metrics", str, path))
            except json.JSONDecodeError:
                raise RunFileError(f"{path}:/stages/{name}: malformed 'groups' or 'metrics' attribute") from None
            listed = json.loads(_attr(g, "metrics", str, path))
            kept = f["metrics"].attrs if "metrics" in f else {}
            lost = [m for m in listed if isinstance(m, str) and m not in kept] if isinstance(listed, list) else []
            if lost:
                raise RunFileError(
                    f"{path}: stage '{name}' is recorded as finished but /metrics@{lost[0]} it wrote is missing; "
                    f"the file was altered -- restore a copy or rerun it with --force"
                )
            for group in groups if isinstance(groups, list) else []:
                if str(group) not in f:
                    raise RunFileError(
                        f"{path}: stage '{name}' is recorded as finished but /{group} is missing; rerun it with --force"
                    )

    def dims(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and "dims" in obj.attrs:
            text = attr_text(obj.attrs["dims"])
            n = len(text.split(",")) if text else 0
            if n != obj.ndim:
                raise RunFileError(
                    f"{path}: /{name} has {obj.ndim} dimensions, but its 'dims' attribute names "
                    f"{n} ({text!r}); the file is damaged"
                )

    f.visititems(dims)


_VERIFIED: set[tuple] = set()
VERIFY_BLOCK = 32 << 20
"""Bytes read at a time when checking a dataset's checksums."""


def _version(path: str | Path) -> tuple | None:
    """What identifies one version of a file (path, device, inode, size, modification time)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def verify_checksums(f: h5py.File, path: str | Path) -> int:
    """Read every checksummed dataset so that HDF5 checks its Fletcher-32 sums; returns how many were checked.

    Then compares every attribute and object with ``/checksums``
    (:func:`cortexsim.integrity.checksum_damage`) and checks the values of the datasets
    :data:`cortexsim.integrity.SCHEMA` bounds (:func:`cortexsim.integrity.value_damage`).
    Done once per version of the file (path, inode, size, modification time) in this process.

    Raises
    ------
    RunFileError
        Naming the first dataset whose data do not match their checksum (a corrupted byte), the
        first attribute or object changed, added or deleted since it was written, or the first
        dataset holding a value it may not (NaN, out of range).
    """
    key = _version(path)
    if key is not None and key in _VERIFIED:
        return 0
    checked = []

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Dataset) or not obj.fletcher32 or obj.size == 0:
            return
        try:
            row = max(1, obj.nbytes // max(obj.shape[0], 1))
            step = max(1, VERIFY_BLOCK // row)
            for start in range(0, obj.shape[0], step):
                obj[start : start + step]
        except Exception as exc:
            raise RunFileError(
                f"{path}: /{name} is corrupt: its data do not match their checksum "
                f"({str(exc).split('(')[-1].rstrip(')') or type(exc).__name__}); the file was damaged "
                f"after it was written -- restore a copy or rerun with --force"
            ) from None
        checked.append(name)

    try:
        f.visititems(visit)
    except RunFileError:
        raise
    except Exception as exc:
        raise RunFileError(f"{path}: damaged file structure ({type(exc).__name__}: {exc})") from None
    for damage in integrity.checksum_damage(f, str(path)) + integrity.value_damage(f, str(path)):
        raise RunFileError(damage.text)
    if key is not None:
        _VERIFIED.add(key)
    return len(checked)


def _checksum(data: np.ndarray) -> dict[str, bool]:
    """``fletcher32=True`` for the datasets HDF5 can checksum (not scalars, empty arrays or variable-length strings)."""
    ok = data.ndim >= 1 and data.size > 0 and not h5py.check_string_dtype(data.dtype) and data.dtype.kind != "O"
    return {"fletcher32": True} if ok else {}


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def write_array(
    group: h5py.Group, name: str, data: Any, *, units: str, dims: Sequence[str] | str, description: str, **attrs: Any
) -> h5py.Dataset:
    """Write one dataset with its ``units``, ``dims`` and ``description`` attributes.

    Parameters
    ----------
    group : h5py.Group
    name : str
        Dataset name inside ``group`` (replaced if present).
    data : array-like
    units : str
        Physical units (``"s"``, ``"mV"``, ``"Hz"``, ``"m"``, ``"1"`` for dimensionless).
    dims : sequence of str or str
        One axis name per dimension, e.g. ``("condition", "time", "unit")``.
    description : str
        One sentence saying what the numbers are.
    """
    data = np.asarray(data)
    dims = tuple(dims.split(",")) if isinstance(dims, str) else tuple(dims)
    if len(dims) != data.ndim:
        raise ValueError(f"{name}: dims {dims} do not match the data's {data.ndim} dimensions")
    if name in group:
        del group[name]
    big = data.nbytes > 1 << 20 and data.ndim >= 1 and data.dtype.kind in "iufb"
    kwargs = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if big else {}
    ds = group.create_dataset(name, data=data, **kwargs, **_checksum(data))
    ds.attrs.update({"units": units, "dims": ",".join(dims), "description": description, **attrs})
    return ds


def write_circuit(f: h5py.File, connectome: Connectome) -> None:
    """Write ``/circuit`` (populations, connectome, input and output masks) as sampled, before training.

    The synapse magnitudes go to ``/circuit/connectome/weight_init``, which nothing changes
    afterwards; the trained ones to ``weight_trained`` (:func:`write_trained_weight`).
    """
    if "circuit" in f:
        del f["circuit"]
    g = f.create_group("circuit")
    g.attrs.update(
        {
            "spec": connectome.spec.to_toml(),
            "n_units": connectome.n_units,
            "n_synapses": connectome.n_synapses,
            "description": "The sampled circuit: populations (unit ranges) and signed synapses. "
            "Synapse k goes from unit pre[k] to unit post[k] with signed weight "
            "sign[k] * weight_init[k] as sampled and sign[k] * weight_trained[k] after "
            "training; the attribute 'spec' holds the anatomy as TOML.",
        }
    )
    table = np.array(
        [(p.name, p.spec.layer, p.spec.cell_class, p.spec.subtype, p.start, p.stop) for p in connectome.populations],
        dtype=_POPULATION_DTYPE,
    )
    ds = g.create_dataset("populations", data=table, **_checksum(table))
    ds.attrs.update(
        {
            "units": "1",
            "dims": "population",
            "description": "One row per population; units start:stop (stop exclusive).",
        }
    )
    c = g.create_group("connectome")
    c.attrs["description"] = "Synapses as parallel columns (one entry per synapse)."
    write_array(c, "pre", connectome.pre, units="1", dims="synapse", description="Index of the presynaptic unit.")
    write_array(c, "post", connectome.post, units="1", dims="synapse", description="Index of the postsynaptic unit.")
    write_array(
        c,
        "weight_init",
        connectome.weight,
        units="mV/Hz",
        dims="synapse",
        description="Weight magnitude (>= 0) as sampled, before training: change of the postsynaptic "
        "input per Hz of presynaptic rate. Signed weight = sign * weight_init.",
    )
    write_array(
        c,
        "sign",
        connectome.sign[connectome.pre],
        units="1",
        dims="synapse",
        description="+1 excitatory, -1 inhibitory (Dale's law: the presynaptic unit's class).",
    )
    ins = g.create_group("inputs")
    ins.attrs["description"] = "Per task input group: which units receive it."
    for group, mask in connectome.input_masks.items():
        write_array(
            ins, group, mask, units="1", dims="unit", description=f"True for units that receive the '{group}' input."
        )
    write_array(
        g,
        "output_mask",
        connectome.output_mask,
        units="1",
        dims="unit",
        description="True for units read by the motor readout.",
    )


def write_trained_weight(f: h5py.File, weight: np.ndarray) -> None:
    """Write ``/circuit/connectome/weight_trained``: the synapse magnitudes training ended with.

    Parameters
    ----------
    weight : ndarray, shape (synapses,)
        Magnitudes (mV/Hz, >= 0) in the synapse order of ``/circuit/connectome``.
    """
    c = f["circuit/connectome"]
    if weight.shape != c["pre"].shape:
        raise ValueError(f"trained weights have shape {weight.shape}, the connectome {c['pre'].shape}")
    if "weight_trained" in c:
        del c["weight_trained"]
    write_array(
        c,
        "weight_trained",
        weight,
        units="mV/Hz",
        dims="synapse",
        description="Weight magnitude (>= 0) after training (the best validation parameters). Signed "
        "weight = sign * weight_trained; a [lesion] is applied on load, never stored here.",
    )


def attr_text(value: Any) -> str:
    """An HDF5 string attribute as ``str`` (h5py may return ``bytes``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@_reader("/circuit")
def read_circuit(f: h5py.File, weights: str = "init") -> Connectome:
    """Read ``/circuit`` back into a :class:`~cortexsim.circuit.Connectome`.

    Parameters
    ----------
    weights : str
        ``"init"`` (the magnitudes as sampled, ``weight_init``) or ``"trained"`` (``weight_trained``).

    Raises
    ------
    RunFileError
        No ``/circuit``, or ``"trained"`` asked of a file whose circuit is not trained yet.
    """
    if "circuit" not in f:
        raise RunFileError(f"{f.filename}: has no /circuit group")
    if weights not in ("init", "trained"):
        raise ValueError(f"weights: {weights!r}; use 'init' or 'trained'")
    if weights == "trained" and "weight_trained" not in f["circuit/connectome"]:
        raise RunFileError(
            f"{f.filename}: the circuit is not trained yet (no /circuit/connectome/weight_trained); "
            f"run the train stage (cortexsim run)"
        )
    g = f["circuit"]
    spec = CircuitSpec.from_toml_text(attr_text(g.attrs["spec"]), where=f"{f.filename}:/circuit@spec")
    table = g["populations"][()]
    pops = tuple(
        Population(spec.population(attr_text(row["name"])), int(row["start"]), int(row["stop"])) for row in table
    )
    c = g["connectome"]
    pre = c["pre"][()]
    n_units = int(g.attrs["n_units"])
    sign = np.ones(n_units, np.int8)
    for p in pops:
        if p.spec.cell_class == "I":
            sign[p.start : p.stop] = -1
    inputs = {name: ds[()] for name, ds in g["inputs"].items()}
    return Connectome(spec, pops, pre, c["post"][()], c[f"weight_{weights}"][()], sign, inputs, g["output_mask"][()])


@dataclass(frozen=True)
class TrainedRate:
    """The trained rate network as a run file stores it.

    Attributes
    ----------
    connectome : Connectome
        The circuit with its trained magnitudes (``weight_trained``).
    params : dict of str to ndarray
        Every parameter group of :class:`~cortexsim.rate.RateNetwork` (``w`` dense, (post, pre), mV/Hz).
    attrs : dict
        The ``/rate`` attributes (transfer, dt, lesion label, kernel, ...).
    """

    connectome: Connectome
    params: dict[str, np.ndarray]
    attrs: dict[str, Any]


@_reader("/rate")
def read_trained_rate(f: h5py.File) -> TrainedRate:
    """The trained rate network: ``/circuit`` with ``weight_trained`` and the ``/rate`` parameters.

    Raises
    ------
    RunFileError
        The file holds no trained rate network (no ``/rate`` or no ``weight_trained``).
    """
    if "rate" not in f:
        raise RunFileError(f"{f.filename}: has no /rate group (train the rate network first: cortexsim run)")
    connectome = read_circuit(f, weights="trained")
    g = f["rate"]
    w = np.zeros((connectome.n_units, connectome.n_units))
    np.add.at(w, (connectome.post, connectome.pre), connectome.weight)
    params = {
        "w": w,
        "w_in": g["W_in"][()],
        "b": g["b"][()],
        "w_out": g["W_out"][()],
        "b_out": g["b_out"][()],
        "x0": g["x0"][()],
    }
    return TrainedRate(connectome, params, {k: _jsonable(val) for k, val in g.attrs.items()})


# ---------------------------------------------------------------------------
# Describing a file
# ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return [_jsonable(x) for x in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(x) for x in value]
    return value


def _dtype_text(dtype: np.dtype) -> str:
    if dtype.names:
        fields = ", ".join(f"{n}: {'str' if h5py.check_string_dtype(dtype[n]) else dtype[n]}" for n in dtype.names)
        return f"table({fields})"
    if h5py.check_string_dtype(dtype):
        return "str"
    return str(dtype)


def describe(path: str | Path, damaged: bool = False) -> dict[str, Any]:
    """The tree of a run file as plain data: every group and dataset with attributes.

    Parameters
    ----------
    path : str or Path
    damaged : bool
        Describe a run file that fails :func:`open_run`'s checks too (``cortexsim inspect``): the
        result then lists every problem found under ``"damage"``. A file that is not a run file,
        or not HDF5, is refused either way.

    Returns
    -------
    dict
        ``{"file", "attrs", "items": [{"path", "kind", "shape", "dtype", "attrs"}, ...]}``, and
        ``"damage": [{"path", "text"}, ...]`` when ``damaged`` and the file fails a check.
    """
    damage: list[integrity.Damage] = []
    try:
        f = open_run(path)
    except RunFileError as exc:
        if not damaged:
            raise
        f = _open_h5(Path(path), "r")
        try:
            check_run_file(f, path)
        except BaseException:
            f.close()
            raise
        damage = integrity.all_damage(f, str(path), str(exc))
    with f:
        items: list[dict[str, Any]] = []

        def visit(name: str, obj: Any) -> None:
            entry: dict[str, Any] = {"path": "/" + name, "attrs": {k: _jsonable(v) for k, v in obj.attrs.items()}}
            if isinstance(obj, h5py.Dataset):
                entry.update(kind="dataset", shape=list(obj.shape), dtype=_dtype_text(obj.dtype))
            else:
                entry["kind"] = "group"
            items.append(entry)

        f.visititems(visit)
        info = {"file": str(path), "attrs": {k: _jsonable(v) for k, v in f.attrs.items()}, "items": items}
    if damage:
        info["damage"] = [{"path": d.path, "text": d.text} for d in damage]
    return info


def format_tree(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe`'s result."""
    lines = [f"{info['file']}"]
    for key, value in info["attrs"].items():
        text = str(value)
        if "\n" in text:
            text = f"<{text.count(chr(10)) + 1} lines of text>"
        lines.append(f"  @{key} = {text}")
    damage = info.get("damage", [])
    lines += integrity.marks(damage, "/", "  ")
    for item in info["items"]:
        depth = item["path"].count("/")
        pad = "  " * depth
        name = item["path"].rsplit("/", 1)[-1]
        if item["kind"] == "group":
            lines.append(f"{pad}{name}/")
        else:
            a = item["attrs"]
            shape = "×".join(str(s) for s in item["shape"]) or "scalar"
            lines.append(
                f"{pad}{name}  [{shape}] {item['dtype']}  units={a.get('units', '?')}  dims={a.get('dims', '?')}"
            )
        desc = item["attrs"].get("description")
        if desc:
            lines.append(f"{pad}  # {desc}")
        for key, value in item["attrs"].items():
            if key in ("units", "dims", "description"):
                continue
            text = str(value)
            if "\n" in text or len(text) > 80:
                text = f"<{len(text)} characters>"
            lines.append(f"{pad}  @{key} = {text}")
        lines += integrity.marks(damage, item["path"], pad + "  ")
    tree = {"/", *(item["path"] for item in info["items"])}
    return "\n".join(lines + integrity.marks(damage, None, "", tree))


# ---------------------------------------------------------------------------
# Task, rate model, training, metrics
# ---------------------------------------------------------------------------

PARAM_UNITS = {
    "w": ("mV/Hz", "post,pre"),
    "w_in": ("mV", "unit,input"),
    "b": ("mV", "unit"),
    "w_out": ("m/Hz", "output,readout_unit"),
    "b_out": ("m", "output"),
    "x0": ("mV", "unit"),
}
ARM_READOUT_UNITS = {"w_out": ("1/Hz", "muscle,readout_unit"), "b_out": ("1", "muscle")}
"""Units of the readout when the circuit drives the arm: PT5B rates to excitation logits (dimensionless)."""
PARAM_TEXT = {
    "w": "recurrent weight magnitudes (>= 0, zero off the connectome mask)",
    "w_in": "input weights (zero outside the units receiving each input)",
    "b": "bias input",
    "w_out": "readout weights from the output units",
    "b_out": "readout offset",
    "x0": "initial state",
}


def _write_params(group: h5py.Group, params: dict[str, np.ndarray], what: str) -> None:
    for key, value in params.items():
        units, dims = PARAM_UNITS[key]
        write_array(group, key, value, units=units, dims=dims, description=f"{what}: {PARAM_TEXT[key]}")


def write_task(f: h5py.File, batch: TrialBatch, description: str) -> None:
    """Write ``/task``: a trial batch (inputs, targets, mask, per-trial params)."""
    if "task" in f:
        del f["task"]
    g = f.create_group("task")
    g.attrs.update(
        {
            "description": description,
            "dt": batch.dt,
            "dt_units": "s",
            "input_names": ",".join(batch.input_names),
            "input_groups": ",".join(batch.input_groups),
            "output_names": ",".join(batch.output_names),
        }
    )
    write_array(
        g,
        "inputs",
        batch.inputs,
        units="1",
        dims="condition,time,input",
        description="Task input channels, named by the input_names attribute: the target (cos, sin of its "
        "direction), the maze's via points (position / reach distance, 0 when unused), the go pulse.",
    )
    write_array(
        g, "targets", batch.targets, units="m", dims="condition,time,output", description="Desired hand position."
    )
    write_array(
        g,
        "mask",
        batch.mask,
        units="1",
        dims="condition,time,output",
        description="1 where the output counts in the loss.",
    )
    p = g.create_group("params")
    units = {
        "angle": "rad",
        "condition": "1",
        "catch": "1",
        "delay": "s",
        "target_on": "s",
        "go": "s",
        "move_on": "s",
        "move_off": "s",
    }
    for key, value in batch.params.items():
        write_array(
            p,
            key,
            value,
            units=units.get(key, "1"),
            dims="condition",
            description=f"Per-condition task parameter '{key}' (NaN: does not occur).",
        )


@_reader("/task")
def read_task(f: h5py.File) -> TrialBatch:
    """``/task`` back as the :class:`~cortexsim.tasks.TrialBatch` :func:`write_task` wrote."""
    if "task" not in f:
        raise RunFileError(f"{f.filename}: has no /task group (run the rate stage: cortexsim run)")
    g = f["task"]
    names = {key: tuple(attr_text(g.attrs[key]).split(",")) for key in ("input_names", "input_groups", "output_names")}
    params = {key: ds[()] for key, ds in g["params"].items()}
    if "catch" in params:
        params["catch"] = params["catch"].astype(bool)
    return TrialBatch(g["inputs"][()], g["targets"][()], g["mask"][()], float(g.attrs["dt"]), params, **names)


def write_rate(
    f: h5py.File,
    states: np.ndarray,
    rates: np.ndarray,
    outputs: np.ndarray,
    params: dict[str, np.ndarray],
    attrs: dict[str, Any],
) -> None:
    """Write ``/rate``: evaluation-set activity and the trained parameters."""
    if "rate" in f:
        del f["rate"]
    g = f.create_group("rate")
    g.attrs.update(
        {
            "description": "The trained rate network on the evaluation set (one trial per "
            "condition of /task, no process noise).",
            **attrs,
        }
    )
    write_array(g, "states", states, units="mV", dims="condition,time,unit", description="Unit input x.")
    write_array(g, "rates", rates, units="Hz", dims="condition,time,unit", description="Unit rate r = phi(x).")
    write_array(
        g,
        "outputs",
        outputs,
        units="m",
        dims="condition,time,output",
        description="Hand position relative to its start: the six-muscle arm's hand, driven by PT5B through "
        "/rate/effector (attribute effector = arm26), else the readout y = W_out r[readout units] + b_out.",
    )
    names = {"w_in": "W_in", "w_out": "W_out", "b": "b", "b_out": "b_out", "x0": "x0"}
    arm = attrs.get("effector") == "arm26"  # the readout gives the six excitation logits, not metres
    for key, name in names.items():
        units, dims = ARM_READOUT_UNITS[key] if arm and key in ARM_READOUT_UNITS else PARAM_UNITS[key]
        text = f"Trained {PARAM_TEXT[key]}" + (
            " (to the muscles' excitation logits)" if arm and key in ARM_READOUT_UNITS else ""
        )
        write_array(g, name, params[key], units=units, dims=dims, description=f"{text}.")


EFFECTOR_ARRAYS: dict[str, tuple[str, str, str]] = {
    "q": ("rad", "joint", "Shoulder and elbow angle (MotorNet's convention: shoulder from +x, elbow relative)."),
    "dq": ("rad/s", "joint", "Joint angular velocity."),
    "hand": ("m", "xy", "Hand position in the shoulder frame (x right, y away from the body)."),
    "activation": ("1", "muscle", "Muscle activation (Thelen 2003 dynamics), muscles in effector.MUSCLE_NAMES order."),
    "excitation": ("1", "muscle", "Excitation the model sent to each muscle (after motor noise)."),
    "feedback": ("1", "channel", "Delayed, noisy feedback the model received (closed_loop.FEEDBACK_CHANNELS)."),
}
"""What ``/<model>/effector`` holds: name -> (units, last axis, description) -- for the arm; a body's
plant says what its coordinates and hand are (``COORDINATES``, ``HAND_TEXT``)."""


def write_effector(
    f: h5py.File, model: str, arrays: dict[str, np.ndarray], dt: float, trials: bool = False, kind: str = "arm26"
) -> None:
    """Write ``/<model>/effector/``: the body a model drove, on the evaluation set.

    Parameters
    ----------
    f : h5py.File
    model : str
        ``"rate"``, ``"spiking"`` or ``"ann/<arch>"``.
    arrays : dict of str to ndarray
        Keys of :data:`EFFECTOR_ARRAYS`, each (conditions, [trials,] time, k); index ``t`` along
        time is the state at ``t dt`` (``[..., 0, :]`` the initial state).
    dt : float
        Time step (s).
    trials : bool
        True when the arrays have a trials axis after the condition axis.
    kind : str
        The body (``[effector] kind``, a key of :data:`cortexsim.effector.PLANTS`): what its
        coordinates are, in which units, and its muscles.
    """
    plant = PLANTS[kind]
    table = {**EFFECTOR_ARRAYS, "hand": (*EFFECTOR_ARRAYS["hand"][:2], plant.HAND_TEXT), **plant.COORDINATES}
    parent = f.require_group(model)
    if "effector" in parent:
        del parent["effector"]
    g = parent.create_group("effector")
    g.attrs.update(
        {
            "description": f"{plant.DESCRIPTION} this model drove "
            "in closed loop on the evaluation set; index t along time is the state at t dt.",
            "dt": dt,
            "muscles": list(plant.MUSCLES),
        }
    )
    lead = "condition,trial,time" if trials else "condition,time"
    for name, array in arrays.items():
        units, last, text = table[name]
        write_array(g, name, array, units=units, dims=f"{lead},{last}", description=text)


def read_effector(f: h5py.File, model: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``/<model>/effector`` (None when the model drove no arm)."""
    path = f"{model}/effector"
    if path not in f:
        return None
    return {name: f[path][name][()] for name in EFFECTOR_ARRAYS if name in f[path]}


def write_metrics(f: h5py.File, metrics: dict[str, float], description: str) -> None:
    """Add headline numbers as attributes of ``/metrics`` (existing ones are kept)."""
    g = f.require_group("metrics")
    g.attrs["description"] = description
    g.attrs.update({k: float(val) for k, val in metrics.items()})


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file (e.g. ``summary.md``) atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@_reader("/metrics")
def read_config_text(f: h5py.File) -> str:
    """The full configuration the run was made with, as the TOML text stored in the root ``config`` attribute."""
    return attr_text(f.attrs["config"])


def read_config(f: h5py.File) -> Config:
    """The run's configuration (:class:`~cortexsim.config.Config`), parsed and checked from ``config``."""
    return config_from_text(read_config_text(f), where=f"{f.filename}@config")


def read_metrics(f: h5py.File) -> dict[str, float]:
    """The headline numbers of ``/metrics`` (empty when the run has none yet)."""
    if "metrics" not in f:
        return {}
    return {k: float(val) for k, val in f["metrics"].attrs.items() if k != "description"}


STAGES_TEXT = (
    "Pipeline stages completed in this file, one subgroup each (cortexsim.pipeline). 'key' hashes "
    "the parts of the config the stage depends on; a rerun reuses a stage whose key still matches."
)


def write_stage(
    f: h5py.File, name: str, *, key: str, seconds: float, groups: Sequence[str], metrics: Sequence[str]
) -> None:
    """Record in ``/stages/<name>`` that a pipeline stage finished (wall time, what it wrote)."""
    g = f.require_group("stages")
    g.attrs["description"] = STAGES_TEXT
    if name in g:
        del g[name]
    order = 1 + max((int(x.attrs["order"]) for x in g.values()), default=0)
    s = g.create_group(name)
    s.attrs.update(
        {
            "description": f"Stage '{name}' completed.",
            "key": key,
            "seconds": float(seconds),
            "order": order,
            "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "groups": json.dumps(list(groups)),
            "metrics": json.dumps(list(metrics)),
        }
    )


@_reader("/stages")
def read_stages(f: h5py.File) -> dict[str, dict[str, Any]]:
    """Completed stages in order of completion: name -> key, seconds, order, finished_utc, groups, metrics."""
    if "stages" not in f:
        return {}
    out = {}
    for name, g in f["stages"].items():
        a = g.attrs
        out[name] = {
            "key": attr_text(a["key"]),
            "seconds": float(a["seconds"]),
            "order": int(a["order"]),
            "finished_utc": attr_text(a["finished_utc"]),
            "groups": json.loads(attr_text(a["groups"])),
            "metrics": json.loads(attr_text(a["metrics"])),
        }
    return dict(sorted(out.items(), key=lambda item: item[1]["order"]))


def forget_stages(f: h5py.File, names: Sequence[str]) -> None:
    """Drop the records of stages whose results were changed outside the pipeline (so a rerun redoes them)."""
    for name in names:
        if f"stages/{name}" in f:
            del f[f"stages/{name}"]


def copy_stages(src: h5py.File, dst: h5py.File, names: Sequence[str]) -> None:
    """Copy what the completed stages ``names`` of ``src`` wrote (groups, metrics, records) into ``dst``."""
    done = read_stages(src)
    for name in names:
        info = done[name]
        for group in info["groups"]:
            if group in src and group not in dst:
                parent = group.rsplit("/", 1)[0] if "/" in group else None
                if parent:
                    target = dst.require_group(parent)
                    target.attrs.update(src[parent].attrs)
                src.copy(src[group], dst, name=group)
        if "metrics" in src:
            g = dst.require_group("metrics")
            g.attrs["description"] = src["metrics"].attrs["description"]
            g.attrs.update({k: src["metrics"].attrs[k] for k in info["metrics"] if k in src["metrics"].attrs})
        stages = dst.require_group("stages")
        stages.attrs["description"] = STAGES_TEXT
        src.copy(src[f"stages/{name}"], stages, name=name)


def write_training(f: h5py.File, state: TrainState, config_text: str) -> None:
    """Write ``/training``: per-iteration histories and a resumable checkpoint."""
    g = f.require_group("training")
    g.attrs["description"] = (
        "Training histories (one entry per iteration; validation entries every "
        "eval_every iterations) and the checkpoint to resume from."
    )
    h = state.history
    texts = {
        "loss": ("1", "total loss"),
        "task_loss": ("1", "position MSE in units of the reach distance"),
        "r2": ("1", "position R^2 on the training batch"),
        "grad_norm": ("1", "scaled gradient norm"),
        "lr": ("1", "learning rate"),
        "mean_rate": ("Hz", "mean rate on the training batch"),
        "val_iteration": ("1", "iteration of each validation"),
        "val_loss": ("1", "noise-free validation MSE (reach units)"),
        "val_r2": ("1", "noise-free validation position R^2"),
    }
    for key, (units, text) in texts.items():
        dim = "validation" if key.startswith("val_") else "iteration"
        write_array(g, key, np.asarray(h[key], float), units=units, dims=dim, description=text.capitalize() + ".")
    if "checkpoint" in g:
        del g["checkpoint"]
    c = g.create_group("checkpoint")
    c.attrs.update(
        {
            "description": "Complete trainer state; a run resumed from it continues exactly.",
            "iteration": state.iteration,
            "elapsed_s": state.elapsed,
            "best_val_loss": state.best_val_loss,
            "best_iteration": state.best_iteration,
            "bad_evals": state.bad_evals,
            "done": state.done,
            "scales": json.dumps(state.scales),
            "rng_batch": json.dumps(state.rng_batch),
            "rng_noise": json.dumps(state.rng_noise),
            "config": config_text,
        }
    )
    for name, params in (
        ("params", state.params),
        ("adam_m", state.m),
        ("adam_v", state.v),
        ("best_params", state.best_params),
    ):
        _write_params(c.create_group(name), params, name.replace("_", " "))


@_reader("/training (the checkpoint)")
def read_training_state(f: h5py.File) -> TrainState | None:
    """The :class:`~cortexsim.train.TrainState` checkpointed in ``f``, or None."""
    if "training/checkpoint" not in f:
        return None
    c = f["training/checkpoint"]
    a = c.attrs

    def group(name: str) -> dict[str, np.ndarray]:
        return {k: ds[()] for k, ds in c[name].items()}

    history = {k: list(f["training"][k][()]) for k in TrainState.HISTORY_KEYS + TrainState.VALIDATION_KEYS}
    history["val_iteration"] = [int(i) for i in history["val_iteration"]]
    return TrainState(
        params=group("params"),
        m=group("adam_m"),
        v=group("adam_v"),
        scales=json.loads(a["scales"]),
        rng_batch=json.loads(a["rng_batch"]),
        rng_noise=json.loads(a["rng_noise"]),
        iteration=int(a["iteration"]),
        elapsed=float(a["elapsed_s"]),
        best_params=group("best_params"),
        best_val_loss=float(a["best_val_loss"]),
        best_iteration=int(a["best_iteration"]),
        bad_evals=int(a["bad_evals"]),
        done=attr_text(a["done"]),
        history=history,
    )


def write_ann(
    f: h5py.File,
    arch: str,
    hidden: np.ndarray,
    outputs: np.ndarray,
    params: dict[str, np.ndarray],
    attrs: dict[str, Any],
) -> None:
    """Write ``/ann/<arch>``: evaluation-set hidden states, outputs and trained weights."""
    g = f.require_group("ann")
    g.attrs["description"] = (
        "Unconstrained ANN baselines trained on the same task and inputs as the "
        "rate circuit; activity on the evaluation set of /task, without noise."
    )
    if arch in g:
        del g[arch]
    a = g.create_group(arch)
    a.attrs.update({"description": f"{arch.upper()} baseline.", **attrs})
    write_array(
        a, "hidden", hidden, units="1", dims="condition,time,unit", description="Hidden state h (dimensionless)."
    )
    write_array(a, "outputs", outputs, units="m", dims="condition,time,output", description="Decoded hand position.")
    w = a.create_group("weights")
    w.attrs["description"] = "Trained parameters (names as in cortexsim.ann; gates stacked along axis 0)."
    for key, value in params.items():
        dims = ",".join(f"{key}_axis{i}" for i in range(np.ndim(value)))
        write_array(
            w,
            key,
            value,
            units="m" if key == "b_out" else ("m/1" if key == "w_out" else "1"),
            dims=dims,
            description=f"Trained '{key}'.",
        )


@dataclass(frozen=True)
class AnnRecord:
    """One ANN baseline as ``/ann/<arch>`` stores it.

    Attributes
    ----------
    arch : str
    hidden : ndarray, shape (conditions, time, units)
        Hidden state on the evaluation set (dimensionless).
    outputs : ndarray, shape (conditions, time, outputs)
        Decoded hand position (m).
    params : dict of str to ndarray
        Trained parameters (names as in :mod:`cortexsim.ann`).
    attrs : dict
        ``config``, ``n_hidden``, ``iterations``, ``train_seconds``.
    """

    arch: str
    hidden: np.ndarray
    outputs: np.ndarray
    params: dict[str, np.ndarray]
    attrs: dict[str, Any]


@_reader("/ann")
def read_ann(f: h5py.File, arch: str) -> AnnRecord:
    """``/ann/<arch>`` as :func:`write_ann` wrote it."""
    group = ModelId.ann(arch).group if arch in ANN_ARCHITECTURES else None
    if group is None or group not in f:
        have = ", ".join(f["ann"]) if "ann" in f else "none"
        raise RunFileError(f"{f.filename}: has no ANN baseline {arch!r} (ANNs in the file: {have})")
    a = f[group]
    return AnnRecord(
        arch,
        a["hidden"][()],
        a["outputs"][()],
        {k: ds[()] for k, ds in a["weights"].items()},
        {k: _jsonable(val) for k, val in a.attrs.items() if k != "description"},
    )


def write_table(
    group: h5py.Group, name: str, rows: list[dict[str, Any]], description: str, columns: dict[str, str] | None = None
) -> None:
    """Write a list of dict rows as a compound dataset (strings as UTF-8, numbers as float64).

    ``columns`` maps column names to a one-line meaning, stored as attributes ``col_<name>``.
    """
    if name in group:
        del group[name]
    if not rows:
        return
    keys = list(rows[0])
    dtype = np.dtype([(k, _STR if isinstance(rows[0][k], str) else np.float64) for k in keys])
    data = np.array([tuple(r.get(k, np.nan) for k in keys) for r in rows], dtype=dtype)
    ds = group.create_dataset(name, data=data, **_checksum(data))
    ds.attrs.update({"units": "1", "dims": "row", "description": description})
    for col, text in (columns or {}).items():
        ds.attrs[f"col_{col}"] = text


PERTURBATION_TEXT = (
    "Perturbations of the trained arm models (cortexsim.perturb): /perturbation/curl/<model> (the "
    "curl-field protocol: phases, learning curve, population changes, hand paths) and "
    "/perturbation/bumps/<model> (bumped trials, population latencies, responses aligned to the bump); "
    "<model> is rate, spiking or ann_<arch>."
)
"""What ``/perturbation`` holds."""

PERTURBATION_TABLES = {
    "phases": "One row per phase of the curl protocol (baseline, first_exposure, after_adaptation, aftereffect, "
    "washout): mean |lateral deviation| (cm), mean signed deviation (cm, + left of the reach), endpoint error (cm).",
    "curve": "Learning curve: mean |lateral deviation| (cm) every perturb.curve_every iterations of adaptation "
    "(field on) and washout (field off).",
    "populations": "Per population: RMS rate change between first exposure and after adaptation over the RMS rate "
    "at first exposure, and the relative RMS change of its incoming weights.",
    "trials": "One row per bumped trial: timing, direction (deg), condition, onset (s), peak displacement from the "
    "unperturbed path (cm), recovery time to within 1 cm (ms; inf: not by the trial's end).",
    "latencies": "Per timing and population: response latency (ms; NaN: never 3 SD above the pre-bump floor) and "
    "the peak of the aligned mean |delta rate| (Hz).",
}
"""The tables of ``/perturbation/<kind>/<model>`` and what they hold."""


def write_perturbation(
    f: h5py.File,
    kind: str,
    model: str,
    tables: Mapping[str, Sequence[Row]],
    arrays: Mapping[str, tuple[np.ndarray, str, str, str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``/perturbation/<kind>/<model>`` (replacing it): a protocol's tables, arrays and attributes.

    Parameters
    ----------
    f : h5py.File
        Writable run file (:func:`open_for_update`).
    kind : {"curl", "bumps"}
    model : str
        ``"rate"``, ``"spiking"`` or ``"ann_<arch>"``.
    tables : mapping of str to sequence of dict
        Tables by name (:data:`PERTURBATION_TABLES`), one row per dict.
    arrays : mapping of str to (data, units, dims, description), optional
    attrs : mapping, optional
        Attributes of the group (text, numbers or lists of text).
    """
    if kind not in ("curl", "bumps"):
        raise ValueError(f"kind: {kind!r}; expected 'curl' or 'bumps'")
    top = f.require_group("perturbation")
    top.attrs["description"] = PERTURBATION_TEXT
    parent = top.require_group(kind)
    if model in parent:
        del parent[model]
    g = parent.create_group(model)
    g.attrs.update(dict(attrs or {}))
    for name, rows in tables.items():
        write_table(g, name, list(rows), PERTURBATION_TABLES.get(name, "One row per entry."))
    for name, (data, units, dims, description) in (arrays or {}).items():
        write_array(g, name, data, units=units, dims=dims, description=description)


def write_control(f: h5py.File, params: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """Write ``/control`` (replacing it): the trained parameters of the no-inter-population-recurrence circuit.

    Its connectome is the run's ``/circuit`` without the synapses between populations (rebuilt
    from the config, :meth:`cortexsim.circuit.Connectome.within_populations`); ``attrs`` says so.
    """
    if "control" in f:
        del f["control"]
    g = f.create_group("control")
    g.attrs["description"] = (
        "The circuit trained from scratch without inter-population recurrence (the rotation-sources control)."
    )
    g.attrs.update(dict(attrs))
    for key, value in params.items():  # the control drives the arm: its readout gives excitation logits
        units, dims = ARM_READOUT_UNITS.get(key, PARAM_UNITS[key])
        write_array(g, key, value, units=units, dims=dims, description=f"Control circuit: {PARAM_TEXT[key]}.")


@_reader("/control")
def read_control(f: h5py.File) -> dict[str, np.ndarray] | None:
    """The control circuit's trained parameters (``/control``), or None when the run has none."""
    if "control" not in f:
        return None
    g = f["control"]
    return {name: g[name][()] for name in g if isinstance(g[name], h5py.Dataset)}


@_reader("/perturbation")
def read_perturbation(f: h5py.File) -> dict[str, dict[str, dict[str, Any]]]:
    """``/perturbation`` as ``{kind: {model: {name: rows or array}}}`` (empty when absent).

    Tables come back as tuples of dict rows (:func:`read_table`), datasets as arrays, and the
    group's attributes under ``"attrs"``.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if "perturbation" not in f:
        return out
    for kind, parent in f["perturbation"].items():
        out[kind] = {}
        for model, g in parent.items():
            entry: dict[str, Any] = {"attrs": {k: _jsonable(val) for k, val in g.attrs.items()}}
            for name, ds in g.items():
                entry[name] = read_table(g, name) if ds.dtype.names else ds[()]
            out[kind][model] = entry
    return out


STIMULATION_TEXT = (
    "Optogenetic-style stimulation of the trained models (cortexsim.stimulate): /stimulation/<protocol> holds "
    "the protocol (attributes: target, fraction, effect, amplitude_mv, event, start_s, stop_s, ramp_s, trials) "
    "and /stimulation/<protocol>/<model> what it did to <model> (rate, spiking or ann_<arch>) on the held-out, "
    "noise-free evaluation conditions: the hand with and without the light, their distance, the light, which "
    "units express, the activity's change (its norm and output-potent part), per-population responses and the "
    "noisy interleaved trials."
)
"""What ``/stimulation`` holds."""

STIMULATION_TABLES = {
    "populations": "Per population: expressing (share of its units), direct (1: it expresses), change_light and "
    "change_after (mean change of activity while lit and in the 200 ms after; Hz, or h for an ANN), "
    "relative_light (change while lit over the unstimulated mean).",
    "trials": "One row per noisy trial, interleaved: condition, stimulated (1 lit), endpoint_error_cm with and "
    "without the light (the same noise), peak_deviation_cm (hand distance from the unlit run).",
}
"""The tables of ``/stimulation/<protocol>/<model>``."""

PROTOCOL_UNITS = {"amplitude": "amplitude_mv", "start": "start_s", "stop": "stop_s", "ramp": "ramp_s"}
"""Attribute names (with units) of a protocol's fields in ``/stimulation/<protocol>``."""


def write_stimulation(
    f: h5py.File,
    protocol: Mapping[str, Any],
    model: str,
    arrays: Mapping[str, tuple[np.ndarray, str, str, str]],
    tables: Mapping[str, Sequence[Row]],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write ``/stimulation/<protocol>/<model>`` (replacing it) and the protocol's attributes.

    Parameters
    ----------
    f : h5py.File
        Writable run file (:func:`open_for_update`).
    protocol : mapping
        The protocol's fields (:class:`cortexsim.stim_config.StimProtocol` as a dict) with ``label``.
    model : str
        ``"rate"``, ``"spiking"`` or ``"ann_<arch>"``.
    arrays : mapping of str to (data, units, dims, description)
    tables : mapping of str to sequence of dict
        :data:`STIMULATION_TABLES`, one row per dict.
    attrs : mapping, optional
        Attributes of the model's group.
    """
    top = f.require_group("stimulation")
    top.attrs["description"] = STIMULATION_TEXT
    name = str(protocol["name"])
    parent = top.require_group(name)
    for key, value in protocol.items():
        parent.attrs[PROTOCOL_UNITS.get(key, key)] = list(value) if isinstance(value, tuple) else value
    if model in parent:
        del parent[model]
    g = parent.create_group(model)
    g.attrs.update(dict(attrs or {}))
    for table, rows in tables.items():
        write_table(g, table, list(rows), STIMULATION_TABLES.get(table, "One row per entry."))
    for key, (data, units, dims, description) in arrays.items():
        write_array(g, key, data, units=units, dims=dims, description=description)


@_reader("/stimulation")
def read_stimulation(f: h5py.File) -> dict[str, dict[str, Any]]:
    """``/stimulation`` as ``{protocol: {"attrs": ..., model: {name: rows or array, "attrs": ...}}}`` ({}: none)."""
    out: dict[str, dict[str, Any]] = {}
    if "stimulation" not in f:
        return out
    for name, parent in f["stimulation"].items():
        entry: dict[str, Any] = {"attrs": {k: _jsonable(val) for k, val in parent.attrs.items()}}
        for model, g in parent.items():
            held: dict[str, Any] = {"attrs": {k: _jsonable(val) for k, val in g.attrs.items()}}
            for key, ds in g.items():
                held[key] = read_table(g, key) if ds.dtype.names else ds[()]
            entry[model] = held
        out[name] = entry
    return out


def write_spiking(f: h5py.File, result: TwinResult, connectome: Connectome, n_reach: int) -> None:
    """Write the spiking twin: SONATA ``/spikes/<population>`` and ``/spiking`` (rates, outputs, fidelity).

    Parameters
    ----------
    result : TwinResult
        From :func:`cortexsim.spiking.run_twin`.
    connectome : Connectome
        The rate circuit (for the population ranges).
    n_reach : int
        Number of reach conditions (those of ``/task``); later conditions are catch trials.
    """
    params, spikes, batch = result.params, result.spikes, result.batch
    k = int(params.k)
    n_cond, n_trials, n_steps, _ = result.rates.shape
    for name in ("spikes", "spiking"):
        if name in f:
            del f[name]
    sp = f.create_group("spikes")
    sp.attrs["description"] = (
        f"Spikes of the LIF twin in the SONATA layout, one group per population. Rate unit u of a population "
        f"is the pool of neurons u*K .. u*K+K-1 (K = {k}) counted from the population's first unit; trials run "
        f"back to back, trial j of /spiking/trials starting at /spiking/trials/start[j]."
    )
    pools = spikes.ids // k
    for pop in connectome.populations:
        sel = (pools >= pop.start) & (pools < pop.stop)
        g = sp.create_group(pop.name.replace("/", "_"))
        g.attrs.update({"sorting": "by_time", "population": pop.name, "n_neurons": pop.size * k})
        write_array(g, "timestamps", spikes.times[sel], units="s", dims="spike", description="Spike time.")
        write_array(
            g,
            "node_ids",
            (spikes.ids[sel] - pop.start * k).astype(np.int64),
            units="1",
            dims="spike",
            description="Neuron index within the population (pool unit * K + member).",
        )
    g = f.create_group("spiking")
    g.attrs.update(
        {
            "description": "The spiking twin on the evaluation conditions (rows of /task, then catch).",
            "k": k,
            "n_reach_conditions": n_reach,
            "trials_per_condition": n_trials,
            "offset_mV": float(params.offset_mv),
            "sim_dt_s": float(params.dt),
        }
    )
    write_array(
        g,
        "rates",
        result.rates[:n_reach].mean(axis=1),
        units="Hz",
        dims="condition,time,unit",
        description="Pool rates (20 ms exponential filter) averaged over trials, reach conditions of /task.",
    )
    write_array(
        g,
        "rates_trials",
        result.rates,
        units="Hz",
        dims="condition,trial,time,unit",
        description="Single-trial pool rates, all conditions (reach, then catch).",
    )
    write_array(
        g,
        "outputs",
        result.outputs,
        units="m",
        dims="condition,trial,time,output",
        description="Hand position decoded with the rate model's trained readout.",
    )
    trials = g.create_group("trials")
    duration = n_steps * batch.dt
    write_array(
        trials,
        "condition",
        np.repeat(np.arange(n_cond), n_trials),
        units="1",
        dims="trial",
        description="Condition of each simulated trial.",
    )
    write_array(
        trials,
        "start",
        np.arange(n_cond * n_trials) * duration,
        units="s",
        dims="trial",
        description="Start time of each trial in the spike times.",
    )
    write_table(
        g,
        "fidelity",
        [{k_: (v if isinstance(v, str) else float(v)) for k_, v in row.items()} for row in result.fidelity],
        "One row per population: how faithfully the twin follows its rate model.",
        {
            "population": "population",
            "psth_r_mean": "mean Pearson r of unit PSTHs, twin vs rate model",
            "rate_ratio": "twin mean rate / rate-model mean rate",
            "rate_hz": "twin mean rate (Hz)",
            "cv_isi": "median coefficient of variation of inter-spike intervals",
        },
    )
    m = g.create_group("params")
    m.attrs["description"] = "Rate -> spiking mapping (cortexsim.spiking.mapping.SpikingParams)."
    units = {
        "tau": "s",
        "x0": "mV",
        "syn_weight": "mV/Hz",
        "syn_increment_mv": "mV",
        "w_in": "mV",
        "b": "mV",
        "w_out": "m/Hz",
        "b_out": "m",
    }
    for key, value in params.to_arrays().items():
        value = np.asarray(value)
        if value.ndim == 0:
            m.attrs[key] = value.item()
            continue
        write_array(
            m,
            key,
            value,
            units=units.get(key, "1"),
            dims=",".join(f"axis{i}" for i in range(value.ndim)),
            description=f"SpikingParams.{key}",
        )


@_reader("/spikes")
def read_spikes(f: h5py.File) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Spikes of the twin from the SONATA layout: population name -> (times in s, node ids)."""
    if "spikes" not in f:
        raise RunFileError(f"{f.filename}: has no /spikes; run `cortexsim spiking` first")
    return {
        attr_text(g.attrs.get("population", name)): (g["timestamps"][()], g["node_ids"][()])
        for name, g in f["spikes"].items()
    }


@dataclass(frozen=True)
class TwinTrials:
    """How the spiking twin's trials lie in its spike times (``/spiking`` and ``/spiking/trials``).

    Attributes
    ----------
    k : int
        LIF neurons per rate unit.
    n_reach : int
        Reach conditions (those of ``/task``); conditions ``n_reach ..`` are catch trials.
    trials_per_condition : int
    condition : ndarray of int, shape (trials,)
        Condition of each simulated trial (condition-major).
    start : ndarray of float, shape (trials,)
        Start time of each trial in the spike times (s).
    duration : float
        Length of one trial (s): time steps x ``/task@dt``.
    dt : float
        Time step of ``outputs`` (s, ``/task@dt``).
    outputs : ndarray, shape (conditions, trials_per_condition, time, outputs)
        Hand position decoded from the twin with the trained readout (m).
    sim_dt : float
        Step of the LIF simulation (s, ``/spiking@sim_dt_s``): the resolution of the spike times.
    """

    k: int
    n_reach: int
    trials_per_condition: int
    condition: np.ndarray
    start: np.ndarray
    duration: float
    dt: float
    outputs: np.ndarray
    sim_dt: float


@_reader("/spiking")
def read_twin_trials(f: h5py.File) -> TwinTrials:
    """The twin's trial layout and decoded hand paths (:class:`TwinTrials`).

    Raises
    ------
    RunFileError
        The run has no spiking twin (no ``/spiking`` or ``/spikes``).
    """
    if "spiking" not in f or "spikes" not in f:
        raise RunFileError(
            f"{f.filename}: has no spiking twin (/spikes, /spiking); run `cortexsim spiking {f.filename}` first"
        )
    g = f["spiking"]
    outputs = g["outputs"][()]
    dt = float(f["task"].attrs["dt"])
    return TwinTrials(
        k=int(g.attrs["k"]),
        n_reach=int(g.attrs["n_reach_conditions"]),
        trials_per_condition=int(g.attrs["trials_per_condition"]),
        condition=g["trials/condition"][()].astype(np.int64),
        start=g["trials/start"][()].astype(float),
        duration=outputs.shape[2] * dt,
        dt=dt,
        outputs=outputs,
        sim_dt=float(g.attrs["sim_dt_s"]),
    )


# --- comparison and sweep records ---


@dataclass(frozen=True)
class Activity:
    """Condition-averaged activity of one model, layer, population or data set.

    Attributes
    ----------
    name : str
        E.g. ``"rate"``, ``"rate:L5B"``, ``"rate:PT5B"``, ``"ann:gru"``, ``"spiking"``, ``"data"``.
    kind : str
        ``"model"``, ``"layer"``, ``"population"`` or ``"data"``.
    rates : ndarray, shape (conditions, time, units)
        Rates (Hz) or hidden states (dimensionless, ANNs).
    dt : float
        Time step (s).
    move_on : int
        Time index of movement onset in ``rates`` (for the jPCA window).
    start : int
        The step of the run's time grid that ``rates``' first step is (recorded data that cover only
        part of the model's time axis start later and stop earlier; models: 0).
    """

    name: str
    kind: str
    rates: np.ndarray
    dt: float
    move_on: int
    start: int = 0

    @property
    def n_units(self) -> int:
        """Number of units."""
        return self.rates.shape[2]


@_reader("/task, /rate, /circuit/populations, /spiking or /ann")
def read_activities(f: h5py.File, prefix: str = "", min_units: int = 3) -> list[Activity]:
    """Activities stored in a run file: circuit, layers, populations, spiking twin, ANNs (in that order).

    Parameters
    ----------
    f : h5py.File
        An open run file (:func:`open_run`).
    prefix : str
        Put in front of every name (e.g. ``"run2/"`` for a second run compared with the first).
    min_units : int
        Populations with fewer units are left out (layers are always kept).

    Returns
    -------
    list of Activity
        ``rate`` (``/rate/rates``), ``rate:<layer>`` and ``rate:<population>`` (its units), ``spiking``
        (``/spiking/rates``) and ``ann:<arch>`` (``/ann/<arch>/hidden``) where present; all on the time grid
        of ``/task``, shape (conditions, time, units).

    Raises
    ------
    CortexsimError
        The file has no ``/rate/rates`` (the rate stage has not run).
    """
    if "rate/rates" not in f:
        raise CortexsimError(f"{f.filename}: has no /rate/rates; run the rate stage first (cortexsim run)")
    dt = float(f["task"].attrs["dt"])
    move_on = int(round(float(f["task/params/move_on"][0]) / dt))
    rates = f["rate/rates"][()]
    out = [Activity(prefix + "rate", "model", rates, dt, move_on)]
    table = f["circuit/populations"][()]
    layers: dict[str, list[int]] = {}
    for row in table:
        layer = attr_text(row["layer"])
        layers.setdefault(layer, []).extend(range(int(row["start"]), int(row["stop"])))
    for layer, units in layers.items():
        out.append(Activity(f"{prefix}rate:{layer}", "layer", rates[:, :, units], dt, move_on))
    for row in table:
        start, stop = int(row["start"]), int(row["stop"])
        if stop - start >= min_units:
            name = attr_text(row["name"])
            out.append(Activity(f"{prefix}rate:{name}", "population", rates[:, :, start:stop], dt, move_on))
    if "spiking/rates" in f:
        out.append(Activity(prefix + "spiking", "model", f["spiking/rates"][()], dt, move_on))
    if "ann" in f:
        for model in _anns_in(f):
            out.append(Activity(prefix + model.stage, "model", f[model.group]["hidden"][()], dt, move_on))
    return out


def _anns_in(f: h5py.File) -> list[ModelId]:
    """The ANN baselines ``/ann`` holds; a group named for no architecture is a damaged file."""
    out = []
    for arch in f["ann"] if "ann" in f else ():
        try:
            out.append(ModelId.ann(arch))
        except ValueError:
            raise RunFileError(
                f"{f.filename}: /ann holds {arch!r}, which is no ANN baseline cortexsim trains; restore the file"
            ) from None
    return out


@_reader("/rate or /spiking")
def read_rates(f: h5py.File, group: str) -> np.ndarray | None:
    """``/<group>/rates`` (``group`` = ``"rate"`` or ``"spiking"``), or None when the file has none.

    Returns
    -------
    ndarray, shape (conditions, time, units), or None
        Rates (Hz) on the evaluation conditions of ``/task``.
    """
    key = f"{group}/rates"
    return f[key][()] if key in f else None


@_reader("/spiking")
def read_spiking_trials(f: h5py.File) -> np.ndarray | None:
    """Single-trial pool rates of the twin on the reach conditions, or None when the file has none.

    Returns
    -------
    ndarray, shape (conditions, trials, time, units), or None
        ``/spiking/rates_trials`` (Hz) restricted to the reach conditions of ``/task``.
    """
    if "spiking/rates_trials" not in f or "spiking/rates" not in f:
        return None
    return f["spiking/rates_trials"][: f["spiking/rates"].shape[0]]


@_reader("/task/targets")
def read_hand_paths(f: h5py.File) -> dict[str, np.ndarray]:
    """Each model's hand path on the evaluation conditions (m), shape (conditions, time, 2) each.

    Keys are the ``/metrics`` prefixes: ``rate`` (``/rate/outputs``), ``spiking`` (``/spiking/outputs``
    averaged over trials, reach conditions only) and ``ann_<arch>`` (``/ann/<arch>/outputs``), where
    present.
    """
    n = f["task/targets"].shape[0]
    paths = {"rate": f["rate/outputs"][()]} if "rate/outputs" in f else {}
    if "spiking/outputs" in f:
        paths["spiking"] = f["spiking/outputs"][()][:n].mean(axis=1)
    for model in _anns_in(f):
        if "outputs" in f[model.group]:
            paths[model.prefix] = f[model.group]["outputs"][()]
    return paths


def read_task_targets(f: h5py.File) -> np.ndarray:
    """``/task/targets``: desired hand position (m), shape (conditions, time, outputs)."""
    return f["task/targets"][()]


ANALYSIS_TEXT = (
    "Comparison battery (cortexsim.battery): every activity reduced to its top PCs, "
    "compared pairwise with condition-shuffle nulls; jPCA around movement onset."
)
"""The ``description`` attribute of ``/analysis``."""

SIMILARITY_COLUMNS = {
    "a": "first activity",
    "b": "second activity",
    "cca": "mean canonical correlation of the top PCs (higher = more similar, max 1)",
    "shape_distance": "Procrustes angular shape distance, rad (lower = more similar, min 0)",
    "cka": "linear CKA (higher = more similar, max 1)",
    "rsa": "Spearman r of condition dissimilarity matrices (higher = more similar)",
    "cca_null": "mean cca over condition shuffles (the null model)",
    "shape_distance_null": "mean shape distance over condition shuffles",
    "cka_null": "mean CKA over condition shuffles",
    "rsa_null": "mean RSA over condition shuffles",
    "cca_p": "share of condition shuffles with cca >= observed (small = significant)",
    "cca_null_time": "mean cca when each condition's time course is circularly shifted (time-shuffle null)",
    "dsa": "DSA: angular Procrustes distance of the fitted DMD operators, rad (lower = more similar dynamics)",
    **{
        f"{score}_p_{method}": f"share of {method.upper()} surrogates of b at least as similar in {score}"
        for score in ("cca", "shape_distance", "cka", "rsa")
        for method in ("tme", "cfr", "cmpt")
    },
}
"""Columns of ``/analysis/similarity`` and their meaning (attributes ``col_<name>``)."""

JPCA_COLUMNS = {
    "activity": "activity",
    "r2_best": "R^2 of dx = M x, M unconstrained",
    "r2_skew": "R^2 with M skew-symmetric (pure rotation)",
    "ratio": "r2_skew / r2_best (higher = more rotational, max 1)",
    "frequency_hz": "rotation frequency of the strongest jPCA plane (Hz)",
    "participation_ratio": "dimensionality (participation ratio of the covariance eigenvalues)",
    "decode_position_r2": "held-out R^2 of hand position by ridge regression, folds over conditions",
    "decode_velocity_r2": "the same for hand velocity",
    "variance_plane1": "share of the analysed variance in the strongest jPCA plane",
    "variance_plane2": "the same, second plane",
    "variance_plane3": "the same, third plane",
    "ratio_p_tme": "share of TME surrogates with a jPCA ratio >= observed (small = significant)",
    "ratio_p_cfr": "the same against CFR surrogates (Elsayed & Cunningham 2017)",
    "ratio_p_cmpt": "the same against CMPT surrogates (Michaels et al. 2016)",
}
"""Columns of ``/analysis/jpca`` and their meaning, in table order."""

Row = dict[str, str | float]
"""One table row: column name -> text or number."""


def read_table(group: h5py.Group, name: str) -> tuple[Row, ...]:
    """A table written by :func:`write_table` as dict rows (text columns as ``str``, numbers as ``float``).

    Returns an empty tuple when ``group`` has no dataset ``name`` (:func:`write_table` writes none for no rows).
    """
    if name not in group:
        return ()
    ds = group[name]
    data = ds[()]
    text = {k for k in data.dtype.names if h5py.check_string_dtype(ds.dtype[k])}
    return tuple({k: attr_text(row[k]) if k in text else float(row[k]) for k in data.dtype.names} for row in data)


@dataclass(frozen=True)
class AnalysisRecord:
    """What ``/analysis`` holds (see :func:`write_analysis`).

    Attributes
    ----------
    similarity : tuple of dict
        One row per compared pair (columns :data:`SIMILARITY_COLUMNS`).
    jpca : tuple of dict
        One row per activity (columns :data:`JPCA_COLUMNS`).
    answers : dict
        The headline answers (e.g. ``most_ann_like_layer``): text or numbers.
    notes : tuple of str
        The battery's caveats.
    """

    similarity: tuple[Row, ...]
    jpca: tuple[Row, ...]
    answers: dict[str, str | float]
    notes: tuple[str, ...]
    tables: dict[str, tuple[Row, ...]] = field(default_factory=dict)


ANALYSIS_TABLES = {
    "calibration": "Ceilings: every score of a model with itself (two noise seeds, or trial halves), and decoding.",
    "tangling": "Trajectory tangling (Russo et al. 2018) of every activity in its top 8 PCs, 1/s^2.",
    "communication": "Communication subspaces (Semedo et al. 2019): reduced-rank regression dimensions.",
    "fixed_points": "Fixed and slow points per model and constant input, classified by Jacobian eigenvalues.",
    "rotation_sources": "Arm runs: jPCA ratio, rotation frequency (Hz), DSA to the intact circuit (rad) and endpoint "
    "error (cm) of the trained circuit intact, without feedback, without inter-population recurrence and with each "
    "layer silenced (cortexsim.rotations).",
}
"""The dynamics tables of ``/analysis`` (besides ``similarity`` and ``jpca``) and what they hold."""


def write_analysis(
    f: h5py.File,
    similarity: Sequence[Row],
    jpca: Sequence[Row],
    answers: dict[str, str | float],
    notes: Sequence[str],
    tables: Mapping[str, Sequence[Row]] | None = None,
) -> None:
    """Write ``/analysis`` (replacing any): the similarity and jPCA tables and the headline answers.

    Parameters
    ----------
    f : h5py.File
        Writable run file (:func:`open_for_update`).
    similarity : sequence of dict
        One row per compared pair (columns :data:`SIMILARITY_COLUMNS`); the table ``similarity``.
    jpca : sequence of dict
        One row per activity (columns :data:`JPCA_COLUMNS`); the table ``jpca``.
    answers : dict
        Headline answers, written as attributes of ``/analysis`` (text or numbers).
    notes : sequence of str
        Caveats, written one a line as the attribute ``notes``.
    tables : mapping, optional
        More tables by name (:data:`ANALYSIS_TABLES`: ``calibration``, ``tangling``, ``communication``,
        ``fixed_points``, ``rotation_sources``), one row per dict.
    """
    if "analysis" in f:
        del f["analysis"]
    g = f.create_group("analysis")
    g.attrs["description"] = ANALYSIS_TEXT
    g.attrs.update(dict(answers))
    g.attrs["notes"] = "\n".join(notes)
    write_table(g, "similarity", list(similarity), "One row per compared pair.", SIMILARITY_COLUMNS)
    write_table(g, "jpca", list(jpca), "One row per activity.", JPCA_COLUMNS)
    for name, rows in (tables or {}).items():
        write_table(g, name, list(rows), ANALYSIS_TABLES.get(name, "One row per entry."))


@_reader("/analysis")
def read_analysis(f: h5py.File) -> AnalysisRecord | None:
    """``/analysis`` as an :class:`AnalysisRecord`, or None when the comparison has not run.

    Notes are split at line breaks (as :func:`write_analysis` joined them).
    """
    if "analysis" not in f:
        return None
    g = f["analysis"]
    answers = {
        k: attr_text(v) if isinstance(v, (str, bytes)) else float(v)
        for k, v in g.attrs.items()
        if k not in ("description", "notes")
    }
    notes = attr_text(g.attrs["notes"])
    return AnalysisRecord(
        read_table(g, "similarity"),
        read_table(g, "jpca"),
        answers,
        tuple(notes.split("\n")) if notes else (),
        {name: read_table(g, name) for name in ANALYSIS_TABLES if name in g},
    )


UNITS_TEXT = (
    "The comparison's units as computed (cortexsim.battery_cache): one dataset per unit (battery, data, "
    "dynamics, rotation_sources) holding its rows and notes as JSON, its attribute 'key' the hash of every "
    "input its numbers depend on. A later compare reads back a unit whose key still matches instead of "
    "computing it again (cortexsim compare --force recomputes all)."
)
"""What ``/analysis/units`` holds."""


@dataclass(frozen=True)
class AnalysisUnit:
    """One unit of the comparison as ``/analysis/units/<name>`` keeps it (:mod:`cortexsim.battery_cache`).

    Attributes
    ----------
    key : str
        Hash of every input the unit's numbers depend on (64 hex digits).
    tables : mapping of str to tuple of dict
        Its rows by table name (``similarity``, ``jpca``, ``tangling``, ``calibration``, ...), each row
        exactly as computed: the columns it has, in order, numbers as ``float`` (NaN and infinities too).
    notes : tuple of str
        Its caveats.
    figures : str
        The figure folder, relative to the run file's folder, where the figures that cannot be drawn
        from the rows alone (the fixed points) were drawn ("": none).
    """

    key: str
    tables: Mapping[str, tuple[Row, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    figures: str = ""


def write_analysis_units(f: h5py.File, units: Mapping[str, AnalysisUnit]) -> None:
    """Write ``/analysis/units/<name>`` for every unit (after :func:`write_analysis`, which replaces ``/analysis``).

    Each unit is one dataset of UTF-8 bytes holding ``{"tables": ..., "notes": ...}`` as JSON (rows keep
    their own columns and exact values: Python's JSON writes the shortest text that reads back as the
    same float), checksummed like every dataset, with the attributes ``key`` and ``figures``.
    """
    g = f["analysis"].require_group("units")
    g.attrs["description"] = UNITS_TEXT
    for name, unit in units.items():
        text = json.dumps({"tables": {k: list(v) for k, v in unit.tables.items()}, "notes": list(unit.notes)})
        write_array(
            g,
            name,
            np.frombuffer(text.encode("utf-8"), np.uint8),
            units="1",
            dims="byte",
            description=f"The comparison's '{name}' unit: its rows and notes as UTF-8 JSON.",
            key=unit.key,
            figures=unit.figures,
        )


@_reader("/analysis/units")
def read_analysis_units(f: h5py.File) -> dict[str, AnalysisUnit]:
    """The units ``/analysis/units`` holds (:func:`write_analysis_units`), by name ({} when none)."""
    if "analysis/units" not in f:
        return {}
    out = {}
    for name, ds in f["analysis/units"].items():
        held = json.loads(ds[()].tobytes().decode("utf-8"))
        tables = {k: tuple(dict(r) for r in rows) for k, rows in held["tables"].items()}
        out[name] = AnalysisUnit(
            _attr(ds, "key", str), tables, tuple(str(n) for n in held["notes"]), _attr(ds, "figures", str)
        )
    return out


@dataclass(frozen=True)
class RunSummary:
    """What a run file says about itself for ``summary.md`` (besides the comparison).

    Attributes
    ----------
    filename : str
        The file it was read from.
    metrics : dict
        ``/metrics`` (:func:`read_metrics`).
    lesion : str
        The lesion the evaluated circuit carries (``/rate@lesion``; ``"intact"`` without one).
    created_utc, cortexsim_version, git_commit : str
        Provenance (root attributes).
    seed : int
        The experiment's seed.
    stages : dict
        Completed stages in order (:func:`read_stages`).
    derived_from : str or None
        The run file whose stages this one reused, if any.
    effector : str
        What the rate circuit moved: ``"arm26"`` (the six-muscle arm, ``/rate@effector``) or
        ``"kinematic"`` (the linear hand readout).
    """

    filename: str
    metrics: dict[str, float]
    lesion: str
    created_utc: str
    seed: int
    cortexsim_version: str
    git_commit: str
    stages: dict[str, dict[str, Any]]
    derived_from: str | None = None
    effector: str = "kinematic"
    stimulation: tuple[tuple[str, str], ...] = ()
    """The stimulation protocols of ``/stimulation``: (name, label), in the file's order."""


@_reader("the provenance attributes")
def read_run_summary(f: h5py.File) -> RunSummary:
    """The :class:`RunSummary` of an open run file."""
    a = f.attrs
    return RunSummary(
        filename=str(f.filename),
        metrics=read_metrics(f),
        lesion=attr_text(f["rate"].attrs.get("lesion", "intact")) if "rate" in f else "intact",
        created_utc=attr_text(a["created_utc"]),
        seed=int(a["seed"]),
        cortexsim_version=attr_text(a["cortexsim_version"]),
        git_commit=attr_text(a["git_commit"]),
        stages=read_stages(f),
        derived_from=attr_text(a["derived_from"]) if "derived_from" in a else None,
        effector=attr_text(f["rate"].attrs.get("effector", "kinematic")) if "rate" in f else "kinematic",
        stimulation=tuple(
            (name, attr_text(g.attrs.get("label", name))) for name, g in f.get("stimulation", {}).items()
        ),
    )


SWEEP_FILE_KIND = "cortexsim sweep summary"
"""Root ``file_kind`` of a sweep's ``summary.h5``."""

SWEEP_SUMMARY_TEXT = (
    "One row per sweep point (dataset 'points'): swept parameters, status and the "
    "/metrics attributes of its run file (see that file's /metrics description)."
)

SWEEP_COLUMNS = {
    "point": "run folder (relative to this file)",
    "status": "done, failed or missing",
    "error": "first line of the error of a failed point",
    "seconds": "wall time (s)",
}
"""Columns of ``summary.h5``'s ``points`` explained in attributes (the others are parameters and metrics)."""


@dataclass(frozen=True)
class SweepSummary:
    """A sweep's ``summary.h5`` read back (:func:`read_sweep_summary`).

    Attributes
    ----------
    rows : tuple of dict
        One row per point: column -> text (point, parameters, status, error) or number.
    columns : tuple of str
        Column names in table order.
    parameters : tuple of str
        The swept parameters (dotted paths).
    sweep_text : str
        The sweep file's text.
    base_config : str
        The base experiment's config (TOML).
    created_utc : str
        When the summary was written.
    """

    rows: tuple[Row, ...]
    columns: tuple[str, ...]
    parameters: tuple[str, ...]
    sweep_text: str
    base_config: str
    created_utc: str


def write_sweep_summary(
    path: str | Path,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    sweep_text: str,
    base_config: str,
    parameters: Sequence[str],
) -> Path:
    """Write a sweep's ``summary.h5`` atomically: one row per point in the table ``points``.

    Parameters
    ----------
    path : str or Path
        The file (replaced only once the new one is complete).
    rows : sequence of dict
        One row per point; every row holds every key of ``keys``.
    keys : sequence of str
        The columns, in order.
    sweep_text : str
        The sweep file's text (root attribute ``sweep``).
    base_config : str
        The base experiment's config as TOML (``base_config``).
    parameters : sequence of str
        The swept parameters (``parameters``, a JSON list).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(
                {
                    "file_kind": SWEEP_FILE_KIND,
                    "schema_version": SCHEMA_VERSION,
                    "description": SWEEP_SUMMARY_TEXT,
                    "sweep": sweep_text,
                    "base_config": base_config,
                    "parameters": json.dumps(list(parameters)),
                    **{
                        k: v
                        for k, v in provenance("", 0).items()
                        if k.endswith("version") or k in ("created_utc", "git_commit")
                    },
                }
            )
            write_table(f, "points", [{k: r[k] for k in keys} for r in rows], "One row per sweep point.", SWEEP_COLUMNS)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_sweep_summary(path: str | Path) -> SweepSummary:
    """Read a sweep's ``summary.h5`` (:func:`write_sweep_summary`).

    Raises
    ------
    RunFileError
        The file is missing, not HDF5, not a sweep summary, or incomplete.
    """
    path = Path(path)
    with _open_h5(path, "r") as f:
        if attr_text(f.attrs.get("file_kind", "")) != SWEEP_FILE_KIND:
            raise RunFileError(f"{path}: not a cortexsim sweep summary (file_kind is not {SWEEP_FILE_KIND!r})")
        try:
            rows = read_table(f, "points")
            columns = tuple(f["points"].dtype.names) if "points" in f else ()
            return SweepSummary(
                rows,
                columns,
                tuple(json.loads(_attr(f, "parameters", str, path))),
                _attr(f, "sweep", str, path),
                _attr(f, "base_config", str, path),
                _attr(f, "created_utc", str, path),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise RunFileError(f"{path}: incomplete or malformed sweep summary ({exc})") from None
