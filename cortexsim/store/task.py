"""``/task``: the evaluation set (inputs, targets, mask, per-condition parameters)."""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import RunFileError
from ..tasks import TrialBatch
from .datasets import attr_text, reader, write_array


def write_task(f: h5py.File, batch: TrialBatch, description: str) -> None:
    """Write ``/task``: a trial batch (inputs, targets, mask, per-trial params)."""
    if "task" in f:
        del f["task"]
    g = f.create_group("task")
    g.attrs.update(
        {
            "description": description,
            "dt": batch.dt,
            "dt_units": "s",
            "input_names": ",".join(batch.input_names),
            "input_groups": ",".join(batch.input_groups),
            "output_names": ",".join(batch.output_names),
        }
    )
    write_array(
        g,
        "inputs",
        batch.inputs,
        units="1",
        dims="condition,time,input",
        description="Task input channels, named by the input_names attribute: the target (cos, sin of its "
        "direction), the maze's via points (position / reach distance, 0 when unused), the go pulse.",
    )
    write_array(
        g, "targets", batch.targets, units="m", dims="condition,time,output", description="Desired hand position."
    )
    write_array(
        g,
        "mask",
        batch.mask,
        units="1",
        dims="condition,time,output",
        description="1 where the output counts in the loss.",
    )
    p = g.create_group("params")
    units = {
        "angle": "rad",
        "condition": "1",
        "catch": "1",
        "delay": "s",
        "target_on": "s",
        "go": "s",
        "move_on": "s",
        "move_off": "s",
    }
    for key, value in batch.params.items():
        write_array(
            p,
            key,
            value,
            units=units.get(key, "1"),
            dims="condition",
            description=f"Per-condition task parameter '{key}' (NaN: does not occur).",
        )


@reader("/task")
def read_task(f: h5py.File) -> TrialBatch:
    """``/task`` back as the :class:`~cortexsim.tasks.TrialBatch` :func:`write_task` wrote."""
    if "task" not in f:
        raise RunFileError(f"{f.filename}: has no /task group (run the rate stage: cortexsim run)")
    g = f["task"]
    names = {key: tuple(attr_text(g.attrs[key]).split(",")) for key in ("input_names", "input_groups", "output_names")}
    params = {key: ds[()] for key, ds in g["params"].items()}
    if "catch" in params:
        params["catch"] = params["catch"].astype(bool)
    return TrialBatch(g["inputs"][()], g["targets"][()], g["mask"][()], float(g.attrs["dt"]), params, **names)


def read_task_targets(f: h5py.File) -> np.ndarray:
    """``/task/targets``: desired hand position (m), shape (conditions, time, outputs)."""
    return f["task/targets"][()]
