"""Validation: a `cortexsim export --sonata` folder read by BMTK and built in NEST by BMTK's PointNet.

The tests read the export back with libsonata (the Blue Brain Project's reader, a test
dependency).  BMTK and NEST are heavy and not cortexsim dependencies, so this script checks them
in a separate environment::

    python -m venv /tmp/sonata-env
    /tmp/sonata-env/bin/pip install bmtk nest-simulator pandas h5py
    cortexsim circuit --out circuit.h5 && cortexsim export circuit.h5 --sonata net
    /tmp/sonata-env/bin/python validation/sonata_readers.py net [--json out.json]

It needs nothing of cortexsim: the expected synapses come from ``nodes.h5`` / ``edges.h5``
through h5py.  Checks:

1. BMTK's SONATA reader (``bmtk.utils.sonata.File``, with the node and edge types CSVs) finds every
   node with its population, and every edge with its signed weight;
2. BMTK's PointNet builds the network in NEST: one ``threshold_lin_rate_ipn`` per node with its
   population's ``tau``, and one ``rate_connection_delayed`` per edge with the edge's weight and
   delay (each NEST connection matched to its edge by source and target).

Exit status 0 when every check holds, 1 otherwise, 2 when BMTK or NEST cannot be imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def _expected(folder: Path) -> dict:
    import h5py

    with h5py.File(folder / "edges.h5") as f:
        g = f["edges/circuit_to_circuit"]
        edges = {
            "source": g["source_node_id"][()],
            "target": g["target_node_id"][()],
            "weight": g["0/syn_weight"][()],
            "delay": g["0/delay"][()],
        }
    with h5py.File(folder / "nodes.h5") as f:
        edges["node_type_id"] = f["nodes/circuit/node_type_id"][()]
    with open(folder / "node_types.csv") as fh:
        header, *rows = (line.split() for line in fh)
    tau = {int(r[header.index("node_type_id")]): float(r[header.index("tau_ms")]) for r in rows}
    edges["tau_ms"] = np.array([tau[int(t)] for t in edges["node_type_id"]])
    return edges


def check_reader(folder: Path, want: dict) -> dict:
    """BMTK's SONATA reader: nodes with their types, edges with their weights."""
    from bmtk.utils import sonata

    net = sonata.File(
        data_files=[str(folder / "nodes.h5"), str(folder / "edges.h5")],
        data_type_files=[str(folder / "node_types.csv"), str(folder / "edge_types.csv")],
    )
    nodes = net.nodes["circuit"].to_dataframe()
    edges = net.edges["circuit_to_circuit"]
    got = sorted((e.source_node_id, e.target_node_id, e["syn_weight"]) for e in edges)
    mine = sorted(zip(want["source"].tolist(), want["target"].tolist(), want["weight"].tolist()))
    return {
        "bmtk_nodes": len(nodes),
        "bmtk_node_types": int(nodes["pop_name"].nunique()),
        "bmtk_edges": len(got),
        "bmtk_edges_equal": got == mine,
    }


def check_pointnet(folder: Path, want: dict) -> dict:
    """BMTK's PointNet builds the circuit in NEST: models, weights and delays per connection."""
    import nest
    from bmtk.simulator import pointnet

    with tempfile.TemporaryDirectory() as tmp:
        config = {
            "network": str(folder / "circuit_config.json"),
            "run": {"tstop": 1.0, "dt": 0.1},
            "target_simulator": "NEST",
            "output": {"output_dir": tmp, "overwrite_output_dir": True, "quiet_simulator": True},
            "inputs": {},
            "reports": {},
        }
        path = Path(tmp) / "simulation_config.json"
        path.write_text(json.dumps(config))
        here = os.getcwd()
        os.chdir(folder)  # BMTK resolves the circuit's relative paths from the working folder
        try:
            conf = pointnet.Config.from_json(str(path))
            conf.build_env()
            net = pointnet.PointNetwork.from_config(conf)
            pointnet.PointSimulator.from_config(conf, net)
        finally:
            os.chdir(here)
        neurons = nest.GetNodes()
        models = sorted(set(neurons.get("model")))
        conns = nest.GetConnections()
        status = conns.get(["source", "target", "weight", "delay", "synapse_model"])
        gids = np.array(neurons.tolist())  # NEST ids of the nodes, in node order (one population)
        node_of = {int(g): i for i, g in enumerate(gids)}
        got = sorted(
            (node_of[s], node_of[t], w, d)
            for s, t, w, d in zip(status["source"], status["target"], status["weight"], status["delay"])
        )
        mine = sorted(
            zip(want["source"].tolist(), want["target"].tolist(), want["weight"].tolist(), want["delay"].tolist())
        )
        return {
            "nest_version": nest.__version__,
            "nest_neurons": len(neurons),
            "nest_models": models,
            "nest_tau_equal": bool(np.allclose(neurons.get("tau"), want["tau_ms"])),
            "nest_connections": len(got),
            "nest_synapse_models": sorted(set(status["synapse_model"])),
            "nest_connections_equal": len(got) == len(mine)
            and all(a[:2] == b[:2] and np.isclose(a[2], b[2], rtol=1e-12, atol=0) and np.isclose(a[3], b[3])
                    for a, b in zip(got, mine)),
        }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the checks on a SONATA folder; print (and optionally write) the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a folder written by `cortexsim export --sonata`")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    try:
        import bmtk  # noqa: F401
        import nest  # noqa: F401
    except ImportError as exc:
        print(f"sonata_readers: needs bmtk and nest-simulator ({exc})", file=sys.stderr)
        return 2
    folder = args.folder.resolve()
    want = _expected(folder)
    result = {"edges": int(want["source"].size), "nodes": int(want["node_type_id"].size)}
    result.update(check_reader(folder, want))
    result.update(check_pointnet(folder, want))
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    ok = (
        result["bmtk_nodes"] == result["nodes"]
        and result["bmtk_edges_equal"]
        and result["nest_neurons"] == result["nodes"]
        and result["nest_tau_equal"]
        and result["nest_connections_equal"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
