"""Dynamics, not only geometry (issue 15): ceilings, communication subspaces and fixed points.

What the models add to the battery's rows: the ceiling of every score (a model with itself measured
twice, :class:`Replicate`), communication subspaces between the circuit's layers and populations
(:func:`communication_rows`), and the fixed and slow points of each model's own map
(:class:`ModelProbe`, :func:`start_fixed_points`); :func:`model_dynamics` computes them and
:func:`with_battery` completes them from the battery (tangling, decoding).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import threadpool_limits

from .. import analysis, streams
from ..model_id import is_whole_model
from ..store import Activity, Row
from ..workers import available_cores
from .measures import plain_row, reduce_to_pcs, score_functions, tangling_rows
from .rows import BatteryResult, short_name

COMMUNICATION_PAIRS = (
    ("L4", "L2/3"),
    ("L2/3", "L5A"),
    ("L2/3", "L5B"),
    ("L5A", "L5B"),
    ("L5B", "L6"),
    ("L6", "L4"),
    ("IT2/3", "PT5B"),
    ("IT5A", "PT5B"),
    ("IT5B", "PT5B"),
    ("PT5B", "IT2/3"),
)
"""(source, target) layers or populations of the rate circuit whose communication subspace is measured."""

PROBE_TARGETS = 2
"""Fixed points are sought under zero input and the delay input of ``PROBE_TARGETS`` conditions, evenly
spaced through the evaluation set (of the 8 center-out targets: 0 and 4, opposite ones; of the 27 maze
conditions: 0 and 13), so the stage's cost does not grow with the number of conditions."""

FIXED_POINT_MAX_ITER = 50
"""Levenberg-Marquardt iterations per start: on the default run 50 find the same points as 200 at a quarter
of the time (GRU, LSTM); starts that need more end on slow points and are not kept."""


@dataclass(frozen=True)
class ModelProbe:
    """What the battery needs of a simulated model besides its activity (built by :func:`probe_model`).

    Attributes
    ----------
    name : str
        Activity name (``"rate"``, ``"ann:gru"``, ...).
    inputs : tuple of (str, ndarray)
        Constant inputs whose fixed points are sought: label and input vector (inputs,).
    maps : tuple of (step, jacobian)
        The model's own noise-free map under each input (``model.step_map(u)``).
    states : ndarray, shape (conditions, time, d)
        Evaluation-set states (rate circuit: x in mV; ANNs: h, or [h, c] for the LSTM); starts are drawn here.
    dt : float
        Time step (s), for the time constants of the slowest modes.
    groups : mapping
        State index groups (population name -> indices) for the loadings of the slowest modes.
    """

    name: str
    inputs: tuple[tuple[str, np.ndarray], ...]
    maps: tuple[tuple[Callable, object], ...]
    states: np.ndarray
    dt: float
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Replicate:
    """Two measurements of one system, for the ceiling of every score.

    Attributes
    ----------
    a, b : ndarray, shape (conditions, time, units)
        Two noise seeds (rate circuit, ANNs) or two halves of the trials (spiking twin, data).
    source : str
        ``"noise seeds"``, ``"trial halves"`` or ``"noise-free"`` (a deterministic model: the ceiling is 1 by
        construction).
    """

    a: np.ndarray
    b: np.ndarray
    source: str


@dataclass(frozen=True)
class DynamicsResult:
    """The dynamics part of the battery (:func:`run_dynamics`).

    Attributes
    ----------
    calibration : tuple of dict
        One row per activity with a replicate: ``activity``, ``source``, ``ceiling_<score>`` for every
        similarity column, and ``decode_position_r2`` where known.
    tangling : tuple of dict
        One row per activity: ``activity``, ``tangling_median``, ``tangling_q90`` (1/s^2, in its top 8 PCs).
    communication : tuple of dict
        One row per (source, target): ``source``, ``target``, ``samples`` (``"single-trial residuals"`` or
        ``"condition averages"``), ``dimensions``, ``performance`` (full rank, held-out trials or
        conditions), ``target_participation_ratio`` (of the condition averages).
    fixed_points : tuple of dict
        One row per (model, input): ``model``, ``input``, ``n_points``, ``n_stable``, ``n_saddle``,
        ``n_marginal``, ``n_unstable``, ``max_abs_eig`` (of the lowest-q point), ``slowest_tau_ms``,
        ``top_population`` (largest loading of the slowest modes; rate circuit only), ``n_starts``.
    fixed_point_results : mapping
        ``(model, input)`` -> :class:`cortexsim.analysis.FixedPoints`.
    probes : mapping
        Model name -> :class:`ModelProbe` (states for the portraits).
    """

    calibration: tuple[Row, ...] = ()
    tangling: tuple[Row, ...] = ()
    communication: tuple[Row, ...] = ()
    fixed_points: tuple[Row, ...] = ()
    fixed_point_results: Mapping[tuple[str, str], analysis.FixedPoints] = field(default_factory=dict)
    probes: Mapping[str, ModelProbe] = field(default_factory=dict)

    def tables(self) -> dict[str, tuple[Row, ...]]:
        """The tables by their ``/analysis`` name."""
        return {
            "calibration": self.calibration,
            "tangling": self.tangling,
            "communication": self.communication,
            "fixed_points": self.fixed_points,
        }


