"""The comparison battery: brain-like circuit versus ANNs (and recorded data), as pure functions.

Takes activities -- the rate circuit as a whole, each layer and each population of it,
each ANN baseline, the spiking twin when present, recorded data -- and compares every
pair with the population-dynamics measures of :mod:`cortexsim.analysis`:

==================  ==============================================  ===================
column              measure                                         more similar when
==================  ==============================================  ===================
``cca``             mean canonical correlation of the top PCs       higher (max 1)
``shape_distance``  Procrustes angular shape distance               lower (min 0)
``cka``             linear CKA                                      higher (max 1)
``rsa``             Spearman r of condition RDMs                    higher (max 1)
``*_null``          mean of the condition-shuffle null              --
``cca_null_time``   mean cca with time courses circularly shifted   --
``cca_p``           share of shuffles with cca >= observed          lower = significant
==================  ==============================================  ===================

Every activity is first reduced to its top ``n_pcs`` principal components
(computed over conditions x time), so that large and small populations are
compared on equal footing and the battery stays fast; the measures above are
invariant to the rotation this implies.  jPCA (Churchland et al. 2012) runs on a
window around movement onset and reports how rotational each activity is.

Arrays and records in, records out: no file is read or written here (activities come
from :func:`cortexsim.store.read_activities` and :func:`activity_from_data`; the
result goes to :func:`cortexsim.store.write_analysis`, :mod:`cortexsim.report` and
:func:`cortexsim.plots.battery_figures`).  The meanings of the tables' columns live here
(:data:`SIMILARITY_COLUMNS`, :data:`JPCA_COLUMNS`, :data:`ANALYSIS_TABLES`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from threadpoolctl import threadpool_limits

from . import analysis, streams
from .data import NeuralData, align_conditions, match_time_base
from .model_id import is_whole_model, of_activity
from .store import Activity, Row
from .workers import available_cores

SIMILARITY_COLUMNS = {
    "a": "first activity",
    "b": "second activity",
    "cca": "mean canonical correlation of the top PCs (higher = more similar, max 1)",
    "shape_distance": "Procrustes angular shape distance, rad (lower = more similar, min 0)",
    "cka": "linear CKA (higher = more similar, max 1)",
    "rsa": "Spearman r of condition dissimilarity matrices (higher = more similar)",
    "cca_null": "mean cca over condition shuffles (the null model)",
    "shape_distance_null": "mean shape distance over condition shuffles",
    "cka_null": "mean CKA over condition shuffles",
    "rsa_null": "mean RSA over condition shuffles",
    "cca_p": "share of condition shuffles with cca >= observed (small = significant)",
    "cca_null_time": "mean cca when each condition's time course is circularly shifted (time-shuffle null)",
    "dsa": "DSA: angular Procrustes distance of the fitted DMD operators, rad (lower = more similar dynamics)",
    **{
        f"{score}_p_{method}": f"share of {method.upper()} surrogates of b at least as similar in {score}"
        for score in ("cca", "shape_distance", "cka", "rsa")
        for method in ("tme", "cfr", "cmpt")
    },
}
"""Columns of ``/analysis/similarity`` and their meaning (attributes ``col_<name>``)."""

JPCA_COLUMNS = {
    "activity": "activity",
    "r2_best": "R^2 of dx = M x, M unconstrained",
    "r2_skew": "R^2 with M skew-symmetric (pure rotation)",
    "ratio": "r2_skew / r2_best (higher = more rotational, max 1)",
    "frequency_hz": "rotation frequency of the strongest jPCA plane (Hz)",
    "participation_ratio": "dimensionality (participation ratio of the covariance eigenvalues)",
    "decode_position_r2": "held-out R^2 of hand position by ridge regression, folds over conditions",
    "decode_velocity_r2": "the same for hand velocity",
    "variance_plane1": "share of the analysed variance in the strongest jPCA plane",
    "variance_plane2": "the same, second plane",
    "variance_plane3": "the same, third plane",
    "ratio_p_tme": "share of TME surrogates with a jPCA ratio >= observed (small = significant)",
    "ratio_p_cfr": "the same against CFR surrogates (Elsayed & Cunningham 2017)",
    "ratio_p_cmpt": "the same against CMPT surrogates (Michaels et al. 2016)",
}
"""Columns of ``/analysis/jpca`` and their meaning, in table order."""


ANALYSIS_TABLES = {
    "calibration": "Ceilings: every score of a model with itself (two noise seeds, or trial halves), and decoding.",
    "tangling": "Trajectory tangling (Russo et al. 2018) of every activity in its top 8 PCs, 1/s^2.",
    "communication": "Communication subspaces (Semedo et al. 2019): reduced-rank regression dimensions.",
    "fixed_points": "Fixed and slow points per model and constant input, classified by Jacobian eigenvalues.",
    "rotation_sources": "Arm runs: jPCA ratio, rotation frequency (Hz), DSA to the intact circuit (rad) and endpoint "
    "error (cm) of the trained circuit intact, without feedback, without inter-population recurrence and with each "
    "layer silenced (cortexsim.rotations).",
}
"""The dynamics tables of ``/analysis`` (besides ``similarity`` and ``jpca``): their ``description``."""

TABLE_COLUMNS = {"similarity": SIMILARITY_COLUMNS, "jpca": JPCA_COLUMNS}
"""Table name -> its columns' meanings (:func:`cortexsim.store.write_analysis` writes them as ``col_<name>``)."""


