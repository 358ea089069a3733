"""Stimulation protocols made concrete: who expresses, which trials, when the light is on.

A :class:`~cortexsim.stim_config.StimProtocol` is written once, in the units of an experiment;
this module turns it into the :class:`~cortexsim.model.Stimulus` each model applies inside its own
update (:meth:`cortexsim.rate.RateNetwork.simulate`, the ANNs, the spiking twin), so every model
receives the same protocol the same way:

* **expression** -- the target names (populations, layers, cell types) select units of a model
  that has cell types (:meth:`~cortexsim.rate.RateNetwork.cell_types`); ``round(fraction x n)`` of
  them express, drawn from the seed stream ``stimulation/<name>`` (:func:`expression`).  A model
  without cell types (an ANN) gets the *matched share*: the same share of its units as express in
  the circuit, drawn at random (:func:`matched_expression`) -- the no-cell-type control.  The
  spiking twin draws per neuron (:func:`neuron_expression`), so a pool can be partly expressing;
* **trials** -- ``round(trials x n)`` of the trials are stimulated, interleaved at random
  (:func:`stimulated_trials`);
* **light** -- per step and trial, 1 inside ``[event + start, event + stop)``, a linear ramp-down
  over ``ramp`` s after it, 0 elsewhere and on unstimulated trials and on trials where the event
  does not happen (a catch trial has no ``go``) (:func:`light_profile`).

``[lesion] silence`` is the protocol :func:`~cortexsim.stim_config.lesion_protocol` (every unit,
the whole trial, every trial); :func:`cortexsim.lesion.apply_lesion` applies it as the network's
static silence, which the rate model multiplies exactly as it multiplies a stimulation's keep
factor (``tests/test_stimulation.py`` checks the two paths agree bit for bit, rate and twin).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .model import Stimulus
from .stim_config import StimProtocol
from .streams import stream
from .tasks import TrialBatch
from .transfer import Transfer

REST_RATE_HZ = 5.0
"""The rate (Hz) from which :func:`check_amplitude` measures how far a drive pushes a unit."""


def target_units(protocol: StimProtocol, cell_types: list[tuple[str, str, str, slice]], n_units: int) -> np.ndarray:
    """Boolean mask (units,) of the units the protocol's ``target`` names (populations, layers, cell types).

    Raises
    ------
    ConfigError
        A name that is no population, layer or cell type of the model.
    """
    mask = np.zeros(n_units, bool)
    for name in protocol.target:
        hit = False
        for pop, layer, subtype, where in cell_types:
            if name in (pop, layer, subtype):
                mask[where] = True
                hit = True
        if not hit:
            known = sorted({c[0] for c in cell_types} | {c[1] for c in cell_types} | {c[2] for c in cell_types})
            raise ConfigError(
                f"stimulation.protocols.{protocol.name}.target: {name!r} is no population, layer or cell type of "
                f"the circuit; known: {', '.join(known)}"
            )
    return mask


def _choose(candidates: np.ndarray, share: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """0/1 float vector (n,): ``round(share x len(candidates))`` of ``candidates`` set, chosen by ``rng``."""
    out = np.zeros(n)
    k = int(round(share * candidates.size))
    if k:
        out[rng.choice(candidates, size=k, replace=False)] = 1.0
    return out


def expression(model, protocol: StimProtocol, seed: int) -> np.ndarray:
    """Which of a cell-typed model's units express the opsin: 0/1 float vector (units,).

    ``round(fraction x n)`` of the ``n`` targeted units, drawn from stream ``stimulation/<name>``.
    """
    n = sum(where.stop - where.start for _, where in model.populations())
    targeted = np.flatnonzero(target_units(protocol, model.cell_types(), n))
    if protocol.fraction >= 1.0:
        out = np.zeros(n)
        out[targeted] = 1.0
        return out
    return _choose(targeted, protocol.fraction, stream(seed, f"stimulation/{protocol.name}", 0), n)


def matched_expression(n_units: int, share: float, protocol: StimProtocol, seed: int) -> np.ndarray:
    """The no-cell-type control: ``round(share x n_units)`` random units of a model without cell types, (units,)."""
    return _choose(np.arange(n_units), share, stream(seed, f"stimulation/{protocol.name}", 1), n_units)


def neuron_expression(
    cell_types: list[tuple[str, str, str, slice]], n_units: int, k: int, protocol: StimProtocol, seed: int
) -> np.ndarray:
    """Which neurons of the spiking twin express: 0/1 float vector (units x k,), neuron ``u k + j`` of pool ``u``.

    Drawn per neuron among the targeted pools' neurons (a pool can be partly expressing).
    """
    pools = np.flatnonzero(target_units(protocol, cell_types, n_units))
    neurons = (pools[:, None] * k + np.arange(k)[None, :]).ravel()
    if protocol.fraction >= 1.0:
        out = np.zeros(n_units * k)
        out[neurons] = 1.0
        return out
    return _choose(neurons, protocol.fraction, stream(seed, f"stimulation/{protocol.name}", 2), n_units * k)


def stimulated_trials(protocol: StimProtocol, n_trials: int, seed: int, family: int = 0) -> np.ndarray:
    """Which of ``n_trials`` trials get the light: bool (trials,), ``round(trials x n)`` of them, interleaved."""
    if protocol.trials >= 1.0:
        return np.ones(n_trials, bool)
    rng = stream(seed, f"stimulation/{protocol.name}/trials", family)
    return _choose(np.arange(n_trials), protocol.trials, rng, n_trials).astype(bool)


def event_times(protocol: StimProtocol, batch: TrialBatch) -> np.ndarray:
    """The protocol's event in each trial (s from trial start; NaN where it does not happen), (trials,)."""
    if protocol.event == "trial_start":
        return np.zeros(batch.n_trials)
    return np.asarray(batch.params[protocol.event], float)


