"""The comparison battery: brain-like circuit versus ANNs (and recorded data), as pure functions.

Takes activities -- the rate circuit as a whole, each layer and each population of it,
each ANN baseline, the spiking twin when present, recorded data -- and compares every
pair with the population-dynamics measures of :mod:`cortexsim.analysis`:

=================  ==============================================  ===================
column             measure                                         more similar when
=================  ==============================================  ===================
``cca``            mean canonical correlation of the top PCs       higher (max 1)
``shape_distance`` Procrustes angular shape distance               lower (min 0)
``cka``            linear CKA                                      higher (max 1)
``rsa``            Spearman r of condition RDMs                    higher (max 1)
``*_null``         mean of the condition-shuffle null              --
``cca_null_time``  mean cca with time courses circularly shifted   --
``cca_p``          share of shuffles with cca >= observed          lower = significant
=================  ==============================================  ===================

Every activity is first reduced to its top ``n_pcs`` principal components
(computed over conditions x time), so that large and small populations are
compared on equal footing and the battery stays fast; the measures above are
invariant to the rotation this implies.  jPCA (Churchland et al. 2012) runs on a
window around movement onset and reports how rotational each activity is.

Arrays and records in, records out: no file is read or written here (activities come
from :func:`cortexsim.store.read_activities` and :func:`activity_from_data`; the
result goes to :func:`cortexsim.store.write_analysis`, :mod:`cortexsim.report` and
:func:`cortexsim.plots.battery_figures`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from . import analysis
from .data import NeuralData, align_conditions, match_time_base
from .store import Activity, Row


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
    """

    similarity: tuple[Row, ...] = ()
    jpca: tuple[Row, ...] = ()
    jpca_results: Mapping[str, analysis.JPCAResult] = field(default_factory=dict)
    activities: Mapping[str, Activity] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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
    anns = [a for a in models if a.name.split(":")[0].endswith("ann")] or [a for a in models if a.kind == "data"]
    pairs = [(x, y) for i, x in enumerate(models) for y in models[i + 1 :]]
    pairs += [(part, ann) for part in activities if part.kind in ("layer", "population") for ann in anns]
    return pairs


def run_battery(
    activities: list[Activity],
    *,
    rng: np.random.Generator,
    n_pcs: int = 10,
    n_null: int = 20,
    positions: np.ndarray | None = None,
) -> BatteryResult:
    """Run the battery: every model vs every model, every layer/population vs every ANN, jPCA of each.

    Constant activities (e.g. a silenced population) are left out with a note; pairs whose
    conditions or time steps differ are not compared (a note says so); an activity whose jPCA
    is undefined gets a note instead of a row.

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

    Returns
    -------
    BatteryResult
    """
    fold_seed = int(rng.integers(2**32))  # the same decoding folds for every activity
    notes = [
        f"{a.name}: constant activity (silenced?); left out of the battery"
        for a in activities
        if not np.ptp(a.rates) > 0
    ]
    activities = [a for a in activities if np.ptp(a.rates) > 0]  # e.g. a silenced population: nothing to compare
    reduced = {(a.name, a.start, a.start + a.rates.shape[1]): reduce_to_pcs(a.rates, n_pcs) for a in activities}
    similarity: list[Row] = []
    overlaps: set[tuple[int, int]] = set()
    for x, y in _pairs(activities):
        lo, hi = max(x.start, y.start), min(x.start + x.rates.shape[1], y.start + y.rates.shape[1])
        if x.rates.shape[0] != y.rates.shape[0] or hi - lo < 2:
            notes.append(
                f"{x.name} vs {y.name}: shapes {x.rates.shape[:2]} and {y.rates.shape[:2]} "
                f"differ (conditions, time) or do not overlap in time; not compared"
            )
            continue
        pair = []
        for act in (x, y):  # both on the steps both cover: never padded, never zero-filled
            key = (act.name, lo, hi)
            if key not in reduced:
                reduced[key] = reduce_to_pcs(act.rates[:, lo - act.start : hi - act.start], n_pcs)
            pair.append(reduced[key])
        if (lo, hi) != (0, x.rates.shape[1]) or (lo, hi) != (0, y.rates.shape[1]):
            overlaps.add((lo, hi))
        similarity.append({"a": x.name, "b": y.name, **compare_pair(pair[0], pair[1], rng, n_null)})
    for lo, hi in sorted(overlaps):
        notes.append(f"pairs with the data compared on the steps both cover only: {lo} to {hi - 1} of the model grid")
    jpca: list[Row] = []
    jpca_results: dict[str, analysis.JPCAResult] = {}
    for act in activities:
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
                n_folds=min(5, act.rates.shape[0]),
                rng=np.random.default_rng(fold_seed),
            )
            row["decode_position_r2"] = float(dec.position_r2)
            row["decode_velocity_r2"] = float(dec.velocity_r2)
        jpca.append(row)
        jpca_results[act.name] = res
    return BatteryResult(
        similarity=tuple(similarity),
        jpca=tuple(jpca),
        jpca_results=jpca_results,
        activities={a.name: a for a in activities},
        notes=tuple(notes),
    )


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
    """``ann:gru`` -> ``gru``; other names unchanged."""
    return name.split(":", 1)[1] if name.startswith("ann:") else name


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
        if (a == "rate" and (b in ("spiking", "data") or b.startswith("ann:"))) or (a, b) == ("spiking", "data"):
            out[f"compare_cca_{a}_{_short(b)}"] = float(r["cca"])
            if b.startswith("ann:"):
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
