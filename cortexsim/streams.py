"""Every random draw of cortexsim comes from here: a named stream of the experiment seed.

``stream(seed, name)`` is the generator of stream ``name`` (e.g. ``"init"``, ``"batches"``,
``"test-noise"``): its entropy is the seed followed by the name's character codes, so two streams
never share draws, adding a stream changes no other, and the same seed and name give the same
numbers on any machine (``assembly.seeded_rng(config, name)`` is ``stream(config.experiment.seed,
name)``).  A few streams had numeric entropy before they had names (:data:`NUMBERED`); they keep it,
so every run keeps its numbers.  ``child(rng)`` splits a generator that is itself drawn from a
stream (per fold, per surrogate), ``generator(entropy)`` makes one from entropy a caller already
derived from a stream (a seed handed down, or a hash of the data being analysed), and
``restore(state)`` brings back a stream a checkpoint saved.

This is the only module that calls :func:`numpy.random.default_rng`;
``tests/test_streams.py`` checks the package for any other call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUMBERED: dict[str, tuple[int, ...]] = {
    "spiking-network": (1,),
    "adapt-batches": (7,),
    "adapt-noise": (8,),
    "twin-body-noise": (13,),
    "bump-latency-hit": (21,),
    "bump-latency-calm": (22,),
}
"""Streams whose entropy is a number after the seed (they were drawn that way before they were named)."""


def _entropy(seed: int, name: str, index: Sequence[int]) -> list[int]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0; got {seed!r}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"stream name must be a non-empty string; got {name!r}")
    code = NUMBERED.get(name, tuple(ord(c) for c in name))
    return [int(seed), *code, *(int(i) for i in index)]


def stream(seed: int, name: str, *index: int) -> np.random.Generator:
    """The generator of stream ``name`` of experiment seed ``seed``, optionally one of a numbered family.

    Parameters
    ----------
    seed : int
        The experiment seed (``[experiment] seed``), >= 0.
    name : str
        The stream's name.
    *index : int
        Further whole numbers for a family of streams (e.g. one per adaptation block length).

    Returns
    -------
    numpy.random.Generator
        PCG64 seeded by ``[seed, *codes(name), *index]``.
    """
    return np.random.default_rng(_entropy(seed, name, index))


def generator(entropy: int | Sequence[int]) -> np.random.Generator:
    """A generator from ``entropy`` a caller derived from a stream (a seed handed down, a hash of data)."""
    return np.random.default_rng(entropy)


def restore(state: dict) -> np.random.Generator:
    """The generator whose bit generator has ``state`` (``Generator.bit_generator.state``, as checkpoints keep it)."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def child(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator drawn from ``rng`` (one 32-bit seed taken from it)."""
    return np.random.default_rng(rng.integers(2**32))


__all__ = ["NUMBERED", "child", "generator", "restore", "stream"]
