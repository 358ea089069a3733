"""Where the arm circuit's rotational dynamics come from: its recurrence or its sensory feedback.

Kalidindi et al. (2021) showed that a network driving a limb in closed loop can produce M1-like
rotations from its sensory feedback, without recurrent dynamics of its own.  A laminar,
cell-typed circuit can ask which part of the loop makes them, population by population.  For a
trained :class:`~cortexsim.closed_loop.ArmRateNetwork`, on the noise-free evaluation reaches,
:func:`rotation_sources` measures the jPCA rotation (the battery's window around movement onset,
:func:`cortexsim.battery.jpca_row`) and the DSA distance to the intact circuit
(:func:`cortexsim.battery.lesion_dsa`, radians) of

* ``intact`` -- the trained closed loop;
* ``no_feedback`` -- the loop opened after training (every feedback channel carries zeros);
* ``no_interpopulation_recurrence`` -- every synapse between two different populations cut after
  training (within-population recurrence and the feedback kept);
* ``silenced_<layer>`` -- each layer's populations silenced (rates clamped to 0 Hz).

* ``trained_without_interpopulation_recurrence`` -- the fair control of Kalidindi et al.: a
  circuit *trained* from scratch, with feedback, without inter-population synapses (``[compare]
  rotation_control``, stage ``control``), compared with the intact circuit.

Each row also gives the endpoint error, so a variant that no longer reaches is read as such.
"""

from __future__ import annotations

import numpy as np

from . import metrics
from .battery import JPCA_WINDOW, jpca_row, lesion_dsa
from .battery.onsets import ONSET_FRACTION, aligned_to, measured_onsets
from .closed_loop import ArmRateNetwork
from .store import Activity
from .tasks import TrialBatch

ROTATION_COLUMNS = {
    "condition": "intact, no_feedback, no_interpopulation_recurrence, silenced_<layer> or "
    "trained_without_interpopulation_recurrence",
    "jpca_ratio": "R2 of the skew-symmetric fit over the best linear fit (1 = purely rotational)",
    "frequency_hz": "rotation frequency of the strongest jPCA plane (Hz)",
    "dsa_to_intact": "DSA distance to the intact circuit (rad; 0 = the same dynamics)",
    "endpoint_error_cm": "mean endpoint error of the variant's reaches (cm)",
}
"""The columns of ``/analysis/rotation_sources`` and what they mean."""


def interpopulation_synapses(net: ArmRateNetwork) -> np.ndarray:
    """Boolean (post units, pre units): True where a synapse joins two different populations."""
    label = net.connectome.unit_population
    return (label[:, None] != label[None, :]) & (net.mask > 0)


def variants(net: ArmRateNetwork) -> dict[str, ArmRateNetwork]:
    """The circuit and its manipulations, by condition name (see the module notes)."""
    out = {
        "intact": net,
        "no_feedback": net.without_feedback(),
        "no_interpopulation_recurrence": net.lesioned(cut=interpopulation_synapses(net)),
    }
    layers: dict[str, np.ndarray] = {}
    for pop in net.connectome.populations:
        mask = layers.setdefault(pop.spec.layer, np.zeros(net.n_units, bool))
        mask[pop.slice] = True
    for layer, mask in layers.items():
        out[f"silenced_{layer}"] = net.lesioned(silenced=mask)
    return out


def rotation_sources(
    net: ArmRateNetwork,
    evaluation: TrialBatch,
    n_pcs: int = 10,
    control: ArmRateNetwork | None = None,
    *,
    window: tuple[float, float] = JPCA_WINDOW,
    onset_fraction: float = ONSET_FRACTION,
) -> list[dict]:
    """The rotation-sources table of a trained arm circuit (see the module notes).

    Parameters
    ----------
    net : ArmRateNetwork
        The trained circuit.
    evaluation : TrialBatch
        The noise-free evaluation reaches (one per condition).
    n_pcs : int
        PCs both activities are reduced to before DSA.
    control : ArmRateNetwork, optional
        The circuit *trained* without inter-population recurrence (``[compare] rotation_control``):
        adds the row ``trained_without_interpopulation_recurrence``.
    window : (float, float)
        The jPCA window (s from movement onset; ``[compare] jpca_window``).
    onset_fraction : float
        Each variant's jPCA is aligned to its own measured movement onset, its hand speed crossing
        this share of its peak after go (``[compare] jpca_onset_fraction``), as the battery aligns
        every model on a body.

    Returns
    -------
    list of dict
        One row per condition, columns :data:`ROTATION_COLUMNS`.
    """
    if getattr(net, "body", None) is None or not hasattr(net, "connectome"):
        raise TypeError(f"rotation_sources needs the circuit driving a body, got {type(net).__name__}")
    move_on = int(round(float(evaluation.params["move_on"][0]) / evaluation.dt))
    rows, intact = [], None
    models = variants(net)
    if control is not None:
        models["trained_without_interpopulation_recurrence"] = control
    for name, model in models.items():
        loop = model.simulate_loop(evaluation)
        rates = loop.rates
        live = rates.std(axis=(0, 1)) > 0  # silenced units carry nothing
        measured = measured_onsets(loop.hand, evaluation.dt, evaluation.params["go"], move_on, onset_fraction)
        act = aligned_to(Activity(name, "model", rates[:, :, live], evaluation.dt, move_on), *measured)
        try:
            row, _ = jpca_row(act, window)
            ratio, freq = float(row["ratio"]), float(row["frequency_hz"])
        except ValueError:
            ratio, freq = float("nan"), float("nan")
        if intact is None:
            intact = rates
        rows.append(
            {
                "condition": name,
                "jpca_ratio": ratio,
                "frequency_hz": freq,
                "dsa_to_intact": 0.0 if name == "intact" else lesion_dsa(intact, rates, n_pcs),
                "endpoint_error_cm": metrics.endpoint_error_cm(loop.hand, evaluation),
            }
        )
    return rows


__all__ = ["ROTATION_COLUMNS", "interpopulation_synapses", "rotation_sources", "variants"]
