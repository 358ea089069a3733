"""Exception types that cortexsim raises for problems a user can fix.

Every error carries one line that names the offending key or file, the value
found and what is allowed, so that the command line can print it without a
traceback.
"""

from __future__ import annotations


class CortexsimError(Exception):
    """Base class of all user-facing cortexsim errors."""


class ConfigError(CortexsimError, ValueError):
    """A configuration or specification value is missing, unknown or out of range."""


class RunFileError(CortexsimError, OSError):
    """An HDF5 file is not a readable cortexsim run file (foreign, truncated, newer schema)."""


class TrainingError(CortexsimError, RuntimeError):
    """Training cannot continue (for example the loss became NaN or infinite)."""
