"""Comparing run files field by field, as the reproducibility and interrupt tests do."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

VOLATILE = re.compile(r"(^|/)(created_utc|finished_utc|derived_from|seconds|elapsed_s|[^/@]*_seconds|checksums)$")
"""Attributes and datasets that ``docs/schema.md`` marks volatile (wall times, dates and paths; ``/checksums``
hashes them)."""


def contents(path: Path) -> dict[str, object]:
    """Every dataset and attribute of a run file, keyed by path (``/group/ds`` and ``/group/ds@attr``)."""
    out: dict[str, object] = {}

    def add(name: str, obj) -> None:
        where = "/" + name if name else ""
        if isinstance(obj, h5py.Dataset):
            out[where] = obj[()]
        for key, value in obj.attrs.items():
            out[f"{where}@{key}"] = value

    with h5py.File(path) as f:
        add("", f)
        f.visititems(add)
    return out


def volatile(key: str) -> bool:
    """True for a field ``docs/schema.md`` marks volatile."""
    if re.fullmatch(r"/stages/[^@]+@order", key):  # completion order: depends on --jobs
        return True
    return bool(VOLATILE.search(key.split("@")[-1] if "@" in key else key))


def same(a: object, b: object) -> bool:
    """Bit-identical values (NaN equals NaN; tables field by field)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.names:
            return a.dtype == b.dtype and all(same(a[n], b[n]) for n in a.dtype.names)
        if a.dtype.kind in "fc":
            return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.all(a == b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return bool(a == b)


def differences(path_a: Path, path_b: Path) -> tuple[list[str], int]:
    """Non-volatile fields that differ (or exist in one file only) and the number of fields compared."""
    a, b = contents(path_a), contents(path_b)
    keys = sorted(k for k in set(a) | set(b) if not volatile(k))
    return [k for k in keys if k not in a or k not in b or not same(a[k], b[k])], len(keys)
