"""Checks that run before anything is computed or written.

``cortexsim run`` and ``cortexsim sweep`` call :func:`check` (per point) before they
create a folder, so that a bad input costs a second and one line instead of minutes of
computing and a half-written run folder.  It checks, in order:

1. **the config can run**: every input group the task feeds is wired in the circuit,
   ``task.dt`` is below every population's time constant, the transfer function reaches
   ``rate.rest_rate``, the ANN baselines accept ``task.dt``, the spiking twin's step
   divides ``task.dt`` and is below every time constant, the twin's offset calibration
   has inputs to work with (the names themselves -- populations, projections, input
   groups -- are checked when the config is read, :mod:`cortexsim.config`);
2. **the files it names exist and load**: ``[compare] data`` is opened and its arrays
   and time base checked (:func:`check_data_file`); a run file already in the output
   folder is a readable cortexsim run file (:func:`cortexsim.store.open_run`);
3. **it fits in memory**: the peak-memory estimate :func:`estimate_memory` is at most
   :data:`MEMORY_FRACTION` of the available memory (``MemAvailable`` of ``/proc/meminfo``);
4. **the output can be written**: the nearest existing folder of ``--out`` accepts a
   probe file (:func:`check_writable`) and its disk has room for the run file and the
   figures (:func:`estimate_disk`, :func:`check_free_space`).

Every refusal is a :class:`~cortexsim.errors.ConfigError` or
:class:`~cortexsim.errors.CortexsimError` with one line naming the key or argument,
the value and what is allowed (or the fix).

The memory model
----------------
:func:`estimate_memory` adds, per pipeline stage, the arrays that are alive at that
stage's peak (the sizes come from the config; ``w`` is the bytes of ``rate.dtype``,
``N`` units, ``S`` expected synapses, ``T`` time steps per trial, ``B`` batch, ``V``
validation trials, ``E`` = 400 held-out test trials, ``C`` targets)::

    every stage   BASE_BYTES (interpreter, numpy, scipy, h5py, matplotlib) [+ BRIAN2_BYTES
                  from the spiking stage on]
    train         connectome 40 S; recurrent matrices (8 w + 17) N^2 (parameters, Adam
                  moments, best parameters, mask, gradient and the float64 norm of the
                  Adam step); unit-major buffers max(4 B, 2 B + 5 V) T N w (x, r, drive,
                  dL/dx during BPTT; the validation simulation and its copies); trial
                  batches 56 (B + V) T; histories 200 per iteration
    rate          (7 w + 1) N^2; max(8 E, 4 E + 5 C, E + 8 C) T N w (the noise-free and
                  the noisy test simulations, the evaluation and catch sets); 32 S
    spiking       (2 w + 9) N^2; the Brian2 network: SYNAPSE_BYTES per synapse (K S),
                  NEURON_BYTES per neuron (K N), 3 x 8 bytes per drive value
                  ((C + 1) R T N, R trials per condition), SPIKE_BYTES per spike (K N x
                  SPIKE_RATE_HZ x simulated time); then the decoding: 3 x 8 bytes per
                  pool and 1 ms bin and 2 x 8 per decoded value
    ann           per architecture with g = 1 (rnn), 3 (gru), 4 (lstm) gate blocks:
                  (8 w + 16) g H^2 parameters; max(a B, b E, b V) T H w buffers with
                  (a, b) = (7, 9), (15, 15), (15, 15)
    compare       (3 w + 8 [spiking] + 64) C T N plus the ANNs' C T H w and the recorded
                  data (x 3)

and takes the largest stage.  Measured peak resident memory (``VmHWM`` of a fresh
process running the whole pipeline; 2-core machine, numpy target for the twin) against
this estimate, for changes to the tiny experiment of ``tests/tiny.py`` (N 60 units,
T 146 steps, batch 8, 8 validation trials, 8 targets, float32; no twin, no ANNs)::

    configuration                                           measured  estimated  ratio
    tiny                                                     261 MiB    310 MiB   1.19
    N 400, batch 32, 64 validation trials                    951 MiB    921 MiB   0.97
    N 1500                                                  3034 MiB   2941 MiB   0.97
    1000 targets                                             856 MiB    835 MiB   0.98
    N 100, 3000 validation trials                           1018 MiB   1060 MiB   1.04
    N 200, batch 512                                         689 MiB    561 MiB   0.81
    LSTM baseline, 512 hidden units                         2018 MiB   1959 MiB   0.97
    twin K 20, 3 trials per condition, T 51                  254 MiB    331 MiB   1.30
    N 600, twin K 1, 6 trials per condition, T 51            633 MiB    733 MiB   1.16
    N 600, twin K 10, 1 trial per condition, T 51            556 MiB    585 MiB   1.05

(:data:`MEASURED`; ``tests/test_bad_input.py`` re-measures a small and a medium
configuration and requires the estimate to lie within a factor 2 of the measurement).
With the ``cpp_standalone`` target the twin's simulation runs in a child process; the
estimate counts its memory all the same, since both need the machine's memory at once.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paths
from .anatomy import TASK_INPUT_GROUPS, circuit_spec
from .assembly import check_effector
from .config import Config
from .errors import ConfigError, CortexsimError

MEMORY_FRACTION = 0.8
"""A run may use at most this share of the available memory (``MemAvailable``)."""

MiB = 1 << 20
GiB = 1 << 30

BASE_BYTES = 200 * MiB
"""Resident memory of the interpreter with numpy, scipy, h5py, matplotlib and cortexsim loaded, plus figures."""

BRIAN2_BYTES = 100 * MiB
"""What importing Brian2, generating its code and calibrating the twin's offset add."""

