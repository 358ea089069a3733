"""Brain-like circuit versus ANNs (and recorded data): the comparison battery.

Reads activity from run files -- the rate circuit as a whole, each layer and each
population of it, each ANN baseline, the spiking twin when present -- and
optionally recorded data, and compares every pair with the population-dynamics
measures of :mod:`cortexsim.analysis`:

=================  ==========================================  ===================
column             measure                                     more similar when
=================  ==========================================  ===================
``cca``            mean canonical correlation of the top PCs   higher (max 1)
``shape_distance`` Procrustes angular shape distance           lower (min 0)
``cka``            linear CKA                                  higher (max 1)
``rsa``            Spearman r of condition RDMs                higher (max 1)
``*_null``         mean of the condition-shuffle null          --
``cca_null_time``  mean cca with time courses circularly shifted  --
``cca_p``          share of shuffles with cca >= observed      lower = significant
=================  ==========================================  ===================

Every activity is first reduced to its top ``n_pcs`` principal components
(computed over conditions x time), so that large and small populations are
compared on equal footing and the battery stays fast; the measures above are
invariant to the rotation this implies.  jPCA (Churchland et al. 2012) runs on a
window around movement onset and reports how rotational each activity is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import analysis, store
from .errors import CortexsimError
from .quality import QualityVerdict, model_label


@dataclass(frozen=True)
class Activity:
    """Condition-averaged activity of one model, layer, population or data set.

    Attributes
    ----------
    name : str
        E.g. ``"rate"``, ``"rate:L5B"``, ``"rate:PT5B"``, ``"ann:gru"``, ``"spiking"``, ``"data"``.
    kind : str
        ``"model"``, ``"layer"``, ``"population"`` or ``"data"``.
    rates : ndarray, shape (conditions, time, units)
    dt : float
        Time step (s).
    move_on : int
        Time index of movement onset (for the jPCA window).
    """

    name: str
    kind: str
    rates: np.ndarray
    dt: float
    move_on: int

    @property
    def n_units(self) -> int:
        """Number of units."""
        return self.rates.shape[2]


@dataclass
class Comparison:
    """Results of :func:`compare`.

    Attributes
    ----------
    similarity : list of dict
        One row per compared pair (columns in the module docstring).
    jpca : list of dict
        One row per activity: ``activity``, ``r2_best``, ``r2_skew``, ``ratio``,
        ``frequency_hz`` (of the strongest plane), ``participation_ratio``.
    jpca_results : dict
        Activity name -> full :class:`cortexsim.analysis.jpca` result.
    activities : dict
        Activity name -> :class:`Activity`.
    notes : list of str
        Caveats (e.g. condition counts that differ from the data's).
    """

    similarity: list[dict] = field(default_factory=list)
    jpca: list[dict] = field(default_factory=list)
    jpca_results: dict = field(default_factory=dict)
    activities: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_activities(path: str | Path, prefix: str = "", min_units: int = 3) -> list[Activity]:
    """Activities stored in a run file: circuit, layers, populations, ANNs, spiking twin.

    Populations with fewer than ``min_units`` units are left out.
    """
    out = []
    with store.open_run(path) as f:
        if "rate/rates" not in f:
            raise CortexsimError(f"{path}: has no /rate/rates; run the rate stage first (cortexsim run)")
        dt = float(f["task"].attrs["dt"])
        move_on = int(round(float(f["task/params/move_on"][0]) / dt))
        rates = f["rate/rates"][()]
        out.append(Activity(prefix + "rate", "model", rates, dt, move_on))
        table = f["circuit/populations"][()]
        layers: dict[str, list[int]] = {}
        for row in table:
            layer = store.attr_text(row["layer"])
            layers.setdefault(layer, []).extend(range(int(row["start"]), int(row["stop"])))
        for layer, units in layers.items():
            out.append(Activity(f"{prefix}rate:{layer}", "layer", rates[:, :, units], dt, move_on))
        for row in table:
            start, stop = int(row["start"]), int(row["stop"])
            if stop - start >= min_units:
                name = store.attr_text(row["name"])
                out.append(Activity(f"{prefix}rate:{name}", "population", rates[:, :, start:stop], dt, move_on))
        if "spiking/rates" in f:
            out.append(Activity(prefix + "spiking", "model", f["spiking/rates"][()], dt, move_on))
        if "ann" in f:
            for arch in f["ann"]:
                out.append(Activity(f"{prefix}ann:{arch}", "model", f[f"ann/{arch}/hidden"][()], dt, move_on))
    return out


def reduce_to_pcs(x: np.ndarray, n_pcs: int) -> np.ndarray:
    """Project (conditions, time, units) onto its top ``n_pcs`` PCs (fewer if fewer units)."""
    k = min(n_pcs, x.shape[2], x.shape[0] * x.shape[1])
    return analysis.pca(x, n_components=k).project(x)


def _metrics(k: int) -> dict[str, tuple]:
    """Similarity measures by column name: (function, higher_is_more_similar)."""
    return {"cca": (lambda x, y: analysis.cca_similarity(x, y, k=k), True),
            "shape_distance": (analysis.shape_distance, False),
            "cka": (analysis.linear_cka, True), "rsa": (analysis.rsa, True)}


def compare_pair(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_null: int) -> dict[str, float]:
    """All similarity measures of two reduced activities, with condition- and time-shuffle nulls.

    A measure that is undefined for the pair (e.g. RSA of a flat dissimilarity
    matrix) is NaN, and so is its null.
    """
    row: dict[str, float] = {}
    nulls: dict[str, float] = {}
    for key, (fn, higher) in _metrics(min(a.shape[2], b.shape[2])).items():
        try:
            row[key] = float(fn(a, b))
            if n_null and a.shape[0] > 2:
                res = analysis.shuffle_null(fn, a, b, kind="condition", n=n_null, rng=rng,
                                            higher_is_more_similar=higher)
                nulls[f"{key}_null"] = float(res.mean)
                if key == "cca":
                    nulls["cca_p"] = float(res.p_value)
                    nulls["cca_null_time"] = float(analysis.shuffle_null(
                        fn, a, b, kind="time", n=n_null, rng=rng, higher_is_more_similar=True).mean)
        except ValueError:
            row[key] = float("nan")
            if n_null and a.shape[0] > 2:
                nulls[f"{key}_null"] = float("nan")
    return {**row, **nulls}


def jpca_row(act: Activity, window: tuple[float, float] = (-0.05, 0.2), n_pcs: int = 6) -> tuple[dict, object]:
    """jPCA of an activity in a window around movement onset (s, relative to onset)."""
    start = max(0, act.move_on + int(round(window[0] / act.dt)))
    stop = min(act.rates.shape[1], act.move_on + int(round(window[1] / act.dt)) + 1)
    res = analysis.jpca(act.rates, dt=act.dt, n_pcs=min(n_pcs, act.n_units), window=(start, stop))
    row = {"activity": act.name, "r2_best": float(res.r2_best), "r2_skew": float(res.r2_skew),
           "ratio": float(res.ratio),
           "frequency_hz": float(res.frequencies_hz[0]) if len(res.frequencies_hz) else float("nan"),
           "participation_ratio": float(analysis.participation_ratio(act.rates))}
    return row, res


def compare(activities: list[Activity], *, rng: np.random.Generator, n_pcs: int = 10, n_null: int = 20,
            positions: np.ndarray | None = None) -> Comparison:
    """Run the battery: every model vs every model, every layer/population vs every ANN, jPCA.

    Parameters
    ----------
    activities : list of Activity
        From :func:`run_activities` (and :func:`data_activity`).
    n_pcs : int
        Principal components each activity is reduced to before comparing.
    n_null : int
        Condition shuffles per pair for the null model (0: none).
    rng : numpy.random.Generator
        For the shuffles and the decoding folds (the pipeline passes the run's "compare" seed
        stream, so reruns agree and nothing is seeded behind the user's back).
    positions : ndarray, shape (conditions, time, 2), optional
        Hand position (m) of the conditions; adds cross-validated ridge decoding of
        position and velocity (folds over conditions) to each activity's row.
    """
    fold_seed = int(rng.integers(2**32))  # the same decoding folds for every activity
    result = Comparison()
    result.notes += [f"{a.name}: constant activity (silenced?); left out of the battery"
                     for a in activities if not np.ptp(a.rates) > 0]
    activities = [a for a in activities if np.ptp(a.rates) > 0]  # e.g. a silenced population: nothing to compare
    result.activities = {a.name: a for a in activities}
    reduced = {a.name: reduce_to_pcs(a.rates, n_pcs) for a in activities}
    models = [a for a in activities if a.kind in ("model", "data")]
    anns = [a for a in models if a.name.split(":")[0].endswith("ann")] or [a for a in models if a.kind == "data"]
    pairs = [(x, y) for i, x in enumerate(models) for y in models[i + 1:]]
    pairs += [(part, ann) for part in activities if part.kind in ("layer", "population") for ann in anns]
    for x, y in pairs:
        if x.rates.shape[:2] != y.rates.shape[:2]:
            result.notes.append(f"{x.name} vs {y.name}: shapes {x.rates.shape[:2]} and {y.rates.shape[:2]} "
                                f"differ (conditions, time); not compared")
            continue
        row = {"a": x.name, "b": y.name, **compare_pair(reduced[x.name], reduced[y.name], rng, n_null)}
        result.similarity.append(row)
    for act in activities:
        if act.n_units >= 2:
            try:
                row, res = jpca_row(act)
            except ValueError as exc:  # e.g. no change inside the window around movement onset
                result.notes.append(f"{act.name}: no jPCA ({exc})")
                continue
            if positions is not None and act.rates.shape[:2] == positions.shape[:2]:
                dec = analysis.decode_kinematics(act.rates, positions, dt=act.dt,
                                                 n_folds=min(5, act.rates.shape[0]),
                                                 rng=np.random.default_rng(fold_seed))
                row["decode_position_r2"] = float(dec.position_r2)
                row["decode_velocity_r2"] = float(dec.velocity_r2)
            result.jpca.append(row)
            result.jpca_results[act.name] = res
    return result


def headline(result: Comparison) -> dict[str, str | float]:
    """The answers in words: which layer/population is most ANN-like, which most rotational."""
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


def headline_metrics(result: Comparison) -> dict[str, float]:
    """Scalar summaries for ``/metrics`` (and sweep tables), named ``compare_*``.

    Whole models only: the rate circuit vs every other model or data set (``compare_cca_rate_<b>``,
    ``b`` = ``spiking``, ``rnn``, ``gru``, ``lstm``, ``data``), the spiking twin vs data, and
    per-model jPCA ratio, participation ratio and decoding.
    """
    out: dict[str, float] = {}
    def short(name: str) -> str:
        return name.split(":", 1)[1] if name.startswith("ann:") else name
    ann_cca = []
    for r in result.similarity:
        a, b = r["a"], r["b"]
        if (a == "rate" and (b in ("spiking", "data") or b.startswith("ann:"))) or (a, b) == ("spiking", "data"):
            out[f"compare_cca_{a}_{short(b)}"] = float(r["cca"])
            if b.startswith("ann:"):
                ann_cca.append(float(r["cca"]))
    if ann_cca:
        out["compare_cca_rate_ann_mean"] = float(np.mean(ann_cca))
    for r in result.jpca:
        act = result.activities[r["activity"]]
        if act.kind in ("model", "data") and "/" not in act.name:
            name = short(act.name)
            out[f"compare_jpca_ratio_{name}"] = float(r["ratio"])
            out[f"compare_participation_ratio_{name}"] = float(r["participation_ratio"])
            if "decode_position_r2" in r:
                out[f"compare_decode_position_r2_{name}"] = float(r["decode_position_r2"])
    return out


def data_activity(path: str | Path, reference: Activity) -> tuple[Activity, list[str]]:
    """Recorded data as an :class:`Activity` on the reference's time grid (aligned to movement onset).

    Returns the activity and notes on what was resampled or left out.
    """
    from . import data as neural

    rec = neural.load_neural_data(path)
    model_time = (np.arange(reference.rates.shape[1]) - reference.move_on) * reference.dt
    match = neural.match_time_base(rec, model_time)
    notes = [f"data: {rec!r}", str(match)]
    cond = neural.align_conditions(match.data, reference.rates.shape[0])
    if cond.data is None:
        notes.append(str(cond))
    rates = np.zeros((rec.rates.shape[0], reference.rates.shape[1], rec.rates.shape[2]))
    rates[:, match.model_index] = match.data.rates
    if len(match.model_index) < reference.rates.shape[1]:
        notes.append(f"data cover {len(match.model_index)} of {reference.rates.shape[1]} model time steps; "
                     f"steps outside are zero-filled")
    return Activity("data", "data", rates, reference.dt, reference.move_on), notes


SIMILARITY_COLUMNS = {
    "a": "first activity", "b": "second activity",
    "cca": "mean canonical correlation of the top PCs (higher = more similar, max 1)",
    "shape_distance": "Procrustes angular shape distance, rad (lower = more similar, min 0)",
    "cka": "linear CKA (higher = more similar, max 1)",
    "rsa": "Spearman r of condition dissimilarity matrices (higher = more similar)",
    "cca_null": "mean cca over condition shuffles (the null model)",
    "shape_distance_null": "mean shape distance over condition shuffles",
    "cka_null": "mean CKA over condition shuffles", "rsa_null": "mean RSA over condition shuffles",
    "cca_p": "share of condition shuffles with cca >= observed (small = significant)",
    "cca_null_time": "mean cca when each condition's time course is circularly shifted (time-shuffle null)",
}
JPCA_COLUMNS = {
    "activity": "activity", "r2_best": "R^2 of dx = M x, M unconstrained",
    "r2_skew": "R^2 with M skew-symmetric (pure rotation)",
    "ratio": "r2_skew / r2_best (higher = more rotational, max 1)",
    "frequency_hz": "rotation frequency of the strongest jPCA plane (Hz)",
    "participation_ratio": "dimensionality (participation ratio of the covariance eigenvalues)",
    "decode_position_r2": "held-out R^2 of hand position by ridge regression, folds over conditions",
    "decode_velocity_r2": "the same for hand velocity",
}


ANSWER_SOURCES = {"most_ann_like_layer": "ann", "most_ann_like_population": "ann", "most_rotational_layer": "rate"}
"""Which models each answer of :func:`headline` is drawn from: ``"rate"`` (the rate circuit) or ``"ann"``
(the rate circuit and every ANN)."""


def answer_caveat(key: str, verdict: QualityVerdict | None) -> str:
    """Empty, or a warning that the answer ``key`` comes from a model that failed its task."""
    source = next((v for k, v in ANSWER_SOURCES.items() if key.startswith(k)), None)
    if verdict is None or verdict.passed or source is None:
        return ""
    failed = [m for m in verdict.failed_models if m == "rate" or (source == "ann" and m.startswith("ann_"))]
    if not failed:
        return ""
    names = " and ".join(model_label(m) for m in failed)
    return f"drawn from {names}, which FAILED {'its' if len(failed) == 1 else 'their'} task"


def format_report(result: Comparison, verdict: QualityVerdict | None = None) -> str:
    """The comparison as plain-text tables (models, layers, populations, jPCA), headed by any quality warning."""
    def table(rows: list[dict], keys: list[str]) -> str:
        head = "  ".join(f"{k:>14s}" if i else f"{k:<22s}" for i, k in enumerate(keys))
        lines = [head]
        for r in rows:
            cells = [f"{r[keys[0]]:<22s}"] + [f"{r[k]:>14s}" if isinstance(r.get(k), str)
                                              else f"{r.get(k, float('nan')):>14.3f}" for k in keys[1:]]
            lines.append("  ".join(cells))
        return "\n".join(lines)

    kinds = {n: a.kind for n, a in result.activities.items()}
    out = verdict.warnings() if verdict is not None else []
    out += [""] if out else []
    keys = ["a", "b", "cca", "cca_null", "cca_null_time", "cca_p", "shape_distance", "shape_distance_null",
            "cka", "rsa"]
    for title, sel in (("models", ("model", "data")), ("layers vs ANNs", ("layer",)),
                       ("populations vs ANNs", ("population",))):
        rows = [r for r in result.similarity if kinds.get(r["a"]) in sel]
        if rows:
            out += [f"== similarity: {title} (cca, cka, rsa: higher = more similar; shape_distance: lower) ==",
                    table(rows, [k for k in keys if k in rows[0]]), ""]
    if result.jpca:
        out += ["== per activity: jPCA around movement onset (ratio: higher = more rotational), "
                "dimensionality, decoding of held-out conditions ==",
                table(result.jpca, [k for k in JPCA_COLUMNS if k in result.jpca[0]]), ""]
    for key, value in headline(result).items():
        caveat = answer_caveat(key, verdict)
        out.append((f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
                   + (f"  [{caveat}]" if caveat else ""))
    out += [f"note: {n}" for n in result.notes]
    return "\n".join(out)


def write_analysis(f, result: Comparison) -> None:
    """Write ``/analysis``: similarity and jPCA tables and the headline answers."""
    if "analysis" in f:
        del f["analysis"]
    g = f.create_group("analysis")
    g.attrs["description"] = ("Comparison battery (cortexsim.compare): every activity reduced to its top PCs, "
                              "compared pairwise with condition-shuffle nulls; jPCA around movement onset.")
    g.attrs.update({k: v for k, v in headline(result).items()})
    g.attrs["notes"] = "\n".join(result.notes)
    store.write_table(g, "similarity", result.similarity, "One row per compared pair.", SIMILARITY_COLUMNS)
    store.write_table(g, "jpca", result.jpca, "One row per activity.", JPCA_COLUMNS)


def write_figures(result: Comparison, figures: Path) -> None:
    """Similarity heat maps, jPCA planes and PCA trajectories."""
    from . import plots

    plots.save(plots.plot_similarity(result.similarity, [n for n, a in result.activities.items()
                                                          if a.kind in ("model", "data")]),
               figures / "similarity_models.png")
    parts = [n for n, a in result.activities.items() if a.kind in ("layer", "population")]
    if any(r["a"] in parts for r in result.similarity):
        plots.save(plots.plot_similarity(result.similarity, parts, columns_from="b"),
                   figures / "similarity_parts_vs_ann.png")
    models = [n for n, a in result.activities.items() if a.kind in ("model", "data") and n in result.jpca_results]
    plots.save(plots.plot_jpca({n: result.jpca_results[n] for n in models}), figures / "jpca.png")
    trajectories = {}
    for name in models:
        act = result.activities[name]
        fit = analysis.pca(act.rates, n_components=min(2, act.n_units))
        trajectories[name] = (fit.project(act.rates), float(fit.explained_variance_ratio.sum()), act.move_on)
    plots.save(plots.plot_pca_trajectories(trajectories), figures / "pca.png")


def summary_markdown(f, result: Comparison, verdict: QualityVerdict | None = None) -> str:
    """``summary.md``: the headline numbers of a run in a few lines, headed by the quality verdict."""
    m = store.read_metrics(f)
    lesion = store.attr_text(f["rate"].attrs.get("lesion", "intact")) if "rate" in f else "intact"
    banner = verdict.warnings() if verdict is not None else []
    lines = ["# cortexsim run summary", ""]
    if banner:
        lines += [f"> **{line}**" + ("  " if i < len(banner) - 1 else "") for i, line in enumerate(banner)] + [""]
    elif verdict is not None:
        lines += [f"Quality gate: passed ({', '.join(model_label(x) for x in verdict.models)} met the "
                  f"[quality] bars).", ""]
    lines += [f"- file: `{f.filename}`",
             f"- created {store.attr_text(f.attrs['created_utc'])}, seed {int(f.attrs['seed'])}, "
             f"cortexsim {store.attr_text(f.attrs['cortexsim_version'])} ({store.attr_text(f.attrs['git_commit'])})",
             *([f"- **lesion: {lesion}** (applied to the trained circuit)"] if lesion != "intact" else []),
             "", "## Reaching (held-out trials)", "",
             "| model | position R² | endpoint error (cm) | catch drift (cm) | task |",
             "| --- | --- | --- | --- | --- |"]
    for prefix, label in (("rate", "rate circuit"), ("rate_noisy", "rate circuit, with noise"),
                          ("ann_rnn", "RNN"), ("ann_gru", "GRU"), ("ann_lstm", "LSTM"), ("spiking", "spiking twin")):
        base, suffix = (prefix[:-6], "_noisy") if prefix.endswith("_noisy") else (prefix, "")
        key = f"{base}_position_r2{suffix}"
        if key in m:
            status = ("" if verdict is None or suffix or base not in verdict.models
                      else "**FAILED**" if verdict.failed(base) else "passed")
            lines.append(f"| {label} | {m[key]:.4f} | {m.get(f'{base}_endpoint_error_cm{suffix}', np.nan):.2f} | "
                         f"{m.get(f'{base}_catch_drift_cm{suffix}', np.nan):.2f} | {status} |")
    lines += ["", "## Circuit vs ANNs", "", "Higher cca / cka / rsa and lower shape distance mean more similar; "
              "`cca_null` is the condition-shuffle null.", "",
              "| a | b | cca | cca_null | shape distance | cka | rsa |", "| --- | --- | --- | --- | --- | --- | --- |"]
    kinds = {n: a.kind for n, a in result.activities.items()}
    for r in result.similarity:
        if kinds.get(r["a"]) in ("model", "data", "layer"):
            lines.append(f"| {r['a']} | {r['b']} | {r['cca']:.3f} | {r.get('cca_null', np.nan):.3f} | "
                         f"{r['shape_distance']:.3f} | {r['cka']:.3f} | {r['rsa']:.3f} |")
    lines += ["", "## Answers", ""]
    for key, value in headline(result).items():
        caveat = answer_caveat(key, verdict)
        lines.append((f"- {key.replace('_', ' ')}: {value:.3f}" if isinstance(value, float)
                      else f"- {key.replace('_', ' ')}: **{value}**") + (f" (**{caveat}**)" if caveat else ""))
    lines += ["", "## jPCA (rotational dynamics around movement onset), dimensionality, decoding", "",
              "| activity | R² best | R² skew | ratio | frequency (Hz) | participation ratio | "
              "decoded position R² |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result.jpca:
        if kinds.get(r["activity"]) in ("model", "data", "layer"):
            lines.append(f"| {r['activity']} | {r['r2_best']:.3f} | {r['r2_skew']:.3f} | {r['ratio']:.3f} | "
                         f"{r['frequency_hz']:.2f} | {r['participation_ratio']:.1f} | "
                         f"{r.get('decode_position_r2', np.nan):.3f} |")
    stages = store.read_stages(f)
    if stages:
        lines += ["", "## Stages (wall time when computed)", "", "| stage | seconds | finished (UTC) |",
                  "| --- | --- | --- |"]
        lines += [f"| {n} | {i['seconds']:.1f} | {i['finished_utc']} |" for n, i in stages.items()]
        if "compare" not in stages:
            lines.append("| compare | (writing this summary) | |")
        if "derived_from" in f.attrs:
            lines.append(f"\nStages with matching keys were reused from `{store.attr_text(f.attrs['derived_from'])}`.")
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