def light_profile(protocol: StimProtocol, batch: TrialBatch, stimulated: np.ndarray | None = None) -> np.ndarray:
    """The light per step and trial, in [0, 1], shape (time, trials).

    Parameters
    ----------
    protocol : StimProtocol
    batch : TrialBatch
        Its ``params`` give the event times.
    stimulated : ndarray of bool, shape (trials,), optional
        The trials that get the light (default: all).
    """
    since = batch.time[:, None] - event_times(protocol, batch)[None, :]  # (time, trials); NaN: no event
    on = (since >= protocol.start) & (since < protocol.stop)
    profile = on.astype(float)
    if protocol.ramp > 0:
        fading = (since >= protocol.stop) & (since < protocol.stop + protocol.ramp)
        profile[fading] = 1.0 - (since[fading] - protocol.stop) / protocol.ramp
    if stimulated is not None:
        profile[:, ~np.asarray(stimulated, bool)] = 0.0
    return profile


def stimulus(protocol: StimProtocol, units: np.ndarray, profile: np.ndarray, scale: float = 1.0) -> Stimulus:
    """The :class:`~cortexsim.model.Stimulus` of ``protocol`` on expressing ``units`` (units,) under ``profile``.

    ``scale`` converts the protocol's mV into the model's state units (1 for the circuit and its twin).
    """
    return Stimulus(
        expression=np.asarray(units, float),
        profile=np.asarray(profile, float),
        drive=protocol.drive_mv * float(scale),
        silence=protocol.effect == "silence",
    )


def check_window(protocol: StimProtocol, batch: TrialBatch) -> None:
    """Refuse a protocol whose light is on in no step of any trial of ``batch`` (the window is outside the trial)."""
    if not light_profile(protocol, batch).any():
        duration = batch.n_steps * batch.dt
        events = event_times(protocol, batch)
        raise ConfigError(
            f"stimulation.protocols.{protocol.name}: the window {protocol.event} {protocol.start:+g}.."
            f"{protocol.stop:+g} s is outside every trial (trials last {duration:g} s, the {protocol.event} event at "
            f"{np.nanmin(events):.2f}..{np.nanmax(events):.2f} s); give start and stop inside the trial"
        )


def max_amplitude_mv(transfer: Transfer, ceiling_hz: float) -> float:
    """The largest drive (mV) that keeps a unit firing :data:`REST_RATE_HZ` within ``phi <= ceiling_hz``."""
    grid = np.linspace(-100.0, 500.0, 60001)
    rates = transfer(grid.copy())
    start = grid[np.argmax(rates >= REST_RATE_HZ)]
    over = np.flatnonzero(rates > ceiling_hz)
    return float((grid[over[0]] if over.size else grid[-1]) - start)


def check_amplitude(protocol: StimProtocol, transfer: Transfer, ceiling_hz: float) -> None:
    """Refuse an ``excite``/``inhibit`` amplitude that would drive a unit past the transfer function's range.

    The range ends at ``ceiling_hz`` (the LIF neuron's refractory limit ``1 / t_ref``, which its
    spiking twin cannot exceed); the drive is measured from a unit at :data:`REST_RATE_HZ`.
    """
    if protocol.effect == "silence":
        return
    limit = max_amplitude_mv(transfer, ceiling_hz)
    if protocol.amplitude > limit:
        raise ConfigError(
            f"stimulation.protocols.{protocol.name}.amplitude: {protocol.amplitude:g} mV would drive a unit at "
            f"{REST_RATE_HZ:g} Hz past the transfer function's range ({ceiling_hz:.0f} Hz, the LIF neuron's "
            f"1 / t_ref); use at most {limit:.0f} mV"
        )


__all__ = [
    "check_amplitude",
    "check_window",
    "event_times",
    "expression",
    "light_profile",
    "matched_expression",
    "max_amplitude_mv",
    "neuron_expression",
    "stimulated_trials",
    "stimulus",
    "target_units",
]
