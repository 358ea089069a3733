"""Causal experiments: each stimulation protocol on each model, in closed loop, and what it changed.

For every protocol of ``[stimulation]`` (:mod:`cortexsim.stim_config`) and every model -- the rate
circuit, its spiking twin, each ANN (the no-cell-type control) -- :func:`stimulate_model` /
:func:`stimulate_twin` run the held-out evaluation conditions twice, with the light and without,
and :func:`measure` reads what the light did, as a lab reads a photostimulation session:

**Behaviour** (noise-free, each condition stimulated against itself unstimulated):

* ``peak_deviation_cm`` -- the hand's largest distance from the same condition's unstimulated path,
  mean over conditions; ``window_end_deviation_cm`` at the step the light goes off (before any
  ramp); ``endpoint_deviation_cm`` at the trial's last step;
* ``endpoint_error_cm`` of the stimulated reaches and ``reaction_time_shift_ms`` (stimulated minus
  unstimulated median reaction time, :func:`cortexsim.metrics.reaction_time_ms`);
* ``success_rate``: the share of stimulated reaches whose endpoint error meets the model's bar
  (``[quality] endpoint_error_cm``; the twin's ``spiking_endpoint_error_cm``); on noisy, interleaved
  trials (``[stimulation] trials_per_condition`` per condition, the protocol's ``trials`` share lit,
  every trial run twice with the same noise) ``noisy_success_rate`` of the lit trials against
  ``noisy_success_rate_unstimulated`` of the same trials without the light.

**The population** (the activity every comparison uses: rates in Hz, an ANN's ``h``):

* ``neural_peak_deviation``: the largest norm over units of the activity's change;
* ``potent_share``: the share of the change's squared norm, from the light's onset to the trial's
  end, that lies in the readout's output-potent space (the row space of
  :meth:`~cortexsim.rate.RateNetwork.readout_matrix`: what the body can see; Kaufman et al. 2014,
  O'Shea et al. 2022), against ``potent_chance`` = its dimension / units;
* ``neural_recovery_ms``: from the light's end (after the ramp) until the change's norm stays below
  :data:`RECOVERY_FRACTION` of its peak, median over conditions (NaN: not by the trial's end in most);
* per population (``populations`` table): the mean change of activity while the light is on and
  in the :data:`AFTER_WINDOW` s after, relative to its unstimulated mean, and the share of its
  units that express -- driven *directly* (it expresses) or *indirectly* (through the circuit).

The spiking twin runs the same trials, twice with the same Brian2 seed (an all-dark light is the
reference: common random numbers, so before the light the two runs are identical); its activity is
the decoded pool rates and its hand the arm it drives.  The ANNs' drive is the circuit's, scaled by
the ratio of the models' state spreads (:func:`ann_drive_scale`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics
from . import stimulation as st
from .analysis.output_null import potent_basis
from .spiking.decode import pool_rates
from .stim_config import StimProtocol
from .streams import stream
from .tasks import TrialBatch

RECOVERY_FRACTION = 0.1
"""The neural state has recovered when its deviation stays below this fraction of its peak."""

AFTER_WINDOW = 0.2
"""Length (s) of the epoch after the light in which the populations' after-effects are averaged."""


@dataclass(frozen=True)
class Response:
    """What one model did, with the light and without (one protocol).

    Attributes
    ----------
    hand, hand_base : ndarray, shape (conditions, time, 2)
        The hand (m; relative to its start on a body), stimulated and unstimulated, noise-free
        (the twin: mean over its trials).
    activity, activity_base : ndarray, shape (conditions, time, units)
        The activity (Hz for the circuit and twin; an ANN's ``h``), likewise.
    light : ndarray, shape (time, conditions)
        The light on each condition's stimulated trial.
    expression : ndarray, shape (units,)
        Share of each unit that expresses (0/1 for a rate unit or ANN unit; the twin: the share of the
        pool's neurons).
    noisy : list of dict
        One row per noisy trial (``trial``, ``condition``, ``stimulated``, ``endpoint_error_cm``,
        ``endpoint_error_cm_unstimulated``, ``peak_deviation_cm``); empty for the twin.
    """

    hand: np.ndarray
    hand_base: np.ndarray
    activity: np.ndarray
    activity_base: np.ndarray
    light: np.ndarray
    expression: np.ndarray
    noisy: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class StimResult:
    """One protocol measured on one model (:func:`measure`); what ``/stimulation/<protocol>/<model>`` holds.

    Attributes
    ----------
    protocol, model : str
        The protocol's name and the model's key (``rate``, ``spiking``, ``ann_<arch>``).
    metrics : dict of str to float
        ``stim_<protocol>_<model>_<measure>`` (see the module docstring).
    time : ndarray, shape (time,)
        Step start times (s).
    hand_deviation : ndarray, shape (conditions, time)
        Distance (m) of the stimulated hand from the unstimulated one.
    neural_deviation, neural_potent : ndarray, shape (time,)
        Norm over units of the activity's change, mean over conditions, and of its output-potent part.
    populations : list of dict
        Per population: ``population``, ``expressing`` (share of units), ``direct`` (1 if any unit
        expresses), ``change_light``, ``change_after`` (mean change of activity), ``relative_light``
        (change over the unstimulated mean, while lit).
    response : Response
    """

    protocol: str
    model: str
    metrics: dict[str, float]
    time: np.ndarray
    hand_deviation: np.ndarray
    neural_deviation: np.ndarray
    neural_potent: np.ndarray
    populations: list[dict]
    response: Response

    def metric(self, name: str) -> float:
        """One of :attr:`metrics` by its short name (``"peak_deviation_cm"``)."""
        return self.metrics[f"stim_{self.protocol}_{self.model}_{name}"]


