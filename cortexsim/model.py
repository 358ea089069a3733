"""What every model promises: a typed trajectory, and its own one-step map with its Jacobians.

Every trainable model of cortexsim -- the rate circuit (:class:`cortexsim.rate.RateNetwork`), the
circuit on the arm (:class:`cortexsim.closed_loop.ArmRateNetwork`), each ANN baseline
(:mod:`cortexsim.ann`) and each ANN on the arm (:class:`cortexsim.closed_loop.ArmANN`) -- follows
:class:`Model`:

* ``simulate(batch, rng=None)`` returns a :class:`Trajectory` with *named* fields, never a
  positional tuple: the model's state, **the activity that is compared** (the circuit's rates,
  every ANN's hidden state ``h``), the outputs and, for a model that drives a body, the body's
  record;
* ``step_map(u)`` returns the model's own noise-free one-step map under a constant task input
  ``u`` and its :class:`Jacobian`; ``map_states(trajectory)`` puts a simulated trajectory in that
  map's coordinates and ``map_layout()`` names their parts.  Fixed points, loop maps and every
  other dynamics analysis ask the model for these instead of re-deriving its equations
  (``tests/test_model_contract.py`` checks, for every model kind, that one step of the map
  reproduces one step of ``simulate``).

The state of the map is what determines the model's next state under a held input: the circuit's
``x`` (mV); an RNN's or GRU's ``h``; the LSTM's ``[h, c]``; for a model that drives the arm, that
plus the arm's state and the sensor readings still travelling up the delay lines
(:mod:`cortexsim.closed_loop_map`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .tasks import TrialBatch

Step = Callable[[np.ndarray], np.ndarray]
"""``step(X)``: states (n, d) -> next states (n, d)."""
Products = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
"""``(jvp, vjp)``: the rows ``J V`` and ``J^T V`` for a fixed set of states."""


@dataclass(frozen=True, eq=False)
class Jacobian:
    """The Jacobian of a map: full matrices and, optionally, matrix-free products.

    A plain function ``jacobian(X) -> (n, d, d)`` works everywhere this class is
    accepted; the class adds ``linearize`` for the matrix-free solver.

    Attributes
    ----------
    full : callable
        ``full(X)``: states (n, d) -> Jacobians ``dF/dx`` (n, d, d), ``[k, i, j] = dF_i/dx_j``.
    linearize : callable, optional
        ``linearize(X) -> (jvp, vjp)`` for states (n, d): ``jvp(V)`` returns
        the rows ``J(X[k]) V[k]`` and ``vjp(V)`` the rows ``J(X[k])^T V[k]``,
        both (n, d). Work that depends only on ``X`` is done once per call.
    """

    full: Callable[[np.ndarray], np.ndarray]
    linearize: Callable[[np.ndarray], Products] | None = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """``full(X)``: the Jacobians, shape (n, d, d)."""
        return self.full(X)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One simulated batch of a model, trials first.

    Attributes
    ----------
    state : ndarray, shape (trials, time, d)
        The model's own state: the circuit's x (mV); an RNN's or GRU's h; the LSTM's ``[h, c]``
        (``d = 2 H``).  (A model on a body: its controller's part; the body's is in ``body``.)
    activity : ndarray, shape (trials, time, units)
        The activity every comparison uses: the circuit's rates r (Hz); every ANN's hidden state h.
    outputs : ndarray, shape (trials, time, outputs)
        What the task scores: the hand position (m; relative to its start on a body).
    body : object, optional
        The body's own record of the batch (:class:`cortexsim.closed_loop.LoopTrajectory`: joint
        angles, muscles, feedback), or None for a model without a body.
    """

    state: np.ndarray
    activity: np.ndarray
    outputs: np.ndarray
    body: Any = None


@dataclass(frozen=True)
class Controller:
    """A model's own update with its readout, as a closed loop composes it with a body.

    ``X`` is the model's state (:attr:`Trajectory.state` coordinates), ``f`` the feedback it receives.

    Attributes
    ----------
    n : int
        Size of the model's state.
    cols : ndarray of int
        State columns the readout reads; ``w_out`` (outputs, len(cols)) their weights.
    w_out : ndarray
    logits : callable
        ``logits(X)`` -> the readout (m, outputs).
    slope : callable
        ``slope(X)`` -> (m, len(cols)), with ``dy/dX[:, :, cols] = w_out * slope[:, None, :]``.
    step : callable
        ``step(X, f)``: the next state given the feedback ``f`` (m, channels).
    full, linearize : callable
        ``full(X, f) -> (J, B)`` and ``linearize(X, f) -> (jvp, vjp, B)``: the state Jacobian (or
        its products) and ``B``, the Jacobian with respect to ``f``, (m or 1, n, channels), from
        one evaluation.
    """

    n: int
    cols: np.ndarray
    w_out: np.ndarray
    logits: Callable
    slope: Callable
    step: Callable
    full: Callable
    linearize: Callable


