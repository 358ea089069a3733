"""The battery: every pair and activity of a run (and its recorded data) measured, in parts, merged.

:func:`run_battery` compares every model with every model (and data), every layer and population with
every ANN (or the data when there is none), and fits jPCA to each activity.  The run's own rows
(:func:`own_part`) and the rows of recorded data (:func:`data_part`, on streams of their own) are
computed apart -- what :mod:`cortexsim.battery_cache` keeps -- and :func:`merge` puts them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .. import analysis, streams
from ..data import NeuralData, align_conditions, match_time_base
from ..model_id import is_whole_model, of_activity
from ..store import Activity, Row
from .measures import (
    DSA_KINDS,
    compare_pair,
    dsa_distance,
    jpca_null_columns,
    jpca_row,
    plain_row,
    reduce_to_pcs,
    surrogate_columns,
    surrogates_of,
    tangling_rows,
)
from .onsets import JPCA_WINDOW


@dataclass(frozen=True)
class BatteryResult:
    """Results of :func:`run_battery`.

    Attributes
    ----------
    similarity : tuple of dict
        One row per compared pair: ``a``, ``b`` and the columns of the module docstring.
    jpca : tuple of dict
        One row per activity: ``activity``, ``r2_best``, ``r2_skew``, ``ratio``,
        ``frequency_hz`` (of the strongest plane), ``participation_ratio``, how the fit was made
        (``window_start_s``, ``window_stop_s``, ``alignment``, ``onset_shift_ms``: :func:`jpca_row`)
        [, ``decode_position_r2``, ``decode_velocity_r2``].
    jpca_results : mapping
        Activity name -> full :class:`cortexsim.analysis.JPCAResult` (those with a row in ``jpca``).
    activities : mapping
        Activity name -> :class:`~cortexsim.store.Activity`: those compared (constant ones are left out).
    notes : tuple of str
        Caveats (activities left out, pairs not compared, data resampled, ...).
    n_null, n_surrogates : int
        Condition shuffles per pair and surrogates per family behind the p-values: every p-value is
        ``(1 + count) / (1 + n)``, so none can be below its floor ``1 / (1 + n)`` (:meth:`p_floor`).
    tangling : tuple of dict
        One row per compared activity with at least 2 units and 3 steps (:func:`tangling_row`), which
        :func:`run_dynamics` reports (empty: it computes them).
    """

    similarity: tuple[Row, ...] = ()
    jpca: tuple[Row, ...] = ()
    jpca_results: Mapping[str, analysis.JPCAResult] = field(default_factory=dict)
    activities: Mapping[str, Activity] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    n_null: int = 0
    n_surrogates: int = 0
    tangling: tuple[Row, ...] = ()

    def p_floor(self, kind: str = "surrogate") -> float:
        """The smallest p-value ``1 / (1 + n)`` the ``"surrogate"`` or ``"shuffle"`` columns can take (NaN: none)."""
        n = {"surrogate": self.n_surrogates, "shuffle": self.n_null}[kind]
        return 1.0 / (1 + n) if n > 0 else float("nan")

    def with_notes(self, notes: Iterable[str]) -> BatteryResult:
        """A copy with ``notes`` appended to :attr:`notes`."""
        return replace(self, notes=self.notes + tuple(notes))

    def kinds(self) -> dict[str, str]:
        """Activity name -> kind (``model``, ``layer``, ``population``, ``data``) of the compared activities."""
        return {n: a.kind for n, a in self.activities.items()}


def _pairs(activities: list[Activity]) -> list[tuple[Activity, Activity]]:
    """Every model vs every model (and data), then every layer/population vs every ANN (or the data)."""
    models = [a for a in activities if a.kind in ("model", "data")]
    anns = [a for a in models if _is_ann(a.name)] or [a for a in models if a.kind == "data"]
    pairs = [(x, y) for i, x in enumerate(models) for y in models[i + 1 :]]
    pairs += [(part, ann) for part in activities if part.kind in ("layer", "population") for ann in anns]
    return pairs


@dataclass(frozen=True)
class BatterySettings:
    """What the battery's numbers depend on besides the activities and the random streams.

    Attributes
    ----------
    n_pcs : int
        Principal components each activity is reduced to before comparing.
    n_null : int
        Condition shuffles per pair (0: none).
    n_surrogates : int
        TME, CFR and CMPT surrogates per activity (0: none).
    dsa : bool
        Whether pairs get the ``dsa`` column.
    jpca_window : (float, float)
        jPCA's window (s, relative to movement onset; ``[compare] jpca_window``, default
        Churchland et al.'s -50 to +150 ms, :data:`JPCA_WINDOW`).
    """

    n_pcs: int = 10
    n_null: int = 20
    n_surrogates: int = 0
    dsa: bool = True
    jpca_window: tuple[float, float] = JPCA_WINDOW

    @classmethod
    def of(cls, compare) -> BatterySettings:
        """The settings a ``[compare]`` section (:class:`cortexsim.config.CompareConfig`) gives."""
        return cls(compare.n_pcs, compare.n_null, compare.n_surrogates, jpca_window=_pair(compare.jpca_window))

    def __post_init__(self) -> None:
        object.__setattr__(self, "jpca_window", _pair(self.jpca_window))


def _pair(window) -> tuple[float, float]:
    """A jPCA window as a pair of floats (s); ValueError unless start < stop."""
    start, stop = (float(w) for w in window)
    if not start < stop:
        raise ValueError(f"jPCA window {list(window)!r}: start must be before stop (s, relative to movement onset)")
    return start, stop


@dataclass(frozen=True)
class BatteryPart:
    """The battery's rows that one set of inputs decides (:func:`own_part`, :func:`data_part`).

    A part is what the comparison keeps between runs (:mod:`cortexsim.battery_cache`): its rows
    depend only on its inputs, so a part whose inputs did not change is read back instead of
    recomputed, and :func:`merge` puts parts together in the order :func:`run_battery` gives.

    Attributes
    ----------
    similarity : tuple of dict
        Rows of the pairs the part compares (columns as :attr:`BatteryResult.similarity`).
    jpca : tuple of dict
        Rows of its activities (columns as :attr:`BatteryResult.jpca`).
    tangling : tuple of dict
        Tangling rows of its activities (:func:`tangling_row`).
    notes : tuple of str
        Its caveats.
    jpca_results : mapping
        Activity name -> :class:`cortexsim.analysis.JPCAResult` (empty for a part read back: :func:`merge`
        fits them again, which needs no random draw).
    """

    similarity: tuple[Row, ...] = ()
    jpca: tuple[Row, ...] = ()
    tangling: tuple[Row, ...] = ()
    notes: tuple[str, ...] = ()
    jpca_results: Mapping[str, analysis.JPCAResult] = field(default_factory=dict)

    def tables(self) -> dict[str, tuple[Row, ...]]:
        """The part's rows by table name (``similarity``, ``jpca``, ``tangling``)."""
        return {"similarity": self.similarity, "jpca": self.jpca, "tangling": self.tangling}


