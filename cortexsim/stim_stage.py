"""The ``stimulate`` stage: every ``[stimulation]`` protocol on every trained model, written once.

:func:`stimulation_run` is the science (a pure function of the config and the trained models:
:mod:`cortexsim.stim_measure` does the measuring); :func:`write_stimulation_run` writes
``/stimulation``, the ``stim_*`` metrics and the figures; :func:`run_stimulation` is both, as the
pipeline's stage runs them.  The circuit is the run's (lesioned as ``[lesion]`` says); the ANNs are
the no-cell-type control; the spiking twin runs each protocol with common random numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import plots, store
from . import stimulation as st
from .assembly import build_circuit, make_ann_model, make_task, trained_rate_network
from .config import Config
from .model_id import ModelId
from .plots import stimulation as stim_plots
from .preflight import check_stimulation
from .spiking.mapping import map_rate_to_spiking
from .spiking.twin import run_batch
from .stim_config import StimProtocol
from .stim_measure import StimResult, agreement, ann_drive_scale, measure, stimulate_model, stimulate_twin

LOG = logging.getLogger("cortexsim.pipeline")
Log = Callable[[str], None]


@dataclass(frozen=True)
class StimulationRun:
    """Every protocol measured on every model, before anything is written.

    Attributes
    ----------
    results : list of StimResult
        One per (protocol, model).
    metrics : dict of str to float
        Every ``stim_*`` metric (the results' and the twin-vs-circuit agreement).
    scales : dict of str to float
        Each ANN's drive per mV of the circuit's (:func:`cortexsim.stim_measure.ann_drive_scale`).
    """

    results: list[StimResult]
    metrics: dict[str, float]
    scales: dict[str, float]


def check_protocols(config: Config, net) -> None:
    """Refuse protocols whose target ``net`` lacks, whose window is outside the trial or whose amplitude is too large.

    The preflight checks (:func:`cortexsim.preflight.check_stimulation`) plus the targets against ``net``'s
    own cell types; runs before anything is computed.
    """
    for protocol in config.stimulation.protocols:
        st.target_units(protocol, net.cell_types(), net.n_units)
    check_stimulation(config, net.transfer)


def stimulation_run(
    config: Config, net, anns: dict[str, object], log: Log | None = None, failed: tuple[str, ...] = ()
) -> StimulationRun:
    """Run every protocol of ``config.stimulation`` on the circuit ``net``, its twin and the ANNs ``anns``.

    Parameters
    ----------
    config : Config
    net : RateNetwork
        The trained circuit (an :class:`~cortexsim.closed_loop.ArmRateNetwork` on a body).
    anns : dict
        Stage name (``ann:gru``) -> trained ANN model (on the same body).
    log : callable, optional
    failed : tuple of str
        Prefixes of models that failed their task (marked in the progress lines).
    """
    log = log or LOG.info
    sc, seed = config.stimulation, config.experiment.seed
    check_protocols(config, net)
    batch = make_task(config).evaluation_set()
    bar, twin_bar = config.quality.endpoint_error_cm, config.quality.spiking_endpoint_error_cm
    base_rate = net.simulate(batch)
    bases = {stage: model.simulate(batch) for stage, model in anns.items()}
    scales = {stage: ann_drive_scale(base_rate.state, bases[stage].state) for stage in anns}
    twin = _twin(config, net) if config.spiking.enabled and sc.spiking_trials > 0 else None
    twin_base = None
    results: list[StimResult] = []
    values: dict[str, float] = {}
    for protocol in sc.protocols:
        t0 = time.perf_counter()
        share = float(st.expression(net, protocol, seed).mean())
        rate = stimulate(net, protocol, config, base=base_rate)
        done = [rate]
        if sc.ann:
            for stage, model in anns.items():
                prefix = ModelId.parse(stage).prefix
                done.append(
                    stimulate(model, protocol, config, name=prefix, share=share, scale=scales[stage], base=bases[stage])
                )
        if twin is not None:
            params, run = twin
            response, twin_base = stimulate_twin(
                net, params, protocol, batch, trials=sc.spiking_trials, seed=seed, run=run, base=twin_base
            )
            spiking = measure(
                protocol, "spiking", response, batch, net.readout_matrix(), net.populations(), twin_bar or bar
            )
            done.append(spiking)
            values.update(agreement(rate, spiking))
        for result in done:
            values.update(result.metrics)
        results += done
        log(_line(protocol, done, time.perf_counter() - t0, failed))
    return StimulationRun(results, values, scales)


def stimulate(
    model,
    protocol: StimProtocol,
    config: Config,
    *,
    name: str = "rate",
    share: float | None = None,
    scale: float = 1.0,
    base=None,
) -> StimResult:
    """One protocol on one trained model, measured as the ``stimulate`` stage measures it (``cs.stimulate``).

    The held-out conditions of ``config``'s task are run lit and unlit, noise-free, plus
    ``[stimulation] trials_per_condition`` noisy interleaved trials per condition; the success bar is
    ``[quality] endpoint_error_cm``.

    Parameters
    ----------
    model : Model
        A trained rate circuit or ANN, with or without its body (the spiking twin: the stage).
    protocol : StimProtocol
        E.g. ``StimProtocol(name="pv_delay", target=("PV",), amplitude=10.0, event="target_on", start=0.1,
        stop=0.4)``.
    config : Config
        The run's config (task, seed, quality bars, ``[stimulation] trials_per_condition``).
    name : str
        The model's key in the metric names (``rate``, ``ann_gru``, ...).
    share : float, optional
        For a model without cell types (an ANN): the share of its units that express. Default: the
        share the protocol lights in ``config``'s circuit.
    scale : float
        The model's drive per mV of the protocol (1 for the circuit;
        :func:`cortexsim.stim_measure.ann_drive_scale` for an ANN matched to a circuit).
    base : Trajectory, optional
        The model's unstimulated trajectory of the evaluation set, if already simulated.

    Returns
    -------
    StimResult
        Its ``metrics`` (``stim_<protocol>_<name>_*``), the hand and activity lit and unlit, per-population
        responses.
    """
    seed = config.experiment.seed
    if model.cell_types():
        units = st.expression(model, protocol, seed)
    else:
        if share is None:
            share = float(st.expression(_circuit_cells(config), protocol, seed).mean())
        units = st.matched_expression(model.n_units, share, protocol, seed)
    batch = make_task(config).evaluation_set()
    response = stimulate_model(
        model,
        protocol,
        batch,
        seed=seed,
        trials_per_condition=config.stimulation.trials_per_condition,
        units=units,
        scale=scale,
        base=base,
    )
    bar = config.quality.endpoint_error_cm
    return measure(protocol, name, response, batch, model.readout_matrix(), model.populations(), bar)


@dataclass(frozen=True)
class _CircuitCells:
    """The populations of ``config``'s circuit, as :func:`cortexsim.stimulation.expression` reads a model's."""

    cells: list

    def cell_types(self) -> list:
        return self.cells

    def populations(self) -> list:
        return [(name, where) for name, _, _, where in self.cells]


def _circuit_cells(config: Config) -> _CircuitCells:
    """The cell types of ``config``'s circuit (sampled as the run samples it)."""
    connectome = build_circuit(config)
    return _CircuitCells([(p.name, p.spec.layer, p.spec.subtype, p.slice) for p in connectome.populations])