SYNAPSE_BYTES = 120
"""Memory per synapse of the spiking twin (Brian2's synapse arrays and the index arrays cortexsim builds)."""

NEURON_BYTES = 400
"""Memory per LIF neuron of the spiking twin (state variables, per-neuron parameters, the Python lists behind them)."""

SPIKE_BYTES = 80
"""Memory per recorded spike (the monitor's growing arrays, the unit-free and sorted copies)."""

SPIKE_RATE_HZ = 20.0
"""Mean firing rate assumed for the spike count (trained twins fire 5-15 Hz on average)."""

FIGURE_BYTES = 16 * MiB
"""Disk space of the figures of one run (about a dozen PNG files)."""

DISK_MARGIN = 64 * MiB
"""Free disk space kept in reserve beyond the estimate."""

MAX_LIF_SPAN_MV = 10_000.0
"""Largest ``lif.threshold - lif.reset + 16 lif.sigma`` (mV) accepted (the ``lif`` transfer tabulates it at 0.1 mV)."""

STAGES = ("train", "rate", "spiking", "perturb", "ann", "compare")
"""The stages of :func:`estimate_memory` (those of :func:`cortexsim.pipeline.stages`, ANNs together)."""

MEASURED: tuple[tuple[str, float, float], ...] = (
    ("tiny", 261, 310),
    ("N 400, batch 32, 64 validation trials", 951, 921),
    ("N 1500", 3034, 2941),
    ("1000 targets", 856, 835),
    ("N 100, 3000 validation trials", 1018, 1060),
    ("N 200, batch 512", 689, 561),
    ("LSTM, 512 hidden units", 2018, 1959),
    ("twin K 20, 3 trials, T 51", 254, 331),
    ("N 600, twin K 1, 6 trials, T 51", 633, 733),
    ("N 600, twin K 10, 1 trial, T 51", 556, 585),
)
"""(configuration, measured peak RSS in MiB, estimate in MiB) behind the coefficients (see the module docstring)."""