@dataclass(frozen=True)
class SingleTrials:
    """Noisy single trials of the rate circuit, for communication subspaces on residuals.

    Attributes
    ----------
    rates : ndarray, shape (trials, time, units)
        Rates (Hz) of every unit on each trial (the run's process noise).
    conditions : ndarray of int, shape (trials,)
        The condition (evaluation-set target) of each trial.
    groups : mapping
        Layer or population name -> unit indices into ``rates``.
    """

    rates: np.ndarray
    conditions: np.ndarray
    groups: Mapping[str, np.ndarray]


def communication_rows(
    activities: Mapping[str, Activity], rng: np.random.Generator, trials: SingleTrials | None = None
) -> list[Row]:
    """Communication subspaces (Semedo et al. 2019) for :data:`COMMUNICATION_PAIRS` of the rate circuit.

    With ``trials``: on the single-trial residuals around each condition's mean (Semedo et al.'s
    analysis, ``samples = "single-trial residuals"``), so that what the task drives in both layers
    is not counted as communication. Without: on the condition averages (``samples = "condition
    averages"``), which counts the dimensions of the shared signal and is inflated on smooth,
    noise-free averages (see :mod:`cortexsim.analysis.subspaces`). A pair is left out when either
    side is missing or constant (a silenced population).
    """
    rows: list[Row] = []
    for src, dst in COMMUNICATION_PAIRS:
        a, b = activities.get(f"rate:{src}"), activities.get(f"rate:{dst}")
        if a is None or b is None:
            continue
        fold_rng = streams.child(rng)
        use_trials = trials is not None and src in trials.groups and dst in trials.groups
        try:
            if use_trials:
                res = analysis.communication_subspace(
                    trials.rates[:, :, trials.groups[src]],
                    trials.rates[:, :, trials.groups[dst]],
                    conditions=trials.conditions,
                    rng=fold_rng,
                )
            else:
                res = analysis.communication_subspace(a.rates, b.rates, rng=fold_rng)
        except ValueError:  # e.g. a condition with a single trial
            continue
        if res.undefined:  # e.g. a side without fluctuations
            continue
        rows.append(
            {
                "source": src,
                "target": dst,
                "samples": "single-trial residuals" if use_trials else "condition averages",
                "dimensions": float(res.dimensions),
                "performance": float(res.full_performance),
                "target_participation_ratio": float(analysis.participation_ratio(b.rates)),
            }
        )
    return rows


def calibration_row(name: str, rep: Replicate, n_pcs: int) -> Row:
    """The ceiling of every score: the score of a system with itself measured twice (:class:`Replicate`)."""
    a, b = reduce_to_pcs(rep.a, n_pcs), reduce_to_pcs(rep.b, n_pcs)
    row: Row = {"activity": name, "source": rep.source}
    for key, fn in score_functions(min(a.shape[2], b.shape[2])).items():
        try:
            row[f"ceiling_{key}"] = float(analysis.ceiling(fn, a, b))
        except ValueError:
            row[f"ceiling_{key}"] = float("nan")
    return row


def fixed_point_rows(
    probe: ModelProbe, n_starts: int, rng: np.random.Generator, threads: int = 1
) -> tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]]:
    """Fixed and slow points of a model under each of its probe inputs (Sussillo & Barak 2013).

    ``n_starts`` states drawn from the evaluation trajectories, jittered by 5 % of the states' SD, each
    descended for at most :data:`FIXED_POINT_MAX_ITER` iterations.  Each input draws its starts from its
    own generator, seeded from ``rng`` in input order, so the result is the same for any ``threads``.
    """
    return start_fixed_points({probe.name: probe}, n_starts, rng, threads).result()


