"""The neural term of a fit to recorded neurons: a loss on a model's activity, and the model it is added to.

A fit adds to every model's own loss (task error and penalties, :mod:`cortexsim.loss`) one more
term on its activity (:class:`cortexsim.loss.ActivityLoss`): how well the activity, mapped to the
recorded neurons, predicts them.  Nothing here knows what kind of model it is fitting; the circuit
(rates, Hz) and every ANN (``h``) take the same term.

The mapping (:class:`UnitMap`, :class:`ReadoutMap`) turns the activity ``a`` (time, trials, units)
into each recorded neuron's predicted rate ``lambda`` (Hz):

* ``units``: each recorded neuron is one unit of the model, ``lambda_i = a[unit_i]`` (the circuit's
  rates are in Hz; by default the units are drawn from the excitatory populations of L5B and L2/3);
* ``readout``: a learned linear readout per neuron through a softplus,
  ``lambda_i = softplus(sum_j C_ij a_j + d_i)`` (Hz), with ``C >= 0`` when the activity is a rate
  (the non-negative readout of the circuit) and signed for an ANN's ``h``.  ``C`` and ``d`` are
  trained with the model (the groups ``neural_w``, ``neural_b`` of :class:`Fitted`).

The term (:class:`NeuralTerm`), weighted by ``weight``, compares ``lambda`` with the recorded
targets (:class:`NeuralTargets`) on the steps they cover:

* ``counts`` (single trials): the Poisson negative log-likelihood of the spike counts ``n`` in each
  model step, less that of the saturated model (so a perfect prediction costs 0), per entry::

      L = weight * sum(mask (mu - n log mu - n + n log n)) / sum(mask),   mu = lambda dt + eps

* ``psth`` (condition averages): the squared error of the z-scored PSTHs; the model's rates go
  through the *data's* z-score (each neuron's mean and SD over conditions and time), so::

      L = weight * sum(mask ((lambda - y) / sd)^2) / sum(mask)

Each trial of a batch names the target row it is fitted to in its per-trial parameter
:data:`RECORD_KEY` (-1: none, e.g. a condition held out of training).  The gradient is exact
(``tests/test_fit.py`` checks it against finite differences through the circuit, the circuit on the
arm and the ANNs, float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loss import ActivityTerm, Penalties, r2_from_sse

TARGET_KINDS = ("counts", "psth")
"""What a target holds: single trials' spike counts per model step, or condition-averaged rates (Hz)."""

RECORD_KEY = "record"
"""The per-trial parameter of a batch that names each trial's target row (-1: not fitted)."""

EPS = 1e-6
"""Added to the expected count per step (spikes) so ``log mu`` stays finite (nlb_tools floors at 1e-9)."""

SD_FLOOR = 1e-3
"""Smallest SD (Hz) a neuron's z-score divides by (a silent neuron would otherwise divide by 0)."""


@dataclass(frozen=True, eq=False)
class NeuralTargets:
    """Recorded activity on the model's time grid: what the neural term fits.

    Attributes
    ----------
    kind : str
        ``"counts"`` (spikes per model step, single trials) or ``"psth"`` (Hz, condition averages).
    values : ndarray, shape (records, time, neurons)
        The targets; ``time`` is the model's steps (``dt``).
    mask : ndarray, shape (records, time)
        1 on the steps the recording covers, 0 elsewhere.
    dt : float
        The model's step (s): a count's bin.
    """

    kind: str
    values: np.ndarray
    mask: np.ndarray
    dt: float

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target kind {self.kind!r}; choose from {TARGET_KINDS}")
        if self.values.ndim != 3 or self.mask.shape != self.values.shape[:2]:
            raise ValueError(f"values {self.values.shape} (records, time, neurons) and mask {self.mask.shape} differ")
        if not np.all(np.isfinite(self.values[self.mask > 0])):
            raise ValueError("targets hold NaN or infinite values on covered steps")
        if self.kind == "counts" and np.any(self.values < 0):
            raise ValueError("spike counts must be >= 0")

    @property
    def n_neurons(self) -> int:
        """Recorded neurons fitted."""
        return self.values.shape[2]

    def z_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Each neuron's mean and SD (Hz) over the covered steps of every record (the z-score of ``psth``)."""
        w = self.mask[:, :, None]
        count = max(float(self.mask.sum()), 1.0)
        mean = np.sum(self.values * w, axis=(0, 1)) / count
        var = np.sum(w * (self.values - mean) ** 2, axis=(0, 1)) / count
        return mean, np.maximum(np.sqrt(var), SD_FLOOR)

    def mean_rate(self) -> np.ndarray:
        """Each neuron's mean rate (Hz) over the covered steps, shape (neurons,)."""
        w = self.mask[:, :, None]
        mean = np.sum(self.values * w, axis=(0, 1)) / max(float(self.mask.sum()), 1.0)
        return mean / self.dt if self.kind == "counts" else mean


