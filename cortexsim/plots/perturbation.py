"""The perturbation protocols (``/perturbation``): the curl field (``curl.png``) and the bumps (``bumps.png``)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .figure import colours as _colours
from .figure import model_label as _model_label
from .figure import subplots as _subplots


def plot_curl(models: dict[str, dict], failed: tuple[str, ...] = ()) -> Figure:
    """The curl-field protocol: hand paths per phase, the learning curve, deviations and population changes.

    Parameters
    ----------
    models : dict
        ``/perturbation/curl`` as :func:`cortexsim.store.read_perturbation` returns it: per model
        (``rate``, ``spiking``, ``ann_<arch>``) its ``phases`` and (trained models) ``curve`` and
        ``populations`` tables, its ``hands`` (phase, condition, time, 2; m) and ``attrs["phases"]``.
    failed : tuple of str
        Prefixes of models that failed their task: marked wherever the model is named.
    """
    first = "rate" if "rate" in models else next(iter(models))
    names = list(models[first]["attrs"]["phases"])
    cols = max(len(names), 5)
    fig = Figure(figsize=(3.2 * cols, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(2, cols)
    hands = models[first]["hands"]
    colours = _colours("hsv", hands.shape[1])
    for j, phase in enumerate(names):
        ax = fig.add_subplot(grid[0, j])
        for k in range(hands.shape[1]):
            ax.plot(*(100 * hands[j, k].T), color=colours[k], lw=1.5)
            end = hands[0, k, -1]
            ax.plot([0, 100 * end[0]], [0, 100 * end[1]], ":", color="0.6", lw=0.8)
        on = models[first]["phases"][j]["field_on"] > 0
        ax.set_title(f"{phase.replace('_', ' ')}\n({'field on' if on else 'null field'})", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x (cm)")
        if j == 0:
            ax.set_ylabel(f"{_model_label(first, failed)}\ny (cm)")
    cx = fig.add_subplot(grid[1, :2])
    for model, entry in models.items():
        curve = entry.get("curve", ())
        if not curve:
            continue
        adapt = [r for r in curve if r["block"] == "adaptation"]
        wash = [r for r in curve if r["block"] == "washout"]
        end = adapt[-1]["iteration"] if adapt else 0.0
        xs = [r["iteration"] for r in adapt] + [end + r["iteration"] for r in wash]
        ys = [r["signed_deviation_cm"] for r in adapt] + [r["signed_deviation_cm"] for r in wash]
        cx.plot(xs, ys, "-o", ms=3, label=_model_label(model, failed))
        cx.axvline(end, color="0.5", lw=0.8, ls="--")
    cx.axhline(0, color="k", lw=0.6)
    cx.set_xlabel("training iteration (adaptation in the field, then washout after the dashed line)")
    cx.set_ylabel("signed lateral deviation (cm, + left)")
    cx.set_title("Learning curve")
    cx.legend(fontsize=8)
    dx = fig.add_subplot(grid[1, 2 : cols - 1])
    width = 0.8 / max(len(models), 1)
    for i, (model, entry) in enumerate(models.items()):
        rows = {r["phase"]: r for r in entry["phases"]}
        xs = [names.index(p) + i * width for p in rows if p in names]
        dx.bar(
            xs,
            [rows[p]["signed_deviation_cm"] for p in rows if p in names],
            width,
            label=_model_label(model, failed),
        )
    dx.set_xticks(np.arange(len(names)) + 0.4 - width / 2, [n.replace("_", "\n") for n in names], fontsize=8)
    dx.axhline(0, color="k", lw=0.6)
    dx.set_ylabel("signed lateral deviation (cm)")
    dx.set_title("Each phase, every model (aftereffect: opposite sign to first exposure)")
    dx.legend(fontsize=8)
    pops = models[first].get("populations", ())
    ex = fig.add_subplot(grid[1, cols - 1])
    if pops:
        ex.barh(np.arange(len(pops)), [r["activity_change"] for r in pops], color="C3")
        ex.set_yticks(np.arange(len(pops)), [r["population"] for r in pops], fontsize=7)
        ex.invert_yaxis()
        ex.set_xlabel("RMS rate change / RMS rate")
        ex.set_title(f"Who adapted ({_model_label(first, failed)}):\nafter adaptation vs first exposure", fontsize=9)
    else:
        ex.axis("off")
    return fig


def plot_bumps(models: dict[str, dict], failed: tuple[str, ...] = ()) -> Figure:
    """Bump responses: the hand's displacement aligned to the bump and each population's response.

    Parameters
    ----------
    models : dict
        ``/perturbation/bumps`` as :func:`cortexsim.store.read_perturbation` returns it: per model
        its ``trials`` table and (rate models, ANNs) ``aligned_hand`` (timing, direction, window, 2;
        m), ``aligned_change`` (timing, population, window; Hz), ``window`` (s), ``latencies``
        and ``attrs`` (``timings``, ``populations``).
    failed : tuple of str
        Prefixes of models that failed their task: marked wherever the model is named.
    """
    aligned = {m: e for m, e in models.items() if "aligned_hand" in e}
    first = "rate" if "rate" in aligned else next(iter(aligned), None)
    timings = list(models[first]["attrs"]["timings"]) if first else []
    fig, axes = _subplots(2, max(len(timings), 1) + 1, figsize=(5.2 * (len(timings) + 1), 8.5), squeeze=False)
    for j, when in enumerate(timings):
        ax = axes[0, j]
        for model, entry in aligned.items():
            t = 1e3 * entry["window"]
            d = 100 * np.linalg.norm(entry["aligned_hand"][j], axis=-1)  # (directions, window)
            line = ax.plot(t, d.mean(axis=0), lw=2, label=_model_label(model, failed))[0]
            if model == first:
                for row in d:
                    ax.plot(t, row, color=line.get_color(), lw=0.5, alpha=0.4)
        ax.axhline(1.0, color="k", ls=":", lw=0.8)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(f"Bump {when.replace('_', ' ')}: hand off its unperturbed path")
        ax.set_xlabel("time from bump onset (ms)")
        ax.set_ylabel("distance (cm; dotted: 1 cm)")
        ax.legend(fontsize=8)
        bx = axes[1, j]
        entry = models[first]
        change, pops = entry["aligned_change"][j], list(entry["attrs"]["populations"])
        base = np.nanmean(change[:, entry["window"] < 0], axis=1, keepdims=True)
        t = 1e3 * entry["window"]
        image = bx.imshow(
            change - base, aspect="auto", cmap="magma", origin="upper", extent=(t[0], t[-1], len(pops), 0)
        )
        bx.set_yticks(np.arange(len(pops)) + 0.5, pops, fontsize=7)
        lat = {r["population"]: r["latency_ms"] for r in entry["latencies"] if r["timing"] == when}
        for i, pop in enumerate(pops):
            if np.isfinite(lat.get(pop, np.nan)):
                bx.plot(lat[pop], i + 0.5, "c|", ms=8, mew=2)
        bx.axvline(0, color="w", lw=0.6)
        bx.set_xlabel("time from bump onset (ms)   (cyan: response latency)")
        bx.set_title(f"{_model_label(first, failed)}: mean |delta rate| over its pre-bump floor (Hz)")
        fig.colorbar(image, ax=bx, shrink=0.8)
    cx = axes[0, -1]
    for i, entry in enumerate(models.values()):
        rec = np.array([r["recovery_ms"] for r in entry["trials"]], float)
        rec = np.where(np.isfinite(rec), rec, np.nan)
        cx.scatter(np.full(rec.size, i) + np.linspace(-0.2, 0.2, rec.size), rec, s=6, alpha=0.5)
        if np.isfinite(rec).any():
            cx.plot([i - 0.3, i + 0.3], [np.nanmedian(rec)] * 2, "k-", lw=2)
        lost = int(np.isnan(rec).sum())
        if lost:
            cx.annotate(f"{lost} not back", (i, 0), xycoords=("data", "axes fraction"), ha="center", fontsize=7)
    cx.set_xticks(range(len(models)), [_model_label(m, failed, "\n") for m in models], fontsize=8)
    cx.set_ylabel("recovery time (ms; bar: median)")
    cx.set_title("Back within 1 cm of the unperturbed path")
    axes[1, -1].axis("off")
    return fig