@dataclass(frozen=True)
class BatteryResult:
    """Results of :func:`run_battery`.

    Attributes
    ----------
    similarity : tuple of dict
        One row per compared pair: ``a``, ``b`` and the columns of the module docstring.
    jpca : tuple of dict
        One row per activity: ``activity``, ``r2_best``, ``r2_skew``, ``ratio``,
        ``frequency_hz`` (of the strongest plane), ``participation_ratio`` [, ``decode_position_r2``,
        ``decode_velocity_r2``].
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


def reduce_to_pcs(x: np.ndarray, n_pcs: int) -> np.ndarray:
    """Project activity onto its top principal components.

    Parameters
    ----------
    x : ndarray, shape (conditions, time, units)
    n_pcs : int
        Components kept (fewer if there are fewer units or samples).

    Returns
    -------
    ndarray, shape (conditions, time, min(n_pcs, units, conditions * time))
    """
    k = min(n_pcs, x.shape[2], x.shape[0] * x.shape[1])
    return analysis.pca(x, n_components=k).project(x)


def _metrics(k: int) -> dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]]:
    """Similarity measures by column name: (function, higher_is_more_similar)."""
    return {
        "cca": (lambda x, y: analysis.cca_similarity(x, y, k=k), True),
        "shape_distance": (analysis.shape_distance, False),
        "cka": (analysis.linear_cka, True),
        "rsa": (analysis.rsa, True),
    }


def compare_pair(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_null: int) -> dict[str, float]:
    """All similarity measures of two reduced activities, with condition- and time-shuffle nulls.

    Parameters
    ----------
    a, b : ndarray, shape (conditions, time, pcs)
        Reduced activities (:func:`reduce_to_pcs`) on the same conditions and time grid.
    rng : numpy.random.Generator
        For the shuffles.
    n_null : int
        Shuffles per measure (0: no nulls; nulls also need more than two conditions).

    Returns
    -------
    dict
        ``cca``, ``shape_distance``, ``cka``, ``rsa`` and, with nulls, ``<measure>_null``, ``cca_p``,
        ``cca_null_time``.  A measure that is undefined for the pair (e.g. RSA of a flat
        dissimilarity matrix) is NaN, and so is its null.
    """
    row: dict[str, float] = {}
    nulls: dict[str, float] = {}
    for key, (fn, higher) in _metrics(min(a.shape[2], b.shape[2])).items():
        try:
            row[key] = float(fn(a, b))
            if n_null and a.shape[0] > 2:
                res = analysis.shuffle_null(
                    fn, a, b, kind="condition", n=n_null, rng=rng, higher_is_more_similar=higher
                )
                nulls[f"{key}_null"] = float(res.mean)
                if key == "cca":
                    nulls["cca_p"] = float(res.p_value)
                    nulls["cca_null_time"] = float(
                        analysis.shuffle_null(
                            fn, a, b, kind="time", n=n_null, rng=rng, higher_is_more_similar=True
                        ).mean
                    )
        except ValueError:
            row[key] = float("nan")
            if n_null and a.shape[0] > 2:
                nulls[f"{key}_null"] = float("nan")
    return {**row, **nulls}


def jpca_row(
    act: Activity, window: tuple[float, float] = (-0.05, 0.2), n_pcs: int = 6
) -> tuple[Row, analysis.JPCAResult]:
    """The jPCA of an activity in a window around movement onset.

    Parameters
    ----------
    act : Activity
    window : (float, float)
        Start and end of the window (s, relative to movement onset).
    n_pcs : int
        PCs jPCA works in (fewer if the activity has fewer units).

    Returns
    -------
    row : dict
        ``activity``, ``r2_best``, ``r2_skew``, ``ratio``, ``frequency_hz`` (Hz, strongest plane),
        ``participation_ratio`` (of the whole activity).
    result : JPCAResult

    Raises
    ------
    ValueError
        jPCA is undefined (e.g. no change inside the window).
    """
    start = max(0, act.move_on + int(round(window[0] / act.dt)))
    stop = min(act.rates.shape[1], act.move_on + int(round(window[1] / act.dt)) + 1)
    res = analysis.jpca(act.rates, dt=act.dt, n_pcs=min(n_pcs, act.n_units), window=(start, stop))
    if res.undefined:
        raise ValueError(res.undefined)  # the battery notes it instead of a row
    row: Row = {
        "activity": act.name,
        "r2_best": float(res.r2_best),
        "r2_skew": float(res.r2_skew),
        "ratio": float(res.ratio),
        "frequency_hz": float(res.frequencies_hz[0]) if len(res.frequencies_hz) else float("nan"),
        "participation_ratio": float(analysis.participation_ratio(act.rates)),
    }
    return row, res


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
    """

    n_pcs: int = 10
    n_null: int = 20
    n_surrogates: int = 0
    dsa: bool = True


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


