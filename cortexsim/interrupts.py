"""Ctrl-C at safe points: a first SIGINT is noted and acted on where the state is whole.

Training updates its parameters and Adam moments in place; a ``KeyboardInterrupt`` raised
half-way through an update would leave a checkpoint whose parameters, moments, random
generators and iteration count disagree, and the resumed run would differ from an
uninterrupted one.  Brian2 installs its own SIGINT handler, which turns the first Ctrl-C
during ``Network.run`` into a silent early stop: the run would carry on with a truncated
simulation.  :class:`InterruptGuard` replaces both behaviours with one rule:

* the first Ctrl-C sets :attr:`InterruptGuard.requested` (and calls an optional hook, e.g.
  one that asks a simulation to stop after its current step); the code checks
  :meth:`InterruptGuard.check` at its next safe point, which raises ``KeyboardInterrupt``;
* a second Ctrl-C raises ``KeyboardInterrupt`` at once, wherever the code is.

Signal handlers can only be installed from the main thread; elsewhere (a Dask worker
thread) the guard does nothing and Ctrl-C keeps its usual meaning there.

Every command gets the same treatment of the signals that stop a process
(:data:`STOP_SIGNALS`), decided here once for all of them:

* :func:`exit_at_once` covers the imports before a command starts and the shutdown after it:
  nothing is being written then, so a signal prints one line and ends the process at once;
* :func:`handled_signals` covers the command itself: SIGINT raises ``KeyboardInterrupt`` (even
  when the process inherited it ignored, as under ``nohup`` or a script's ``&``), and SIGTERM
  (what SLURM sends before a job's time runs out) and SIGHUP (a closed terminal) do whatever
  SIGINT does at that moment -- so the guards above, the pipeline's safe points and the
  worker pools treat all three alike.  A ``KeyboardInterrupt`` that Python could only print
  (raised inside a ``__del__`` or a weakref callback) is silenced and delivered again;
* :func:`stopped_by` and :func:`exit_status` say which signal stopped the command: the one
  line it prints and its exit status, 128 + the signal number (130, 143, 129);
* :class:`Shield` defers them while something must finish whole (closing a Dask cluster).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a command the way Ctrl-C does: SIGINT, SIGTERM and SIGHUP."""

_received: list[int] = []
"""The stop signals that reached this process since :func:`handled_signals` began, first first."""


def _note(signum: int) -> None:
    """Remember ``signum`` as a signal that stops the command (the first one sets the exit status)."""
    if signum in STOP_SIGNALS:
        _received.append(signum)


def received() -> int | None:
    """The first stop signal that reached the process under :func:`handled_signals` (None if none)."""
    return _received[0] if _received else None


def exit_status() -> int:
    """Exit status of a stopped command: 128 + the first stop signal's number (SIGINT if none was noted).

    130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP, as a shell reports a process
    killed by that signal.
    """
    return 128 + (received() or signal.SIGINT)


def stopped_by(signum: int | None = None) -> str:
    """What stopped the command, for its one line: ``"interrupted"`` (SIGINT) or ``"stopped by SIGTERM"``."""
    signum = signum or received() or signal.SIGINT
    return "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _leave(signum: int, frame: FrameType | None) -> None:
    """Print one line and end the process at once with status 128 + ``signum`` (see :func:`exit_at_once`)."""
    with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) has nowhere to print
        os.write(2, f"cortexsim: {stopped_by(signum)}\n".encode())
    os._exit(128 + signum)


def exit_at_once() -> None:
    """From now on, a stop signal prints one line and ends the process at once (status 128 + its number).

    For the ``cortexsim`` command before and after its work, when nothing is being written: the
    imports at start-up (a ``KeyboardInterrupt`` there would print a traceback from deep inside
    a library) and the interpreter's shutdown.  SIGINT is honoured even if the process inherited
    it ignored.  :func:`handled_signals` takes over while a command runs and hands these
    handlers back after it.  Does nothing outside the main thread.
    """
    if _main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _leave)


def ignore_stop_signals() -> None:
    """Ignore the stop signals from now on (main thread only): for a command already leaving after one of them."""
    if _main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def _installed(handlers: dict[int, Any]) -> Iterator[None]:
    """Install ``handlers`` (signal -> handler) for the block, from the main thread only; restore them after."""
    if not _main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in handlers}
    try:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT under :func:`handled_signals`: note it and raise ``KeyboardInterrupt``, as Python's default does."""
    _note(signum)
    raise KeyboardInterrupt


