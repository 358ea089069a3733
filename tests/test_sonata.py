"""The circuit as SONATA (issue 31): read back by libsonata, the specification's required fields, bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from cortexsim import sonata
from cortexsim.cli import main


@pytest.fixture(scope="module")
def default_circuit(tmp_path_factory) -> tuple[Path, Path]:
    """The default circuit (500 units) from `cortexsim circuit`, exported with `cortexsim export --sonata`."""
    folder = tmp_path_factory.mktemp("sonata")
    circuit = folder / "circuit.h5"
    assert main(["circuit", "--out", str(circuit)]) == 0
    out = folder / "net"
    assert main(["export", str(circuit), "--sonata", str(out)]) == 0
    return circuit, out


def _circuit(path: Path, weights: str = "weight_init") -> dict:
    """The run file's circuit, read with h5py as any user would."""
    with h5py.File(path) as f:
        c = f["circuit/connectome"]
        pops = [
            {k: (v.decode() if isinstance(v, bytes) else v) for k, v in zip(row.dtype.names, row.tolist())}
            for row in f["circuit/populations"][()]
        ]
        return {
            "pre": c["pre"][()],
            "post": c["post"][()],
            "signed": c["sign"][()] * c[weights][()],
            "pops": pops,
            "n_units": int(f["circuit"].attrs["n_units"]),
        }


def _types(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=" "))


def test_libsonata_reads_the_default_circuit_with_every_synapse_and_weight(default_circuit):
    libsonata = pytest.importorskip("libsonata")
    circuit, out = default_circuit
    run = _circuit(circuit)
    config = libsonata.CircuitConfig.from_file(str(out / "circuit_config.json"))
    assert config.config_status == libsonata.CircuitConfigStatus.complete
    assert config.node_populations == {"circuit"} and config.edge_populations == {"circuit_to_circuit"}
    assert config.node_population_properties("circuit").type == "point_neuron"
    nodes = config.node_population("circuit")
    edges = config.edge_population("circuit_to_circuit")
    assert nodes.size == run["n_units"] == 500
    assert edges.size == run["pre"].size > 5000  # every synapse, once
    assert (edges.source, edges.target) == ("circuit", "circuit")
    every = edges.select_all()
    source = np.asarray(edges.source_nodes(every))
    target = np.asarray(edges.target_nodes(every))
    weight = np.asarray(edges.get_attribute("syn_weight", every))
    mine = sorted(zip(run["post"].tolist(), run["pre"].tolist(), run["signed"].tolist()))
    theirs = sorted(zip(target.tolist(), source.tolist(), weight.tolist()))
    assert theirs == mine  # the same synapses with the same signed weights, bit for bit
    index = np.asarray(edges.get_attribute("synapse_index", every))
    np.testing.assert_array_equal(source, run["pre"][index])
    np.testing.assert_array_equal(weight, run["signed"][index])
    np.testing.assert_array_equal(edges.get_attribute("delay", every), 0.1)  # [spiking] dt, ms
    # libsonata's index lookups (afferent and efferent edges of a node) agree with the arrays
    for node in (0, 17, 250, 499):
        np.testing.assert_array_equal(np.sort(edges.afferent_edges([node]).flatten()), np.flatnonzero(target == node))
        np.testing.assert_array_equal(np.sort(edges.efferent_edges([node]).flatten()), np.flatnonzero(source == node))
    # each node's population, layer and class through its node type (libsonata reads no types CSV)
    types = {int(row["node_type_id"]): row for row in _types(out / "node_types.csv")}
    with h5py.File(out / "nodes.h5") as f:
        type_of = f["nodes/circuit/node_type_id"][()]
    local = np.asarray(nodes.get_attribute("population_index", nodes.select_all()))
    for p in run["pops"]:
        rows = [types[int(t)] for t in type_of[p["start"] : p["stop"]]]
        assert {r["pop_name"] for r in rows} == {p["name"]} and {r["layer"] for r in rows} == {p["layer"]}
        assert {r["ei"] for r in rows} == {p["cell_class"].lower()} and {r["subtype"] for r in rows} == {p["subtype"]}
        np.testing.assert_array_equal(local[p["start"] : p["stop"]], np.arange(p["stop"] - p["start"]))


def test_the_indices_are_those_libsonata_writes(default_circuit, tmp_path):
    libsonata = pytest.importorskip("libsonata")
    _, out = default_circuit
    theirs = tmp_path / "edges.h5"
    theirs.write_bytes((out / "edges.h5").read_bytes())
    with h5py.File(theirs, "a") as f:
        del f["edges/circuit_to_circuit/indices"]
    libsonata.EdgePopulation.write_indices(str(theirs), "circuit_to_circuit", 500, 500)
    with h5py.File(theirs) as a, h5py.File(out / "edges.h5") as b:
        for side in ("source_to_target", "target_to_source"):
            for name in ("node_id_to_ranges", "range_to_edge_id"):
                key = f"edges/circuit_to_circuit/indices/{side}/{name}"
                np.testing.assert_array_equal(a[key][()], b[key][()], err_msg=key)
            link = f"edges/circuit_to_circuit/indices/{side}/node_id_to_range"  # BMTK's spelling
            np.testing.assert_array_equal(b[link][()], b[link + "s"][()])


