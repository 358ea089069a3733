"""The ``perturb`` stage: ``[perturb]``'s protocols on the trained circuit, its twin and (in their stage) the ANNs.

:func:`perturbation_run` is the science of one trained arm model (a pure function of the config and
the model: :mod:`cortexsim.perturb` runs the curl field and the bumps); :func:`spiking_perturbation_parts`
is the circuit's spiking twin through the same protocols; :func:`write_perturbation_parts` writes
``/perturbation`` and its metrics; :func:`perturbation_figures` draws ``curl.png`` and ``bumps.png`` of
every model the run file holds; :func:`run_perturbation` is the whole stage on the circuit, as the
pipeline runs it.  An ANN goes through :func:`perturbation_run` in its own stage
(:func:`cortexsim.ann_stage.ann_run`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from . import perturb, plots, quality, store
from .assembly import ann_train_config, make_task, trained_rate_network, validation_set
from .closed_loop import ArmRateNetwork
from .config import Config
from .model_id import ModelId
from .spiking.arm import loop_target
from .stage_metrics import METRICS_TEXT, gate, log_metrics
from .tasks import CenterOutTask

LOG = logging.getLogger("cortexsim.pipeline")
"""Progress of the stage (the pipeline's logger)."""

Log = Callable[[str], None]
"""Receives one progress line."""


Parts = dict[tuple[str, str], tuple[dict, dict, dict, dict[str, float]]]
"""``(kind, model) -> (tables, arrays, attrs, metrics)``: what :func:`store.write_perturbation` writes."""


@dataclass(frozen=True)
class PerturbationRun:
    """One model through ``[perturb]``'s protocols (:func:`perturbation_run`), before anything is written.

    Attributes
    ----------
    parts : dict
        ``(kind, model) -> (tables, arrays, attrs, metrics)`` for :func:`store.write_perturbation`.
    curl : CurlResult or None
        The curl protocol's result (the twin runs the adapted parameters).
    """

    parts: Parts
    curl: perturb.CurlResult | None = None


def perturbation_run(config: Config, model, prefix: str, log: Log | None = None) -> PerturbationRun:
    """Run ``[perturb]``'s protocols on one trained arm model (circuit or ANN); nothing is written.

    A pure function of its arguments and the config's seed (so an ANN's runs the same in a worker).
    """
    log = log or LOG.info
    pc = config.perturb
    task = make_task(config)  # adaptation trains on the run's own task (randomly bumped if it was)
    plain = CenterOutTask.of(config.task)  # the bump protocol's test trials are the evaluation set's
    parts: Parts = {}
    curl = None
    seed = config.experiment.seed
    if pc.curl:
        identity = ModelId.of_prefix(prefix)
        is_ann = identity is not None and identity.kind == "ann"
        train_config = ann_train_config(config, identity.arch) if is_ann else config.train
        curl = perturb.curl_protocol(
            model, task, train_config, pc, validation_set(config), seed=seed, prefix=prefix, log=log
        )
        parts[("curl", prefix)] = _curl_parts(
            curl.phases, curl.hands, config, curl.metrics, curl.curve, curl.populations
        )
    if pc.bumps:
        bumps = perturb.bump_protocol(model, plain, pc, seed=seed, prefix=prefix)
        arrays = {
            "aligned_hand": (bumps.aligned_hand, "m", "timing,direction,window,xy",
                             "Hand displacement from the unperturbed path aligned to the bump, mean over conditions."),
            "aligned_change": (bumps.aligned_change, "Hz", "timing,population,window",
                               "Mean |delta rate| per population, noisy bumped vs calm PSTHs, aligned to the bump."),
            "window": (bumps.window, "s", "window", "Time relative to the bump's onset."),
        }  # fmt: skip
        attrs = {"timings": list(bumps.timings), "populations": list(bumps.populations)}
        parts[("bumps", prefix)] = (
            {"trials": bumps.trials, "latencies": bumps.latencies},
            arrays,
            attrs,
            bumps.metrics,
        )
        m = bumps.metrics
        log(
            f"[bumps] {prefix}: median peak displacement {m[f'{prefix}_bump_displacement_cm']:.2f} cm, "
            f"median recovery {m[f'{prefix}_bump_recovery_ms']:.0f} ms (max {m[f'{prefix}_bump_recovery_max_ms']:.0f})"
        )
    return PerturbationRun(parts, curl)


def _curl_parts(phases, hands, config: Config, values, curve=(), populations=()) -> tuple:
    """The curl protocol's tables, arrays and attributes for :func:`store.write_perturbation`."""
    names = [row["phase"] for row in phases]
    arrays = {
        "hands": (
            np.stack([hands[ph] for ph in names]),
            "m",
            "phase,condition,time,xy",
            "Hand paths relative to the start on the evaluation reaches, per phase (attribute phases).",
        )
    }
    attrs = {"phases": names, "field_N_s_per_m": config.perturb.field.ravel().tolist()}
    tables = {"phases": phases, "curve": curve, "populations": populations}
    return ({k: rows for k, rows in tables.items() if rows}, arrays, attrs, values)


def spiking_perturbation_parts(config: Config, net: ArmRateNetwork, curl, log: Log | None = None) -> Parts:
    """The circuit's spiking twin through the perturbations (``perturb.spiking_trials`` trials per condition)."""
    log = log or LOG.info
    sc, pc = config.spiking, config.perturb
    twin = perturb.TwinSettings(config.experiment.seed, sc.k, sc.dt, loop_target(sc.target), sc.readout_tau)
    plain = CenterOutTask.of(config.task)
    parts: Parts = {}
    if curl is not None:
        t0 = time.perf_counter()
        rows, values, hands = perturb.curl_twin(net, curl, pc, config.lif, plain, twin)
        parts[("curl", "spiking")] = _curl_parts(tuple(rows), hands, config, values)
        log(
            f"[curl] spiking: first exposure {values['spiking_curl_first_exposure_deviation_cm']:.2f} cm, after "
            f"adaptation {values['spiking_curl_after_adaptation_deviation_cm']:.2f} cm (ratio "
            f"{values['spiking_curl_deviation_ratio']:.2f}), aftereffect "
            f"{values['spiking_curl_aftereffect_cm']:+.2f} cm ({time.perf_counter() - t0:.0f} s)"
        )
    if pc.bumps:
        t0 = time.perf_counter()
        rows, values = perturb.bump_twin(net, pc, config.lif, plain, twin)
        parts[("bumps", "spiking")] = ({"trials": tuple(rows)}, {}, {"timings": list(pc.bump_times)}, values)
        log(
            f"[bumps] spiking: median recovery {values['spiking_bump_recovery_ms']:.0f} ms "
            f"({time.perf_counter() - t0:.0f} s)"
        )
    return parts


def write_perturbation_parts(parts: Parts, run_file: Path) -> dict[str, float]:
    """Write every part under ``/perturbation`` and its metrics; returns the metrics written."""
    written: dict[str, float] = {}
    with store.open_for_update(run_file) as f:
        for (kind, model), (tables, arrays, attrs, values) in parts.items():
            store.write_perturbation(f, kind, model, tables, arrays, attrs)
            written.update(values)
        store.write_metrics(f, written, METRICS_TEXT)
    return written


def perturbation_figures(run_file: Path, folder: Path, verdict: quality.QualityVerdict) -> list[Path]:
    """``curl.png`` and ``bumps.png`` of every model ``/perturbation`` holds (none when it holds nothing).

    A model in ``verdict.failed_models`` is marked as having failed its task in both.
    """
    with store.open_run(run_file) as f:
        held = store.read_perturbation(f)
    failed = verdict.failed_models
    saved = []
    if held.get("curl"):
        saved.append(plots.save(plots.plot_curl(held["curl"], failed), folder / "curl.png"))
    if held.get("bumps"):
        saved.append(plots.save(plots.plot_bumps(held["bumps"], failed), folder / "bumps.png"))
    return saved


def run_perturbation(config: Config, run_file: Path, figures: Path, log: Log | None = None) -> dict[str, float]:
    """The trained circuit (lesioned as ``[lesion]`` says) and its twin through ``[perturb]``'s protocols.

    Writes ``/perturbation``, its metrics, ``curl.png`` and ``bumps.png``; returns the metrics written.
    """
    log = log or LOG.info
    with store.open_run(run_file) as f:
        trained = store.read_trained_rate(f)
    net = trained_rate_network(config, trained)
    with threadpool_limits(limits=net.kernel_info()["blas_threads"], user_api="blas"):
        run = perturbation_run(config, net, "rate", log)
    parts = dict(run.parts)
    if config.spiking.enabled and config.perturb.spiking_trials > 0:
        parts.update(spiking_perturbation_parts(config, net, run.curl, log))
    written = write_perturbation_parts(parts, run_file)
    perturbation_figures(run_file, figures, gate(run_file, config))
    log_metrics(config, written, log)
    return written