def ann_drive_scale(circuit_state: np.ndarray, ann_state: np.ndarray) -> float:
    """Drive of an ANN per mV of the circuit's: the ratio of the SDs of the two models' states (unstimulated)."""
    return float(np.std(ann_state) / max(np.std(circuit_state), 1e-12))


def stimulate_model(
    model,
    protocol: StimProtocol,
    batch: TrialBatch,
    *,
    seed: int,
    trials_per_condition: int,
    units: np.ndarray,
    scale: float = 1.0,
    base: Any = None,
) -> Response:
    """Run a model (rate circuit or ANN, with or without a body) with and without ``protocol``'s light.

    Parameters
    ----------
    model : Model
        Anything with ``simulate(batch, rng, stimulus)`` (:class:`cortexsim.model.Model`).
    protocol : StimProtocol
    batch : TrialBatch
        The held-out evaluation conditions, one trial each (no catch trials).
    seed : int
        The experiment seed (the noisy trials' noise: stream ``stimulation-noise``).
    trials_per_condition : int
        Noisy trials per condition (interleaved: the protocol's ``trials`` share lit).
    units : ndarray, shape (units,)
        Which units express (:func:`cortexsim.stimulation.expression` or ``matched_expression``).
    scale : float
        Drive per mV of the protocol (1 for the circuit; :func:`ann_drive_scale` for an ANN).
    base : Trajectory, optional
        The model's unstimulated noise-free trajectory of ``batch``, if already simulated.
    """
    light = st.light_profile(protocol, batch)
    base = model.simulate(batch) if base is None else base
    lit = model.simulate(batch, stimulus=st.stimulus(protocol, units, light, scale))
    noisy = []
    if trials_per_condition > 0:
        trials = batch.take(np.repeat(np.arange(batch.n_trials), trials_per_condition))
        chosen = st.stimulated_trials(protocol, trials.n_trials, seed)
        stim = st.stimulus(protocol, units, st.light_profile(protocol, trials, chosen), scale)
        calm = model.simulate(trials, stream(seed, "stimulation-noise", 0)).outputs  # the same noise twice
        moved = model.simulate(trials, stream(seed, "stimulation-noise", 0), stim).outputs
        noisy = _noisy_rows(trials, chosen, calm, moved)
    return Response(lit.outputs, base.outputs, lit.activity, base.activity, light, np.asarray(units, float), noisy)


def _noisy_rows(trials: TrialBatch, chosen: np.ndarray, calm: np.ndarray, moved: np.ndarray) -> list[dict]:
    """One row per noisy trial: its endpoint errors with and without the light and its peak deviation."""
    rows = []
    for i in range(trials.n_trials):
        one = trials.take(np.array([i]))
        rows.append(
            {
                "trial": float(i),
                "condition": float(trials.params["condition"][i]),
                "stimulated": float(chosen[i]),
                "endpoint_error_cm": metrics.endpoint_error_cm(moved[i : i + 1], one),
                "endpoint_error_cm_unstimulated": metrics.endpoint_error_cm(calm[i : i + 1], one),
                "peak_deviation_cm": float(100.0 * np.linalg.norm(moved[i] - calm[i], axis=-1).max()),
            }
        )
    return rows


