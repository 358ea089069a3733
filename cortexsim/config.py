"""Experiment configuration: TOML files checked into frozen dataclasses.

An experiment file has one table per pipeline stage; every key is optional and
defaults to the value documented here and in ``experiments/center_out.toml``::

    [experiment]   name, seed
    [circuit]      n_units, spec ("default" or a spec TOML path), [circuit.overrides]
    [task]         the delayed center-out reach (:class:`TaskConfig`)
    [lif]          the LIF neuron whose transfer function the rate units use
                   (:class:`LIFParams`)
    [rate]         the rate network (:class:`RateConfig`)
    [train]        the trainer (:class:`TrainConfig`)
    [ann]          the ANN baselines (:class:`AnnConfig`)
    [spiking]      the LIF twin (:class:`SpikingConfig`)
    [compare]      the comparison battery (:class:`CompareConfig`)
    [lesion]       lesions of the trained circuit (:class:`LesionConfig`)
    [quality]      the reach bars of the quality gate (:class:`QualityConfig`)
    [stimulation]  optogenetic-style stimulation protocols
                   (:class:`~cortexsim.stim_config.StimulationConfig`)

Unknown keys, wrong types and out-of-range values raise
:class:`~cortexsim.errors.ConfigError` naming the key, the value and what is allowed.

This module is the base layer: it imports nothing of cortexsim but the errors, the paths and
the validators, so every other module may read its sections.  The names a config
gives to populations, projections and input groups are checked against the circuit
by :func:`cortexsim.anatomy.check_config` (which :func:`cortexsim.assembly.load_experiment`
and the command line run before anything is computed).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from . import _validate as v
from . import paths
from .errors import ConfigError
from .fit_config import FitConfig
from .stim_config import StimulationConfig

TRANSFER_NAMES = ("lif_softplus", "lif", "softplus", "relu", "rectified_tanh")
"""The transfer functions ``rate.transfer`` names (:func:`cortexsim.transfer.make_transfer` builds them)."""

TASK_KINDS = ("center_out", "maze", "recorded")
"""The tasks ``task.kind`` names (:func:`cortexsim.tasks.task_of` builds the first two from ``[task]``;
``"recorded"`` is built from ``[fit] data`` by :func:`cortexsim.assembly.make_task`)."""

RECORDED_TASK = "recorded"
"""The ``task.kind`` whose conditions a recording defines: it needs ``[fit] data``, and ``[fit]`` needs it."""

MAZE_SHAPES = ("straight", "arc", "s_curve")
"""The path shapes of the maze task (``task.maze_shapes``): no, one or two via points."""

ANN_ARCHITECTURES = ("rnn", "gru", "lstm")
"""The ANN baselines ``ann.archs`` names (:func:`cortexsim.ann.make_ann` builds them)."""


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Check ``value`` against the annotated type ``kind`` (int, float, str, bool, dict, tuple)."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):  # e.g. float | None
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(k for k in options if k is not type(None))
        origin = typing.get_origin(kind)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # its range (int64 at most) is checked with the section's own bounds
        return v.number(value, where, integer=True)
    if kind is float:
        return v.number(value, where)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if kind is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        if dataclasses.is_dataclass(inner):  # a list of tables, e.g. [[stimulation.protocols]]
            tables = []
            for i, x in enumerate(value):
                if not isinstance(x, Mapping):
                    raise ConfigError(f"{where}[{i}]: expected a table, got {x!r}")
                tables.append(section_from_dict(inner, x, f"{where}[{i}]"))
            return tuple(tables)
        items = tuple(_coerce(x, inner, f"{where}[{i}]") for i, x in enumerate(value))
        return v.unique(items, where) if inner is str else items  # a list of strings names things
    raise TypeError(f"unsupported config type {kind!r} at {where}")


def section_from_dict(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Build config dataclass ``cls`` from a TOML table, checking keys and types."""
    v.check_keys(data, [f.name for f in fields(cls)], where)
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(val, hints[k], v.join(where, k)) for k, val in data.items()}
    section = cls(**kwargs)
    for key, val in kwargs.items():  # whole numbers a section leaves unbounded must still fit in int64
        if isinstance(val, int) and not isinstance(val, bool):
            v.number(val, v.join(where, key), integer=True)
    return section


SEED_MAX = 2**32 - 1
"""Largest ``experiment.seed``: the spiking twin seeds Brian2 (numpy's legacy seeding) with it."""


@dataclass(frozen=True)
class ExperimentConfig:
    """``[experiment]``: what the run is called and its seed.

    Attributes
    ----------
    name : str
        Short name; used for the default output folder.
    seed : int
        Seeds every random draw (circuit, trials, initialisation, noise); 0 to
        :data:`SEED_MAX` (2**32 - 1).
    """

    name: str = "experiment"
    seed: int = 0

    def __post_init__(self) -> None:
        paths.folder_name(self.name, "experiment.name", error=ConfigError)  # it becomes results/<name>/
        try:
            v.number(self.seed, "experiment.seed", low=0, high=SEED_MAX, integer=True)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (Brian2 seeds its noise with a 32-bit seed)") from None


@dataclass(frozen=True)
class CircuitConfig:
    """``[circuit]``: which circuit, at what size.

    Attributes
    ----------
    n_units : int
        Total number of rate units (at least one per population).
    spec : str
        ``"default"`` (the M1 column of :func:`cortexsim.anatomy.default_m1_spec`)
        or the path of a spec TOML file, relative to the config file.
    overrides : dict
        Per-experiment changes (see :meth:`cortexsim.anatomy.CircuitSpec.with_overrides`).
    """

    n_units: int = 500
    spec: str = "default"
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        v.number(self.n_units, "circuit.n_units", low=1, integer=True)


