"""Shared fixtures: the default spec, sampled connectomes and run files (good and bad)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cortexsim import assembly, pipeline
from cortexsim.anatomy import default_m1_spec
from cortexsim.circuit import build_connectome
from cortexsim.config import Config


@pytest.fixture(scope="session")
def default_spec():
    """The default M1 spec (frozen; never modified by tests)."""
    return default_m1_spec()


@pytest.fixture(scope="session")
def large_connectome(default_spec):
    """The default circuit at N = 10,000 (about 3.8 M synapses, < 1 s to build)."""
    return build_connectome(default_spec, 10_000, np.random.default_rng(20_240_611))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke experiment run as a user runs it, without --out (from a fresh working folder).

    Shared by the tests of the pipeline, reproducibility and interrupts; copy before changing it.
    """
    from tiny import SMOKE

    from cortexsim import cli

    cwd = tmp_path_factory.mktemp("work")
    here = os.getcwd()
    os.chdir(cwd)
    try:
        assert cli.main(["run", str(SMOKE)]) == 0
    finally:
        os.chdir(here)
    (out,) = (cwd / "results" / "smoke").iterdir()
    return out


@pytest.fixture(scope="session")
def reference_run_file(tmp_path_factory) -> Path:
    """A real run file (N = 200, seed 5) written through the pipeline; copy it before changing it."""
    config = Config.from_dict({"experiment": {"seed": 5}, "circuit": {"n_units": 200}})
    path = tmp_path_factory.mktemp("reference") / "reference.h5"
    pipeline.write_circuit_file(config, assembly.build_circuit(config), path)
    return path


@pytest.fixture
def run_file(tmp_path, reference_run_file) -> Path:
    """A private copy of the reference run file."""
    path = tmp_path / "run.h5"
    shutil.copyfile(reference_run_file, path)
    return path


@pytest.fixture
def make_bad_file(tmp_path, reference_run_file):
    """``make(kind)`` writes a file that is not a readable run file and returns its path.

    Kinds: ``foreign`` (HDF5 without schema_version), ``truncated`` (a real run file cut to
    half its bytes), ``text``, ``newer_schema`` (schema_version 99), ``missing`` (no file).
    """

    def make(kind: str) -> Path:
        path = tmp_path / f"bad_{kind}.h5"
        if kind == "foreign":
            with h5py.File(path, "w") as f:
                f.create_dataset("data", data=np.arange(10))
                f.attrs["creator"] = "some other program"
        elif kind == "truncated":
            data = reference_run_file.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif kind == "text":
            path.write_text("this is not an HDF5 file\n")
        elif kind == "newer_schema":
            shutil.copyfile(reference_run_file, path)
            with h5py.File(path, "r+") as f:
                f.attrs["schema_version"] = 99
        elif kind == "missing":
            pass
        else:  # pragma: no cover - a typo in a test
            raise ValueError(kind)
        return path

    return make
