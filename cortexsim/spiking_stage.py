"""The ``spiking`` stage: the trained circuit as LIF pools in Brian2 (:mod:`cortexsim.spiking`), written once.

:func:`run_spiking` runs the twin (:func:`cortexsim.spiking.twin.run_twin`; on an arm run it drives
the body in closed loop) and writes ``/spikes``, ``/spiking``, its metrics and figures; the pipeline's
stage and ``cortexsim spiking`` call it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from . import metrics, plots, store
from .assembly import make_task, trained_rate_network
from .config import Config
from .spiking.arm import loop_target
from .spiking.network import best_target
from .spiking.result import flat_batch
from .spiking.twin import TwinResult, run_twin
from .stage_metrics import METRICS_TEXT, log_metrics
from .tasks import task_of

LOG = logging.getLogger("cortexsim.pipeline")
"""Progress of the stage (the pipeline's logger)."""

Log = Callable[[str], None]
"""Receives one progress line."""


def run_spiking(config: Config, run_file: Path, figures: Path, log: Log | None = None) -> TwinResult:
    """Simulate the trained circuit as LIF pools in Brian2; write ``/spikes``, ``/spiking``, metrics, figures.

    On an arm run the twin drives the arm in closed loop (:mod:`cortexsim.spiking.arm`) and
    ``/spiking/effector`` and ``arm_spiking.png`` record the arm it moved.
    """
    log = log or LOG.info
    sc = config.spiking
    arm_run = config.effector.has_body
    if arm_run:
        target = loop_target(sc.target)
    else:
        target = best_target() if sc.target == "auto" else sc.target
    log(
        f"spiking: K = {sc.k} LIF neurons per unit, {sc.trials_per_condition} trials per condition "
        f"(Brian2 target {target})"
        + (
            f", driving the {config.effector.kind} body (PT5B read through a {sc.readout_tau * 1e3:g} ms filter)"
            if arm_run
            else ""
        )
    )
    with store.open_run(run_file) as f:
        trained = store.read_trained_rate(f)
        n_reach = store.read_task_targets(f).shape[0]
    net = trained_rate_network(config, trained)
    task = make_task(config)
    result = run_twin(
        net,
        config.lif,
        task,
        seed=config.experiment.seed,
        k=sc.k,
        trials_per_condition=sc.trials_per_condition,
        target=target,
        dt=sc.dt,
        readout_tau=sc.readout_tau,
    )
    n_trials = result.outputs.shape[1]  # single trials, condition-major, as the twin's own metrics
    hands = result.outputs.reshape(-1, *result.outputs.shape[2:])
    hands_batch = flat_batch(result.batch, n_trials)
    result.metrics.update(metrics.task_metrics(task_of(config.task), "spiking", hands, hands_batch))
    connectome = trained.connectome
    with store.open_for_update(run_file) as f:
        store.write_spiking(f, result, connectome, n_reach)
        if result.effector is not None:
            store.write_effector(f, "spiking", result.effector, result.batch.dt, trials=True, kind=config.effector.kind)
        store.write_metrics(f, result.metrics, METRICS_TEXT)
    plots.save(
        plots.plot_raster(result.spikes, connectome, result.params.k, duration=result.batch.n_steps * result.batch.dt),
        figures / "raster.png",
    )
    mean_out = result.outputs.mean(axis=1)
    plots.save(
        plots.plot_trajectories(task.evaluation_set(), mean_out[:n_reach], mean_out[n_reach:]),
        figures / "trajectories_spiking.png",
    )
    if result.effector is not None:
        first_trials = {name: a[:n_reach, 0] for name, a in result.effector.items()}
        plots.save(
            plots.plot_arm(task.evaluation_set(), first_trials, net.body.plant.skeleton, net.body.plant.ORIGIN),
            figures / "arm_spiking.png",
        )
    plots.save(plots.plot_fidelity(result.fidelity), figures / "spiking_fidelity.png")
    log_metrics(config, result.metrics, log)
    return result
