"""The six-layer primary-motor-cortex circuit, specified once from anatomy.

A :class:`CircuitSpec` lists populations (layer, cell class, subtype, relative
size, time constant), population-to-population projections (connection
probability and relative unitary weight), which populations receive each task
input channel and which are read out.  It holds no random numbers and no unit
indices: :func:`cortexsim.circuit.build_connectome` turns it into synapses.

:func:`default_m1_spec` builds the default mouse M1 column.  Its numbers come from

* Dura-Bernal S. et al. (2023) Multiscale model of primary motor cortex circuits
  predicts in vivo cell-type-specific, behavioral state-dependent dynamics.
  *Cell Reports* 42:112574 -- population sizes, E->E probabilities and weights
  (from Weiler 2008, Anderson 2010, Kiritani 2012, Yamawaki & Shepherd 2015),
  E->I probabilities and weights (Apicella 2011), inhibition within layer groups,
  long-range input targets.
* Rudy B. et al. (2011) *Dev Neurobiol* 71:45; Tremblay R. et al. (2016) *Neuron*
  91:260 -- interneuron class shares used to add VIP2/3 and an L1 population.
* Pfeffer C.K. et al. (2013) *Nat Neurosci* 16:1068 -- VIP inhibits SST strongly,
  PV and pyramidal cells weakly (the disinhibitory VIP -> SST -> E motif).

Values marked *estimate* in the code are our reading of the literature, not a
measured number (see ``shared/ANATOMY.md`` and ``docs/model.md``).

Specs are written to and read from TOML (:meth:`CircuitSpec.to_toml`,
:meth:`CircuitSpec.from_toml`) and changed per experiment without editing code
(:meth:`CircuitSpec.with_overrides`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from . import _validate as v
from .config import Config, EffectorConfig, LesionConfig, parse_toml, read_text_file
from .errors import ConfigError
from .stim_config import StimulationConfig

LAYERS: tuple[str, ...] = ("L1", "L2/3", "L4", "L5A", "L5B", "L6")
"""Cortical layers from pia to white matter."""

SUBTYPES: dict[str, tuple[str, ...]] = {
    "E": ("IT", "PT", "CT"),
    "I": ("PV", "SST", "VIP", "NGF"),
}
"""Allowed subtypes per cell class: intratelencephalic, pyramidal-tract and
corticothalamic excitatory cells; parvalbumin, somatostatin, VIP and neurogliaform
inhibitory cells."""


@dataclass(frozen=True)
class PopulationSpec:
    """One population of the circuit.

    Parameters
    ----------
    name : str
        Unique name, e.g. ``"PT5B"``.
    layer : str
        One of :data:`LAYERS`.
    cell_class : str
        ``"E"`` (excitatory) or ``"I"`` (inhibitory); fixes the sign of every
        outgoing synapse (Dale's law).
    subtype : str
        One of :data:`SUBTYPES` for the class.
    size : float
        Relative size (the neuron count in a reference column); only ratios matter.
    tau : float
        Time constant of the population's rate units, in seconds.
    """

    name: str
    layer: str
    cell_class: str
    subtype: str
    size: float
    tau: float

    def __post_init__(self) -> None:
        where = f"populations.{self.name}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"populations: every population needs a non-empty name, got {self.name!r}")
        v.choice(self.layer, f"{where}.layer", LAYERS)
        v.choice(self.cell_class, f"{where}.cell_class", SUBTYPES)
        v.choice(self.subtype, f"{where}.subtype", SUBTYPES[self.cell_class])
        v.number(self.size, f"{where}.size", low=0, low_open=True)
        v.number(self.tau, f"{where}.tau", low=0, low_open=True)


@dataclass(frozen=True)
class ProjectionSpec:
    """Connections from population ``pre`` onto population ``post``.

    Parameters
    ----------
    pre, post : str
        Population names.
    probability : float
        Probability that a given (pre, post) unit pair is connected, in [0, 1].
    weight : float
        Relative unitary strength (>= 0); the sign comes from ``pre``'s class.
    """

    pre: str
    post: str
    probability: float
    weight: float

    @property
    def key(self) -> str:
        """``"PRE -> POST"``, the name used in overrides."""
        return f"{self.pre} -> {self.post}"

    def __post_init__(self) -> None:
        v.number(self.probability, f"projections.{self.key}.probability", low=0, high=1)
        v.number(self.weight, f"projections.{self.key}.weight", low=0)


@dataclass(frozen=True)
class CircuitSpec:
    """Everything anatomy says about the circuit; validated on construction.

    Parameters
    ----------
    populations : tuple of PopulationSpec
        In the order their units are laid out.
    projections : tuple of ProjectionSpec
        At most one per (pre, post) pair.
    inputs : dict of str to tuple of str
        Task input group (e.g. ``"target"``, ``"go"``) -> populations receiving it.
    outputs : tuple of str
        Excitatory populations the motor readout reads from (``("PT5B",)``).
    silenced : tuple of str
        Populations lesioned structurally: they keep their units but send no
        synapses, receive no task input and are left out of the readout.
    gain : float
        Target spectral radius of the effective recurrent matrix ``W * slope``
        (dimensionless); see :func:`cortexsim.circuit.build_connectome`.
    reference_slope : float
        Slope of the rate transfer function at the operating point, in Hz/mV,
        used with ``gain`` to set the weight scale (mV/Hz).
    weight_cv : float
        Coefficient of variation of unitary weights within a projection
        (lognormal; Lefort et al. 2009 report heavy-tailed EPSPs).
    """

    populations: tuple[PopulationSpec, ...]
    projections: tuple[ProjectionSpec, ...]
    inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("PT5B",)
    silenced: tuple[str, ...] = ()
    gain: float = 1.0
    reference_slope: float = 3.5
    weight_cv: float = 0.5

    def __post_init__(self) -> None:
        names = [p.name for p in self.populations]
        if not names:
            raise ConfigError("populations: the circuit needs at least one population")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"populations: duplicate population names {dupes}; names must be unique")
        seen: set[tuple[str, str]] = set()
        for proj in self.projections:
            v.choice(proj.pre, f"projections.{proj.key}.pre", names)
            v.choice(proj.post, f"projections.{proj.key}.post", names)
            if (proj.pre, proj.post) in seen:
                raise ConfigError(f"projections.{proj.key}: listed twice; give each pair once")
            seen.add((proj.pre, proj.post))
        for group, targets in self.inputs.items():
            v.names(list(targets), f"inputs.{group}", names)
        v.names(list(self.outputs), "outputs", names)
        if not self.outputs:
            raise ConfigError("outputs: name at least one population to read the motor output from")
        for name in self.outputs:
            if self.population(name).cell_class != "E":
                raise ConfigError(f"outputs: {name!r} is inhibitory; the readout must read excitatory cells")
        v.names(list(self.silenced), "silenced", names)
        if all(name in self.silenced for name in self.outputs):
            raise ConfigError(
                f"silenced: every output population ({', '.join(self.outputs)}) is silenced, so the readout "
                f"has nothing to read; silence other populations or change outputs"
            )
        v.number(self.gain, "gain", low=0, low_open=True)
        v.number(self.reference_slope, "reference_slope", low=0, low_open=True)
        v.number(self.weight_cv, "weight_cv", low=0)

    # -- lookup ---------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Population names in layout order."""
        return tuple(p.name for p in self.populations)

    def population(self, name: str) -> PopulationSpec:
        """The population called ``name``."""
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise ConfigError(f"unknown population {name!r}; known: {', '.join(self.names)}")

    def projection(self, pre: str, post: str) -> ProjectionSpec | None:
        """The projection ``pre -> post``, or None when there is none."""
        for proj in self.projections:
            if proj.pre == pre and proj.post == post:
                return proj
        return None

    def __repr__(self) -> str:
        return (
            f"<CircuitSpec: {len(self.populations)} populations in "
            f"{len({p.layer for p in self.populations})} layers, "
            f"{len(self.projections)} projections, inputs {sorted(self.inputs)}, "
            f"outputs {list(self.outputs)}>"
        )

    # -- plain data and TOML ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (TOML- and JSON-able)."""
        return {
            "gain": self.gain,
            "reference_slope": self.reference_slope,
            "weight_cv": self.weight_cv,
            "outputs": list(self.outputs),
            "silenced": list(self.silenced),
            "inputs": {k: list(t) for k, t in self.inputs.items()},
            "populations": [asdict(p) for p in self.populations],
            "projections": [asdict(p) for p in self.projections],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "spec") -> CircuitSpec:
        """Build a spec from plain data, rejecting unknown keys."""
        v.check_keys(data, [f for f in cls.__dataclass_fields__], where)
        for key in ("populations", "projections"):
            if key not in data:
                raise ConfigError(f"{v.join(where, key)}: missing; a spec needs {key}")
        pops = []
        for i, row in enumerate(data["populations"]):
            v.check_keys(row, PopulationSpec.__dataclass_fields__, f"{where}.populations[{i}]")
            missing = set(PopulationSpec.__dataclass_fields__) - set(row)
            if missing:
                raise ConfigError(f"{where}.populations[{i}]: missing keys {sorted(missing)}")
            pops.append(PopulationSpec(**row))
        projs = []
        for i, row in enumerate(data["projections"]):
            v.check_keys(row, ProjectionSpec.__dataclass_fields__, f"{where}.projections[{i}]")
            missing = set(ProjectionSpec.__dataclass_fields__) - set(row)
            if missing:
                raise ConfigError(f"{where}.projections[{i}]: missing keys {sorted(missing)}")
            projs.append(ProjectionSpec(**row))
        kwargs = {k: data[k] for k in ("gain", "reference_slope", "weight_cv") if k in data}
        return cls(
            populations=tuple(pops),
            projections=tuple(projs),
            inputs={k: tuple(t) for k, t in data.get("inputs", {}).items()},
            outputs=tuple(data.get("outputs", ("PT5B",))),
            silenced=tuple(data.get("silenced", ())),
            **kwargs,
        )

    def to_toml(self) -> str:
        """The spec as TOML text (read back with :meth:`from_toml_text`)."""
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml_text(cls, text: str, where: str = "spec") -> CircuitSpec:
        """Parse a spec from TOML text."""
        return cls.from_dict(parse_toml(text, where), where)

    @classmethod
    def from_toml(cls, path: str | Path) -> CircuitSpec:
        """Read a spec from a TOML file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the spec file ({exc.strerror})") from None
        return cls.from_toml_text(text, where=str(path))

    # -- per-experiment changes -----------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any], where: str = "circuit.overrides") -> CircuitSpec:
        """A copy with per-experiment changes applied.

        Parameters
        ----------
        overrides : mapping
            Any of

            ``size``  ``{population: relative size}``
            ``tau``  ``{population: seconds}``
            ``probability``, ``weight``  ``{"PRE -> POST": value}`` for existing projections
            ``cut``  ``["PRE -> POST", ...]`` projections to remove
            ``silence``  ``[population, ...]`` populations to lesion (see ``silenced``)
            ``inputs``  ``{group: [population, ...]}`` replaces that group's targets
            ``outputs``  ``[population, ...]``
            ``gain``, ``reference_slope``, ``weight_cv``  numbers

        Returns
        -------
        CircuitSpec
            A new, validated spec; ``self`` is unchanged.
        """
        allowed = [
            "size",
            "tau",
            "probability",
            "weight",
            "cut",
            "silence",
            "inputs",
            "outputs",
            "gain",
            "reference_slope",
            "weight_cv",
        ]
        v.check_keys(overrides, allowed, where)
        examples = {
            "size": '{ "PV5B" = 300 }',
            "tau": '{ "PV5B" = 0.02 }',
            "probability": '{ "IT2/3 -> PT5B" = 0.05 }',
            "weight": '{ "IT2/3 -> PT5B" = 1.2 }',
            "inputs": '{ go = ["IT4", "PT5B"] }',
        }
        for attr, example in examples.items():
            if attr in overrides and not isinstance(overrides[attr], Mapping):
                raise ConfigError(f"{where}.{attr}: expected a table such as {example}, got {overrides[attr]!r}")
        pops = list(self.populations)
        for attr in ("size", "tau"):
            for name, value in overrides.get(attr, {}).items():
                v.choice(name, f"{where}.{attr}", self.names)
                i = self.names.index(name)
                pops[i] = replace(pops[i], **{attr: value})
        projs = {p.key: p for p in self.projections}
        for attr in ("probability", "weight"):
            for key, value in overrides.get(attr, {}).items():
                if key not in projs:
                    raise ConfigError(
                        f"{where}.{attr}: no projection {key!r} in the spec; name an existing one "
                        f'as "PRE -> POST" (see `cortexsim spec`), or write a full spec file'
                    )
                projs[key] = replace(projs[key], **{attr: value})
        for key in _name_list(overrides.get("cut", []), f"{where}.cut"):
            if key not in projs:
                raise ConfigError(f'{where}.cut: no projection {key!r} to cut; use "PRE -> POST"')
            del projs[key]
        inputs = dict(self.inputs)
        for group, targets in overrides.get("inputs", {}).items():
            inputs[group] = tuple(v.names(targets, f"{where}.inputs.{group}", self.names))
        silence = v.names(overrides.get("silence", []), f"{where}.silence", self.names)
        silenced = tuple(dict.fromkeys(self.silenced + silence))
        scalars = {k: overrides[k] for k in ("gain", "reference_slope", "weight_cv") if k in overrides}
        return replace(
            self,
            populations=tuple(pops),
            projections=tuple(projs.values()),
            inputs=inputs,
            outputs=_name_list(overrides.get("outputs", self.outputs), f"{where}.outputs"),
            silenced=silenced,
            **scalars,
        )


def _name_list(value: Any, where: str) -> tuple[str, ...]:
    """Check that ``value`` is a list of strings (not a bare string)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f'{where}: expected a list of names such as ["PT5B"], got {value!r}')
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: expected names (strings), got {item!r}")
    return v.unique(value, where)


