"""A figure written to a file: atomically, with a one-line error when it cannot be."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from matplotlib.figure import Figure

from ..errors import cannot_write


def save(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` atomically (folders created).

    The figure goes to a temporary file in the same folder that is renamed over ``path``
    only once complete, so a crash or Ctrl-C leaves the old figure or the new one, never
    half of one.

    Parameters
    ----------
    fig : Figure
    path : str or Path
        The image file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
    dpi : int

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CortexsimError
        The figure cannot be written (a full disk, a read-only folder): one line naming it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".").lower() or None)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc, "the figure") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
