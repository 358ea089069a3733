"""Ground truth for issue 30: does a student fitted to a teacher's spiking neurons recover the teacher?

The teacher (``experiments/fit_teacher.toml``: seed 2, its own trained weights) is run and its spiking
twin exported as NWB single trials, 25 % of its neurons held out; the student run
(``experiments/fit_synthetic.toml``: seed 1, ``task.kind = "recorded"``) fits every model to the held-in
neurons.  This script reads both runs and the NWB file and reports:

- every model's held-out scores (the fit's, from ``/metrics``), next to the teacher's own rates scored by
  the same protocol (:func:`cortexsim.fit.score_activity`: its rate circuit's activity as the latents; its
  own rate units as the held-in neurons' mapping) and the teacher's true rates without any map (each
  held-out neuron's rate unit, ``true_co_bps``);
- the dynamics: the jPCA ratio and the strongest plane's rotation frequency of each model's activity on
  the condition averages in the student run's ``[compare] jpca_window`` around movement onset (the window
  the battery uses; by default :data:`cortexsim.battery.JPCA_WINDOW`, -50 ... +150 ms), against the
  teacher's, and the DSA distance (Ostrow et al. 2023) of each model to the teacher over the fitted window.

Targets (the issue's): the student's jPCA ratio and frequency within 10 % of the teacher's, and its DSA
distance to the teacher below the task-only student's.  Usage::

    cortexsim run experiments/fit_teacher.toml --out results/fit_teacher
    cortexsim run experiments/fit_synthetic.toml --out results/fit_synthetic
    python validation/fit_synthetic.py results/fit_synthetic/run.h5 results/fit_teacher/run.h5 [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from cortexsim import store
from cortexsim.analysis.dsa import dsa
from cortexsim.analysis.jpca import jpca
from cortexsim.assembly import recorded_task
from cortexsim.fit import score_activity
from cortexsim.score import bits_per_spike
from cortexsim.store import read_fit

TOLERANCE = 0.10
"""Relative distance to the teacher's jPCA ratio and frequency the targets allow."""


def _rate_units(nwb_path: Path) -> np.ndarray:
    """Each exported neuron's rate unit (the NWB Units column ``rate_unit``)."""
    from pynwb import NWBHDF5IO  # noqa: PLC0415

    with NWBHDF5IO(str(nwb_path), mode="r") as io:
        return np.asarray(io.read().units["rate_unit"].data[:], int)


def teacher_activity(teacher_run: Path, window: tuple[float, float], dt: float) -> np.ndarray:
    """The teacher's noise-free rates (Hz) on the fit's bins around each condition's movement onset."""
    with store.open_run(teacher_run) as f:
        rates = store.read_rates(f, "rate")
        task = store.read_task(f)
    if abs(task.dt - dt) > 1e-12:
        raise SystemExit(f"{teacher_run}: step {task.dt} s, the fit's {dt} s")
    out = []
    for c in range(rates.shape[0]):
        on = int(round(float(task.params["move_on"][c]) / dt))
        out.append(rates[c, on + round(window[0] / dt) : on + round(window[1] / dt)])
    return np.asarray(out, float)


def jpca_bins(jpca_window: tuple[float, float], window: tuple[float, float], dt: float) -> tuple[int, int]:
    """The bins of the fitted ``window`` (s around movement onset) that the jPCA window covers."""
    if not window[0] <= jpca_window[0] < jpca_window[1] <= window[1]:
        raise SystemExit(f"compare.jpca_window {list(jpca_window)} s is not inside fit.window {list(window)} s")
    return round((jpca_window[0] - window[0]) / dt), round((jpca_window[1] - window[0]) / dt)


def _jpca(x: np.ndarray, bins: tuple[int, int], dt: float, hz: bool) -> tuple[float, float]:
    start, stop = bins
    res = jpca(x, dt=dt, n_pcs=6, soft_normalize=hz, window=(start, stop))
    return float(res.ratio), float(res.frequencies_hz[0])


def recovery(student_run: Path, teacher_run: Path) -> dict:
    """Every number of the study (see the module notes) as plain data."""
    with store.open_run(student_run) as f:
        config = store.read_config(f)
        metrics = store.read_metrics(f)
        record = read_fit(f)
    nwb = teacher_run.parent / "run.nwb"  # the teacher's export ([export] nwb = true), the fit's data
    config = replace(config, fit=replace(config.fit, data=str(nwb.resolve())))
    rec, split, _ = recorded_task(config)
    window, dt = tuple(config.fit.window), config.task.dt
    bins = jpca_bins(tuple(config.compare.jpca_window), window, dt)  # the battery's window, as the run set it
    teacher = teacher_activity(teacher_run, window, dt)
    units = _rate_units(nwb)
    truth = score_activity(rec, split, teacher, teacher[:, :, units[split.heldin]])
    test = split.test_trials
    true_rates = teacher[rec.trial_condition[test]][:, :, units[split.heldout]] * dt
    rows = {
        "teacher": {
            "heldout_co_bps": truth.heldout_co_bps,
            "heldout_psth_r2": truth.heldout_psth_r2,
            "heldout_condition_psth_r2": truth.heldout_condition_psth_r2,
            "true_co_bps": float(bits_per_spike(true_rates, rec.counts[test][:, :, split.heldout])),
        }
    }
    t_ratio, t_freq = _jpca(teacher, bins, dt, hz=True)
    rows["teacher"].update(jpca_ratio=t_ratio, jpca_freq_hz=t_freq, dsa_to_teacher=0.0)
    for model in record.models:
        act = np.asarray(model.activity, float)
        ratio, freq = _jpca(act, bins, dt, hz=not model.name.startswith("ann_"))
        rows[model.name] = {
            **{k: metrics[f"fit_{model.name}_{k}"] for k in model.scores},
            "jpca_ratio": ratio,
            "jpca_freq_hz": freq,
            "dsa_to_teacher": float(dsa(act, teacher).distance),
        }
    student, taskonly = rows.get("rate"), rows.get("rate_taskonly")
    targets = {}
    if student is not None:
        targets["jpca_ratio_within_10pct"] = abs(student["jpca_ratio"] / t_ratio - 1) <= TOLERANCE
        targets["jpca_freq_within_10pct"] = abs(student["jpca_freq_hz"] / t_freq - 1) <= TOLERANCE
        if taskonly is not None:
            targets["dsa_below_taskonly"] = student["dsa_to_teacher"] < taskonly["dsa_to_teacher"]
    return {"models": rows, "targets": targets, "split": list(split.notes)}


def table(result: dict) -> str:
    """The models as a Markdown table."""
    keys = [
        "heldout_co_bps",
        "heldout_psth_r2",
        "heldout_condition_psth_r2",
        "jpca_ratio",
        "jpca_freq_hz",
        "dsa_to_teacher",
    ]
    lines = ["| model | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    for name, row in result["models"].items():
        cells = [f"{row[k]:.3f}" if isinstance(row.get(k), float) and math.isfinite(row[k]) else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("student", type=Path, help="the fit run (experiments/fit_synthetic.toml)")
    parser.add_argument("teacher", type=Path, help="the teacher run (experiments/fit_teacher.toml)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    result = recovery(args.student, args.teacher)
    print(table(result))
    print(f"teacher's true rates, held-out neurons: co_bps {result['models']['teacher']['true_co_bps']:.3f}")
    for key, ok in result["targets"].items():
        print(f"target {key}: {'met' if ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=bool) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
