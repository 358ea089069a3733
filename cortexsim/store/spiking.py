"""``/spikes`` (SONATA) and ``/spiking``: the LIF twin's spikes, rates, decoded hands and fidelity."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from ..circuit import Connectome
from ..errors import RunFileError
from ..spiking.twin import TwinResult
from .datasets import attr_text, reader, write_array, write_table


def write_spiking(f: h5py.File, result: TwinResult, connectome: Connectome, n_reach: int) -> None:
    """Write the spiking twin: SONATA ``/spikes/<population>`` and ``/spiking`` (rates, outputs, fidelity).

    Parameters
    ----------
    result : TwinResult
        From :func:`cortexsim.spiking.run_twin`.
    connectome : Connectome
        The rate circuit (for the population ranges).
    n_reach : int
        Number of reach conditions (those of ``/task``); later conditions are catch trials.
    """
    params, spikes, batch = result.params, result.spikes, result.batch
    k = int(params.k)
    n_cond, n_trials, n_steps, _ = result.rates.shape
    for name in ("spikes", "spiking"):
        if name in f:
            del f[name]
    sp = f.create_group("spikes")
    sp.attrs["description"] = (
        f"Spikes of the LIF twin in the SONATA layout, one group per population. Rate unit u of a population "
        f"is the pool of neurons u*K .. u*K+K-1 (K = {k}) counted from the population's first unit; trials run "
        f"back to back, trial j of /spiking/trials starting at /spiking/trials/start[j]."
    )
    pools = spikes.ids // k
    for pop in connectome.populations:
        sel = (pools >= pop.start) & (pools < pop.stop)
        g = sp.create_group(pop.name.replace("/", "_"))
        g.attrs.update({"sorting": "by_time", "population": pop.name, "n_neurons": pop.size * k})
        write_array(g, "timestamps", spikes.times[sel], units="s", dims="spike", description="Spike time.")
        write_array(
            g,
            "node_ids",
            (spikes.ids[sel] - pop.start * k).astype(np.int64),
            units="1",
            dims="spike",
            description="Neuron index within the population (pool unit * K + member).",
        )
    g = f.create_group("spiking")
    g.attrs.update(
        {
            "description": "The spiking twin on the evaluation conditions (rows of /task, then catch).",
            "k": k,
            "n_reach_conditions": n_reach,
            "trials_per_condition": n_trials,
            "offset_mV": float(params.offset_mv),
            "sim_dt_s": float(params.dt),
        }
    )
    write_array(
        g,
        "rates",
        result.rates[:n_reach].mean(axis=1),
        units="Hz",
        dims="condition,time,unit",
        description="Pool rates (20 ms exponential filter) averaged over trials, reach conditions of /task.",
    )
    write_array(
        g,
        "rates_trials",
        result.rates,
        units="Hz",
        dims="condition,trial,time,unit",
        description="Single-trial pool rates, all conditions (reach, then catch).",
    )
    write_array(
        g,
        "outputs",
        result.outputs,
        units="m",
        dims="condition,trial,time,output",
        description="Hand position decoded with the rate model's trained readout.",
    )
    trials = g.create_group("trials")
    duration = n_steps * batch.dt
    write_array(
        trials,
        "condition",
        np.repeat(np.arange(n_cond), n_trials),
        units="1",
        dims="trial",
        description="Condition of each simulated trial.",
    )
    write_array(
        trials,
        "start",
        np.arange(n_cond * n_trials) * duration,
        units="s",
        dims="trial",
        description="Start time of each trial in the spike times.",
    )
    write_table(
        g,
        "fidelity",
        [{k_: (v if isinstance(v, str) else float(v)) for k_, v in row.items()} for row in result.fidelity],
        "One row per population: how faithfully the twin follows its rate model.",
        {
            "population": "population",
            "psth_r_mean": "mean Pearson r of unit PSTHs, twin vs rate model",
            "rate_ratio": "twin mean rate / rate-model mean rate",
            "rate_hz": "twin mean rate (Hz)",
            "cv_isi": "median coefficient of variation of inter-spike intervals",
        },
    )
    m = g.create_group("params")
    m.attrs["description"] = "Rate -> spiking mapping (cortexsim.spiking.mapping.SpikingParams)."
    units = {
        "tau": "s",
        "x0": "mV",
        "syn_weight": "mV/Hz",
        "syn_increment_mv": "mV",
        "w_in": "mV",
        "b": "mV",
        "w_out": "m/Hz",
        "b_out": "m",
    }
    for key, value in params.to_arrays().items():
        value = np.asarray(value)
        if value.ndim == 0:
            m.attrs[key] = value.item()
            continue
        write_array(
            m,
            key,
            value,
            units=units.get(key, "1"),
            dims=",".join(f"axis{i}" for i in range(value.ndim)),
            description=f"SpikingParams.{key}",
        )


@reader("/spikes")
def read_spikes(f: h5py.File) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Spikes of the twin from the SONATA layout: population name -> (times in s, node ids)."""
    if "spikes" not in f:
        raise RunFileError(f"{f.filename}: has no /spikes; run `cortexsim spiking` first")
    return {
        attr_text(g.attrs.get("population", name)): (g["timestamps"][()], g["node_ids"][()])
        for name, g in f["spikes"].items()
    }


