"""Exception types that cortexsim raises for problems a user can fix.

Every error carries one line that names the offending key or file, the value
found and what is allowed, so that the command line can print it without a
traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class CortexsimError(Exception):
    """Base class of all user-facing cortexsim errors."""


class ConfigError(CortexsimError, ValueError):
    """A configuration or specification value is missing, unknown or out of range."""


class RunFileError(CortexsimError, OSError):
    """An HDF5 file is not a readable cortexsim run file (foreign, truncated, newer schema)."""


class TrainingError(CortexsimError, RuntimeError):
    """Training cannot continue (for example the loss became NaN or infinite)."""


_WRITE_FIXES = {
    errno.ENOSPC: "free some disk space (or choose a folder on another disk) and rerun",
    errno.EDQUOT: "free some of your disk quota (or choose a folder on another disk) and rerun",
    errno.EFBIG: "the file is larger than this file system allows; choose a folder on another disk",
    errno.EROFS: "the file system is read-only; choose a folder you can write to",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EIO: "the disk reported an input/output error; check it, or choose a folder on another disk",
}
"""What to do about an ``OSError`` while a file is written, by its ``errno``."""


def cannot_write(path: str | Path, exc: OSError, what: str = "the file") -> CortexsimError:
    """The one-line error for an ``OSError`` raised while ``what`` was written to ``path``.

    For a disk that fills (``ENOSPC``, ``EDQUOT``), a read-only or forbidden folder and the
    like: the message names the file, the system's reason and the fix, as the run file's own
    checks do, instead of a traceback.

    Parameters
    ----------
    path : str or Path
        The file being written.
    exc : OSError
        What the write raised.
    what : str
        The file in words, e.g. ``"the figure"``.

    Returns
    -------
    CortexsimError
        To be raised ``from None``.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _WRITE_FIXES.get(exc.errno or 0, "check the folder and rerun")
    return CortexsimError(f"{path}: cannot write {what} ({reason}); {fix}")


def one_line(text: str) -> str:
    r"""``text`` as one printable line: every line break and control character escaped (``\x1e``, ``\n``).

    A message can quote what a user gave -- a file name, a key -- and those may hold characters that
    ``str.splitlines`` and terminals break lines at (``\n``, ``\r``, ``\x0b``, ``\x0c``, ``\x1c`` to
    ``\x1e``, ``\x85``, ``\u2028``, ``\u2029``) or that a terminal interprets (the other C0 and C1
    controls, DEL).  The command line prints every error through this, so an error is one line whatever
    was quoted in it.
    """
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\t" or (32 <= code < 127) or (code > 160 and ch not in "\u2028\u2029"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii") if code < 256 else f"\\u{code:04x}")
    return "".join(out)
