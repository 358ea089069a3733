"""The experiment pipeline: config -> circuit -> models -> run file and figures.

Each stage is a function of the config and what earlier stages wrote; the
command line (``cortexsim run``) and tests call :func:`run_experiment`.
Experiments hold no science: they only choose a config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import plots, store
from .circuit import Connectome, build_connectome
from .config import Config


def seeded_rng(config: Config, stream: str) -> np.random.Generator:
    """Independent generator for one named use of the experiment seed.

    Different streams ("circuit", "trials", "init", "noise") never share draws, so
    changing, say, the number of training trials leaves the circuit unchanged.
    """
    key = [ord(c) for c in stream]
    return np.random.default_rng([config.experiment.seed, *key])


def build_circuit(config: Config) -> Connectome:
    """The connectome of ``config`` (deterministic for its seed)."""
    return build_connectome(config.circuit_spec(), config.circuit.n_units, seeded_rng(config, "circuit"))


def write_circuit_file(config: Config, connectome: Connectome, path: str | Path) -> Path:
    """Write a fresh run file holding the provenance and ``/circuit`` (atomically)."""
    path = Path(path)
    with store.open_for_update(path, store.provenance(config.to_toml(), config.experiment.seed)) as f:
        f.attrs["description"] = (
            "cortexsim run file: a six-layer M1 circuit and what was simulated on it. "
            "Every dataset has 'units', 'dims' and 'description' attributes."
        )
        store.write_circuit(f, connectome)
    return path


def run_experiment(config: Config, out_dir: str | Path, log: Callable[[str], None] = print) -> Path:
    """Run every stage of the pipeline that exists and write ``out_dir/run.h5`` and figures.

    Parameters
    ----------
    config : Config
    out_dir : str or Path
        Output folder; receives ``run.h5`` and ``figures/``.
    log : callable
        Receives progress lines.

    Returns
    -------
    Path
        The run file.
    """
    out_dir = Path(out_dir)
    run_file = out_dir / "run.h5"
    t0 = time.perf_counter()
    connectome = build_circuit(config)
    log(f"circuit: {connectome!r} ({time.perf_counter() - t0:.2f} s)")
    write_circuit_file(config, connectome, run_file)
    plots.save(plots.plot_connectivity(connectome), out_dir / "figures" / "connectivity.png")
    log(f"wrote {run_file} and {out_dir / 'figures'}")
    return run_file