# ---------------------------------------------------------------------------
# The default mouse M1 column
# ---------------------------------------------------------------------------

#: Time constants of rate units per subtype, in seconds.  Rate-unit time constants
#: stand for the slowest of membrane and synaptic integration; interneurons
#: (PV fastest) integrate faster than pyramidal cells.  *estimate*
DEFAULT_TAU: dict[str, float] = {
    "IT": 0.05,
    "PT": 0.05,
    "CT": 0.05,
    "PV": 0.025,
    "SST": 0.04,
    "VIP": 0.04,
    "NGF": 0.04,
}

# (name, layer, class, subtype, count in a 300 um column; Dura-Bernal et al. 2023).
# VIP2/3 takes 25 % of the L2/3 interneurons from PV2/3 and SST2/3 in proportion and
# NGF1 is ~1.5 % of all cells (Rudy 2011; Tremblay 2016) -- *estimate*.
_L23_INTERNEURONS = 258 + 127
_VIP23 = 0.25 * _L23_INTERNEURONS
_POPULATIONS = (
    ("NGF1", "L1", "I", "NGF", 150.0),
    ("IT2/3", "L2/3", "E", "IT", 1730.0),
    ("PV2/3", "L2/3", "I", "PV", 258.0 - _VIP23 * 258 / _L23_INTERNEURONS),
    ("SST2/3", "L2/3", "I", "SST", 127.0 - _VIP23 * 127 / _L23_INTERNEURONS),
    ("VIP2/3", "L2/3", "I", "VIP", _VIP23),
    ("IT4", "L4", "E", "IT", 768.0),
    ("IT5A", "L5A", "E", "IT", 645.0),
    ("PV5A", "L5A", "I", "PV", 115.0),
    ("SST5A", "L5A", "I", "SST", 57.0),
    ("IT5B", "L5B", "E", "IT", 1435.0),
    ("PT5B", "L5B", "E", "PT", 1435.0),
    ("PV5B", "L5B", "I", "PV", 511.0),
    ("SST5B", "L5B", "I", "SST", 252.0),
    ("IT6", "L6", "E", "IT", 1236.0),
    ("CT6", "L6", "E", "CT", 1236.0),
    ("PV6", "L6", "I", "PV", 184.0),
    ("SST6", "L6", "I", "SST", 91.0),
)

