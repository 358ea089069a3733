"""``[fit]``: fitting the models to recorded neurons, checked into a frozen dataclass.

::

    [fit]
    data = "recording.nwb"              # NWB single trials (Units, trials) or .npz/.mat condition averages
    target = "auto"                     # "counts" (single trials: Poisson), "psth" (averages: z-scored SE);
                                        #   auto: counts for NWB, psth for .npz/.mat
    mapping = "units"                   # "units": each held-in neuron one unit of `populations`;
                                        #   "readout": a non-negative softplus readout per neuron
    populations = []                    # the units' populations (default: the excitatory ones of L5B and L2/3)
    weight = 1.0                        # weight of the neural term next to the task loss
    heldout_neurons = 0.25              # share of neurons held out (NLB's `heldout` column when the file has one)
    heldout_conditions = 0.25           # share of conditions held out of training
    test_trials = 0.25                  # share of each training condition's trials held out (single trials)
    align_event = "move_onset_time"     # NWB: the trials column the window is aligned to
    window = [-0.25, 0.45]              # s around the event: the fitted and scored window
    condition_column = "condition"      # NWB: the trials column that groups trials into conditions
    hand = "hand_position"              # NWB: the hand-position series ("" or missing: no kinematics)
    models = ["rate", "rate_taskonly"]  # which models are fitted; every ANN of [ann] archs is fitted too

The split is drawn from the seed stream ``fit/split`` of the experiment seed.  ANNs are always
mapped by a signed softplus readout of their hidden units (they have no units that are neurons).
This module is the base layer (like :mod:`cortexsim.config`, which registers the section).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _validate as v
from .errors import ConfigError

TARGETS = ("auto", "counts", "psth")
"""What the neural term fits: single-trial spike counts, condition-averaged PSTHs, or what the file holds."""

MAPPINGS = ("units", "readout")
"""How recorded neurons map to the circuit: one unit each, or a learned non-negative readout."""

FIT_MODELS = ("rate", "rate_taskonly")
"""The circuit models a fit reports: fitted to the neurons, and trained on the recorded task alone."""


@dataclass(frozen=True)
class FitConfig:
    """``[fit]``: see the module docstring.

    Attributes
    ----------
    data : str
        Recorded data, relative to the config file ("": no fit).
    target : str
        One of :data:`TARGETS`.
    mapping : str
        One of :data:`MAPPINGS` (the circuit's; ANNs always use a readout).
    populations : tuple of str
        Populations whose units the ``units`` mapping draws from (empty: excitatory units of L5B and L2/3).
    weight : float
        Weight of the neural term (>= 0).
    heldout_neurons, heldout_conditions, test_trials : float
        Shares held out, each in [0, 0.9].
    align_event : str
        NWB: trials column of the alignment event (s).
    window : tuple of float
        Fitted and scored window (s) around the event: (start, stop), start < stop.
    condition_column : str
        NWB: trials column grouping trials into conditions.
    hand : str
        NWB: name of the hand-position series ("" : fit without kinematics).
    models : tuple of str
        Of :data:`FIT_MODELS`.
    """

    data: str = ""
    target: str = "auto"
    mapping: str = "units"
    populations: tuple[str, ...] = ()
    weight: float = 1.0
    heldout_neurons: float = 0.25
    heldout_conditions: float = 0.25
    test_trials: float = 0.25
    align_event: str = "move_onset_time"
    window: tuple[float, ...] = (-0.25, 0.45)
    condition_column: str = "condition"
    hand: str = "hand_position"
    models: tuple[str, ...] = FIT_MODELS

    def __post_init__(self) -> None:
        if not isinstance(self.data, str):
            raise ConfigError(f"fit.data: {self.data!r}; give a file name")
        v.choice(self.target, "fit.target", TARGETS)
        v.choice(self.mapping, "fit.mapping", MAPPINGS)
        v.number(self.weight, "fit.weight", low=0)
        for name in ("heldout_neurons", "heldout_conditions", "test_trials"):
            v.number(getattr(self, name), f"fit.{name}", low=0, high=0.9)
        if len(self.window) != 2 or not self.window[0] < self.window[1]:
            raise ConfigError(
                f"fit.window: {list(self.window)!r}; give [start, stop] in s around fit.align_event, "
                "start < stop, e.g. [-0.25, 0.45]"
            )
        for i, w in enumerate(self.window):
            v.number(w, f"fit.window[{i}]")
        for i, model in enumerate(self.models):
            v.choice(model, f"fit.models[{i}]", FIT_MODELS)
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"fit.models: {list(self.models)} repeats a model; give each once")

    @property
    def active(self) -> bool:
        """True when a data file is named: the pipeline runs the ``fit`` stage."""
        return bool(self.data)
