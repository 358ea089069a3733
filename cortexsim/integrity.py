"""What a run file must hold, and the checksums of everything that is not a dataset's bytes.

Two checks that :func:`cortexsim.store.open_run` runs on every run file before a reader sees it:

* :data:`SCHEMA`, one table of the paths the readers use: for each, whether it must be there
  when its parent group is, its dtype, its shape in named sizes shared with the other paths
  (``N`` units, ``C`` reach conditions, ``T`` time steps, ...), whether its values must be
  finite or lie in a range, and the type and range of each of its attributes.
  :func:`structure_damage` checks presence, kinds, dtypes, shapes and attributes;
  :func:`value_damage` reads the data and checks finiteness and ranges.
* ``/checksums``, a table written last into every run file (:func:`write_checksums`): one SHA-256
  per attribute (``/path@name``) and per object (``/path``: its members, or a dataset's dtype,
  shape and checksum filter, and the bytes of a small dataset). Fletcher-32 already guards the
  bytes of every dataset; this guards the rest -- the checkpoint's random-generator state, the
  ``/metrics`` the quality gate reads, ``dt``, ``k``, a deleted or added dataset.
  :func:`checksum_damage` compares. A file without ``/checksums`` (written before they existed)
  is not checked this way; one with it must match it everywhere.

Every problem is a :class:`Damage`: the path and one line naming it and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

CHECKSUMS = "checksums"
"""The root dataset holding the checksums (path, sha256); itself guarded by Fletcher-32."""

SMALL_BYTES = 1 << 16
"""Datasets up to this size have their bytes in their object checksum too."""

VALUE_BLOCK = 32 << 20
"""Bytes read at a time when checking a dataset's values."""

_STR = h5py.string_dtype("utf-8")
FIX = "restore a copy, or rerun the stage that writes it (cortexsim run --force)"


@dataclass(frozen=True)
class Damage:
    """One problem found in a run file.

    Attributes
    ----------
    path : str
        The object (``/task/params/angle``) or attribute (``/task@dt``) at fault.
    text : str
        One line for the user: the file, the path, what is wrong and what to do.
    """

    path: str
    text: str


# ---------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class A:
    """What an attribute must be.

    ``kind``: ``int`` (an integer type, not a float that happens to be whole), ``float`` (a real
    number), ``str``, ``"json"`` (text holding JSON of ``json_type``) or ``"ints"`` / ``"floats"``
    (a 1-D array). ``low`` / ``high``: inclusive bounds; ``above``: strict lower bound;
    ``finite``: no NaN or infinity; ``nan``: NaN allowed; ``bind``: the named size it sets (its
    value, or its length for arrays and ``items`` text); ``items``: comma-separated text whose
    item count is that size.
    """

    kind: Any
    need: bool = True
    low: float | None = None
    high: float | None = None
    above: float | None = None
    finite: bool = False
    nan: bool = True
    bind: str = ""
    items: str = ""
    json_type: type = dict


@dataclass(frozen=True)
class Rule:
    """What one path (``*`` matches any one name) must be.

    ``need``: must exist when its parent group does. ``dtype``: allowed numpy kinds (``"f"``
    float, ``"iu"`` integer, ``"b"`` bool, ``"V"`` table); ``shape``: one named size or number
    per axis (``"A*M"`` a product; ``{1}`` the first ``*`` of the path, for sizes per ANN or per
    population); ``finite``; ``low`` / ``high``: inclusive bounds of the values (``high`` may
    name a size: values below it).
    """

    path: str
    group: bool = False
    need: bool = True
    dtype: str = ""
    shape: tuple[str | int, ...] | None = None
    finite: bool = False
    low: float | None = None
    high: float | str | None = None
    attrs: dict[str, A] = field(default_factory=dict)


_POS = {"above": 0.0, "finite": True}
_FINITE_F = {"dtype": "f", "finite": True}
_NUMBERS = {"dtype": "fiub", "finite": True}

