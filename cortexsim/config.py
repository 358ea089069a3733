"""Experiment configuration: TOML files checked into frozen dataclasses.

An experiment file has one table per pipeline stage; every key is optional and
defaults to the value documented here and in ``experiments/center_out.toml``::

    [experiment]   name, seed
    [circuit]      n_units, spec ("default" or a spec TOML path), [circuit.overrides]
    [task]         the delayed center-out reach (:class:`cortexsim.tasks.CenterOutTask`)
    [lif]          the LIF neuron whose transfer function the rate units use
                   (:class:`cortexsim.transfer.LIFParams`)
    [rate]         the rate network (:class:`RateConfig`)
    [train]        the trainer (:class:`cortexsim.train.TrainConfig`)
    [ann]          the ANN baselines (:class:`AnnConfig`)
    [spiking]      the LIF twin (:class:`SpikingConfig`)
    [compare]      the comparison battery (:class:`CompareConfig`)
    [lesion]       lesions of the trained circuit (:class:`cortexsim.lesion.LesionConfig`)
    [quality]      the reach bars of the quality gate (:class:`cortexsim.quality.QualityConfig`)

Unknown keys, wrong types and out-of-range values raise
:class:`~cortexsim.errors.ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from . import _validate as v
from .anatomy import CircuitSpec, load_spec
from .errors import ConfigError
from .lesion import LesionConfig
from .quality import QualityConfig
from .tasks import CenterOutTask, TrialBatch
from .train import TrainConfig
from .transfer import TRANSFERS, LIFParams


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
        return tuple(_coerce(x, inner, f"{where}[{i}]") for i, x in enumerate(value))
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
        v.choice(self.transfer, "rate.transfer", TRANSFERS)
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
    """

    archs: tuple[str, ...] = ("rnn", "gru", "lstm")
    n_hidden: int = 128
    max_iterations: int | None = None
    max_seconds: float | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        from .ann import ARCHITECTURES

        for arch in self.archs:
            v.choice(arch, "ann.archs", ARCHITECTURES)
        v.number(self.n_hidden, "ann.n_hidden", low=1, integer=True)
        if self.max_iterations is not None:
            v.number(self.max_iterations, "ann.max_iterations", low=1, integer=True)
        if self.max_seconds is not None:
            v.number(self.max_seconds, "ann.max_seconds", low=0, low_open=True)
        v.choice(self.dtype, "ann.dtype", ("float32", "float64"))


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
    """

    n_pcs: int = 10
    n_null: int = 20
    data: str = ""

    def __post_init__(self) -> None:
        v.number(self.n_pcs, "compare.n_pcs", low=1, integer=True)
        v.number(self.n_null, "compare.n_null", low=0, high=MAX_NULL, integer=True)


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
    dt : float
        Simulation step (s).
    """

    enabled: bool = True
    k: int = 5
    trials_per_condition: int = 7
    target: str = "auto"
    dt: float = 1e-4

    def __post_init__(self) -> None:
        v.number(self.k, "spiking.k", low=1, integer=True)
        v.number(self.trials_per_condition, "spiking.trials_per_condition", low=1, integer=True)
        v.choice(self.target, "spiking.target", ("auto", "numpy", "cython", "cpp_standalone"))
        v.number(self.dt, "spiking.dt", low=0, low_open=True, high=1e-3)


SECTIONS: dict[str, type] = {
    "experiment": ExperimentConfig, "circuit": CircuitConfig, "task": CenterOutTask,
    "lif": LIFParams, "rate": RateConfig, "train": TrainConfig, "ann": AnnConfig, "spiking": SpikingConfig,
    "compare": CompareConfig, "lesion": LesionConfig, "quality": QualityConfig,
}
"""The tables of an experiment file and the dataclass that checks each."""


