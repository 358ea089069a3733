"""Assembly: the objects an experiment config describes -- circuit, task, models -- built in one place.

Every stage of the pipeline, the spiking twin's stage, the sweep and the Python API build
their circuit, task and models here, from a :class:`~cortexsim.config.Config`, so that a
config means the same objects everywhere.  Nothing here reads or writes a file except
:func:`load_experiment`, which reads the experiment TOML the user names.

Random draws come from named streams of the experiment seed (:func:`seeded_rng`):
changing, say, the batch size leaves the circuit unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from . import anatomy, streams
from .anatomy import CircuitSpec
from .ann import DEFAULT_TRAIN, make_ann
from .circuit import Connectome, build_connectome
from .closed_loop import ArmANN, ArmRateNetwork, Body, Feedback
from .config import RECORDED_TASK, Config, TrainConfig, config_from_text, load_config, read_text_file
from .effector import PLANTS
from .errors import ConfigError
from .lesion import apply_lesion
from .rate import RateNetwork
from .recorded_task import RecordedTask
from .store import TrainedRate
from .tasks import BumpedTask, Task, TrialBatch, task_of
from .transfer import make_transfer


def seeded_rng(config: Config, stream: str) -> np.random.Generator:
    """Independent generator for one named use of the experiment seed.

    Different streams ("circuit", "init", "batches", "noise", "validation", "test", ...)
    never share draws, so changing, say, the batch size leaves the circuit unchanged.
    Every random draw of a run comes from one of these streams (:func:`cortexsim.streams.stream`).
    """
    return streams.stream(config.experiment.seed, stream)


def load_experiment(path: str | Path | None = None) -> Config:
    """Read an experiment TOML file and check everything it says, names included (``None``: defaults).

    :func:`cortexsim.config.load_config` checks the values; this also checks every population,
    projection and input group the file names against its circuit (with did-you-mean hints),
    so that a bad name stops the run before anything is computed.

    Raises
    ------
    ConfigError
        One line naming the file, the key and what is allowed.
    """
    config = load_config(path)
    where = str(path) if path is not None else ""
    anatomy.check_config(config, where=where)
    check_fit(config, where)
    check_effector(config, where)
    return config


def experiment_from_text(text: str, base: Path = Path("."), where: str = "config") -> Config:
    """:func:`load_experiment` for TOML text (e.g. a run file's stored config)."""
    config = config_from_text(text, base=base, where=where)
    anatomy.check_config(config, where=where)
    check_fit(config, where)
    check_effector(config, where)
    return config


def check_fit(config: Config, where: str = "") -> None:
    """``task.kind = "recorded"`` and ``[fit] data`` need each other (a fit trains on the recording's task).

    Raises
    ------
    ConfigError
        One of them without the other.
    """
    prefix = f"{where}: " if where else ""
    if config.task.kind == RECORDED_TASK and not config.fit.active:
        raise ConfigError(
            f'{prefix}task.kind = "recorded": its conditions come from a recording; name it in [fit] data'
        )
    if config.fit.active and config.task.kind != RECORDED_TASK:
        raise ConfigError(
            f'{prefix}[fit] data with task.kind = "{config.task.kind}": a fit trains on the task the recording '
            'defines; set [task] kind = "recorded"'
        )


def check_effector(config: Config, where: str = "") -> None:
    """Check what ``[effector]`` asks of the other sections, before anything is computed.

    Raises
    ------
    ConfigError
        Delays that are not whole task steps, an arm sub-step longer than its fastest activation
        time constant, a spiking twin asked to drive the arm under ``cpp_standalone``, ``[perturb]``
        without the arm or on the maze, or a hold bump that would last past the go cue.
    """
    ec = config.effector
    prefix = f"{where}: " if where else ""
    pc = config.perturb
    if not task_kind(config).PERTURBABLE and (pc.active or pc.train_bump_fraction > 0):
        raise ConfigError(
            f'{prefix}[perturb] with task.kind = "{config.task.kind}": the curl and bump protocols are measured on '
            "straight center-out reaches; run them on the center-out task, or turn perturb.curl, perturb.bumps and "
            "perturb.train_bump_fraction off"
        )
    if not ec.has_body:
        if pc.active or pc.train_bump_fraction > 0:
            raise ConfigError(
                f'{prefix}[perturb] pushes on a hand, which only a body has: set [effector] kind = "arm26" (or '
                '"pointmass24"), or turn perturb.curl, perturb.bumps and perturb.train_bump_fraction off'
            )
        return
    if pc.bumps:
        hold = config.task.eval_delay - pc.bump_hold_time - pc.bump_duration
        if "hold" in pc.bump_times and hold < -1e-9:
            raise ConfigError(
                f"{prefix}perturb.bump_hold_time = {pc.bump_hold_time} s: the hold bump of {pc.bump_duration} s ends "
                f"after the go cue (task.eval_delay = {config.task.eval_delay} s after target onset); make it at most "
                f"{config.task.eval_delay - pc.bump_duration:g} s"
            )
    try:
        ec.delay_steps(config.task.dt)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    try:
        PLANTS[ec.kind](config.task.dt, substeps=ec.substeps)
    except ConfigError as exc:  # the plant names its own argument; say which key sets it
        raise ConfigError(f"{prefix}effector.substeps = {ec.substeps} at task.dt = {config.task.dt} s: {exc}") from None
    if config.spiking.enabled and config.spiking.target == "cpp_standalone":
        raise ConfigError(
            f'{prefix}spiking.target = "cpp_standalone" with effector.kind = "{ec.kind}": the twin steps the body '
            'from Python every task step, which a standalone binary cannot; set [spiking] target = "auto" '
            '(cython) or "numpy"'
        )


def circuit_spec(config: Config) -> CircuitSpec:
    """The circuit spec of ``config`` with its overrides (:func:`cortexsim.anatomy.circuit_spec`)."""
    return anatomy.circuit_spec(config)


def build_circuit(config: Config) -> Connectome:
    """The connectome of ``config`` (deterministic for its seed; stream "circuit")."""
    return build_connectome(circuit_spec(config), config.circuit.n_units, seeded_rng(config, "circuit"))


def task_kind(config: Config):
    """What every model built for ``config`` needs of its task (inputs, groups, ``PERTURBABLE``), read no data.

    The task itself (:func:`cortexsim.tasks.task_of`), or the class :class:`RecordedTask` for ``task.kind =
    "recorded"`` (whose conditions come from ``[fit] data``, read only by :func:`make_task`).
    """
    return RecordedTask if config.task.kind == RECORDED_TASK else task_of(config.task)


def fit_data_path(config: Config) -> Path:
    """``[fit] data`` resolved against the config's folder."""
    path = Path(config.fit.data)
    return path if path.is_absolute() else config.base / path


def recorded_task(config: Config):
    """The recording of ``[fit] data``, its seeded split and the task it defines (``task.kind = "recorded"``).

    Returns
    -------
    recording : cortexsim.fit.Recording
    split : cortexsim.fit.Split
    task : RecordedTask
        Timed by ``[task]`` (``fixation``, ``reaction_time``, ``go_duration``).

    Raises
    ------
    DataError
        The data file cannot be read on the task's steps, or the split leaves too little.
    """
    from .fit import fit_task, load_recording, split_recording  # noqa: PLC0415 (the comparison layer's)

    recording = load_recording(fit_data_path(config), config.fit, config.task.dt)
    split = split_recording(recording, config.fit, config.experiment.seed)
    return recording, split, fit_task(recording, split, config.task)


def make_task(config: Config) -> Task:
    """The training task of ``config`` (:func:`cortexsim.tasks.task_of`); bumped when ``[perturb]`` says so.

    With ``[perturb] train_bump_fraction`` > 0 it is a :class:`~cortexsim.tasks.BumpedTask`; with
    ``task.kind = "recorded"`` the task of :func:`recorded_task` (which reads ``[fit] data``).
    """
    if config.task.kind == RECORDED_TASK:
        return recorded_task(config)[2]
    task = task_of(config.task)
    pc = config.perturb
    if pc.train_bump_fraction > 0:
        return BumpedTask.bumped(task, pc.train_bump_fraction, pc.bump_force, pc.bump_duration)
    return task


def validation_set(config: Config) -> TrialBatch:
    """The fixed, noise-free validation trials every model's training is checked on (stream "validation")."""
    return make_task(config).sample(config.train.validation_trials, seeded_rng(config, "validation"))


def make_rate_network(config: Config, connectome: Connectome) -> RateNetwork:
    """The rate network of ``config`` on ``connectome`` (parameters not yet set).

    With a body (``[effector] kind = "arm26"`` or ``"pointmass24"``) an
    :class:`~cortexsim.closed_loop.ArmRateNetwork`: the circuit in closed loop with that body.
    """
    rc = config.rate
    phi = make_transfer(rc.transfer, config.lif, rc.transfer_gain, rc.transfer_threshold)
    groups = task_kind(config).input_groups
    if config.effector.has_body:
        kind, extra = ArmRateNetwork, {"body": make_body(config), "task_groups": groups}
    else:
        kind, extra = RateNetwork, {"input_groups": groups}
    return kind(
        connectome,
        phi,
        config.task.dt,
        noise_std=rc.noise_std,
        dtype=np.dtype(rc.dtype),
        output_scale=config.task.reach_distance,
        **extra,
    )


def make_body(config: Config) -> Body:
    """The body side of a closed loop ``[effector]`` describes, shared by the circuit and the ANNs.

    The plant is ``effector.PLANTS[kind]``; every size (muscles, feedback channels) comes from it.
    """
    ec, task = config.effector, config.task
    proprioception, vision = ec.delay_steps(task.dt)
    feedback = Feedback(
        proprioception_delay=proprioception,
        proprioception_noise=ec.proprioception_noise,
        vision_delay=vision,
        vision_noise=ec.vision_noise,
        vision_scale=task.reach_distance,
    )
    plant = PLANTS[ec.kind](task.dt, substeps=ec.substeps)
    return Body.make(
        task.dt,
        plant=plant,
        feedback=feedback,
        start_posture=plant.configured_posture(ec.start_posture_deg),
        excitation_floor=ec.excitation_floor,
        motor_noise=ec.motor_noise,
        endpoint_load=np.array(ec.endpoint_load),
        reach=task.reach_distance,
        speed_scale=1.875 * task.reach_distance / task.reach_duration,
        effort_l2=ec.effort_l2,
        speed_l2=ec.speed_l2,
        rest_excitation=ec.rest_excitation,
    )


def initial_rate_network(config: Config, connectome: Connectome) -> RateNetwork:
    """The rate network of ``config`` with its initial parameters (stream "init"): every unit at rest."""
    net = make_rate_network(config, connectome)
    if net.body is not None:
        net.init_params(
            seeded_rng(config, "init"), config.rate.rest_rate, config.rate.input_std, 0.01, config.effector.feedback_std
        )
        return net
    net.init_params(
        seeded_rng(config, "init"),
        config.rate.rest_rate,
        config.rate.input_std,
        output_scale=0.1 * config.task.reach_distance,
    )
    return net


def trained_rate_network(config: Config, trained: TrainedRate, lesion: bool = True) -> RateNetwork:
    """The trained rate network a run file stores, lesioned as ``config.lesion`` says (unless ``lesion=False``).

    Parameters
    ----------
    config : Config
        The run's config (transfer, dt, noise, lesion).
    trained : TrainedRate
        From :func:`cortexsim.store.read_trained_rate`.
    lesion : bool
        Apply ``[lesion]`` (:func:`cortexsim.lesion.apply_lesion`).
    """
    net = make_rate_network(config, trained.connectome)
    net.set_params(trained.params)
    return apply_lesion(net, config.lesion) if lesion else net


def ann_train_config(config: Config, arch: str) -> TrainConfig:
    """``[train]`` with the recommended settings of ANN ``arch`` and the ``[ann]`` limits applied."""
    changes = {**DEFAULT_TRAIN[arch], "max_seconds": config.ann.max_seconds}
    if config.ann.max_iterations is not None:
        changes["max_iterations"] = config.ann.max_iterations
    if config.ann.lr_final is not None:
        changes["lr_final"] = config.ann.lr_final
    return replace(config.train, **changes)


def make_ann_model(config: Config, arch: str, init: bool = True):
    """ANN baseline ``arch`` of ``config``, with initial parameters (stream ``ann-init-<arch>``) when ``init``.

    With a body (``[effector] kind``) an :class:`~cortexsim.closed_loop.ArmANN`: the ANN drives the
    same body as the circuit, with the same feedback (as extra inputs: 14 for the arm) and delays.
    """
    ac = config.ann
    body = make_body(config) if config.effector.has_body else None
    n_task = len(task_kind(config).input_names)
    model = make_ann(
        arch,
        ac.n_hidden,
        config.task.dt,
        dtype=np.dtype(ac.dtype),
        output_scale=config.task.reach_distance,
        n_inputs=n_task + (body.n_feedback if body is not None else 0),
        **({"n_outputs": body.n_muscles} if body is not None else {}),
    )
    if body is not None:
        model = ArmANN(model, body, n_task)
    if init:
        model.init_params(seeded_rng(config, f"ann-init-{arch}"))
    return model


__all__ = [
    "ann_train_config",
    "build_circuit",
    "check_effector",
    "circuit_spec",
    "experiment_from_text",
    "initial_rate_network",
    "load_experiment",
    "make_ann_model",
    "make_body",
    "make_rate_network",
    "make_task",
    "read_text_file",
    "seeded_rng",
    "trained_rate_network",
    "validation_set",
]