SCHEMA: tuple[Rule, ...] = (
    Rule(
        "/",
        group=True,
        attrs={
            "schema_version": A(int, low=1),
            "seed": A(int, low=0),
            "config": A(str),
            "created_utc": A(str),
            "cortexsim_version": A(str),
            "git_commit": A(str),
        },
    ),
    Rule("/circuit", group=True, need=False, attrs={"spec": A(str), "n_units": A(int, low=1, bind="N")}),
    Rule("/circuit/populations", dtype="V", shape=("P",)),
    Rule("/circuit/connectome", group=True),
    Rule("/circuit/connectome/pre", dtype="iu", shape=("S",), low=0, high="N"),
    Rule("/circuit/connectome/post", dtype="iu", shape=("S",), low=0, high="N"),
    Rule("/circuit/connectome/sign", dtype="iu", shape=("S",), low=-1, high=1),
    Rule("/circuit/connectome/weight_init", shape=("S",), low=0, **_FINITE_F),
    Rule("/circuit/connectome/weight_trained", need=False, shape=("S",), low=0, **_FINITE_F),
    Rule("/circuit/inputs", group=True),
    Rule("/circuit/inputs/*", need=False, dtype="b", shape=("N",)),
    Rule("/circuit/output_mask", dtype="b", shape=("N",)),
    Rule(
        "/task",
        group=True,
        need=False,
        attrs={
            "dt": A(float, **_POS, bind="dt"),
            "input_names": A(str, items="I"),
            "input_groups": A(str, items="I"),
            "output_names": A(str, items="O"),
        },
    ),
    Rule("/task/inputs", shape=("C", "T", "I"), **_FINITE_F),
    Rule("/task/targets", shape=("C", "T", "O"), **_FINITE_F),
    Rule("/task/mask", shape=("C", "T", "O"), **_FINITE_F),
    Rule("/task/params", group=True),
    Rule("/task/params/move_on", shape=("C",), dtype="f"),
    Rule("/task/params/angle", shape=("C",), dtype="f"),
    Rule("/task/params/*", need=False, shape=("C",)),
    Rule(
        "/rate",
        group=True,
        need=False,
        attrs={
            "dt": A(float, need=False, **_POS),
            "readout_units": A("ints", need=False, low=0, bind="R"),
            "tau_s": A("floats", need=False, above=0, finite=True, bind="N"),
        },
    ),
    Rule("/rate/states", shape=("C", "T", "N"), **_FINITE_F),
    Rule("/rate/rates", shape=("C", "T", "N"), **_FINITE_F),
    Rule("/rate/outputs", shape=("C", "T", "O"), **_FINITE_F),
    Rule("/rate/W_in", shape=("N", "IN"), **_FINITE_F),  # the task's inputs, and a body's feedback channels
    Rule("/rate/W_out", shape=("Y", "R"), **_FINITE_F),
    Rule("/rate/b", shape=("N",), **_FINITE_F),
    Rule("/rate/b_out", shape=("Y",), **_FINITE_F),
    Rule("/rate/x0", shape=("N",), **_FINITE_F),
    Rule("/*/effector/*", need=False, **_NUMBERS),
    Rule("/ann/*/effector/*", need=False, **_NUMBERS),
    Rule("/ann/*", group=True, need=False),
    Rule("/ann/*/hidden", shape=("C", "T", "H{1}"), **_FINITE_F),
    Rule("/ann/*/outputs", shape=("C", "T", "O"), **_FINITE_F),
    Rule("/ann/*/weights/*", need=False, **_NUMBERS),
    Rule(
        "/spiking",
        group=True,
        need=False,
        attrs={
            "k": A(int, low=1, bind="K"),
            "n_reach_conditions": A(int, low=1, bind="C"),
            "trials_per_condition": A(int, low=1, bind="M"),
            "offset_mV": A(float, finite=True),
            "sim_dt_s": A(float, **_POS),
        },
    ),
    Rule("/spiking/rates", shape=("C", "T", "N"), low=0, **_FINITE_F),
    Rule("/spiking/rates_trials", shape=("A", "M", "T", "N"), low=0, **_FINITE_F),
    Rule("/spiking/outputs", shape=("A", "M", "T", "O"), **_FINITE_F),
    Rule("/spiking/trials", group=True),
    Rule("/spiking/trials/condition", dtype="iu", shape=("A*M",), low=0, high="A"),
    Rule("/spiking/trials/start", shape=("A*M",), low=0, **_FINITE_F),
    Rule("/spiking/params/*", need=False, **_NUMBERS),
    Rule(
        "/spikes/*",
        group=True,
        need=False,
        attrs={"population": A(str), "n_neurons": A(int, low=0, bind="K{1}")},
    ),
    Rule("/spikes/*/timestamps", shape=("X{1}",), low=0, **_FINITE_F),
    Rule("/spikes/*/node_ids", dtype="iu", shape=("X{1}",), low=0, high="K{1}"),
    Rule("/metrics", group=True, need=False, attrs={"*": A(float)}),
    Rule(
        "/stages/*",
        group=True,
        need=False,
        attrs={
            "key": A(str),
            "seconds": A(float, low=0, finite=True),
            "order": A(int, low=1),
            "finished_utc": A(str),
            "groups": A("json", json_type=list),
            "metrics": A("json", json_type=list),
        },
    ),
    Rule("/training", group=True, need=False),
    Rule("/training/loss", shape=("ITER",), dtype="f"),
    Rule("/training/val_iteration", shape=("VAL",), dtype="f"),
    Rule("/training/*", need=False),
    Rule(
        "/training/checkpoint",
        group=True,
        attrs={
            "iteration": A(int, low=0),
            "elapsed_s": A(float, low=0, finite=True),
            "best_val_loss": A(float, nan=False),
            "best_iteration": A(int, low=0),
            "bad_evals": A(int, low=0),
            "done": A(str),
            "scales": A("json"),
            "rng_batch": A("json"),
            "rng_noise": A("json"),
            "config": A(str),
        },
    ),
    Rule("/training/checkpoint/*/*", need=False, **_NUMBERS),
    Rule("/control/*", need=False, **_NUMBERS),
)
"""Every path the readers rely on, with what it must be (see :class:`Rule` and :class:`A`)."""


