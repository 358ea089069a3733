"""Perturbations of a trained arm model: curl-field adaptation and mechanical bumps.

The experiments motor neuroscientists run on reaching monkeys and humans, run on a model that
drives the six-muscle arm in closed loop (:class:`~cortexsim.closed_loop.ArmRateNetwork` or
:class:`~cortexsim.closed_loop.ArmANN`).  Both protocols are pure: a model, a task and the
``[perturb]`` settings in, a frozen result with its tables and metrics out; the pipeline's
``perturb`` and ``ann:<arch>`` stages write them (``/perturbation``).

**Curl field** (:func:`curl_protocol`; Shadmehr & Mussa-Ivaldi 1994, MotorNet's curl-field
center-out).  A velocity-dependent force ``F = B v`` acts on the hand
(:meth:`~cortexsim.closed_loop.Body.with_curl`).  As in a lab session, on the held-out,
noise-free evaluation reaches:

1. *baseline* -- the trained model in the null field;
2. *first exposure* -- the same model meets the field;
3. *adaptation* -- training continues in the field (``adapt_iterations``, Adam at a constant
   ``adapt_learning_rate``; every group, or only the input and readout weights), its lateral
   deviation measured every ``curve_every`` iterations (the learning curve);
4. *after adaptation* -- the adapted model in the field;
5. *aftereffect* -- the adapted model on null-field probe trials (``catch`` keeps its meaning of
   no-go trials in cortexsim, so these are called probes);
6. *washout* -- training continues in the null field (``washout_iterations``).

A reach's lateral deviation is its signed peak distance from the straight path
(:func:`cortexsim.metrics.lateral_deviation`, positive to the left).  The headline numbers:
``<model>_curl_deviation_ratio`` = mean ``|deviation|`` after adaptation / at first exposure, and
``<model>_curl_aftereffect_cm`` = the probes' mean signed deviation relative to baseline, signed
so that positive is opposite to the first exposure's deviation (the mirror-image aftereffect).
Which populations carry the adaptation: each population's RMS change of rate between first
exposure and after adaptation (both in the field), relative to its RMS rate.

**Bumps** (:func:`bump_protocol`; the Computation-through-Dynamics benchmark perturbs half its
trials so).  A force pulse (``bump_force`` N for ``bump_duration`` s, in ``bump_directions``
directions) hits the hand once per trial: during the delay's hold (``bump_hold_time`` after
target onset) or at the unperturbed reach's peak speed.  Per bumped trial, against the
unperturbed trial of the same condition (both noise-free): the peak displacement and the recovery
time (from onset until the hand stays within 1 cm of the unperturbed path,
:func:`cortexsim.metrics.recovery_time_ms`).  Per population, the response latency
(:func:`cortexsim.metrics.response_latency_ms`) is read as a lab reads it, from noisy trials:
for each bumped trial, the PSTH of :data:`LATENCY_REPEATS` noisy repeats against the PSTH of as
many unperturbed ones (independent noise); the population's mean ``|delta rate|`` is averaged over
the bumped trials aligned to the bump, and the latency is the first step after onset where it
exceeds its own pre-bump mean by 3 SD (over the 200 ms before the bump) for 2 consecutive steps.

The spiking twin of the circuit (:func:`curl_twin`, :func:`bump_twin`) runs the same trials: for
bumps, the bumped and unperturbed twin trials share their noise seed, so until the bump they are
identical and the difference afterwards is the bump's doing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import metrics
from .closed_loop import ArmRateNetwork
from .config import LIFParams, PerturbConfig, TrainConfig
from .errors import ConfigError
from .streams import stream
from .tasks import CenterOutTask, TrialBatch
from .train import new_state, train

Log = Callable[[str], None]

IO_GROUPS = ("w_in", "w_out", "b_out")
"""The parameter groups ``adapt_params = "io"`` lets learn: input and readout weights."""

RECOVERY_TOLERANCE = 0.01
"""Distance (m) from the unperturbed path counted as recovered (1 cm)."""

LATENCY_REPEATS = 4
"""Noisy trials per bumped trial (and as many unperturbed) whose PSTHs the response latencies compare."""

LATENCY_WINDOW = (-0.2, 0.4)
"""Window (s) around a bump's onset of the aligned responses: the noise floor before, the response after."""