@dataclass(frozen=True, eq=False)
class Stimulus:
    """An optogenetic-style stimulation of one batch, in a model's own units (:mod:`cortexsim.stimulation`).

    Every model applies it the same way inside its own update: the light at step ``t`` (``profile[t]``)
    acts on the expressing units during the update from ``t`` to ``t + 1``.

    * a **drive** (``silence`` False): ``drive * expression * profile[t]`` is added to the unit's input
      current -- the circuit's ``tau dx/dt`` right-hand side (mV), an ANN's candidate pre-activation;
    * **silence**: the activity of an expressing unit is multiplied by ``1 - profile[t]``, so it is 0
      while the light is fully on -- the circuit's rate (as a lesion does), an ANN's ``h``.

    Attributes
    ----------
    expression : ndarray, shape (units,)
        1 on the units that express the opsin, 0 elsewhere (the model's activity units).
    profile : ndarray, shape (time, trials)
        The light on each step of each trial, in [0, 1] (0 on unstimulated trials).
    drive : float
        Signed drive at full light, in the model's state units (mV for the circuit); unused by ``silence``.
    silence : bool
    """

    expression: np.ndarray
    profile: np.ndarray
    drive: float = 0.0
    silence: bool = False

    def __post_init__(self) -> None:
        lit = np.flatnonzero(self.profile.any(axis=1)) if self.expression.any() else np.empty(0, int)
        if not self.silence and self.drive == 0.0:
            lit = np.empty(0, int)
        object.__setattr__(self, "_lit", frozenset(int(t) for t in lit))

    def lit(self, t: int) -> bool:
        """True when the light acts on some expressing unit at step ``t`` (with a nonzero effect)."""
        return t in self._lit  # type: ignore[attr-defined]

    @property
    def empty(self) -> bool:
        """True when it changes nothing: no expressing unit, no light, or a zero drive."""
        return not self._lit  # type: ignore[attr-defined]

    def current(self, t: int, dtype=np.float64) -> np.ndarray:
        """The drive at step ``t`` on every unit, shape (units, trials) (mV for the circuit)."""
        return (self.drive * self.expression[:, None] * self.profile[t][None, :]).astype(dtype, copy=False)

    def keep(self, t: int, dtype=np.float64) -> np.ndarray:
        """The factor ``1 - expression * profile[t]`` silence multiplies the activity with, (units, trials)."""
        return (1.0 - self.expression[:, None] * self.profile[t][None, :]).astype(dtype, copy=False)


@runtime_checkable
class Model(Protocol):
    """What every trainable model of cortexsim provides to training, evaluation and analysis."""

    dt: float

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None, stimulus: Stimulus | None = None
    ) -> Trajectory:
        """Simulate a batch (noise-free without ``rng``; stimulated as ``stimulus`` says)."""
        ...

    def step_map(self, u: np.ndarray) -> tuple[Step, Jacobian]:
        """The noise-free one-step map under the constant task input ``u`` (task inputs,), and its Jacobian."""
        ...

    def map_states(self, trajectory: Trajectory) -> np.ndarray:
        """A simulated ``trajectory`` in :meth:`step_map`'s coordinates, (trials, time, d)."""
        ...

    def map_layout(self) -> dict[str, slice]:
        """Where each named part of :meth:`step_map`'s state lies (e.g. ``circuit``, ``arm``, ``sensors``)."""
        ...


def constant_input(u: Any, n_inputs: int) -> np.ndarray:
    """``u`` checked as a finite vector of ``n_inputs`` inputs (float64)."""
    u = np.asarray(u, dtype=float)
    if u.shape != (n_inputs,) or not np.all(np.isfinite(u)):
        raise ValueError(f"u must be a finite vector of the model's {n_inputs} inputs; got shape {u.shape}")
    return u


__all__ = ["Controller", "Jacobian", "Model", "Products", "Step", "Stimulus", "Trajectory", "constant_input"]
