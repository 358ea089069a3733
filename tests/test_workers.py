"""Worker processes (cortexsim.workers): results, log lines, errors, Ctrl-C and termination."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from cortexsim.errors import ConfigError
from cortexsim.workers import WorkerError, WorkerPool, available_cores


def _double(x, log):
    log(f"doubling {x}")
    log("done")
    return {"x": x, "twice": 2 * x, "pid": os.getpid()}


def _raise_config_error(log):
    raise ConfigError("[ann] n_hidden = -1: use a positive whole number")


def _die(code, log):
    os._exit(code)


def _sleep(seconds, log):
    time.sleep(seconds)
    return seconds


def test_results_and_log_lines_come_back_from_another_process():
    lines = []
    with WorkerPool(2, lines.append) as pool:
        for i in range(3):  # more jobs than processes: they queue
            pool.submit(f"job{i}", _double, i)
        results = [pool.result(f"job{i}") for i in range(3)]
    assert [r["twice"] for r, _ in results] == [0, 2, 4]
    assert all(r["pid"] != os.getpid() for r, _ in results)
    assert all(seconds >= 0 for _, seconds in results)
    assert sorted(lines) == sorted([f"[job{i}] doubling {i}" for i in range(3)] + [f"[job{i}] done" for i in range(3)])


def test_a_job_exception_is_raised_again_in_the_parent_as_itself():
    with WorkerPool(1, lambda line: None) as pool:
        pool.submit("bad", _raise_config_error)
        with pytest.raises(ConfigError, match=r"n_hidden = -1"):
            pool.result("bad")
        pool.submit("good", _double, 5)  # the worker survives a failed job
        assert pool.result("good")[0]["twice"] == 10


def test_a_worker_that_dies_is_reported_not_waited_for():
    with WorkerPool(1, lambda line: None) as pool:
        pool.submit("dies", _die, 3)
        with pytest.raises(WorkerError, match=r"'dies'.*exit 3"):
            pool.result("dies")


def test_workers_ignore_ctrl_c_and_close_terminates_them():
    with WorkerPool(2, lambda line: None) as pool:
        pids = pool.pids
        assert len(pids) == 2
        pool.submit("short", _sleep, 1.0)
        pool.submit("long", _sleep, 600.0)
        time.sleep(0.5)
        for pid in pids:
            os.kill(pid, signal.SIGINT)  # what a Ctrl-C in the terminal sends the whole process group
        assert pool.result("short")[0] == 1.0
        t0 = time.perf_counter()
        pool.close()
        assert time.perf_counter() - t0 < 10
        assert pool.pids == []
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit("late", _sleep, 0.1)


def test_waiting_for_a_result_can_be_interrupted():
    """The parent's interrupt check runs while it waits, so a deferred Ctrl-C does not wait for the job."""
    calls = []

    def check():
        calls.append(time.perf_counter())
        if len(calls) >= 3:
            raise KeyboardInterrupt

    with WorkerPool(1, lambda line: None) as pool:
        pool.submit("long", _sleep, 600.0)
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            pool.result("long", check=check)
        assert time.perf_counter() - t0 < 5


def test_a_job_name_is_taken_once_and_unknown_names_are_refused():
    with WorkerPool(1, lambda line: None) as pool:
        pool.submit("a", _sleep, 0.0)
        with pytest.raises(ValueError, match="already submitted"):
            pool.submit("a", _sleep, 0.0)
        with pytest.raises(KeyError, match="no job 'b'"):
            pool.result("b")
        assert pool.result("a")[0] == 0.0


def test_available_cores_is_at_least_one():
    assert available_cores() >= 1


def _nap(seconds, log):
    log("napping")
    time.sleep(seconds)
    return seconds


ORPHAN = """
import sys, threading, time
sys.path.insert(0, {tests!r})
from test_workers import _nap
from cortexsim.workers import WorkerPool
started = threading.Event()
pool = WorkerPool(1, lambda line: started.set())
pool.submit("nap", _nap, 60)
started.wait(60)  # the job is running in the worker
print(pool.pids[0], flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the worker's state from /proc (Linux)")
def test_a_worker_exits_when_its_parent_is_killed_outright():
    """A parent killed by SIGKILL cannot terminate its workers: they notice and leave within seconds."""
    import subprocess
    import sys

    code = ORPHAN.format(tests=str(Path(__file__).resolve().parent))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive, mid-job
    parent.kill()
    parent.wait()

    def gone() -> bool:  # exited: reaped, or a zombie its new parent has not reaped yet
        try:
            with open(f"/proc/{worker}/status") as fh:
                return any(line.startswith("State:") and "Z" in line.split()[1] for line in fh)
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if gone():
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"worker {worker} outlived its killed parent by 15 s")