@dataclass(frozen=True)
class TaskConfig:
    """``[task]``: the delayed reach; every duration in seconds, distance in metres.

    ``kind = "center_out"`` (default) is the straight reach to ``n_targets`` targets
    (:class:`cortexsim.tasks.CenterOutTask`); ``kind = "maze"`` the curved reaches through via
    points (:class:`cortexsim.tasks.MazeTask`): ``n_targets`` x ``len(maze_shapes)`` conditions.
    Both share every timing below.  ``kind = "recorded"`` is the task a recording defines
    (:class:`cortexsim.recorded_task.RecordedTask`, built from ``[fit] data``): its conditions, window and
    hand paths are the recording's; of the timings below it uses ``dt``, ``fixation``, ``reaction_time``
    and ``go_duration``.

    Attributes
    ----------
    kind : str
        ``"center_out"``, ``"maze"`` or ``"recorded"`` (see :data:`TASK_KINDS`).
    dt : float
        Time step (s).
    n_targets : int
        Number of targets evenly spaced on the circle (any K >= 1).
    random_angles : bool
        Draw target angles uniformly on the circle instead of from ``n_targets``.
    reach_distance : float
        Reach length (m).
    reach_duration : float
        Duration of the minimum-jerk movement (s).
    reaction_time : float
        From go cue to movement onset (s).
    fixation : float
        From trial start to target onset (s).
    delay_min, delay_max : float
        Range of the uniform delay between target onset and go cue (s).
    zero_delay_fraction : float
        Share of (non-catch) trials with no delay.
    catch_fraction : float
        Share of catch trials (target shown, no go cue, no movement).
    go_duration : float
        Length of the go pulse (s).
    hold : float
        Time after the latest possible movement end until the trial ends (s).
    eval_delay : float
        Delay of the evaluation set (one trial per condition).
    maze_shapes : tuple of str
        Maze only: the path shapes every target is reached by (:data:`MAZE_SHAPES`): ``straight``,
        ``arc`` (one via point) or ``s_curve`` (two via points).
    maze_bend : float
        Maze only: how far a via point lies beside the straight path, as a share of
        ``reach_distance`` (0 < bend <= 1).  Arcs bend left on even targets and right on odd ones;
        S-curves the other way round.
    """

    kind: str = "center_out"
    dt: float = 0.01
    n_targets: int = 8
    random_angles: bool = False
    reach_distance: float = 0.10
    reach_duration: float = 0.40
    reaction_time: float = 0.15
    fixation: float = 0.20
    delay_min: float = 0.30
    delay_max: float = 0.80
    zero_delay_fraction: float = 0.10
    catch_fraction: float = 0.20
    go_duration: float = 0.10
    hold: float = 0.20
    eval_delay: float = 0.50
    maze_shapes: tuple[str, ...] = ("straight", "arc", "s_curve")
    maze_bend: float = 0.3

    def __post_init__(self) -> None:
        v.choice(self.kind, "task.kind", TASK_KINDS)
        v.number(self.dt, "task.dt", low=0, low_open=True)
        v.number(self.n_targets, "task.n_targets", low=1, integer=True)
        for name in ("reach_distance", "reach_duration", "go_duration"):
            v.number(getattr(self, name), f"task.{name}", low=0, low_open=True)
        for name in ("reaction_time", "fixation", "delay_min", "delay_max", "hold", "eval_delay"):
            v.number(getattr(self, name), f"task.{name}", low=0)
        for name in ("zero_delay_fraction", "catch_fraction"):
            v.number(getattr(self, name), f"task.{name}", low=0, high=1)
        if self.delay_min > self.delay_max:
            raise ConfigError(f"task.delay_min: {self.delay_min} exceeds task.delay_max {self.delay_max}")
        if self.eval_delay > self.delay_max:
            raise ConfigError(f"task.eval_delay: {self.eval_delay} exceeds task.delay_max {self.delay_max}")
        if self.reach_duration < 2 * self.dt:
            raise ConfigError(
                f"task.reach_duration: {self.reach_duration} s is under two time steps "
                f"(dt = {self.dt} s); lengthen it or lower dt"
            )
        if not self.maze_shapes:
            raise ConfigError('task.maze_shapes: empty; give at least one of "straight", "arc", "s_curve"')
        for i, shape in enumerate(self.maze_shapes):
            v.choice(shape, f"task.maze_shapes[{i}]", MAZE_SHAPES)
        if len(set(self.maze_shapes)) != len(self.maze_shapes):
            raise ConfigError(f"task.maze_shapes: {list(self.maze_shapes)} repeats a shape; give each once")
        v.number(self.maze_bend, "task.maze_bend", low=0, low_open=True, high=1)
        if self.kind == "maze" and self.random_angles:
            raise ConfigError(
                'task.random_angles = true with task.kind = "maze": maze conditions are fixed paths to '
                "n_targets targets; set random_angles = false"
            )

    @property
    def n_conditions(self) -> int:
        """Number of distinct reach conditions: targets, times path shapes for the maze."""
        return self.n_targets * (len(self.maze_shapes) if self.kind == "maze" else 1)

    @property
    def duration(self) -> float:
        """Trial length (s): long enough for the longest delay, reaction, reach and hold."""
        return self.fixation + self.delay_max + self.reaction_time + self.reach_duration + self.hold

    @property
    def n_steps(self) -> int:
        """Steps per trial: the last one starts at ``duration``, so every reach ends inside the trial."""
        return int(np.ceil(self.duration / self.dt - 1e-9)) + 1


