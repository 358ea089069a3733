"""A run file described: its tree of groups and datasets with their attributes (``cortexsim inspect``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import integrity
from ..errors import RunFileError
from .datasets import jsonable
from .files import open_h5, open_run
from .schema import check_run_file


def _dtype_text(dtype: np.dtype) -> str:
    if dtype.names:
        fields = ", ".join(f"{n}: {'str' if h5py.check_string_dtype(dtype[n]) else dtype[n]}" for n in dtype.names)
        return f"table({fields})"
    if h5py.check_string_dtype(dtype):
        return "str"
    return str(dtype)


def describe(path: str | Path, damaged: bool = False) -> dict[str, Any]:
    """The tree of a run file as plain data: every group and dataset with attributes.

    Parameters
    ----------
    path : str or Path
    damaged : bool
        Describe a run file that fails :func:`open_run`'s checks too (``cortexsim inspect``): the
        result then lists every problem found under ``"damage"``. A file that is not a run file,
        or not HDF5, is refused either way.

    Returns
    -------
    dict
        ``{"file", "attrs", "items": [{"path", "kind", "shape", "dtype", "attrs"}, ...]}``, and
        ``"damage": [{"path", "text"}, ...]`` when ``damaged`` and the file fails a check.
    """
    damage: list[integrity.Damage] = []
    try:
        f = open_run(path)
    except RunFileError as exc:
        if not damaged:
            raise
        f = open_h5(Path(path), "r")
        try:
            check_run_file(f, path)
        except BaseException:
            f.close()
            raise
        damage = integrity.all_damage(f, str(path), str(exc))
    with f:
        items: list[dict[str, Any]] = []

        def visit(name: str, obj: Any) -> None:
            entry: dict[str, Any] = {"path": "/" + name, "attrs": {k: jsonable(v) for k, v in obj.attrs.items()}}
            if isinstance(obj, h5py.Dataset):
                entry.update(kind="dataset", shape=list(obj.shape), dtype=_dtype_text(obj.dtype))
            else:
                entry["kind"] = "group"
            items.append(entry)

        f.visititems(visit)
        info = {"file": str(path), "attrs": {k: jsonable(v) for k, v in f.attrs.items()}, "items": items}
    if damage:
        info["damage"] = [{"path": d.path, "text": d.text} for d in damage]
    return info


def format_tree(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe`'s result."""
    lines = [f"{info['file']}"]
    for key, value in info["attrs"].items():
        text = str(value)
        if "\n" in text:
            text = f"<{text.count(chr(10)) + 1} lines of text>"
        lines.append(f"  @{key} = {text}")
    damage = info.get("damage", [])
    lines += integrity.marks(damage, "/", "  ")
    for item in info["items"]:
        depth = item["path"].count("/")
        pad = "  " * depth
        name = item["path"].rsplit("/", 1)[-1]
        if item["kind"] == "group":
            lines.append(f"{pad}{name}/")
        else:
            a = item["attrs"]
            shape = "×".join(str(s) for s in item["shape"]) or "scalar"
            lines.append(
                f"{pad}{name}  [{shape}] {item['dtype']}  units={a.get('units', '?')}  dims={a.get('dims', '?')}"
            )
        desc = item["attrs"].get("description")
        if desc:
            lines.append(f"{pad}  # {desc}")
        for key, value in item["attrs"].items():
            if key in ("units", "dims", "description"):
                continue
            text = str(value)
            if "\n" in text or len(text) > 80:
                text = f"<{len(text)} characters>"
            lines.append(f"{pad}  @{key} = {text}")
        lines += integrity.marks(damage, item["path"], pad + "  ")
    tree = {"/", *(item["path"] for item in info["items"])}
    return "\n".join(lines + integrity.marks(damage, None, "", tree))