def plain_row(row: Mapping[str, object]) -> Row:
    """A row with numpy scalars as Python ``float`` / ``str`` (what a table stores and reads back)."""
    return {k: v if isinstance(v, str) else float(v) for k, v in row.items()}


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
            row["dsa"] = _dsa_distance(a, b)
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
            row, res = jpca_row(act)
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
            row.update(jpca_null_columns(act, settings.n_surrogates, surrogate_rng(act)))
        rows.append(plain_row(row))
        fits[act.name] = res
    return rows, fits, notes


def _tangling_rows(acts: Iterable[Activity]) -> tuple[Row, ...]:
    return tuple(plain_row(tangling_row(a)) for a in acts if a.n_units >= 2 and a.rates.shape[1] >= 3)


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
                surrogates[key] = _surrogates_of(b, settings.n_surrogates, surrogate_rng)
            return surrogates[key]

        similarity.append(_pair_row(x, y, a, b, rng, settings, drawn))
    jpca, fits, jpca_notes = _jpca_rows(activities, settings, positions, fold_seed, lambda act: surrogate_rng)
    return BatteryPart(tuple(similarity), tuple(jpca), _tangling_rows(activities), (*notes, *jpca_notes), fits)


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
                surrogates[key] = _surrogates_of(b, settings.n_surrogates, _keyed(fold_seed, "surrogates", *key))
            return surrogates[key]

        rng = _keyed(fold_seed, "pair", x.name, y.name)
        similarity.append(_pair_row(x, y, a, b, rng, settings, drawn))
    for lo, hi in sorted(overlaps):
        notes.append(f"pairs with the data compared on the steps both cover only: {lo} to {hi - 1} of the model grid")
    own = [a for a in data if _varies(a)]
    jpca, fits, jpca_notes = _jpca_rows(
        own, settings, positions, fold_seed, lambda act: _keyed(fold_seed, "jpca-null", act.name)
    )
    return BatteryPart(tuple(similarity), tuple(jpca), _tangling_rows(own), (*notes, *jpca_notes), fits)


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
            fits[act.name] = jpca_row(act)[1]
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

    Returns
    -------
    BatteryResult
    """
    settings = BatterySettings(n_pcs, n_null, n_surrogates, dsa)
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


def _surrogates_of(x: np.ndarray, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` surrogates of every :data:`NULL_METHODS` family (a family that fails on x is left out)."""
    out = {}
    for method in NULL_METHODS:
        try:
            out[method] = analysis.make_surrogates(x, n, rng, method=method, cfr_max_iter=CFR_MAX_ITER)
        except ValueError:
            continue
    return out


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


def _short(name: str) -> str:
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
            out[f"compare_cca_{a}_{_short(b)}"] = float(r["cca"])
            if _is_ann(b):
                ann_cca.append(float(r["cca"]))
    if ann_cca:
        out["compare_cca_rate_ann_mean"] = float(np.mean(ann_cca))
    for r in result.jpca:
        act = result.activities[r["activity"]]
        if act.kind in ("model", "data") and "/" not in act.name:
            name = _short(act.name)
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


def lesion_dsa(intact_rates: np.ndarray, lesioned_rates: np.ndarray, n_pcs: int) -> float:
    """How far a lesion moves the dynamics: DSA distance between the intact and the lesioned circuit.

    Parameters
    ----------
    intact_rates, lesioned_rates : ndarray, shape (conditions, time, units)
        The same model intact and lesioned, on the same conditions.
    n_pcs : int
        Both are reduced to this many PCs (:func:`reduce_to_pcs`) first.

    Returns
    -------
    float
        Radians, in [0, pi] (0 = the same linear dynamics up to rotation and scale); NaN when undefined.
    """
    try:
        return _dsa_distance(reduce_to_pcs(intact_rates, n_pcs), reduce_to_pcs(lesioned_rates, n_pcs))
    except ValueError:
        return float("nan")


def lesion_similarity(intact_rates: np.ndarray, lesioned_rates: np.ndarray, n_pcs: int) -> float:
    """How much of the intact circuit's dynamics a lesioned circuit keeps.

    Parameters
    ----------
    intact_rates, lesioned_rates : ndarray, shape (conditions, time, units)
        The same model (rate circuit or spiking twin) intact and lesioned, on the same conditions.
    n_pcs : int
        Both are reduced to this many PCs (:func:`reduce_to_pcs`) and compared with that many
        canonical correlations.

    Returns
    -------
    float
        Mean canonical correlation, in [0, 1] (1 = the same dynamics up to a linear map).
    """
    lesioned, intact = reduce_to_pcs(lesioned_rates, n_pcs), reduce_to_pcs(intact_rates, n_pcs)
    return float(analysis.cca_similarity(lesioned, intact, k=n_pcs))


