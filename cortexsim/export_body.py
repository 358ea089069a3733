"""The body's sections of the NWB export: its series, its perturbations, and what each trial had.

:mod:`cortexsim.export` calls one function per section, each adding its part to the NWB file it
builds (pynwb is passed in, never imported here):

=====================================  =======================================================
:func:`add_body`                       ``processing/behavior``: the coordinates and their
                                       velocities (the arm's ``joint_angles`` and
                                       ``joint_velocities``; the point mass's ``mass_position``
                                       and ``mass_velocity``), ``muscle_excitation`` and
                                       ``muscle_activation`` (one column per muscle),
                                       ``sensory_feedback`` (one column per channel) and the
                                       ``feedback_channels`` table (sense, delay, noise)
:func:`add_perturbations`              ``intervals/curl_phases`` and
                                       ``processing/behavior/curl_hand_position`` (the twin
                                       through the curl protocol), ``intervals/bumps``, and
                                       ``processing/behavior/endpoint_load`` (N): the force on
                                       the hand in every trial of the file, when there is any
:func:`trial_columns`                  ``perturbation``, ``endpoint_load_x``/``_y`` of each row of
                                       ``intervals/trials``
=====================================  =======================================================

Every name, unit and column comes from the body's plant (``PLANTS[kind]``: ``MUSCLES``,
``DOF_NAMES``, ``SERIES_NAMES``, ``COORDINATES``) and :class:`cortexsim.body.Body` (its feedback
channels and their senses), never from the arm.  The twin's perturbed trials were simulated apart
from the trials of ``intervals/trials`` (and their spikes are not stored): they are laid out after
them in session time, the curl protocol's first, then the bumps, so that every series of the file
runs on one clock.  See ``docs/nwb.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import store
from .body import Body, Feedback
from .config import Config
from .effector import PLANTS

MODEL = "spiking"
"""The model whose body and perturbations the NWB file holds: the spiking twin (its spikes are the Units)."""

NWB_UNITS = {"rad": "radians", "rad/s": "radians/s", "m": "meters", "m/s": "m/s", "1": "dimensionless"}
"""The run file's units in the words NWB files use."""


@dataclass(frozen=True)
class BodyRecord:
    """What the twin's body did on the evaluation trials (``/spiking/effector``) and what it is.

    Attributes
    ----------
    kind : str
        ``[effector] kind``, a key of :data:`cortexsim.effector.PLANTS`.
    arrays : dict of str to ndarray
        ``q``, ``dq``, ``activation``, ``excitation``, ``feedback``, each (conditions,
        trials per condition, time, k).
    channels : tuple of (str, str, float, float)
        Each feedback channel: name, sense (``proprioception``, ``vision``), delay (s), noise SD.
    endpoint_load : ndarray, shape (2,)
        The constant force on the hand, ``[effector] endpoint_load`` (N).
    """

    kind: str
    arrays: dict[str, np.ndarray]
    channels: tuple[tuple[str, str, float, float], ...]
    endpoint_load: np.ndarray

    @property
    def plant(self) -> type:
        """The plant kernel class: its muscles, coordinates and their names."""
        return PLANTS[self.kind]


@dataclass(frozen=True)
class Perturbations:
    """The twin's perturbation protocols (``/perturbation/<kind>/spiking``) and ``[perturb]``'s settings.

    Attributes
    ----------
    curl : dict or None
        ``phases`` (rows), ``hands`` (phase, condition, time, 2; m, trial-averaged) and ``attrs``.
    bumps : dict or None
        ``trials`` (rows: timing, direction_deg, condition, onset_s, peak_displacement_cm, recovery_ms).
    field : ndarray, shape (2, 2)
        The curl field (N s/m).
    bump_force, bump_duration : float
        N, s.
    trials_per_condition : int
        Twin trials of each perturbed condition (``[perturb] spiking_trials``).
    """

    curl: dict[str, Any] | None
    bumps: dict[str, Any] | None
    field: np.ndarray
    bump_force: float
    bump_duration: float
    trials_per_condition: int


def channel_table(config: Config) -> tuple[tuple[str, str, float, float], ...]:
    """The feedback channels of ``config``'s body: name, sense, delay (s), noise SD (normalised units).

    Names and senses come from :class:`~cortexsim.body.Body` for the body's plant; each sense's delay
    and noise from ``[effector] <sense>_delay`` and ``<sense>_noise``.
    """
    ec = config.effector
    plant = PLANTS[ec.kind](config.task.dt, substeps=ec.substeps)
    body = Body.make(config.task.dt, plant=plant, feedback=Feedback())
    return tuple(
        (name, sense, float(getattr(ec, f"{sense}_delay")), float(getattr(ec, f"{sense}_noise")))
        for name, sense in zip(body.feedback_channels, body.feedback_groups)
    )