@dataclass(frozen=True)
class TwinTrials:
    """How the spiking twin's trials lie in its spike times (``/spiking`` and ``/spiking/trials``).

    Attributes
    ----------
    k : int
        LIF neurons per rate unit.
    n_reach : int
        Reach conditions (those of ``/task``); conditions ``n_reach ..`` are catch trials.
    trials_per_condition : int
    condition : ndarray of int, shape (trials,)
        Condition of each simulated trial (condition-major).
    start : ndarray of float, shape (trials,)
        Start time of each trial in the spike times (s).
    duration : float
        Length of one trial (s): time steps x ``/task@dt``.
    dt : float
        Time step of ``outputs`` (s, ``/task@dt``).
    outputs : ndarray, shape (conditions, trials_per_condition, time, outputs)
        Hand position decoded from the twin with the trained readout (m).
    sim_dt : float
        Step of the LIF simulation (s, ``/spiking@sim_dt_s``): the resolution of the spike times.
    """

    k: int
    n_reach: int
    trials_per_condition: int
    condition: np.ndarray
    start: np.ndarray
    duration: float
    dt: float
    outputs: np.ndarray
    sim_dt: float


@reader("/spiking")
def read_twin_trials(f: h5py.File) -> TwinTrials:
    """The twin's trial layout and decoded hand paths (:class:`TwinTrials`).

    Raises
    ------
    RunFileError
        The run has no spiking twin (no ``/spiking`` or ``/spikes``).
    """
    if "spiking" not in f or "spikes" not in f:
        raise RunFileError(
            f"{f.filename}: has no spiking twin (/spikes, /spiking); run `cortexsim spiking {f.filename}` first"
        )
    g = f["spiking"]
    outputs = g["outputs"][()]
    dt = float(f["task"].attrs["dt"])
    return TwinTrials(
        k=int(g.attrs["k"]),
        n_reach=int(g.attrs["n_reach_conditions"]),
        trials_per_condition=int(g.attrs["trials_per_condition"]),
        condition=g["trials/condition"][()].astype(np.int64),
        start=g["trials/start"][()].astype(float),
        duration=outputs.shape[2] * dt,
        dt=dt,
        outputs=outputs,
        sim_dt=float(g.attrs["sim_dt_s"]),
    )


@reader("/spiking")
def read_spiking_trials(f: h5py.File) -> np.ndarray | None:
    """Single-trial pool rates of the twin on the reach conditions, or None when the file has none.

    Returns
    -------
    ndarray, shape (conditions, trials, time, units), or None
        ``/spiking/rates_trials`` (Hz) restricted to the reach conditions of ``/task``.
    """
    if "spiking/rates_trials" not in f or "spiking/rates" not in f:
        return None
    return f["spiking/rates_trials"][: f["spiking/rates"].shape[0]]