def test_the_files_hold_the_specifications_required_fields(default_circuit):
    """What the SONATA developer guide requires, checked without any SONATA reader."""
    circuit, out = default_circuit
    run = _circuit(circuit)
    for name in ("nodes.h5", "edges.h5"):
        with h5py.File(out / name) as f:
            assert f.attrs["magic"] == 0x0A7A and f.attrs["magic"].dtype == np.uint32
            assert list(f.attrs["version"]) == [0, 1] and f.attrs["version"].dtype == np.uint32
    with h5py.File(out / "nodes.h5") as f:
        g = f["nodes/circuit"]
        n = run["n_units"]
        for key in ("node_type_id", "node_id", "node_group_id", "node_group_index"):
            assert g[key].shape == (n,) and g[key].dtype.kind == "i", key
        np.testing.assert_array_equal(g["node_id"][()], np.arange(n))
        assert set(g["node_group_id"][()]) == {0} and all(g[f"0/{k}"].shape == (n,) for k in g["0"])
        used = set(g["node_type_id"][()].tolist())
    types = _types(out / "node_types.csv")
    assert {int(r["node_type_id"]) for r in types} == used
    assert {r["model_type"] for r in types} == {"point_neuron"} and all(r["model_template"] for r in types)
    for row in types:  # every dynamics_params file exists where circuit_config.json says
        assert json.loads((out / "components/point_neuron_models" / row["dynamics_params"]).read_text())["tau"] > 0
    with h5py.File(out / "edges.h5") as f:
        g = f["edges/circuit_to_circuit"]
        m = run["pre"].size
        for key in ("source_node_id", "target_node_id", "edge_type_id", "edge_group_id", "edge_group_index"):
            assert g[key].shape == (m,), key
        assert g["source_node_id"].attrs["node_population"] == "circuit"
        assert g["target_node_id"].attrs["node_population"] == "circuit"
        assert np.all(np.diff(g["target_node_id"][()]) >= 0)  # sorted by target
        edge_types = set(g["edge_type_id"][()].tolist())
    rows = _types(out / "edge_types.csv")
    assert {int(r["edge_type_id"]) for r in rows} == edge_types
    config = json.loads((out / "circuit_config.json").read_text())
    assert config["cortexsim"]["weights"] == "initial" and "mV/Hz" in config["cortexsim"]["units"]["syn_weight"]
    assert config["networks"]["nodes"][0]["nodes_file"] == "$NETWORK_DIR/nodes.h5"


def test_a_trained_run_exports_its_trained_weights_next_to_its_nwb(smoke_run, tmp_path, capsys):
    run_file = smoke_run / "run.h5"
    out = tmp_path / "net"
    assert main(["export", str(run_file), "--nwb", str(tmp_path / "twin.nwb"), "--sonata", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "twin.nwb" in printed and "SONATA circuit, 60 nodes" in printed and "trained weights" in printed
    run = _circuit(run_file, "weight_trained")
    with h5py.File(out / "edges.h5") as f:
        g = f["edges/circuit_to_circuit"]
        index = g["0/synapse_index"][()]
        np.testing.assert_array_equal(g["0/syn_weight"][()], run["signed"][index])
        np.testing.assert_array_equal(g["source_node_id"][()], run["pre"][index])
    assert not np.array_equal(run["signed"], _circuit(run_file)["signed"])  # training changed them
    config = json.loads((out / "circuit_config.json").read_text())
    assert config["cortexsim"]["weights"] == "trained" and config["cortexsim"]["seed"] == 1
    # again into the same folder: its own export is replaced, nothing else appears
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["export", str(run_file), "--sonata", str(out)]) == 0
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_sonata_tables_keep_dales_signs_and_type_each_projection(default_spec):
    from cortexsim.circuit import build_connectome
    from cortexsim.config import Config

    connectome = build_connectome(default_spec, 300, np.random.default_rng(3))
    tables = sonata.sonata_tables(connectome, Config(), delay_ms=0.5)
    excitatory = connectome.sign[tables.source] > 0
    assert (tables.syn_weight[excitatory] > 0).all() and (tables.syn_weight[~excitatory] < 0).all()
    pops = connectome.unit_population
    by_type = {row["edge_type_id"]: (row["source_pop_name"], row["target_pop_name"]) for row in tables.edge_types}
    names = [p.name for p in connectome.populations]
    for t, s, e in zip(tables.edge_type_id[::97], tables.source[::97], tables.target[::97]):
        assert by_type[int(t)] == (names[pops[s]], names[pops[e]])
    assert (tables.delay == 0.5).all()


def test_bad_input_is_one_line_and_writes_nothing(default_circuit, make_bad_file, tmp_path, capsys):
    circuit, _ = default_circuit
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder\n")
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    cases = [
        (["export", str(circuit)], "give --nwb FILE.nwb"),
        (["export", str(tmp_path / "none.h5"), "--sonata", str(tmp_path / "x")], "no such file"),
        (["export", str(make_bad_file("foreign")), "--sonata", str(tmp_path / "x")], "not a cortexsim run file"),
        (["export", str(circuit), "--sonata", str(a_file)], "is not a folder"),
        (["export", str(circuit), "--sonata", str(tmp_path / "no" / "x")], "does not exist"),
        (["export", str(circuit), "--sonata", str(foreign)], "did not write"),
        (["export", str(circuit), "--sonata", str(tmp_path / "x"), "--seed", "3"], "give --nwb too"),
        (["export", str(circuit), "--nwb", str(tmp_path / "x.nwb"), "--sonata", str(tmp_path / "x")], "/spiking"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cortexsim: error: ") and needle in err[0], (argv, err)
        assert not (tmp_path / "x").exists() and not (tmp_path / "x.nwb").exists()
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"] and a_file.read_text() == "not a folder\n"
    assert main(["export", str(circuit), "--sonata", str(foreign), "--force"]) == 0  # beside the user's file
    assert (foreign / "notes.txt").read_text() == "mine\n" and (foreign / "edges.h5").exists()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            assert main(["export", str(circuit), "--sonata", str(locked / "x")]) == 2
            assert "cannot write" in capsys.readouterr().err
        finally:
            locked.chmod(0o755)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
