"""``/training``: the training histories and the checkpoint a run resumes from exactly."""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..train import TrainState
from .datasets import attr_text, reader, write_array
from .models import write_params


def write_training(f: h5py.File, state: TrainState, config_text: str) -> None:
    """Write ``/training``: per-iteration histories and a resumable checkpoint."""
    g = f.require_group("training")
    g.attrs["description"] = (
        "Training histories (one entry per iteration; validation entries every "
        "eval_every iterations) and the checkpoint to resume from."
    )
    h = state.history
    texts = {
        "loss": ("1", "total loss"),
        "task_loss": ("1", "position MSE in units of the reach distance"),
        "r2": ("1", "position R^2 on the training batch"),
        "grad_norm": ("1", "scaled gradient norm"),
        "lr": ("1", "learning rate"),
        "mean_rate": ("Hz", "mean rate on the training batch"),
        "val_iteration": ("1", "iteration of each validation"),
        "val_loss": ("1", "noise-free validation MSE (reach units)"),
        "val_r2": ("1", "noise-free validation position R^2"),
    }
    for key, (units, text) in texts.items():
        dim = "validation" if key.startswith("val_") else "iteration"
        write_array(g, key, np.asarray(h[key], float), units=units, dims=dim, description=text.capitalize() + ".")
    if "checkpoint" in g:
        del g["checkpoint"]
    c = g.create_group("checkpoint")
    c.attrs.update(
        {
            "description": "Complete trainer state; a run resumed from it continues exactly.",
            "iteration": state.iteration,
            "elapsed_s": state.elapsed,
            "best_val_loss": state.best_val_loss,
            "best_iteration": state.best_iteration,
            "bad_evals": state.bad_evals,
            "done": state.done,
            "scales": json.dumps(state.scales),
            "rng_batch": json.dumps(state.rng_batch),
            "rng_noise": json.dumps(state.rng_noise),
            "config": config_text,
        }
    )
    for name, params in (
        ("params", state.params),
        ("adam_m", state.m),
        ("adam_v", state.v),
        ("best_params", state.best_params),
    ):
        write_params(c.create_group(name), params, name.replace("_", " "))


@reader("/training (the checkpoint)")
def read_training_state(f: h5py.File) -> TrainState | None:
    """The :class:`~cortexsim.train.TrainState` checkpointed in ``f``, or None."""
    if "training/checkpoint" not in f:
        return None
    c = f["training/checkpoint"]
    a = c.attrs

    def group(name: str) -> dict[str, np.ndarray]:
        return {k: ds[()] for k, ds in c[name].items()}

    history = {k: list(f["training"][k][()]) for k in TrainState.HISTORY_KEYS + TrainState.VALIDATION_KEYS}
    history["val_iteration"] = [int(i) for i in history["val_iteration"]]
    return TrainState(
        params=group("params"),
        m=group("adam_m"),
        v=group("adam_v"),
        scales=json.loads(a["scales"]),
        rng_batch=json.loads(a["rng_batch"]),
        rng_noise=json.loads(a["rng_noise"]),
        iteration=int(a["iteration"]),
        elapsed=float(a["elapsed_s"]),
        best_params=group("best_params"),
        best_val_loss=float(a["best_val_loss"]),
        best_iteration=int(a["best_iteration"]),
        bad_evals=int(a["bad_evals"]),
        done=attr_text(a["done"]),
        history=history,
    )