def _matches(f: h5py.File, pattern: str) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """(path, names the ``*`` matched, object) of every existing object matching ``pattern``."""
    parts = [p for p in pattern.split("/") if p]
    found: list[tuple[str, tuple[str, ...], Any]] = [("", (), f)]
    for part in parts:
        nxt = []
        for path, stars, obj in found:
            if not isinstance(obj, h5py.Group):
                continue
            names = [n for n in obj if n != CHECKSUMS or path] if part == "*" else [part] if part in obj else []
            for name in names:
                nxt.append((f"{path}/{name}", stars + ((name,) if part == "*" else ()), obj[name]))
        found = nxt
    yield from ((path or "/", stars, obj) for path, stars, obj in found)


def _missing(f: h5py.File, rule: Rule) -> Iterator[str]:
    """Paths of ``rule`` that are absent although their parent group is present."""
    if not rule.need or rule.path == "/":
        return
    parent, name = rule.path.rsplit("/", 1)
    if "*" in name:
        return
    for path, _, obj in _matches(f, parent or "/"):
        if isinstance(obj, h5py.Group) and name not in obj:
            yield f"{path.rstrip('/')}/{name}"


def _attr_value(obj: Any, name: str) -> Any:
    value = obj.attrs[name]
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind != "O":
        value = value[()]
    return value


