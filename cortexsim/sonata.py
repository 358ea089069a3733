"""The circuit as SONATA nodes and edges, the format BMTK, NEST, NetPyNE and libsonata read.

:func:`export_sonata` reads the connectome of a run file (or of a circuit file from ``cortexsim
circuit``) through :mod:`cortexsim.store` and writes a SONATA circuit (Dai et al. 2020, *PLoS
Comput Biol* 16:e1007696; the Allen Institute's and Blue Brain's ``SONATA_DEVELOPER_GUIDE.md``)
into a folder:

=======================================  ======================================================
``nodes.h5``                             node population ``circuit``: one node per rate unit
                                         (``node_id`` = the unit's index in the run file);
                                         group ``0`` holds ``population_index`` (the unit's index
                                         within its population), ``readout`` and one
                                         ``input_<group>`` flag per task input group (int8 0/1)
``node_types.csv``                       one node type per population: ``pop_name``, ``layer``,
                                         ``ei`` (``e``/``i``), ``cell_class``, ``subtype``,
                                         ``tau_ms``, ``model_type``, ``model_template``,
                                         ``dynamics_params``
``edges.h5``                             edge population ``circuit_to_circuit``: one edge per
                                         synapse, sorted by target then source, with the SONATA
                                         indices both ways; group ``0`` holds ``syn_weight`` (the
                                         signed weight, mV/Hz: trained if the run trained it),
                                         ``delay`` (ms) and ``synapse_index`` (the synapse's row
                                         in ``/circuit/connectome``)
``edge_types.csv``                       one edge type per projection (source population ->
                                         target population)
``circuit_config.json``                  the files, the components folder, and a ``cortexsim``
                                         block (provenance, units, which weights)
``components/``                          the ``dynamics_params`` JSON files NEST and BMTK read
=======================================  ======================================================

Units and what the numbers mean: a node is a *rate unit*, ``tau dx/dt = -x + sum_j W_ij r_j +
...``, ``r = phi(x)`` (Hz), so ``syn_weight`` is ``W_ij`` in mV/Hz (the postsynaptic input per Hz of
presynaptic rate), signed by Dale's law.  The model has no transmission delay; ``delay`` is one
step of the spiking twin's simulation (``[spiking] dt``, 0.1 ms by default), after which the twin's
spikes (and a discrete-time simulator's) reach their target.  There are no positions (the
anatomy has none), so no ``x``, ``y``, ``z``.  The NEST models named (``threshold_lin_rate_ipn``
with ``linear_summation = false``, ``rate_connection_delayed``) have cortexsim's form
``tau dX/dt = -X + sum w phi(X_pre)`` with a threshold-linear ``phi`` in place of the softplus:
a loadable approximation, not the trained dynamics (no inputs, bias or readout are exported).

The folder is written as a whole in a temporary sibling folder and moved into place; a folder
holding anything but a previous export is refused unless ``force``.  h5py is imported here for
these files only: run files are read through :mod:`cortexsim.store` alone.  See ``docs/sonata.md``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import paths, store
from ._version import __version__
from .circuit import Connectome
from .config import Config
from .errors import CortexsimError, RunFileError
from .transfer import fit_lif_softplus, make_transfer

NODE_POPULATION = "circuit"
"""The one node population: every rate unit of the circuit."""
EDGE_POPULATION = "circuit_to_circuit"
"""The one edge population: every synapse, from ``circuit`` to ``circuit``."""
SONATA_VERSION = (0, 1)
"""The specification version the files declare (root attribute ``version``)."""
MAGIC = 0x0A7A
"""The root attribute ``magic`` every SONATA HDF5 file carries."""
MARK = "cortexsim/sonata.py"
"""``circuit_config.json["cortexsim"]["written_by"]``: how a later export knows its own folder."""
FILES = ("nodes.h5", "edges.h5", "node_types.csv", "edge_types.csv", "circuit_config.json")
"""The files of an export (besides ``components/``)."""
COMPONENTS = "components"
NEURON_MODELS = "point_neuron_models"
SYNAPSE_MODELS = "synaptic_models"
NEST_NEURON = "nest:threshold_lin_rate_ipn"
"""The NEST model each node type names: a rate neuron with input noise whose nonlinearity acts on each input."""
NEST_SYNAPSE = "nest:rate_connection_delayed"
"""The NEST connection each edge type names: a rate connection with a delay."""
SYNAPSE_PARAMS = "rate_connection.json"
FIRST_NODE_TYPE = 100
FIRST_EDGE_TYPE = 100
"""Type ids start at 100, as BMTK's builder numbers them."""