def stimulate_twin(
    net, params, protocol: StimProtocol, batch: TrialBatch, *, trials: int, seed: int, run, base=None
) -> tuple[Response, Any]:
    """The spiking twin with and without ``protocol``'s light: every trial twice, with the same Brian2 seed.

    Parameters
    ----------
    net : RateNetwork
        The (intact) circuit the twin was mapped from.
    params : SpikingParams
    protocol : StimProtocol
    batch : TrialBatch
        The evaluation conditions, one trial each.
    trials : int
        Trials per condition (all lit).
    seed : int
    run : callable
        ``run(stimulus) -> TwinResult``: the twin on ``batch`` (``trials`` per condition, condition-major).
    base : TwinResult, optional
        The all-dark run (any protocol's: a dark light leaves every neuron at rest), if already made.

    Returns
    -------
    Response, TwinResult
        The response and the all-dark run (to reuse for the next protocol).
    """
    flat = batch.take(np.repeat(np.arange(batch.n_trials), trials))
    neurons = st.neuron_expression(net.cell_types(), params.n_units, params.k, protocol, seed)
    if base is None:
        base = run(st.stimulus(protocol, neurons, np.zeros((batch.n_steps, flat.n_trials))))
    lit = run(st.stimulus(protocol, neurons, st.light_profile(protocol, flat)))
    share = neurons.reshape(params.n_units, params.k).mean(axis=1)

    def rates(result) -> np.ndarray:  # each trial decoded on its own: no tail of the previous (lit) trial
        out = pool_rates(
            result.spikes, params.k, params.n_units, flat.n_trials, batch.n_steps, batch.dt, per_trial=True
        )
        return out.reshape(batch.n_trials, trials, batch.n_steps, -1).mean(axis=1)

    response = Response(
        hand=lit.outputs.mean(axis=1),
        hand_base=base.outputs.mean(axis=1),
        activity=rates(lit),
        activity_base=rates(base),
        light=st.light_profile(protocol, batch),
        expression=share,
    )
    return response, base


def measure(
    protocol: StimProtocol,
    model: str,
    response: Response,
    batch: TrialBatch,
    readout: np.ndarray,
    populations: list[tuple[str, slice]],
    bar_cm: float,
) -> StimResult:
    """The behavioural and neural measures of one protocol on one model (see the module docstring).

    Parameters
    ----------
    protocol : StimProtocol
    model : str
        The model's key in metric names (``rate``, ``spiking``, ``ann_<arch>``).
    response : Response
    batch : TrialBatch
        The evaluation conditions (one trial each).
    readout : ndarray, shape (outputs, units)
        The linear map from the activity to the readout (its row space is the output-potent space).
    populations : list of (name, slice)
    bar_cm : float
        The endpoint-error bar (cm) a reach must meet to count as a success.
    """
    r, dt = response, batch.dt
    key = f"stim_{protocol.name}_{model}_"
    deviation = np.linalg.norm(r.hand - r.hand_base, axis=-1)  # (conditions, time)
    light = r.light.T  # (conditions, time)
    on = light > 0
    first_on = np.array([np.flatnonzero(row)[0] if row.any() else -1 for row in on])
    last_full = np.array([np.flatnonzero(row == 1.0)[-1] if (row == 1.0).any() else -1 for row in light])
    last_on = np.array([np.flatnonzero(row)[-1] if row.any() else -1 for row in on])
    lit = first_on >= 0
    change = r.activity - r.activity_base  # (conditions, time, units)
    norm = np.linalg.norm(change, axis=-1)  # (conditions, time)
    basis = potent_basis(readout)
    potent = np.linalg.norm(change @ basis, axis=-1)
    after = np.zeros_like(on)
    for c in np.flatnonzero(lit):
        after[c, first_on[c] :] = True
    total_sq = float(np.sum(norm[after] ** 2))
    errors = np.array(
        [metrics.endpoint_error_cm(r.hand[c : c + 1], batch.take(np.array([c]))) for c in range(len(r.hand))]
    )
    values = {
        "peak_deviation_cm": 100.0 * float(deviation.max(axis=1).mean()),
        "window_end_deviation_cm": 100.0
        * float(np.mean([deviation[c, last_full[c]] for c in np.flatnonzero(lit)]) if lit.any() else np.nan),
        "endpoint_deviation_cm": 100.0 * float(deviation[:, -1].mean()),
        "endpoint_error_cm": float(np.mean(errors)),
        "reaction_time_shift_ms": metrics.reaction_time_ms(r.hand, batch)
        - metrics.reaction_time_ms(r.hand_base, batch),
        "success_rate": float(np.mean(errors < bar_cm)),
        "neural_peak_deviation": float(norm.max()),
        "potent_share": float(np.sum(potent[after] ** 2) / total_sq) if total_sq > 0 else float("nan"),
        "potent_chance": basis.shape[1] / max(readout.shape[1], 1),
        "neural_recovery_ms": _recovery_ms(norm, last_on, lit, dt),
        "expressing_share": float(np.mean(r.expression)),
    }
    if r.noisy:
        lit_rows = [row for row in r.noisy if row["stimulated"]]
        values["noisy_success_rate"] = (
            float(np.mean([row["endpoint_error_cm"] < bar_cm for row in lit_rows])) if lit_rows else float("nan")
        )
        values["noisy_success_rate_unstimulated"] = (
            float(np.mean([row["endpoint_error_cm_unstimulated"] < bar_cm for row in lit_rows]))
            if lit_rows
            else float("nan")
        )
        values["noisy_peak_deviation_cm"] = (
            float(np.mean([row["peak_deviation_cm"] for row in lit_rows])) if lit_rows else float("nan")
        )
        values["noisy_trials_stimulated"] = float(len(lit_rows))
    rows = _population_rows(r, populations, on, last_on, dt)
    return StimResult(
        protocol=protocol.name,
        model=model,
        metrics={key + name: float(value) for name, value in values.items()},
        time=batch.time,
        hand_deviation=deviation,
        neural_deviation=norm.mean(axis=0),
        neural_potent=potent.mean(axis=0),
        populations=rows,
        response=r,
    )


