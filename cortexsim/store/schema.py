"""What makes a file a run file this version reads: its schema version, kind and layout, checked on open.

``check_run_file`` (the schema version), ``check_layout`` (every path :data:`cortexsim.integrity.SCHEMA`
lists, the provenance, the stage records, each dataset's ``dims``), ``verify_checksums`` (every
dataset's Fletcher-32 sums, ``/checksums`` and the values' ranges; once per version of a file in this
process: :data:`VERIFIED`) and ``file_kind`` (what an existing file is, for a command deciding
whether it may replace it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import integrity, paths
from .._version import __version__
from ..config import parse_toml
from ..errors import ConfigError, CortexsimError, RunFileError
from .datasets import attr_text, short_text, typed_attr

SCHEMA_VERSION = 2
"""Version of the layout written by this module."""

FILE_KIND = "cortexsim run"


def check_run_file(f: h5py.File, path: str | Path) -> None:
    """Raise :class:`RunFileError` unless ``f`` is a cortexsim run file this version reads."""
    if "schema_version" not in f.attrs:
        raise RunFileError(
            f"{path}: not a cortexsim run file (no 'schema_version' attribute at the root); "
            f"it was written by another program"
        )
    version = typed_attr(f, "schema_version", int, path)
    raw = f.attrs["schema_version"]
    if not isinstance(raw, (int, np.integer)):  # 2.0 is not a schema this code wrote
        shown = short_text(raw.item() if isinstance(raw, np.generic) else raw)
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
            typed_attr(f, name, str, path)
        typed_attr(f, "seed", int, path)
        try:
            parse_toml(typed_attr(f, "config", str, path), f"{path}@config")
        except ConfigError as exc:
            raise RunFileError(f"{exc}; the file is damaged") from None
    for damage in integrity.structure_damage(f, str(path)):
        raise RunFileError(damage.text)
    if "stages" in f:
        for name, g in f["stages"].items():
            for attr, kind in _STAGE_ATTRS.items():
                typed_attr(g, attr, kind, path)
            try:
                groups = json.loads(typed_attr(g, "groups", str, path))
                json.loads(typed_attr(g, "metrics", str, path))
            except json.JSONDecodeError:
                raise RunFileError(f"{path}:/stages/{name}: malformed 'groups' or 'metrics' attribute") from None
            listed = json.loads(typed_attr(g, "metrics", str, path))
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


VERIFIED: set[tuple] = set()
VERIFY_BLOCK = 32 << 20
"""Bytes read at a time when checking a dataset's checksums."""


def file_version(path: str | Path) -> tuple | None:
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
    key = file_version(path)
    if key is not None and key in VERIFIED:
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
        VERIFIED.add(key)
    return len(checked)


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


SWEEP_FILE_KIND = "cortexsim sweep summary"
"""Root ``file_kind`` of a sweep's ``summary.h5``."""

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