# ---------------------------------------------------------------------------------------------------
# Dynamics, not only geometry (issue 15): DSA, accepted nulls, ceilings, tangling, communication
# subspaces and fixed points.
# ---------------------------------------------------------------------------------------------------

NULL_METHODS = ("tme", "cfr", "cmpt")
"""Surrogate families behind the ``*_p_<method>`` columns (:func:`cortexsim.analysis.make_surrogates`)."""

SCORE_DIRECTIONS = {"cca": True, "shape_distance": False, "cka": True, "rsa": True, "dsa": False}
"""Similarity column -> higher is more similar."""

COMMUNICATION_PAIRS = (
    ("L4", "L2/3"),
    ("L2/3", "L5A"),
    ("L2/3", "L5B"),
    ("L5A", "L5B"),
    ("L5B", "L6"),
    ("L6", "L4"),
    ("IT2/3", "PT5B"),
    ("IT5A", "PT5B"),
    ("IT5B", "PT5B"),
    ("PT5B", "IT2/3"),
)
"""(source, target) layers or populations of the rate circuit whose communication subspace is measured."""

PROBE_TARGETS = 2
"""Fixed points are sought under zero input and the delay input of ``PROBE_TARGETS`` conditions, evenly
spaced through the evaluation set (of the 8 center-out targets: 0 and 4, opposite ones; of the 27 maze
conditions: 0 and 13), so the stage's cost does not grow with the number of conditions."""

FIXED_POINT_MAX_ITER = 50
"""Levenberg-Marquardt iterations per start: on the default run 50 find the same points as 200 at a quarter
of the time (GRU, LSTM); starts that need more end on slow points and are not kept."""

CFR_MAX_ITER = 50
"""L-BFGS iterations per CFR surrogate in the battery: on the default run's GRU (10 PCs) the remaining
objective is 0.005 after 50 and 0.003 after 200, at a quarter of the time."""

TANGLING_PCS = 8
"""Top PCs tangling is computed in (Russo et al. 2018 used 8)."""


@dataclass(frozen=True)
class ModelProbe:
    """What the battery needs of a simulated model besides its activity (built by :func:`probe_model`).

    Attributes
    ----------
    name : str
        Activity name (``"rate"``, ``"ann:gru"``, ...).
    inputs : tuple of (str, ndarray)
        Constant inputs whose fixed points are sought: label and input vector (inputs,).
    maps : tuple of (step, jacobian)
        The model's own noise-free map under each input (``model.step_map(u)``).
    states : ndarray, shape (conditions, time, d)
        Evaluation-set states (rate circuit: x in mV; ANNs: h, or [h, c] for the LSTM); starts are drawn here.
    dt : float
        Time step (s), for the time constants of the slowest modes.
    groups : mapping
        State index groups (population name -> indices) for the loadings of the slowest modes.
    """

    name: str
    inputs: tuple[tuple[str, np.ndarray], ...]
    maps: tuple[tuple[Callable, object], ...]
    states: np.ndarray
    dt: float
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Replicate:
    """Two measurements of one system, for the ceiling of every score.

    Attributes
    ----------
    a, b : ndarray, shape (conditions, time, units)
        Two noise seeds (rate circuit, ANNs) or two halves of the trials (spiking twin, data).
    source : str
        ``"noise seeds"``, ``"trial halves"`` or ``"noise-free"`` (a deterministic model: the ceiling is 1 by
        construction).
    """

    a: np.ndarray
    b: np.ndarray
    source: str


@dataclass(frozen=True)
class DynamicsResult:
    """The dynamics part of the battery (:func:`run_dynamics`).

    Attributes
    ----------
    calibration : tuple of dict
        One row per activity with a replicate: ``activity``, ``source``, ``ceiling_<score>`` for every
        similarity column, and ``decode_position_r2`` where known.
    tangling : tuple of dict
        One row per activity: ``activity``, ``tangling_median``, ``tangling_q90`` (1/s^2, in its top 8 PCs).
    communication : tuple of dict
        One row per (source, target): ``source``, ``target``, ``samples`` (``"single-trial residuals"`` or
        ``"condition averages"``), ``dimensions``, ``performance`` (full rank, held-out trials or
        conditions), ``target_participation_ratio`` (of the condition averages).
    fixed_points : tuple of dict
        One row per (model, input): ``model``, ``input``, ``n_points``, ``n_stable``, ``n_saddle``,
        ``n_marginal``, ``n_unstable``, ``max_abs_eig`` (of the lowest-q point), ``slowest_tau_ms``,
        ``top_population`` (largest loading of the slowest modes; rate circuit only), ``n_starts``.
    fixed_point_results : mapping
        ``(model, input)`` -> :class:`cortexsim.analysis.FixedPoints`.
    probes : mapping
        Model name -> :class:`ModelProbe` (states for the portraits).
    """

    calibration: tuple[Row, ...] = ()
    tangling: tuple[Row, ...] = ()
    communication: tuple[Row, ...] = ()
    fixed_points: tuple[Row, ...] = ()
    fixed_point_results: Mapping[tuple[str, str], analysis.FixedPoints] = field(default_factory=dict)
    probes: Mapping[str, ModelProbe] = field(default_factory=dict)

    def tables(self) -> dict[str, tuple[Row, ...]]:
        """The tables by their ``/analysis`` name."""
        return {
            "calibration": self.calibration,
            "tangling": self.tangling,
            "communication": self.communication,
            "fixed_points": self.fixed_points,
        }