# -- shared pieces ------------------------------------------------------------------------------


def _prefix_check(model) -> None:
    if getattr(model, "body", None) is None:
        raise ConfigError(
            f'perturbations need a model that drives a body ([effector] kind = "arm26" or "pointmass24"), '
            f"got {type(model).__name__}"
        )


def population_slices(model) -> list[tuple[str, slice]]:
    """The populations of a model (name, unit slice): a circuit's, or an ANN's one ``"hidden"`` (``populations()``)."""
    return model.populations()


class _Frozen:
    """A :class:`~cortexsim.train.Trainable` view of ``model`` whose groups outside ``groups`` do not learn.

    Their gradients are set to zero, so Adam's moments -- and the step -- stay zero for them.
    """

    def __init__(self, model, groups: tuple[str, ...]):
        self.model, self.groups = model, groups

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    @property
    def params(self):
        return self.model.params

    @params.setter
    def params(self, value) -> None:
        self.model.params = value

    def loss_and_grad(self, *args, **kwargs):
        loss, grads, stats = self.model.loss_and_grad(*args, **kwargs)
        return loss, {k: (g if k in self.groups else np.zeros_like(g)) for k, g in grads.items()}, stats


@dataclass(frozen=True)
class TwinSettings:
    """How the spiking twin runs the perturbed trials (``[spiking]``'s settings and the run's seed).

    Attributes
    ----------
    seed : int
        Seeds the mapping's calibration, Brian2's noise and the loop's sensory and motor noise.
    k : int
        LIF neurons per rate unit.
    dt : float
        Simulation step (s).
    target : str
        Brian2 target (``"cython"`` or ``"numpy"``: the loop needs a runtime target).
    readout_tau : float
        PT5B's readout filter (s).
    """

    seed: int
    k: int
    dt: float
    target: str
    readout_tau: float

    def run(self, net: ArmRateNetwork, params, batch: TrialBatch, trials: int) -> np.ndarray:
        """The twin of ``params`` driving ``net``'s body on ``batch``: its hand, (conditions, trials, time, 2) m."""
        from .spiking.arm import run_arm_params

        out = run_arm_params(
            net, params, batch, trials, seed=self.seed, target=self.target, readout_tau=self.readout_tau
        )
        return out.outputs

    def map(self, net: ArmRateNetwork, lif: LIFParams):
        """The twin's parameters for ``net`` (:func:`cortexsim.spiking.mapping.map_rate_to_spiking`)."""
        from .spiking.mapping import map_rate_to_spiking

        return map_rate_to_spiking(net, lif, k=self.k, dt=self.dt, seed=int(self.seed))


# -- curl field -----------------------------------------------------------------------------------

PHASES = ("baseline", "first_exposure", "after_adaptation", "aftereffect", "washout")
"""The curl protocol's phases, in order (the field is on in ``first_exposure`` and ``after_adaptation``)."""


@dataclass(frozen=True)
class CurlResult:
    """The curl-field protocol of one model (:func:`curl_protocol`).

    Attributes
    ----------
    phases : tuple of dict
        One row per phase (:data:`PHASES`): ``phase``, ``field_on`` (0/1), ``deviation_cm`` (mean
        ``|lateral deviation|``), ``signed_deviation_cm`` (mean signed, + left), ``endpoint_error_cm``.
    curve : tuple of dict
        The learning curve: ``block`` ("adaptation" or "washout"), ``iteration``, ``deviation_cm``,
        ``signed_deviation_cm``, measured in the block's field.
    populations : tuple of dict
        ``population``, ``activity_change`` (RMS rate change between first exposure and after
        adaptation over RMS rate at first exposure) and ``weight_change`` (relative RMS change of
        the population's incoming recurrent and input weights; NaN for an ANN).
    hands : dict of str to ndarray
        Hand path per phase, (conditions, time, 2), m relative to the start.
    metrics : dict of str to float
        ``<prefix>_curl_*``: ``deviation_ratio``, ``aftereffect_cm``, ``<phase>_deviation_cm``,
        ``after_endpoint_error_cm``, ``washout_deviation_cm``.
    adapted_params, washout_params : dict of str to ndarray
        The parameters after adaptation and after washout.
    """

    phases: tuple[dict, ...]
    curve: tuple[dict, ...]
    populations: tuple[dict, ...]
    hands: dict[str, np.ndarray]
    metrics: dict[str, float]
    adapted_params: dict[str, np.ndarray]
    washout_params: dict[str, np.ndarray]


