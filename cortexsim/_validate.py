"""Small helpers that turn loose TOML mappings into checked values.

They raise :class:`~cortexsim.errors.ConfigError` with one line naming the key
(as a dotted path such as ``task.n_targets``), the value found and what is
allowed, so the command line can print it as is.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .errors import ConfigError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""Range of the integers a run file (HDF5 int64 attributes) and a TOML file can hold."""


def check_keys(mapping: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise if ``mapping`` holds a key outside ``allowed``; suggest the closest one."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(mapping).__name__} {mapping!r}")
    allowed = sorted(allowed)
    for key in mapping:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{join(where, key)}: unknown key{hint}; allowed keys: {', '.join(allowed)}")


def join(where: str, key: str) -> str:
    """Dotted path of ``key`` inside ``where``."""
    return f"{where}.{key}" if where else str(key)


def number(
    value: Any,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Check that ``value`` is a finite number inside the given bounds.

    Parameters
    ----------
    value : Any
        The value read from a config file.
    where : str
        Dotted name of the key, used in the error message.
    low, high : float, optional
        Inclusive bounds (``low`` is exclusive when ``low_open``).
    integer : bool
        Require a whole number that fits in a 64-bit signed integer (:data:`INT64_MIN`,
        :data:`INT64_MAX`), as run files and TOML store integers.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: expected {kind}, got {value!r}")
    if integer and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise ConfigError(
            f"{where}: {value!r} does not fit in a 64-bit integer (run files and TOML store "
            f"integers as int64); allowed range {_int_range(low, high, low_open)}"
        )
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        finite = False
    if not finite:
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if integer and float(value) != int(value):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if integer and not INT64_MIN <= int(value) <= INT64_MAX:
        raise ConfigError(
            f"{where}: {value!r} does not fit in a 64-bit integer (run files and TOML store "
            f"integers as int64); allowed range {_int_range(low, high, low_open)}"
        )
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lo = "-inf" if low is None else (str(int(low)) if integer and float(low).is_integer() else f"{low:g}")
        hi = "inf" if high is None else (str(int(high)) if integer and float(high).is_integer() else f"{high:g}")
        bracket = "(" if low_open else "["
        raise ConfigError(f"{where}: {value!r} is outside the allowed range {bracket}{lo}, {hi}]")
    return int(value) if integer else float(value)


def _int_range(low: float | None, high: float | None, low_open: bool) -> str:
    """The allowed range of a whole number, within the int64 range."""
    lo = INT64_MIN if low is None else max(INT64_MIN, math.floor(low) + 1 if low_open else math.ceil(low))
    hi = INT64_MAX if high is None else min(INT64_MAX, math.floor(high))
    return f"[{lo}, {hi}]"


def choice(value: Any, where: str, options: Iterable[str]) -> str:
    """Check that ``value`` is one of ``options``."""
    options = list(options)
    if value not in options:
        near = difflib.get_close_matches(str(value), options, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{where}: {value!r} is not allowed{hint}; choose one of {', '.join(options)}")
    return value


def names(value: Any, where: str, known: Iterable[str]) -> tuple[str, ...]:
    """Check that ``value`` is a list of known names (populations, channels, ...)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of names, got {value!r}")
    known = list(known)
    for item in value:
        choice(item, where, known)
    return unique(value, where)


def unique(value: Iterable[Any], where: str) -> tuple[Any, ...]:
    """Check that a list naming things (populations, architectures, protocols, ...) names each once.

    Parameters
    ----------
    value : iterable
        The checked list.
    where : str
        Dotted name of the key, used in the error message.

    Returns
    -------
    tuple
        ``value`` as a tuple.

    Raises
    ------
    ConfigError
        ``<where>: 'rnn' is listed twice; list each name once``.
    """
    items = tuple(value)
    seen: list[Any] = []
    for item in items:
        if item in seen:
            raise ConfigError(f"{where}: {item!r} is listed twice; list each name once")
        seen.append(item)
    return items


def finite_array(x: Any, name: str, last: int) -> np.ndarray:
    """``x`` as a finite float array whose last axis has ``last`` entries; ConfigError naming ``name`` else."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a numeric array, got {type(x).__name__}") from None
    if a.ndim == 0 or a.shape[-1] != last:
        raise ConfigError(f"{name}: expected shape (..., {last}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{name}: contains NaN or infinite values")
    return a


def curl_matrix(value: Any) -> np.ndarray:
    """A checked velocity-dependent force field on the hand, a finite (2, 2) matrix in N s/m (zeros for None)."""
    if value is None:
        return np.zeros((2, 2))
    try:
        field = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        field = np.full(1, np.nan)
    if field.shape != (2, 2) or not np.isfinite(field).all():
        raise ConfigError(f"curl: expected a finite (2, 2) matrix in N s/m, got {value!r}")
    return field