@dataclass(frozen=True)
class SonataCircuit:
    """The SONATA tables of a connectome, before anything is written (:func:`sonata_tables`).

    Attributes
    ----------
    node_type_id : ndarray of int64, shape (units,)
    node_attributes : dict of str to ndarray, each shape (units,)
        Group ``0`` of the node population.
    node_types : list of dict
        One row of ``node_types.csv`` per population.
    neuron_params : dict of str to dict
        ``dynamics_params`` file name -> its JSON content.
    source, target : ndarray of int64, shape (synapses,)
        Source and target node of each edge, sorted by target, then source.
    edge_type_id : ndarray of int64, shape (synapses,)
    syn_weight : ndarray of float64, shape (synapses,)
        Signed weight (mV/Hz).
    delay : ndarray of float64, shape (synapses,)
        ms.
    synapse_index : ndarray of int64, shape (synapses,)
        Row of each edge in ``/circuit/connectome``.
    edge_types : list of dict
        One row of ``edge_types.csv`` per projection that has synapses.
    """

    node_type_id: np.ndarray
    node_attributes: dict[str, np.ndarray]
    node_types: list[dict[str, Any]]
    neuron_params: dict[str, dict[str, Any]]
    source: np.ndarray
    target: np.ndarray
    edge_type_id: np.ndarray
    syn_weight: np.ndarray
    delay: np.ndarray
    synapse_index: np.ndarray
    edge_types: list[dict[str, Any]]


@dataclass(frozen=True)
class SonataExport:
    """What :func:`export_sonata` wrote.

    Attributes
    ----------
    folder : Path
    n_nodes, n_edges, n_node_types, n_edge_types : int
    weights : str
        ``"trained"`` (``/circuit/connectome/weight_trained``) or ``"initial"`` (as sampled).
    delay_ms : float
    seconds : float
        Wall time (s).
    """

    folder: Path
    n_nodes: int
    n_edges: int
    n_node_types: int
    n_edge_types: int
    weights: str
    delay_ms: float
    seconds: float