def _varies(act: Activity) -> bool:
    return bool(np.ptp(act.rates) > 0)


def _overlap(x: Activity, y: Activity) -> tuple[int, int] | None:
    """The steps of the run's time grid both activities cover, or None when they cannot be compared."""
    lo, hi = max(x.start, y.start), min(x.start + x.rates.shape[1], y.start + y.rates.shape[1])
    if x.rates.shape[0] != y.rates.shape[0] or hi - lo < 2:
        return None
    return lo, hi


def _not_compared(x: Activity, y: Activity) -> str:
    return (
        f"{x.name} vs {y.name}: shapes {x.rates.shape[:2]} and {y.rates.shape[:2]} "
        f"differ (conditions, time) or do not overlap in time; not compared"
    )


def _reduced(act: Activity, lo: int, hi: int, n_pcs: int, cache: dict) -> np.ndarray:
    """``act`` on steps lo..hi of the run's grid, reduced to its top PCs (never padded, never zero-filled)."""
    key = (act.name, lo, hi)
    if key not in cache:
        cache[key] = reduce_to_pcs(act.rates[:, lo - act.start : hi - act.start], n_pcs)
    return cache[key]


def _keyed(seed: int, *names: str | int) -> np.random.Generator:
    """A generator of its own for one row of recorded data: ``seed`` followed by the codes of ``names``.

    The rows that involve data draw from these, not from the run's sequential streams, so that adding
    data changes no other row and a row's numbers depend only on its own inputs.
    """
    codes = [c for name in names for c in ([ord(ch) for ch in name] + [0] if isinstance(name, str) else [name, 0])]
    return streams.generator([seed, *codes])


