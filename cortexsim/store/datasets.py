"""Datasets, tables and attributes of cortexsim's HDF5 files: how every group's writer and reader handles them.

``write_array`` (a dataset with its ``units``, ``dims`` and ``description``, Fletcher-32 checksummed),
``write_table`` / ``read_table`` (a list of dict rows as a compound dataset), typed attributes
(``typed_attr``, ``attr_text``), and ``reader``, the decorator that turns a missing or malformed part of
a file into one :class:`~cortexsim.errors.RunFileError` line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import CortexsimError, RunFileError

STR = h5py.string_dtype("utf-8")


_KINDS = {int: "a whole number", float: "a number", str: "text"}


def reader(what: str) -> Callable:
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


def typed_attr(obj: Any, name: str, kind: type, path: str | Path | None = None) -> Any:
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
    raise RunFileError(f"{where}: expected {_KINDS[kind]}, got {short_text(value)}")


def short_text(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (for messages)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def checksummed(data: np.ndarray) -> dict[str, bool]:
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
    ds = group.create_dataset(name, data=data, **kwargs, **checksummed(data))
    ds.attrs.update({"units": units, "dims": ",".join(dims), "description": description, **attrs})
    return ds


def attr_text(value: Any) -> str:
    """An HDF5 string attribute as ``str`` (h5py may return ``bytes``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def jsonable(value: Any) -> Any:
    """An attribute's value as plain Python (bytes as text, arrays as lists, numpy scalars as numbers)."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return [jsonable(x) for x in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [jsonable(x) for x in value]
    return value


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
    dtype = np.dtype([(k, STR if isinstance(rows[0][k], str) else np.float64) for k in keys])
    data = np.array([tuple(r.get(k, np.nan) for k in keys) for r in rows], dtype=dtype)
    ds = group.create_dataset(name, data=data, **checksummed(data))
    ds.attrs.update({"units": "1", "dims": "row", "description": description})
    for col, text in (columns or {}).items():
        ds.attrs[f"col_{col}"] = text


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


def write_record_group(
    parent: h5py.Group,
    name: str,
    tables: Any,
    arrays: Any,
    attrs: Any,
    table_text: dict[str, str],
) -> h5py.Group:
    """Write ``parent/name`` (replacing it): its attributes, its tables (:func:`write_table`) and arrays.

    ``tables`` maps a table's name to its rows (described by ``table_text``), ``arrays`` a dataset's name
    to ``(data, units, dims, description)``; the perturbation and stimulation groups are written so.
    """
    if name in parent:
        del parent[name]
    g = parent.create_group(name)
    g.attrs.update(dict(attrs or {}))
    for table, rows in tables.items():
        write_table(g, table, list(rows), table_text.get(table, "One row per entry."))
    for key, (data, units, dims, description) in (arrays or {}).items():
        write_array(g, key, data, units=units, dims=dims, description=description)
    return g


def read_record_group(g: h5py.Group) -> dict[str, Any]:
    """A group :func:`write_record_group` wrote: ``{"attrs": {...}, name: rows or array}``."""
    entry: dict[str, Any] = {"attrs": {k: jsonable(val) for k, val in g.attrs.items()}}
    for key, ds in g.items():
        entry[key] = read_table(g, key) if ds.dtype.names else ds[()]
    return entry