# ---------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """The sizes a config asks for, as the memory and disk estimates use them.

    Attributes
    ----------
    n_units, n_synapses, n_readout : int
        Rate units, expected synapses (from the spec's probabilities) and readout units.
    n_steps : int
        Time steps per trial.
    batch, validation, test, targets : int
        Trials per training batch, validation trials, held-out test trials, conditions (targets x maze shapes).
    rate_bytes, ann_bytes : int
        Bytes per value of ``rate.dtype`` and ``ann.dtype``.
    spiking : bool
        Whether the spiking twin runs.
    k, trials : int
        LIF neurons per unit and trials per condition of the twin.
    twin_copies : int
        Copies of the twin's network simulated side by side: 1 (trials back to back), or every
        trial when the twin drives the arm (:func:`cortexsim.spiking.network.simulate_loop`).
    sim_seconds : float
        Simulated time of the twin (s).
    archs : tuple of str
        ANN architectures.
    n_hidden : int
        Hidden units of each ANN.
    max_iterations : int
        Training iterations at most (the histories grow with them).
    lesion_cut : bool
        Whether ``[lesion]`` cuts projections (a dense boolean matrix).
    """

    n_units: int
    n_synapses: float
    n_readout: int
    n_steps: int
    batch: int
    validation: int
    test: int
    targets: int
    rate_bytes: int
    spiking: bool
    k: int
    trials: int
    twin_copies: int
    sim_seconds: float
    archs: tuple[str, ...]
    n_hidden: int
    ann_bytes: int
    max_iterations: int
    lesion_cut: bool


MAX_STEPS = 10**12
"""Most time steps per trial the checks compute with (any run near it is refused for its memory anyway)."""


def check_trial_length(config: Config) -> int:
    """The steps per trial of ``config``'s task; a trial of more than :data:`MAX_STEPS` steps is a ConfigError."""
    task = config.task
    steps = task.duration / task.dt
    if not math.isfinite(steps) or steps > MAX_STEPS:
        raise ConfigError(
            f"task: a trial of {task.duration:.4g} s (fixation + delay_max + reaction_time + "
            f"reach_duration + hold) at task.dt = {task.dt:g} s is {steps:.3g} steps, more than "
            f"{MAX_STEPS:.0e}; shorten the task or raise task.dt"
        )
    return task.n_steps


def expected_synapses(spec, n_units: int) -> tuple[float, int]:
    """Expected synapse count of a circuit of ``n_units`` (no sampling) and its readout unit count."""
    from .circuit import population_sizes

    sizes = population_sizes(spec, n_units).astype(float)
    index = {name: i for i, name in enumerate(spec.names)}
    total = 0.0
    for proj in spec.projections:
        if proj.pre in spec.silenced:
            continue
        n_post, n_pre = sizes[index[proj.post]], sizes[index[proj.pre]]
        pairs = n_post * (n_pre - 1) if proj.pre == proj.post else n_post * n_pre
        total += proj.probability * pairs
    readout = int(sum(sizes[index[name]] for name in spec.outputs if name not in spec.silenced))
    return total, readout


def sizes(config: Config) -> Sizes:
    """The :class:`Sizes` of ``config`` (cheap: nothing is sampled or allocated)."""
    from .evaluation import HELD_OUT_TRIALS

    check_trial_length(config)
    spec = circuit_spec(config)
    n_synapses, n_readout = expected_synapses(spec, config.circuit.n_units)
    task, sc = config.task, config.spiking
    n_steps = task.n_steps
    return Sizes(
        n_units=config.circuit.n_units,
        n_synapses=n_synapses,
        n_readout=n_readout,
        n_steps=n_steps,
        batch=config.train.batch_size,
        validation=config.train.validation_trials,
        test=HELD_OUT_TRIALS,
        targets=task.n_conditions,
        rate_bytes=np.dtype(config.rate.dtype).itemsize,
        spiking=sc.enabled,
        k=sc.k,
        trials=sc.trials_per_condition,
        twin_copies=(task.n_conditions + 1) * sc.trials_per_condition if config.effector.has_body else 1,
        sim_seconds=(task.n_conditions + 1) * sc.trials_per_condition * n_steps * task.dt,
        archs=tuple(config.ann.archs),
        n_hidden=config.ann.n_hidden,
        ann_bytes=np.dtype(config.ann.dtype).itemsize,
        max_iterations=config.train.max_iterations,
        lesion_cut=bool(config.lesion.cut),
    )


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One block of memory of the estimate.

    Attributes
    ----------
    what : str
        What it holds, with its sizes.
    bytes : float
    keys : tuple of str
        The config keys that set its size.
    """

    what: str
    bytes: float
    keys: tuple[str, ...]


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak resident memory of a run, stage by stage (see the module docstring).

    Attributes
    ----------
    stages : dict of str to list of Term
        The terms alive at each stage's peak (the base included).
    """

    stages: dict[str, list[Term]] = field(default_factory=dict)

    def stage_bytes(self, stage: str) -> float:
        """Estimated peak of one stage (bytes)."""
        return float(sum(t.bytes for t in self.stages[stage]))

    @property
    def peak_stage(self) -> str:
        """The stage with the largest estimate."""
        return max(self.stages, key=self.stage_bytes)

    @property
    def peak(self) -> float:
        """Estimated peak resident memory of the whole run (bytes)."""
        return self.stage_bytes(self.peak_stage) if self.stages else float(BASE_BYTES)

    def drivers(self, n: int = 2) -> list[Term]:
        """The largest terms of the peak stage (those that set the peak), largest first."""
        terms = [t for t in self.stages[self.peak_stage] if t.keys and t.bytes > 0]
        terms = sorted(terms, key=lambda t: -t.bytes)[:n]
        return [t for t in terms if t.bytes >= 0.1 * terms[0].bytes]

    def describe(self) -> str:
        """One line: the peak, its stage and the terms and keys that drive it."""
        parts = [f"{t.what} {format_bytes(t.bytes)}" for t in self.drivers()]
        return f"about {format_bytes(self.peak)} at its peak (stage {self.peak_stage}: {'; '.join(parts)})"


def format_bytes(n: float) -> str:
    """``1536 MiB`` -> ``"1.5 GiB"``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


_N = ("circuit.n_units",)
_T = ("(trial length)",)  # steps per trial: the task durations over task.dt
_ANN_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_ANN_BUFFERS = {"rnn": (7, 9), "gru": (15, 15), "lstm": (15, 15)}  # per hidden unit: training, evaluation


def estimate_memory(
    config: Config, stages: Iterable[str] = STAGES, data_bytes: float = 0.0, jobs: int = 1
) -> MemoryEstimate:
    """Peak resident memory of a run of ``config``, per stage (see the module docstring for the model).

    Parameters
    ----------
    config : Config
    stages : iterable of str
        The stages to include, from :data:`STAGES` (``spiking``, ``perturb`` and ``ann`` only when the
        config runs them).
    data_bytes : float
        Size of the recorded data's rates array compared in the ``compare`` stage.
    jobs : int
        ``cortexsim run --jobs``: with more than one, up to ``jobs - 1`` ANN worker processes
        (each as large as the ``ann`` stage) run alongside ``train``, ``rate`` and ``spiking``.

    Returns
    -------
    MemoryEstimate
    """
    s = sizes(config)
    n, t, w = float(s.n_units), float(s.n_steps), float(s.rate_bytes)
    syn = s.n_synapses
    base = [Term("interpreter and libraries", BASE_BYTES, ())]
    brian = [Term("Brian2", BRIAN2_BYTES, ())] if s.spiking else []
    out: dict[str, list[Term]] = {}
    wanted = set(stages)
    if "train" in wanted:
        buffers = max(4 * s.batch, 2 * s.batch + 5 * s.validation) * t * n * w
        out["train"] = base + [
            Term(f"connectome ({syn:.3g} synapses)", 40 * syn, _N),
            Term(f"recurrent matrices ({s.n_units} x {s.n_units} units)", (8 * w + 17) * n * n, _N),
            Term(
                f"BPTT buffers ({s.n_steps} steps x {max(s.batch, s.validation)} trials x {s.n_units} units)",
                buffers,
                (*_N, "train.batch_size", "train.validation_trials", *_T),
            ),
            Term(
                "trial batches", 56 * (s.batch + s.validation) * t, ("train.batch_size", "train.validation_trials", *_T)
            ),
            Term(
                f"training histories ({s.max_iterations} iterations)",
                200.0 * s.max_iterations,
                ("train.max_iterations",),
            ),
        ]
    if "rate" in wanted:
        e, c = s.test, s.targets
        sims = max(8 * e, 4 * e + 5 * c, e + 8 * c) * t * n * w
        out["rate"] = base + [
            Term(f"recurrent matrices ({s.n_units} x {s.n_units} units)", ((7 * w + 1) + s.lesion_cut) * n * n, _N),
            Term(
                f"test and evaluation simulations ({s.n_steps} steps x {max(e, c)} trials x {s.n_units} units)",
                sims,
                (*_N, "task.n_targets", *_T),
            ),
            Term("connectome", 32 * syn, _N),
            Term("test batch", 56 * (e + 2 * c) * t, ("task.n_targets", *_T)),
        ]
    if "spiking" in wanted and s.spiking:
        k, values = float(s.k), float(s.targets + 1) * s.trials * t * n
        spikes = SPIKE_RATE_HZ * k * n * s.sim_seconds
        k *= s.twin_copies  # the network's neurons and synapses: every trial its own copy when driving the arm
        bins = s.sim_seconds / 1e-3
        keys_k = ("spiking.k", *_N) + (("spiking.trials_per_condition",) if s.twin_copies > 1 else ())
        keys_trials = ("spiking.trials_per_condition", "task.n_targets", *_N, *_T)
        network = [
            Term(f"twin synapses ({k * syn:.3g})", SYNAPSE_BYTES * k * syn, keys_k),
            Term(f"twin neurons ({k * n:.3g})", NEURON_BYTES * k * n, keys_k),
            Term(f"twin drive ({values:.3g} values)", 24 * values, keys_trials),
            Term(f"spikes (about {spikes:.3g})", SPIKE_BYTES * spikes, (*keys_k, *keys_trials[:2])),
        ]
        decoding = [
            Term(f"twin drive ({values:.3g} values)", 8 * values, keys_trials),
            Term(f"spike decoding ({bins:.3g} bins x {s.n_units} pools)", 24 * bins * n + 16 * values, keys_trials),
            Term("spikes", 32 * spikes, (*keys_k, *keys_trials[:2])),
        ]
        peak = max((network, decoding), key=lambda terms: sum(x.bytes for x in terms))
        out["spiking"] = (
            base
            + brian
            + [Term("recurrent matrices", (2 * w + 9) * n * n, _N), Term("connectome", 48 * syn, _N)]
            + peak
        )
    pc = config.perturb
    if "perturb" in wanted and pc.active and config.effector.has_body:
        terms = list(out.get("train", [])) if pc.curl else list(base)  # adaptation trains like the train stage
        if pc.bumps:
            bumped = float(len(pc.bump_times) * pc.bump_directions * s.targets)
            # per trial and step: x and r, their trial-first copies, the loop's tape and sensors, the PSTH sums
            per_step = bumped * t * (n * (6 * w + 32) + 2700)
            terms.append(
                Term(
                    f"bump simulations ({bumped:.0f} trials x {s.n_steps} steps x {s.n_units} units)",
                    per_step,
                    ("perturb.bump_directions", "perturb.bump_times", "task.n_targets", *_N, *_T),
                )
            )
        out["perturb"] = terms
    if "ann" in wanted and s.archs:
        h, wa = float(s.n_hidden), float(s.ann_bytes)
        per_arch = []
        for arch in s.archs:
            g = _ANN_GATES[arch]
            a, b = _ANN_BUFFERS[arch]
            buffers = max(a * s.batch, b * s.test, b * s.validation) * t * h * wa
            per_arch.append(
                [
                    Term(
                        f"{arch} weights ({g * s.n_hidden} x {s.n_hidden})",
                        (8 * wa + 16) * g * h * h,
                        ("ann.n_hidden",),
                    ),
                    Term(
                        f"{arch} buffers ({s.n_steps} steps x {max(s.test, s.validation)} trials x {s.n_hidden} units)",
                        buffers,
                        ("ann.n_hidden", "train.validation_trials", *_T),
                    ),
                ]
            )
        out["ann"] = base + brian + max(per_arch, key=lambda terms: sum(x.bytes for x in terms))
    if "compare" in wanted:
        c = float(s.targets)
        per = (3 * w + (8 if s.spiking else 0) + 64) * c * t * n
        per += c * t * float(s.n_hidden) * s.ann_bytes * len(s.archs)
        out["compare"] = (
            base
            + brian
            + [
                Term(
                    f"compared activities ({s.targets} conditions x {s.n_steps} steps x {s.n_units} units)",
                    per,
                    (*_N, "task.n_targets", *_T),
                ),
                Term("recorded data", 3 * data_bytes, ("compare.data",)),
            ]
        )
    control = config.compare.rotation_control and config.effector.has_body
    if jobs > 1 and control and "train" in out:  # the control circuit trains in a worker, as large as the circuit's
        alongside = Term(
            "control circuit's training in a worker process",
            sum(t.bytes for t in out["train"]),
            ("compare.rotation_control", "--jobs"),
        )
        for name in ("train", "rate", "spiking", "perturb"):
            if name in out:
                out[name] = [*out[name], alongside]
        jobs -= 1  # one worker fewer for the ANNs
    if jobs > 1 and "ann" in out:
        workers = min(jobs - 1, len(s.archs))
        alongside = Term(
            f"{workers} ANN worker process(es) alongside",
            workers * sum(t.bytes for t in out["ann"]),
            ("ann.n_hidden", "--jobs"),
        )
        for name in ("train", "rate", "spiking", "perturb"):
            if name in out:
                out[name] = [*out[name], alongside]
    return MemoryEstimate(out)


def available_memory() -> float:
    """Memory available to a new run (bytes): ``MemAvailable`` of ``/proc/meminfo`` (inf where unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def check_memory(
    config: Config, stages: Iterable[str] = STAGES, data_bytes: float = 0.0, what: str = "the run", jobs: int = 1
) -> MemoryEstimate:
    """Refuse a config whose estimated peak memory exceeds :data:`MEMORY_FRACTION` of the available memory.

    ``jobs`` as for :func:`estimate_memory`.

    Raises
    ------
    ConfigError
        Naming the estimate, the stage and the keys that drive it, and the memory available.
    """
    estimate = estimate_memory(config, stages, data_bytes, jobs)
    available = available_memory()
    if estimate.peak > MEMORY_FRACTION * available:
        keys = list(dict.fromkeys(k for t in estimate.drivers() for k in t.keys))
        values = [_value(config, k) for k in keys]
        raise ConfigError(
            f"{what} needs {estimate.describe()}, more than {MEMORY_FRACTION:.0%} of the "
            f"{format_bytes(available)} of memory available; reduce {' or '.join(values)}"
        )
    return estimate


def _value(config: Config, key: str) -> str:
    """``"circuit.n_units = 500"``; the trial length as its steps and what sets them."""
    if key == "(trial length)":
        task = config.task
        return f"the trial length ({task.n_steps} steps of task.dt = {task.dt:g} s; see task.delay_max, task.hold)"
    if key == "compare.data":
        return f"the recorded data ({config.compare.data})"
    if key == "--jobs":
        return "--jobs (1 trains the ANNs after the circuit, in one process)"
    section, _, name = key.partition(".")
    value = getattr(config.sections[section], name)
    return f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}"


# ---------------------------------------------------------------------------
# Disk
# ---------------------------------------------------------------------------


def estimate_disk(config: Config) -> float:
    """Bytes of the run file and figures a run of ``config`` writes (arrays counted uncompressed).

    The recurrent matrices of the training checkpoint (four of them: parameters, two Adam
    moments, best parameters) are counted at their synapses, since gzip removes the zeros.
    """
    s = sizes(config)
    n, t, w, syn, c = float(s.n_units), float(s.n_steps), float(s.rate_bytes), s.n_synapses, float(s.targets)
    total = 33 * syn  # pre, post, weight, sign, weight_init
    total += 4 * (syn * (w + 1) + n * n * w / 100 + 8 * n * w)  # checkpoint
    total += 9 * 8 * s.max_iterations  # histories
    total += c * t * 7 * 8 + 2 * c * t * n * w  # task, rate states and rates
    if s.spiking:
        values = (c + 1) * s.trials * t * n
        total += 16 * SPIKE_RATE_HZ * s.k * n * s.sim_seconds + 8 * values + 8 * c * t * n
    for arch in s.archs:
        total += c * t * s.n_hidden * s.ann_bytes + _ANN_GATES[arch] * s.n_hidden**2 * s.ann_bytes
    return total + 2 * MiB + FIGURE_BYTES


def check_free_space(folder: str | Path, needed: float, what: str) -> None:
    """Refuse when the disk holding ``folder`` (or its nearest existing ancestor) has less than ``needed`` bytes free.

    Raises
    ------
    CortexsimError
        Naming the folder, the space needed and the space free.
    """
    existing = paths.nearest_existing(Path(folder))
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # unknown: the write itself will tell
    if free < needed:
        raise CortexsimError(
            f"{folder}: not enough free disk space for {what}: about {format_bytes(needed)} needed, "
            f"{format_bytes(free)} free on the disk of {existing}; free some space or choose "
            f"another --out"
        )


# ---------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------


def check_writable(path: str | Path, flag: str = "--out") -> None:
    """Refuse an output path that cannot be written: probe the nearest existing folder with a file.

    Parameters
    ----------
    path : str or Path
        The output folder (need not exist yet).
    flag : str
        The argument that named it, for the message.

    Raises
    ------
    CortexsimError
        ``path`` is too long, it or an ancestor is a file, or the folder does not accept a new file.
    """
    paths.writable_folder(path, flag)


# ---------------------------------------------------------------------------
# What a config can run
# ---------------------------------------------------------------------------


def check_runnable(config: Config) -> None:
    """Refuse a config that the pipeline would reject only after computing (see the module docstring).

    Raises
    ------
    ConfigError
    """
    check_trial_length(config)
    spec = circuit_spec(config)
    where = "circuit.spec" if config.circuit.spec == "default" else f"circuit.spec ({config.circuit.spec})"
    for group in TASK_INPUT_GROUPS:
        if group not in spec.inputs:
            raise ConfigError(
                f"{where}: the task input group {group!r} is not wired to any population; add "
                f'inputs.{group} to the spec or circuit.overrides.inputs.{group} = ["..."]'
            )
    from .circuit import population_sizes

    population_sizes(spec, config.circuit.n_units)  # at least one unit per population
    if all(name in spec.silenced for name in spec.outputs):
        raise ConfigError(
            "circuit.overrides.silence: every output population is silenced; the readout has nothing to read"
        )
    dt = config.task.dt
    slowest = min(spec.populations, key=lambda p: p.tau)
    if dt >= slowest.tau:
        raise ConfigError(
            f"task.dt: {dt} s is not smaller than the smallest time constant ({slowest.tau} s, "
            f"population {slowest.name}); lower task.dt or raise circuit.overrides.tau."
            f"{slowest.name}"
        )
    rc = config.rate
    phi = transfer_function(config)
    low, high = (float(phi(np.array([x]))[0]) for x in (-100.0, 200.0))
    if not low < rc.rest_rate < high:
        raise ConfigError(
            f"rate.rest_rate: {rc.rest_rate} Hz is outside what the transfer function "
            f"{rc.transfer} reaches ({low:.3g} to {high:.3g} Hz between -100 and 200 mV); lower "
            f"rate.rest_rate or change rate.transfer / rate.transfer_gain"
        )
    if config.ann.archs:
        from .ann import make_ann

        for arch in config.ann.archs:
            make_ann(
                arch, config.ann.n_hidden, dt, dtype=np.dtype(config.ann.dtype), output_scale=config.task.reach_distance
            )
    if config.spiking.enabled:
        check_spiking(config)
    if config.stimulation.active:
        check_stimulation(config, phi)


def check_stimulation(config: Config, phi) -> None:
    """Refuse a protocol whose window is outside the trial or whose amplitude exceeds the transfer's range.

    The names it targets were checked with the circuit (:func:`cortexsim.anatomy.check_config`).
    """
    from . import stimulation
    from .assembly import make_task

    batch = make_task(config).evaluation_set()
    for protocol in config.stimulation.protocols:
        stimulation.check_window(protocol, batch)
        stimulation.check_amplitude(protocol, phi, 1.0 / config.lif.refractory)


def transfer_function(config: Config):
    """The rate units' transfer function of ``config``; a neuron it cannot be fitted to is a ConfigError.

    Raises
    ------
    ConfigError
        The ``[lif]`` neuron has no usable f-I curve (e.g. an extreme ``lif.tau_m``) or the
        function gives non-finite rates.
    """
    from .transfer import make_transfer

    rc, lif = config.rate, config.lif
    span = lif.threshold - lif.reset + 16 * lif.sigma
    if span > MAX_LIF_SPAN_MV:
        raise ConfigError(
            f"lif: threshold - reset + 16 sigma spans {span:.4g} mV (threshold {lif.threshold}, reset "
            f"{lif.reset}, sigma {lif.sigma} mV), more than {MAX_LIF_SPAN_MV:g} mV; the transfer "
            f"functions are tabulated over it on a 0.1 mV grid -- use physiological [lif] values"
        )
    try:
        with np.errstate(all="ignore"):
            phi = make_transfer(rc.transfer, lif, rc.transfer_gain, rc.transfer_threshold)
            probe = phi(np.linspace(-100.0, 200.0, 31))
    except CortexsimError:
        raise
    except (ValueError, ArithmeticError, RuntimeError, MemoryError) as exc:
        raise ConfigError(
            f"lif: the neuron (tau_m {lif.tau_m} s, threshold {lif.threshold} mV, reset {lif.reset} mV, "
            f"refractory {lif.refractory} s, sigma {lif.sigma} mV) has no f-I curve that "
            f"rate.transfer = {rc.transfer!r} can be fitted to ({' '.join(str(exc).split())}); use "
            f"physiological [lif] values"
        ) from None
    if not np.all(np.isfinite(probe)):
        raise ConfigError(
            f"rate.transfer: {rc.transfer!r} with the [lif] neuron gives non-finite rates between -100 "
            f"and 200 mV; use physiological [lif] values or another transfer"
        )
    return phi


def check_spiking(config: Config) -> None:
    """Refuse ``[spiking]`` settings the twin would reject after the rate network was trained.

    Raises
    ------
    ConfigError
        ``spiking.dt`` not below every time constant or not dividing ``task.dt``, or a transfer
        function that the offset calibration cannot fit (fewer than 3 of its grid inputs in 2-50 Hz),
        or ``cpp_standalone`` for a twin that drives the arm.
    """
    check_effector(config)  # what [effector] asks of [spiking] (an arm twin's target) is said there
    spec = circuit_spec(config)
    sim_dt, task_dt = config.spiking.dt, config.task.dt
    slowest = min(spec.populations, key=lambda p: p.tau)
    if sim_dt >= slowest.tau:
        raise ConfigError(
            f"spiking.dt: {sim_dt} s is not smaller than the smallest time constant ({slowest.tau} s, "
            f"population {slowest.name}); lower spiking.dt"
        )
    ratio = task_dt / sim_dt
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        nice = [d for d in (1e-4, 5e-5, 2e-5, 1e-5) if d < slowest.tau and abs(task_dt / d - round(task_dt / d)) < 1e-6]
        example = nice[0] if nice else task_dt / max(1, math.ceil(ratio))
        raise ConfigError(
            f"spiking.dt: {sim_dt} s does not divide task.dt = {task_dt} s into whole steps; choose "
            f"spiking.dt = task.dt / an integer (e.g. {example:g} s)"
        )
    lif, rc = config.lif, config.rate
    phi = transfer_function(config)
    grid = np.linspace(lif.threshold - 2.0 * lif.sigma, lif.threshold + 1.5 * lif.sigma, 22)[3:-3]
    rates = phi(grid.copy())
    if int(np.sum((rates >= 2.0) & (rates <= 50.0))) < 3:
        raise ConfigError(
            f"rate.transfer: {rc.transfer} (gain {rc.transfer_gain}, threshold {rc.transfer_threshold}) "
            f"fires 2-50 Hz at fewer than 3 of the inputs the spiking twin calibrates its offset on "
            f"({grid[0]:.3g} to {grid[-1]:.3g} mV, from [lif]); use a transfer fitted to [lif] "
            f'("lif_softplus") or set spiking.enabled = false'
        )


# ---------------------------------------------------------------------------
# Files the config names
# ---------------------------------------------------------------------------


def check_data_file(
    path: str | Path, config: Config | None = None, key: str = "compare.data", options: dict | None = None
) -> float:
    """Check that a recorded-data file exists, loads and overlaps the model's time base; returns its rates' bytes.

    The file is loaded with ``options`` (default: ``config``'s ``[compare]`` loader options, see
    :meth:`~cortexsim.config.CompareConfig.loader_options`): ``.npz`` and ``.mat`` files have their rates
    and time arrays checked (shapes, layout, time base); NWB files are binned into PSTHs, which needs
    an alignment event (``compare.align_event``, ``--align-event``), refused here rather than at the
    last stage.

    Raises
    ------
    ConfigError
        Naming ``key``, the file and what is wrong.
    """
    from .data import load_neural_data, match_time_base

    path = paths.input_file(path, f"{key} =", "data file", error=ConfigError)  # a FIFO, device, link loop, folder
    if path.stat().st_size > 2 * GiB:
        raise ConfigError(
            f"{key} = {str(path)!r}: {format_bytes(path.stat().st_size)} is too large for condition-"
            f"averaged rates (at most 2 GiB)"
        )
    if options is None:
        options = config.compare.loader_options() if config is not None else {}
    if path.suffix.lower() == ".nwb" and not options.get("align_event"):
        raise ConfigError(
            f"{key} = {str(path)!r}: an NWB file is binned around an event; name the trials column to align to "
            "with --align-event (compare.align_event), e.g. move_onset_time"
        )
    try:
        data = load_neural_data(path, **options)
        if config is not None:
            task = config.task
            move_on = int(round((task.fixation + task.eval_delay + task.reaction_time) / task.dt))
            match_time_base(data, (np.arange(task.n_steps) - move_on) * task.dt)
    except CortexsimError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return float(data.rates.nbytes)


RUN_SUMMARY_HEAD = b"# cortexsim run summary"
"""The first line of every ``summary.md`` a run writes: how a run folder's summary is recognised."""


def run_summary_kind(path: Path) -> str | None:
    """None for a ``summary.md`` a run wrote, else what the file is."""
    try:
        head = paths.read_bytes(path)[: len(RUN_SUMMARY_HEAD)]
    except CortexsimError:
        head = b""
    return None if head == RUN_SUMMARY_HEAD else "not a summary cortexsim run wrote"


def check_run_folder(out_dir: Path, config: Config, force: bool = False) -> float:
    """Check a run file already in ``out_dir``: readable, and of this config unless ``force``; returns its size.

    A ``summary.md`` there that a run did not write (someone's notes) is refused unless ``force``.

    Raises
    ------
    RunFileError
        The file is not a readable cortexsim run file (foreign, truncated, malformed, corrupt).
    ConfigError
        It holds a run of another configuration and ``force`` is not set.
    """
    from . import store

    if os.path.lexists(out_dir / "summary.md"):  # someone's own notes are left alone
        paths.output_file(
            out_dir / "summary.md",
            "--out",
            recognise=run_summary_kind,
            force=force,
            fix="choose another --out, or pass --force to replace it",
        )
    run_file = out_dir / "run.h5"
    if not run_file.exists():
        return 0.0
    with store.open_run(run_file) as f:
        text = store.read_config_text(f)
    if not force and text != config.to_toml():
        raise ConfigError(
            f"{run_file}: holds a run of a different configuration; choose another --out, or pass --force to replace it"
        )
    return float(run_file.stat().st_size)


# ---------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------


def check_export(config: Config, out_dir: str | Path | None = None, force: bool = False) -> None:
    """Refuse ``[export] nwb = true`` without the spiking twin it exports, without pynwb, or over a foreign file.

    ``out_dir``: the run folder, whose ``run.nwb`` must be absent or an NWB file ``cortexsim export``
    wrote (any other file only with ``force``).
    """
    if not config.export.nwb:
        return
    if out_dir is not None:
        from .export import check_output

        check_output(Path(out_dir) / "run.nwb", "export.nwb: the run's", force=force)
    if not config.spiking.enabled:
        raise ConfigError(
            "export.nwb = true exports the spiking twin, but spiking.enabled = false; enable the twin or drop "
            "export.nwb"
        )
    import importlib.util

    if importlib.util.find_spec("pynwb") is None:
        raise ConfigError('export.nwb = true needs the optional package pynwb; pip install "cortexsim[nwb]"')


def check(
    config: Config, out_dir: str | Path, *, force: bool = False, what: str = "the run", jobs: int = 1
) -> MemoryEstimate:
    """Every check of a ``cortexsim run`` of ``config`` into ``out_dir``, before anything is computed or written.

    Parameters
    ----------
    config : Config
    out_dir : str or Path
        The run folder (need not exist).
    force : bool
        ``--force``: a run file of another config in ``out_dir`` will be replaced.
    what : str
        What is checked, for the messages (``"the run"``, ``"sweep point 3"``).
    jobs : int
        ``cortexsim run --jobs`` (the memory of ANN workers running alongside counts).

    Returns
    -------
    MemoryEstimate
        The estimate the memory check used.

    Raises
    ------
    CortexsimError
        :class:`ConfigError` for the config, :class:`~cortexsim.errors.RunFileError` for an unreadable
        run file in ``out_dir``, plain for an output folder that cannot be written or lacks space.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CortexsimError(f"--out {out_dir}: exists and is not a folder")
    check_runnable(config)
    check_export(config, out_dir, force)
    data_bytes = 0.0
    if config.compare.data:
        data_bytes = check_data_file(config.base / config.compare.data, config)
    estimate = check_memory(config, data_bytes=data_bytes, what=what, jobs=jobs)
    existing = check_run_folder(out_dir, config, force)
    check_writable(out_dir)
    needed = 2 * estimate_disk(config) + DISK_MARGIN - existing
    check_free_space(out_dir, needed, f"{what} (its run file, written twice while it is updated, and figures)")
    return estimate


def check_sweep(points: Sequence, out: str | Path) -> None:
    """:func:`check` for every point of a sweep (before any point runs), then the disk space of all of them.

    Parameters
    ----------
    points : sequence of cortexsim.sweep.Point
    out : str or Path
        The sweep's output folder.

    Raises
    ------
    CortexsimError
        The first point that fails, named by its folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CortexsimError(f"--out {out}: exists and is not a folder")
    check_writable(out)
    total = 0.0
    for i, point in enumerate(points, start=1):
        name = f"sweep point {i} ({point.name})"
        try:
            check_runnable(point.config)
            check_export(point.config, point.folder)
            data_bytes = 0.0
            if point.config.compare.data:
                data_bytes = check_data_file(point.config.base / point.config.compare.data, point.config)
            check_memory(point.config, data_bytes=data_bytes, what=name)
            total += 2 * estimate_disk(point.config) - check_run_folder(point.folder, point.config, force=False)
        except CortexsimError as exc:
            raise type(exc)(f"{name}: {exc}") from None
    check_free_space(out, total + DISK_MARGIN, f"the sweep's {len(points)} run files and figures")


def check_circuit(config: Config, out: str | Path) -> None:
    """Checks of ``cortexsim circuit``: the connectome fits in memory, the file can be written and fits on disk.

    Raises
    ------
    CortexsimError
    """
    s = sizes(config)
    need = BASE_BYTES + 40 * s.n_synapses
    available = available_memory()
    if need > MEMORY_FRACTION * available:
        raise ConfigError(
            f"the circuit needs about {format_bytes(need)} of memory ({s.n_synapses:.3g} synapses), "
            f"more than {MEMORY_FRACTION:.0%} of the {format_bytes(available)} available; lower "
            f"circuit.n_units = {config.circuit.n_units}"
        )
    out = Path(out)
    check_writable(out.parent, "--out")
    check_free_space(out.parent, 2 * 17 * s.n_synapses + DISK_MARGIN, "the circuit file")