def _pair_row(
    x: Activity,
    y: Activity,
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    settings: BatterySettings,
    surrogates: Callable[[], dict[str, np.ndarray]],
) -> Row:
    """One similarity row: the measures with their nulls, DSA and the surrogate p-values."""
    row: Row = {"a": x.name, "b": y.name, **compare_pair(a, b, rng, settings.n_null)}
    if settings.dsa and x.kind in DSA_KINDS:
        try:
            row["dsa"] = dsa_distance(a, b)
        except ValueError:
            row["dsa"] = float("nan")
    if settings.n_surrogates and x.kind in DSA_KINDS:
        row.update(surrogate_columns(a, b, row, surrogates()))
    return plain_row(row)


def _jpca_rows(
    acts: Iterable[Activity],
    settings: BatterySettings,
    positions: np.ndarray | None,
    fold_seed: int,
    surrogate_rng: Callable[[Activity], np.random.Generator],
) -> tuple[list[Row], dict[str, analysis.JPCAResult], list[str]]:
    """The jPCA rows (with decoding and the jPCA nulls) of ``acts``, their fits and notes."""
    rows: list[Row] = []
    fits: dict[str, analysis.JPCAResult] = {}
    notes: list[str] = []
    for act in acts:
        if act.n_units < 2:
            continue
        try:
            row, res = jpca_row(act, settings.jpca_window)
        except ValueError as exc:  # e.g. no change inside the window around movement onset
            notes.append(f"{act.name}: no jPCA ({exc})")
            continue
        steps = slice(act.start, act.start + act.rates.shape[1])
        if positions is not None and act.rates.shape[:2] == positions[:, steps].shape[:2]:
            dec = analysis.decode_kinematics(
                act.rates,
                positions[:, steps],
                dt=act.dt,
                n_folds=max(2, min(5, act.rates.shape[0])),
                rng=streams.generator(fold_seed),
            )
            if dec.undefined:
                notes.append(f"{act.name}: decoding undefined ({dec.undefined})")
            row["decode_position_r2"] = float(dec.position_r2)
            row["decode_velocity_r2"] = float(dec.velocity_r2)
        for i in range(3):
            row[f"variance_plane{i + 1}"] = (
                float(res.variance_explained[i]) if i < len(res.variance_explained) else float("nan")
            )
        if settings.n_surrogates and act.kind in ("model", "data"):
            row.update(jpca_null_columns(act, settings.n_surrogates, surrogate_rng(act), window=settings.jpca_window))
        rows.append(plain_row(row))
        fits[act.name] = res
    return rows, fits, notes


def own_part(
    activities: list[Activity],
    settings: BatterySettings,
    *,
    rng: np.random.Generator,
    fold_seed: int,
    positions: np.ndarray | None = None,
    surrogate_rng: np.random.Generator | None = None,
) -> BatteryPart:
    """The rows of a run's own activities (models, layers, populations; no recorded data).

    Every pair of :func:`run_battery` between them, in its order, with the shuffles drawn one pair
    after the other from ``rng`` and the surrogates from ``surrogate_rng``; the jPCA row and the
    tangling of each.  The rows depend on every activity given (the streams run through all the
    pairs), on ``settings``, ``positions`` and the streams.
    """
    if any(a.kind == "data" for a in activities):
        raise ValueError("own_part: recorded data belong in data_part")
    notes = [f"{a.name}: constant activity (silenced?); left out of the battery" for a in activities if not _varies(a)]
    activities = [a for a in activities if _varies(a)]  # e.g. a silenced population: nothing to compare
    reduced: dict[tuple[str, int, int], np.ndarray] = {}
    surrogates: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}
    similarity: list[Row] = []
    for x, y in _pairs(activities):
        span = _overlap(x, y)
        if span is None:
            notes.append(_not_compared(x, y))
            continue
        a, b = (_reduced(act, *span, settings.n_pcs, reduced) for act in (x, y))

        def drawn(y=y, b=b, span=span) -> dict[str, np.ndarray]:
            key = (y.name, *span)
            if key not in surrogates:
                surrogates[key] = surrogates_of(b, settings.n_surrogates, surrogate_rng)
            return surrogates[key]

        similarity.append(_pair_row(x, y, a, b, rng, settings, drawn))
    jpca, fits, jpca_notes = _jpca_rows(activities, settings, positions, fold_seed, lambda act: surrogate_rng)
    return BatteryPart(tuple(similarity), tuple(jpca), tangling_rows(activities), (*notes, *jpca_notes), fits)