def file_stem(population: str) -> str:
    """A population's name as a file name (``IT2/3`` -> ``IT2_3``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in population)


def _index(ids: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """SONATA's ``node_id_to_ranges`` and ``range_to_edge_id`` of one side of an edge population.

    A range is a maximal run of consecutive edges with the same node; ranges are listed by node
    (then position), and ``node_id_to_ranges[n]`` is the half-open slice of them that belong to
    node ``n`` (``[0, 0]`` when it has no edge).
    """
    ids = np.asarray(ids, np.int64)
    if ids.size == 0:
        return np.zeros((n_nodes, 2), np.uint64), np.zeros((0, 2), np.uint64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    node = ids[starts]
    order = np.lexsort((starts, node))
    ranges = np.stack([starts[order], ends[order]], axis=1).astype(np.uint64)
    first = np.searchsorted(node[order], np.arange(n_nodes), side="left")
    last = np.searchsorted(node[order], np.arange(n_nodes), side="right")
    to_ranges = np.stack([first, last], axis=1)
    to_ranges[first == last] = 0
    return to_ranges.astype(np.uint64), ranges


def _nest_neuron(config: Config) -> dict[str, Any]:
    """The ``dynamics_params`` every node type shares for NEST's ``threshold_lin_rate_ipn`` (mV, Hz/mV).

    ``g`` and ``theta`` are the gain and threshold of the run's transfer function (of the LIF
    neuron's softplus fit when the transfer has none); ``tau`` (ms) is added per population.
    """
    rc = config.rate
    phi = make_transfer(rc.transfer, config.lif, rc.transfer_gain, rc.transfer_threshold)
    gain, threshold = getattr(phi, "gain", None), getattr(phi, "threshold", None)
    if gain is None or threshold is None:
        gain, threshold = fit_lif_softplus(config.lif)[:2]
    return {
        "lambda": 1.0,
        "sigma": 0.0,
        "mu": 0.0,
        "g": float(gain),
        "theta": float(threshold),
        "linear_summation": False,
    }


def sonata_tables(connectome: Connectome, config: Config, delay_ms: float) -> SonataCircuit:
    """The SONATA nodes, edges and types of ``connectome`` (signed weights from its magnitudes and signs).

    Parameters
    ----------
    connectome : Connectome
        The circuit, with the magnitudes to export (trained or as sampled).
    config : Config
        The run's config: the rate transfer whose gain and threshold the NEST parameters take.
    delay_ms : float
        Delay of every edge (ms).

    Returns
    -------
    SonataCircuit
    """
    pops = connectome.populations
    unit_pop = connectome.unit_population
    node_type_id = (FIRST_NODE_TYPE + unit_pop).astype(np.int64)
    starts = np.array([p.start for p in pops], np.int64)
    attrs: dict[str, np.ndarray] = {
        "population_index": np.arange(connectome.n_units, dtype=np.int64) - starts[unit_pop],
        "readout": np.asarray(connectome.output_mask, np.int8),
    }
    for group, mask in connectome.input_masks.items():
        attrs[f"input_{file_stem(group)}"] = np.asarray(mask, np.int8)
    node_types, neuron_params, shared = [], {}, _nest_neuron(config)
    for i, p in enumerate(pops):
        params_file = f"{file_stem(p.name)}.json"
        neuron_params[params_file] = {"tau": 1e3 * p.spec.tau, **shared}
        node_types.append(
            {
                "node_type_id": FIRST_NODE_TYPE + i,
                "model_type": "point_neuron",
                "model_template": NEST_NEURON,
                "dynamics_params": params_file,
                "pop_name": p.name,
                "layer": p.spec.layer,
                "ei": p.spec.cell_class.lower(),
                "cell_class": p.spec.cell_class,
                "subtype": p.spec.subtype,
                "tau_ms": 1e3 * p.spec.tau,
            }
        )
    order = np.lexsort((connectome.pre, connectome.post))  # by target, then source
    source = connectome.pre[order].astype(np.int64)
    target = connectome.post[order].astype(np.int64)
    pair = unit_pop[source] * len(pops) + unit_pop[target]
    used = np.unique(pair)
    edge_type_id = (FIRST_EDGE_TYPE + np.searchsorted(used, pair)).astype(np.int64)
    edge_types = [
        {
            "edge_type_id": FIRST_EDGE_TYPE + j,
            "model_template": NEST_SYNAPSE,
            "dynamics_params": SYNAPSE_PARAMS,
            "source_pop_name": pops[k // len(pops)].name,
            "target_pop_name": pops[k % len(pops)].name,
        }
        for j, k in enumerate(used.tolist())
    ]
    return SonataCircuit(
        node_type_id=node_type_id,
        node_attributes=attrs,
        node_types=node_types,
        neuron_params=neuron_params,
        source=source,
        target=target,
        edge_type_id=edge_type_id,
        syn_weight=connectome.signed_weight[order].astype(np.float64),
        delay=np.full(order.size, float(delay_ms)),
        synapse_index=order.astype(np.int64),
        edge_types=edge_types,
    )


def _is_own(folder: Path) -> bool:
    """Whether ``folder`` holds an export of this module (its ``circuit_config.json`` says so)."""
    config = folder / "circuit_config.json"
    try:
        text = paths.read_bytes(config, what="SONATA circuit config", limit=1 << 20).decode("utf-8")
        return json.loads(text).get("cortexsim", {}).get("written_by") == MARK
    except (CortexsimError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, OSError):
        return False


def check_folder(
    path: str | Path, flag: str = "--sonata", *, inputs: tuple[str | Path, ...] = (), force: bool = False
) -> Path:
    """Refuse a SONATA output folder this export may not write.

    Accepted: a folder that does not exist yet (its parent must), an empty folder, or one holding
    an earlier export of this command (recognised by its ``circuit_config.json``), which is replaced
    whole; any other folder that holds something only with ``force`` (its other files are kept, the
    export's own names replaced).  Never a folder that holds one of ``inputs`` under an export's name.

    Raises
    ------
    CortexsimError
        One line naming ``flag``, the folder and the fix.
    """
    out = paths.check_path(path, flag)
    absolute = Path(os.path.abspath(out))
    if os.path.lexists(out) and not os.path.isdir(out):
        raise CortexsimError(f"{flag} {out}: exists and is not a folder; give a folder for the SONATA files")
    if not os.path.isdir(absolute.parent):
        raise CortexsimError(f"{flag} {out}: the folder {absolute.parent} does not exist; create it first")
    paths.writable_folder(absolute.parent, flag)
    if not os.path.isdir(out):
        return out
    paths.writable_folder(out, flag)
    for given in inputs:
        for name in FILES:
            try:
                same = os.path.samefile(absolute / name, given)
            except OSError:
                same = False
            if same:
                raise CortexsimError(
                    f"{flag} {out}: its {name} is the command's own input {given}; choose another folder"
                )
    if not any(os.scandir(out)) or _is_own(absolute) or force:
        return out
    raise CortexsimError(
        f"{flag} {out}: holds files that cortexsim export did not write; they are left alone: choose another "
        "folder (or an empty one), or pass --force to write the SONATA files into it"
    )


def _read(run_file: Path) -> tuple[Connectome, Config, str, store.RunSummary]:
    """The circuit (trained magnitudes when the run has them), the config, which weights, the provenance."""
    with store.open_run(run_file) as f:
        connectome = store.read_circuit(f, weights="init")  # refuses a file without /circuit
        weights = "initial"
        try:
            connectome, weights = store.read_circuit(f, weights="trained"), "trained"
        except RunFileError:  # a circuit file, or a run before training: the magnitudes as sampled
            pass
        return connectome, store.read_config(f), weights, store.read_run_summary(f)


def export_sonata(run_file: str | Path, out: str | Path, *, force: bool = False) -> SonataExport:
    """Write the circuit of a run or circuit file as SONATA (see the module docstring for the layout).

    Parameters
    ----------
    run_file : str or Path
        A run file, or a circuit file from ``cortexsim circuit``.
    out : str or Path
        The folder to write (see :func:`check_folder`).
    force : bool
        Write into a folder that holds other files.

    Returns
    -------
    SonataExport

    Raises
    ------
    RunFileError
        A missing, foreign or damaged file, or one without ``/circuit``.
    CortexsimError
        An unusable output folder, or it cannot be written.
    """
    t0 = time.perf_counter()
    run_file = Path(run_file)
    out = check_folder(out, inputs=(run_file,), force=force)
    connectome, config, weights, summary = _read(run_file)
    delay_ms = 1e3 * config.spiking.dt
    tables = sonata_tables(connectome, config, delay_ms)
    provenance = {
        "written_by": MARK,
        "cortexsim_version": __version__,
        "source_file": run_file.name,
        "simulated_with": f"cortexsim {summary.cortexsim_version} (git {summary.git_commit})",
        "experiment": config.experiment.name,
        "seed": summary.seed,
        "weights": weights,
        "units": {
            "syn_weight": "mV/Hz: change of the target rate unit's input (mV) per Hz of source rate, signed "
            "(Dale's law)",
            "delay": "ms: one step of the spiking twin's simulation ([spiking] dt); the model has no "
            "transmission delay",
            "tau_ms": "ms: time constant of the population's rate units",
        },
        "nodes": "one node per rate unit of the circuit (node_id = unit index in the run file); the spiking "
        "twin's K LIF neurons per unit are not nodes here (its spikes are in the run file's /spikes)",
        "nest": f"{NEST_NEURON} and {NEST_SYNAPSE}: the rate form tau dX/dt = -X + sum w phi(X_pre) with a "
        "threshold-linear phi (gain g, threshold theta) in place of cortexsim's transfer; no inputs, bias or "
        "readout are exported",
    }
    _write(out, tables, connectome.n_units, provenance)
    return SonataExport(
        folder=out,
        n_nodes=connectome.n_units,
        n_edges=int(tables.source.size),
        n_node_types=len(tables.node_types),
        n_edge_types=len(tables.edge_types),
        weights=weights,
        delay_ms=delay_ms,
        seconds=time.perf_counter() - t0,
    )


def _csv(rows: list[dict[str, Any]]) -> str:
    """SONATA's CSV dialect: space-separated, quoted where needed, UNIX line ends."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter=" ", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _root_attrs(f: Any) -> None:
    f.attrs["version"] = np.array(SONATA_VERSION, np.uint32)
    f.attrs["magic"] = np.uint32(MAGIC)


def _write_nodes(path: Path, tables: SonataCircuit) -> None:
    import h5py  # only the SONATA files; run files go through cortexsim.store

    n = tables.node_type_id.size
    with h5py.File(path, "w") as f:
        _root_attrs(f)
        g = f.create_group(f"nodes/{NODE_POPULATION}")
        g.create_dataset("node_type_id", data=tables.node_type_id)
        g.create_dataset("node_id", data=np.arange(n, dtype=np.int64))
        g.create_dataset("node_group_id", data=np.zeros(n, np.int64))
        g.create_dataset("node_group_index", data=np.arange(n, dtype=np.int64))
        group = g.create_group("0")
        for name, values in tables.node_attributes.items():
            group.create_dataset(name, data=values)


def _write_edges(path: Path, tables: SonataCircuit, n_nodes: int) -> None:
    import h5py  # only the SONATA files; run files go through cortexsim.store

    m = tables.source.size
    with h5py.File(path, "w") as f:
        _root_attrs(f)
        g = f.create_group(f"edges/{EDGE_POPULATION}")
        src = g.create_dataset("source_node_id", data=tables.source)
        src.attrs["node_population"] = NODE_POPULATION
        trg = g.create_dataset("target_node_id", data=tables.target)
        trg.attrs["node_population"] = NODE_POPULATION
        g.create_dataset("edge_type_id", data=tables.edge_type_id)
        g.create_dataset("edge_group_id", data=np.zeros(m, np.int64))
        g.create_dataset("edge_group_index", data=np.arange(m, dtype=np.int64))
        group = g.create_group("0")
        group.create_dataset("syn_weight", data=tables.syn_weight)
        group.create_dataset("delay", data=tables.delay)
        group.create_dataset("synapse_index", data=tables.synapse_index)
        for side, ids in (("source_to_target", tables.source), ("target_to_source", tables.target)):
            to_ranges, ranges = _index(ids, n_nodes)
            index = g.create_group(f"indices/{side}")
            index.create_dataset("node_id_to_ranges", data=to_ranges)
            index["node_id_to_range"] = index["node_id_to_ranges"]  # BMTK's name for it: a link, not a copy
            index.create_dataset("range_to_edge_id", data=ranges)


def _circuit_config(provenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR", "$COMPONENTS_DIR": f"$BASE_DIR/{COMPONENTS}"},
        "components": {
            "point_neuron_models_dir": f"$COMPONENTS_DIR/{NEURON_MODELS}",
            "synaptic_models_dir": f"$COMPONENTS_DIR/{SYNAPSE_MODELS}",
        },
        "networks": {
            "nodes": [
                {
                    "nodes_file": "$NETWORK_DIR/nodes.h5",
                    "node_types_file": "$NETWORK_DIR/node_types.csv",
                    "populations": {NODE_POPULATION: {"type": "point_neuron"}},
                }
            ],
            "edges": [
                {
                    "edges_file": "$NETWORK_DIR/edges.h5",
                    "edge_types_file": "$NETWORK_DIR/edge_types.csv",
                    "populations": {EDGE_POPULATION: {"type": "chemical"}},
                }
            ],
        },
        "cortexsim": provenance,
    }


def _write(out: Path, tables: SonataCircuit, n_nodes: int, provenance: dict[str, Any]) -> None:
    """Every file into a temporary sibling folder, then into ``out`` (renamed whole when ``out`` is new)."""
    absolute = Path(os.path.abspath(out))
    tmp = absolute.with_name(f".{absolute.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / COMPONENTS / NEURON_MODELS).mkdir(parents=True)
        (tmp / COMPONENTS / SYNAPSE_MODELS).mkdir()
        for name, params in tables.neuron_params.items():
            (tmp / COMPONENTS / NEURON_MODELS / name).write_text(json.dumps(params, indent=1) + "\n")
        (tmp / COMPONENTS / SYNAPSE_MODELS / SYNAPSE_PARAMS).write_text("{}\n")
        _write_nodes(tmp / "nodes.h5", tables)
        _write_edges(tmp / "edges.h5", tables, n_nodes)
        (tmp / "node_types.csv").write_text(_csv(tables.node_types))
        (tmp / "edge_types.csv").write_text(_csv(tables.edge_types) if tables.edge_types else "edge_type_id\n")
        (tmp / "circuit_config.json").write_text(json.dumps(_circuit_config(provenance), indent=2) + "\n")
        if not os.path.isdir(absolute):
            os.replace(tmp, absolute)
            return
        own = _is_own(absolute)
        target = absolute / COMPONENTS
        if own and target.is_dir():
            shutil.rmtree(target)
        if not target.exists():
            os.replace(tmp / COMPONENTS, target)
        else:  # --force into a folder with its own components/: ours go next to its files
            for sub in (NEURON_MODELS, SYNAPSE_MODELS):
                (target / sub).mkdir(parents=True, exist_ok=True)
                for item in (tmp / COMPONENTS / sub).iterdir():
                    os.replace(item, target / sub / item.name)
        for name in FILES:  # circuit_config.json last: the folder is recognised once complete
            os.replace(tmp / name, absolute / name)
    except OSError as exc:
        raise CortexsimError(f"--sonata {out}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "EDGE_POPULATION",
    "NODE_POPULATION",
    "SonataCircuit",
    "SonataExport",
    "check_folder",
    "export_sonata",
    "file_stem",
    "sonata_tables",
]