DSA_RANDOM_STARTS = 2
"""Random Procrustes starts per DSA distance besides the structured ones (on the default run 0, 2 and 6 give
the same distances to 4 decimals; 6 takes twice as long as 2)."""

DSA_KINDS = ("model", "data", "layer")
"""Kinds of activity ``a`` whose pairs get a ``dsa`` column (populations are left out to keep the stage fast)."""


def _dsa_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(analysis.dsa(a, b, n_random=DSA_RANDOM_STARTS).distance)


def _score_functions(k: int) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    out = {key: fn for key, (fn, _) in _metrics(k).items()}
    out["dsa"] = _dsa_distance
    return out


def surrogate_columns(
    a: np.ndarray,
    b: np.ndarray,
    observed: Mapping[str, float],
    surrogates: Mapping[str, np.ndarray],
    scores: Iterable[str] = ("cca", "shape_distance", "cka", "rsa"),
) -> dict[str, float]:
    """p-values of similarity scores against surrogates of ``b``: ``<score>_p_<method>``.

    Each score of ``a`` against every surrogate of ``b`` (which keeps b's mean tensor and marginal
    covariances, TME/CFR, or its unit covariance, CMPT); the p-value is the share of surrogates at
    least as similar as observed, ``(1 + count) / (1 + n)`` (small = more similar than b's primary
    features explain).

    Parameters
    ----------
    a, b : ndarray, shape (conditions, time, pcs)
        Reduced activities.
    observed : mapping
        Score name -> observed value (NaN: skipped).
    surrogates : mapping
        Method -> surrogates of b, shape (n, conditions, time, pcs).
    scores : iterable of str
        Columns tested (keys of :data:`SCORE_DIRECTIONS`).
    """
    fns = _score_functions(min(a.shape[2], b.shape[2]))
    out: dict[str, float] = {}
    for method, surr in surrogates.items():
        for key in scores:
            value = observed.get(key, float("nan"))
            if not np.isfinite(value):
                out[f"{key}_p_{method}"] = float("nan")
                continue
            try:
                null = np.array([fns[key](a, s) for s in surr])
            except ValueError:
                out[f"{key}_p_{method}"] = float("nan")
                continue
            null = null[np.isfinite(null)]
            hits = null >= value if SCORE_DIRECTIONS[key] else null <= value
            out[f"{key}_p_{method}"] = float((1 + np.count_nonzero(hits)) / (1 + null.size))
    return out


def _jpca_window(act: Activity, window: tuple[float, float] = (-0.05, 0.2)) -> tuple[int, int]:
    start = max(0, act.move_on + int(round(window[0] / act.dt)))
    stop = min(act.rates.shape[1], act.move_on + int(round(window[1] / act.dt)) + 1)
    return start, stop


def jpca_null_columns(act: Activity, n: int, rng: np.random.Generator, n_pcs: int = 10) -> dict[str, float]:
    """p-values of the jPCA ratio against TME, CFR and CMPT surrogates: ``ratio_p_<method>``.

    jPCA's own preprocessing (soft normalisation, the cross-condition mean removed) is applied once,
    the window around movement onset cut and the result projected on its top ``n_pcs`` PCs; the
    surrogates are drawn from that tensor (as Elsayed & Cunningham 2017 test the analysed data) and
    jPCA re-fitted on each without further normalisation.
    """
    start, stop = _jpca_window(act)
    x = act.rates / (np.ptp(act.rates.reshape(-1, act.n_units), axis=0) + 5.0)
    x = (x - x.mean(axis=0, keepdims=True))[:, start:stop]
    k = min(n_pcs, act.n_units, x.shape[0] * x.shape[1])
    z = analysis.pca(x, n_components=k).project(x)
    n_jpcs = min(6, k)

    def ratio(v: np.ndarray) -> float:
        return float(analysis.jpca(v, dt=act.dt, n_pcs=n_jpcs, soft_normalize=False).ratio)

    out: dict[str, float] = {}
    for method in NULL_METHODS:
        try:
            res = analysis.surrogate_p_value(ratio, z, n, rng, method=method, cfr_max_iter=CFR_MAX_ITER)
            out[f"ratio_p_{method}"] = float(res.p_value)
        except ValueError:
            out[f"ratio_p_{method}"] = float("nan")
    return out


def tangling_row(act: Activity) -> Row:
    """Tangling of an activity in its top :data:`TANGLING_PCS` PCs (Russo et al. 2018)."""
    res = analysis.tangling(reduce_to_pcs(act.rates, TANGLING_PCS), dt=act.dt)
    return {"activity": act.name, "tangling_median": res.median, "tangling_q90": res.q90}


