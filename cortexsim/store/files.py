"""Opening run files and writing them atomically.

``open_run`` (read-only, after the schema, layout and checksum checks), ``open_for_update`` (all
writing happens in a temporary file in the same folder, renamed over the run file only when complete:
a crash leaves the old file or the new one), the disk-space check for the copy, and
``write_text_atomic`` for the text files next to a run file.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import h5py

from .. import integrity, paths
from ..errors import RunFileError, cannot_write
from .schema import VERIFIED, check_layout, check_run_file, file_version, verify_checksums

COPY_MARGIN = 16 << 20
"""Free disk space (bytes) kept beyond a run file's size when it is copied to be updated."""


def open_h5(path: Path, mode: str) -> h5py.File:
    """Open an HDF5 file after checking the path; a file h5py cannot open is one :class:`RunFileError` line."""
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
    f = open_h5(path, "r")
    try:
        check_run_file(f, path)
        check_layout(f, path)
        if verify:
            verify_checksums(f, path)
    except BaseException:
        f.close()
        raise
    return f


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
    remove_stale_temporaries(path)
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
        _sync_folder(path.parent)  # the rename itself on disk
        # this process wrote every byte (checksummed as written): the next open need not re-read them
        VERIFIED.add(file_version(path))
    except BaseException:
        if f is not None:
            f.close()
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files of updates of ``path`` whose process no longer runs; returns them.

    A writer killed outright (SIGKILL, a power cut) cannot remove its ``.<name>.<pid>.tmp``; the run
    file itself is the previous complete one (the rename never happened), and the next update of it
    removes what the dead writer left.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            with suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the system allows it."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