# E -> E probability (weight) by post row and pre layer column (L2/3, L4, L5A, L5B, L6).
# Dura-Bernal et al. 2023, from Weiler 2008, Anderson 2010, Kiritani 2012,
# Yamawaki & Shepherd 2015.  Presynaptic cells: IT for IT rows, IT + PT for the
# PT5B row, IT + CT for the L6 rows -- so PT never projects to IT (Kiritani 2012).
_EE_COLUMNS = ("L2/3", "L4", "L5A", "L5B", "L6")
_EE = {
    "IT2/3": ((0.079, 0.71), (0.133, 0.71), (0.093, 0.67), (0.019, 0.60), (0.003, 0.43)),
    "IT4": ((0.041, 0.80), (0.085, 0.74), (0.068, 0.69), (0.033, 0.55), (0.010, 0.45)),
    "IT5A": ((0.122, 0.87), (0.047, 0.84), (0.054, 0.69), (0.047, 0.48), (0.012, 0.45)),
    "IT5B": ((0.022, 0.91), (0.028, 0.90), (0.030, 0.77), (0.053, 0.57), (0.032, 0.49)),
    "PT5B": ((0.097, 0.90), (0.040, 0.89), (0.036, 0.75), (0.084, 0.58), (0.039, 0.50)),
    "IT6": ((0.006, 0.50), (0.004, 0.56), (0.012, 0.54), (0.030, 0.54), (0.045, 0.50)),
    "CT6": ((0.004, 0.50), (0.003, 0.56), (0.008, 0.54), (0.019, 0.54), (0.028, 0.50)),
}
_IT_BY_LAYER = {"L2/3": "IT2/3", "L4": "IT4", "L5A": "IT5A", "L5B": "IT5B", "L6": "IT6"}

