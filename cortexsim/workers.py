"""Jobs in spawned worker processes, with their progress lines forwarded to the parent.

The pipeline's stages are mostly single-threaded Python and numpy, so on a machine with two
or more cores a run finishes sooner when independent stages run side by side (the ANN
baselines do not need the trained circuit).  :class:`WorkerPool` runs such jobs in separate
processes, at most ``slots`` at a time, while the parent goes on with its own stages:

* a job is a picklable function and its arguments; the function receives a ``log`` callable
  as its last argument, and every line it logs reaches the parent's log, prefixed with the
  job's name;
* a job only computes: it returns its result (pickled back to the parent) and writes no run
  file, so the parent stays the only writer (:mod:`cortexsim.store`'s writes are whole-file
  copies, which two writers would race on);
* processes are *spawned* (a fresh interpreter), never forked: the parent may hold threads
  (the weight-gradient helper, Brian2) that a fork would copy half-way;
* workers ignore SIGINT: a Ctrl-C reaches the parent, whose safe points stop the run, and
  :meth:`WorkerPool.close` terminates the workers -- no worker ever records anything.  SIGTERM
  and SIGHUP (a scheduler's or a closed terminal's, sent to the whole process group) end a
  worker silently, and the parent, which treats them as Ctrl-C
  (:func:`cortexsim.interrupts.handled_signals`), reports the signal, not the lost worker;
* an exception in a job is raised again in the parent, when its result is asked for, as the
  same exception (or a :class:`WorkerError` carrying the worker's traceback when it does not
  pickle).

Results do not depend on where a job ran: each job seeds its own generators from the config
and fixes its own thread counts, exactly as it would in the parent.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from .errors import CortexsimError

__all__ = ["WorkerError", "WorkerPool", "available_cores"]


class WorkerError(CortexsimError):
    """A job failed in a worker process with an exception that could not be sent back whole."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


PARENT_CHECK_SECONDS = 1.0
"""How often a worker checks that the process that started it is still there."""


def _exit_with_parent(parent: int) -> None:
    """Exit this worker when ``parent`` is gone, even mid-job (a parent killed outright cannot tell it).

    A daemon thread compares ``os.getppid()`` with the parent's pid every
    :data:`PARENT_CHECK_SECONDS`; an orphan is re-parented, so the pid changes, and the worker
    leaves at once with status 1 instead of computing a result nobody will read.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="cortexsim-parent-watch", daemon=True).start()


def _worker_main(conn: Connection) -> None:
    """Body of a worker process: run the jobs that arrive on ``conn`` until it sends ``None``.

    For each job ``(fn, args)`` it sends ``("log", line)`` for every line ``fn`` logs, then one
    ``("done", result, "", seconds)`` or ``("error", exception, traceback, seconds)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    _exit_with_parent(os.getppid())

    def log(line: str) -> None:
        conn.send(("log", str(line)))

    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        fn, args = job
        t0 = time.perf_counter()
        try:
            result = fn(*args, log)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            text = traceback.format_exc()
            try:
                conn.send(("error", exc, text, time.perf_counter() - t0))
            except Exception:  # the exception does not pickle: send its text
                conn.send(("error", WorkerError(f"{type(exc).__name__}: {exc}"), text, time.perf_counter() - t0))
        else:
            conn.send(("done", result, "", time.perf_counter() - t0))