@dataclass(frozen=True)
class SingleTrials:
    """Noisy single trials of the rate circuit, for communication subspaces on residuals.

    Attributes
    ----------
    rates : ndarray, shape (trials, time, units)
        Rates (Hz) of every unit on each trial (the run's process noise).
    conditions : ndarray of int, shape (trials,)
        The condition (evaluation-set target) of each trial.
    groups : mapping
        Layer or population name -> unit indices into ``rates``.
    """

    rates: np.ndarray
    conditions: np.ndarray
    groups: Mapping[str, np.ndarray]


def communication_rows(
    activities: Mapping[str, Activity], rng: np.random.Generator, trials: SingleTrials | None = None
) -> list[Row]:
    """Communication subspaces (Semedo et al. 2019) for :data:`COMMUNICATION_PAIRS` of the rate circuit.

    With ``trials``: on the single-trial residuals around each condition's mean (Semedo et al.'s
    analysis, ``samples = "single-trial residuals"``), so that what the task drives in both layers
    is not counted as communication. Without: on the condition averages (``samples = "condition
    averages"``), which counts the dimensions of the shared signal and is inflated on smooth,
    noise-free averages (see :mod:`cortexsim.analysis.subspaces`). A pair is left out when either
    side is missing or constant (a silenced population).
    """
    rows: list[Row] = []
    for src, dst in COMMUNICATION_PAIRS:
        a, b = activities.get(f"rate:{src}"), activities.get(f"rate:{dst}")
        if a is None or b is None:
            continue
        fold_rng = streams.child(rng)
        use_trials = trials is not None and src in trials.groups and dst in trials.groups
        try:
            if use_trials:
                res = analysis.communication_subspace(
                    trials.rates[:, :, trials.groups[src]],
                    trials.rates[:, :, trials.groups[dst]],
                    conditions=trials.conditions,
                    rng=fold_rng,
                )
            else:
                res = analysis.communication_subspace(a.rates, b.rates, rng=fold_rng)
        except ValueError:  # e.g. a condition with a single trial
            continue
        if res.undefined:  # e.g. a side without fluctuations
            continue
        rows.append(
            {
                "source": src,
                "target": dst,
                "samples": "single-trial residuals" if use_trials else "condition averages",
                "dimensions": float(res.dimensions),
                "performance": float(res.full_performance),
                "target_participation_ratio": float(analysis.participation_ratio(b.rates)),
            }
        )
    return rows


def calibration_row(name: str, rep: Replicate, n_pcs: int) -> Row:
    """The ceiling of every score: the score of a system with itself measured twice (:class:`Replicate`)."""
    a, b = reduce_to_pcs(rep.a, n_pcs), reduce_to_pcs(rep.b, n_pcs)
    row: Row = {"activity": name, "source": rep.source}
    for key, fn in _score_functions(min(a.shape[2], b.shape[2])).items():
        try:
            row[f"ceiling_{key}"] = float(analysis.ceiling(fn, a, b))
        except ValueError:
            row[f"ceiling_{key}"] = float("nan")
    return row


def fixed_point_rows(
    probe: ModelProbe, n_starts: int, rng: np.random.Generator, threads: int = 1
) -> tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]]:
    """Fixed and slow points of a model under each of its probe inputs (Sussillo & Barak 2013).

    ``n_starts`` states drawn from the evaluation trajectories, jittered by 5 % of the states' SD, each
    descended for at most :data:`FIXED_POINT_MAX_ITER` iterations.  Each input draws its starts from its
    own generator, seeded from ``rng`` in input order, so the result is the same for any ``threads``.
    """
    return start_fixed_points({probe.name: probe}, n_starts, rng, threads).result()


def _search(task: tuple[ModelProbe, int, int], n_starts: int) -> tuple[Row, analysis.FixedPoints]:
    """One ``(probe, input index, seed)`` search and its table row."""
    probe, index, seed = task
    (label, _), (step, jac) = probe.inputs[index], probe.maps[index]
    jitter = 0.05 * float(np.std(probe.states))
    starts = analysis.sample_starts(probe.states, n_starts, streams.generator(seed), noise_std=jitter)
    fp = analysis.find_fixed_points(step, starts, max_iter=FIXED_POINT_MAX_ITER, jacobian=jac)
    row: Row = {
        "model": probe.name,
        "input": label,
        "n_points": float(fp.n_points),
        **{f"n_{kind}": float(fp.kinds.count(kind)) for kind in ("stable", "saddle", "marginal", "unstable")},
        "max_abs_eig": float("nan"),
        "slowest_tau_ms": float("nan"),
        "top_population": "",
        "n_starts": float(n_starts),
    }
    if fp.n_points:
        lam = float(np.abs(fp.eigenvalues[0, 0]))
        row["max_abs_eig"] = lam
        row["slowest_tau_ms"] = float(-1e3 * probe.dt / np.log(lam)) if 0 < lam < 1 else float("inf")
        if probe.groups:
            shares = analysis.mode_loadings(fp.modes[0], probe.groups)
            row["top_population"] = max(shares, key=shares.get)
    return row, fp