def _check_attr(value: Any, rule: A) -> tuple[str, int | None]:
    """(what is wrong or "", the size it binds)."""
    if rule.kind is str or rule.kind == "json":
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return "is not UTF-8 text", None
        if not isinstance(value, str):
            return f"must be text, is {_short(value)}", None
        if rule.kind == "json":
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                return "is not valid JSON", None
            if not isinstance(parsed, rule.json_type):
                return f"must hold a JSON {rule.json_type.__name__}, holds {type(parsed).__name__}", None
            return "", None
        return "", (len(value.split(",")) if rule.items else None)
    if rule.kind in ("ints", "floats"):
        arr = np.asarray(value)
        want = "iu" if rule.kind == "ints" else "fiu"
        if arr.ndim != 1 or arr.dtype.kind not in want:
            return f"must be a 1-D array of {rule.kind[:-1]}s, is {_short(value)}", None
        return _range(arr.astype(float), rule), len(arr)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"must be {'a whole number' if rule.kind is int else 'a number'}, is {_short(value)}", None
    if rule.kind is int and not isinstance(value, (int, np.integer)):
        return f"must be an integer, is the float {_short(value)}", None
    problem = _range(np.asarray([float(value)]), rule).replace(f"is {_short(float(value))}", f"is {_short(value)}")
    return problem, (int(value) if rule.kind is int and not problem else None)


def _range(x: np.ndarray, rule: A) -> str:
    if not rule.nan and np.isnan(x).any():
        return "is NaN"
    if rule.finite and not np.isfinite(x).all():
        return f"must be finite, is {_short(x[~np.isfinite(x)][0])}"
    if rule.low is not None and (x < rule.low).any():
        return f"must be >= {rule.low:g}, is {_short(x[x < rule.low][0])}"
    if rule.high is not None and (x > rule.high).any():
        return f"must be <= {rule.high:g}, is {_short(x[x > rule.high][0])}"
    if rule.above is not None and not (x > rule.above).all():
        return f"must be > {rule.above:g}, is {_short(x[~(x > rule.above)][0])}"
    return ""