def _search(task: tuple[ModelProbe, int, int], n_starts: int) -> tuple[Row, analysis.FixedPoints]:
    """One ``(probe, input index, seed)`` search and its table row."""
    probe, index, seed = task
    (label, _), (step, jac) = probe.inputs[index], probe.maps[index]
    jitter = 0.05 * float(np.std(probe.states))
    starts = analysis.sample_starts(probe.states, n_starts, streams.generator(seed), noise_std=jitter)
    fp = analysis.find_fixed_points(step, starts, max_iter=FIXED_POINT_MAX_ITER, jacobian=jac)
    row: Row = {
        "model": probe.name,
        "input": label,
        "n_points": float(fp.n_points),
        **{f"n_{kind}": float(fp.kinds.count(kind)) for kind in ("stable", "saddle", "marginal", "unstable")},
        "max_abs_eig": float("nan"),
        "slowest_tau_ms": float("nan"),
        "top_population": "",
        "n_starts": float(n_starts),
    }
    if fp.n_points:
        lam = float(np.abs(fp.eigenvalues[0, 0]))
        row["max_abs_eig"] = lam
        row["slowest_tau_ms"] = float(-1e3 * probe.dt / np.log(lam)) if 0 < lam < 1 else float("inf")
        if probe.groups:
            shares = analysis.mode_loadings(fp.modes[0], probe.groups)
            row["top_population"] = max(shares, key=shares.get)
    return row, fp


Search = tuple[Row, analysis.FixedPoints]
"""One search's table row and its points (:func:`_search`)."""


class FixedPointJob:
    """Fixed-point searches running on daemon threads (see :func:`start_fixed_points`).

    Daemon threads rather than ``concurrent.futures``, whose workers the interpreter waits for at
    exit, so a Ctrl-C that ends the program is not held up by searches still running.  The searches
    spend most of their time in BLAS and in the plant's compiled kernels, which release the GIL.
    ``done`` holds, per task, a search made elsewhere (None: search it here).
    """

    def __init__(
        self, tasks: list[tuple[ModelProbe, int, int]], n_starts: int, threads: int, done: list[Search | None]
    ) -> None:
        self._tasks = tasks
        self._done = list(done)
        self._errors: list[BaseException] = []
        todo, lock = iter([i for i, held in enumerate(done) if held is None]), threading.Lock()

        def work() -> None:
            while not self._errors:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    self._done[i] = _search(tasks[i], n_starts)
                except BaseException as exc:  # noqa: BLE001 - raised again in result()
                    self._errors.append(exc)

        n = max(1, min(threads, sum(held is None for held in done)))
        self._threads = [threading.Thread(target=work, daemon=True, name=f"fixed-points-{k}") for k in range(n)]
        for t in self._threads:
            t.start()

    def searches(self) -> list[Search]:
        """Every search (in model and input order); waits, raises a search's exception."""
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]
        return list(self._done)

    def result(self) -> tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]]:
        """Rows (in model and input order) and results of every search; waits, raises a search's exception."""
        done = self.searches()
        rows = [row for row, _ in done]
        found = {(task[0].name, row["input"]): fp for task, (row, fp) in zip(self._tasks, done, strict=True)}
        return rows, found