# E -> I (Apicella 2011 via Dura-Bernal 2023) by layer group.  Rows: post group;
# columns: pre group (L2/3+4, L5, L6); (PV probability, SST probability, weight).
_GROUPS = ("L2/3+4", "L5", "L6")
_E_BY_GROUP = {"L2/3+4": ("IT2/3", "IT4"), "L5": ("IT5A", "IT5B", "PT5B"), "L6": ("IT6", "CT6")}
_EI_PROB = {  # post group -> [(pv, sst) per pre group]
    "L2/3+4": ((0.078, 0.078), (0.040, 0.040), (0.006, 0.006)),
    "L5": ((0.003, 0.117), (0.117, 0.003), (0.025, 0.025)),
    "L6": ((0.009, 0.009), (0.024, 0.024), (0.068, 0.068)),
}
_EI_WEIGHT = {"L2/3+4": (0.728, 0.583, 0.463), "L5": (0.861, 0.600, 0.460), "L6": (0.526, 0.508, 0.518)}
_I_BY_GROUP = {"L2/3+4": ("PV2/3", "SST2/3"), "L5": ("PV5A", "SST5A", "PV5B", "SST5B"), "L6": ("PV6", "SST6")}

# Inhibitory -> all, within the layer group only.  Mean pair probability *estimate*,
# weights onto E and onto I (Dura-Bernal 2023).
_II = {"L2/3+4": (0.19, 0.8, 1.2), "L5": (0.14, 0.8, 1.0), "L6": (0.22, 1.0, 1.0)}

