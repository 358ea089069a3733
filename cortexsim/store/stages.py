"""What the pipeline recorded: ``/metrics``, the config, ``/stages``, and the run's summary of itself."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h5py

from ..config import Config, config_from_text
from .datasets import attr_text, reader


def write_metrics(f: h5py.File, metrics: dict[str, float], description: str) -> None:
    """Add headline numbers as attributes of ``/metrics`` (existing ones are kept)."""
    g = f.require_group("metrics")
    g.attrs["description"] = description
    g.attrs.update({k: float(val) for k, val in metrics.items()})


@reader("/metrics")
def read_config_text(f: h5py.File) -> str:
    """The full configuration the run was made with, as the TOML text stored in the root ``config`` attribute."""
    return attr_text(f.attrs["config"])


def read_config(f: h5py.File) -> Config:
    """The run's configuration (:class:`~cortexsim.config.Config`), parsed and checked from ``config``."""
    return config_from_text(read_config_text(f), where=f"{f.filename}@config")


def read_metrics(f: h5py.File) -> dict[str, float]:
    """The headline numbers of ``/metrics`` (empty when the run has none yet)."""
    if "metrics" not in f:
        return {}
    return {k: float(val) for k, val in f["metrics"].attrs.items() if k != "description"}


STAGES_TEXT = (
    "Pipeline stages completed in this file, one subgroup each (cortexsim.pipeline). 'key' hashes "
    "the parts of the config the stage depends on; a rerun reuses a stage whose key still matches."
)


def write_stage(
    f: h5py.File, name: str, *, key: str, seconds: float, groups: Sequence[str], metrics: Sequence[str]
) -> None:
    """Record in ``/stages/<name>`` that a pipeline stage finished (wall time, what it wrote)."""
    g = f.require_group("stages")
    g.attrs["description"] = STAGES_TEXT
    if name in g:
        del g[name]
    order = 1 + max((int(x.attrs["order"]) for x in g.values()), default=0)
    s = g.create_group(name)
    s.attrs.update(
        {
            "description": f"Stage '{name}' completed.",
            "key": key,
            "seconds": float(seconds),
            "order": order,
            "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "groups": json.dumps(list(groups)),
            "metrics": json.dumps(list(metrics)),
        }
    )


@reader("/stages")
def read_stages(f: h5py.File) -> dict[str, dict[str, Any]]:
    """Completed stages in order of completion: name -> key, seconds, order, finished_utc, groups, metrics."""
    if "stages" not in f:
        return {}
    out = {}
    for name, g in f["stages"].items():
        a = g.attrs
        out[name] = {
            "key": attr_text(a["key"]),
            "seconds": float(a["seconds"]),
            "order": int(a["order"]),
            "finished_utc": attr_text(a["finished_utc"]),
            "groups": json.loads(attr_text(a["groups"])),
            "metrics": json.loads(attr_text(a["metrics"])),
        }
    return dict(sorted(out.items(), key=lambda item: item[1]["order"]))


def forget_stages(f: h5py.File, names: Sequence[str]) -> None:
    """Drop the records of stages whose results were changed outside the pipeline (so a rerun redoes them)."""
    for name in names:
        if f"stages/{name}" in f:
            del f[f"stages/{name}"]


def copy_stages(src: h5py.File, dst: h5py.File, names: Sequence[str]) -> None:
    """Copy what the completed stages ``names`` of ``src`` wrote (groups, metrics, records) into ``dst``."""
    done = read_stages(src)
    for name in names:
        info = done[name]
        for group in info["groups"]:
            if group in src and group not in dst:
                parent = group.rsplit("/", 1)[0] if "/" in group else None
                if parent:
                    target = dst.require_group(parent)
                    target.attrs.update(src[parent].attrs)
                src.copy(src[group], dst, name=group)
        if "metrics" in src:
            g = dst.require_group("metrics")
            g.attrs["description"] = src["metrics"].attrs["description"]
            g.attrs.update({k: src["metrics"].attrs[k] for k in info["metrics"] if k in src["metrics"].attrs})
        stages = dst.require_group("stages")
        stages.attrs["description"] = STAGES_TEXT
        src.copy(src[f"stages/{name}"], stages, name=name)


@dataclass(frozen=True)
class RunSummary:
    """What a run file says about itself for ``summary.md`` (besides the comparison).

    Attributes
    ----------
    filename : str
        The file it was read from.
    metrics : dict
        ``/metrics`` (:func:`read_metrics`).
    lesion : str
        The lesion the evaluated circuit carries (``/rate@lesion``; ``"intact"`` without one).
    created_utc, cortexsim_version, git_commit : str
        Provenance (root attributes).
    seed : int
        The experiment's seed.
    stages : dict
        Completed stages in order (:func:`read_stages`).
    derived_from : str or None
        The run file whose stages this one reused, if any.
    effector : str
        What the rate circuit moved: ``"arm26"`` (the six-muscle arm, ``/rate@effector``) or
        ``"kinematic"`` (the linear hand readout).
    """

    filename: str
    metrics: dict[str, float]
    lesion: str
    created_utc: str
    seed: int
    cortexsim_version: str
    git_commit: str
    stages: dict[str, dict[str, Any]]
    derived_from: str | None = None
    effector: str = "kinematic"
    stimulation: tuple[tuple[str, str], ...] = ()
    """The stimulation protocols of ``/stimulation``: (name, label), in the file's order."""


@reader("the provenance attributes")
def read_run_summary(f: h5py.File) -> RunSummary:
    """The :class:`RunSummary` of an open run file."""
    a = f.attrs
    return RunSummary(
        filename=str(f.filename),
        metrics=read_metrics(f),
        lesion=attr_text(f["rate"].attrs.get("lesion", "intact")) if "rate" in f else "intact",
        created_utc=attr_text(a["created_utc"]),
        seed=int(a["seed"]),
        cortexsim_version=attr_text(a["cortexsim_version"]),
        git_commit=attr_text(a["git_commit"]),
        stages=read_stages(f),
        derived_from=attr_text(a["derived_from"]) if "derived_from" in a else None,
        effector=attr_text(f["rate"].attrs.get("effector", "kinematic")) if "rate" in f else "kinematic",
        stimulation=tuple(
            (name, attr_text(g.attrs.get("label", name))) for name, g in f.get("stimulation", {}).items()
        ),
    )