def start_fixed_points(
    probes: Mapping[str, ModelProbe],
    n_starts: int,
    rng: np.random.Generator | Mapping[str, np.random.Generator],
    threads: int | None = None,
    done: Mapping[str, tuple[Search, ...]] | None = None,
) -> FixedPointJob:
    """Start the fixed-point searches of every probe (model) and input in the background.

    They need only the models, so the comparison pipeline starts them before the battery and
    collects them after it (:func:`run_dynamics`'s ``fixed_points``): on two cores the searches
    and the battery share the machine.  Seeds are drawn from ``rng`` now, in model and input
    order, so the points do not depend on the thread count or on what runs alongside.  Run the
    searches under one BLAS thread (``threadpool_limits``, set by the caller for as long as they
    run: the limit is process-wide), or threads times BLAS threads oversubscribe the cores.

    Parameters
    ----------
    probes : mapping of str to ModelProbe
    n_starts : int
        Starts per model and input.
    rng : numpy.random.Generator, or mapping of str to numpy.random.Generator
        One generator draws every model's seeds in model order; a mapping gives each model its own
        (by probe name), so that one model's searches give the same points wherever they are made --
        in the worker process that trained it, say (``done``).
    threads : int, optional
        Default: the cores available, at most 4.
    done : mapping of str to tuple of (Row, FixedPoints), optional
        Models whose searches were made elsewhere, one per probe input in order, with the same
        ``n_starts`` and their own ``rng``: they are taken as they are, not searched again.
    """
    done = dict(done or {})
    tasks: list[tuple[ModelProbe, int, int]] = []
    held: list[Search | None] = []
    for probe in probes.values():
        source = rng[probe.name] if isinstance(rng, Mapping) else rng
        seeds = source.integers(2**63 - 1, size=len(probe.inputs))
        tasks += [(probe, i, int(seed)) for i, seed in enumerate(seeds)]
        searches = done.pop(probe.name, None)
        if searches is not None and len(searches) != len(probe.inputs):
            raise ValueError(
                f"{probe.name}: {len(searches)} searches were made elsewhere for {len(probe.inputs)} probe inputs"
            )
        held += list(searches) if searches is not None else [None] * len(probe.inputs)
    if done:
        raise ValueError(f"searches were made for models without a probe: {', '.join(done)}")
    return FixedPointJob(tasks, n_starts, min(4, available_cores()) if threads is None else threads, held)


def probe_inputs(evaluation, n_targets: int = PROBE_TARGETS) -> tuple[tuple[str, np.ndarray], ...]:
    """Zero input and the delay-period input (the step before the go cue) of ``n_targets`` evenly spaced trials."""
    inputs = [("zero", np.zeros(evaluation.inputs.shape[2]))]
    go = evaluation.params["go"]
    n = evaluation.n_trials
    for i in sorted({k * n // n_targets for k in range(min(n_targets, n))}):
        t = int(round(float(go[i]) / evaluation.dt)) - 1
        inputs.append((f"target{i}", np.asarray(evaluation.inputs[i, t], float)))
    return tuple(inputs)


def probe_model(name: str, model, evaluation, groups: Mapping[str, np.ndarray] | None = None) -> ModelProbe:
    """A :class:`ModelProbe` of any model (:class:`cortexsim.model.Model`) on a TrialBatch.

    The model gives its own noise-free map under each probe input (``step_map``), its evaluation
    states in that map's coordinates (``map_states``) and the parts of that state
    (``map_layout``: for a model on the arm, the arm and the delayed sensors besides the model's
    own part, which ``groups`` -- population name -> indices -- subdivides).
    """
    inputs = probe_inputs(evaluation)
    maps = tuple(model.step_map(u) for _, u in inputs)
    states = model.map_states(model.simulate(evaluation))
    parts = {part: np.arange(d.start, d.stop) for part, d in model.map_layout().items()}
    if len(parts) > 1:  # the model's own part is named by ``groups``; the others by the map
        own = next(iter(parts))
        groups = {**(groups or {}), **{p: idx for p, idx in parts.items() if p != own}}
    return ModelProbe(name, inputs, maps, np.asarray(states, float), float(evaluation.dt), dict(groups or {}))


def run_dynamics(
    result: BatteryResult,
    *,
    rng: np.random.Generator,
    n_pcs: int = 10,
    replicates: Mapping[str, Replicate] | None = None,
    probes: Mapping[str, ModelProbe] | None = None,
    fixed_point_starts: int = 200,
    trials: SingleTrials | None = None,
    fixed_point_threads: int | None = None,
    fixed_points: tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]] | None = None,
) -> DynamicsResult:
    """Tangling and communication subspaces of the compared activities, ceilings and fixed points.

    :func:`model_dynamics` completed by :func:`with_battery`.

    Parameters
    ----------
    result : BatteryResult
        From :func:`run_battery` (its activities are used).
    rng : numpy.random.Generator
        For the folds and the fixed-point starts.
    n_pcs : int
        PCs for the ceilings (as in :func:`run_battery`).
    replicates : mapping, optional
        Activity name -> :class:`Replicate`.
    probes : mapping, optional
        Model name -> :class:`ModelProbe`.
    fixed_point_starts : int
        Starts per model and input.
    trials : SingleTrials, optional
        Noisy single trials of the rate circuit: communication subspaces on their residuals
        (:func:`communication_rows`; without, on the condition averages).
    fixed_point_threads : int, optional
        Threads the fixed-point searches (one per model and input) share; default: the cores
        available, at most 4.  The points do not depend on it.
    fixed_points : tuple, optional
        Searches already done (:meth:`FixedPointJob.result` of :func:`start_fixed_points`); then
        ``probes`` only supply the figures and nothing is searched here.
    """
    dynamics = model_dynamics(
        result.activities,
        rng=rng,
        n_pcs=n_pcs,
        replicates=replicates,
        probes=probes,
        fixed_point_starts=fixed_point_starts,
        trials=trials,
        fixed_point_threads=fixed_point_threads,
        fixed_points=fixed_points,
    )
    return with_battery(dynamics, result)