@dataclass(frozen=True)
class LIFParams:
    """``[lif]``: the noisy leaky integrate-and-fire neuron (voltages relative to rest, in mV).

    Attributes
    ----------
    tau_m : float
        Membrane time constant (s).
    threshold, reset : float
        Spike threshold and reset potential (mV above rest).
    refractory : float
        Absolute refractory period (s).
    sigma : float
        Amplitude of the background white noise (mV) in Brunel's (2000)
        convention, ``tau_m dV = (-V + mu) dt + sigma sqrt(tau_m) dW``; the free
        membrane potential then fluctuates with SD ``sigma / sqrt(2)``.
    """

    tau_m: float = 0.010
    threshold: float = 20.0
    reset: float = 10.0
    refractory: float = 0.002
    sigma: float = 6.0

    def __post_init__(self) -> None:
        v.number(self.tau_m, "lif.tau_m", low=0, low_open=True)
        v.number(self.refractory, "lif.refractory", low=0)
        v.number(self.sigma, "lif.sigma", low=0, low_open=True)
        if not self.reset < self.threshold:
            raise ConfigError(f"lif: reset {self.reset} mV must lie below threshold {self.threshold} mV")


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: how to train.

    Attributes
    ----------
    batch_size : int
        Trials per iteration (fresh trials every iteration).
    max_iterations : int
        Upper bound on iterations.
    max_seconds : float, optional
        Wall-clock safety net for training (s), off (None) by default.  When set and
        crossed, training stops after that iteration and the run says so
        (``<model>_budget_hit = 1`` in ``/metrics``); the result then depends on the
        machine's speed and load, so reproducible studies leave it off.
    learning_rate : float
        Adam step size, relative to each group's typical magnitude (0.03: about 3 %
        of a group's scale per step).
    lr_final : float
        Learning rate at ``max_iterations`` as a fraction of the initial one
        (exponential decay).
    clip_norm : float
        Global norm above which the (scaled) gradient is shrunk.
    rate_l2, rate_cap, rate_cap_l2, weight_l2 : float
        Penalties (see :class:`cortexsim.loss.Penalties`).
    validation_trials : int
        Size of the fixed, noise-free validation set.
    eval_every : int
        Iterations between validations.
    patience : int
        Validations without improvement before stopping early.
    target_r2 : float
        Stop as soon as validation R^2 reaches this (1 disables).
    stop_at_bars : bool
        Stop at the first validation on which the model meets every ``[quality]`` bar that the
        validation trials can measure (position R^2, endpoint error, catch drift, the speed bars,
        the task's own bars such as the maze's curvature gain), each tightened by ``bar_margin``;
        the parameters of that validation are kept.  The same rule then stops the circuit and
        every ANN, so no model is polished far past the bars the others must meet.  Deterministic:
        it reads the fixed validation set every ``eval_every`` iterations, never the clock.
    clean_fraction : float
        Share of the iterations trained without process noise (and, on a body, without sensory
        and motor noise), spread evenly (0.5: every second iteration).  A network trained only
        with noise holds and moves well *with* noise; noise-free -- as the quality bars and the
        reported metrics measure it -- its mean state differs (the transfer is convex), and the
        arm study's circuit then drifts ~1 cm in a catch trial and misses the peak speed.  Clean
        iterations teach both regimes.  0 (default): every iteration noisy.
    bar_margin : float
        How far inside each bar the validation must be, as a share of the bar's slack: a ceiling
        ``b`` (endpoint error, drift) becomes ``(1 - bar_margin) b``, a floor ``b`` on a measure
        whose ideal is 1 (R^2, correlations, gains) becomes ``b + bar_margin (1 - b)``.  The
        margin covers the difference between the validation trials and the held-out ones.
    log_every : int
        Iterations between progress lines.
    checkpoint_every : int
        Iterations between checkpoints written to the run file.
    """

    batch_size: int = 64
    max_iterations: int = 1000
    max_seconds: float | None = None
    learning_rate: float = 3e-2
    lr_final: float = 0.1
    clip_norm: float = 1.0
    rate_l2: float = 1e-6
    rate_cap: float = 50.0
    rate_cap_l2: float = 1e-3
    weight_l2: float = 1e-4
    validation_trials: int = 128
    eval_every: int = 50
    patience: int = 30
    target_r2: float = 1.0
    stop_at_bars: bool = False
    bar_margin: float = 0.1
    clean_fraction: float = 0.0
    log_every: int = 100
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "max_iterations",
            "validation_trials",
            "eval_every",
            "patience",
            "log_every",
            "checkpoint_every",
        ):
            v.number(getattr(self, name), f"train.{name}", low=1, integer=True)
        if self.max_seconds is not None:
            v.number(self.max_seconds, "train.max_seconds", low=0, low_open=True)
        v.number(self.learning_rate, "train.learning_rate", low=0, low_open=True)
        v.number(self.lr_final, "train.lr_final", low=0, high=1, low_open=True)
        v.number(self.clip_norm, "train.clip_norm", low=0, low_open=True)
        for name in ("rate_l2", "rate_cap_l2", "weight_l2"):
            v.number(getattr(self, name), f"train.{name}", low=0)
        v.number(self.rate_cap, "train.rate_cap", low=0, low_open=True)
        v.number(self.target_r2, "train.target_r2", high=1)
        v.number(self.bar_margin, "train.bar_margin", low=0, high=0.9)
        v.number(self.clean_fraction, "train.clean_fraction", low=0, high=1)


@dataclass(frozen=True)
class LesionConfig:
    """``[lesion]``: silence populations and cut projections of the trained circuit.

    The rate network is trained intact; the lesion applies to its evaluation, the
    spiking twin and the comparison.  Empty lists (the default): no lesion.

    Attributes
    ----------
    silence : tuple of str
        Populations whose units are silenced (e.g. ``["PT5B"]``).
    cut : tuple of str
        Projections to remove, each ``"PRE -> POST"`` (e.g. ``["IT2/3 -> PT5B"]``).
    """

    silence: tuple[str, ...] = ()
    cut: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("silence", "cut"):
            value = getattr(self, key)
            if isinstance(value, str) or not all(isinstance(x, str) for x in value):
                example = '["PT5B"]' if key == "silence" else '["IT2/3 -> PT5B"]'
                raise ConfigError(f"lesion.{key}: expected a list of names such as {example}, got {value!r}")

    @property
    def active(self) -> bool:
        """True when anything is silenced or cut."""
        return bool(self.silence or self.cut)

    def label(self) -> str:
        """Short description, e.g. ``"silence PT5B; cut IT2/3 -> PT5B"`` (``"intact"`` when none)."""
        parts = ([f"silence {', '.join(self.silence)}"] if self.silence else []) + (
            [f"cut {', '.join(self.cut)}"] if self.cut else []
        )
        return "; ".join(parts) or "intact"


@dataclass(frozen=True)
class QualityConfig:
    """``[quality]``: the reach bars every trained model must meet.

    Attributes
    ----------
    position_r2 : float
        Lowest acceptable noise-free held-out position R^2 of the rate circuit and the ANNs.
    endpoint_error_cm : float
        Largest acceptable mean endpoint error (cm) of the rate circuit and the ANNs.
    catch_drift_cm : float
        Largest acceptable mean catch-trial drift (cm) of the rate circuit and the ANNs.
    spiking_position_r2 : float
        Lowest acceptable single-trial decoded position R^2 of the spiking twin.
    peak_speed_error : float, optional
        Largest acceptable mean ``|peak hand speed - desired| / desired`` of the rate circuit and
        the ANNs (unset: not checked; the arm study sets 0.2).
    speed_profile_r : float, optional
        Lowest acceptable mean correlation of the hand's speed profile with the minimum-jerk one
        (unset: not checked; the arm study sets 0.9).
    spiking_endpoint_error_cm : float, optional
        Largest acceptable mean single-trial endpoint error (cm) of the spiking twin (unset: not
        checked; the arm study sets 1.5).
    curl_deviation_ratio : float, optional
        Largest acceptable ``<model>_curl_deviation_ratio`` (lateral deviation after adaptation /
        at first exposure) of the rate circuit and the ANNs (unset: not checked; the curl
        experiment sets 0.5).
    curl_aftereffect_cm : float, optional
        Smallest acceptable ``<model>_curl_aftereffect_cm`` (positive: opposite to the first
        exposure's deviation) of the rate circuit and the ANNs (the curl experiment sets 0.1).
    bump_recovery_ms, spiking_bump_recovery_ms : float, optional
        Largest acceptable median bump recovery time (ms) of the rate circuit and the ANNs, and
        of the spiking twin (the bump experiment sets 300 and 500).
    maze_curvature_gain : float, optional
        Smallest acceptable ``<model>_maze_curvature_gain`` (share of the curved maze paths' bend the
        hand reproduces) of the rate circuit and the ANNs (the maze experiment sets 0.5).
    maze_via_error_cm : float, optional
        Largest acceptable ``<model>_maze_via_error_cm`` (mean distance of the hand's path from the
        via points, cm) of the rate circuit and the ANNs (the maze experiment sets 1.5).
    spiking_maze_curvature_gain, spiking_maze_via_error_cm : float, optional
        The same bars for the spiking twin, on its single trials (the maze experiment: 0.4 and 2.0 cm,
        its margin as the twin's endpoint bar has one).
    """

    position_r2: float = 0.98
    endpoint_error_cm: float = 1.0
    catch_drift_cm: float = 1.0
    spiking_position_r2: float = 0.9
    peak_speed_error: float | None = None
    speed_profile_r: float | None = None
    spiking_endpoint_error_cm: float | None = None
    curl_deviation_ratio: float | None = None
    curl_aftereffect_cm: float | None = None
    bump_recovery_ms: float | None = None
    spiking_bump_recovery_ms: float | None = None
    maze_curvature_gain: float | None = None
    maze_via_error_cm: float | None = None
    spiking_maze_curvature_gain: float | None = None
    spiking_maze_via_error_cm: float | None = None

    def __post_init__(self) -> None:
        for key in ("maze_curvature_gain", "spiking_maze_curvature_gain"):
            if getattr(self, key) is not None:
                v.number(getattr(self, key), f"quality.{key}")
        for key in ("maze_via_error_cm", "spiking_maze_via_error_cm"):
            if getattr(self, key) is not None:
                v.number(getattr(self, key), f"quality.{key}", low=0, low_open=True)
        for key in ("curl_deviation_ratio", "bump_recovery_ms", "spiking_bump_recovery_ms"):
            if getattr(self, key) is not None:
                v.number(getattr(self, key), f"quality.{key}", low=0, low_open=True)
        if self.curl_aftereffect_cm is not None:
            v.number(self.curl_aftereffect_cm, "quality.curl_aftereffect_cm")
        if self.spiking_endpoint_error_cm is not None:
            v.number(self.spiking_endpoint_error_cm, "quality.spiking_endpoint_error_cm", low=0, low_open=True)
        if self.peak_speed_error is not None:
            v.number(self.peak_speed_error, "quality.peak_speed_error", low=0, low_open=True)
        if self.speed_profile_r is not None:
            v.number(self.speed_profile_r, "quality.speed_profile_r", low=-1, high=1)
        v.number(self.position_r2, "quality.position_r2", high=1)
        v.number(self.spiking_position_r2, "quality.spiking_position_r2", high=1)
        v.number(self.endpoint_error_cm, "quality.endpoint_error_cm", low=0, low_open=True)
        v.number(self.catch_drift_cm, "quality.catch_drift_cm", low=0, low_open=True)

    def bars(self, model: str) -> list[tuple[str, str, float]]:
        """``(metric, "min" | "max", bar)`` for one model prefix (``rate``, ``spiking``, ``ann_<arch>``)."""
        if model == "spiking":
            bars = [("spiking_position_r2", "min", self.spiking_position_r2)]
            if self.spiking_endpoint_error_cm is not None:
                bars.append(("spiking_endpoint_error_cm", "max", self.spiking_endpoint_error_cm))
            if self.spiking_bump_recovery_ms is not None:
                bars.append(("spiking_bump_recovery_ms", "max", self.spiking_bump_recovery_ms))
            if self.spiking_maze_curvature_gain is not None:
                bars.append(("spiking_maze_curvature_gain", "min", self.spiking_maze_curvature_gain))
            if self.spiking_maze_via_error_cm is not None:
                bars.append(("spiking_maze_via_error_cm", "max", self.spiking_maze_via_error_cm))
            return bars
        bars = [
            (f"{model}_position_r2", "min", self.position_r2),
            (f"{model}_endpoint_error_cm", "max", self.endpoint_error_cm),
            (f"{model}_catch_drift_cm", "max", self.catch_drift_cm),
        ]
        if self.peak_speed_error is not None:
            bars.append((f"{model}_peak_speed_error", "max", self.peak_speed_error))
        if self.speed_profile_r is not None:
            bars.append((f"{model}_speed_profile_r", "min", self.speed_profile_r))
        if self.curl_deviation_ratio is not None:
            bars.append((f"{model}_curl_deviation_ratio", "max", self.curl_deviation_ratio))
        if self.maze_curvature_gain is not None:
            bars.append((f"{model}_maze_curvature_gain", "min", self.maze_curvature_gain))
        if self.maze_via_error_cm is not None:
            bars.append((f"{model}_maze_via_error_cm", "max", self.maze_via_error_cm))
        if self.curl_aftereffect_cm is not None:
            bars.append((f"{model}_curl_aftereffect_cm", "min", self.curl_aftereffect_cm))
        if self.bump_recovery_ms is not None:
            bars.append((f"{model}_bump_recovery_ms", "max", self.bump_recovery_ms))
        return bars


@dataclass(frozen=True)
class RateConfig:
    """``[rate]``: the rate network.

    Attributes
    ----------
    transfer : str
        phi: ``"lif_softplus"`` (default; softplus fitted to the ``[lif]`` neuron's
        Siegert rate), ``"lif"`` (the Siegert curve itself), ``"softplus"``,
        ``"relu"``, ``"rectified_tanh"``.
    transfer_gain, transfer_threshold : float, optional
        Gain (Hz/mV) and threshold (mV) of the generic forms (default: from the LIF fit).
    noise_std : float
        Process noise during training (mV, stationary SD of x); evaluation reports
        metrics with and without it.
    dtype : str
        ``"float32"`` (fast) or ``"float64"``.
    rest_rate : float
        Rate of every unit at the initial fixed point (Hz).
    input_std : float
        SD of initial input weights (mV).
    """

    transfer: str = "lif_softplus"
    transfer_gain: float | None = None
    transfer_threshold: float | None = None
    noise_std: float = 1.5
    dtype: str = "float32"
    rest_rate: float = 5.0
    input_std: float = 2.0

    def __post_init__(self) -> None:
        v.choice(self.transfer, "rate.transfer", TRANSFER_NAMES)
        v.choice(self.dtype, "rate.dtype", ("float32", "float64"))
        v.number(self.noise_std, "rate.noise_std", low=0)
        v.number(self.rest_rate, "rate.rest_rate", low=0, low_open=True)
        v.number(self.input_std, "rate.input_std", low=0)
        if self.transfer_gain is not None:
            v.number(self.transfer_gain, "rate.transfer_gain", low=0, low_open=True)


@dataclass(frozen=True)
class AnnConfig:
    """``[ann]``: the unconstrained ANN baselines trained on the same task.

    Attributes
    ----------
    archs : tuple of str
        Architectures to train, from ``"rnn"``, ``"gru"``, ``"lstm"`` (empty: none).
    n_hidden : int
        Hidden units of each.
    max_iterations : int, optional
        Iteration limit per architecture (default: each architecture's recommended
        limit in :data:`cortexsim.ann.DEFAULT_TRAIN`); training also stops once the
        validation R^2 reaches 0.999 or stops improving.
    max_seconds : float, optional
        Wall-clock safety net per architecture (s); off (None) by default.  When it
        stops training, ``ann_<arch>_budget_hit = 1`` says so.
    dtype : str
        ``"float32"`` or ``"float64"``.
    lr_final : float, optional
        Fraction of the learning rate left at ``max_iterations``, for every architecture
        (default: each architecture's in :data:`cortexsim.ann.DEFAULT_TRAIN`, 0.1).  A slower
        decay keeps the ANNs learning to their cap where they are not stopped early
        (``experiments/arm_bump.toml``: 0.5).
    """

    archs: tuple[str, ...] = ("rnn", "gru", "lstm")
    n_hidden: int = 128
    max_iterations: int | None = None
    max_seconds: float | None = None
    dtype: str = "float32"
    lr_final: float | None = None

    def __post_init__(self) -> None:
        for arch in self.archs:
            v.choice(arch, "ann.archs", ANN_ARCHITECTURES)
        v.number(self.n_hidden, "ann.n_hidden", low=1, integer=True)
        if self.max_iterations is not None:
            v.number(self.max_iterations, "ann.max_iterations", low=1, integer=True)
        if self.max_seconds is not None:
            v.number(self.max_seconds, "ann.max_seconds", low=0, low_open=True)
        v.choice(self.dtype, "ann.dtype", ("float32", "float64"))
        if self.lr_final is not None:
            v.number(self.lr_final, "ann.lr_final", low=0, high=1, low_open=True)


MAX_NULL = 10_000
"""Most shuffles per compared pair ``compare.n_null`` accepts (p-values down to 1e-4; more only costs time)."""


@dataclass(frozen=True)
class CompareConfig:
    """``[compare]``: the comparison battery run at the end of the pipeline.

    Attributes
    ----------
    n_pcs : int
        Principal components each activity is reduced to before comparing.
    n_null : int
        Condition shuffles per compared pair (null model; 0 for none, at most :data:`MAX_NULL`).
    data : str
        Optional recorded data (``.npz``, ``.mat``, ``.nwb``), relative to the config
        file; compared like another model.
    variable, layout : str, optional
        ``.npz``/``.mat``: name of the rates array (default ``rates``) and its axes in order
        (default ``"neurons,time,conditions"``).
    align_event : str, optional
        ``.nwb``: the trials column spikes are aligned to (required for NWB, e.g. ``move_onset_time``).
    bin_size : float, optional
        ``.nwb``: PSTH bin width (s; default 0.01).
    window : tuple of float, optional
        ``.nwb``: PSTH start and end (s) relative to the event (default (-0.5, 0.5)).
    smooth_sd : float, optional
        ``.nwb``: s.d. (s) of the Gaussian smoothing the PSTHs (default 0.02; 0: none).
    condition_column : str, optional
        ``.nwb``: the trials column that defines conditions (default ``condition``).

    n_surrogates : int
        TME, CFR and CMPT surrogates per activity for the null p-values of every score and of
        the jPCA ratio (0 for none, at most :data:`MAX_NULL`). p-values cannot go below
        1 / (n + 1): the default 10 resolve p = 0.09 at best, 99 would resolve 0.01
        (``summary.md`` states the floor next to every p-value).  The default stays 10: a part-by-
        part estimate put 99 at about 53 s of the compare stage, but a whole `cortexsim compare`
        with 99 ran for over 30 minutes at load 5-7 and comparing the smoke run with data for over
        10 (2026-12-01); raise it for a real test when the time is there.
    fixed_point_starts : int
        Trajectory-sampled starts per model and constant input for the fixed-point search
        (0: no fixed points). 200 cost about 35 s of the compare stage on the default run (rate
        circuit 4 s, GRU 15 s, LSTM 14 s, RNN 3 s for their 3 inputs each, one core at load 3,
        2026-12-01); on the arm run, where every model's search is over the whole closed loop
        (250-622 dimensions), 174 s one after another (rate 56 s, GRU 38 s, LSTM 54 s, RNN 25 s)
        and 125 s on two threads; evaluating each ANN's gates once per linearisation then brought
        the GRU to 34 s and the LSTM to 47 s.  The searches run on threads next to the rest of
        the battery.
        The issue-15 benchmark (``benchmarks/fixed_points.py``) uses 1,000 per input.
    rotation_control : bool
        Arm runs: also train, from scratch and with feedback, the circuit without inter-population
        recurrence (stage ``control``; :meth:`cortexsim.circuit.Connectome.within_populations`), the
        fair control of Kalidindi et al. (2021), and add it to ``/analysis/rotation_sources``.  Costs
        a second training (it runs in a worker process next to the circuit's with ``--jobs 2``).
    jpca_window : tuple of float
        jPCA's window: start and end (s) relative to movement onset.  Default Churchland et al.'s
        (2012) -50 ms to +150 ms; the window changes the answer, so every jPCA row records it.
    jpca_onset_fraction : float
        On a body, each model's jPCA window is aligned, condition by condition, to its own measured
        movement onset: the step at which its hand's speed, rising to its peak after the go cue,
        reaches this fraction of that peak (recordings are aligned to measured movement too).
        Without a body, and for recorded data, the onset is the scheduled or recorded one.

    The data options left unset take :func:`cortexsim.data.load_neural_data`'s defaults (and stay
    out of the config's TOML text, so runs without them keep their config hash).
    """

    n_pcs: int = 10
    n_null: int = 20
    data: str = ""
    variable: str | None = None
    layout: str | None = None
    align_event: str | None = None
    bin_size: float | None = None
    window: tuple[float, ...] | None = None
    smooth_sd: float | None = None
    condition_column: str | None = None
    n_surrogates: int = 10
    fixed_point_starts: int = 200
    rotation_control: bool = False
    jpca_window: tuple[float, ...] = (-0.05, 0.15)
    jpca_onset_fraction: float = 0.2

    def __post_init__(self) -> None:
        v.number(self.n_pcs, "compare.n_pcs", low=1, integer=True)
        v.number(self.n_null, "compare.n_null", low=0, high=MAX_NULL, integer=True)
        if self.bin_size is not None:
            v.number(self.bin_size, "compare.bin_size", low=0, low_open=True, high=10)
        if self.smooth_sd is not None:
            v.number(self.smooth_sd, "compare.smooth_sd", low=0, high=10)
        if self.window is not None:
            if len(self.window) != 2 or not self.window[0] < self.window[1]:
                raise ConfigError(
                    f"compare.window: {list(self.window)!r}; give [start, stop] in seconds relative to the "
                    "alignment event with start < stop, e.g. [-0.5, 0.5]"
                )
            for i, w in enumerate(self.window):
                v.number(w, f"compare.window[{i}]")
        v.number(self.n_surrogates, "compare.n_surrogates", low=0, high=MAX_NULL, integer=True)
        v.number(self.fixed_point_starts, "compare.fixed_point_starts", low=0, high=100_000, integer=True)
        window = self.jpca_window
        hint = "give [start, stop] in seconds relative to movement onset with start < stop, e.g. [-0.05, 0.15]"
        if isinstance(window, str) or not isinstance(window, (tuple, list)) or len(window) != 2:
            raise ConfigError(f"compare.jpca_window: {window!r}; {hint}")
        for i, w in enumerate(window):
            v.number(w, f"compare.jpca_window[{i}]")
        if not window[0] < window[1]:
            raise ConfigError(f"compare.jpca_window: {list(window)!r}: start is not before stop; {hint}")
        v.number(self.jpca_onset_fraction, "compare.jpca_onset_fraction", low=0, high=1, low_open=True)

    def loader_options(self) -> dict[str, Any]:
        """The options that are set, as keywords of :func:`cortexsim.data.load_neural_data`."""
        names = ("variable", "layout", "align_event", "bin_size", "window", "smooth_sd", "condition_column")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True)
class SpikingConfig:
    """``[spiking]``: the LIF twin of the trained rate network.

    Attributes
    ----------
    enabled : bool
        Run the spiking stage in ``cortexsim run``.
    k : int
        LIF neurons per rate unit.
    trials_per_condition : int
        Independent trials per evaluation condition (PSTH correlations rise with it:
        median r 0.84 with 3 trials, 0.90 with 6 on the default run).
    target : str
        Brian2 code generation: ``"auto"`` (``cpp_standalone`` when a C++ compiler is
        present, else ``numpy``), ``"numpy"``, ``"cython"``, ``"cpp_standalone"``.
        A twin that drives the arm (``effector.kind = "arm26"``) steps the arm from Python every
        task step, so it needs a runtime target: ``"auto"`` then means ``"cython"`` (``"numpy"``
        without a compiler), and ``"cpp_standalone"`` is refused.
    dt : float
        Simulation step (s).
    readout_tau : float
        Arm only: time constant (s) of the causal exponential filter through which PT5B's spikes
        become the rates the muscles read (20 ms, the filter the twin's rates are decoded with;
        :mod:`cortexsim.spiking.arm`).  Shorter is less late and noisier.
    """

    enabled: bool = True
    k: int = 5
    trials_per_condition: int = 7
    target: str = "auto"
    dt: float = 1e-4
    readout_tau: float = 0.02

    def __post_init__(self) -> None:
        v.number(self.k, "spiking.k", low=1, integer=True)
        v.number(self.trials_per_condition, "spiking.trials_per_condition", low=1, integer=True)
        v.choice(self.target, "spiking.target", ("auto", "numpy", "cython", "cpp_standalone"))
        v.number(self.dt, "spiking.dt", low=0, low_open=True, high=1e-3)
        v.number(self.readout_tau, "spiking.readout_tau", low=0, low_open=True, high=1.0)


EFFECTOR_KINDS = ("kinematic", "arm26", "pointmass24")
"""What ``effector.kind`` names: the linear hand readout, or a body in closed loop -- the six-muscle
arm, or MotorNet's point mass with four muscles (the names of ``cortexsim.effector.PLANTS``; a test
keeps the two lists equal)."""


@dataclass(frozen=True)
class EffectorConfig:
    """``[effector]``: what the circuit's readout moves.

    ``kind = "kinematic"`` (the default) reads the hand position out of PT5B linearly;
    ``"arm26"`` makes PT5B drive the six muscles of MotorNet's ``RigidTendonArm26``
    (:mod:`cortexsim.effector`) and ``"pointmass24"`` the four muscles of MotorNet's
    ``ReluPointMass24`` (:mod:`cortexsim.pointmass`) in closed loop, with delayed, noisy
    proprioceptive and visual feedback (:mod:`cortexsim.body`).  Every other key matters only for a
    body; ``start_posture_deg`` only for the arm (the point mass starts at its workspace centre).

    Attributes
    ----------
    kind : str
        ``"kinematic"``, ``"arm26"`` or ``"pointmass24"``.
    substeps : int
        Semi-implicit Euler sub-steps of the arm per task step (5: 2 ms at dt = 10 ms, within
        2.6 mm of a fine reference over large movements; :mod:`cortexsim.effector`).
    start_posture_deg : tuple of float
        Shoulder and elbow angle (deg) at the start of every trial: 45, 90 (hand at (-1.7,
        45.4) cm from the shoulder, MotorNet's default workspace centre).  Targets lie around
        the hand's start position, ``task.reach_distance`` away.
    proprioception_delay : float
        Delay of the muscle length and velocity feedback (s): 0.02 (the short-latency stretch
        response, ~20-25 ms in primate shoulder and elbow muscles, Pruszynski et al. 2008; the
        value MotorNet's examples and Kalidindi et al. 2021 use).
    vision_delay : float
        Delay of the visual feedback of the hand relative to the target (s): 0.07 (visuomotor
        latencies are ~70-100 ms, e.g. Franklin & Wolpert 2011; the Computation-through-Dynamics
        benchmark uses 50 ms).  Both delays must be whole multiples of ``task.dt``.
    proprioception_noise, vision_noise : float
        SD of Gaussian noise on each feedback channel, in the channel's normalised units.
    motor_noise : float
        Signal-dependent motor noise: excitation x (1 + motor_noise xi) (0: off).
    proprioception_targets : tuple of str
        Populations the proprioceptive feedback enters: IT2/3, IT4, IT5A (S1 and posterior
        thalamus project to L2/3, L4 and L5A) and PT5B (VL, strongly throughout L5B);
        ``../shared/ANATOMY.md``, Dura-Bernal et al. 2023.
    vision_targets : tuple of str
        Populations the visual feedback enters: IT5B, PT5B (M2, premotor, projects to L5B).
    feedback_std : float
        SD of the initial feedback input weights (mV per unit feedback): 0.5 (a prototype found
        1 mV makes the loop unstable at initialisation and 0.2 mV learn slowly).
    excitation_floor : float
        Lowest excitation of the sigmoid map ``floor + (1 - floor) sigmoid(W r + b)``.
    rest_excitation : float
        Mean co-contraction the initial readout holds the arm still with at the start posture.
    endpoint_load : tuple of float
        Constant force on the hand (N, x and y) in every trial (0, 0: none); tasks may instead
        give a force per trial and step.
    effort_l2 : float
        Weight of the muscle effort (mean squared activation) in the loss.
    speed_l2 : float
        Weight of the hand's velocity error (in units of the minimum-jerk peak speed) in the
        loss: position error alone rewards an early, slow movement.
    """

    kind: str = "kinematic"
    substeps: int = 5
    start_posture_deg: tuple[float, ...] = (45.0, 90.0)
    proprioception_delay: float = 0.02
    vision_delay: float = 0.07
    proprioception_noise: float = 0.01
    vision_noise: float = 0.01
    motor_noise: float = 0.0
    proprioception_targets: tuple[str, ...] = ("IT2/3", "IT4", "IT5A", "PT5B")
    vision_targets: tuple[str, ...] = ("IT5B", "PT5B")
    feedback_std: float = 0.5
    excitation_floor: float = 0.01
    rest_excitation: float = 0.05
    endpoint_load: tuple[float, ...] = (0.0, 0.0)
    effort_l2: float = 1e-3
    speed_l2: float = 1.0

    def __post_init__(self) -> None:
        v.choice(self.kind, "effector.kind", EFFECTOR_KINDS)
        v.number(self.substeps, "effector.substeps", low=1, high=1000, integer=True)
        for key, size in (("start_posture_deg", 2), ("endpoint_load", 2)):
            if len(getattr(self, key)) != size:
                raise ConfigError(f"effector.{key}: expected {size} numbers, got {list(getattr(self, key))}")
        for key in ("proprioception_delay", "vision_delay", "proprioception_noise", "vision_noise", "motor_noise"):
            v.number(getattr(self, key), f"effector.{key}", low=0)
        for key in ("feedback_std", "effort_l2", "speed_l2"):
            v.number(getattr(self, key), f"effector.{key}", low=0)
        v.number(self.excitation_floor, "effector.excitation_floor", low=0, high=0.5)
        v.number(self.rest_excitation, "effector.rest_excitation", low=0, low_open=True, high=1)
        for key in ("proprioception_targets", "vision_targets"):
            value = getattr(self, key)
            if isinstance(value, str) or not all(isinstance(x, str) for x in value) or not value:
                raise ConfigError(f'effector.{key}: expected a non-empty list of populations such as ["PT5B"]')

    @property
    def has_body(self) -> bool:
        """True when the circuit drives a body (any ``kind`` but ``"kinematic"``)."""
        return self.kind != "kinematic"

    def delay_steps(self, dt: float) -> tuple[int, int]:
        """The proprioceptive and visual delays in steps of ``dt``; ConfigError unless whole multiples."""
        steps = []
        for key in ("proprioception_delay", "vision_delay"):
            value = getattr(self, key)
            k = round(value / dt)
            if abs(k * dt - value) > 1e-9:
                raise ConfigError(
                    f"effector.{key}: {value} s is not a whole number of task steps (task.dt = {dt} s); "
                    f"use e.g. {k * dt:g}"
                )
            steps.append(int(k))
        return steps[0], steps[1]


@dataclass(frozen=True)
class ExportConfig:
    """``[export]``: files ``cortexsim run`` writes at the end, besides the run file.

    Attributes
    ----------
    nwb : bool
        Write ``<run folder>/run.nwb``: the spiking twin as NWB (:func:`cortexsim.export.export_nwb`;
        needs the twin, ``[spiking] enabled``, and the optional extra ``cortexsim[nwb]``).
    heldout_fraction : float, optional
        Share of rate units labelled held out in the NWB Units table (in (0, 1); unset: none).
    """

    nwb: bool = False
    heldout_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.heldout_fraction is not None:
            share = v.number(self.heldout_fraction, "export.heldout_fraction")
            if not 0 < share < 1:
                raise ConfigError(
                    f"export.heldout_fraction: {share!r} is outside the allowed range (0, 1) (exclusive); give the "
                    "share of rate units to hold out, e.g. 0.25, or leave the key out for none"
                )


ADAPT_PARAMS = ("all", "io")
"""What ``perturb.adapt_params`` names: every parameter group, or only the input and readout weights."""

BUMP_TIMES = ("hold", "peak_speed")
"""When ``perturb.bump_times`` may bump the hand: during the delay's hold, or at the reach's peak speed."""


@dataclass(frozen=True)
class PerturbConfig:
    """``[perturb]``: force-field adaptation and mechanical bumps of a trained arm model.

    Both need ``[effector] kind = "arm26"``; each adds the stage ``perturb`` (the circuit and its
    twin) and adds its protocol to every ``ann:<arch>`` stage.  See :mod:`cortexsim.perturb`.

    Attributes
    ----------
    curl : bool
        Run the curl-field protocol: baseline (null field), first exposure, adaptation (training
        continued in the field), null-field probes of the aftereffect, washout.
    curl_field : tuple of tuple of float
        The field ``F = B v`` on the hand (N s/m; rows x, y): ``[[0, 13], [-13, 0]]`` by default, a
        clockwise curl field of the strength MotorNet's curl-field tutorial and many labs use
        (Shadmehr & Mussa-Ivaldi 1994 used a similar viscous field).
    adapt_iterations, washout_iterations : int
        Training iterations in the field and, after it, back in the null field.
    adapt_learning_rate : float
        Adam's step in units of each group's scale during adaptation and washout (constant).
    adapt_params : str
        ``"all"`` (every parameter group learns) or ``"io"`` (only the input and readout weights).
    curve_every : int
        Iterations between the lateral-deviation measurements of the learning curve.
    bumps : bool
        Run the bump protocol: brief force pulses on the hand that the model corrects by feedback.
    bump_force : float
        Pulse amplitude (N).
    bump_duration : float
        Pulse length (s).
    bump_directions : int
        Pulse directions, evenly spaced from 0 rad.
    bump_times : tuple of str
        When each condition is bumped: ``"hold"`` (``bump_hold_time`` after target onset, the hand
        still at the start) and ``"peak_speed"`` (at the unperturbed reach's peak speed).
    bump_hold_time : float
        Delay (s) of the hold bump after target onset (must end before the go cue).
    spiking_trials : int
        Trials per condition of the spiking twin in each perturbed condition (0: rate only).
    train_bump_fraction : float
        Share of the *training* trials that get a random bump (``bump_force`` N for
        ``bump_duration`` s, random direction and onset; :class:`cortexsim.tasks.BumpedTask`),
        so that the models learn to correct them -- the Computation-through-Dynamics benchmark
        bumps half its trials.  0 (the default): none; it changes the training, not only the test.
    """

    curl: bool = False
    curl_field: tuple[tuple[float, ...], ...] = ((0.0, 13.0), (-13.0, 0.0))
    adapt_iterations: int = 200
    washout_iterations: int = 100
    adapt_learning_rate: float = 0.01
    adapt_params: str = "all"
    curve_every: int = 20
    bumps: bool = False
    bump_force: float = 5.0
    bump_duration: float = 0.05
    bump_directions: int = 8
    bump_times: tuple[str, ...] = BUMP_TIMES
    bump_hold_time: float = 0.25
    spiking_trials: int = 2
    train_bump_fraction: float = 0.0

    def __post_init__(self) -> None:
        v.number(self.train_bump_fraction, "perturb.train_bump_fraction", low=0, high=1)
        rows = self.curl_field
        if len(rows) != 2 or any(len(r) != 2 for r in rows):
            raise ConfigError(
                f"perturb.curl_field: expected a 2 x 2 matrix (N s/m) such as [[0.0, 13.0], [-13.0, 0.0]], got {rows!r}"
            )
        for key in ("adapt_iterations", "washout_iterations", "spiking_trials"):
            v.number(getattr(self, key), f"perturb.{key}", low=0, high=100_000, integer=True)
        v.number(self.curve_every, "perturb.curve_every", low=1, high=100_000, integer=True)
        v.number(self.bump_directions, "perturb.bump_directions", low=1, high=360, integer=True)
        v.number(self.adapt_learning_rate, "perturb.adapt_learning_rate", low=0, low_open=True, high=1)
        v.choice(self.adapt_params, "perturb.adapt_params", ADAPT_PARAMS)
        v.number(self.bump_force, "perturb.bump_force", low=0, low_open=True)
        v.number(self.bump_duration, "perturb.bump_duration", low=0, low_open=True, high=1)
        v.number(self.bump_hold_time, "perturb.bump_hold_time", low=0)
        if not self.bump_times or isinstance(self.bump_times, str):
            raise ConfigError('perturb.bump_times: expected a non-empty list such as ["hold", "peak_speed"]')
        for i, when in enumerate(self.bump_times):
            v.choice(when, f"perturb.bump_times[{i}]", BUMP_TIMES)

    @property
    def active(self) -> bool:
        """True when a protocol runs."""
        return self.curl or self.bumps

    @property
    def field(self) -> np.ndarray:
        """The curl field as a (2, 2) array (N s/m)."""
        return np.array(self.curl_field, dtype=float)


SECTIONS: dict[str, type] = {
    "experiment": ExperimentConfig,
    "circuit": CircuitConfig,
    "task": TaskConfig,
    "lif": LIFParams,
    "rate": RateConfig,
    "train": TrainConfig,
    "ann": AnnConfig,
    "spiking": SpikingConfig,
    "compare": CompareConfig,
    "lesion": LesionConfig,
    "quality": QualityConfig,
    "effector": EffectorConfig,
    "export": ExportConfig,
    "perturb": PerturbConfig,
    "stimulation": StimulationConfig,
    "fit": FitConfig,
}
"""The tables of an experiment file and the dataclass that checks each."""


@dataclass(frozen=True)
class Config:
    """A whole experiment configuration: one checked section per table of :data:`SECTIONS`.

    Every field defaults to its section's defaults.  Values are checked here (types,
    ranges, choices); names of populations and projections against the circuit by
    :func:`cortexsim.anatomy.check_config`.

    Attributes
    ----------
    base : Path
        Folder that relative paths in the config (``circuit.spec``, ``compare.data``) are resolved against.
    """

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    lif: LIFParams = field(default_factory=LIFParams)
    rate: RateConfig = field(default_factory=RateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ann: AnnConfig = field(default_factory=AnnConfig)
    spiking: SpikingConfig = field(default_factory=SpikingConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    lesion: LesionConfig = field(default_factory=LesionConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    effector: EffectorConfig = field(default_factory=EffectorConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    stimulation: StimulationConfig = field(default_factory=StimulationConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    base: Path = Path(".")

    @property
    def sections(self) -> dict[str, Any]:
        """Section name -> its dataclass, in the order of :data:`SECTIONS`."""
        return {name: getattr(self, name) for name in SECTIONS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Path = Path("."), where: str = "") -> Config:
        """Check a parsed TOML mapping; missing tables take their defaults."""
        v.check_keys(data, SECTIONS, where or "config")
        try:
            sections = {
                name: section_from_dict(kind, data.get(name, {}), v.join(where, name))
                for name, kind in SECTIONS.items()
            }
        except ConfigError as exc:  # a section's own check names its key without ``where``
            if not where or str(exc).startswith(where):
                raise
            raise ConfigError(f"{where}: {exc}") from None
        return cls(**sections, base=base)

    def to_dict(self) -> dict[str, Any]:
        """Plain data of every section (TOML-able)."""
        return {name: asdict(section) for name, section in self.sections.items()}

    def to_toml(self) -> str:
        """The full configuration, defaults included, as TOML text.

        ``[fit]`` is left out while it names no data, so configs without a fit keep their hash.
        """
        data = self.to_dict()
        if not self.fit.active:
            del data["fit"]
        return tomli_w.dumps(_drop_none(data))

    def with_section(self, name: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (validated)."""
        data = self.to_dict()
        data[name] = {**data[name], **changes}
        return Config.from_dict(data, self.base)

    def spec_path(self) -> Path | None:
        """The spec file ``circuit.spec`` names, resolved against :attr:`base` (None: the default spec)."""
        if self.circuit.spec == "default":
            return None
        path = Path(self.circuit.spec)
        return path if path.is_absolute() else self.base / path


def _drop_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _drop_none(x) for k, x in d.items() if x is not None}
    if isinstance(d, tuple):
        return list(d)
    return d


def load_config(path: str | Path | None = None) -> Config:
    """Read and check an experiment TOML file (``None``: all defaults).

    Raises
    ------
    ConfigError
        Missing or unreadable file, invalid TOML, unknown key, bad value.
    """
    if path is None:
        return Config.from_dict({})
    path = Path(path)
    return config_from_text(read_text_file(path, "config file"), base=path.parent, where=str(path))


def read_text_file(path: str | Path, what: str, key: str = "") -> str:
    """The text of a UTF-8 file the user named (config, spec or sweep file), at most 16 MiB.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for the message (``"config file"``).
    key : str, optional
        The config key that named the file, for the message.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, not a regular file (a folder, FIFO, device, link loop), larger
        than :data:`cortexsim.paths.TEXT_MAX_BYTES`, or not UTF-8 text (binary, latin-1, ...).
    """
    named = f"{key} = {str(path)!r}" if key else str(path)
    data = paths.read_bytes(path, f"{key} =" if key else "", what, error=ConfigError)  # regular, capped, no FIFO
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{named}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8 TOML"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{named}: the {what} is binary, not TOML text (it holds NUL bytes)")
    return text


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """TOML text as a dict: the one place cortexsim parses TOML (configs, specs, sweeps, run files).

    Raises
    ------
    ConfigError
        ``<where>: not valid TOML (<the parser's message with line and column>)``.
    """
    _check_key_depth(text, where)  # before parsing: tomllib takes quadratic time on a very long dotted key
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    except RecursionError:  # arrays or inline tables nested hundreds deep
        raise ConfigError(
            f"{where}: arrays or tables nested too deeply to parse; no key takes more than {TOML_MAX_DEPTH} levels"
        ) from None
    key, depth = _deepest(data)
    if depth > TOML_MAX_DEPTH:
        raise ConfigError(
            f"{where}: {key or 'a value'} is nested more than {TOML_MAX_DEPTH} levels deep (tables, arrays); "
            f"no key takes more"
        )
    return data


TOML_MAX_DEPTH = 12
"""Most levels of nested tables and arrays a TOML file may hold; the deepest key any cortexsim file
uses (a spec's ``[[projections]]``, a sweep's ``[[points]]`` of lists) takes 5."""


_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')
"""A basic or literal TOML string on one line (its dots are not key separators)."""


def _check_key_depth(text: str, where: str) -> None:
    """Refuse a table header or key with more dotted parts than :data:`TOML_MAX_DEPTH` (a cheap scan)."""
    for number, line in enumerate(text.splitlines(), start=1):
        bare = _QUOTED.sub('""', line.strip())
        key = bare.split("]", 1)[0] if bare.startswith("[") else bare.split("=", 1)[0]
        if key.count(".") >= TOML_MAX_DEPTH:
            raise ConfigError(
                f"{where}: line {number}: a key with {key.count('.') + 1} dotted parts; no key takes more than "
                f"{TOML_MAX_DEPTH} levels"
            )


def _deepest(data: Any) -> tuple[str, int]:
    """The dotted key of the most deeply nested table or array in ``data`` and its depth (iterative)."""
    deepest, key = 0, ""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > deepest:
            deepest, key = depth, path
        if depth > TOML_MAX_DEPTH:
            continue  # deep enough to refuse; do not walk the rest of the tower
        items = node.items() if isinstance(node, dict) else ((f"[{i}]", x) for i, x in enumerate(node))
        for k, x in items:
            sub = path + k if isinstance(node, list) else (f"{path}.{k}" if path else str(k))
            stack.append((x, sub, depth + 1))
    return key[:80], deepest


def config_from_text(text: str, base: Path = Path("."), where: str = "config") -> Config:
    """Parse and check config TOML text (as stored in a run file's ``config`` attribute)."""
    data = parse_toml(text, where)
    try:
        return Config.from_dict(data, base)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