def read_body(f: Any, config: Config) -> BodyRecord | None:
    """The twin's body record from an open run file (None for a run without a body)."""
    arrays = store.read_effector(f, MODEL)
    if arrays is None or not config.effector.has_body:
        return None
    return BodyRecord(
        kind=config.effector.kind,
        arrays=arrays,
        channels=channel_table(config),
        endpoint_load=np.asarray(config.effector.endpoint_load, float),
    )


def read_perturbations(f: Any, config: Config) -> Perturbations | None:
    """The twin's perturbation protocols from an open run file (None when it ran none)."""
    held = store.read_perturbation(f)
    curl, bumps = held.get("curl", {}).get(MODEL), held.get("bumps", {}).get(MODEL)
    if curl is None and bumps is None:
        return None
    pc = config.perturb
    return Perturbations(curl, bumps, pc.field, pc.bump_force, pc.bump_duration, pc.spiking_trials)


def _trials(array: np.ndarray) -> np.ndarray:
    """(conditions, trials, time, k) -> (conditions x trials x time, k): the twin's trials back to back."""
    return array.reshape(-1, array.shape[-1])


def add_body(nwb: Any, pynwb: Any, body: BodyRecord, rate: float) -> None:
    """``processing/behavior``: the body's coordinates, muscles and feedback over the twin's trials.

    Parameters
    ----------
    nwb : NWBFile
        With a ``behavior`` processing module.
    pynwb : module
    body : BodyRecord
    rate : float
        Samples per second (the task's step).
    """
    plant, behavior = body.plant, nwb.processing["behavior"]
    gzip = pynwb.H5DataIO
    dofs = ", ".join(plant.DOF_NAMES)
    for key, name in plant.SERIES_NAMES.items():
        units, _, text = plant.COORDINATES.get(key, store.EFFECTOR_ARRAYS[key])
        behavior.add(
            pynwb.TimeSeries(
                name=name,
                data=gzip(_trials(body.arrays[key]), compression="gzip"),
                unit=NWB_UNITS.get(units, units),
                starting_time=0.0,
                rate=rate,
                description=f"{text} Columns: {dofs}. {plant.DESCRIPTION}, driven by the spiking twin; sample t of "
                "a trial is the state at t dt after its start.",
            )
        )
    muscles = ", ".join(plant.MUSCLES)
    for key, name, text in (
        ("excitation", "muscle_excitation", "Excitation the twin sent to each muscle (0 to 1, after motor noise)."),
        ("activation", "muscle_activation", "Activation of each muscle (Thelen 2003 activation dynamics, 0 to 1)."),
    ):
        behavior.add(
            pynwb.TimeSeries(
                name=name,
                data=gzip(_trials(body.arrays[key]), compression="gzip"),
                unit="dimensionless",
                starting_time=0.0,
                rate=rate,
                description=f"{text} Columns: {muscles}.",
            )
        )
    listed = "; ".join(f"{n} ({sense}, {1e3 * delay:g} ms)" for n, sense, delay, _ in body.channels)
    behavior.add(
        pynwb.TimeSeries(
            name="sensory_feedback",
            data=gzip(_trials(body.arrays["feedback"]), compression="gzip"),
            unit="normalised (see description)",
            starting_time=0.0,
            rate=rate,
            description="The delayed, noisy feedback the twin received (cortexsim.body): each muscle's fibre length "
            "change from the start posture (x length_gain per optimal fibre length) and fibre velocity (x "
            "velocity_gain per maximal velocity), then the hand minus the target (per reach distance). "
            f"Columns (sense, delay): {listed}. The table feedback_channels lists them with their noise.",
        )
    )
    DynamicTable, VectorData = pynwb.core.DynamicTable, pynwb.core.VectorData
    names, senses, delays, noise = zip(*body.channels)
    behavior.add(
        DynamicTable(
            name="feedback_channels",
            description="One row per column of sensory_feedback: its name, sense, delay and noise.",
            columns=[
                VectorData(name="channel", description="channel name", data=list(names)),
                VectorData(name="sense", description="proprioception or vision", data=list(senses)),
                VectorData(name="delay", description="delay of the feedback (s)", data=list(delays)),
                VectorData(name="noise_sd", description="SD of its Gaussian noise (its units)", data=list(noise)),
            ],
            id=list(range(len(names))),
        )
    )