def deviation_summary(hand: np.ndarray, batch: TrialBatch) -> tuple[float, float]:
    """Mean ``|lateral deviation|`` and mean signed lateral deviation (cm) of the reach trials of ``batch``."""
    dev = metrics.lateral_deviation(hand, batch)
    dev = dev[np.isfinite(dev)]
    return float(100.0 * np.mean(np.abs(dev))), float(100.0 * np.mean(dev))


def _phase_row(phase: str, field_on: bool, hand: np.ndarray, batch: TrialBatch) -> dict:
    mean_abs, signed = deviation_summary(hand, batch)
    return {
        "phase": phase,
        "field_on": float(field_on),
        "deviation_cm": mean_abs,
        "signed_deviation_cm": signed,
        "endpoint_error_cm": metrics.endpoint_error_cm(hand, batch),
    }


def aftereffect_cm(baseline: float, first: float, probe: float) -> float:
    """The aftereffect (cm): the probes' signed deviation from baseline, + when opposite to the first exposure's.

    Parameters
    ----------
    baseline, first, probe : float
        Mean signed lateral deviations (cm) at baseline, at first exposure and on the null-field
        probes after adaptation.
    """
    direction = np.sign(first - baseline) or 1.0
    return float(-direction * (probe - baseline))


def _adapt(
    model,
    task: CenterOutTask,
    train_config: TrainConfig,
    pc: PerturbConfig,
    iterations: int,
    validation: TrialBatch,
    evaluation: TrialBatch,
    seed: int,
    block: str,
    log: Log,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Continue training ``model`` (in place) for ``iterations``; returns its last parameters and the curve."""
    curve: list[dict] = []

    def measure(iteration: int) -> None:
        if curve and curve[-1]["iteration"] == iteration:
            return
        hand = model.simulate_loop(evaluation).hand
        mean_abs, signed = deviation_summary(hand, evaluation)
        curve.append(
            {"block": block, "iteration": float(iteration), "deviation_cm": mean_abs, "signed_deviation_cm": signed}
        )

    measure(0)
    if iterations == 0:
        return {k: p.copy() for k, p in model.params.items()}, curve
    config = replace(
        train_config,
        max_iterations=iterations,
        max_seconds=None,
        learning_rate=pc.adapt_learning_rate,
        lr_final=1.0,
        eval_every=min(pc.curve_every, iterations),
        patience=10**6,
        target_r2=1.0,
        stop_at_bars=False,  # adaptation runs its blocks whole: the learning is what is measured
        log_every=max(pc.curve_every, iterations // 4),
        checkpoint_every=pc.curve_every,
    )
    learner = model if pc.adapt_params == "all" else _Frozen(model, IO_GROUPS)
    rng = stream(seed, "adapt-batches", len(block))
    state = new_state(model.params, model.param_scales(), rng, stream(seed, "adapt-noise", len(block)))

    def checkpoint(s) -> None:
        measure(s.iteration)

    state = train(learner, task, config, state, validation=validation, checkpoint=checkpoint, log=log, keep="last")
    return {k: p.copy() for k, p in state.best_params.items()}, curve


def _population_change(model, first, after, base_params, new_params) -> list[dict]:
    rows = []
    for name, sl in population_slices(model):
        a, b = first[:, :, sl], after[:, :, sl]
        scale = np.sqrt(np.mean(a**2))
        change = float(np.sqrt(np.mean((b - a) ** 2)) / scale) if scale > 0 else float("nan")
        weight = float("nan")
        if isinstance(model, ArmRateNetwork):
            old = np.concatenate([base_params["w"][sl].ravel(), base_params["w_in"][sl].ravel()])
            new = np.concatenate([new_params["w"][sl].ravel(), new_params["w_in"][sl].ravel()])
            norm = np.sqrt(np.mean(old**2))
            weight = float(np.sqrt(np.mean((new - old) ** 2)) / norm) if norm > 0 else float("nan")
        rows.append({"population": name, "activity_change": change, "weight_change": weight})
    return rows


def curl_protocol(
    model,
    task: CenterOutTask,
    train_config: TrainConfig,
    pc: PerturbConfig,
    validation: TrialBatch,
    *,
    seed: int,
    prefix: str,
    log: Log | None = None,
) -> CurlResult:
    """Run the curl-field protocol (see the module notes) on a trained arm model.

    Parameters
    ----------
    model : ArmRateNetwork or ArmANN
        The trained model (not changed: the protocol trains copies).
    task : CenterOutTask
        The task it was trained on; adaptation and washout draw their trials from it.
    train_config : TrainConfig
        The model's training settings (batch size, penalties, clipping); the iteration count,
        step size, schedule and stopping rules are the protocol's.
    pc : PerturbConfig
        ``curl_field``, ``adapt_iterations``, ``washout_iterations``, ``adapt_learning_rate``,
        ``adapt_params``, ``curve_every``.
    validation : TrialBatch
        Noise-free trials whose loss the training log reports (in the block's field); each block
        keeps its last iteration's parameters, since the learning is what is measured.
    seed : int
        Seeds the trials and noise of adaptation and washout.
    prefix : str
        Metric prefix (``"rate"``, ``"ann_gru"``).
    log : callable, optional

    Returns
    -------
    CurlResult
    """
    _prefix_check(model)
    log = log or (lambda line: None)
    evaluation = task.evaluation_set()
    null_body = model.body
    field_body = null_body.with_curl(pc.field)
    null = model.with_body(null_body)
    curled = model.with_body(field_body)
    records = {"baseline": null.simulate_loop(evaluation), "first_exposure": curled.simulate_loop(evaluation)}
    log(
        f"[curl] {prefix}: baseline deviation {deviation_summary(records['baseline'].hand, evaluation)[0]:.2f} cm, "
        f"first exposure {deviation_summary(records['first_exposure'].hand, evaluation)[0]:.2f} cm; adapting "
        f"{pc.adapt_iterations} iterations ({pc.adapt_params} parameters)"
    )
    adapted_params, curve = _adapt(
        curled, task, train_config, pc, pc.adapt_iterations, validation, evaluation, seed, "adaptation", log
    )
    curled.set_params(adapted_params)
    records["after_adaptation"] = curled.simulate_loop(evaluation)
    probe = model.with_body(null_body)
    probe.set_params(adapted_params)
    records["aftereffect"] = probe.simulate_loop(evaluation)
    washout_params, washout_curve = _adapt(
        probe, task, train_config, pc, pc.washout_iterations, validation, evaluation, seed, "washout", log
    )
    probe.set_params(washout_params)
    records["washout"] = probe.simulate_loop(evaluation)
    rows = [_phase_row(ph, ph in ("first_exposure", "after_adaptation"), records[ph].hand, evaluation) for ph in PHASES]
    by = {r["phase"]: r for r in rows}
    first, after = by["first_exposure"]["deviation_cm"], by["after_adaptation"]["deviation_cm"]
    m = {
        f"{prefix}_curl_deviation_ratio": after / first if first > 0 else float("nan"),
        f"{prefix}_curl_aftereffect_cm": aftereffect_cm(
            by["baseline"]["signed_deviation_cm"],
            by["first_exposure"]["signed_deviation_cm"],
            by["aftereffect"]["signed_deviation_cm"],
        ),
        **{f"{prefix}_curl_{ph}_deviation_cm": by[ph]["deviation_cm"] for ph in PHASES},
        f"{prefix}_curl_after_endpoint_error_cm": by["after_adaptation"]["endpoint_error_cm"],
    }
    log(
        f"[curl] {prefix}: after adaptation {after:.2f} cm (ratio {m[f'{prefix}_curl_deviation_ratio']:.2f}), "
        f"aftereffect {m[f'{prefix}_curl_aftereffect_cm']:+.2f} cm, washout {by['washout']['deviation_cm']:.2f} cm"
    )
    populations = _population_change(
        model,
        records["first_exposure"].rates,
        records["after_adaptation"].rates,
        model.params,
        adapted_params,
    )
    return CurlResult(
        phases=tuple(rows),
        curve=tuple(curve + washout_curve),
        populations=tuple(populations),
        hands={ph: records[ph].hand for ph in PHASES},
        metrics=m,
        adapted_params=adapted_params,
        washout_params=washout_params,
    )


def curl_twin(
    net: ArmRateNetwork, result: CurlResult, pc: PerturbConfig, lif: LIFParams, task: CenterOutTask, twin: TwinSettings
) -> tuple[list[dict], dict[str, float], dict[str, np.ndarray]]:
    """The spiking twin through the curl protocol's test phases (before and after adaptation, in and out of the field).

    The twin of the trained circuit is run at baseline and at first exposure, the twin of the
    adapted circuit after adaptation (field on) and on the probes (field off), each on the
    evaluation conditions with ``pc.spiking_trials`` trials.

    Returns
    -------
    rows : list of dict
        One per phase, as :attr:`CurlResult.phases` (means over every single trial).
    metrics : dict
        ``spiking_curl_deviation_ratio``, ``spiking_curl_aftereffect_cm``, ``spiking_curl_<phase>_deviation_cm``.
    hands : dict of str to ndarray
        Trial-averaged hand path per phase, (conditions, time, 2).
    """
    from .spiking.result import flat_batch

    evaluation = task.evaluation_set()
    adapted = net.with_body(net.body)
    adapted.set_params(result.adapted_params)
    runs = {
        "baseline": (net, False),
        "first_exposure": (net, True),
        "after_adaptation": (adapted, True),
        "aftereffect": (adapted, False),
    }
    mapped: dict[int, object] = {}
    rows, hands = [], {}
    trials = flat_batch(evaluation, pc.spiking_trials)
    for phase, (model, on) in runs.items():
        params = mapped.get(id(model))
        if params is None:
            params = mapped[id(model)] = twin.map(model, lif)
        body = model.body.with_curl(pc.field if on else None)
        out = twin.run(model.with_body(body), params, evaluation, pc.spiking_trials)
        rows.append(_phase_row(phase, on, out.reshape(-1, evaluation.n_steps, 2), trials))
        hands[phase] = out.mean(axis=1)
    by = {r["phase"]: r for r in rows}
    first = by["first_exposure"]["deviation_cm"]
    m = {
        "spiking_curl_deviation_ratio": by["after_adaptation"]["deviation_cm"] / first if first > 0 else float("nan"),
        "spiking_curl_aftereffect_cm": aftereffect_cm(
            by["baseline"]["signed_deviation_cm"],
            by["first_exposure"]["signed_deviation_cm"],
            by["aftereffect"]["signed_deviation_cm"],
        ),
        **{f"spiking_curl_{ph}_deviation_cm": by[ph]["deviation_cm"] for ph in runs},
    }
    return rows, m, hands


# -- bumps ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BumpResult:
    """The bump protocol of one model (:func:`bump_protocol`).

    Attributes
    ----------
    trials : tuple of dict
        One row per bumped trial: ``timing`` ("hold" / "peak_speed"), ``direction_deg``,
        ``condition``, ``onset_s``, ``peak_displacement_cm``, ``recovery_ms`` (inf: not back by the
        trial's end).
    latencies : tuple of dict
        ``timing``, ``population``, ``latency_ms`` (NaN: no response above the noise floor),
        ``peak_change_hz`` (peak of the aligned mean ``|delta rate|``).
    aligned_hand : ndarray, shape (timings, directions, window, 2)
        Hand displacement from the unperturbed path aligned to the bump (m), mean over conditions.
    aligned_change : ndarray, shape (timings, populations, window)
        Mean ``|delta rate|`` (Hz; ``|delta h|`` for an ANN) per population between noisy bumped and
        unperturbed trials, aligned to the bump (before it: the noise floor).
    window : ndarray, shape (window,)
        Time (s) relative to the bump's onset of the aligned arrays.
    populations : tuple of str
    timings : tuple of str
    metrics : dict of str to float
        ``<prefix>_bump_recovery_ms`` (median over bumped trials), ``..._recovery_max_ms``,
        ``..._displacement_cm`` (median peak displacement), and per timing ``..._recovery_ms_<timing>``.
    """

    trials: tuple[dict, ...]
    latencies: tuple[dict, ...]
    aligned_hand: np.ndarray
    aligned_change: np.ndarray
    window: np.ndarray
    populations: tuple[str, ...]
    timings: tuple[str, ...]
    metrics: dict[str, float]


@dataclass(frozen=True)
class BumpTrials:
    """The bumped trials of an evaluation set: the batch (with its per-step loads) and what each trial is.

    Attributes
    ----------
    batch : TrialBatch
        ``params["endpoint_load"]`` (trials, time, 2) holds each trial's pulse (N).
    condition : ndarray, shape (trials,)
        The evaluation condition each trial bumps (index into the evaluation set).
    timing : tuple of str
        Per trial, ``"hold"`` or ``"peak_speed"``.
    direction : ndarray, shape (trials,)
        Pulse direction (rad).
    onset_step : ndarray, shape (trials,)
    """

    batch: TrialBatch
    condition: np.ndarray
    timing: tuple[str, ...]
    direction: np.ndarray
    onset_step: np.ndarray


def bump_onsets(reference_hand: np.ndarray, evaluation: TrialBatch, pc: PerturbConfig) -> dict[str, np.ndarray]:
    """Bump onset step per condition and timing: ``hold`` (``bump_hold_time`` after target onset), ``peak_speed``.

    Parameters
    ----------
    reference_hand : ndarray, shape (conditions, time, 2)
        The unperturbed hand paths (m); ``peak_speed`` bumps where their speed peaks.
    evaluation : TrialBatch
    pc : PerturbConfig
    """
    dt, p = evaluation.dt, evaluation.params
    hold = np.round((p["target_on"] + pc.bump_hold_time) / dt).astype(int)
    go = np.round(p["go"] / dt).astype(int)
    pulse = int(round(pc.bump_duration / dt))
    late = hold + pulse > go
    if np.any(late):
        raise ConfigError(
            f"perturb.bump_hold_time: a {pc.bump_hold_time} s hold bump of {pc.bump_duration} s ends after the go cue "
            f"({float(np.min(p['go'] - p['target_on'])):.2f} s after target onset); make it shorter"
        )
    speed = metrics.hand_speed(reference_hand, dt)
    stop = np.round(p["move_off"] / dt).astype(int)  # the peak of the reach, not of a late drift
    peak = np.array([g + int(np.argmax(speed[i, g : max(s, g + 1)])) for i, (g, s) in enumerate(zip(go, stop))])
    return {"hold": hold, "peak_speed": peak}


def bump_trials(
    evaluation: TrialBatch, onsets: dict[str, np.ndarray], pc: PerturbConfig, conditions: np.ndarray | None = None
) -> BumpTrials:
    """Every (timing, direction, condition) trial with its pulse; ``conditions`` (per direction) picks a subset.

    With ``conditions`` (one condition per direction) each direction bumps only that condition,
    the design the spiking twin runs to stay affordable.
    """
    n_cond, n_steps = evaluation.n_trials, evaluation.n_steps
    angles = 2 * np.pi * np.arange(pc.bump_directions) / pc.bump_directions
    pulse = int(round(pc.bump_duration / evaluation.dt))
    cond, timing, direction, onset = [], [], [], []
    for when in pc.bump_times:
        for d, angle in enumerate(angles):
            picks = range(n_cond) if conditions is None else [int(conditions[d])]
            for c in picks:
                cond.append(c)
                timing.append(when)
                direction.append(angle)
                onset.append(int(onsets[when][c]))
    cond, direction, onset = np.array(cond), np.array(direction), np.array(onset)
    load = np.zeros((cond.size, n_steps, 2))
    for i in range(cond.size):
        stop = min(onset[i] + pulse, n_steps)
        load[i, onset[i] : stop] = pc.bump_force * np.array([np.cos(direction[i]), np.sin(direction[i])])
    picked = evaluation.take(cond)
    batch = replace(picked, params={**picked.params, "endpoint_load": load})
    return BumpTrials(batch, cond, tuple(timing), direction, onset)


def _aligned(x: np.ndarray, onset: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``x[i, onset[i] + lo : onset[i] + hi]`` per trial, NaN outside the trial, (trials, hi - lo, ...)."""
    T = x.shape[1]
    raw = onset[:, None] + np.arange(lo, hi)[None, :]
    idx = np.clip(raw, 0, T - 1)
    out = np.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1).astype(float)
    out[(raw < 0) | (raw >= T)] = np.nan
    return out


def bump_protocol(model, task: CenterOutTask, pc: PerturbConfig, *, seed: int, prefix: str) -> BumpResult:
    """Run the bump protocol (see the module notes) on a trained arm model; noise-free but for the noise floor.

    Parameters
    ----------
    model : ArmRateNetwork or ArmANN
    task : CenterOutTask
    pc : PerturbConfig
        ``bump_force``, ``bump_duration``, ``bump_directions``, ``bump_times``, ``bump_hold_time``.
    seed : int
        Seeds the noisy unperturbed trials that set each population's noise floor.
    prefix : str
        Metric prefix.

    Returns
    -------
    BumpResult
    """
    _prefix_check(model)
    evaluation = task.evaluation_set()
    dt = evaluation.dt
    reference = model.simulate_loop(evaluation)
    onsets = bump_onsets(reference.hand, evaluation, pc)
    bumped = bump_trials(evaluation, onsets, pc)
    record = model.simulate_loop(bumped.batch)
    # latencies: the PSTHs of LATENCY_REPEATS noisy bumped trials against those of as many noisy
    # unperturbed ones (independent noise), per bumped trial
    # (one batch of bumped trials at a time, so memory does not grow with the repeats)
    calm = bumped.batch.without("endpoint_load")
    rng_hit, rng_calm = stream(seed, "bump-latency-hit"), stream(seed, "bump-latency-calm")
    psth_hit = sum(model.simulate_loop(bumped.batch, rng_hit).rates for _ in range(LATENCY_REPEATS))
    psth_calm = sum(model.simulate_loop(calm, rng_calm).rates for _ in range(LATENCY_REPEATS))
    psth_hit, psth_calm = psth_hit / LATENCY_REPEATS, psth_calm / LATENCY_REPEATS
    ref_hand = reference.hand[bumped.condition]
    onset_s = bumped.onset_step * dt
    displacement = metrics.bump_displacement(record.hand, ref_hand, onset_s, dt)
    recovery = metrics.recovery_time_ms(record.hand, ref_hand, onset_s, dt, RECOVERY_TOLERANCE)
    trials = _bump_rows(bumped.timing, bumped.direction, bumped.condition, onset_s, displacement, recovery)
    lo, hi = (int(round(w / dt)) for w in LATENCY_WINDOW)
    window = np.arange(lo, hi) * dt
    pops = population_slices(model)
    timings = tuple(pc.bump_times)
    directions = pc.bump_directions
    change = np.abs(psth_hit - psth_calm)
    aligned_hand = np.zeros((len(timings), directions, hi - lo, 2))
    aligned_change = np.zeros((len(timings), len(pops), hi - lo))
    latencies = []
    timing_of = np.array(bumped.timing)
    for j, when in enumerate(timings):
        sel = np.flatnonzero(timing_of == when)
        dhand = _aligned(record.hand[sel] - ref_hand[sel], bumped.onset_step[sel], lo, hi)
        d_index = np.round(bumped.direction[sel] / (2 * np.pi / directions)).astype(int) % directions
        for d in range(directions):
            aligned_hand[j, d] = np.nanmean(dhand[d_index == d], axis=0)
        for p, (name, sl) in enumerate(pops):
            resp = _aligned(change[sel][:, :, sl].mean(axis=2, keepdims=True), bumped.onset_step[sel], lo, hi)
            resp = np.nanmean(resp[:, :, 0], axis=0)  # mean over trials of the population's mean |delta rate|
            aligned_change[j, p] = resp
            latencies.append(
                {
                    "timing": when,
                    "population": name,
                    "latency_ms": metrics.response_latency_ms(resp, resp[:-lo], -lo, dt),
                    "peak_change_hz": float(np.nanmax(resp[-lo:])),
                }
            )
    return BumpResult(
        trials=tuple(trials),
        latencies=tuple(latencies),
        aligned_hand=aligned_hand,
        aligned_change=aligned_change,
        window=window,
        populations=tuple(name for name, _ in pops),
        timings=timings,
        metrics=_bump_metrics(prefix, timing_of, displacement, recovery, timings),
    )


def _bump_rows(timing, direction, condition, onset_s, displacement, recovery) -> list[dict]:
    """One row per bumped trial (:attr:`BumpResult.trials`)."""
    return [
        {
            "timing": str(timing[i]),
            "direction_deg": float(np.rad2deg(direction[i])),
            "condition": float(condition[i]),
            "onset_s": float(onset_s[i]),
            "peak_displacement_cm": float(100 * displacement[i]),
            "recovery_ms": float(recovery[i]),
        }
        for i in range(len(timing))
    ]


def _bump_metrics(prefix: str, timing, displacement, recovery, timings) -> dict[str, float]:
    """``<prefix>_bump_*``: medians (overall and per timing) and the slowest recovery."""
    timing = np.asarray(timing)
    m = {
        f"{prefix}_bump_recovery_ms": float(np.median(recovery)),
        f"{prefix}_bump_recovery_max_ms": float(np.max(recovery)),
        f"{prefix}_bump_displacement_cm": float(100 * np.median(displacement)),
    }
    for when in timings:
        sel = timing == when
        m[f"{prefix}_bump_recovery_ms_{when}"] = float(np.median(recovery[sel]))
        m[f"{prefix}_bump_displacement_cm_{when}"] = float(100 * np.median(displacement[sel]))
    return m


def bump_twin(
    net: ArmRateNetwork, pc: PerturbConfig, lif: LIFParams, task: CenterOutTask, twin: TwinSettings
) -> tuple[list[dict], dict[str, float]]:
    """The spiking twin bumped: each direction bumps one condition (direction ``d``, condition ``d`` mod conditions).

    The bumped and the unperturbed twin trials share Brian2's seed and the loop's noise, so they are
    identical until the bump; onsets are the rate model's (:func:`bump_onsets`).

    Returns
    -------
    rows : list of dict
        One per twin trial, as :attr:`BumpResult.trials`.
    metrics : dict
        ``spiking_bump_recovery_ms`` (median), ``spiking_bump_recovery_max_ms``,
        ``spiking_bump_displacement_cm`` and per timing ``spiking_bump_recovery_ms_<timing>`` and
        ``spiking_bump_displacement_cm_<timing>``.
    """
    evaluation = task.evaluation_set()
    reference = net.simulate_loop(evaluation)
    onsets = bump_onsets(reference.hand, evaluation, pc)
    picks = np.arange(pc.bump_directions) % evaluation.n_trials
    bumped = bump_trials(evaluation, onsets, pc, conditions=picks)
    params = twin.map(net, lif)
    n, T = pc.spiking_trials, evaluation.n_steps
    hit = twin.run(net, params, bumped.batch, n).reshape(-1, T, 2)
    calm = twin.run(net, params, bumped.batch.without("endpoint_load"), n).reshape(-1, T, 2)
    onset_s = np.repeat(bumped.onset_step, n) * evaluation.dt
    displacement = metrics.bump_displacement(hit, calm, onset_s, evaluation.dt)
    recovery = metrics.recovery_time_ms(hit, calm, onset_s, evaluation.dt, RECOVERY_TOLERANCE)
    timing = np.repeat(np.array(bumped.timing), n)
    rows = _bump_rows(
        timing, np.repeat(bumped.direction, n), np.repeat(bumped.condition, n), onset_s, displacement, recovery
    )
    return rows, _bump_metrics("spiking", timing, displacement, recovery, pc.bump_times)


__all__ = [
    "BumpResult",
    "BumpTrials",
    "CurlResult",
    "TwinSettings",
    "IO_GROUPS",
    "PHASES",
    "aftereffect_cm",
    "bump_onsets",
    "bump_protocol",
    "bump_trials",
    "bump_twin",
    "curl_protocol",
    "curl_twin",
    "deviation_summary",
    "population_slices",
]