@dataclass(frozen=True, eq=False)
class UnitMap:
    """Each recorded neuron is one unit of the model: ``lambda_i = a[units[i]]`` (the activity in Hz).

    Attributes
    ----------
    units : ndarray of int, shape (neurons,)
        The model unit of each recorded neuron (distinct).
    """

    units: np.ndarray

    def init_params(self, targets: NeuralTargets) -> dict[str, np.ndarray]:
        """No parameters."""
        del targets
        return {}

    def predict(self, activity: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, object]:
        """``lambda`` (time, trials, neurons) in Hz and what :meth:`backward` needs."""
        del params
        return activity[:, :, self.units].astype(np.float64), None

    def backward(
        self, g_lam: np.ndarray, activity: np.ndarray, saved: object, params: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """dL/d activity (time, trials, units) and dL/d params from dL/d lambda (time, trials, neurons)."""
        del saved, params
        g = np.zeros(activity.shape, np.float64)
        g[:, :, self.units] = g_lam
        return g, {}

    def project(self, params: dict[str, np.ndarray]) -> None:
        """No constraints."""


@dataclass(frozen=True, eq=False)
class ReadoutMap:
    """A learned linear readout per neuron through a softplus: ``lambda = softplus(a C^T + d)`` (Hz).

    Attributes
    ----------
    n_units : int
        Units of the activity read.
    nonnegative : bool
        ``C >= 0`` (projected after every step): the readout of rates, which are >= 0 themselves.
    """

    n_units: int
    nonnegative: bool

    def init_params(self, targets: NeuralTargets) -> dict[str, np.ndarray]:
        """``C = 0`` and ``d`` such that every neuron starts at its mean recorded rate."""
        rate = np.maximum(targets.mean_rate(), 1e-3)
        return {
            "neural_w": np.zeros((targets.n_neurons, self.n_units)),
            "neural_b": rate + np.log(-np.expm1(-rate)),  # softplus^-1(rate)
        }

    def predict(self, activity: np.ndarray, params: dict[str, np.ndarray]) -> tuple[np.ndarray, object]:
        """``lambda`` (time, trials, neurons) in Hz and the pre-activation's slope for :meth:`backward`."""
        z = np.asarray(activity, np.float64) @ params["neural_w"].T + params["neural_b"]
        lam = np.logaddexp(0.0, z)
        return lam, _sigmoid(z)

    def backward(
        self, g_lam: np.ndarray, activity: np.ndarray, saved: object, params: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """dL/d activity (time, trials, units) and dL/d ``neural_w``, ``neural_b``."""
        gz = g_lam * saved
        flat = gz.reshape(-1, gz.shape[2])
        grads = {
            "neural_w": flat.T @ np.asarray(activity, np.float64).reshape(-1, self.n_units),
            "neural_b": flat.sum(axis=0),
        }
        return gz @ params["neural_w"], grads

    def project(self, params: dict[str, np.ndarray]) -> None:
        """``C >= 0`` when :attr:`nonnegative`."""
        if self.nonnegative:
            np.maximum(params["neural_w"], 0.0, out=params["neural_w"])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True, eq=False)
class NeuralTerm:
    """The weighted neural term: a mapping, its targets and its weight (see the module notes).

    Attributes
    ----------
    mapping : UnitMap or ReadoutMap
    targets : NeuralTargets
    weight : float
        Multiplies the term (dimensionless, >= 0).
    """

    mapping: UnitMap | ReadoutMap
    targets: NeuralTargets
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sd", self.targets.z_stats()[1])

    def predict(self, activity: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """Each neuron's predicted rate (Hz), (time, trials, neurons) for ``activity`` (time, trials, units)."""
        return self.mapping.predict(activity, params)[0]

    def evaluate(
        self, activity: np.ndarray, batch, params: dict[str, np.ndarray]
    ) -> tuple[ActivityTerm, dict[str, np.ndarray]]:
        """The term on one batch and the gradients of the mapping's parameters.

        Parameters
        ----------
        activity : ndarray, shape (time, trials, units)
        batch : TrialBatch
            Its per-trial :data:`RECORD_KEY` names each trial's target row (-1: none).
        params : dict of str to ndarray
            The mapping's parameters (``{}`` for :class:`UnitMap`).

        Returns
        -------
        term : ActivityTerm
            ``stats``: ``neural_loss`` (the weighted term).
        grads : dict of str to ndarray
        """
        tg = self.targets
        n_steps, n_trials, _ = activity.shape
        if tg.values.shape[1] != n_steps:
            raise ValueError(f"targets span {tg.values.shape[1]} steps, the batch {n_steps}")
        rec = np.asarray(batch.params[RECORD_KEY], int)
        fitted = rec >= 0
        y = np.zeros((n_steps, n_trials, tg.n_neurons))
        m = np.zeros((n_steps, n_trials, 1))
        y[:, fitted] = tg.values[rec[fitted]].transpose(1, 0, 2)
        m[:, fitted, 0] = tg.mask[rec[fitted]].T
        count = max(float(m.sum()) * tg.n_neurons, 1.0)
        lam, saved = self.mapping.predict(activity, params)
        c = self.weight / count
        if tg.kind == "counts":
            mu = lam * tg.dt + EPS
            with np.errstate(divide="ignore", invalid="ignore"):
                sat = np.where(y > 0, y * np.log(y), 0.0) - y
            loss = c * float(np.sum(m * (mu - y * np.log(mu) - sat)))
            g_lam = (c * tg.dt) * m * (1.0 - y / mu)
        else:
            inv = 1.0 / self._sd**2  # type: ignore[attr-defined]
            err = m * (lam - y)
            loss = c * float(np.sum(err**2 * inv))
            g_lam = (2.0 * c) * err * inv
        g_act, grads = self.mapping.backward(g_lam, activity, saved, params)
        return ActivityTerm(loss, g_act, {"neural_loss": loss}), grads


class Fitted:
    """A model trained on its task and on recorded neurons: :class:`cortexsim.train.Trainable` for any model.

    Its parameters are the model's groups and the mapping's (``neural_w``, ``neural_b`` for a
    readout); its loss is the model's own with the neural term as the model's ``extra`` activity
    term, so the gradient is the model's exact backpropagation.  The model is unchanged in kind:
    after training, :attr:`model` is used like any other (its activity compared, its dynamics
    analysed); :meth:`predict` gives the fitted neurons' rates.

    Parameters
    ----------
    model
        Any model whose ``loss_and_grad`` takes ``extra`` (every model of cortexsim).
    term : NeuralTerm
    params : dict of str to ndarray, optional
        The mapping's parameters (default: :meth:`NeuralTerm.mapping`'s ``init_params``).
    """

    def __init__(self, model, term: NeuralTerm, params: dict[str, np.ndarray] | None = None):
        self.model, self.term = model, term
        self.map_params = term.mapping.init_params(term.targets) if params is None else dict(params)
        self.dt = model.dt

    def __repr__(self) -> str:
        return f"<Fitted {self.model!r} to {self.term.targets.n_neurons} neurons ({self.term.targets.kind})>"

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The model's groups and the mapping's, the live arrays."""
        return {**self.model.params, **self.map_params}

    @property
    def noise_std(self) -> float:
        """The model's noise SD."""
        return self.model.noise_std

    @property
    def output_scale(self) -> float:
        """The model's output scale (m)."""
        return self.model.output_scale

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Install (copies of) the model's groups and the mapping's."""
        own = set(self.map_params)
        self.model.set_params({k: v for k, v in params.items() if k not in own})
        self.map_params = {k: np.array(params[k], dtype=np.float64) for k in own}
        self.term.mapping.project(self.map_params)

    def enforce_constraints(self) -> None:
        """The model's constraints and the mapping's (``C >= 0`` for the circuit's readout)."""
        self.model.enforce_constraints()
        self.term.mapping.project(self.map_params)

    def param_scales(self, model_scales: dict[str, float], activity_scale: float) -> dict[str, float]:
        """The optimiser's step sizes: the model's, and for the readout one tenth of the mean rate's change.

        Parameters
        ----------
        model_scales : dict of str to float
            The model's own (``param_scales()``).
        activity_scale : float
            Typical size of one unit's activity (Hz for the circuit, 1 for an ANN's ``h``).
        """
        rate = float(np.mean(self.term.targets.mean_rate()))
        extra = {}
        if "neural_w" in self.map_params:
            n = self.map_params["neural_w"].shape[1]
            extra = {"neural_w": 0.1 * max(rate, 1.0) / (np.sqrt(n) * activity_scale), "neural_b": 0.1 * max(rate, 1.0)}
        return {**model_scales, **extra}

    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator):
        """The model's noise of one batch."""
        return self.model.noise(n_trials, n_steps, rng)

    def simulate(self, batch, rng: np.random.Generator | None = None, stimulus=None):
        """The model's trajectory (:meth:`cortexsim.model.Model.simulate`)."""
        return self.model.simulate(batch, rng, stimulus)

    def predict(self, activity: np.ndarray) -> np.ndarray:
        """The fitted neurons' rates (Hz), (trials, time, neurons) for an activity (trials, time, units)."""
        lam = self.term.predict(np.asarray(activity).transpose(1, 0, 2), self.map_params)
        return lam.transpose(1, 0, 2)

    def loss_and_grad(
        self, batch, penalties: Penalties, noise=None, w_ref: float | None = None
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """The model's loss with the neural term, and the exact gradient of every group (the mapping's too)."""
        own: dict[str, np.ndarray] = {}

        def extra(activity: np.ndarray, batch_) -> ActivityTerm:
            term, grads = self.term.evaluate(activity, batch_, self.map_params)
            own.update(grads)
            return term

        loss, grads, stats = self.model.loss_and_grad(batch, penalties, noise, w_ref=w_ref, extra=extra)
        return loss, {**grads, **own}, stats

    def validation_loss(self, batch) -> tuple[float, float]:
        """Noise-free task loss plus the neural term on a validation batch, and the task's R^2 (NaN if none).

        :func:`cortexsim.train.train` stops early and keeps the best parameters by this loss.
        """
        traj = self.model.simulate(batch)
        err = (traj.outputs - batch.targets) * batch.mask
        task = float(np.sum(err**2) / max(batch.mask.sum(), 1) / self.output_scale**2)
        term, _ = self.term.evaluate(np.asarray(traj.activity).transpose(1, 0, 2), batch, self.map_params)
        targets = batch.targets * batch.mask
        has_task = float(np.sum(batch.mask)) > 0 and float(np.ptp(targets)) > 0
        r2 = r2_from_sse(float(np.sum(err**2)), batch.targets, batch.mask) if has_task else float("nan")
        return task + term.loss, r2