def trial_columns(body: BodyRecord | None, n_trials: int) -> dict[str, tuple[str, list]]:
    """The trials table's columns of a body run: name -> (description, one value per trial).

    The twin's evaluation trials are unperturbed but for ``[effector] endpoint_load``, a constant
    force on the hand; the perturbed trials are the rows of ``intervals/curl_phases`` and
    ``intervals/bumps``.  Empty without a body.
    """
    if body is None:
        return {}
    load = body.endpoint_load
    kind = "endpoint_load" if np.any(load != 0) else "none"
    return {
        "perturbation": (
            "perturbation of the trial: none, or endpoint_load (a constant force on the hand); the twin's curl-field "
            "and bumped trials are in intervals/curl_phases and intervals/bumps",
            [kind] * n_trials,
        ),
        "endpoint_load_x": ("constant force on the hand during the trial, x (N)", [float(load[0])] * n_trials),
        "endpoint_load_y": ("constant force on the hand during the trial, y (N)", [float(load[1])] * n_trials),
    }


def add_perturbations(
    nwb: Any,
    pynwb: Any,
    body: BodyRecord | None,
    perturbations: Perturbations | None,
    *,
    start: float,
    duration: float,
    dt: float,
    n_eval_trials: int,
    angles: np.ndarray,
) -> float:
    """The twin's perturbed trials as time intervals and series, after the trials table's in session time.

    ``intervals/curl_phases``: one row per (phase, condition) of the curl protocol, its hand path
    (``processing/behavior/curl_hand_position``, m, the mean over ``[perturb] spiking_trials`` twin
    trials); ``intervals/bumps``: one row per bumped twin trial.  ``processing/behavior/endpoint_load``
    (N, x and y): the force on the hand over every trial of the file (the trials table's, the curl
    phases', the bumps'), as :class:`cortexsim.body.BodyLoop` applies it -- a trial's own pulse in
    place of the constant load; written when it is anywhere non-zero.

    Parameters
    ----------
    start : float
        Session time (s) where the perturbed trials begin: the end of the last trial of ``intervals/trials``.
    duration : float
        One trial (s).
    dt : float
        Task step (s).
    n_eval_trials : int
        Rows of ``intervals/trials`` (for ``endpoint_load``).
    angles : ndarray, shape (conditions,)
        Target angle of each evaluation condition (rad).

    Returns
    -------
    float
        The session time (s) after the last perturbed trial (``start`` when there is none).
    """
    if body is None:
        return start
    steps = int(round(duration / dt))
    loads = [np.broadcast_to(body.endpoint_load, (n_eval_trials * steps, 2))]
    t = start
    p = perturbations
    if p is not None and p.curl is not None:
        t, curl_loads = _add_curl(nwb, pynwb, p, body, t, duration, dt, angles)
        loads.append(curl_loads)
    if p is not None and p.bumps is not None:
        t, bump_loads = _add_bumps(nwb, pynwb, p, t, duration, dt, steps)
        loads.append(bump_loads)
    load = np.concatenate(loads)
    if np.any(load != 0):
        nwb.processing["behavior"].add(
            pynwb.TimeSeries(
                name="endpoint_load",
                data=pynwb.H5DataIO(np.ascontiguousarray(load), compression="gzip"),
                unit="N",
                starting_time=0.0,
                rate=1.0 / dt,
                description="Force on the hand from endpoint loads (x, y), over every trial of the file: the trials "
                "table's, then intervals/curl_phases' (the velocity-dependent curl field is not in it: see that "
                "table), then intervals/bumps' (each bump's pulse, which replaces the constant load).",
            )
        )
    return t