def _forward(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGHUP under :func:`handled_signals`: note it, then do whatever SIGINT's handler does now.

    A guard that defers Ctrl-C defers these too; where SIGINT is ignored for a moment (a worker
    pool starting its processes) they stop the command at once.
    """
    _note(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _unraisable(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that silences a ``KeyboardInterrupt`` Python could only print, and delivers it again.

    Python runs a signal's handler wherever the interpreter is; when that is a ``__del__``
    method or a weakref callback (h5py, hdmf and matplotlib run many), the exception cannot
    propagate: Python prints "Exception ignored in ..." with a traceback and carries on as if
    nothing had been pressed.  Here it is not printed, and a helper thread runs SIGINT's handler
    again in the main thread a moment later, outside the callback (were it swallowed once more,
    this hook would run again).
    """

    def again() -> None:
        time.sleep(0.01)  # let the hook return first: a handler run inside it would be swallowed too
        _thread.interrupt_main(signal.SIGINT)

    def hook_(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Thread(target=again, name="cortexsim-interrupt-again", daemon=True).start()
            return
        hook(unraisable)

    return hook_


@contextlib.contextmanager
def handled_signals() -> Iterator[None]:
    """Run a command under cortexsim's treatment of the stop signals (see the module docstring).

    While the block runs (main thread only): SIGINT raises ``KeyboardInterrupt``, even if the
    process inherited it ignored; SIGTERM and SIGHUP do what SIGINT does; every one of them is
    noted for :func:`stopped_by` and :func:`exit_status`; a ``KeyboardInterrupt`` swallowed by a
    ``__del__`` or weakref callback is raised again.  Handlers and ``sys.unraisablehook`` are
    restored on exit.

    Examples
    --------
    >>> with handled_signals():          # doctest: +SKIP
    ...     try:
    ...         work()
    ...     except KeyboardInterrupt:
    ...         print(f"cortexsim: {stopped_by()}")
    ...         status = exit_status()   # 130, 143 or 129
    """
    if not _main_thread():
        yield
        return
    _received.clear()
    handlers = {signum: _forward for signum in STOP_SIGNALS}
    handlers[signal.SIGINT] = _interrupt
    hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(hook)
    try:
        with _installed(handlers):
            yield
    finally:
        sys.unraisablehook = hook


class _SigintHandler:
    """Base of the guards: :meth:`_handle` is the SIGINT handler while the block runs.

    Installed from the main thread only; the previous handler is restored on exit.
    :attr:`requested` says whether a Ctrl-C arrived.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived since the block was entered."""
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
            self._installed = False


class InterruptGuard(_SigintHandler):
    """Context manager that defers the first SIGINT to the next :meth:`check`.

    Parameters
    ----------
    on_first : callable, optional
        Called (from the signal handler) when the first SIGINT arrives.

    Examples
    --------
    >>> with InterruptGuard() as guard:
    ...     for step in range(3):
    ...         guard.check()  # raises KeyboardInterrupt here after a Ctrl-C
    """

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.on_first = on_first

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        _note(signum)
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        if self.on_first is not None:
            self.on_first()


class StickyInterrupt(_SigintHandler):
    """Context manager: Ctrl-C raises ``KeyboardInterrupt`` at once, as usual, and is remembered.

    Python delivers a signal's ``KeyboardInterrupt`` wherever the interpreter happens to be;
    when that is a ``__del__`` method or a weakref callback (matplotlib and h5py run many while
    objects are collected), the exception is only printed as "Exception ignored in ..." and the
    program carries on as if Ctrl-C had never been pressed.  Under this guard the interrupt is
    also noted, and :meth:`check` -- called at the pipeline's safe points: every progress line
    and the end of every stage -- raises it again.  Nested :class:`InterruptGuard` blocks
    (training, the spiking twin) take over SIGINT while they run and hand it back on exit.
    """

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        _note(signum)
        self.requested = True
        raise KeyboardInterrupt


class Shield(_SigintHandler):
    """Context manager: stop signals are only noted while the block runs, then raised at its end.

    For work that must finish whole once begun, such as closing a Dask cluster after a first
    Ctrl-C (a second one would otherwise leave its processes half-closed and print their
    tracebacks).  Under :func:`handled_signals` SIGTERM and SIGHUP are deferred too.  On exit,
    a signal that arrived raises ``KeyboardInterrupt`` unless one is already propagating.
    """

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        _note(signum)
        self.requested = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        super().__exit__(kind, exc, tb)
        if kind is None:
            self.check()
