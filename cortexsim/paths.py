"""The paths a command reads and writes, checked before anything is computed.

Every path a user names goes through here:

* :func:`check_path` -- no NUL byte, each component at most :data:`NAME_MAX` bytes and the
  whole at most :data:`PATH_MAX` (the limits of Linux file systems), so a long path is
  refused in one line instead of an ``OSError`` half-way through a command;
* :func:`input_file` and :func:`read_bytes` -- an input must be a regular file once its
  symbolic links are followed (the kernel's limit of 40 links; a loop is refused): a
  folder, FIFO, device or socket is refused instead of hanging or filling memory, and a
  text input is read with a size cap;
* :func:`output_file` -- an output file is replaced only when the command recognises it
  as its own kind (``recognise``), never when it is the command's own input, and only
  where its folder can be written; anything else is left alone unless ``force``;
* :func:`folder_name` -- a name used as a folder (``[experiment] name``): a safe set of
  characters and a length cap, so it can never leave its parent folder.

Imports only :mod:`cortexsim.errors`.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import CortexsimError

NAME_MAX = 255
"""Most bytes in one path component (Linux file systems)."""

PATH_MAX = 4095
"""Most bytes in a whole path (Linux ``PATH_MAX`` less its NUL)."""

TEXT_MAX_BYTES = 16 << 20
"""Most bytes read from a text input (config, spec, sweep, mapping file): 16 MiB."""

FOLDER_NAME_MAX = 100
"""Most characters in a name used as a folder (``[experiment] name``)."""

FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""A name used as a folder: letters, digits, ``_ . + -``, starting with a letter or digit."""

Recogniser = Callable[[Path], "str | None"]
"""Says what an existing output file is: None when the command may replace it (its own kind), else
a description for the message (``"a cortexsim run file"``)."""


def _named(path: object, flag: str) -> str:
    return f"{flag} {path}" if flag else str(path)


def check_path(path: str | os.PathLike, flag: str = "", error: type[CortexsimError] = CortexsimError) -> Path:
    """Refuse a path that no file system takes: empty, with a NUL byte, or too long.

    Parameters
    ----------
    path : str or PathLike
    flag : str, optional
        The argument or key that named it (``"--out"``), for the message.
    error : type, optional
        The exception raised (a :class:`CortexsimError` subclass).

    Returns
    -------
    Path

    Raises
    ------
    CortexsimError
        Naming the path and the limit it breaks.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    shown = text if len(text) <= 80 else f"{text[:60]}...({len(text)} characters)"
    if not text:
        raise error(f"{flag or 'path'}: empty path; give a file name")
    if "\x00" in text:
        raise error(f"{_named(repr(shown), flag)}: the path holds a NUL byte; give a plain file name")
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        raise error(f"{_named(repr(shown), flag)}: the path is not valid text; give a plain file name") from None
    if len(encoded) > PATH_MAX:
        raise error(f"{_named(shown, flag)}: the path is {len(encoded)} bytes long, more than {PATH_MAX}; shorten it")
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise error(
            f"{_named(shown, flag)}: a name in the path is {len(longest)} bytes long, more than the {NAME_MAX} a "
            f"file or folder name may have; shorten it"
        )
    return Path(text)


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _stat_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (or links more than 40 deep)"
    if exc.errno == errno.ENAMETOOLONG:
        return "a path too long for the file system"
    if exc.errno == errno.ENOTDIR:
        return "not found (a part of the path is a file, not a folder)"
    return f"unreadable ({exc.strerror or type(exc).__name__})"


def input_file(
    path: str | os.PathLike,
    flag: str = "",
    what: str = "file",
    error: type[CortexsimError] = CortexsimError,
) -> Path:
    """Refuse an input that is not a regular file once its links are followed.

    Parameters
    ----------
    path : str or PathLike
    flag : str, optional
        The argument or key that named it, for the message.
    what : str, optional
        What the file is (``"config file"``), for the message.
    error : type, optional
        The exception raised.

    Returns
    -------
    Path
        ``path`` (not resolved: messages name it as given).

    Raises
    ------
    CortexsimError
        Missing, a dangling or looping link, a folder, FIFO, device or socket, or unreadable.
    """
    p = check_path(path, flag, error)
    named = _named(p, flag)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        dangling = os.path.lexists(p)
        link = " (a symbolic link to a missing file)" if dangling else ""
        raise error(f"{named}: cannot read the {what}: no such file{link}") from None
    except OSError as exc:
        raise error(f"{named}: cannot read the {what}: it is {_stat_reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{named}: the {what} is {_kind(st.st_mode)}, not a regular file; give a file")
    return p


def read_bytes(
    path: str | os.PathLike,
    flag: str = "",
    what: str = "file",
    limit: int = TEXT_MAX_BYTES,
    error: type[CortexsimError] = CortexsimError,
) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them, never blocking on a FIFO.

    Parameters
    ----------
    path : str or PathLike
    flag, what : str, optional
        For the message (see :func:`input_file`).
    limit : int, optional
        Most bytes accepted (default :data:`TEXT_MAX_BYTES`).
    error : type, optional
        The exception raised.

    Returns
    -------
    bytes

    Raises
    ------
    CortexsimError
        As :func:`input_file`, or the file is larger than ``limit``.
    """
    p = input_file(path, flag, what, error)
    named = _named(p, flag)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{named}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the checks
            raise error(f"{named}: the {what} is {_kind(st.st_mode)}, not a regular file; give a file")
        too_big = error(
            f"{named}: the {what} is larger than {limit / (1 << 20):g} MiB; this is not a {what} (give the right file)"
        )
        if st.st_size > limit:
            raise too_big
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise too_big
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{named}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    finally:
        os.close(fd)


