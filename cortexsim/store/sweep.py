"""A sweep's ``summary.h5``: one row per point, written atomically and read back."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from ..errors import RunFileError
from .datasets import Row, attr_text, read_table, typed_attr, write_table
from .files import open_h5
from .origin import provenance
from .schema import SCHEMA_VERSION, SWEEP_FILE_KIND

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
    with open_h5(path, "r") as f:
        if attr_text(f.attrs.get("file_kind", "")) != SWEEP_FILE_KIND:
            raise RunFileError(f"{path}: not a cortexsim sweep summary (file_kind is not {SWEEP_FILE_KIND!r})")
        try:
            rows = read_table(f, "points")
            columns = tuple(f["points"].dtype.names) if "points" in f else ()
            return SweepSummary(
                rows,
                columns,
                tuple(json.loads(typed_attr(f, "parameters", str, path))),
                typed_attr(f, "sweep", str, path),
                typed_attr(f, "base_config", str, path),
                typed_attr(f, "created_utc", str, path),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise RunFileError(f"{path}: incomplete or malformed sweep summary ({exc})") from None