def data_part(
    activities: list[Activity],
    settings: BatterySettings,
    *,
    fold_seed: int,
    positions: np.ndarray | None = None,
) -> BatteryPart:
    """The rows that involve recorded data (activities of kind ``"data"``), and nothing else.

    The pairs of :func:`run_battery` with a data activity on either side, the data's jPCA rows and
    tangling.  Each pair draws its shuffles, and each data set its surrogates, from a generator of
    its own (``fold_seed`` and the names: :func:`_keyed`), so these rows are the same whatever else
    is compared, and the run's own rows (:func:`own_part`) the same with or without data.
    """
    data = [a for a in activities if a.kind == "data"]
    if not data:
        return BatteryPart()
    notes = [f"{a.name}: constant activity (silenced?); left out of the battery" for a in data if not _varies(a)]
    varying = [a for a in activities if _varies(a)]
    reduced: dict[tuple[str, int, int], np.ndarray] = {}
    surrogates: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}
    similarity: list[Row] = []
    overlaps: set[tuple[int, int]] = set()
    for x, y in _pairs(varying):
        if "data" not in (x.kind, y.kind):
            continue
        span = _overlap(x, y)
        if span is None:
            notes.append(_not_compared(x, y))
            continue
        a, b = (_reduced(act, *span, settings.n_pcs, reduced) for act in (x, y))
        if span != (0, x.rates.shape[1]) or span != (0, y.rates.shape[1]):
            overlaps.add(span)

        def drawn(y=y, b=b, span=span) -> dict[str, np.ndarray]:
            key = (y.name, *span)
            if key not in surrogates:
                surrogates[key] = surrogates_of(b, settings.n_surrogates, _keyed(fold_seed, "surrogates", *key))
            return surrogates[key]

        rng = _keyed(fold_seed, "pair", x.name, y.name)
        similarity.append(_pair_row(x, y, a, b, rng, settings, drawn))
    for lo, hi in sorted(overlaps):
        notes.append(f"pairs with the data compared on the steps both cover only: {lo} to {hi - 1} of the model grid")
    own = [a for a in data if _varies(a)]
    jpca, fits, jpca_notes = _jpca_rows(
        own, settings, positions, fold_seed, lambda act: _keyed(fold_seed, "jpca-null", act.name)
    )
    return BatteryPart(tuple(similarity), tuple(jpca), tangling_rows(own), (*notes, *jpca_notes), fits)


def merge(activities: list[Activity], parts: Iterable[BatteryPart], settings: BatterySettings) -> BatteryResult:
    """One :class:`BatteryResult` from the parts covering ``activities`` (computed now or read back).

    Pairs in :func:`run_battery`'s order, jPCA and tangling rows in the order of ``activities``,
    notes part by part; the jPCA fits a part read back does not carry are fitted again (no random
    draw: the same fits).
    """
    parts = list(parts)
    varying = [a for a in activities if _varies(a)]
    by_pair = {(r["a"], r["b"]): r for p in parts for r in p.similarity}
    by_act = {r["activity"]: r for p in parts for r in p.jpca}
    tangled = {r["activity"]: r for p in parts for r in p.tangling}
    fits: dict[str, analysis.JPCAResult] = {}
    for p in parts:
        fits.update(p.jpca_results)
    order = [a.name for a in varying]
    for act in varying:
        if act.name in by_act and act.name not in fits:
            fits[act.name] = jpca_row(act, settings.jpca_window)[1]
    return BatteryResult(
        similarity=tuple(by_pair[(x.name, y.name)] for x, y in _pairs(varying) if (x.name, y.name) in by_pair),
        jpca=tuple(by_act[n] for n in order if n in by_act),
        jpca_results={n: fits[n] for n in order if n in by_act},
        activities={a.name: a for a in varying},
        notes=tuple(n for p in parts for n in p.notes),
        n_null=int(settings.n_null),
        n_surrogates=int(settings.n_surrogates),
        tangling=tuple(tangled[n] for n in order if n in tangled),
    )


