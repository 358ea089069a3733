"""Scoring a run against recorded single trials, with the Neural Latents Benchmark's measures.

:func:`score_run` takes a run file and an NWB file of recorded trials (Units with spike
times, a trials table with an alignment event and a target angle or condition, hand velocity,
optionally a boolean Units column ``heldout``) and:

1. maps every recorded trial to a model condition: the one whose target angle is nearest
   (``target_angle`` column, rad), or through a mapping table (CSV ``recorded,model``: a
   recorded ``condition`` label and a model condition index);
2. bins each trial's spikes in ``bin_size`` bins (5 ms, as NLB) over ``window`` around the
   alignment event (default -250 to +450 ms around movement onset, NLB's MC_Maze window) and puts
   the model's condition-averaged rates on the same bins (the model step each bin centre falls in);
3. splits the trials into training and test trials (seeded; the split is stated);
4. fits on the training trials a ridge map from the model's rates (z-scored, the penalty chosen by
   5-fold cross-validation over training trials) to each recorded neuron's spike counts, and
   predicts every trial's rates (spikes per bin, floored at 1 % of the neuron's mean training count);
5. reports on the test trials, following ``nlb_tools.evaluation`` (Pei et al. 2021, *Neural Latents
   Benchmark '21*, arXiv:2109.04463; https://github.com/neurallatents/nlb_tools):

   ``co_bps``   co-smoothing bits per spike of the held-out neurons (all neurons when the file
                labels none): (NLL of each neuron's mean test count - NLL of the predictions),
                Poisson, divided by the test spikes and ln 2 (``bits_per_spike``);
   ``psth_r2``  R² of the predicted PSTHs (mean prediction over each condition's test trials)
                against the recorded ones (all trials of the recorded condition, Gaussian-smoothed),
                over all conditions, averaged over neurons (``eval_psth`` of nlb_tools 0.0.4,
                scikit-learn's ``r2_score``);
   ``vel_r2``   R² of hand velocity decoded from the predicted rates of all neurons by ridge
                regression fit on the training trials (penalty from ``logspace(-4, 0, 9)`` by 5-fold
                cross-validation, as ``fit_and_eval_decoder``).

The model here is the run's own circuit: its condition-averaged rates are the latents, so held-in
neurons are not inputs (as they are for a latent-variable model in NLB); the scores say how well
the circuit's dynamics span each recorded neuron.  Nothing here writes: the command line prints
the scores and writes them as JSON when asked.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import gammaln

from . import store
from .data import DataError, RecordedTrials, load_nwb_trials
from .errors import ConfigError, CortexsimError
from .fit_config import FIT_MODELS
from .model_id import ModelId
from .streams import stream

SCORE_STREAM = "score"
"""Name of the seed stream of the train/test split (as :func:`cortexsim.assembly.seeded_rng`)."""

DECODER_ALPHAS = np.logspace(-4, 0, 9)
"""Ridge penalties the velocity decoder chooses from (nlb_tools ``fit_and_eval_decoder``)."""

MAP_ALPHAS = np.logspace(-2, 5, 8)
"""Ridge penalties the model-to-neuron map chooses from (on z-scored model rates)."""

ZERO_RATE = 1e-9
"""What nlb_tools puts in place of a zero predicted rate (spikes per bin)."""


# --------------------------------------------------------------------------- the measures


def neg_log_likelihood(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Poisson negative log-likelihood: sum of ``r - n log r + log n!`` (nlb_tools ``neg_log_likelihood``).

    Parameters
    ----------
    rates : ndarray
        Predicted rates (spikes per bin), >= 0 (zeros become :data:`ZERO_RATE`).
    spikes : ndarray, same shape
        Spike counts; NaN entries are left out.

    Returns
    -------
    float
        In nats.
    """
    rates, spikes = np.asarray(rates, float), np.asarray(spikes, float)
    if rates.shape != spikes.shape:
        raise ValueError(f"rates {rates.shape} and spikes {spikes.shape} differ in shape")
    keep = ~np.isnan(spikes)
    rates, spikes = rates[keep], spikes[keep]
    if np.any(np.isnan(rates)) or np.any(rates < 0):
        raise ValueError("predicted rates must be finite and >= 0")
    rates = np.where(rates == 0, ZERO_RATE, rates)
    return float(np.sum(rates - spikes * np.log(rates) + gammaln(spikes + 1.0)))


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Bits per spike of predicted rates over each neuron's mean count (nlb_tools ``bits_per_spike``).

    Parameters
    ----------
    rates, spikes : ndarray, shape (trials, bins, neurons)
        Predicted rates and observed counts (spikes per bin).

    Returns
    -------
    float
        ``(NLL_null - NLL_model) / total spikes / ln 2``; the null model predicts every neuron's
        mean count over these trials and bins.  0 for the null itself, > 0 when better.
    """
    spikes = np.asarray(spikes, float)
    null = np.broadcast_to(np.nanmean(spikes, axis=(0, 1), keepdims=True), spikes.shape)
    return (neg_log_likelihood(null, spikes) - neg_log_likelihood(rates, spikes)) / np.nansum(spikes) / math.log(2)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R² averaged over columns, as scikit-learn's ``r2_score`` (``multioutput="uniform_average"``).

    A constant column scores 1 when predicted exactly, else 0.

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (samples, outputs)
    """
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept (scikit-learn ``Ridge(alpha)``).

    Parameters
    ----------
    x : ndarray, shape (samples, features)
    y : ndarray, shape (samples, outputs)
    alpha : float

    Returns
    -------
    weights : ndarray, shape (features, outputs)
    intercept : ndarray, shape (outputs,)
    """
    ((weights, intercept),) = ridge_path(x, y, [alpha])
    return weights, intercept


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`ridge_fit` for every penalty of ``alphas`` from one eigendecomposition of the centred Gram matrix."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc = x - mx
    evals, evecs = np.linalg.eigh(xc.T @ xc)
    proj = evecs.T @ (xc.T @ (y - my))
    out = []
    for alpha in alphas:
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(evals + alpha > 1e-12 * max(evals.max(), 1.0), 1.0 / (evals + alpha), 0.0)
        weights = evecs @ (inv[:, None] * proj)
        out.append((weights, my - mx @ weights))
    return out


def _folds(n: int, k: int) -> list[np.ndarray]:
    """Contiguous folds as scikit-learn's ``KFold(k)`` (no shuffle): the first ``n % k`` one longer."""
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [np.arange(bounds[i], bounds[i + 1]) for i in range(k)]


