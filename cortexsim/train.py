"""Training by backpropagation through time: Adam, clipping, schedule, early stopping.

The trainer works with any :class:`Trainable` model -- ``params`` (dict of arrays),
``loss_and_grad(batch, penalties, noise)``, ``noise(n_trials, n_steps, rng)``,
``simulate(batch)`` and ``enforce_constraints()``: the rate network and the ANN
baselines.  It never touches a file: checkpoints leave through the ``checkpoint``
callback (the pipeline writes them to the run file).

Adam steps are taken in units of each parameter group's typical magnitude
(``scales``): a learning rate of 0.03 moves every group by about 3 % of its
size per step, whether it is a weight in mV/Hz or a bias in mV.

Everything that decides the next step -- parameters, Adam moments, both random
generators, histories, early-stopping state -- is a :class:`TrainState`, so a run
resumed from a checkpoint continues exactly as if never interrupted.  Ctrl-C is acted
on between iterations only (:class:`~cortexsim.interrupts.InterruptGuard`), so the
checkpoint it saves is always a whole iteration.

Training stops on iteration counts and validation criteria only, so its result is a
function of config, seed and code, never of how busy the machine is.  With ``[train]
stop_at_bars`` one criterion is the run's own ``[quality]`` bars, measured on the validation
trials (:class:`BarStop`): training ends when the model does its task, not when it is polished.  The optional
wall-clock budget ``max_seconds`` (off by default) is a safety net that announces
itself: :attr:`TrainState.budget_hit` is set and the pipeline reports it.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import metrics, streams
from .config import QualityConfig, TrainConfig
from .errors import TrainingError
from .interrupts import InterruptGuard
from .loss import Penalties, r2_score
from .tasks import Task, TrialBatch


class Trainable(Protocol):
    """What :func:`train` needs from a model (the rate circuit and the ANN baselines both are one).

    Attributes
    ----------
    params : dict of str to ndarray
        Trainable parameter groups; :func:`train` updates them in place.
    noise_std : float
        Process-noise SD (0: no noise is drawn).
    output_scale : float
        Typical output magnitude (m).
    """

    params: dict[str, np.ndarray]
    noise_std: float
    output_scale: float

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Install (a copy of) ``params``."""

    def enforce_constraints(self) -> None:
        """Project the parameters onto the model's constraints (e.g. Dale's law)."""

    def noise(self, n_trials: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
        """Process-noise increments for a batch."""

    def loss_and_grad(
        self, batch: TrialBatch, penalties: Penalties, noise: np.ndarray | None = None, w_ref: float | None = None
    ) -> tuple[float, dict[str, np.ndarray], dict[str, float]]:
        """Loss, gradient of every group and summary statistics (``task_loss``, ``r2``, ``mean_rate``, ...).

        Every model's also takes ``extra``, one more term on its activity (:class:`cortexsim.loss.ActivityLoss`);
        a model may also define ``validation_loss(batch) -> (loss, r2)``, which early stopping then uses
        instead of the task error of its outputs (:class:`cortexsim.neural_loss.Fitted`: task plus neural term).
        """

    def simulate(
        self, batch: TrialBatch, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """States, activities and outputs ``(trials, time, ...)`` of a batch."""


@dataclass
class TrainState:
    """Everything that determines how training continues (checkpointed)."""

    params: dict[str, np.ndarray]
    m: dict[str, np.ndarray]
    v: dict[str, np.ndarray]
    scales: dict[str, float]
    rng_batch: dict[str, Any]
    rng_noise: dict[str, Any]
    iteration: int = 0
    elapsed: float = 0.0
    best_params: dict[str, np.ndarray] = field(default_factory=dict)
    best_val_loss: float = math.inf
    best_iteration: int = 0
    bad_evals: int = 0
    done: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)
    checkpointed_at: int | None = None
    """Iteration of the newest checkpoint written for this state (None: none yet); not stored."""
    bars_missed: str = ""
    """The ``stop_at_bars`` bars the latest validation missed, in words (progress lines); not stored."""

    HISTORY_KEYS = ("loss", "task_loss", "r2", "grad_norm", "lr", "mean_rate")
    VALIDATION_KEYS = ("val_iteration", "val_loss", "val_r2")

    def kept_checkpoint(self) -> str:
        """What a stop keeps, in words: the newest checkpoint of this state, or that none was written."""
        if self.checkpointed_at is None:
            return "no checkpoint had been written yet"
        return f"the last checkpoint (iteration {self.checkpointed_at}) is kept"

    @property
    def budget_hit(self) -> bool:
        """True when training was stopped by the wall-clock safety net ``max_seconds``."""
        return self.done.startswith(BUDGET_STOP)


LOG = logging.getLogger(__name__)
"""Training progress (INFO)."""

BUDGET_STOP = "wall-clock budget"
"""How :attr:`TrainState.done` begins when the ``max_seconds`` safety net stopped training."""


def new_state(
    params: dict[str, np.ndarray],
    scales: dict[str, float],
    seed_batch: np.random.Generator,
    seed_noise: np.random.Generator,
) -> TrainState:
    """Fresh training state.

    Parameters
    ----------
    params : dict of str to ndarray
        Initial parameters (copied).
    scales : dict of str to float
        Step-size scale of each group (e.g. ``RateNetwork.param_scales()``).
    seed_batch, seed_noise : numpy.random.Generator
        Generators for trial batches and process noise; their current states are stored.
    """
    params = {k: p.copy() for k, p in params.items()}
    state = TrainState(
        params=params,
        m={k: np.zeros_like(p) for k, p in params.items()},
        v={k: np.zeros_like(p) for k, p in params.items()},
        scales={k: float(scales[k]) for k in params},
        rng_batch=copy.deepcopy(seed_batch.bit_generator.state),
        rng_noise=copy.deepcopy(seed_noise.bit_generator.state),
        best_params={k: p.copy() for k, p in params.items()},
    )
    state.history = {k: [] for k in TrainState.HISTORY_KEYS + TrainState.VALIDATION_KEYS}
    return state


def _generator(state: dict[str, Any]) -> np.random.Generator:
    return streams.restore(state)


def adam_step(
    state: TrainState,
    grads: dict[str, np.ndarray],
    lr: float,
    clip_norm: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> float:
    """One Adam update in scaled units, after global-norm clipping.

    Returns
    -------
    float
        Global norm of the scaled gradient before clipping.
    """
    scaled = {k: g * state.scales[k] for k, g in grads.items()}
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in scaled.values()))
    factor = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    b1, b2 = betas
    t = state.iteration + 1
    for k, g in scaled.items():
        g *= factor
        m, v_ = state.m[k], state.v[k]
        m *= b1
        m += (1 - b1) * g
        v_ *= b2
        v_ += (1 - b2) * g * g
        step = (lr * state.scales[k] * math.sqrt(1 - b2**t) / (1 - b1**t)) * m / (np.sqrt(v_) + eps)
        state.params[k] -= step.astype(state.params[k].dtype)
    return norm


