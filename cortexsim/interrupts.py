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
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


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
        self.requested = True
        raise KeyboardInterrupt