def _short(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Sizes:
    """The named sizes bound so far, and where each came from."""

    def __init__(self) -> None:
        self.value: dict[str, int] = {}
        self.source: dict[str, str] = {}

    def name(self, symbol: str, stars: tuple[str, ...]) -> str:
        return symbol.replace("{1}", stars[0]) if "{1}" in symbol and stars else symbol

    def get(self, symbol: str) -> int | None:
        if "*" in symbol:
            parts = [self.value.get(s) for s in symbol.split("*")]
            return None if None in parts else math.prod(p for p in parts if p is not None)
        return self.value.get(symbol)

    def check(self, symbol: str, n: int, where: str) -> str:
        """Empty when ``n`` agrees with ``symbol`` (binding it if new), else what disagrees."""
        known = self.get(symbol)
        if known is None:
            if "*" not in symbol:
                self.value[symbol], self.source[symbol] = n, where
            return ""
        if known != n:
            source = " x ".join(self.source.get(s, s) for s in symbol.split("*"))
            return f"{n}, but {source} says {known}"
        return ""


def _walk(f: h5py.File, path: str) -> Iterator[tuple[Damage | None, Rule, str, Any, _Sizes]]:
    """Check presence, kinds, dtypes, shapes and attributes, rule by rule; yields problems and matched objects."""
    sizes = _Sizes()
    for rule in SCHEMA:
        for where in _missing(f, rule):
            what = "group" if rule.group else "dataset"
            yield (
                Damage(
                    where,
                    f"{path}: {where} is missing (a required {what}); the file is incomplete or was altered -- {FIX}",
                ),
                rule,
                where,
                None,
                sizes,
            )
        for where, stars, obj in _matches(f, rule.path):
            if rule.group != isinstance(obj, h5py.Group):
                if rule.path.endswith("*"):  # a wildcard names one kind; the other kind is another rule's
                    continue
                want = "a group" if rule.group else "a dataset"
                yield Damage(where, f"{path}: {where} is not {want}; {FIX}"), rule, where, None, sizes
                continue
            bad = _object_problem(obj, rule, stars, sizes, where)
            if bad:
                yield Damage(where, f"{path}: {where} {bad}; the file was altered -- {FIX}"), rule, where, None, sizes
                continue
            for name, arule in rule.attrs.items():
                names = [n for n in obj.attrs if n not in ("description",)] if name == "*" else [name]
                for attr in names:
                    at = f"{where.rstrip('/')}@{attr}" if where != "/" else f"/@{attr}"
                    if attr not in obj.attrs:
                        if arule.need:
                            yield (
                                Damage(at, f"{path}: {at} is missing; the file is incomplete -- {FIX}"),
                                rule,
                                at,
                                None,
                                sizes,
                            )
                        continue
                    try:
                        problem, n = _check_attr(_attr_value(obj, attr), arule)
                    except Exception as exc:  # h5py cannot decode it
                        problem, n = f"is unreadable ({type(exc).__name__})", None
                    if not problem and n is not None and (arule.bind or arule.items):
                        symbol = sizes.name(arule.bind or arule.items, stars)
                        disagree = sizes.check(symbol, n, at)
                        problem = f"gives {symbol} = {disagree}" if disagree else ""
                    if problem:
                        yield (
                            Damage(at, f"{path}: {at} {problem}; the file was altered -- {FIX}"),
                            rule,
                            at,
                            None,
                            sizes,
                        )
            yield None, rule, where, obj, sizes


def _object_problem(obj: Any, rule: Rule, stars: tuple[str, ...], sizes: _Sizes, where: str) -> str:
    if rule.group:
        return ""
    if rule.dtype and obj.dtype.kind not in rule.dtype:
        kinds = {"f": "floats", "i": "integers", "u": "integers", "b": "booleans", "V": "a table"}
        return f"holds {obj.dtype}, expected {' or '.join(sorted({kinds[k] for k in rule.dtype}))}"
    if rule.dtype == "" and obj.dtype.kind not in "fiub" and (rule.finite or rule.low is not None):
        return f"holds {obj.dtype}, expected numbers"
    if rule.shape is None:
        return ""
    if obj.ndim != len(rule.shape):
        return f"has {obj.ndim} dimensions (shape {obj.shape}), expected {len(rule.shape)}"
    for axis, (symbol, n) in enumerate(zip(rule.shape, obj.shape)):
        if isinstance(symbol, int):
            disagree = "" if n == symbol else f"{n}, expected {symbol}"
        else:
            symbol = sizes.name(symbol, stars)
            disagree = sizes.check(symbol, n, f"{where} (axis {axis})")
        if disagree:
            return f"has shape {obj.shape}: axis {axis} ({symbol}) is {disagree}"
    return ""


def structure_damage(f: h5py.File, path: str) -> list[Damage]:
    """Every path of :data:`SCHEMA` that is missing, of the wrong kind, dtype or shape, or has a bad attribute."""
    return [d for d, *_ in _walk(f, str(path)) if d is not None]


def value_damage(f: h5py.File, path: str) -> list[Damage]:
    """Every dataset whose values break its rule (NaN or infinite where finite, out of range); reads the data."""
    out = []
    for damage, rule, where, obj, sizes in _walk(f, str(path)):
        if damage is not None or obj is None or rule.group or not (rule.finite or rule.low is not None or rule.high):
            continue
        high = sizes.get(sizes.name(rule.high, ())) if isinstance(rule.high, str) else rule.high
        if isinstance(rule.high, str) and "{1}" in rule.high:
            star = where.split("/")[rule.path.split("/").index("*")]
            high = sizes.get(rule.high.replace("{1}", star))
        exclusive = isinstance(rule.high, str)
        try:
            problem = _values_problem(obj, rule.finite, rule.low, high, exclusive)
        except Exception as exc:  # a read that fails is the checksum check's to report
            problem = f"cannot be read ({type(exc).__name__})"
        if problem:
            out.append(Damage(where, f"{path}: {where} {problem}; the file was altered -- {FIX}"))
    return out


def _values_problem(ds: h5py.Dataset, finite: bool, low: float | None, high: float | None, exclusive: bool) -> str:
    if ds.size == 0 or ds.dtype.kind not in "fiub":
        return ""
    row = max(1, ds.nbytes // max(ds.shape[0], 1)) if ds.ndim else ds.nbytes
    step = max(1, VALUE_BLOCK // max(row, 1))
    for start in range(0, ds.shape[0] if ds.ndim else 1, step):
        x = np.asarray(ds[start : start + step] if ds.ndim else ds[()])
        if finite and x.dtype.kind == "f" and not np.isfinite(x).all():
            return f"holds {_short(x[~np.isfinite(x)].ravel()[0])} where only finite numbers belong"
        if low is not None and (x < low).any():
            return f"holds {_short(x[x < low].ravel()[0])}, below the smallest allowed value {low:g}"
        if high is not None and ((x >= high) if exclusive else (x > high)).any():
            bad = x[(x >= high) if exclusive else (x > high)].ravel()[0]
            return f"holds {_short(bad)}, {'not below' if exclusive else 'above'} {high:g}"
    return ""


# ---------------------------------------------------------------------------
# Checksums of attributes, members and small datasets
# ---------------------------------------------------------------------------


def _feed(h: Any, value: Any) -> None:
    """Feed a value (attribute or array) into a hash, the same however h5py returns it (str or bytes)."""
    if isinstance(value, (str, bytes)):
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        h.update(b"s%d:" % len(raw))
        h.update(raw)
    elif isinstance(value, np.ndarray):
        if value.dtype.names:
            h.update(b"t" + repr(value.shape).encode())
            for name in value.dtype.names:
                h.update(name.encode() + b"\0")
                _feed(h, value[name])
        elif value.dtype.kind in "OSU":
            h.update(b"o" + repr(value.shape).encode())
            for x in value.ravel():
                _feed(h, x)
        else:
            a = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
            h.update(b"a" + a.dtype.str.encode() + repr(a.shape).encode())
            h.update(a.tobytes())
    elif isinstance(value, (np.generic, bool, int, float)):
        _feed(h, np.asarray(value))
    else:
        h.update(b"r" + repr(value).encode())


def _digest(value: Any) -> str:
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:32]


def _dtype_text(dtype: np.dtype) -> str:
    if dtype.names:
        return "(" + ",".join(f"{n}:{_dtype_text(dtype[n])}" for n in dtype.names) + ")"
    return "str" if h5py.check_string_dtype(dtype) else dtype.newbyteorder("<").str


def _object_digest(obj: Any) -> str:
    if isinstance(obj, h5py.Group):
        return _digest(np.array(sorted(n for n in obj if not (obj.name == "/" and n == CHECKSUMS)), dtype=object))
    text = f"{_dtype_text(obj.dtype)}|{obj.shape}|{obj.fletcher32}"
    h = hashlib.sha256()
    _feed(h, text)
    if obj.size * obj.dtype.itemsize <= SMALL_BYTES:
        data = obj[()]
        _feed(h, data if isinstance(data, (str, bytes)) else np.asarray(data))
    return h.hexdigest()[:32]


def digests(f: h5py.File) -> dict[str, str]:
    """Checksum of every object (``/path``) and attribute (``/path@name``) of ``f`` except ``/checksums``."""
    out: dict[str, str] = {}

    def add(path: str, obj: Any) -> None:
        out[path] = _object_digest(obj)
        for name in obj.attrs:
            out[f"{path.rstrip('/')}@{name}" if path != "/" else f"/@{name}"] = _digest(obj.attrs[name])

    add("/", f)
    f.visititems(lambda name, obj: None if name == CHECKSUMS else add("/" + name, obj))
    return out


def write_checksums(f: h5py.File) -> None:
    """Write ``/checksums`` (replacing it): the checksum of every object and attribute as the file now is."""
    if CHECKSUMS in f:
        del f[CHECKSUMS]
    table = np.array(sorted(digests(f).items()), dtype=[("path", _STR), ("sha256", _STR)])
    ds = f.create_dataset(CHECKSUMS, data=table, fletcher32=True)
    ds.attrs.update(
        {
            "units": "1",
            "dims": "entry",
            "description": "SHA-256 (first 128 bits) of every attribute (/path@name) and object (/path: a group's "
            "member names; a dataset's dtype, shape, checksum filter and, up to 64 KiB, its bytes) as written; "
            "cortexsim refuses a file that no longer matches.",
        }
    )


def checksum_damage(f: h5py.File, path: str) -> list[Damage]:
    """What differs from ``/checksums`` (nothing for a file written without it)."""
    if CHECKSUMS not in f:
        return []
    try:
        table = f[CHECKSUMS][()]
        recorded = {_text(p): _text(d) for p, d in zip(table["path"], table["sha256"])}
    except Exception as exc:
        return [Damage(f"/{CHECKSUMS}", f"{path}: /{CHECKSUMS} is unreadable ({type(exc).__name__}); {FIX}")]
    try:
        now = digests(f)
    except Exception as exc:
        return [Damage("/", f"{path}: damaged file structure ({type(exc).__name__}: {exc}); {FIX}")]
    out = []
    rank = {"missing": 0, "added": 1, "attribute": 2, "object": 3}  # the most specific first

    def order(key: str) -> tuple[int, int, str]:
        kind = (
            "missing" if key not in now else "added" if key not in recorded else "attribute" if "@" in key else "object"
        )
        return rank[kind], key.count("/"), key

    for key in sorted(set(recorded) | set(now), key=order):
        what = "attribute" if "@" in key else "object"
        if key not in now:
            text = f"is missing: the {what} was deleted after the file was written (/{CHECKSUMS} lists it)"
        elif key not in recorded:
            text = f"was added after the file was written (/{CHECKSUMS} does not list it)"
        elif now[key] != recorded[key]:
            text = (
                "was changed after the file was written (it no longer matches its checksum in /checksums)"
                if what == "attribute"
                else "was changed after the file was written (its members, dtype, shape or data no longer match "
                "/checksums)"
            )
        else:
            continue
        out.append(Damage(key, f"{path}: {key} {text}; {FIX}"))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------
# Every problem at once (cortexsim inspect)
# ---------------------------------------------------------------------------


def path_in(text: str) -> str:
    """The first run-file path (``/a/b`` or ``/a@b``) a one-line message names ("/" if none)."""
    match = re.search(r"(?:^|[\s:(])(/[\w/:@.\-]*)", text.split(".h5", 1)[-1])
    return match.group(1).rstrip(".:") if match else "/"


def all_damage(f: h5py.File, path: str, first: str) -> list[Damage]:
    """Every problem found in ``f``: ``first`` (the message that refused it), then every check's findings."""
    out = [Damage(path_in(first), first)]
    for check in (structure_damage, checksum_damage, value_damage):
        try:
            found = check(f, path)
        except Exception as exc:  # a check that cannot even run on this file
            found = [Damage("/", f"{path}: damaged file structure ({type(exc).__name__}: {exc})")]
        out += [d for d in found if d.text not in {o.text for o in out}]
    return out


def marks(damage: list[dict[str, str]], where: str | None, pad: str, tree: set[str] | None = None) -> list[str]:
    """Lines marking the problems of ``damage`` at object ``where`` (its attributes too) for the tree.

    ``where=None``: the closing lines -- the problems at paths not in ``tree`` (deleted ones), then
    a ``DAMAGED`` line with the count.
    """

    def at(d: dict[str, str], p: str) -> bool:
        return d["path"] == p or d["path"].startswith(p.rstrip("/") + "@")

    if where is not None:
        return [f"{pad}!! DAMAGED: {_after_file(d['text'])}" for d in damage if at(d, where)]
    lines = [f"!! DAMAGED: {_after_file(d['text'])}" for d in damage if not any(at(d, p) for p in tree or ())]
    if damage:
        lines.append(f"DAMAGED: {len(damage)} problem(s) found; do not use this file ({FIX})")
    return lines


def _after_file(text: str) -> str:
    return text.split(": ", 1)[-1] if ": " in text else text
