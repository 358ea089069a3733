"""The ``cortexsim`` command (and ``python -m cortexsim``): the stop signals' handlers first, then the package.

Importing the package takes seconds (numpy, scipy, h5py, numba, matplotlib); a Ctrl-C, SIGTERM
or SIGHUP during those imports would print a traceback from deep inside a library.  This module
imports only :mod:`cortexsim.interrupts` (the standard library) before it sets the handlers that
end the process with one line, then imports :mod:`cortexsim.cli` and runs the command, which
installs its own handlers (:func:`cortexsim.interrupts.handled_signals`) while it works.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

from .interrupts import exit_at_once


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cortexsim`` command with ``argv`` (default ``sys.argv[1:]``); returns its exit status."""
    exit_at_once()  # before the heavy imports: a signal there ends the process with one line
    from .cli import main as command

    status = command(argv)
    with contextlib.suppress(OSError, ValueError):  # what is printed is out before a late signal ends us
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
