"""Where a run file came from: the provenance attributes of its root (config, seed, versions, code commit)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from .._version import __version__
from .schema import FILE_KIND, SCHEMA_VERSION


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    """Commit of the cortexsim source tree (``+dirty`` when modified), or ``"unknown"``."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


RUN_FILE_TEXT = (
    "cortexsim run file: a six-layer M1 circuit and what was simulated on it. "
    "Every dataset has 'units', 'dims' and 'description' attributes."
)
"""The root ``description`` attribute of a run file."""


def provenance(config_text: str, seed: int, derived_from: str | Path | None = None) -> dict[str, Any]:
    """Root attributes recording where a run file came from.

    ``derived_from``: the run file whose finished stages seeded this one (its absolute path is recorded).
    """
    extra = {} if derived_from is None else {"derived_from": str(Path(derived_from).resolve())}
    return {
        "description": RUN_FILE_TEXT,
        **extra,
        "file_kind": FILE_KIND,
        "schema_version": SCHEMA_VERSION,
        "cortexsim_version": __version__,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": int(seed),
        "config": config_text,
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        **{f"{pkg}_version": _package_version(pkg) for pkg in ("numpy", "scipy", "h5py", "brian2", "matplotlib")},
    }