@dataclass(frozen=True)
class BarStop:
    """The ``stop_at_bars`` criterion: every ``[quality]`` bar the validation trials can measure, tightened.

    Attributes
    ----------
    bars : tuple of (str, str, float)
        ``(metric, "min" | "max", bar)`` as :meth:`cortexsim.config.QualityConfig.bars` gives them,
        already tightened by the margin, keyed with the prefix :data:`PREFIX`.
    skipped : tuple of str
        Bars the validation trials cannot measure (a perturbation's, say): the run's gate still
        checks them after training.
    """

    bars: tuple[tuple[str, str, float], ...]
    skipped: tuple[str, ...]

    PREFIX = "val"

    @classmethod
    def of(cls, quality: QualityConfig, task: Task, validation: TrialBatch, margin: float) -> BarStop:
        """The bars of ``quality`` that :func:`cortexsim.metrics.reach_metrics` measures on ``validation``."""
        measured = metrics.reach_metrics(task, cls.PREFIX, validation.targets, validation)
        keep, skipped = [], []
        for metric, kind, bar in quality.bars(cls.PREFIX):
            if metric not in measured:
                skipped.append(metric.removeprefix(cls.PREFIX + "_"))
                continue
            tight = (1 - margin) * bar if kind == "max" else bar + margin * max(1.0 - bar, 0.0)
            keep.append((metric, kind, tight))
        return cls(tuple(keep), tuple(skipped))

    def met(self, task: Task, outputs: np.ndarray, validation: TrialBatch) -> bool:
        """Whether ``outputs`` (hand positions on ``validation``, (trials, time, 2); m) meet every bar."""
        return not self.missed(task, outputs, validation)

    def missed(self, task: Task, outputs: np.ndarray, validation: TrialBatch) -> str:
        """The bars ``outputs`` miss, in words (``"catch_drift_cm 0.95 (< 0.75)"``); empty when all are met."""
        values = metrics.reach_metrics(task, self.PREFIX, outputs, validation)
        missed = []
        for metric, kind, bar in self.bars:
            value = values[metric]
            if not (math.isfinite(value) and (value >= bar if kind == "min" else value < bar)):
                need = f">= {bar:.4g}" if kind == "min" else f"< {bar:.4g}"
                missed.append(f"{metric.removeprefix(self.PREFIX + '_')} {value:.4g} ({need})")
        return ", ".join(missed)

    def describe(self) -> str:
        """E.g. ``position_r2 >= 0.9775, endpoint_error_cm < 0.75, ...``."""
        text = ", ".join(
            f"{m.removeprefix(self.PREFIX + '_')} {'>=' if kind == 'min' else '<'} {bar:.4g}"
            for m, kind, bar in self.bars
        )
        if self.skipped:
            text += f" (not measurable during training: {', '.join(self.skipped)})"
        return text