def ridge_cv(
    x: np.ndarray, y: np.ndarray, alphas: np.ndarray, n_folds: int = 5, groups: np.ndarray | None = None
) -> float:
    """The penalty of ``alphas`` with the best mean held-out R² over contiguous folds (``GridSearchCV``).

    ``groups`` (one label per sample, e.g. the trial) makes the folds whole groups, in order of
    first appearance; without, folds are contiguous samples as ``KFold``.
    """
    if groups is None:
        folds = _folds(x.shape[0], n_folds)
    else:
        labels = list(dict.fromkeys(groups.tolist()))
        parts = _folds(len(labels), min(n_folds, len(labels)))
        folds = [np.flatnonzero(np.isin(groups, [labels[i] for i in part])) for part in parts]
    scores = np.zeros((len(folds), len(alphas)))
    for i, test in enumerate(folds):
        train = np.setdiff1d(np.arange(x.shape[0]), test)
        for j, (w, b) in enumerate(ridge_path(x[train], y[train], alphas)):
            scores[i, j] = r2_score(y[test], x[test] @ w + b)
    return float(alphas[int(np.argmax(scores.mean(axis=0)))])  # the first of equals, as GridSearchCV


def fit_and_eval_decoder(
    train_rates: np.ndarray, train_behavior: np.ndarray, eval_rates: np.ndarray, eval_behavior: np.ndarray
) -> float:
    """Ridge decoder fit on training samples, R² on evaluation samples (nlb_tools ``fit_and_eval_decoder``).

    Parameters
    ----------
    train_rates, eval_rates : ndarray, shape (samples, neurons)
    train_behavior, eval_behavior : ndarray, shape (samples, dims)
        Samples with NaN behaviour are left out.
    """
    keep = ~np.isnan(train_behavior[:, 0])
    train_rates, train_behavior = train_rates[keep], train_behavior[keep]
    keep = ~np.isnan(eval_behavior[:, 0])
    eval_rates, eval_behavior = eval_rates[keep], eval_behavior[keep]
    alpha = ridge_cv(train_rates, train_behavior, DECODER_ALPHAS)
    w, b = ridge_fit(train_rates, train_behavior, alpha)
    return r2_score(eval_behavior, eval_rates @ w + b)