class FixedPointJob:
    """Fixed-point searches running on daemon threads (see :func:`start_fixed_points`).

    Daemon threads rather than ``concurrent.futures``, whose workers the interpreter waits for at
    exit, so a Ctrl-C that ends the program is not held up by searches still running.  The searches
    spend most of their time in BLAS and in the plant's compiled kernels, which release the GIL.
    """

    def __init__(self, tasks: list[tuple[ModelProbe, int, int]], n_starts: int, threads: int) -> None:
        self._tasks = tasks
        self._done: list[tuple[Row, analysis.FixedPoints] | None] = [None] * len(tasks)
        self._errors: list[BaseException] = []
        todo, lock = iter(range(len(tasks))), threading.Lock()

        def work() -> None:
            while not self._errors:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                try:
                    self._done[i] = _search(tasks[i], n_starts)
                except BaseException as exc:  # noqa: BLE001 - raised again in result()
                    self._errors.append(exc)

        n = max(1, min(threads, len(tasks)))
        self._threads = [threading.Thread(target=work, daemon=True, name=f"fixed-points-{k}") for k in range(n)]
        for t in self._threads:
            t.start()

    def result(self) -> tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]]:
        """Rows (in model and input order) and results of every search; waits, raises a search's exception."""
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]
        rows = [row for row, _ in self._done]
        found = {(task[0].name, row["input"]): fp for task, (row, fp) in zip(self._tasks, self._done, strict=True)}
        return rows, found


def start_fixed_points(
    probes: Mapping[str, ModelProbe], n_starts: int, rng: np.random.Generator, threads: int | None = None
) -> FixedPointJob:
    """Start the fixed-point searches of every probe (model) and input in the background.

    They need only the models, so the comparison pipeline starts them before the battery and
    collects them after it (:func:`run_dynamics`'s ``fixed_points``): on two cores the searches
    and the battery share the machine.  Seeds are drawn from ``rng`` now, in model and input
    order, so the points do not depend on the thread count or on what runs alongside.  Run the
    searches under one BLAS thread (``threadpool_limits``, set by the caller for as long as they
    run: the limit is process-wide), or threads times BLAS threads oversubscribe the cores.

    Parameters
    ----------
    probes : mapping of str to ModelProbe
    n_starts : int
        Starts per model and input.
    rng : numpy.random.Generator
    threads : int, optional
        Default: the cores available, at most 4.
    """
    tasks = []
    for probe in probes.values():
        seeds = rng.integers(2**63 - 1, size=len(probe.inputs))
        tasks += [(probe, i, int(seed)) for i, seed in enumerate(seeds)]
    return FixedPointJob(tasks, n_starts, min(4, available_cores()) if threads is None else threads)


def probe_inputs(evaluation, n_targets: int = PROBE_TARGETS) -> tuple[tuple[str, np.ndarray], ...]:
    """Zero input and the delay-period input (the step before the go cue) of ``n_targets`` evenly spaced trials."""
    inputs = [("zero", np.zeros(evaluation.inputs.shape[2]))]
    go = evaluation.params["go"]
    n = evaluation.n_trials
    for i in sorted({k * n // n_targets for k in range(min(n_targets, n))}):
        t = int(round(float(go[i]) / evaluation.dt)) - 1
        inputs.append((f"target{i}", np.asarray(evaluation.inputs[i, t], float)))
    return tuple(inputs)


def probe_model(name: str, model, evaluation, groups: Mapping[str, np.ndarray] | None = None) -> ModelProbe:
    """A :class:`ModelProbe` of any model (:class:`cortexsim.model.Model`) on a TrialBatch.

    The model gives its own noise-free map under each probe input (``step_map``), its evaluation
    states in that map's coordinates (``map_states``) and the parts of that state
    (``map_layout``: for a model on the arm, the arm and the delayed sensors besides the model's
    own part, which ``groups`` -- population name -> indices -- subdivides).
    """
    inputs = probe_inputs(evaluation)
    maps = tuple(model.step_map(u) for _, u in inputs)
    states = model.map_states(model.simulate(evaluation))
    parts = {part: np.arange(d.start, d.stop) for part, d in model.map_layout().items()}
    if len(parts) > 1:  # the model's own part is named by ``groups``; the others by the map
        own = next(iter(parts))
        groups = {**(groups or {}), **{p: idx for p, idx in parts.items() if p != own}}
    return ModelProbe(name, inputs, maps, np.asarray(states, float), float(evaluation.dt), dict(groups or {}))


def run_dynamics(
    result: BatteryResult,
    *,
    rng: np.random.Generator,
    n_pcs: int = 10,
    replicates: Mapping[str, Replicate] | None = None,
    probes: Mapping[str, ModelProbe] | None = None,
    fixed_point_starts: int = 200,
    trials: SingleTrials | None = None,
    fixed_point_threads: int | None = None,
    fixed_points: tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]] | None = None,
) -> DynamicsResult:
    """Tangling and communication subspaces of the compared activities, ceilings and fixed points.

    :func:`model_dynamics` completed by :func:`with_battery`.

    Parameters
    ----------
    result : BatteryResult
        From :func:`run_battery` (its activities are used).
    rng : numpy.random.Generator
        For the folds and the fixed-point starts.
    n_pcs : int
        PCs for the ceilings (as in :func:`run_battery`).
    replicates : mapping, optional
        Activity name -> :class:`Replicate`.
    probes : mapping, optional
        Model name -> :class:`ModelProbe`.
    fixed_point_starts : int
        Starts per model and input.
    trials : SingleTrials, optional
        Noisy single trials of the rate circuit: communication subspaces on their residuals
        (:func:`communication_rows`; without, on the condition averages).
    fixed_point_threads : int, optional
        Threads the fixed-point searches (one per model and input) share; default: the cores
        available, at most 4.  The points do not depend on it.
    fixed_points : tuple, optional
        Searches already done (:meth:`FixedPointJob.result` of :func:`start_fixed_points`); then
        ``probes`` only supply the figures and nothing is searched here.
    """
    dynamics = model_dynamics(
        result.activities,
        rng=rng,
        n_pcs=n_pcs,
        replicates=replicates,
        probes=probes,
        fixed_point_starts=fixed_point_starts,
        trials=trials,
        fixed_point_threads=fixed_point_threads,
        fixed_points=fixed_points,
    )
    return with_battery(dynamics, result)