def _recovery_ms(norm: np.ndarray, last_on: np.ndarray, lit: np.ndarray, dt: float) -> float:
    """Median over lit conditions of the time (ms) from the light's end until ``norm`` stays below its threshold."""
    times = []
    for c in np.flatnonzero(lit):
        peak = norm[c].max()
        if peak == 0:
            times.append(0.0)
            continue
        above = np.flatnonzero(norm[c, last_on[c] + 1 :] > RECOVERY_FRACTION * peak)
        tail = norm.shape[1] - last_on[c] - 1
        if above.size and above[-1] == tail - 1:
            times.append(np.nan)  # still deviating at the trial's end
        else:
            times.append(((above[-1] + 1) if above.size else 0) * dt * 1e3)
    times = np.asarray(times, float)
    if not times.size or np.mean(np.isnan(times)) > 0.5:
        return float("nan")
    return float(np.nanmedian(times))


def _population_rows(r: Response, populations, on: np.ndarray, last_on: np.ndarray, dt: float) -> list[dict]:
    """Per population: expressing share, mean change while lit and after, and relative to its unstimulated mean."""
    after = np.zeros_like(on)
    k = int(round(AFTER_WINDOW / dt))
    for c, stop in enumerate(last_on):
        if stop >= 0:
            after[c, stop + 1 : stop + 1 + k] = True
    rows = []
    for name, where in populations:
        change = (r.activity[:, :, where] - r.activity_base[:, :, where]).mean(axis=-1)  # (conditions, time)
        base = r.activity_base[:, :, where].mean(axis=-1)
        during = float(change[on].mean()) if on.any() else float("nan")
        base_on = float(np.abs(base[on]).mean()) if on.any() else float("nan")
        rows.append(
            {
                "population": name,
                "expressing": float(np.mean(r.expression[where])),
                "direct": float(np.any(r.expression[where] > 0)),
                "change_light": during,
                "change_after": float(change[after].mean()) if after.any() else float("nan"),
                "relative_light": during / base_on if base_on and np.isfinite(base_on) else float("nan"),
            }
        )
    return rows


def agreement(rate: StimResult, twin: StimResult) -> dict[str, float]:
    """How the twin's answer matches its circuit's for one protocol.

    ``stim_<protocol>_twin_agreement_r``: correlation across conditions of the two models' peak hand
    deviations (NaN when either does not vary); ``stim_<protocol>_twin_magnitude_ratio``: the twin's
    mean peak deviation over the circuit's.
    """
    a, b = rate.hand_deviation.max(axis=1), twin.hand_deviation.max(axis=1)
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    ratio = float(b.mean() / a.mean()) if a.mean() > 0 else float("nan")
    return {f"stim_{rate.protocol}_twin_agreement_r": r, f"stim_{rate.protocol}_twin_magnitude_ratio": ratio}


__all__ = [
    "AFTER_WINDOW",
    "RECOVERY_FRACTION",
    "Response",
    "StimResult",
    "agreement",
    "ann_drive_scale",
    "measure",
    "stimulate_model",
    "stimulate_twin",
]
