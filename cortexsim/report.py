"""The comparison battery in words: the console report and ``summary.md``.

Text only: takes a :class:`~cortexsim.battery.BatteryResult`, the quality verdict and
(for ``summary.md``) a :class:`~cortexsim.store.RunSummary`, returns strings.  Nothing
here reads or writes a file.
"""

from __future__ import annotations

import numpy as np

from .battery import JPCA_COLUMNS, NULL_METHODS, BatteryResult, DynamicsResult, Row, headline
from .model_id import ModelId, anns, of_activity
from .quality import QualityVerdict, model_label
from .store import RunSummary

ANSWER_SOURCES = {"most_ann_like_layer": "ann", "most_ann_like_population": "ann", "most_rotational_layer": "rate"}
"""Which models each answer of :func:`cortexsim.battery.headline` is drawn from: ``"rate"`` (the rate
circuit) or ``"ann"`` (the rate circuit and every ANN)."""

SIMILARITY_KEYS = (
    "a",
    "b",
    "cca",
    "cca_null",
    "cca_null_time",
    "cca_p",
    "shape_distance",
    "shape_distance_null",
    "cka",
    "rsa",
)
"""Columns of the console's similarity tables, in order (those present in the rows)."""

SIMILARITY_SECTIONS = (
    ("models", ("model", "data")),
    ("layers vs ANNs", ("layer",)),
    ("populations vs ANNs", ("population",)),
)
"""Console similarity tables: title and the kinds of activity ``a`` each holds."""