def eval_psth(psth: np.ndarray, eval_rates: np.ndarray, eval_cond_idx: list[np.ndarray]) -> float:
    """R² of the predicted PSTHs against the recorded ones, over all conditions (nlb_tools 0.0.4 ``eval_psth``).

    Parameters
    ----------
    psth : ndarray, shape (conditions, bins, neurons)
        The recorded PSTH of each condition (bins with NaN are left out).
    eval_rates : ndarray, shape (trials, bins, neurons)
        Predicted rates of the evaluated trials.
    eval_cond_idx : list of ndarray
        For each condition of ``psth``, the rows of ``eval_rates`` in it (empty: left out).

    Returns
    -------
    float
        :func:`r2_score` of the conditions' PSTHs stacked along time, predicted PSTH = the mean of the
        predicted rates over the condition's evaluated trials; averaged over neurons.
    """
    true, pred = [], []
    for c, idx in enumerate(eval_cond_idx):
        if len(idx) == 0:
            continue
        keep = ~np.isnan(psth[c, :, 0])
        true.append(psth[c][keep])
        pred.append(eval_rates[np.asarray(idx)].mean(axis=0)[keep])
    return r2_score(np.vstack(true), np.vstack(pred))


def map_counts(features: np.ndarray, counts: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, float]:
    """The ridge map from a model's activity to recorded counts, fitted on training trials; every trial predicted.

    The activity is z-scored over the training trials' bins, the penalty chosen from :data:`MAP_ALPHAS` by
    5-fold cross-validation over whole training trials, and the predictions floored at 1 % of each
    neuron's mean training count (at least :data:`ZERO_RATE`).

    Parameters
    ----------
    features : ndarray, shape (trials, bins, units)
        The model's activity on each trial's bins (its condition's).
    counts : ndarray, shape (trials, bins, neurons)
        Spike counts per bin.
    train : ndarray of int
        The training trials (rows).

    Returns
    -------
    pred : ndarray, shape (trials, bins, neurons)
        Predicted counts (spikes per bin).
    alpha : float
        The penalty chosen.
    """
    n_trials, n_bins, n_units = features.shape
    flat = features.reshape(-1, n_units)
    tr_rows = (np.asarray(train)[:, None] * n_bins + np.arange(n_bins)).ravel()
    mu, sd = flat[tr_rows].mean(axis=0), flat[tr_rows].std(axis=0)
    z = (flat - mu) / np.where(sd > 0, sd, 1.0)
    y = counts.reshape(-1, counts.shape[2])
    alpha = ridge_cv(z[tr_rows], y[tr_rows], MAP_ALPHAS, groups=np.repeat(train, n_bins))
    w, b = ridge_fit(z[tr_rows], y[tr_rows], alpha)
    floor = np.maximum(0.01 * y[tr_rows].mean(axis=0), ZERO_RATE)
    return np.maximum(z @ w + b, floor).reshape(counts.shape), float(alpha)


# --------------------------------------------------------------------------- the protocol


