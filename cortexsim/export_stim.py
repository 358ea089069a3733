"""The NWB export's stimulation section: each protocol as an optogenetic site, its light and its lit trials.

A run with ``[stimulation]`` protocols (``/stimulation``, :mod:`cortexsim.stim_measure`) exports, with
pynwb's optogenetics types (:mod:`pynwb.ogen`):

* ``devices/simulated_light`` and one ``ogen_sites/<protocol>`` per protocol the twin ran (none when
  ``[stimulation] spiking_trials`` is 0: the file is the twin's)
  (:class:`~pynwb.ogen.OptogeneticStimulusSite`): its target as ``location``, its label as
  ``description``, and the nominal wavelength of the opsin the effect stands for as
  ``excitation_lambda`` (470 nm, ChR2, for ``excite``; 590 nm, ArchT/NpHR, for ``inhibit`` and
  ``silence``) -- a simulation has no light, so this is a label, not a measurement;
* ``stimulus/stimulation_<protocol>`` (:class:`~pynwb.ogen.OptogeneticSeries`): the light over the
  spiking twin's lit trials, on the task step.  NWB fixes the unit to watts; a simulation has no
  optical power, so the values are the light's *relative* intensity in [0, 1] (1 = the protocol's
  full drive, ``amplitude_mv`` mV), as the series' description says;
* ``intervals/stimulation``: one row per lit twin trial (protocol, condition, effect, amplitude,
  expressing fraction, light on and off in session time, the hand's peak deviation from the same
  trial unlit), and ``processing/behavior/stimulation_hand_position``: the twin's lit hand (m,
  mean over ``[stimulation] spiking_trials``), laid out in session time after every earlier trial
  of the file, one trial-length block per row;
* the trials table's column ``stimulation``: ``none`` on every exported trial (the twin's spikes
  in ``units`` are its unstimulated evaluation trials; the lit ones are the rows of
  ``intervals/stimulation``).

pynwb is passed in by :mod:`cortexsim.export`, never imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import store

WAVELENGTH_NM = {"excite": 470.0, "inhibit": 590.0, "silence": 590.0}
"""Nominal excitation wavelength (nm) of the opsin each effect stands for: ChR2 excites, ArchT/NpHR inhibit."""


@dataclass(frozen=True)
class StimProtocolRecord:
    """One protocol of ``/stimulation`` as the export needs it.

    Attributes
    ----------
    name, label, effect, event : str
    target : tuple of str
    amplitude_mv, fraction : float
    light : ndarray, shape (time, conditions) or None
        The twin's light per condition (None: the twin was not stimulated).
    hand : ndarray, shape (conditions, time, 2) or None
        The twin's lit hand (m).
    peak_cm : ndarray, shape (conditions,) or None
        Peak distance (cm) of the lit hand from the unlit one, per condition.
    """

    name: str
    label: str
    effect: str
    event: str
    target: tuple[str, ...]
    amplitude_mv: float
    fraction: float
    light: np.ndarray | None
    hand: np.ndarray | None
    peak_cm: np.ndarray | None


def read_stimulation(f: Any) -> tuple[StimProtocolRecord, ...]:
    """The protocols of an open run file's ``/stimulation`` (empty when it has none)."""
    out = []
    for name, entry in store.read_stimulation(f).items():
        a = entry["attrs"]
        twin = entry.get("spiking")
        out.append(
            StimProtocolRecord(
                name=name,
                label=str(a.get("label", name)),
                effect=str(a["effect"]),
                event=str(a["event"]),
                target=tuple(str(t) for t in np.atleast_1d(a["target"])),
                amplitude_mv=float(a["amplitude_mv"]),
                fraction=float(a["fraction"]),
                light=None if twin is None else np.asarray(twin["light"], float),
                hand=None if twin is None else np.asarray(twin["hand"], float),
                peak_cm=None if twin is None else 100.0 * np.asarray(twin["hand_deviation"]).max(axis=1),
            )
        )
    return tuple(out)