@dataclass(frozen=True)
class Config:
    """A whole experiment configuration.

    Attributes
    ----------
    sections : dict of str to dataclass
        One checked dataclass per table of :data:`SECTIONS` (defaults where absent).
    base : Path
        Folder that relative paths in the config are resolved against.
    """

    sections: dict[str, Any]
    base: Path = Path(".")

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Path = Path("."), where: str = "") -> Config:
        """Check a parsed TOML mapping; missing tables take their defaults."""
        v.check_keys(data, SECTIONS, where or "config")
        try:
            sections = {name: section_from_dict(kind, data.get(name, {}), v.join(where, name))
                        for name, kind in SECTIONS.items()}
        except ConfigError as exc:  # a section's own check names its key without ``where``
            if not where or str(exc).startswith(where):
                raise
            raise ConfigError(f"{where}: {exc}") from None
        config = cls(sections, base)
        try:  # validate the spec, its overrides and the lesion now, every name with a did-you-mean hint
            spec = config.circuit_spec()
            check_lesion_names(config.lesion, spec)
            config.lesion.check(spec)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None
        return config

    def to_dict(self) -> dict[str, Any]:
        """Plain data of every section (TOML-able)."""
        return {name: asdict(section) for name, section in self.sections.items()}

    def to_toml(self) -> str:
        """The full configuration, defaults included, as TOML text."""
        return tomli_w.dumps(_drop_none(self.to_dict()))

    def with_section(self, name: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (validated)."""
        data = self.to_dict()
        data[name] = {**data[name], **changes}
        return Config.from_dict(data, self.base)

    def base_spec(self) -> CircuitSpec:
        """The circuit spec named by ``circuit.spec``, before the overrides.

        Raises
        ------
        ConfigError
            Unreadable, non-UTF-8 or invalid spec file, or an input group the task does not feed.
        """
        if self.circuit.spec == "default":
            return load_spec("default")
        path = Path(self.circuit.spec)
        if not path.is_absolute():
            path = self.base / path
        spec = CircuitSpec.from_toml_text(read_text_file(path, "spec file", "circuit.spec"), where=str(path))
        check_input_groups(spec.inputs, f"circuit.spec ({path}): inputs")
        return spec

    def circuit_spec(self) -> CircuitSpec:
        """The circuit spec with this config's overrides applied (every name checked, with hints)."""
        spec = self.base_spec()
        if not self.circuit.overrides:
            return spec
        check_override_names(spec, self.circuit.overrides)
        return spec.with_overrides(self.circuit.overrides)


TASK_INPUT_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(TrialBatch.__dataclass_fields__["input_groups"].default))
"""The circuit input groups the task feeds (``target``, ``go``); a spec must wire each of them."""