BARS_STOP = "validation met the [quality] bars"
"""How :attr:`TrainState.done` begins when ``stop_at_bars`` stopped training."""


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def train(
    model: Trainable,
    task: Task,
    config: TrainConfig,
    state: TrainState,
    *,
    validation: TrialBatch,
    checkpoint: Callable[[TrainState], None] | None = None,
    log: Callable[[str], None] | None = None,
    keep: str = "best",
    quality: QualityConfig | None = None,
) -> TrainState:
    """Train ``model`` from ``state`` until done; returns the final state.

    The best parameters by validation loss end up in ``state.best_params`` and
    installed in the model (with ``keep="last"``: the last iteration's, e.g. for
    adaptation, where the learning itself is what is measured).  Ctrl-C finishes the current iteration, saves a
    checkpoint of that whole iteration and re-raises ``KeyboardInterrupt`` (a second
    Ctrl-C stops at once and saves nothing); a NaN or infinite loss raises
    :class:`~cortexsim.errors.TrainingError` (the last checkpoint stays as it was).

    Parameters
    ----------
    model : Trainable
        The rate network, an ANN, or anything with the methods of :class:`Trainable`.
    task : Task
    config : TrainConfig
    state : TrainState
        From :func:`new_state` or a checkpoint.
    validation : TrialBatch
        The fixed, noise-free validation set (e.g. ``task.sample(config.validation_trials,
        rng)`` from a named seed stream); early stopping and ``target_r2`` read it.
    checkpoint : callable, optional
        Called with the state every ``config.checkpoint_every`` iterations, at the
        end, and on Ctrl-C.
    log : callable, optional
        Receives progress lines (default: the ``cortexsim.train`` logger, at INFO).
    keep : {"best", "last"}
        Which parameters end up installed: the best by validation loss, or the last.
    quality : QualityConfig, optional
        The bars of ``config.stop_at_bars`` (required when it is set): training stops at the
        first validation that meets them (:class:`BarStop`) and keeps that validation's parameters.
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep: {keep!r}; choose 'best' or 'last'")
    log = log or LOG.info
    stop = None
    if config.stop_at_bars:
        if quality is None:
            raise ValueError("train.stop_at_bars needs the [quality] bars: pass quality=config.quality")
        stop = BarStop.of(quality, task, validation, config.bar_margin)
        if state.iteration == 0:
            log(f"stopping at the [quality] bars, {config.bar_margin:g} of their slack inside: {stop.describe()}")
    rng_batch, rng_noise = _generator(state.rng_batch), _generator(state.rng_noise)
    penalties = Penalties.of(config)
    model.set_params(state.params)
    state.params = model.params  # train in place on the model's arrays
    w_ref = state.scales.get("w")
    start = time.perf_counter() - state.elapsed
    first_iteration, elapsed0 = state.iteration, state.elapsed
    whole = True  # the state holds whole iterations only (False while one is under way)
    draws = _Draws(model, task, config.batch_size, rng_batch, rng_noise, state.iteration, config.clean_fraction)
    with InterruptGuard() as guard, draws:
        try:
            while not state.done:
                guard.check()
                state.done = _stop_reason(state, config)
                if state.done:
                    break
                whole = False
                _iteration(model, task, config, state, draws, penalties, w_ref, validation, stop)
                state.elapsed = time.perf_counter() - start
                whole = True
                if state.iteration % config.log_every == 0:
                    _progress(state, config, first_iteration, elapsed0, log)
                if checkpoint and state.iteration % config.checkpoint_every == 0:
                    _save(state, draws, checkpoint)
        except KeyboardInterrupt:
            if checkpoint and whole:
                _save(state, draws, checkpoint)
                log(f"interrupted at iteration {state.iteration}; checkpoint saved -- run the same command to resume")
            elif checkpoint:
                log(f"interrupted during iteration {state.iteration + 1}; {state.kept_checkpoint()}")
            raise
    if state.budget_hit:
        log(
            f"WARNING: training was stopped by the wall-clock safety net after {state.iteration} iterations; "
            f"its result depends on the machine's speed and load (unset train.max_seconds to train to the "
            f"iteration and validation criteria)"
        )
    log(f"training stopped: {state.done} (best validation at iteration {state.best_iteration}, {state.elapsed:.0f} s)")
    if keep == "last":
        state.best_params = {k: p.copy() for k, p in model.params.items()}
    model.set_params(state.best_params)
    state.params = {k: p.copy() for k, p in model.params.items()}
    if checkpoint:
        _save(state, draws, checkpoint)
    return state


class _Draws:
    """The trials and process noise of each iteration, the next iteration's drawn in the background.

    Drawing 64 trials of noise for a 500-unit network takes about half as long as the gradient;
    a helper thread draws iteration k + 1's while iteration k's gradient is computed.  The draws
    are the same, in the same order, as drawing them in line (one thread draws at a time, from the
    same generators), and :meth:`states` gives the generator states *after the draws in use*, so a
    checkpoint resumes exactly: prefetched draws not yet used are simply drawn again.  The
    iterations :func:`clean_iteration` names get no noise (and draw none).
    """

    def __init__(
        self,
        model: Trainable,
        task: Task,
        batch_size: int,
        rng_batch: np.random.Generator,
        rng_noise: np.random.Generator,
        iteration: int = 0,
        clean_fraction: float = 0.0,
    ) -> None:
        self.model, self.task, self.batch_size = model, task, batch_size
        self.rng_batch, self.rng_noise = rng_batch, rng_noise
        self.iteration, self.clean_fraction = iteration, clean_fraction
        self._states = self._current()
        self._next: Future | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cortexsim-draws")

    def _current(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return (copy.deepcopy(self.rng_batch.bit_generator.state), copy.deepcopy(self.rng_noise.bit_generator.state))

    def _draw(self, iteration: int) -> tuple[TrialBatch, np.ndarray | None]:
        batch = self.task.sample(self.batch_size, self.rng_batch)
        noisy = self.model.noise_std > 0 and not clean_iteration(iteration, self.clean_fraction)
        noise = self.model.noise(batch.n_trials, batch.n_steps, self.rng_noise) if noisy else None
        return batch, noise

    def take(self) -> tuple[TrialBatch, np.ndarray | None]:
        """The trials and noise of the current iteration; starts drawing the next iteration's."""
        drawn = self._next.result() if self._next is not None else self._draw(self.iteration)
        self._states = self._current()  # no draw is under way here
        self.iteration += 1
        self._next = self._pool.submit(self._draw, self.iteration)
        return drawn

    def states(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Generator states (batches, noise) after the draws handed out so far."""
        return self._states

    def __enter__(self) -> _Draws:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def clean_iteration(iteration: int, fraction: float) -> bool:
    """Whether 0-based training ``iteration`` is trained without process noise (``[train] clean_fraction``).

    Spread evenly: iteration ``i`` is clean when ``floor((i + 1) f) > floor(i f)``, so 0.5 alternates
    noisy and clean iterations (the second of each pair clean), 0 never and 1 always.
    """
    return math.floor((iteration + 1) * fraction + 1e-9) > math.floor(iteration * fraction + 1e-9)


def _iteration(
    model: Trainable,
    task: Task,
    config: TrainConfig,
    state: TrainState,
    draws: _Draws,
    penalties: Penalties,
    w_ref: float | None,
    validation: TrialBatch,
    stop: BarStop | None,
) -> None:
    """One training iteration: batch, gradient, Adam step, constraints, histories, validation."""
    batch, noise = draws.take()
    loss, grads, stats = model.loss_and_grad(batch, penalties, noise, w_ref=w_ref)
    if not math.isfinite(loss) or not all(np.all(np.isfinite(g)) for g in grads.values()):
        raise TrainingError(
            f"loss became {loss} at iteration {state.iteration}; stopped, {state.kept_checkpoint()}. "
            f"Lower train.learning_rate or train.clip_norm, or check the circuit gain."
        )
    lr = config.learning_rate * config.lr_final ** (state.iteration / config.max_iterations)
    norm = adam_step(state, grads, lr, config.clip_norm)
    model.enforce_constraints()
    state.iteration += 1
    for key, value in zip(
        TrainState.HISTORY_KEYS, (loss, stats["task_loss"], stats["r2"], norm, lr, stats["mean_rate"])
    ):
        state.history[key].append(float(value))
    if state.iteration % config.eval_every == 0:
        _validate(model, task, validation, state, stop)


def _stop_reason(state: TrainState, config: TrainConfig) -> str:
    if state.iteration >= config.max_iterations:
        return f"reached max_iterations = {config.max_iterations}"
    if config.max_seconds is not None and state.elapsed >= config.max_seconds:
        return f"{BUDGET_STOP} max_seconds = {config.max_seconds:g} s reached"
    if state.bad_evals >= config.patience:
        return f"no validation improvement in {config.patience} evaluations (early stopping)"
    r2 = state.history["val_r2"]
    if r2 and r2[-1] >= config.target_r2:
        return f"validation R2 {r2[-1]:.4f} reached target_r2 = {config.target_r2}"
    return ""


def _validate(model: Trainable, task: Task, validation: TrialBatch, state: TrainState, stop: BarStop | None) -> None:
    own = getattr(model, "validation_loss", None)  # a model with more than a task (a fit) judges itself
    outputs = None
    if own is not None:
        val_loss, r2 = own(validation)
    else:
        outputs = model.simulate(validation).outputs
        r2 = r2_score(outputs, validation.targets, validation.mask)
        err = (outputs - validation.targets) * validation.mask
        val_loss = float(np.sum(err**2) / max(validation.mask.sum(), 1) / model.output_scale**2)
    state.history["val_iteration"].append(state.iteration)
    state.history["val_loss"].append(val_loss)
    state.history["val_r2"].append(r2)
    met = False
    if stop is not None:
        outputs = model.simulate(validation).outputs if outputs is None else outputs
        state.bars_missed = stop.missed(task, outputs, validation)
        met = not state.bars_missed
    if val_loss < state.best_val_loss or met:
        state.best_val_loss, state.best_iteration, state.bad_evals = val_loss, state.iteration, 0
        state.best_params = {k: p.copy() for k, p in model.params.items()}
    else:
        state.bad_evals += 1
    if met:  # kept in the checkpoint, so a resumed run stops here too
        state.done = f"{BARS_STOP} at iteration {state.iteration}"


def _progress(state: TrainState, config: TrainConfig, first: int, elapsed0: float, log: Callable[[str], None]) -> None:
    h = state.history
    speed = (state.iteration - first) / max(state.elapsed - elapsed0, 1e-9)
    left = (config.max_iterations - state.iteration) / max(speed, 1e-9)
    if config.max_seconds is not None:
        left = min(left, config.max_seconds - state.elapsed)
    val = f"  val R2 {h['val_r2'][-1]:.4f}" if h["val_r2"] else ""
    missed = f"  bars missed: {state.bars_missed}" if config.stop_at_bars and state.bars_missed else ""
    log(
        f"iter {state.iteration:5d}/{config.max_iterations}  loss {h['loss'][-1]:.3e}  "
        f"R2 {h['r2'][-1]:.4f}{val}  rate {h['mean_rate'][-1]:.1f} Hz  {speed:.1f} it/s  "
        f"ETA {_fmt_time(left)}{missed}"
    )


def _save(state: TrainState, draws: _Draws, checkpoint: Callable[[TrainState], None]) -> None:
    state.rng_batch, state.rng_noise = (copy.deepcopy(s) for s in draws.states())
    checkpoint(state)
    state.checkpointed_at = state.iteration