@dataclass(frozen=True)
class ScoreSpec:
    """How a run is scored against recorded trials (every choice stated in the output).

    Attributes
    ----------
    align_event : str
        Trials column the bins are aligned to (s, session time; NaN rows, e.g. catch trials, left out).
    window : (float, float)
        Start and end of the scored window relative to the event (s); a whole number of bins.
    bin_size : float
        Bin width (s); NLB scores at 5 ms.
    test_fraction : float
        Share of trials held out for the scores, in (0, 1).
    seed : int or None
        Seed of the split (None: the run's seed).
    angle_column : str
        Trials column with the target angle (rad) that picks each trial's model condition.
    condition_column : str
        Trials column whose values group trials into recorded conditions (for the PSTHs and a mapping table).
    mapping : str
        Optional CSV file with columns ``recorded,model`` (a recorded condition label, a model
        condition index) used instead of the angles.
    model : str
        ``"rate"`` (the rate circuit, ``/rate/rates``) or ``"spiking"`` (the twin, ``/spiking/rates``); in a
        fit run (:func:`cortexsim.score_fit.score_fit`) a fitted model: ``rate``, ``rate_taskonly`` or ``ann_<arch>``.
    velocity : str
        Name of the hand-velocity TimeSeries in the NWB file.
    psth_smooth_sd : float
        s.d. (s) of the Gaussian smoothing the recorded PSTHs (0: none).
    """

    align_event: str = "move_onset_time"
    window: tuple[float, float] = (-0.25, 0.45)
    bin_size: float = 0.005
    test_fraction: float = 0.25
    seed: int | None = None
    angle_column: str = "target_angle"
    condition_column: str = "condition"
    mapping: str = ""
    model: str = "rate"
    velocity: str = "hand_velocity"
    psth_smooth_sd: float = 0.02

    def __post_init__(self) -> None:
        if not (isinstance(self.bin_size, (int, float)) and math.isfinite(self.bin_size) and self.bin_size > 0):
            raise ConfigError(f"--bin-size {self.bin_size!r}: give a bin width in seconds > 0, e.g. 0.005")
        start, stop = (float(w) for w in self.window)
        n = round((stop - start) / self.bin_size)
        if not (start < stop and n >= 2 and abs(n * self.bin_size - (stop - start)) < 1e-6 * self.bin_size):
            raise ConfigError(
                f"--window {start:g} {stop:g}: give START < STOP (s, around the event) spanning a whole number "
                f"(at least 2) of {self.bin_size:g} s bins"
            )
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"--test-fraction {self.test_fraction!r}: give the share of test trials in (0, 1)")
        if self.model not in ("rate", "spiking", *FIT_MODELS) and ModelId.of_prefix(self.model) is None:
            raise ConfigError(
                f"--model {self.model!r}: choose rate or spiking (a fit run: rate, rate_taskonly, ann_<arch>)"
            )
        if not (math.isfinite(self.psth_smooth_sd) and self.psth_smooth_sd >= 0):
            raise ConfigError(f"--psth-smooth-sd {self.psth_smooth_sd!r}: give a s.d. in seconds >= 0")

    @property
    def n_bins(self) -> int:
        """Bins per trial."""
        return round((self.window[1] - self.window[0]) / self.bin_size)


