"""``[stimulation]``: optogenetic-style stimulation protocols, checked into frozen dataclasses.

A protocol says what an experimenter would write in a methods section: which cells express the
opsin (``target``, ``fraction``), what the light does to them (``effect``, ``amplitude``), when the
light is on (``event``, ``start``, ``stop``, ``ramp``) and on which share of the trials (``trials``)::

    [stimulation]
    trials_per_condition = 4          # noisy trials per condition (the noise-free set is always run)

    [[stimulation.protocols]]
    name = "pv_delay"                 # the name metrics and groups use: stim_pv_delay_<model>_...
    target = ["PV"]                   # populations (PT5B), layers (L5B) or cell types (PV, PT, IT, ...)
    fraction = 1.0                    # share of the target's units (neurons in the twin) that express
    effect = "excite"                 # "excite" (+amplitude mV), "inhibit" (-amplitude mV), "silence"
    amplitude = 10.0                  # mV of drive added to the state (ignored by "silence")
    event = "target_on"               # "target_on", "go" or "move_on"
    start = 0.1                       # s after the event the light goes on
    stop = 0.4                        # s after the event it goes off
    ramp = 0.0                        # s of linear ramp-down after ``stop`` (Guo et al. 2014: 0.1-0.2)

This module is the base layer (like :mod:`cortexsim.config`, which registers the section): it knows
nothing of circuits.  The names in ``target`` are checked against the circuit by
:func:`cortexsim.anatomy.check_config`; the window against the trial and the amplitude against
the transfer function by the preflight checks (:mod:`cortexsim.preflight`).  ``[lesion] silence``
is the special case ``effect = "silence"``, ``fraction = 1``, the whole trial, every trial
(:func:`lesion_protocol`): one mechanism (:mod:`cortexsim.stimulation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import _validate as v
from .errors import ConfigError

EFFECTS = ("excite", "inhibit", "silence")
"""What the light does to the expressing units: a depolarising drive, a hyperpolarising drive, rates clamped to 0."""

EVENTS = ("trial_start", "target_on", "go", "move_on")
"""Task events a window is relative to (``move_on``: the task's scheduled movement onset, not a measured one)."""

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
"""A protocol's name: it becomes part of metric names (``stim_<name>_<model>_...``) and HDF5 groups."""

WHOLE_TRIAL = 1e9
"""``stop`` (s after ``trial_start``) that means "until the end of the trial"."""


@dataclass(frozen=True)
class StimProtocol:
    """One stimulation protocol (``[[stimulation.protocols]]``); see the module docstring.

    Attributes
    ----------
    name : str
        Identifier (letters, digits, ``_``; starts with a letter).
    target : tuple of str
        Population names, layer names or cell types (subtypes); the union of what they name expresses.
    fraction : float
        Share of the target's units (rate circuit) or neurons (spiking twin) that express, in [0, 1];
        drawn from the seed stream ``stimulation/<name>``.
    effect : str
        One of :data:`EFFECTS`.
    amplitude : float
        Drive (mV, >= 0) of ``excite`` (+) and ``inhibit`` (-); ignored by ``silence``.
    event : str
        One of :data:`EVENTS`.
    start, stop : float
        Window (s) relative to ``event``: the light is on for ``start <= t - event < stop``.
    ramp : float
        Linear ramp-down of the light after ``stop`` (s, >= 0).
    trials : float
        Share of the trials stimulated, interleaved (drawn per trial from the protocol's stream), in [0, 1].
    """

    name: str = "stim"
    target: tuple[str, ...] = ()
    fraction: float = 1.0
    effect: str = "excite"
    amplitude: float = 0.0
    event: str = "go"
    start: float = 0.0
    stop: float = 0.3
    ramp: float = 0.0
    trials: float = 0.5

    def __post_init__(self) -> None:
        where = f"stimulation.protocols.{self.name}" if isinstance(self.name, str) else "stimulation.protocols"
        if not isinstance(self.name, str) or not re.match(NAME_PATTERN, self.name):
            raise ConfigError(
                f"stimulation.protocols: name {self.name!r} must start with a letter and hold only letters, digits "
                f'and _ (it becomes part of metric names), e.g. "pv_delay"'
            )
        if isinstance(self.target, str) or not self.target or not all(isinstance(t, str) for t in self.target):
            raise ConfigError(
                f'{where}.target: expected a non-empty list of populations, layers or cell types such as ["PV"], '
                f"got {self.target!r}"
            )
        v.number(self.fraction, f"{where}.fraction", low=0, high=1)
        v.choice(self.effect, f"{where}.effect", EFFECTS)
        v.number(self.amplitude, f"{where}.amplitude", low=0)
        v.choice(self.event, f"{where}.event", EVENTS)
        v.number(self.start, f"{where}.start")
        v.number(self.stop, f"{where}.stop")
        if not self.stop > self.start:
            raise ConfigError(
                f"{where}: the window [start, stop) = [{self.start}, {self.stop}) s is empty; give stop > start"
            )
        v.number(self.ramp, f"{where}.ramp", low=0)
        v.number(self.trials, f"{where}.trials", low=0, high=1)

    @property
    def sign(self) -> float:
        """+1 for ``excite``, -1 for ``inhibit``, 0 for ``silence`` (no drive)."""
        return {"excite": 1.0, "inhibit": -1.0, "silence": 0.0}[self.effect]

    @property
    def drive_mv(self) -> float:
        """The signed drive (mV) the light adds to an expressing unit's state (0 for ``silence``)."""
        return self.sign * float(self.amplitude)

    def label(self) -> str:
        """One line for logs and figure titles, e.g. ``"excite PV (100 %) +10 mV, go +0.00..+0.30 s"``."""
        what = "silence" if self.effect == "silence" else f"{self.effect} {self.drive_mv:+g} mV"
        until = "end" if self.stop >= WHOLE_TRIAL else f"{self.stop:+.2f}"
        ramp = f", ramp {self.ramp * 1e3:g} ms" if self.ramp else ""
        share = f", {self.trials:.0%} of trials" if self.trials < 1 else ""
        return (
            f"{what} {'+'.join(self.target)} ({self.fraction:.0%} expressing), {self.event} "
            f"{self.start:+.2f}..{until} s{ramp}{share}"
        )


@dataclass(frozen=True)
class StimulationConfig:
    """``[stimulation]``: the protocols and how many trials each is measured on.

    Attributes
    ----------
    protocols : tuple of StimProtocol
        ``[[stimulation.protocols]]``; none (the default): no stimulation stage.
    trials_per_condition : int
        Noisy trials per condition and protocol (for the success rate and the noisy deviations), >= 1.
    spiking_trials : int
        Trials per condition of the spiking twin per protocol (0: the twin is not stimulated).
    ann : bool
        Stimulate the ANN baselines too (the no-cell-type control: a matched share of random hidden units).
    """

    protocols: tuple[StimProtocol, ...] = ()
    trials_per_condition: int = 4
    spiking_trials: int = 2
    ann: bool = True

    def __post_init__(self) -> None:
        v.number(self.trials_per_condition, "stimulation.trials_per_condition", low=1, high=1000, integer=True)
        v.number(self.spiking_trials, "stimulation.spiking_trials", low=0, high=100, integer=True)
        names = [p.name for p in self.protocols]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"stimulation.protocols: the name {twice[0]!r} is given twice; names must be unique")

    @property
    def active(self) -> bool:
        """True when a protocol is given."""
        return bool(self.protocols)


def lesion_protocol(populations: tuple[str, ...]) -> StimProtocol:
    """``[lesion] silence = populations`` as a stimulation protocol: every unit, the whole trial, every trial."""
    if not populations:
        raise ConfigError("lesion.silence: no population to silence")
    return StimProtocol(
        name="lesion",
        target=tuple(populations),
        fraction=1.0,
        effect="silence",
        event="trial_start",
        start=-WHOLE_TRIAL,
        stop=WHOLE_TRIAL,
        trials=1.0,
    )