def _twin(config: Config, net):
    """The twin's parameters (intact mapping of the run's circuit) and a runner of one lit or dark batch."""
    sc = config.spiking
    params = map_rate_to_spiking(net, config.lif, k=sc.k, dt=sc.dt, seed=config.experiment.seed)
    target = None if sc.target == "auto" else sc.target  # run_batch picks the target a body's loop can host
    batch = make_task(config).evaluation_set()

    def run(stimulus):
        return run_batch(
            net,
            params,
            batch,
            config.stimulation.spiking_trials,
            seed=config.experiment.seed,
            target=target,
            readout_tau=sc.readout_tau,
            stimulus=stimulus,
        )

    return params, run


def _line(protocol: StimProtocol, done: list[StimResult], seconds: float, failed: tuple[str, ...] = ()) -> str:
    """One progress line: each model's peak hand deviation and potent share (a model that failed its task marked)."""
    parts = ", ".join(
        f"{r.model}{' (FAILED its task)' if r.model in failed else ''} {r.metric('peak_deviation_cm'):.2f} cm "
        f"({100 * r.metric('potent_share'):.0f} % potent)"
        for r in done
    )
    return f"[stimulate] {protocol.name} ({protocol.label()}): {parts} ({seconds:.1f} s)"


def write_stimulation_run(
    config: Config, run: StimulationRun, run_file: Path, figures: Path, metrics_text: str, failed: tuple[str, ...] = ()
) -> list[str]:
    """Write ``/stimulation``, the ``stim_*`` metrics and ``stim_paths.png``, ``stim_neural.png``, ``stim_map.png``."""
    protocols = {p.name: p for p in config.stimulation.protocols}
    with store.open_for_update(run_file) as f:
        for result in run.results:
            protocol = protocols[result.protocol]
            fields = {**asdict(protocol), "label": protocol.label()}
            stage = ModelId.of_prefix(result.model)
            scale = run.scales.get(stage.stage, 1.0) if stage is not None else 1.0
            store.write_stimulation(
                f,
                fields,
                result.model,
                _arrays(result),
                {"populations": result.populations, "trials": result.response.noisy},
                {"drive_per_mv": scale, "activity_units": _units(result.model)},
            )
        store.write_metrics(f, run.metrics, metrics_text)
    with store.open_run(run_file) as f:
        held = store.read_stimulation(f)
    time_axis = make_task(config).evaluation_set().time
    plots.save(stim_plots.plot_stim_paths(held, time_axis, failed), figures / "stim_paths.png")
    plots.save(stim_plots.plot_stim_neural(held, time_axis, failed), figures / "stim_neural.png")
    plots.save(stim_plots.plot_stim_map(held), figures / "stim_map.png")
    return list(run.metrics)