@dataclass(frozen=True)
class ScoreResult:
    """Scores of a run against recorded trials, and everything that decided them.

    Attributes
    ----------
    co_bps, psth_r2, vel_r2 : float
        The scores on the test trials (``vel_r2`` NaN without hand velocity).
    spec : ScoreSpec
        The protocol, with the seed actually used.
    train_trials, test_trials : tuple of int
        Rows of the recorded trials table in each part.
    mapping : dict
        Recorded condition label -> model condition index, as used.
    n_neurons, n_scored : int
        Recorded neurons, and those ``co_bps`` is computed on (the held-out ones, else all).
    alpha : float
        Ridge penalty of the model-to-neuron map.
    notes : tuple of str
    """

    co_bps: float
    psth_r2: float
    vel_r2: float
    spec: ScoreSpec
    train_trials: tuple[int, ...]
    test_trials: tuple[int, ...]
    mapping: dict[str, int]
    n_neurons: int
    n_scored: int
    alpha: float
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able), the three scores first."""
        out = asdict(self)
        out["spec"]["window"] = list(self.spec.window)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


@dataclass(frozen=True)
class _Model:
    rates: np.ndarray  # (conditions, steps, units), Hz
    angles: np.ndarray  # (conditions,), rad
    dt: float
    move_on: int
    seed: int


def _read_model(run_file: Path, which: str) -> _Model:
    with store.open_run(run_file) as f:
        rates = store.read_rates(f, which)
        if rates is None:
            fix = "cortexsim spiking RUN.h5" if which == "spiking" else "cortexsim run"
            raise CortexsimError(f"{run_file}: has no /{which}/rates; run `{fix}` first")
        task = store.read_task(f)
        seed = store.read_run_summary(f).seed
    move_on = int(round(float(task.params["move_on"][0]) / task.dt))
    return _Model(rates, np.asarray(task.params["angle"], float), task.dt, move_on, seed)


def _read_mapping(path: str, n_model: int) -> dict[str, int]:
    """A CSV mapping table ``recorded,model`` -> {recorded label: model condition}.

    Raises
    ------
    ConfigError
        Unreadable, not UTF-8 text, not a CSV with the header ``recorded,model``, a short row, a model
        condition that is not a whole number in range, or a recorded condition listed twice.
    """
    named = f"--mapping {path}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{named}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{named}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the table "
            f"as UTF-8 CSV with the header recorded,model"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{named}: a binary file, not a CSV table (it holds NUL bytes)")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConfigError(f"{named}: not a readable CSV table ({exc})") from None
    if not rows or not {"recorded", "model"} <= set(rows[0]):
        raise ConfigError(f"{named}: expected a CSV with the header recorded,model and one row per condition")
    out: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        recorded, model_text = row.get("recorded"), row.get("model")
        if recorded is None or model_text is None:
            raise ConfigError(f"{named}: line {line} has no {'recorded' if recorded is None else 'model'} value")
        try:
            model = int(model_text)
        except ValueError:
            raise ConfigError(f"{named}: model condition {model_text!r} is not a whole number") from None
        if not 0 <= model < n_model:
            raise ConfigError(f"{named}: model condition {model} is not in 0..{n_model - 1}")
        label = str(recorded).strip()
        if label in out:
            raise ConfigError(f"{named}: recorded condition {label!r} is listed twice (line {line}); list each once")
        out[label] = model
    return out


def numeric_column(cols: dict[str, np.ndarray], name: str, where: str, option: str, unit: str) -> np.ndarray:
    """A trials column as floats, or a one-line :class:`DataError` naming the column and what it holds."""
    values = np.asarray(cols[name])
    if values.dtype.kind not in "biuf":
        try:
            values = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            sample = next((x for x in values.tolist() if not _is_number(x)), values.tolist()[0])
            raise DataError(
                f"{where}: trials column {name!r} ({option}) holds {sample!r}; expected numbers ({unit})"
            ) from None
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise DataError(
            f"{where}: trials column {name!r} ({option}) has shape {values.shape}; expected one {unit} per trial"
        )
    return values


def _is_number(x: Any) -> bool:
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def condition_label(value: Any) -> str:
    """A trials-table value as a condition label (bytes decoded, whole floats without ".0")."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value.item() if isinstance(value, np.generic) else value)


def bin_trials(recorded: RecordedTrials, events: np.ndarray, spec: ScoreSpec) -> np.ndarray:
    """Spike counts of every neuron in the bins of each trial.

    Parameters
    ----------
    recorded : RecordedTrials
    events : ndarray, shape (trials,)
        Alignment time of each trial (s, session time).
    spec : ScoreSpec

    Returns
    -------
    ndarray, shape (trials, bins, neurons)
        Counts in ``[edge, next edge)``.
    """
    edges = events[:, None] + spec.window[0] + spec.bin_size * np.arange(spec.n_bins + 1)[None, :]
    counts = np.empty((events.size, spec.n_bins, len(recorded.spikes)))
    for u, times in enumerate(recorded.spikes):
        counts[:, :, u] = np.diff(np.searchsorted(times, edges, side="left"), axis=1)
    return counts


def model_on_bins(model: _Model, spec: ScoreSpec) -> np.ndarray:
    """The model's rates on the score bins: the model step each bin centre falls in (condition, bin, unit).

    Raises
    ------
    ConfigError
        The window reaches outside the model's trial.
    """
    centres = spec.window[0] + spec.bin_size * (np.arange(spec.n_bins) + 0.5)  # relative to movement onset
    steps = np.floor((centres + model.move_on * model.dt) / model.dt + 1e-9).astype(int)
    if steps[0] < 0 or steps[-1] >= model.rates.shape[1]:
        lo, hi = -model.move_on * model.dt, (model.rates.shape[1] - model.move_on) * model.dt
        raise ConfigError(
            f"--window {spec.window[0]:g} {spec.window[1]:g}: reaches outside the model's trial ({lo:+.3f} to "
            f"{hi:+.3f} s around movement onset); shrink it"
        )
    return model.rates[:, steps, :]