class WorkerPool:
    """Run named jobs in ``slots`` spawned worker processes while the caller does other work.

    The processes start at once (with SIGINT ignored, which a spawned interpreter keeps, so a
    Ctrl-C during their start-up cannot kill them half-way); jobs go to whichever is idle, in
    the order they were submitted.

    Parameters
    ----------
    slots : int
        Worker processes (>= 1).
    log : callable
        Receives every line a job logs, as ``"[<name>] <line>"`` (called from a helper thread
        of the parent; it must be thread-safe, as ``logging`` and ``list.append`` are).

    Examples
    --------
    >>> with WorkerPool(2, print) as pool:          # doctest: +SKIP
    ...     pool.submit("ann:gru", ann_run, config, "gru")  # fn(*args, log)
    ...     result, seconds = pool.result("ann:gru")
    """

    def __init__(self, slots: int, log: Callable[[str], None]) -> None:
        if slots < 1:
            raise ValueError(f"slots = {slots}: need at least one worker process")
        self.slots = slots
        self._log = log
        context = mp.get_context("spawn")
        self._pending: list[tuple[str, Callable[..., Any], tuple]] = []
        self._idle: list[Connection] = []
        self._busy: dict[Connection, str] = {}
        self._procs: dict[Connection, Any] = {}
        self._outcomes: dict[str, tuple[str, Any, str, float]] = {}
        self._submitted: set[str] = set()
        self._lock = threading.Condition()
        self._closed = False
        self._wakeup_read, self._wakeup_write = context.Pipe(duplex=False)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            for i in range(slots):
                here, there = context.Pipe(duplex=True)
                proc = context.Process(target=_worker_main, args=(there,), name=f"cortexsim-worker-{i}", daemon=True)
                proc.start()
                there.close()  # the child holds its end; EOF here means it died
                self._procs[here] = proc
                self._idle.append(here)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        self._thread = threading.Thread(target=self._serve, name="cortexsim-workers", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """Process ids of the worker processes still alive."""
        with self._lock:
            procs = list(self._procs.values())
        return [proc.pid for proc in procs if proc.is_alive()]

    def submit(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        """Queue job ``name``: ``fn(*args, log)`` in a worker process (when one is idle).

        ``fn`` and ``args`` must pickle (``fn`` a module-level function).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("submit on a closed WorkerPool")
            if name in self._submitted:
                raise ValueError(f"job {name!r} was already submitted")
            self._submitted.add(name)
            self._pending.append((name, fn, args))
        self._wakeup_write.send(None)

    def done(self) -> list[str]:
        """Names of the jobs that have finished (successfully or not) and are not collected yet."""
        with self._lock:
            return list(self._outcomes)

    def result(self, name: str, check: Callable[[], None] | None = None) -> tuple[Any, float]:
        """Wait for job ``name``; return ``(result, seconds)`` or raise the job's exception.

        ``seconds`` is the job's own wall time in its worker.  Each result is returned once.
        ``check`` is called every 0.2 s while waiting (e.g. an interrupt guard's ``check``, so a
        deferred Ctrl-C stops the wait instead of waiting for the job).
        """
        with self._lock:
            if name not in self._submitted:
                raise KeyError(f"no job {name!r} was submitted")
            while name not in self._outcomes:
                if not self._thread.is_alive():
                    raise WorkerError(f"job {name!r}: the worker pool stopped before it finished")
                if check is not None:
                    check()
                self._lock.wait(timeout=0.2)
            kind, value, text, seconds = self._outcomes.pop(name)
            self._submitted.discard(name)
        if kind != "done" and check is not None:
            check()  # a worker ended by the signal that stops this process: report the signal, not the worker
        if kind == "done":
            return value, seconds
        if text:
            value.add_note(f"(raised in a worker process, job {name!r}:)\n{text}")
        raise value

    def close(self) -> None:
        """Terminate every worker process and drop the jobs not started (idempotent).

        Workers write nothing, so terminating one in the middle of a job loses only its work.
        """
        with self._lock:
            already = self._closed
            self._closed = True
            self._pending.clear()
            procs = list(self._procs.values())
        if already:
            return
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
        self._wakeup_write.send(None)
        self._thread.join(timeout=5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the helper thread -------------------------------------------------------------------

    def _dispatch(self) -> None:
        with self._lock:
            while self._pending and self._idle and not self._closed:
                name, fn, args = self._pending.pop(0)
                conn = self._idle.pop(0)
                self._busy[conn] = name
                try:
                    conn.send((fn, args))
                except Exception as exc:  # does not pickle, or the worker is gone
                    del self._busy[conn]
                    self._idle.append(conn)
                    self._outcomes[name] = ("error", WorkerError(f"job {name!r} could not be sent: {exc}"), "", 0.0)
                    self._lock.notify_all()

    def _serve(self) -> None:
        """Hand out jobs, forward log lines, collect outcomes (runs in a daemon thread)."""
        while True:
            self._dispatch()
            with self._lock:
                if self._closed:
                    return
                conns = list(self._procs)
            for conn in wait([self._wakeup_read, *conns]):
                if conn is self._wakeup_read:
                    self._wakeup_read.recv()
                else:
                    self._receive(conn)

    def _receive(self, conn: Connection) -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the worker died (killed, out of memory) or was terminated
            proc = self._procs[conn]
            proc.join(timeout=5)
            with self._lock:
                del self._procs[conn]
                name = self._busy.pop(conn, None)
                if conn in self._idle:
                    self._idle.remove(conn)
                if name is not None and not self._closed:
                    self._outcomes[name] = (
                        "error",
                        WorkerError(f"job {name!r}: its worker process ended without a result (exit {proc.exitcode})"),
                        "",
                        0.0,
                    )
                if not self._procs and not self._closed:  # no worker left: fail what is still queued
                    for pending, *_ in self._pending:
                        lost = WorkerError(f"job {pending!r}: no worker process left")
                        self._outcomes[pending] = ("error", lost, "", 0.0)
                    self._pending.clear()
                self._lock.notify_all()
            conn.close()
            return
        if message[0] == "log":
            name = self._busy.get(conn, "?")
            self._log(f"[{name}] {message[1]}")
            return
        with self._lock:
            name = self._busy.pop(conn)
            self._idle.append(conn)
            self._outcomes[name] = message
            self._lock.notify_all()