def run_battery(
    activities: list[Activity],
    *,
    rng: np.random.Generator,
    n_pcs: int = 10,
    n_null: int = 20,
    positions: np.ndarray | None = None,
    n_surrogates: int = 0,
    dsa: bool = True,
    surrogate_rng: np.random.Generator | None = None,
    jpca_window: tuple[float, float] = JPCA_WINDOW,
) -> BatteryResult:
    """Run the battery: every model vs every model, every layer/population vs every ANN, jPCA of each.

    Constant activities (e.g. a silenced population) are left out with a note; pairs whose
    conditions or time steps differ are not compared (a note says so); an activity whose jPCA
    is undefined gets a note instead of a row.  The run's own activities (:func:`own_part`) and
    recorded data (:func:`data_part`, rows with streams of their own) are computed apart and
    merged (:func:`merge`), so adding data changes no other row.

    Parameters
    ----------
    activities : list of Activity
        From :func:`cortexsim.store.read_activities` (and :func:`activity_from_data`).
    rng : numpy.random.Generator
        For the shuffles and the decoding folds (the pipeline passes the run's "compare" seed
        stream, so reruns agree and nothing is seeded behind the user's back).
    n_pcs : int
        Principal components each activity is reduced to before comparing.
    n_null : int
        Condition shuffles per pair for the null model (0: none).
    positions : ndarray, shape (conditions, time, 2), optional
        Hand position (m) of the conditions; adds cross-validated ridge decoding of
        position and velocity (folds over conditions) to each activity's jPCA row.
    n_surrogates : int
        TME, CFR and CMPT surrogates per activity (0: none) for the ``<score>_p_<method>`` columns
        of the pairs whose ``a`` is of a kind in :data:`DSA_KINDS` (surrogates of the second
        activity of each pair, :func:`surrogate_columns`) and the jPCA
        ``ratio_p_<method>`` columns of whole models and data (:func:`jpca_null_columns`).
    surrogate_rng : numpy.random.Generator, optional
        For the surrogates (default: a stream drawn from ``rng``); the pipeline passes the run's
        "compare-surrogates" stream, so the shuffle nulls do not change with ``n_surrogates``.
    dsa : bool
        Add the ``dsa`` column (:func:`cortexsim.analysis.dsa` on the reduced activities, radians,
        lower = more similar dynamics) to the pairs whose ``a`` is of a kind in :data:`DSA_KINDS`.
    jpca_window : (float, float)
        jPCA's window (s, relative to movement onset: each activity's own onsets,
        :func:`movement_aligned`; ``[compare] jpca_window``).

    Returns
    -------
    BatteryResult
    """
    settings = BatterySettings(n_pcs, n_null, n_surrogates, dsa, jpca_window)
    fold_seed = int(rng.integers(2**32))  # the same decoding folds for every activity
    if n_surrogates and surrogate_rng is None:
        surrogate_rng = streams.child(rng)
    own = own_part(
        [a for a in activities if a.kind != "data"],
        settings,
        rng=rng,
        fold_seed=fold_seed,
        positions=positions,
        surrogate_rng=surrogate_rng,
    )
    data = data_part(activities, settings, fold_seed=fold_seed, positions=positions)
    return merge(activities, (own, data), settings)