def trial_columns(protocols: tuple[StimProtocolRecord, ...], n_trials: int) -> dict[str, tuple[str, list]]:
    """The trials table's ``stimulation`` column (empty for a run without protocols)."""
    if not protocols:
        return {}
    return {
        "stimulation": (
            "stimulation protocol of the trial: none (the exported spikes are the twin's unstimulated evaluation "
            "trials); the lit twin trials are the rows of intervals/stimulation",
            ["none"] * n_trials,
        )
    }


def add_stimulation(
    nwb: Any, pynwb: Any, protocols: tuple[StimProtocolRecord, ...], *, start: float, duration: float, dt: float
) -> float:
    """Add the sites, the light series, ``intervals/stimulation`` and the lit hand; returns the session time after.

    Parameters
    ----------
    start : float
        Session time (s) where the lit trials begin (the end of every earlier trial of the file).
    duration : float
        One trial (s).
    dt : float
        Task step (s).
    """
    protocols = tuple(p for p in protocols if p.light is not None and p.hand is not None and p.peak_cm is not None)
    if not protocols:  # the twin was not stimulated: the NWB file (the twin's) has no lit trial to describe
        return start
    device = nwb.create_device(
        name="simulated_light",
        description="No device: cortexsim's stimulation protocols act on the model's units directly (a drive in mV "
        "or a clamp of the rates to zero); each protocol is one ogen site.",
    )
    table = pynwb.epoch.TimeIntervals(
        name="stimulation", description="One row per lit trial of the spiking twin (cortexsim.stim_measure)."
    )
    columns = {
        "protocol": "the protocol's name ([[stimulation.protocols]] name)",
        "condition": "reach condition (target index)",
        "effect": "excite, inhibit or silence",
        "amplitude_mv": "drive at full light (mV; silence: none)",
        "expressing_fraction": "share of the target's neurons that express",
        "light_on_time": "first step the light is on (s, session time)",
        "light_off_time": "first step after the light (and its ramp) (s, session time)",
        "peak_deviation_cm": "largest distance of the lit hand from the same trial unlit (cm)",
    }
    for column, text in columns.items():
        table.add_column(name=column, description=text)
    t = start
    hands = []
    for p in protocols:
        site = nwb.create_ogen_site(
            name=p.name,
            device=device,
            description=p.label,
            excitation_lambda=WAVELENGTH_NM[p.effect],
            location="+".join(p.target),
        )
        n_cond = p.hand.shape[0]
        nwb.add_stimulus(
            pynwb.ogen.OptogeneticSeries(
                name=f"stimulation_{p.name}",
                data=np.ascontiguousarray(p.light.T.reshape(-1)),
                site=site,
                starting_time=t,
                rate=1.0 / dt,
                description=f"{p.label}. The light's relative intensity in [0, 1] over the twin's lit trials "
                f"(intervals/stimulation rows of protocol {p.name}, one per condition, back to back): NWB fixes the "
                f"unit to watts, but a simulation has no optical power -- 1 is the protocol's full drive.",
            )
        )
        for c in range(n_cond):
            lit = np.flatnonzero(p.light[:, c] > 0)
            on = t + (lit[0] if lit.size else 0) * dt
            off = t + ((lit[-1] + 1) if lit.size else 0) * dt
            table.add_interval(
                start_time=t,
                stop_time=t + duration,
                protocol=p.name,
                condition=c,
                effect=p.effect,
                amplitude_mv=p.amplitude_mv if p.effect != "silence" else float("nan"),
                expressing_fraction=p.fraction,
                light_on_time=on,
                light_off_time=off,
                peak_deviation_cm=float(p.peak_cm[c]),
            )
            hands.append(p.hand[c])
            t += duration
    if hands:  # always, here: every protocol left has lit twin trials
        nwb.add_time_intervals(table)
        nwb.processing["behavior"].add(
            pynwb.behavior.SpatialSeries(
                name="stimulation_hand_position",
                data=np.ascontiguousarray(np.concatenate(hands)),
                reference_frame="the hand relative to its start position (x right, y away from the body)",
                unit="meters",
                starting_time=start,
                rate=1.0 / dt,
                description="The spiking twin's hand on its lit trials (mean over [stimulation] spiking_trials), one "
                "trial-length block per row of intervals/stimulation.",
            )
        )
    return t


__all__ = ["StimProtocolRecord", "WAVELENGTH_NM", "add_stimulation", "read_stimulation", "trial_columns"]