def _hint(name: Any, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_population(name: Any, where: str, spec: CircuitSpec) -> str:
    """Raise :class:`ConfigError` unless ``name`` is a population of ``spec`` (with a did-you-mean hint)."""
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected a population name (a string), got {name!r}")
    if name not in spec.names:
        raise ConfigError(f"{where}: no population {name!r}{_hint(name, spec.names)}; populations: "
                          f"{', '.join(spec.names)}")
    return name


def check_projection(key: Any, where: str, spec: CircuitSpec, exact: bool = True) -> str:
    """Raise :class:`ConfigError` unless ``key`` names a projection ``"PRE -> POST"`` of ``spec``.

    Parameters
    ----------
    key : Any
        The projection as written in the config.
    where : str
        Dotted config key, for the message.
    spec : CircuitSpec
    exact : bool
        Require the exact spelling ``"PRE -> POST"`` (overrides match keys exactly; lesions strip spaces).
    """
    if not isinstance(key, str) or key.count("->") != 1 or not all(p.strip() for p in key.split("->")):
        raise ConfigError(f"{where}: {key!r} is not a projection; write \"PRE -> POST\", e.g. \"IT2/3 -> PT5B\"")
    pre, post = (p.strip() for p in key.split("->"))
    for role, name in (("presynaptic", pre), ("postsynaptic", post)):
        if name not in spec.names:
            raise ConfigError(f"{where}: {key!r}: no {role} population {name!r}{_hint(name, spec.names)}; "
                              f"populations: {', '.join(spec.names)}")
    canonical = f"{pre} -> {post}"
    keys = [p.key for p in spec.projections]
    if canonical not in keys:
        raise ConfigError(f"{where}: no projection {key!r} in the spec{_hint(canonical, keys)}; name an existing "
                          f"one as \"PRE -> POST\" (see `cortexsim spec`), or write a full spec file")
    if exact and key != canonical:
        raise ConfigError(f"{where}: write the projection {key!r} exactly as {canonical!r}")
    return canonical


def check_input_groups(groups: Iterable[Any], where: str) -> None:
    """Raise :class:`ConfigError` if a group is not one the task feeds (:data:`TASK_INPUT_GROUPS`)."""
    for group in groups:
        if group not in TASK_INPUT_GROUPS:
            raise ConfigError(f"{where}: no task input group {group!r}{_hint(group, TASK_INPUT_GROUPS)}; the "
                              f"task feeds the groups {', '.join(TASK_INPUT_GROUPS)}")


def check_override_names(spec: CircuitSpec, overrides: Mapping[str, Any], where: str = "circuit.overrides") -> None:
    """Check every population, projection and input group named in ``[circuit.overrides]`` and the values.

    Runs before :meth:`CircuitSpec.with_overrides` so that each message names the override's own key
    (``circuit.overrides.size.PV5B``) and suggests the closest existing name.

    Raises
    ------
    ConfigError
    """
    if not isinstance(overrides, Mapping):
        return  # with_overrides says what is expected
    bounds = {"size": {"low": 0, "low_open": True}, "tau": {"low": 0, "low_open": True},
              "probability": {"low": 0, "high": 1}, "weight": {"low": 0}}
    for attr, limits in bounds.items():
        table = overrides.get(attr)
        if not isinstance(table, Mapping):
            continue
        for name, value in table.items():
            if attr in ("size", "tau"):
                check_population(name, f"{where}.{attr}", spec)
            else:
                check_projection(name, f"{where}.{attr}", spec)
            v.number(value, f"{where}.{attr}.{name}", **limits)
    for attr, check in (("cut", check_projection), ("silence", check_population), ("outputs", check_population)):
        names = overrides.get(attr)
        if isinstance(names, (list, tuple)):
            for name in names:
                check(name, f"{where}.{attr}", spec)
    inputs = overrides.get("inputs")
    if isinstance(inputs, Mapping):
        check_input_groups(inputs, f"{where}.inputs")
        for group, targets in inputs.items():
            if isinstance(targets, (list, tuple)):
                for name in targets:
                    check_population(name, f"{where}.inputs.{group}", spec)
    for key, limits in (("gain", {"low": 0, "low_open": True}), ("reference_slope", {"low": 0, "low_open": True}),
                        ("weight_cv", {"low": 0})):
        if key in overrides:
            v.number(overrides[key], f"{where}.{key}", **limits)


def check_lesion_names(lesion: LesionConfig, spec: CircuitSpec) -> None:
    """Check the populations and projections ``[lesion]`` names against the circuit (did-you-mean hints)."""
    for name in lesion.silence:
        check_population(name, "lesion.silence", spec)
    for key in lesion.cut:
        check_projection(key, "lesion.cut", spec, exact=False)


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
    """The text of a UTF-8 file the user named (config, spec or sweep file).

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
        The file is missing, unreadable, a folder, or not UTF-8 text (binary, latin-1, ...).
    """
    path = Path(path)
    named = f"{key} = {str(path)!r}" if key else str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{named}: cannot read the {what} ({reason})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{named}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8 TOML") from None
    if "\x00" in text:
        raise ConfigError(f"{named}: the {what} is binary, not TOML text (it holds NUL bytes)")
    return text


def config_from_text(text: str, base: Path = Path("."), where: str = "config") -> Config:
    """Parse and check config TOML text (as stored in a run file's ``config`` attribute)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    try:
        return Config.from_dict(data, base)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