def score_run(run_file: str | Path, data: str | Path, spec: ScoreSpec = ScoreSpec()) -> ScoreResult:
    """Score a run's circuit against recorded trials (see the module docstring for the protocol).

    Parameters
    ----------
    run_file : str or Path
        A run file with ``/rate`` (and ``/spiking`` for ``spec.model = "spiking"``).
    data : str or Path
        An NWB file of recorded trials.
    spec : ScoreSpec

    Returns
    -------
    ScoreResult

    Raises
    ------
    RunFileError, DataError, ConfigError
        Unreadable files, missing columns, a window outside the model, too few trials.
    """
    run_file = Path(run_file)
    model = _read_model(run_file, spec.model)
    recorded = load_nwb_trials(data, spec.velocity)
    seed = model.seed if spec.seed is None else int(spec.seed)
    spec = ScoreSpec(**{**asdict(spec), "seed": seed, "window": tuple(spec.window)})
    x_model = model_on_bins(model, spec)
    cols = recorded.columns
    where = recorded.source
    if spec.align_event not in cols:
        raise DataError(
            f"{where}: the trials table has no column {spec.align_event!r} (--align-event); "
            f"available: {', '.join(cols)}"
        )
    events = numeric_column(cols, spec.align_event, where, "--align-event", "event times in s")
    rows = np.flatnonzero(np.isfinite(events))
    notes = [f"{events.size - rows.size} trials without a {spec.align_event} time (e.g. catch trials) left out"]
    if rows.size < 4:
        raise DataError(f"{where}: only {rows.size} trials have a {spec.align_event} time; scoring needs at least 4")
    labels = (
        [condition_label(x) for x in cols[spec.condition_column][rows]] if spec.condition_column in cols else None
    )  # recorded conditions
    if spec.mapping:
        if labels is None:
            raise DataError(f"{where}: --mapping needs the trials column {spec.condition_column!r}")
        table = _read_mapping(spec.mapping, model.rates.shape[0])
        missing = sorted(set(labels) - set(table))
        if missing:
            raise ConfigError(f"--mapping {spec.mapping}: no model condition for recorded condition(s) {missing}")
        matched = np.array([table[c] for c in labels])
        notes.append(f"conditions mapped by the table {spec.mapping}")
    else:
        if spec.angle_column not in cols:
            raise DataError(
                f"{where}: the trials table has no column {spec.angle_column!r} (target angle in rad) to match "
                f"conditions by; give --angle-column or a --mapping table"
            )
        angles = numeric_column(cols, spec.angle_column, where, "--angle-column", "target angles in rad")[rows]
        if not np.all(np.isfinite(angles)):
            raise DataError(f"{where}: trials column {spec.angle_column!r} (--angle-column) has NaN or infinite angles")
        gap = np.angle(np.exp(1j * (angles[:, None] - model.angles[None, :])))
        matched = np.argmin(np.abs(gap), axis=1)
        worst = float(np.max(np.abs(gap[np.arange(rows.size), matched])))
        notes.append(f"conditions matched by nearest target angle (largest mismatch {np.degrees(worst):.1f} deg)")
    if labels is None:
        labels = [str(c) for c in matched]
    mapping = {lab: int(m) for lab, m in sorted(dict(zip(labels, matched.tolist())).items())}
    counts = bin_trials(recorded, events[rows], spec)
    features = x_model[matched]  # (trials, bins, units)

    rng = stream(int(seed), SCORE_STREAM)
    order = rng.permutation(rows.size)
    n_test = max(1, round(spec.test_fraction * rows.size))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    if train.size < 2:
        raise DataError(f"{where}: {rows.size} trials leave {train.size} for training; lower --test-fraction")
    notes.append(
        f"{train.size} training and {test.size} test trials (seed {seed}, stream {SCORE_STREAM!r}); "
        f"{spec.n_bins} bins of {spec.bin_size * 1e3:g} ms from {spec.window[0]:+g} to {spec.window[1]:+g} s "
        f"around {spec.align_event}"
    )

    # the map: z-scored model rates -> each neuron's counts, penalty by 5-fold CV over training trials
    pred, alpha = map_counts(features, counts, train)

    held = recorded.heldout
    if held is not None and held.any():
        scored = np.flatnonzero(held)
        notes.append(f"co_bps on the {scored.size} held-out neurons of {counts.shape[2]}")
    else:
        scored = np.arange(counts.shape[2])
        notes.append(f"no held-out labels in the file: co_bps on all {scored.size} neurons")
    co_bps = bits_per_spike(pred[test][:, :, scored], counts[test][:, :, scored])

    groups = np.array(labels)
    conditions = np.unique(groups)
    psth = np.stack([counts[groups == c].mean(axis=0) for c in conditions])  # all trials of each condition
    if spec.psth_smooth_sd > 0:
        psth = gaussian_filter1d(psth, spec.psth_smooth_sd / spec.bin_size, axis=1, mode="nearest")
    psth_r2 = eval_psth(psth, pred[test], [np.flatnonzero(groups[test] == c) for c in conditions])

    vel_r2 = velocity_score(recorded, spec, events[rows], lambda: pred, train, test, notes)
    _check_scores(where, co_bps=co_bps, psth_r2=psth_r2, vel_r2=vel_r2, velocity=recorded.velocity is not None)
    return ScoreResult(
        co_bps=float(co_bps),
        psth_r2=float(psth_r2),
        vel_r2=float(vel_r2),
        spec=spec,
        train_trials=tuple(int(rows[i]) for i in train),
        test_trials=tuple(int(rows[i]) for i in test),
        mapping=mapping,
        n_neurons=int(counts.shape[2]),
        n_scored=int(scored.size),
        alpha=float(alpha),
        notes=tuple(notes),
    )


