"""A run's spiking twin as an NWB file, the format recordings are shared in (DANDI).

:func:`export_nwb` reads a run file through :mod:`cortexsim.store` and writes one NWB 2 file
(pynwb, imported here and nowhere else besides the recorded-data loader) holding:

=====================================  =======================================================
``session_description`` and friends    a simulation, not a recording: cortexsim version, git
                                       commit, seed, the run file; ``notes``: the config TOML
``trials``                             one row per simulated trial (``/spiking/trials``):
                                       ``condition``, ``target_angle``, ``target_x/_y``,
                                       ``delay``, ``target_on_time``, ``go_cue_time``,
                                       ``move_onset_time``, ``move_end_time`` (session times, s;
                                       NaN on catch trials), ``catch``
``units``                              one row per LIF neuron: ``spike_times`` (session time =
                                       the ``/spikes`` timestamps), ``layer``, ``population``,
                                       ``cell_class``, ``subtype``, ``rate_unit`` [, ``heldout``]
``processing/behavior``                ``Position/hand_position`` (the twin's decoded hand, or
                                       the hand of the body it drove, m), ``hand_velocity``
                                       (m/s), ``target_hand_position`` (the task's desired path,
                                       m); on a body run also the body's series
                                       (:mod:`cortexsim.export_body`)
``intervals``                          on a body run with perturbations: ``curl_phases`` and
                                       ``bumps`` (:mod:`cortexsim.export_body`)
``processing/misc``                    ``rate_model_rates``: the rate circuit's rate of each unit during each
                                       trial (Hz; NaN on catch trials, which the rate stage does
                                       not evaluate) and ``rate_model_units``, its unit table
=====================================  =======================================================

Held-out neurons follow the Neural Latents Benchmark: a seeded share of *rate units* is
marked held out, all K neurons of a pool together (they share one rate).  The file is
written to a temporary name in the target folder and renamed into place when complete.
See ``docs/nwb.md``.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import export_body, export_stim, paths, store
from ._version import __version__
from .config import Config
from .errors import ConfigError, CortexsimError
from .spiking.twin import evaluation_conditions
from .streams import stream
from .tasks import Task, task_of

HELDOUT_STREAM = "heldout"
"""Name of the seed stream the held-out units are drawn from (as :func:`cortexsim.assembly.seeded_rng`)."""

SIMULATION_TEXT = (
    "SIMULATION, not a recording: the leaky integrate-and-fire (LIF) spiking twin of a trained six-layer "
    "motor-cortex rate network (cortexsim), performing a delayed center-out reach."
)


@dataclass(frozen=True)
class NwbExport:
    """What :func:`export_nwb` wrote.

    Attributes
    ----------
    path : Path
        The NWB file.
    n_neurons : int
        Rows of the Units table (LIF neurons).
    n_spikes : int
    n_trials : int
    n_heldout_units : int
        Rate units marked held out (0 without a fraction); ``k`` times as many neurons.
    seed : int
        Seed of the held-out draw (the run's seed unless given).
    seconds : float
        Wall time of the export (s).
    size_bytes : int
        Size of the written file.
    body : str
        The body the twin drove (``[effector] kind``; ``""`` without one).
    perturbations : tuple of str
        The twin's perturbation protocols written (``"curl"``, ``"bumps"``).
    """

    path: Path
    n_neurons: int
    n_spikes: int
    n_trials: int
    n_heldout_units: int
    seed: int
    seconds: float
    size_bytes: int
    body: str = ""
    perturbations: tuple[str, ...] = ()

    @property
    def body_text(self) -> str:
        """``, the arm26 body (perturbations: curl, bumps)`` for the command's line; empty without a body."""
        if not self.body:
            return ""
        more = f" (perturbations: {', '.join(self.perturbations)})" if self.perturbations else ""
        return f", the {self.body} body{more}"


def check_fraction(fraction: float | None, flag: str = "--heldout-fraction") -> None:
    """Refuse a held-out fraction outside (0, 1) (None: no held-out units)."""
    if fraction is None:
        return
    if not (isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction < 1):
        raise ConfigError(
            f"{flag} {fraction!r}: give the share of rate units to hold out, a number between 0 and 1 "
            "(exclusive), e.g. 0.25; leave the option out for no held-out units"
        )


def check_output(
    path: str | Path, flag: str = "--nwb", *, inputs: tuple[str | Path, ...] = (), force: bool = False
) -> Path:
    """Refuse an NWB output path that this export may not write.

    Refused: a folder, a name without ``.nwb``, a path too long, a folder that cannot be written,
    one of ``inputs`` (the run file), or an existing file that ``cortexsim export`` did not write
    (recognised by :data:`cortexsim.store.NWB_EXPORT_MARK`) -- a run file, another NWB file,
    anything else -- unless ``force``.

    Raises
    ------
    CortexsimError
        One line naming ``flag``, the path and the fix.
    """

    def recognise(existing: Path) -> str | None:
        kind = store.file_kind(existing)
        return None if kind == "nwb export" else store.FILE_KIND_TEXT[kind]

    def protected(existing: Path) -> str | None:  # a run file is never replaced, even with --force
        kind = store.file_kind(existing)
        return store.FILE_KIND_TEXT[kind] if kind == "run" else None

    return paths.output_file(
        path,
        flag,
        suffixes=(".nwb",),
        recognise=recognise,
        inputs=inputs,
        force=force,
        protected=protected,
        example="run",
    )


def heldout_units(n_units: int, fraction: float, seed: int) -> np.ndarray:
    """The rate units held out: ``round(fraction * n_units)`` of them (at least 1, at most ``n_units - 1``).

    Parameters
    ----------
    n_units : int
        Rate units of the circuit.
    fraction : float
        Share to hold out, in (0, 1).
    seed : int
        Seeds the draw (stream :data:`HELDOUT_STREAM`).

    Returns
    -------
    ndarray of bool, shape (n_units,)
        True for held-out rate units.
    """
    check_fraction(fraction)
    n = int(min(max(round(fraction * n_units), 1), n_units - 1))
    rng = stream(int(seed), HELDOUT_STREAM)
    mask = np.zeros(n_units, bool)
    mask[rng.choice(n_units, size=n, replace=False)] = True
    return mask


def _pynwb() -> Any:
    try:
        import pynwb
    except ImportError:
        raise CortexsimError(
            'writing NWB files needs the optional package pynwb; install it with pip install "cortexsim[nwb]"'
        ) from None
    return pynwb


@dataclass(frozen=True)
class _Run:
    """What the exporter reads from a run file."""

    config: Config
    config_text: str
    summary: store.RunSummary
    connectome: Any
    spikes: dict[str, tuple[np.ndarray, np.ndarray]]
    twin: store.TwinTrials
    rates: np.ndarray
    targets: np.ndarray
    body: export_body.BodyRecord | None = None
    perturbations: export_body.Perturbations | None = None
    stimulation: tuple[export_stim.StimProtocolRecord, ...] = ()


def _read(run_file: Path) -> _Run:
    with store.open_run(run_file) as f:
        twin = store.read_twin_trials(f)  # first: a run without the twin is refused before anything else
        rates = store.read_rates(f, "rate")
        if rates is None:
            raise CortexsimError(f"{run_file}: has no /rate/rates; run the rate stage first (cortexsim run)")
        config = store.read_config(f)
        return _Run(
            config=config,
            config_text=store.read_config_text(f),
            summary=store.read_run_summary(f),
            connectome=store.read_circuit(f),
            spikes=store.read_spikes(f),
            twin=twin,
            rates=rates,
            targets=store.read_task_targets(f),
            body=export_body.read_body(f, config),
            perturbations=export_body.read_perturbations(f, config),
            stimulation=export_stim.read_stimulation(f),
        )


def export_nwb(
    run_file: str | Path,
    out: str | Path,
    *,
    heldout_fraction: float | None = None,
    seed: int | None = None,
    force: bool = False,
) -> NwbExport:
    """Write the spiking twin of a run file as an NWB file (see the module docstring for its content).

    Parameters
    ----------
    run_file : str or Path
        A run file with a spiking twin (``/spikes``, ``/spiking``).
    out : str or Path
        The NWB file to write (``.nwb``); an existing NWB file that ``cortexsim export`` wrote is
        replaced once the new one is complete, any other existing file is refused (see
        :func:`check_output`) unless ``force``; the run file itself always is.
    heldout_fraction : float, optional
        Share of rate units (with all their K neurons) labelled held out in the Units column
        ``heldout``; None: no such column.
    seed : int, optional
        Seed of the held-out draw (default: the run's ``experiment.seed``).

    Returns
    -------
    NwbExport

    Raises
    ------
    RunFileError
        Missing, foreign or corrupt run file, or a run without the spiking twin.
    ConfigError
        A fraction outside (0, 1).
    CortexsimError
        An unusable output path, or pynwb is not installed.
    """
    t0 = time.perf_counter()
    check_fraction(heldout_fraction)
    run_file = Path(run_file)
    out = check_output(out, inputs=(run_file,), force=force)
    pynwb = _pynwb()
    run = _read(run_file)
    seed = run.summary.seed if seed is None else int(seed)
    heldout = None if heldout_fraction is None else heldout_units(run.connectome.n_units, heldout_fraction, seed)
    nwb = _build(pynwb, run, run_file, heldout, heldout_fraction, seed)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.nwb")  # pynwb warns unless .nwb
    try:
        with pynwb.NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwb)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CortexsimError(f"--nwb {out}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    n_spikes = sum(times.size for times, _ in run.spikes.values())
    p = run.perturbations if run.body is not None else None
    done = tuple(kind for kind in ("curl", "bumps") if p is not None and getattr(p, kind) is not None)
    return NwbExport(
        path=out,
        n_neurons=run.connectome.n_units * run.twin.k,
        n_spikes=int(n_spikes),
        n_trials=int(run.twin.condition.size),
        n_heldout_units=0 if heldout is None else int(heldout.sum()),
        seed=seed,
        seconds=time.perf_counter() - t0,
        size_bytes=out.stat().st_size,
        body=run.body.kind if run.body is not None else "",
        perturbations=done,
    )


def _session_start(created_utc: str) -> _dt.datetime:
    """The run file's creation time as an aware datetime (UTC when it carries no zone)."""
    try:
        when = _dt.datetime.fromisoformat(created_utc)
    except ValueError:
        when = _dt.datetime(1970, 1, 1)
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


def _build(
    pynwb: Any,
    run: _Run,
    run_file: Path,
    heldout: np.ndarray | None,
    fraction: float | None,
    seed: int,
) -> Any:
    """The in-memory NWBFile of a run."""
    from pynwb import H5DataIO
    from pynwb.behavior import Position, SpatialSeries

    s, twin, connectome = run.summary, run.twin, run.connectome
    task = task_of(run.config.task)
    batch = evaluation_conditions(task, catch=twin.condition.max() >= twin.n_reach)
    if batch.n_trials != twin.outputs.shape[0]:
        raise CortexsimError(
            f"{run_file}: /spiking holds {twin.outputs.shape[0]} conditions but the run's [task] gives "
            f"{batch.n_trials}; rerun the spiking stage (cortexsim spiking {run_file})"
        )
    heldout_text = (
        f"; held-out rate units: {fraction:g} of {connectome.n_units} drawn with seed {seed}"
        if heldout is not None
        else ""
    )
    identifier = uuid.uuid5(
        uuid.NAMESPACE_URL, f"cortexsim:{s.created_utc}:{s.seed}:{s.git_commit}:{run.config_text}:{fraction}:{seed}"
    )
    nwb = pynwb.NWBFile(
        session_description=SIMULATION_TEXT,
        identifier=str(identifier),
        session_start_time=_session_start(s.created_utc),
        experiment_description=(
            f"Simulated with cortexsim {s.cortexsim_version} (git {s.git_commit}), experiment "
            f"{run.config.experiment.name!r}, seed {s.seed}; exported by cortexsim {__version__} from the run file "
            f"{run_file.name}. K = {twin.k} LIF neurons per rate unit, {twin.trials_per_condition} trials per "
            f"condition{heldout_text}. The full configuration is in 'notes'."
        ),
        session_id=f"{run.config.experiment.name}-seed{s.seed}",
        notes=run.config_text,
        source_script=f"cortexsim {s.cortexsim_version} (git {s.git_commit}), cortexsim.export {__version__}",
        source_script_file_name=store.NWB_EXPORT_MARK,  # how check_output knows its own files
        keywords=["simulation", "cortexsim", "motor cortex", "spiking network", "center-out reach", "ground truth"],
        lab="cortexsim (simulation)",
        institution="none (simulated data)",
        subject=pynwb.file.Subject(
            subject_id=f"cortexsim-{run.config.experiment.name}-seed{s.seed}",
            description=f"Not an animal: a simulated {connectome.n_units}-unit six-layer motor-cortex circuit "
            f"(cortexsim) and its spiking twin of {connectome.n_units * twin.k} LIF neurons. Its anatomy follows "
            "the mouse M1 column (hence the species); it came into being when the run started (hence the date "
            "of birth).",
            species="Mus musculus",
            sex="U",
            date_of_birth=_session_start(s.created_utc),
        ),
    )
    columns = {
        **export_body.trial_columns(run.body, twin.condition.size),
        **export_stim.trial_columns(run.stimulation, twin.condition.size),
    }
    _add_trials(nwb, twin, batch, task, columns)
    _add_units(nwb, run, heldout, pynwb)
    steps = twin.outputs.shape[2]
    rate = 1.0 / twin.dt
    hand = twin.outputs.reshape(-1, steps, twin.outputs.shape[3])  # (trials, time, 2), trial order
    velocity = np.gradient(hand, twin.dt, axis=1)
    desired = batch.targets[twin.condition]
    behavior = nwb.create_processing_module(
        "behavior", "Hand of the simulated reach, continuous over the back-to-back trials (session time)."
    )
    frame = "origin at the centre (start) of the reach, x to the right, y up; metres"
    source = (
        "Hand position decoded from the spiking twin's pool rates with the trained readout."
        if run.body is None
        else f"Hand of the body ({run.body.plant.DESCRIPTION}) the spiking twin drove, relative to its start."
    )
    behavior.add(
        Position(
            spatial_series=SpatialSeries(
                name="hand_position",
                data=H5DataIO(hand.reshape(-1, hand.shape[2]), compression="gzip"),
                reference_frame=frame,
                unit="meters",
                starting_time=0.0,
                rate=rate,
                description=source,
            )
        )
    )
    behavior.add(
        pynwb.TimeSeries(
            name="hand_velocity",
            data=H5DataIO(velocity.reshape(-1, velocity.shape[2]), compression="gzip"),
            unit="m/s",
            starting_time=0.0,
            rate=rate,
            description="Time derivative of hand_position within each trial (central differences); x, y.",
        )
    )
    behavior.add(
        SpatialSeries(
            name="target_hand_position",
            data=H5DataIO(desired.reshape(-1, desired.shape[2]), compression="gzip"),
            reference_frame=frame,
            unit="meters",
            starting_time=0.0,
            rate=rate,
            description="The task's desired hand path (minimum-jerk reach; at the centre on catch trials).",
        )
    )
    after = float(twin.start[-1] + twin.duration)  # session time after the trials table's last trial
    if run.body is not None:
        export_body.add_body(nwb, pynwb, run.body, rate)
        after = export_body.add_perturbations(
            nwb,
            pynwb,
            run.body,
            run.perturbations,
            start=after,
            duration=twin.duration,
            dt=twin.dt,
            n_eval_trials=int(twin.condition.size),
            angles=np.asarray(batch.params["angle"], float),
        )
    export_stim.add_stimulation(nwb, pynwb, run.stimulation, start=after, duration=twin.duration, dt=twin.dt)
    _add_rate_model(nwb, run, heldout, pynwb)
    return nwb


def _add_trials(
    nwb: Any, twin: store.TwinTrials, batch: Any, task: Task, more: dict[str, tuple[str, list]] | None = None
) -> None:
    """The trials table: one row per simulated trial, event times in session time (s).

    A trial runs from its ``/spiking/trials/start`` for ``duration`` seconds; ``stop_time`` is put half a
    simulation step early, after the trial's last possible spike and before the next trial's first, so that
    back-to-back trials do not touch (pynapple merges touching intervals and drops their columns).  A maze
    run's trials also name their path (``maze_shape``) and its via points (``via1_x`` .. ``via2_y``); ``more``
    adds columns of given values, name -> (description, one value per trial) (a body run's perturbation).
    """
    columns = {
        "condition": "evaluation condition (0 .. n_conditions-1 reach; later indices: catch trials of condition 0)",
        "target_angle": "target direction (rad, 0 = rightward, counter-clockwise)",
        "target_x": "target position x (m, from the centre)",
        "target_y": "target position y (m, from the centre)",
        "delay": "delay from target onset to the go cue (s)",
        "target_on_time": "target onset (s, session time)",
        "go_cue_time": "go cue (s, session time; NaN on catch trials)",
        "move_onset_time": "onset of the desired movement, go + reaction time (s, session time; NaN on catch)",
        "move_end_time": "end of the desired movement (s, session time; NaN on catch trials)",
        "catch": "catch trial: a target but no go cue, the hand should stay at the centre",
    }
    p = batch.params
    extra_columns = task.trial_columns(batch)  # what the task records of each condition (the maze: path, via points)
    columns.update({name: text for name, (text, _) in extra_columns.items()})
    per_condition = {name: values for name, (_, values) in extra_columns.items()}
    columns.update({name: text for name, (text, _) in (more or {}).items()})
    per_trial = {name: values for name, (_, values) in (more or {}).items()}
    for name, text in columns.items():
        nwb.add_trial_column(name=name, description=text)
    for j, (start, c) in enumerate(zip(twin.start, twin.condition)):
        angle = float(p["angle"][c])
        extra = {name: v[c].item() for name, v in per_condition.items()}  # numpy str_ / float64 -> str / float
        nwb.add_trial(
            start_time=float(start),
            stop_time=float(start + twin.duration - twin.sim_dt / 2),
            condition=int(c),
            target_angle=angle,
            target_x=float(task.reach_distance * np.cos(angle)),
            target_y=float(task.reach_distance * np.sin(angle)),
            delay=float(p["delay"][c]),
            target_on_time=float(start + p["target_on"][c]),
            go_cue_time=float(start + p["go"][c]),
            move_onset_time=float(start + p["move_on"][c]),
            move_end_time=float(start + p["move_off"][c]),
            catch=bool(p["catch"][c]),
            **extra,
            **{name: values[j] for name, values in per_trial.items()},
        )


def _population_of_units(connectome: Any) -> list[Any]:
    """The population of every rate unit, in unit order."""
    pops: list[Any] = [None] * connectome.n_units
    for pop in connectome.populations:
        for u in range(pop.start, pop.stop):
            pops[u] = pop
    return pops


def _add_units(nwb: Any, run: _Run, heldout: np.ndarray | None, pynwb: Any) -> None:
    """The Units table: one row per LIF neuron, id = pool (rate unit) * K + member."""
    k, connectome = run.twin.k, run.connectome
    columns = {
        "layer": "cortical layer of the neuron's population",
        "population": "population (cell type) name, as in the run file's /circuit/populations",
        "cell_class": "E (excitatory) or I (inhibitory)",
        "subtype": "cell subtype (e.g. IT, PT, PV, SOM, VIP)",
        "rate_unit": "index of the rate-circuit unit this neuron's pool of K neurons stands for",
    }
    if heldout is not None:
        columns["heldout"] = "held out (Neural Latents Benchmark convention): all K neurons of a rate unit together"
    nwb.units = pynwb.misc.Units(
        name="units",
        description="LIF neurons of the spiking twin; spike times in session time (trials back to back).",
        resolution=run.twin.sim_dt,
    )
    for name, text in columns.items():
        nwb.add_unit_column(name=name, description=text)
    times_of: dict[int, np.ndarray] = {}
    for pop in connectome.populations:
        times, ids = run.spikes.get(pop.name, (np.zeros(0), np.zeros(0, np.int64)))
        neuron = ids.astype(np.int64) + pop.start * k
        order = np.argsort(neuron, kind="stable")  # stable: each neuron's spikes stay in time order
        neuron, times = neuron[order], times[order]
        bounds = np.searchsorted(neuron, np.arange(pop.start * k, pop.stop * k + 1))
        for i, n in enumerate(range(pop.start * k, pop.stop * k)):
            times_of[n] = times[bounds[i] : bounds[i + 1]]
    pops = _population_of_units(connectome)
    for n in range(connectome.n_units * k):
        pop = pops[n // k]
        extra = {} if heldout is None else {"heldout": bool(heldout[n // k])}
        nwb.add_unit(
            id=n,
            spike_times=times_of[n],
            layer=pop.spec.layer,
            population=pop.name,
            cell_class=pop.spec.cell_class,
            subtype=pop.spec.subtype,
            rate_unit=n // k,
            **extra,
        )


def _add_rate_model(nwb: Any, run: _Run, heldout: np.ndarray | None, pynwb: Any) -> None:
    """``processing/misc``: the rate circuit's rates laid over the trials, and its unit table."""
    from pynwb import H5DataIO
    from pynwb.core import DynamicTable, VectorData

    twin, connectome = run.twin, run.connectome
    n_cond, steps, n_units = run.rates.shape
    per_trial = np.full((twin.condition.size, steps, n_units), np.nan, dtype=np.float32)
    reach = twin.condition < n_cond
    per_trial[reach] = run.rates[twin.condition[reach]]
    module = nwb.create_processing_module(
        "misc", "The trained rate circuit the spiking twin was mapped from (noise-free, one rate per unit)."
    )
    module.add(
        pynwb.TimeSeries(
            name="rate_model_rates",
            data=H5DataIO(per_trial.reshape(-1, n_units), compression="gzip"),
            unit="Hz",
            starting_time=0.0,
            rate=1.0 / twin.dt,
            description="Rate of each rate-circuit unit (columns; see the table rate_model_units) during each trial of "
            "the trials table, on the trial's condition (the rate model is deterministic); NaN during catch trials, "
            "which the rate stage does not evaluate.",
        )
    )
    pops = _population_of_units(connectome)
    cols = [
        VectorData(name="population", description="population name", data=[p.name for p in pops]),
        VectorData(name="layer", description="cortical layer", data=[p.spec.layer for p in pops]),
        VectorData(name="cell_class", description="E or I", data=[p.spec.cell_class for p in pops]),
        VectorData(name="subtype", description="cell subtype", data=[p.spec.subtype for p in pops]),
    ]
    if heldout is not None:
        cols.append(VectorData(name="heldout", description="held out (NLB convention)", data=heldout.tolist()))
    module.add(
        DynamicTable(
            name="rate_model_units",
            description="One row per rate unit (row i = column i of rates; its neurons are units i*K .. i*K+K-1).",
            columns=cols,
            id=list(range(n_units)),
        )
    )