def _add_curl(nwb, pynwb, p: Perturbations, body: BodyRecord, t0: float, duration: float, dt: float, angles):
    """``intervals/curl_phases`` and ``curl_hand_position``; returns the end time and the loads of its trials."""
    SpatialSeries, TimeIntervals = pynwb.behavior.SpatialSeries, pynwb.epoch.TimeIntervals
    curl = p.curl
    phases = [store.attr_text(x) for x in curl["attrs"]["phases"]]
    rows = {store.attr_text(r["phase"]): r for r in curl.get("phases", ())}
    hands = np.asarray(curl["hands"])  # (phase, condition, time, 2)
    n_phase, n_cond, steps, _ = hands.shape
    table = TimeIntervals(
        name="curl_phases",
        description=f"The spiking twin through the curl-field protocol (cortexsim.perturb.curl_twin), simulated apart "
        f"from intervals/trials and laid out after them: one row per phase and evaluation condition, its hand path "
        f"the mean of {p.trials_per_condition} twin trials (processing/behavior/curl_hand_position). No spikes are "
        "stored for these trials.",
    )
    columns = {
        "perturbation": "curl_field when the field is on, else none",
        "phase": "phase of the protocol: baseline, first_exposure, after_adaptation (the adapted circuit), aftereffect",
        "field_on": "whether the curl field acts on the hand",
        "condition": "evaluation condition (row of the trials table's conditions)",
        "target_angle": "target direction (rad)",
        **{f"field_{a}{b}": f"curl field F = B v, entry B_{a}{b} (N s/m; 0 when off)" for a in "xy" for b in "xy"},
        "trials_averaged": "twin trials the hand path is the mean of",
        "phase_deviation_cm": "the phase's mean |lateral deviation| over every twin trial (cm)",
        "phase_signed_deviation_cm": "the phase's mean signed lateral deviation (cm, + left of the reach)",
        "phase_endpoint_error_cm": "the phase's mean endpoint error (cm)",
    }
    for name, text in columns.items():
        table.add_column(name=name, description=text)
    t = t0
    for phase in phases[:n_phase]:
        row = rows.get(phase, {})
        on = bool(row.get("field_on", 0.0))
        field = p.field if on else np.zeros((2, 2))
        for c in range(n_cond):
            table.add_row(
                start_time=t,
                stop_time=t + duration - dt / 2,
                perturbation="curl_field" if on else "none",
                phase=phase,
                field_on=on,
                condition=c,
                target_angle=float(angles[c]),
                **{f"field_{a}{b}": float(field[j, k]) for j, a in enumerate("xy") for k, b in enumerate("xy")},
                trials_averaged=p.trials_per_condition,
                phase_deviation_cm=float(row.get("deviation_cm", np.nan)),
                phase_signed_deviation_cm=float(row.get("signed_deviation_cm", np.nan)),
                phase_endpoint_error_cm=float(row.get("endpoint_error_cm", np.nan)),
            )
            t += duration
    nwb.add_time_intervals(table)
    nwb.processing["behavior"].add(
        SpatialSeries(
            name="curl_hand_position",
            data=pynwb.H5DataIO(hands.reshape(-1, 2), compression="gzip"),
            reference_frame="origin at the start of the reach, x to the right, y up; metres",
            unit="meters",
            starting_time=float(t0),
            rate=1.0 / dt,
            description="Hand path of each row of intervals/curl_phases (the mean over its twin trials), relative to "
            "its start.",
        )
    )
    return t, np.broadcast_to(body.endpoint_load, (n_phase * n_cond * steps, 2))


def _add_bumps(nwb, pynwb, p: Perturbations, t0: float, duration: float, dt: float, steps: int):
    """``intervals/bumps``; returns the end time and the pulses of its trials (N)."""
    TimeIntervals = pynwb.epoch.TimeIntervals
    rows = p.bumps["trials"]
    table = TimeIntervals(
        name="bumps",
        description=f"The spiking twin bumped (cortexsim.perturb.bump_twin): a {p.bump_force:g} N force pulse of "
        f"{1e3 * p.bump_duration:g} ms on the hand, one row per bumped twin trial, simulated apart from "
        "intervals/trials and laid out after them (and after intervals/curl_phases). No spikes are stored for these "
        "trials; the pulse is in processing/behavior/endpoint_load.",
    )
    columns = {
        "perturbation": "bump",
        "timing": "when the bump comes: hold (during the delay) or peak_speed (at the unperturbed reach's peak speed)",
        "direction": "direction of the pulse (rad, 0 = rightward, counter-clockwise)",
        "condition": "evaluation condition bumped",
        "bump_onset_time": "onset of the pulse (s, session time)",
        "bump_stop_time": "end of the pulse (s, session time)",
        "bump_force": "force of the pulse (N)",
        "peak_displacement_cm": "peak distance of the hand from the unperturbed twin trial's path (cm)",
        "recovery_ms": "time from onset until the hand stays within 1 cm of that path (ms; inf: not by the end)",
    }
    for name, text in columns.items():
        table.add_column(name=name, description=text)
    loads = np.zeros((len(rows), steps, 2))
    pulse = int(round(p.bump_duration / dt))
    t = t0
    for i, row in enumerate(rows):
        direction = np.deg2rad(float(row["direction_deg"]))
        onset = float(row["onset_s"])
        first = int(round(onset / dt))
        loads[i, first : min(first + pulse, steps)] = p.bump_force * np.array([np.cos(direction), np.sin(direction)])
        table.add_row(
            start_time=t,
            stop_time=t + duration - dt / 2,
            perturbation="bump",
            timing=store.attr_text(row["timing"]),
            direction=float(direction),
            condition=int(row["condition"]),
            bump_onset_time=t + onset,
            bump_stop_time=t + onset + pulse * dt,
            bump_force=p.bump_force,
            peak_displacement_cm=float(row["peak_displacement_cm"]),
            recovery_ms=float(row["recovery_ms"]),
        )
        t += duration
    nwb.add_time_intervals(table)
    return t, loads.reshape(-1, 2)


__all__ = [
    "BodyRecord",
    "MODEL",
    "Perturbations",
    "add_body",
    "add_perturbations",
    "channel_table",
    "read_body",
    "read_perturbations",
    "trial_columns",
]