def model_dynamics(
    activities: Mapping[str, Activity],
    *,
    rng: np.random.Generator,
    n_pcs: int = 10,
    replicates: Mapping[str, Replicate] | None = None,
    probes: Mapping[str, ModelProbe] | None = None,
    fixed_point_starts: int = 200,
    trials: SingleTrials | None = None,
    fixed_point_threads: int | None = None,
    fixed_points: tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]] | None = None,
) -> DynamicsResult:
    """The dynamics of a run's models: communication subspaces, ceilings and fixed points.

    What depends on the models and the run's own activities only (never on recorded data); the
    ceilings come without ``decode_position_r2`` and there is no tangling: :func:`with_battery`
    adds both from the battery.  Parameters as :func:`run_dynamics`; ``activities`` by name
    (those of the rate circuit's layers and populations give the communication subspaces).
    """
    communication = communication_rows(activities, rng, trials)
    calibration = [plain_row(calibration_row(name, rep, n_pcs)) for name, rep in (replicates or {}).items()]
    if fixed_points is None:  # seeds drawn in model and input order: any thread count, same points
        with threadpool_limits(limits=1, user_api="blas"):
            fixed_points = start_fixed_points(probes or {}, fixed_point_starts, rng, fixed_point_threads).result()
    fp_rows, fp_found = fixed_points
    return DynamicsResult(
        calibration=tuple(calibration),
        communication=tuple(plain_row(r) for r in communication),
        fixed_points=tuple(plain_row(r) for r in fp_rows),
        fixed_point_results=fp_found,
        probes=dict(probes or {}),
    )


def with_battery(dynamics: DynamicsResult, result: BatteryResult) -> DynamicsResult:
    """``dynamics`` (:func:`model_dynamics`) completed from the battery's result.

    The tangling rows of every compared activity (:attr:`BatteryResult.tangling`, computed here when
    empty) and each ceiling's ``decode_position_r2`` (its model's jPCA row; NaN without one).
    """
    decode = {r["activity"]: r.get("decode_position_r2", float("nan")) for r in result.jpca}
    calibration = tuple(
        {**r, "decode_position_r2": float(decode.get(r["activity"], float("nan")))} for r in dynamics.calibration
    )
    tangling = result.tangling or tangling_rows(result.activities.values())
    return replace(dynamics, calibration=calibration, tangling=tuple(tangling))


def dynamics_metrics(dynamics: DynamicsResult) -> dict[str, float]:
    """Scalar summaries of :class:`DynamicsResult` for ``/metrics``, named ``compare_*``.

    ``compare_tangling_q90_<model>``, ``compare_ceiling_cca_<model>``, ``compare_fixed_points_<model>``
    (distinct points summed over the probe inputs) and ``compare_comm_dims_<source>_<target>``.
    """
    out: dict[str, float] = {}
    for r in dynamics.tangling:
        if ":" not in str(r["activity"]) or is_whole_model(str(r["activity"])):
            out[f"compare_tangling_q90_{short_name(str(r['activity']))}"] = float(r["tangling_q90"])
    for r in dynamics.calibration:
        out[f"compare_ceiling_cca_{short_name(str(r['activity']))}"] = float(r["ceiling_cca"])
    for r in dynamics.fixed_points:
        key = f"compare_fixed_points_{short_name(str(r['model']))}"
        out[key] = out.get(key, 0.0) + float(r["n_points"])
    for r in dynamics.communication:
        src, dst = (str(r[k]).replace("/", "") for k in ("source", "target"))
        out[f"compare_comm_dims_{src}_{dst}"] = float(r["dimensions"])
    return out