def headline(result: BatteryResult) -> dict[str, str | float]:
    """The answers in words: which layer/population is most ANN-like, which layer most rotational.

    Returns
    -------
    dict
        ``most_ann_like_<kind>`` (name) and ``most_ann_like_<kind>_cca`` (its mean CCA over the
        ANNs) for kind ``layer`` and ``population``; ``most_rotational_layer`` and
        ``most_rotational_layer_jpca_ratio``.  Answers without candidates are left out.
    """
    out: dict[str, str | float] = {}
    for kind in ("layer", "population"):
        parts = [n for n, a in result.activities.items() if a.kind == kind]
        per_part = {p: [r["cca"] for r in result.similarity if r["a"] == p] for p in parts}
        scores = {p: float(np.mean(v)) for p, v in per_part.items() if v}
        if scores:
            best = max(scores, key=scores.get)
            out[f"most_ann_like_{kind}"] = best
            out[f"most_ann_like_{kind}_cca"] = float(scores[best])
    rot = {r["activity"]: r["ratio"] for r in result.jpca if result.activities[r["activity"]].kind == "layer"}
    if rot:
        best = max(rot, key=rot.get)
        out["most_rotational_layer"] = best
        out["most_rotational_layer_jpca_ratio"] = float(rot[best])
    return out


def short_name(name: str) -> str:
    """A whole model's short name (``ann:gru`` -> ``gru``: :attr:`ModelId.short`); other names unchanged."""
    return of_activity(name).short if is_whole_model(name) else name


def _is_ann(name: str) -> bool:
    """True when activity ``name`` is (part of) an ANN baseline."""
    model = of_activity(name)
    return model is not None and model.kind == "ann"


def headline_metrics(result: BatteryResult) -> dict[str, float]:
    """Scalar summaries for ``/metrics`` (and sweep tables), named ``compare_*``.

    Whole models only: the rate circuit vs every other model or data set (``compare_cca_rate_<b>``,
    ``b`` = ``spiking``, ``rnn``, ``gru``, ``lstm``, ``data``), the spiking twin vs data, and
    per-model jPCA ratio, participation ratio and decoding.
    """
    out: dict[str, float] = {}
    ann_cca = []
    for r in result.similarity:
        a, b = r["a"], r["b"]
        if (a == "rate" and (b in ("spiking", "data") or _is_ann(b))) or (a, b) == ("spiking", "data"):
            out[f"compare_cca_{a}_{short_name(b)}"] = float(r["cca"])
            if _is_ann(b):
                ann_cca.append(float(r["cca"]))
    if ann_cca:
        out["compare_cca_rate_ann_mean"] = float(np.mean(ann_cca))
    for r in result.jpca:
        act = result.activities[r["activity"]]
        if act.kind in ("model", "data") and "/" not in act.name:
            name = short_name(act.name)
            out[f"compare_jpca_ratio_{name}"] = float(r["ratio"])
            out[f"compare_participation_ratio_{name}"] = float(r["participation_ratio"])
            if "decode_position_r2" in r:
                out[f"compare_decode_position_r2_{name}"] = float(r["decode_position_r2"])
    return out


def activity_from_data(data: NeuralData, reference: Activity) -> tuple[Activity, tuple[str, ...]]:
    """Recorded data as an :class:`~cortexsim.store.Activity` on the reference's time grid.

    Parameters
    ----------
    data : NeuralData
        Loaded recording (:func:`cortexsim.data.load_neural_data`), time relative to movement onset.
    reference : Activity
        The model activity whose time grid (``dt``, ``move_on``, number of steps) the data are put on.

    Returns
    -------
    activity : Activity
        Named ``"data"``, shape (data conditions, time steps both cover, data units): only the model
        steps the recording covers (its ``start`` says which), never padded, so that the battery
        compares the data on the overlap only and the data's own jPCA sees the data alone.
    notes : tuple of str
        What was resampled, cut or left out.
    """
    model_time = (np.arange(reference.rates.shape[1]) - reference.move_on) * reference.dt
    match = match_time_base(data, model_time)
    notes = [f"data: {data!r}", str(match)]
    cond = align_conditions(match.data, reference.rates.shape[0])
    if cond.data is None:
        notes.append(str(cond))
    index = np.asarray(match.model_index)
    start = int(index[0])
    if len(index) < reference.rates.shape[1]:
        notes.append(
            f"data cover {len(index)} of {reference.rates.shape[1]} model time steps ({start} to {index[-1]}); "
            f"every comparison with them uses those steps only"
        )
    move_on = reference.move_on - start
    return Activity("data", "data", np.asarray(match.data.rates), reference.dt, move_on, start), tuple(notes)
