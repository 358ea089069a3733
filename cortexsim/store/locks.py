"""Folder locks: the lock file a command holds in a folder while it writes there.

A lock names its process (pid and start time from /proc, host, command); a lock whose process is gone
from this host is stale and taken over.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import CortexsimError

LOCK_NAME = ".cortexsim.lock"
"""The lock file :func:`hold_folder` keeps in a folder while a command writes into it."""


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