# Task inputs (long-range projections in Dura-Bernal 2023): the target is a
# preparatory, premotor-like input (M2 -> L2/3, L5B); the go cue a thalamic
# trigger (VL -> IT4, upper L2/3, PT5B).
_INPUTS = {"target": ("IT2/3", "IT5B", "PT5B"), "go": ("IT4", "IT2/3", "PT5B")}


def _default_projections() -> list[ProjectionSpec]:
    projs: list[ProjectionSpec] = []
    # E -> E
    for post, row in _EE.items():
        for layer, (p, w) in zip(_EE_COLUMNS, row):
            pres = [_IT_BY_LAYER[layer]]
            if post == "PT5B" and layer == "L5B":
                pres.append("PT5B")
            if post in ("IT6", "CT6") and layer == "L6":
                pres.append("CT6")
            projs += [ProjectionSpec(pre, post, p, w) for pre in pres]
    # E -> PV, SST (and VIP2/3 like the other L2/3 interneurons, *estimate*)
    for post_group, row in _EI_PROB.items():
        posts = _I_BY_GROUP[post_group] + (("VIP2/3",) if post_group == "L2/3+4" else ())
        for pre_group, (p_pv, p_sst), w in zip(_GROUPS, row, _EI_WEIGHT[post_group]):
            for post in posts:
                p = p_pv if post.startswith("PV") else p_sst
                projs += [ProjectionSpec(pre, post, p, w) for pre in _E_BY_GROUP[pre_group]]
    # L1 neurogliaform cells are driven weakly by L2/3 pyramids *estimate*
    projs.append(ProjectionSpec("IT2/3", "NGF1", 0.04, 0.5))
    # PV and SST -> everything in their layer group
    for group, (p, w_e, w_i) in _II.items():
        posts = _E_BY_GROUP[group] + _I_BY_GROUP[group] + (("VIP2/3",) if group == "L2/3+4" else ())
        for pre in _I_BY_GROUP[group]:
            for post in posts:
                w = w_e if post in _E_BY_GROUP[group] else w_i
                projs.append(ProjectionSpec(pre, post, p, w))
    # VIP (Pfeffer 2013): strong onto SST, weak onto PV and pyramidal cells *estimate*
    projs += [
        ProjectionSpec("VIP2/3", "SST2/3", 0.35, 1.2),
        ProjectionSpec("VIP2/3", "PV2/3", 0.05, 0.4),
        ProjectionSpec("VIP2/3", "IT2/3", 0.05, 0.4),
    ]
    # NGF1 -> L2/3 (volume-like slow inhibition of upper layers) *estimate*
    for post in ("IT2/3", "PV2/3", "SST2/3", "VIP2/3", "NGF1"):
        projs.append(ProjectionSpec("NGF1", post, 0.10, 0.8 if post == "IT2/3" else 1.0))
    return projs


