"""Every writer of the run file has a reader that returns what was written (pipeline-written files)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from cortexsim import assembly, store
from cortexsim.errors import RunFileError


def test_task_reads_back_as_the_evaluation_set(smoke_run):
    with store.open_run(smoke_run / "run.h5") as f:
        config = store.read_config(f)
        batch = store.read_task(f)
    expected = assembly.make_task(config).evaluation_set()
    for name in ("inputs", "targets", "mask"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(expected, name))
    assert batch.dt == expected.dt and batch.input_names == expected.input_names
    assert batch.params.keys() == expected.params.keys()
    for key, value in expected.params.items():
        np.testing.assert_array_equal(batch.params[key], value)
    assert batch.params["catch"].dtype == bool


def test_trained_rate_network_reads_back_and_reproduces_the_stored_activity(smoke_run):
    with store.open_run(smoke_run / "run.h5") as f:
        config = store.read_config(f)
        trained = store.read_trained_rate(f)
        batch = store.read_task(f)
        stored = f["rate/rates"][()]
    net = assembly.trained_rate_network(config, trained)
    np.testing.assert_array_equal(net.simulate(batch).activity, stored)


def test_ann_reads_back(smoke_run):
    with store.open_run(smoke_run / "run.h5") as f:
        record = store.read_ann(f, "gru")
        hidden = f["ann/gru/hidden"][()]
        with pytest.raises(RunFileError, match="no ANN baseline 'transformer'"):
            store.read_ann(f, "transformer")
    np.testing.assert_array_equal(record.hidden, hidden)
    assert record.arch == "gru" and record.attrs["n_hidden"] > 0 and "w_out" in record.params


def test_a_run_without_a_trained_rate_says_so(smoke_run, tmp_path):
    path = tmp_path / "run.h5"
    shutil.copy(smoke_run / "run.h5", path)
    with h5py.File(path, "r+") as f:
        del f["rate"]
        del f["stages/rate"]
        del f["checksums"]  # as a file written before /checksums: with them, the deletion itself is refused
    with store.open_run(path) as f, pytest.raises(RunFileError, match="no /rate"):
        store.read_trained_rate(f)