def nearest_existing(path: Path) -> Path:
    """``path`` (made absolute) or its nearest existing ancestor."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def writable_folder(
    folder: str | os.PathLike, flag: str = "--out", error: type[CortexsimError] = CortexsimError
) -> Path:
    """Refuse an output folder (that need not exist yet) that cannot be created or written.

    The nearest existing folder on the way is probed with a temporary file.

    Raises
    ------
    CortexsimError
        The path is too long, it or an ancestor is a file, or the folder does not accept a new file.
    """
    folder = check_path(folder, flag, error)
    existing = nearest_existing(folder)
    if not existing.is_dir():
        where = "" if existing == Path(os.path.abspath(folder)) else f" (its ancestor {existing} is a file)"
        raise error(f"{flag} {folder}: exists and is not a folder{where}; choose a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".cortexsim-probe-", dir=existing)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise error(
            f"{flag} {folder}: cannot write in {existing} ({reason}); choose a folder you can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return folder


def output_file(
    path: str | os.PathLike,
    flag: str,
    *,
    suffixes: tuple[str, ...] = (),
    recognise: Recogniser | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    force: bool = False,
    protected: Recogniser | None = None,
    example: str = "out",
    fix: str = "choose another name, or pass --force to replace it",
    error: type[CortexsimError] = CortexsimError,
) -> Path:
    """Check an output file before anything is computed: its path, its folder and what it would replace.

    The folder must exist and accept a new file; an existing file must be a regular, writable file.

    Parameters
    ----------
    path : str or PathLike
    flag : str
        The argument that named it (``"--nwb"``).
    suffixes : tuple of str, optional
        Accepted endings, lower case (``(".h5", ".hdf5")``); empty: any.
    recognise : callable, optional
        ``recognise(path)`` of an existing regular file: None when the command may replace it
        (a file of its own kind), else what the file is, for the message. Without one, an
        existing non-empty file is refused.
    inputs : iterable of path, optional
        The command's inputs: the output may never be one of them, even with ``force``.
    force : bool, optional
        Replace an existing file that is not recognised.
    protected : callable, optional
        ``protected(path)`` of an existing regular file: what it is when no command may ever replace
        it (a run file, an experiment config), else None; refused even with ``force``.
    example : str, optional
        File stem suggested when ``path`` is a folder.
    fix : str, optional
        What the message of an unrecognised file suggests.
    error : type, optional
        The exception raised.

    Returns
    -------
    Path

    Raises
    ------
    CortexsimError
        One line naming the path and the fix.
    """
    out = check_path(path, flag, error)
    if suffixes and os.path.isdir(out):
        raise error(f"{flag} {out}: is a folder; give a file name such as {out / (example + suffixes[0])}")
    if suffixes and out.suffix.lower() not in suffixes:
        raise error(f"{flag} {out}: expected a file name ending in {' or '.join(suffixes)}")
    parent = Path(os.path.abspath(out)).parent
    if not os.path.lexists(parent):
        raise error(f"{flag} {out}: the folder {parent} does not exist; create it first, or choose another")
    writable_folder(parent, f"{flag} folder", error)
    if not os.path.lexists(out):
        return out
    try:
        st = os.stat(out)
    except OSError as exc:
        raise error(f"{flag} {out}: is {_stat_reason(exc)}; it is left alone: choose another name") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{flag} {out}: exists and is {_kind(st.st_mode)}; it is left alone: choose another name")
    for given in inputs:
        try:
            same = os.path.samefile(out, given)
        except OSError:
            same = False
        if same:
            raise error(f"{flag} {out}: is the command's own input {given}; write to another file")
    if not os.access(out, os.W_OK):
        raise error(
            f"{flag} {out}: exists and is read-only (or immutable); it is left alone: choose another name, or make "
            f"it writable"
        )
    what = None if protected is None or st.st_size == 0 else protected(out)
    if what is not None:
        raise error(
            f"{flag} {out}: exists and is {what}, which no command replaces; it is left alone: choose another name "
            "(delete it yourself if you mean to)"
        )
    if force or st.st_size == 0:
        return out
    what = "a file this command did not write" if recognise is None else recognise(out)
    if what is not None:
        raise error(f"{flag} {out}: exists and is {what}; it is left alone: {fix}")
    return out


def folder_name(name: object, key: str = "experiment.name", error: type[CortexsimError] = CortexsimError) -> str:
    """Refuse a name that cannot safely become a folder (``results/<name>/``).

    Parameters
    ----------
    name : object
        The value from the config.
    key : str, optional
        The dotted key, for the message.
    error : type, optional
        The exception raised.

    Returns
    -------
    str

    Raises
    ------
    CortexsimError
        Not text, empty, longer than :data:`FOLDER_NAME_MAX`, or with a character outside
        :data:`FOLDER_NAME` (``/``, ``..``, a NUL byte, spaces, ...).
    """
    if not isinstance(name, str):
        raise error(f"{key}: expected text (a short name such as 'center_out'), got {name!r}")
    shown = name if len(name) <= 60 else f"{name[:40]}...({len(name)} characters)"
    if len(name) > FOLDER_NAME_MAX:
        raise error(f"{key} = {shown!r}: at most {FOLDER_NAME_MAX} characters (it names the run's folder)")
    if not FOLDER_NAME.fullmatch(name):
        raise error(
            f"{key} = {shown!r}: use letters, digits, '_', '-', '.' and '+', starting with a letter or digit "
            f"(it names the run's folder under results/), e.g. 'center_out'"
        )
    return name