def default_m1_spec() -> CircuitSpec:
    """The default six-layer mouse M1 column (17 populations).

    Sizes, E->E, E->I and I->all tables follow Dura-Bernal et al. (2023, *Cell
    Reports* 42:112574); VIP2/3 and NGF1 are added after Rudy et al. (2011) and
    Pfeffer et al. (2013) so that every layer is populated.  The target input
    reaches IT2/3, IT5B and PT5B; the go cue IT4, IT2/3 and PT5B; the motor
    output is read from PT5B only.

    Returns
    -------
    CircuitSpec
    """
    pops = tuple(
        PopulationSpec(name, layer, cls, sub, size, DEFAULT_TAU[sub]) for name, layer, cls, sub, size in _POPULATIONS
    )
    return CircuitSpec(
        populations=pops, projections=tuple(_default_projections()), inputs=dict(_INPUTS), outputs=("PT5B",)
    )


def load_spec(source: str | Path, base: Path | None = None) -> CircuitSpec:
    """The spec named by a config: ``"default"`` or a TOML file (relative to ``base``)."""
    if source == "default":
        return default_m1_spec()
    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    return CircuitSpec.from_toml(path)


TASK_INPUT_GROUPS: tuple[str, ...] = ("target", "go")
"""The circuit input groups the task feeds (:class:`cortexsim.tasks.TrialBatch` ``input_groups``); a spec must wire
each of them."""

FEEDBACK_INPUT_GROUPS: tuple[str, ...] = ("proprioception", "vision")
"""The input groups the arm's sensory feedback enters by (``[effector] kind = "arm26"``); their targets are
``effector.proprioception_targets`` and ``effector.vision_targets``."""

INPUT_GROUPS: tuple[str, ...] = TASK_INPUT_GROUPS + FEEDBACK_INPUT_GROUPS
"""Every input group a spec may wire."""


