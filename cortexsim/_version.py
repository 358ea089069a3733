"""The package version (base layer: the run file records it, the command line prints it)."""

__version__ = "0.2.0"