def _units(model: str) -> str:
    """The activity's units: Hz for the circuit and its twin, dimensionless for an ANN's ``h``."""
    return "Hz" if model in ("rate", "spiking") else "1"


def _arrays(result: StimResult) -> dict[str, tuple[np.ndarray, str, str, str]]:
    """The arrays of ``/stimulation/<protocol>/<model>``: (data, units, dims, description)."""
    r, units = result.response, _units(result.model)
    return {
        "hand": (r.hand, "m", "condition,time,xy", "The hand with the light, noise-free (the twin: trial mean)."),
        "hand_unstimulated": (r.hand_base, "m", "condition,time,xy", "The hand without the light, the same trials."),
        "hand_deviation": (
            result.hand_deviation,
            "m",
            "condition,time",
            "Distance of the lit hand from the unlit one.",
        ),
        "light": (r.light, "1", "time,condition", "The light on each condition's trial, in [0, 1]."),
        "expression": (r.expression, "1", "unit", "Share of each unit (the twin: of each pool's neurons) expressing."),
        "neural_deviation": (
            result.neural_deviation,
            units,
            "time",
            "Norm over units of the activity's change, mean over conditions.",
        ),
        "neural_potent": (
            result.neural_potent,
            units,
            "time",
            "Norm of the change's part in the readout's output-potent space, mean over conditions.",
        ),
    }


def run_stimulation(
    config: Config, run_file: Path, figures: Path, metrics_text: str, log: Log | None = None, failed=()
) -> list[str]:
    """The ``stimulate`` stage: read the trained models, run every protocol, write; returns the metric names."""
    log = log or LOG.info
    with store.open_run(run_file) as f:
        trained = store.read_trained_rate(f)
        records = {ModelId.ann(arch).stage: store.read_ann(f, arch) for arch in config.ann.archs}
    net = trained_rate_network(config, trained)
    anns = {}
    for stage, record in records.items():
        model = make_ann_model(config, ModelId.parse(stage).arch)
        model.set_params(record.params)
        anns[stage] = model
    twin = ", its spiking twin" if config.spiking.enabled and config.stimulation.spiking_trials else ""
    ann = f" and {len(anns)} ANNs (matched random units)" if anns and config.stimulation.ann else ""
    log(f"stimulate: {len(config.stimulation.protocols)} protocol(s) on the circuit{twin}{ann}")
    run = stimulation_run(config, net, anns, log, tuple(failed))
    return write_stimulation_run(config, run, run_file, figures, metrics_text, failed)


__all__ = [
    "StimulationRun",
    "check_protocols",
    "run_stimulation",
    "stimulate",
    "stimulation_run",
    "write_stimulation_run",
]