JPCA_PROTOCOL_KEYS = ("window_start_s", "window_stop_s", "alignment", "onset_shift_ms")
"""Columns of a jPCA row that say how it was fitted (:func:`jpca_protocol` puts them in words)."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:+.0f} ms"


def jpca_protocol(rows: tuple[Row, ...] | list[Row]) -> list[str]:
    """How the jPCA rows were fitted, in words: the window and what movement onset each was aligned to.

    One line per distinct window and alignment, naming the activities, e.g. ``jPCA window -50 ms to
    +150 ms around measured movement onset (each model's own hand speed ...): rate, ann:gru``.
    Rows without the columns (a run compared before they were recorded) give one line saying so.
    """
    if not rows:
        return []
    if "alignment" not in rows[0]:
        return ["jPCA window and alignment: not recorded (compared before they were; `cortexsim compare` redoes it)"]
    groups: dict[tuple[float, float, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r["window_start_s"], r["window_stop_s"], r["alignment"]), []).append(r)
    out = []
    for (start, stop, alignment), members in groups.items():
        how = {
            "measured movement onset": "each model's own hand speed crossing [compare] jpca_onset_fraction of "
            "its peak after the go cue, condition by condition",
            "scheduled movement onset": "the task's",
            "recorded movement onset": "the recording's alignment event",
        }.get(str(alignment), "")
        shifts = [float(r.get("onset_shift_ms", 0.0)) for r in members]
        shift = (
            f"; mean {min(shifts):+.0f} to {max(shifts):+.0f} ms from the scheduled onset"
            if any(abs(x) >= 0.5 for x in shifts)
            else ""
        )
        names = ", ".join(str(r["activity"]) for r in members)
        out.append(
            f"jPCA window {_ms(start)} to {_ms(stop)} around {alignment}"
            + (f" ({how}{shift})" if how else "")
            + f": {names}"
        )
    return out


SUMMARY_MODELS = (
    ("rate", ModelId("rate").label),
    ("rate_noisy", f"{ModelId('rate').label}, with noise"),
    *((m.prefix, m.label) for m in anns()),
    ("spiking", ModelId("spiking").label),
    ("control", ModelId("control").label),
)
"""Rows of ``summary.md``'s reaching table: metric prefix (``_noisy``: with process noise) and label."""


def answer_caveat(key: str, verdict: QualityVerdict | None) -> str:
    """Empty, or a warning that the answer ``key`` comes from a model that failed its task."""
    source = next((v for k, v in ANSWER_SOURCES.items() if key.startswith(k)), None)
    if verdict is None or verdict.passed or source is None:
        return ""
    failed = [m for m in verdict.failed_models if m == "rate" or (source == "ann" and _kind(m) == "ann")]
    if not failed:
        return ""
    names = " and ".join(model_label(m) for m in failed)
    return f"drawn from {names}, which FAILED {'its' if len(failed) == 1 else 'their'} task"


def _table(rows: tuple[Row, ...] | list[Row], keys: list[str]) -> str:
    """Rows as fixed-width text: the first column left-aligned, text and numbers (3 decimals) right-aligned."""
    head = "  ".join(f"{k:>14s}" if i else f"{k:<22s}" for i, k in enumerate(keys))
    lines = [head]
    for r in rows:
        cells = [f"{r[keys[0]]:<22s}"] + [
            f"{r[k]:>14s}" if isinstance(r.get(k), str) else f"{r.get(k, float('nan')):>14.3f}" for k in keys[1:]
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_report(result: BatteryResult, verdict: QualityVerdict | None = None) -> str:
    """The comparison as plain-text tables (models, layers, populations, jPCA), headed by any quality warning.

    Parameters
    ----------
    result : BatteryResult
    verdict : QualityVerdict, optional
        Its warnings head the report, and answers drawn from a failed model carry a caveat.

    Returns
    -------
    str
        Lines for the console (no trailing newline).
    """
    kinds = result.kinds()
    out = verdict.warnings() if verdict is not None else []
    out += [""] if out else []
    for title, sel in SIMILARITY_SECTIONS:
        rows = [r for r in result.similarity if kinds.get(r["a"]) in sel]
        if rows:
            out += [
                f"== similarity: {title} (cca, cka, rsa: higher = more similar; shape_distance: lower) ==",
                _table(rows, [k for k in SIMILARITY_KEYS if k in rows[0]]),
                "",
            ]
    if result.jpca:
        out += [
            "== per activity: jPCA around movement onset (ratio: higher = more rotational), "
            "dimensionality, decoding of held-out conditions ==",
            _table(result.jpca, [k for k in JPCA_COLUMNS if k in result.jpca[0] and k not in JPCA_PROTOCOL_KEYS]),
            *jpca_protocol(result.jpca),
            "",
        ]
    for key, value in headline(result).items():
        caveat = answer_caveat(key, verdict)
        out.append(
            (f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
            + (f"  [{caveat}]" if caveat else "")
        )
    out += [f"note: {n}" for n in result.notes]
    return "\n".join(out)


def _banner(verdict: QualityVerdict | None) -> list[str]:
    """``summary.md``'s opening: the quality warnings as a block quote, or that the gate passed."""
    banner = verdict.warnings() if verdict is not None else []
    if banner:
        return [f"> **{line}**" + ("  " if i < len(banner) - 1 else "") for i, line in enumerate(banner)] + [""]
    if verdict is not None:
        return [
            f"Quality gate: passed ({', '.join(model_label(x) for x in verdict.models)} met the [quality] bars).",
            "",
        ]
    return []


EFFECTOR_TEXT = {
    "kinematic": "kinematic -- PT5B's linear readout is the hand position",
    "arm26": "the six-muscle arm (MotorNet's RigidTendonArm26) in closed loop: PT5B drives the muscles, "
    "delayed proprioception and vision feed back; the spiking twin (PT5B's spikes through a causal filter) and "
    "the ANN baselines drive the same arm with the same feedback",
}
"""How ``summary.md`` names what the rate circuit moved (``/rate@effector``)."""


def _reaching(run: RunSummary, verdict: QualityVerdict | None) -> list[str]:
    """``summary.md``'s table of held-out reaching per model."""
    m = run.metrics
    lines = [
        "",
        "## Reaching (held-out trials)",
        "",
        "| model | position R² | endpoint error (cm) | catch drift (cm) | peak speed error | speed profile r | task |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for prefix, label in SUMMARY_MODELS:
        base, suffix = (prefix[:-6], "_noisy") if prefix.endswith("_noisy") else (prefix, "")
        key = f"{base}_position_r2{suffix}"
        if key in m:
            status = (
                ""
                if verdict is None or suffix or base not in verdict.models
                else "**FAILED**"
                if verdict.failed(base)
                else "passed"
            )
            lines.append(
                f"| {label} | {m[key]:.4f} | {m.get(f'{base}_endpoint_error_cm{suffix}', np.nan):.2f} | "
                f"{m.get(f'{base}_catch_drift_cm{suffix}', np.nan):.2f} | "
                f"{m.get(f'{base}_peak_speed_error{suffix}', np.nan):.2f} | "
                f"{m.get(f'{base}_speed_profile_r{suffix}', np.nan):.3f} | {status} |"
            )
    return lines


def _cell(m: dict[str, float], key: str, spec: str) -> str:
    """``m[key]`` formatted, or a dash where a model has no such number (the twin's washout, say)."""
    value = m.get(key, np.nan)
    return format(value, spec) if np.isfinite(value) or np.isinf(value) else "—"


def _status(verdict: QualityVerdict | None, base: str) -> str:
    """``passed`` / ``**FAILED**`` for a model prefix the gate checked, else empty."""
    if verdict is None or base not in verdict.models:
        return ""
    return "**FAILED**" if verdict.failed(base) else "passed"


MAZE_COLUMNS = (
    ("position_r2", ".4f"),
    ("endpoint_error_cm", ".2f"),
    ("curvature_gain", ".2f"),
    ("via_error_cm", ".2f"),
)
"""The maze metrics ``summary.md``'s maze table shows (``<model>_maze_<key>``), with their formats."""


def _maze(run: RunSummary, verdict: QualityVerdict | None) -> list[str]:
    """``summary.md``'s maze table: how each model follows the curved paths (empty for other tasks)."""
    m = run.metrics
    models = [(p, label) for p, label in SUMMARY_MODELS if f"{p}_maze_curvature_gain" in m]
    if not models:
        return []
    lines = [
        "",
        "## Maze (held-out curved and straight reaches through via points)",
        "",
        "Curvature gain = how much of the curved paths' bend the hand reproduces (1 follows it, 0 reaches "
        "straight); via error = the hand's mean closest approach to the via points. Position R² alone does not "
        "tell them apart: straight reaches to every target score about 0.99.",
        "",
        "| model | position R² | endpoint (cm) | curvature gain | via error (cm) | task |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p, label in models:
        cells = [_cell(m, f"{p}_maze_{key}", spec) for key, spec in MAZE_COLUMNS]
        lines.append(f"| {label} | {' | '.join(cells)} | {_status(verdict, p)} |")
    return lines


def _perturbations(run: RunSummary, verdict: QualityVerdict | None) -> list[str]:
    """``summary.md``'s tables of the curl-field and bump protocols (empty for a run without them)."""
    m = run.metrics
    lines: list[str] = []

    models = [(p, label) for p, label in SUMMARY_MODELS if not p.endswith("_noisy")]
    curl = [(p, label) for p, label in models if f"{p}_curl_deviation_ratio" in m]
    if curl:
        lines += [
            "",
            "## Curl field (held-out reaches; lateral deviation, cm)",
            "",
            "Deviation = mean |peak distance from the straight path|; ratio = after adaptation / first exposure; "
            "aftereffect = the null-field probes' signed deviation from baseline, + when opposite to the first "
            "exposure.",
            "",
            "| model | baseline | first exposure | after adaptation | ratio | aftereffect (cm) | washout | task |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p, label in curl:
            lines.append(
                f"| {label} | {_cell(m, f'{p}_curl_baseline_deviation_cm', '.2f')} | "
                f"{_cell(m, f'{p}_curl_first_exposure_deviation_cm', '.2f')} | "
                f"{_cell(m, f'{p}_curl_after_adaptation_deviation_cm', '.2f')} | "
                f"{_cell(m, f'{p}_curl_deviation_ratio', '.2f')} | {_cell(m, f'{p}_curl_aftereffect_cm', '+.2f')} | "
                f"{_cell(m, f'{p}_curl_washout_deviation_cm', '.2f')} | {_status(verdict, p)} |"
            )
    bumps = [(p, label) for p, label in models if f"{p}_bump_recovery_ms" in m]
    if bumps:
        lines += [
            "",
            "## Bumps (held-out reaches)",
            "",
            "Recovery = from bump onset until the hand stays within 1 cm of the unperturbed path (median over bumped "
            "trials; slowest: inf when a trial is not back by its end).",
            "",
            "| model | peak displacement (cm) | recovery (ms) | hold | at peak speed | slowest (ms) | task |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p, label in bumps:
            keys = ("displacement_cm", "recovery_ms", "recovery_ms_hold", "recovery_ms_peak_speed", "recovery_max_ms")
            cells = [_cell(m, f"{p}_bump_{key}", ".2f" if key.endswith("cm") else ".0f") for key in keys]
            lines.append(f"| {label} | {' | '.join(cells)} | {_status(verdict, p)} |")
    return lines


def rotation_markdown(rows: list[dict], verdict: QualityVerdict | None = None) -> list[str]:
    """``summary.md``'s rotation-sources table: the trained arm circuit with parts of its loop removed."""
    lines = [
        "",
        "## Where the rotations come from (the trained arm circuit, manipulated after training)",
        "",
        "jPCA around movement onset; DSA to the intact circuit (rad, lower = closer dynamics). A variant that "
        "no longer reaches (large endpoint error) has lost more than its rotations.",
        "",
    ]
    if verdict is not None and verdict.failed("rate"):
        lines += [
            "**The rate circuit FAILED its task: these manipulations start from a circuit that does not reach.**",
            "",
        ]
    control = "trained_without_interpopulation_recurrence"
    failed = verdict is not None and verdict.failed("control")
    if failed and any(r["condition"] == control for r in rows):
        lines += [f"**{verdict.describe('control')}**: its row below is a circuit that does not do the task well.", ""]
    lines += [
        "| condition | jPCA ratio | frequency (Hz) | DSA to intact | endpoint error (cm) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['condition']}{' (**FAILED**)' if failed and r['condition'] == control else ''} | "
        f"{r['jpca_ratio']:.3f} | {r['frequency_hz']:.2f} | {r['dsa_to_intact']:.3f} | {r['endpoint_error_cm']:.2f} |"
        for r in rows
    ]
    return lines


def _stages(run: RunSummary) -> list[str]:
    """``summary.md``'s table of stage wall times (empty for a run without stages)."""
    if not run.stages:
        return []
    lines = [
        "",
        "## Stages (wall time when computed)",
        "",
        "| stage | seconds | finished (UTC) |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {n} | {i['seconds']:.1f} | {i['finished_utc']} |" for n, i in run.stages.items()]
    if "compare" not in run.stages:
        lines.append("| compare | (writing this summary) | |")
    if run.derived_from is not None:
        lines.append(f"\nStages with matching keys were reused from `{run.derived_from}`.")
    return lines


def model_caveat(name: str, verdict: QualityVerdict | None) -> str:
    """``" (**FAILED its task**)"`` when activity ``name`` (``rate:L5B``, ``ann:gru``, ...) is of a failed model."""
    if verdict is None or verdict.passed:
        return ""
    model = of_activity(name)
    return " (**FAILED its task**)" if model is not None and model.prefix in verdict.failed_models else ""


def _kind(prefix: str) -> str:
    """The kind of model (:attr:`ModelId.kind`) whose ``/metrics`` prefix ``prefix`` is, or ``""``."""
    model = ModelId.of_prefix(prefix)
    return model.kind if model is not None else ""


def _num(value, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "n/a"
    if np.isnan(value):
        return "undefined"  # the analysis is undefined for this input (e.g. constant activity)
    return f"{value:.{digits}f}" if np.isfinite(value) else str(value)


def _floor_note(floor: float) -> str:
    """A column header's note of its p-value floor, e.g. ``" (floor 0.091)"``."""
    return f" (floor {floor:.3f})" if np.isfinite(floor) else ""


def _p(value, floor: float) -> str:
    """A p-value cell; one at its floor ``1/(n+1)`` (no surrogate or shuffle as extreme) says so."""
    text = _num(value)
    if np.isfinite(floor) and isinstance(value, float) and np.isfinite(value) and value <= floor * (1 + 1e-9):
        return f"{text} (floor)"
    return text


def _floor_sentence(result: BatteryResult) -> str:
    """How low the p-values of this battery can go."""
    parts = []
    if result.n_surrogates:
        parts.append(
            f"{result.n_surrogates} surrogates per family: p >= 1/{result.n_surrogates + 1} = "
            f"{result.p_floor('surrogate'):.3f}"
        )
    if result.n_null:
        parts.append(
            f"{result.n_null} condition shuffles: p >= 1/{result.n_null + 1} = {result.p_floor('shuffle'):.3f}"
        )
    if not parts:
        return "No nulls were computed."
    return (
        "Every p-value is (1 + count) / (1 + n), so none can be smaller than its floor -- "
        + "; ".join(parts)
        + ". A cell marked (floor) means no surrogate or shuffle was as similar: the true p may be lower "
        "(`[compare] n_surrogates`, `n_null` raise the resolution)."
    )


def dynamics_markdown(
    result: BatteryResult, dynamics: DynamicsResult | None, verdict: QualityVerdict | None = None
) -> list[str]:
    """``summary.md``'s dynamics section (lines).

    DSA and null p-values, jPCA nulls and variance per plane, ceilings, fixed points, tangling and
    communication subspaces; a model that failed its task is flagged wherever it appears.
    """
    kinds = result.kinds()
    flag = lambda name: model_caveat(str(name), verdict)  # noqa: E731
    lines = [
        "",
        "## Dynamics, not only geometry",
        "",
        "DSA (Ostrow et al. 2023) compares the fitted linear dynamics (radians, lower = more similar). "
        "p-values: share of surrogates of b at least as similar (TME: tensor maximum entropy; CFR: "
        "corrected Fisher randomization, Elsayed & Cunningham 2017; CMPT: covariance-matched "
        "permutation, Michaels et al. 2016; shuffle: condition shuffle). Small = more similar than "
        "b's primary features explain. " + _floor_sentence(result),
        "",
    ]
    surr, shuf = result.p_floor("surrogate"), result.p_floor("shuffle")
    rows = [r for r in result.similarity if kinds.get(r["a"]) in ("model", "data", "layer")]
    if rows and "dsa" in rows[0]:
        methods = [m for m in NULL_METHODS if f"cca_p_{m}" in rows[0]]
        head = ["a", "b", "DSA", "cca", f"p shuffle{_floor_note(shuf)}"]
        head += [f"p {m.upper()}{_floor_note(surr)}" for m in methods] + ["cka"]
        head += [f"cka p {m.upper()}{_floor_note(surr)}" for m in methods]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for r in rows:
            cells = [f"{r['a']}{flag(r['a'])}", f"{r['b']}{flag(r['b'])}", _num(r.get("dsa"))]
            cells += [_num(r["cca"]), _p(r.get("cca_p", np.nan), shuf)] + [_p(r[f"cca_p_{m}"], surr) for m in methods]
            cells += [_num(r["cka"])] + [_p(r[f"cka_p_{m}"], surr) for m in methods]
            lines.append("| " + " | ".join(cells) + " |")
    jrows = [r for r in result.jpca if kinds.get(r["activity"]) in ("model", "data", "layer")]
    if jrows and "variance_plane1" in jrows[0]:
        lines += [
            "",
            "### jPCA: variance captured per plane and the ratio against its nulls",
            "",
            "| activity | ratio | "
            + " | ".join(f"p {m.upper()}{_floor_note(surr)}" for m in NULL_METHODS)
            + " | plane 1 | plane 2 | plane 3 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in jrows:
            lines.append(
                f"| {r['activity']}{flag(r['activity'])} | {_num(r['ratio'])} | "
                + " | ".join(_p(r.get(f"ratio_p_{m}", np.nan), surr) for m in NULL_METHODS)
                + " | "
                + " | ".join(_num(r.get(f"variance_plane{i}", np.nan)) for i in (1, 2, 3))
                + " |"
            )
    if dynamics is None:
        return lines
    if dynamics.calibration:
        lines += [
            "",
            "### Calibration: each model against itself (the ceiling of every score) and task decodability",
            "",
            "A score between two models means little without these: the same model measured twice "
            "(two noise seeds; trial halves for the spiking twin) reaches the ceiling; "
            "noise-free models are deterministic, so their ceiling is 1 (0 for distances) by construction.",
            "",
            "| model | measured twice by | cca | cka | rsa | shape distance | DSA | decoded position R² |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in dynamics.calibration:
            lines.append(
                f"| {r['activity']}{flag(r['activity'])} | {r['source']} | "
                + " | ".join(
                    _num(r.get(f"ceiling_{k}", np.nan)) for k in ("cca", "cka", "rsa", "shape_distance", "dsa")
                )
                + f" | {_num(r.get('decode_position_r2', np.nan))} |"
            )
    if dynamics.fixed_points:
        lines += [
            "",
            "### Fixed and slow points (zero input, and the delay-period input of opposite targets)",
            "",
            f"{int(dynamics.fixed_points[0]['n_starts'])} trajectory-sampled starts per model and input "
            "(`[compare] fixed_point_starts`); points with q below 1e-12 are kept, so an input with no point "
            "found may hold only slow points or need more starts.",
            "",
            "| model | input | points | stable | saddle | marginal | unstable | max abs eigenvalue | "
            "slowest tau (ms) | top population of the slowest modes |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in dynamics.fixed_points:
            lines.append(
                f"| {r['model']}{flag(r['model'])} | {r['input']} | {int(r['n_points'])} | {int(r['n_stable'])} | "
                f"{int(r['n_saddle'])} | {int(r['n_marginal'])} | {int(r['n_unstable'])} | "
                f"{_num(r['max_abs_eig'], 4)} | {_num(r['slowest_tau_ms'], 0)} | {r['top_population'] or '-'} |"
            )
    trows = [r for r in dynamics.tangling if kinds.get(r["activity"]) in ("model", "data", "layer")]
    if trows:
        lines += [
            "",
            "### Trajectory tangling (Russo et al. 2018; top 8 PCs, 1/s², higher = more tangled)",
            "",
            "| activity | median Q | 90th percentile Q |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {r['activity']}{flag(r['activity'])} | {_num(r['tangling_median'], 1)} | {_num(r['tangling_q90'], 1)} |"
            for r in trows
        ]
    if dynamics.communication:
        lines += [
            "",
            "### Communication subspaces (Semedo et al. 2019; cross-validated reduced-rank regression)",
            "",
            "Dimensions: the smallest rank within one standard error of the best held-out prediction (rank 0 "
            "included). On single-trial residuals (each trial minus its condition's mean) only the layers' "
            "shared fluctuations count, not what the task drives in both; on condition averages the count is "
            "the shared signal's dimensionality (inflated as a communication measure). Performance: held-out "
            "1 - NSE of the full-rank map; participation ratio: of the target's condition averages.",
            "",
            "| source | target | samples | dimensions used | performance (full rank) | target participation ratio |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        caveat = model_caveat("rate", verdict)
        lines += [
            f"| {r['source']}{caveat} | {r['target']} | {r.get('samples', 'condition averages')} | "
            f"{int(r['dimensions'])} | {_num(r['performance'])} | {_num(r['target_participation_ratio'], 1)} |"
            for r in dynamics.communication
        ]
    return lines


STIM_MODELS = (
    ("rate", ModelId("rate").label),
    ("spiking", ModelId("spiking").label),
    *((m.prefix, m.label) for m in anns()),
)
"""Rows of ``summary.md``'s stimulation table: metric model key and label."""


def _stimulation(run: RunSummary, verdict: QualityVerdict | None) -> list[str]:
    """``summary.md``'s causal experiments: protocols x models, and in words what the circuit's reach needs."""
    if not run.stimulation:
        return []
    m = run.metrics
    lines = [
        "",
        "## Stimulation (held-out reaches, noise-free, lit vs unlit)",
        "",
        "Peak = the hand's largest distance from the same reach without the light; potent = share of the activity's "
        "change (light onset to trial end) the readout can see, against chance; recovery = light off until the "
        "change stays below 10 % of its peak (nan: not by the trial's end); success = reaches meeting the endpoint "
        "bar, noise-free / on noisy interleaved trials (unlit: the same noisy trials without the light).",
        "",
        "| protocol | model | peak (cm) | endpoint (cm) | potent (chance) | recovery (ms) | success "
        "| noisy lit / unlit | task |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    words = []
    for name, label in run.stimulation:
        for model, shown in STIM_MODELS:
            key = f"stim_{name}_{model}_"
            if key + "peak_deviation_cm" not in m:
                continue
            noisy = (
                f"{m[key + 'noisy_success_rate']:.0%} / {m[key + 'noisy_success_rate_unstimulated']:.0%}"
                if key + "noisy_success_rate" in m
                else "--"
            )
            lines.append(
                f"| {name} | {shown} | {_cell(m, key + 'peak_deviation_cm', '.2f')} | "
                f"{_cell(m, key + 'endpoint_deviation_cm', '.2f')} | {_cell(m, key + 'potent_share', '.2f')} "
                f"({_cell(m, key + 'potent_chance', '.2f')}) | {_cell(m, key + 'neural_recovery_ms', '.0f')} | "
                f"{m[key + 'success_rate']:.0%} | {noisy} | {_status(verdict, model)} |"
            )
        words.append(f"- **{name}** ({label}): {_stim_words(m, name)}")
    agreement = [
        f"{name} r = {m[f'stim_{name}_twin_agreement_r']:.2f}, ratio {m[f'stim_{name}_twin_magnitude_ratio']:.2f}"
        for name, _ in run.stimulation
        if f"stim_{name}_twin_agreement_r" in m
    ]
    lines += ["", "What the circuit's reach needs:", "", *words]
    if agreement:
        lines += [
            "",
            "Twin vs circuit (correlation across conditions of the peak hand deviations; twin / circuit "
            "magnitude): " + "; ".join(agreement) + ".",
        ]
    return lines


def _stim_words(m: dict[str, float], name: str) -> str:
    """One sentence on what protocol ``name`` did to the rate circuit's reach."""
    key = f"stim_{name}_rate_"
    if key + "peak_deviation_cm" not in m:
        return "not run on the circuit."
    peak, success = m[key + "peak_deviation_cm"], m[key + "success_rate"]
    potent, chance = m[key + "potent_share"], m[key + "potent_chance"]
    if success < 0.5:
        text = f"the reach **needs** them then: {success:.0%} of lit reaches meet the bar (peak {peak:.1f} cm)"
    elif peak >= 1.0:
        text = f"the reach is perturbed but completed ({success:.0%} meet the bar; peak {peak:.1f} cm)"
    else:
        text = f"the hand barely moves (peak {peak:.2f} cm; {success:.0%} meet the bar)"
    if np.isfinite(potent) and chance > 0:
        if potent < 2 * chance:
            text += f"; the circuit's response is output-null: {potent:.0%} of it is output-potent, chance {chance:.0%}"
        else:
            text += (
                f"; {potent:.0%} of the circuit's response is output-potent, {potent / chance:.0f}x chance "
                f"({chance:.0%})"
            )
    return text + "."


def summary_markdown(
    run: RunSummary,
    result: BatteryResult,
    verdict: QualityVerdict | None = None,
    dynamics: DynamicsResult | None = None,
    rotations: list[dict] | None = None,
) -> str:
    """``summary.md``: the headline numbers of a run in a few lines, headed by the quality verdict.

    Parameters
    ----------
    run : RunSummary
        What the run file says about itself (:func:`cortexsim.store.read_run_summary`).
    result : BatteryResult
        The comparison.
    verdict : QualityVerdict, optional
    dynamics : DynamicsResult, optional
        Adds the dynamics section (:func:`dynamics_markdown`).
    rotations : list of dict, optional
        The rotation-sources table of an arm run (:func:`cortexsim.rotations.rotation_sources`).

    Returns
    -------
    str
        Markdown, ending in a newline.
    """
    lines = ["# cortexsim run summary", "", *_banner(verdict)]
    lines += [
        f"- file: `{run.filename}`",
        f"- created {run.created_utc}, seed {run.seed}, cortexsim {run.cortexsim_version} ({run.git_commit})",
        *([f"- **lesion: {run.lesion}** (applied to the trained circuit)"] if run.lesion != "intact" else []),
        f"- effector: {EFFECTOR_TEXT.get(run.effector, run.effector)}",
    ]
    lines += _reaching(run, verdict)
    lines += _maze(run, verdict)
    lines += _perturbations(run, verdict)
    lines += _stimulation(run, verdict)
    lines += [
        "",
        "## Circuit vs ANNs",
        "",
        "Higher cca / cka / rsa and lower shape distance mean more similar; `cca_null` is the condition-shuffle null.",
        "",
        "| a | b | cca | cca_null | shape distance | cka | rsa |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    kinds = result.kinds()
    for r in result.similarity:
        if kinds.get(r["a"]) in ("model", "data", "layer"):
            lines.append(
                f"| {r['a']} | {r['b']} | {r['cca']:.3f} | {r.get('cca_null', np.nan):.3f} | "
                f"{r['shape_distance']:.3f} | {r['cka']:.3f} | {r['rsa']:.3f} |"
            )
    lines += ["", "## Answers", ""]
    for key, value in headline(result).items():
        caveat = answer_caveat(key, verdict)
        lines.append(
            (
                f"- {key.replace('_', ' ')}: {value:.3f}"
                if isinstance(value, float)
                else f"- {key.replace('_', ' ')}: **{value}**"
            )
            + (f" (**{caveat}**)" if caveat else "")
        )
    shown = [r for r in result.jpca if kinds.get(r["activity"]) in ("model", "data", "layer")]
    lines += [
        "",
        "## jPCA (rotational dynamics around movement onset), dimensionality, decoding",
        "",
        *[f"- {line}" for line in jpca_protocol(shown)],
        *([""] if shown else []),
        "| activity | R² best | R² skew | ratio | frequency (Hz) | participation ratio | decoded position R² "
        "| aligned to |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in shown:
        lines.append(
            f"| {r['activity']} | {r['r2_best']:.3f} | {r['r2_skew']:.3f} | {r['ratio']:.3f} | "
            f"{r['frequency_hz']:.2f} | {r['participation_ratio']:.1f} | "
            f"{r.get('decode_position_r2', np.nan):.3f} | {r.get('alignment', 'not recorded')} |"
        )
    if dynamics is not None or (result.similarity and "dsa" in result.similarity[0]):
        lines += dynamics_markdown(result, dynamics, verdict)
    if rotations:
        lines += rotation_markdown(rotations, verdict)
    lines += _stages(run)
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