def velocity_score(recorded: RecordedTrials, spec, events: np.ndarray, features, train, test, notes: list) -> float:
    """NLB's velocity R²: a ridge decoder from ``features()`` (trials, bins, k) to the hand velocity on the bins.

    ``events`` (trials,) are the scored trials' alignment times (s); ``features`` is called only when
    the file has a velocity (it may cost a fit); without one, NaN and a note in ``notes``.
    """
    if recorded.velocity is None:
        notes.append(f"no hand velocity {spec.velocity!r} in the file: vel_r2 not scored")
        return float("nan")
    x = features()
    centres = events[:, None] + spec.window[0] + spec.bin_size * (np.arange(spec.n_bins) + 0.5)
    vel = velocity_on_bins(recorded, centres, spec.velocity)
    return fit_and_eval_decoder(
        x[train].reshape(-1, x.shape[2]),
        vel[train].reshape(-1, vel.shape[2]),
        x[test].reshape(-1, x.shape[2]),
        vel[test].reshape(-1, vel.shape[2]),
    )


def velocity_on_bins(recorded: RecordedTrials, centres: np.ndarray, name: str) -> np.ndarray:
    """The recorded hand velocity at every bin centre, linearly interpolated between its samples.

    Parameters
    ----------
    recorded : RecordedTrials
        With ``velocity`` (times in s, values (samples, dims)).
    centres : ndarray, shape (trials, bins)
        Bin centres (s, session time).
    name : str
        The series' name (``--velocity``), for the message.

    Returns
    -------
    ndarray, shape (trials, bins, dims)

    Raises
    ------
    DataError
        The series does not cover every scored bin (it ends early or starts late: interpolating would
        invent a constant velocity there), or it is NaN there.
    """
    times, values = recorded.velocity
    period = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    lo, hi = float(centres.min()), float(centres.max())
    if times.size < 2 or lo < times[0] - period or hi > times[-1] + period:
        raise DataError(
            f"{recorded.source}: hand velocity {name!r} (--velocity) covers {times[0]:.3f} to {times[-1]:.3f} s but "
            f"the scored trials span {lo:.3f} to {hi:.3f} s; expected a series over the whole session"
        )
    vel = np.stack([np.interp(centres, times, values[:, d]) for d in range(values.shape[1])], axis=-1)
    if not np.all(np.isfinite(vel)):
        raise DataError(
            f"{recorded.source}: hand velocity {name!r} (--velocity) is NaN or infinite inside the scored windows"
        )
    return vel


def _check_scores(where: str, *, co_bps: float, psth_r2: float, vel_r2: float, velocity: bool) -> None:
    """Refuse scores that cannot mean anything (no test spikes, a flat recording) instead of printing them."""
    for key, value in (("co_bps", co_bps), ("psth_r2", psth_r2), *((("vel_r2", vel_r2),) if velocity else ())):
        if not np.isfinite(value):
            raise DataError(
                f"{where}: {key} is undefined on these trials ({value}); the recording has no spikes or no "
                f"variation in the scored window (check --window and --align-event)"
            )