def model_dynamics(
    activities: Mapping[str, Activity],
    *,
    rng: np.random.Generator,
    n_pcs: int = 10,
    replicates: Mapping[str, Replicate] | None = None,
    probes: Mapping[str, ModelProbe] | None = None,
    fixed_point_starts: int = 200,
    trials: SingleTrials | None = None,
    fixed_point_threads: int | None = None,
    fixed_points: tuple[list[Row], dict[tuple[str, str], analysis.FixedPoints]] | None = None,
) -> DynamicsResult:
    """The dynamics of a run's models: communication subspaces, ceilings and fixed points.

    What depends on the models and the run's own activities only (never on recorded data); the
    ceilings come without ``decode_position_r2`` and there is no tangling: :func:`with_battery`
    adds both from the battery.  Parameters as :func:`run_dynamics`; ``activities`` by name
    (those of the rate circuit's layers and populations give the communication subspaces).
    """
    communication = communication_rows(activities, rng, trials)
    calibration = [plain_row(calibration_row(name, rep, n_pcs)) for name, rep in (replicates or {}).items()]
    if fixed_points is None:  # seeds drawn in model and input order: any thread count, same points
        with threadpool_limits(limits=1, user_api="blas"):
            fixed_points = start_fixed_points(probes or {}, fixed_point_starts, rng, fixed_point_threads).result()
    fp_rows, fp_found = fixed_points
    return DynamicsResult(
        calibration=tuple(calibration),
        communication=tuple(plain_row(r) for r in communication),
        fixed_points=tuple(plain_row(r) for r in fp_rows),
        fixed_point_results=fp_found,
        probes=dict(probes or {}),
    )


def with_battery(dynamics: DynamicsResult, result: BatteryResult) -> DynamicsResult:
    """``dynamics`` (:func:`model_dynamics`) completed from the battery's result.

    The tangling rows of every compared activity (:attr:`BatteryResult.tangling`, computed here when
    empty) and each ceiling's ``decode_position_r2`` (its model's jPCA row; NaN without one).
    """
    decode = {r["activity"]: r.get("decode_position_r2", float("nan")) for r in result.jpca}
    calibration = tuple(
        {**r, "decode_position_r2": float(decode.get(r["activity"], float("nan")))} for r in dynamics.calibration
    )
    tangling = result.tangling or _tangling_rows(result.activities.values())
    return replace(dynamics, calibration=calibration, tangling=tuple(tangling))


def dynamics_metrics(dynamics: DynamicsResult) -> dict[str, float]:
    """Scalar summaries of :class:`DynamicsResult` for ``/metrics``, named ``compare_*``.

    ``compare_tangling_q90_<model>``, ``compare_ceiling_cca_<model>``, ``compare_fixed_points_<model>``
    (distinct points summed over the probe inputs) and ``compare_comm_dims_<source>_<target>``.
    """
    out: dict[str, float] = {}
    for r in dynamics.tangling:
        if ":" not in str(r["activity"]) or is_whole_model(str(r["activity"])):
            out[f"compare_tangling_q90_{_short(str(r['activity']))}"] = float(r["tangling_q90"])
    for r in dynamics.calibration:
        out[f"compare_ceiling_cca_{_short(str(r['activity']))}"] = float(r["ceiling_cca"])
    for r in dynamics.fixed_points:
        key = f"compare_fixed_points_{_short(str(r['model']))}"
        out[key] = out.get(key, 0.0) + float(r["n_points"])
    for r in dynamics.communication:
        src, dst = (str(r[k]).replace("/", "") for k in ("source", "target"))
        out[f"compare_comm_dims_{src}_{dst}"] = float(r["dimensions"])
    return out