def _hint(name: Any, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_population(name: Any, where: str, spec: CircuitSpec) -> str:
    """Raise :class:`ConfigError` unless ``name`` is a population of ``spec`` (with a did-you-mean hint)."""
    if not isinstance(name, str):
        raise ConfigError(f"{where}: expected a population name (a string), got {name!r}")
    if name not in spec.names:
        raise ConfigError(
            f"{where}: no population {name!r}{_hint(name, spec.names)}; populations: {', '.join(spec.names)}"
        )
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
        raise ConfigError(f'{where}: {key!r} is not a projection; write "PRE -> POST", e.g. "IT2/3 -> PT5B"')
    pre, post = (p.strip() for p in key.split("->"))
    for role, name in (("presynaptic", pre), ("postsynaptic", post)):
        if name not in spec.names:
            raise ConfigError(
                f"{where}: {key!r}: no {role} population {name!r}{_hint(name, spec.names)}; "
                f"populations: {', '.join(spec.names)}"
            )
    canonical = f"{pre} -> {post}"
    keys = [p.key for p in spec.projections]
    if canonical not in keys:
        raise ConfigError(
            f"{where}: no projection {key!r} in the spec{_hint(canonical, keys)}; name an existing "
            f'one as "PRE -> POST" (see `cortexsim spec`), or write a full spec file'
        )
    if exact and key != canonical:
        raise ConfigError(f"{where}: write the projection {key!r} exactly as {canonical!r}")
    return canonical


def check_input_groups(groups: Iterable[Any], where: str) -> None:
    """Raise :class:`ConfigError` if a group is not one the task or the arm feeds (:data:`INPUT_GROUPS`)."""
    for group in groups:
        if group not in INPUT_GROUPS:
            raise ConfigError(
                f"{where}: no input group {group!r}{_hint(group, INPUT_GROUPS)}; the task feeds the "
                f"groups {', '.join(TASK_INPUT_GROUPS)} and the arm {', '.join(FEEDBACK_INPUT_GROUPS)}"
            )


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
    bounds = {
        "size": {"low": 0, "low_open": True},
        "tau": {"low": 0, "low_open": True},
        "probability": {"low": 0, "high": 1},
        "weight": {"low": 0},
    }
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
    for key, limits in (
        ("gain", {"low": 0, "low_open": True}),
        ("reference_slope", {"low": 0, "low_open": True}),
        ("weight_cv", {"low": 0}),
    ):
        if key in overrides:
            v.number(overrides[key], f"{where}.{key}", **limits)


def check_lesion_names(lesion: LesionConfig, spec: CircuitSpec) -> None:
    """Check the populations and projections ``[lesion]`` names against the circuit (did-you-mean hints)."""
    for name in lesion.silence:
        check_population(name, "lesion.silence", spec)
    for key in lesion.cut:
        check_projection(key, "lesion.cut", spec, exact=False)


def check_stimulation_names(stimulation: StimulationConfig, spec: CircuitSpec) -> None:
    """Check every ``target`` of ``[stimulation]``: a population, a layer or a cell type of ``spec`` (did-you-mean)."""
    known = sorted({*spec.names, *(p.layer for p in spec.populations), *(p.subtype for p in spec.populations)})
    for protocol in stimulation.protocols:
        for name in protocol.target:
            if name not in known:
                raise ConfigError(
                    f"stimulation.protocols.{protocol.name}.target: {name!r} is no population, layer or cell type "
                    f"of the circuit{_hint(name, known)}; known: {', '.join(known)}"
                )


def circuit_spec(config: Config) -> CircuitSpec:
    """The circuit spec of ``config``: ``circuit.spec`` with ``[circuit.overrides]`` applied.

    Every name the overrides give is checked first, so that each message names the
    override's own key and suggests the closest existing name.

    Raises
    ------
    ConfigError
        Unreadable, non-UTF-8 or invalid spec file, an input group the task does not feed, an
        unknown population or projection, or a bad override value.
    """
    path = config.spec_path()
    if path is None:
        spec = default_m1_spec()
    else:
        spec = CircuitSpec.from_toml_text(read_text_file(path, "spec file", "circuit.spec"), where=str(path))
        check_input_groups(spec.inputs, f"circuit.spec ({path}): inputs")
    if config.circuit.overrides:
        check_override_names(spec, config.circuit.overrides)
        spec = spec.with_overrides(config.circuit.overrides)
    if config.effector.has_body:
        spec = with_feedback_inputs(spec, config.effector)
    return spec


def with_feedback_inputs(spec: CircuitSpec, effector: EffectorConfig) -> CircuitSpec:
    """``spec`` with the arm's feedback input groups wired to the populations ``[effector]`` names.

    Raises
    ------
    ConfigError
        A target population the spec does not have (with a did-you-mean hint).
    """
    inputs = dict(spec.inputs)
    for group, key in (("proprioception", "proprioception_targets"), ("vision", "vision_targets")):
        targets = getattr(effector, key)
        for name in targets:
            check_population(name, f"effector.{key}", spec)
        inputs[group] = tuple(targets)
    return replace(spec, inputs=inputs)


def check_config(config: Config, where: str = "") -> CircuitSpec:
    """Check every name ``config`` gives against its circuit; returns the circuit spec.

    Checks the spec file, ``[circuit.overrides]`` and ``[lesion]`` (the value checks
    ran when the config was read).

    Parameters
    ----------
    config : Config
    where : str, optional
        Prefix of every message (the config file's name).

    Raises
    ------
    ConfigError
        One line naming the key, the unknown name and the closest existing one.
    """
    try:
        spec = circuit_spec(config)
        check_lesion_names(config.lesion, spec)
        check_stimulation_names(config.stimulation, spec)
        if config.effector.has_body:
            config.effector.delay_steps(config.task.dt)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}" if where and not str(exc).startswith(where) else str(exc)) from None
    return spec
