"""Many runs of the pipeline -- seeds, sizes, penalties, lesions -- on Dask.

A sweep file names a base experiment and the parameters to vary::

    [sweep]
    experiment = "../center_out.toml"   # base config, relative to this file
    workers = 2                         # LocalCluster worker processes (default: one per core)

    [grid]                              # every combination of these values
    "experiment.seed" = [0, 1, 2]
    "train.weight_l2" = [1e-4, 1e-3]

    [[points]]                          # and/or an explicit list (crossed with [grid])
    "lesion.silence" = []
    [[points]]
    "lesion.silence" = ["PT5B"]

    [base.spiking]                      # fixed changes to the base experiment, not swept
    trials_per_condition = 3

A parameter is a dotted path into the experiment config (``section.key`` or deeper,
e.g. ``circuit.overrides.gain``).  Every point is checked before anything runs.

Each point is one ordinary run folder ``DIR/<label>-<config hash>/`` (``config.toml``,
``run.h5``, ``figures/``, ``summary.md``, ``log.txt``; ``error.txt`` if it failed), run
by :func:`run_point` on a Dask cluster: a :class:`distributed.LocalCluster` by
default, or any scheduler by address (``dask-jobqueue`` on SLURM/PBS works unchanged;
the workers must see ``DIR``).  Points that differ only in what happens after
training (``[lesion]``, ``[spiking]``, ``[compare]``) share one trained network: the
first of them trains, the others start from a copy of its run file
(:func:`cortexsim.pipeline.run_experiment`'s ``upstream``).  Finished points are
skipped when the sweep is run again; failed ones are reported and rerun.

:func:`gather` collects ``DIR/summary.csv`` and ``DIR/summary.h5`` (one row per point:
the swept parameters, status, and every ``/metrics`` attribute) and the summary
figures in ``DIR/figures/``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import logging
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .anatomy import check_config, circuit_spec
from .assembly import check_effector, experiment_from_text, load_experiment
from .config import SECTIONS, Config, parse_toml, read_text_file
from .errors import ConfigError, CortexsimError
from .interrupts import Shield
from .model_id import of_activity

LOG = logging.getLogger(__name__)
"""Progress of a sweep (INFO)."""

SWEEP_KEYS = ("experiment", "workers")
"""Keys of the ``[sweep]`` table."""

SCHEDULER_TIMEOUT = "20s"
"""How long ``--scheduler ADDRESS`` waits for the scheduler to answer."""

CLOSE_TIMEOUT = 5.0
"""Seconds the LocalCluster's workers get to stop before they are killed, when a sweep ends or is stopped."""


class PointError(CortexsimError):
    """A sweep point's run ended without a finished run (it is reported failed)."""


@dataclass(frozen=True)
class Point:
    """One point of a sweep.

    Attributes
    ----------
    params : dict
        Swept parameter (dotted path) -> value at this point.
    config : Config
        The full experiment config of the point.
    folder : Path
        Its run folder.
    upstream : Path or None
        Folder of the point whose trained network it starts from (None: it trains).
    """

    params: dict[str, Any]
    config: Config
    folder: Path
    upstream: Path | None = None

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.folder.name


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file.

    Attributes
    ----------
    path : Path
        The sweep file.
    base : Config
        The base experiment.
    params : tuple of str
        Swept parameters (dotted paths), in file order.
    rows : list of dict
        Parameter values of every point, in order.
    fixed : dict
        Changes applied to every point (the ``[base]`` table, flattened).
    workers : int
        LocalCluster worker processes.
    text : str
        The sweep file's text (stored with the results).
    """

    path: Path
    base: Config
    params: tuple[str, ...]
    rows: list[dict[str, Any]]
    workers: int
    text: str
    fixed: dict[str, Any]

    def points(self, out: str | Path) -> list[Point]:
        """Every point's config and folder under ``out`` (checked; raises :class:`ConfigError`)."""
        from .pipeline import config_hash, stages

        out = Path(out)
        points: list[Point] = []
        trainers: dict[tuple, Path] = {}
        for i, row in enumerate(self.rows):
            where = f"{self.path} point {i + 1} ({_describe(row)})"
            config = point_config(self.base, {**self.fixed, **row}, where=where, params_base=self.path.parent)
            folder = out / f"{slug(row)}-{config_hash(config)}"
            if any(p.folder == folder for p in points):
                raise ConfigError(f"{self.path}: point {i + 1} ({_describe(row)}) repeats an earlier point")
            shared = tuple(s.key(config) for s in stages(config) if s.name == "train" or _trains_an_ann(s.name))
            upstream = trainers.setdefault(shared, folder)
            points.append(Point(row, config, folder, None if upstream == folder else upstream))
        return points


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file (see the module docstring).

    Raises
    ------
    ConfigError
        Unreadable file, unknown keys, a parameter outside the config, an empty grid.
    """
    path = Path(path)
    text = read_text_file(path, "sweep file")
    data = parse_toml(text, str(path))
    unknown = set(data) - {"sweep", "grid", "points", "base"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {sorted(unknown)}; a sweep file has [sweep], [grid], [[points]] and [base]"
        )
    for table in ("sweep", "grid", "base"):
        if not isinstance(data.get(table, {}), Mapping):
            raise ConfigError(f"{path}: {table} = {_short(data[table])}; expected a table [{table}]")
    head = data.get("sweep", {})
    bad = set(head) - set(SWEEP_KEYS)
    if bad:
        raise ConfigError(f"{path}: [sweep] has unknown key(s) {sorted(bad)}; allowed: {', '.join(SWEEP_KEYS)}")
    if "experiment" not in head:
        raise ConfigError(f'{path}: [sweep] needs experiment = "<base experiment TOML>" (relative to this file)')
    experiment = head["experiment"]
    if not isinstance(experiment, str) or not experiment.strip():
        raise ConfigError(
            f"{path}: [sweep] experiment = {_short(experiment)}; expected the base experiment's TOML file "
            f'as a string, e.g. experiment = "../center_out.toml"'
        )
    try:
        base = load_experiment(path.parent / experiment)
    except ConfigError as exc:  # name the sweep file that named the base experiment
        raise ConfigError(f"{path}: [sweep] experiment = {experiment!r}: {exc}") from None
    workers = head.get("workers", os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"{path}: [sweep] workers = {_short(workers)}; use a whole number from 1 to {MAX_WORKERS}")
    grid = _flatten(data.get("grid", {}))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: [grid] {key!r} = {_short(values)}; give a non-empty list of values")
    listed = data.get("points", [])
    if not isinstance(listed, list) or not all(isinstance(p, Mapping) for p in listed):
        raise ConfigError(f"{path}: points must be an array of tables ([[points]]), got {_short(listed)}")
    listed = [_flatten(p) for p in listed] or [{}]
    combos = [dict(zip(grid, values)) for values in product(*grid.values())] or [{}]
    rows = [{**p, **c} for p in listed for c in combos]
    params = tuple(dict.fromkeys(k for row in rows for k in row))
    if not params:
        raise ConfigError(f"{path}: nothing to sweep; add a [grid] table or [[points]]")
    fixed = _flatten(data.get("base", {}))
    for key in (*params, *fixed):
        parts = key.split(".")
        if parts[0] not in SECTIONS or len(parts) < 2 or not all(parts):
            raise ConfigError(
                f'{path}: parameter {key!r} is not a config key; write "section.key" with a '
                f"section from {', '.join(SECTIONS)}"
            )
    for where, table in [*((f"point {i + 1}", row) for i, row in enumerate(rows)), ("[base]", fixed)]:
        for key, value in table.items():
            if not _plain(value):
                raise ConfigError(
                    f"{path}: {where}: {key} = {_short(value)}; expected numbers, strings, booleans, "
                    f"or lists and tables of them (not a date or time)"
                )
    return Sweep(path, base, params, rows, int(workers), text, fixed)


MAX_WORKERS = 1024
"""Most LocalCluster worker processes ``[sweep] workers`` may ask for (as ``--workers``)."""


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> bool:
    """True if ``value`` holds only what a config key can take (no TOML date or time)."""
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_plain(x) for x in value)
    if isinstance(value, Mapping):
        return all(_plain(x) for x in value.values())
    return False


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (quoted dotted keys such as ``"a.b"`` are already flat)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            out.update(_flatten(value, path))
        else:
            out[path] = value
    return out


def _absolute_paths(data: dict[str, Any], base: Path) -> None:
    """Make the config's file paths absolute, so a point's config.toml works from its folder."""
    # os.path.realpath, not Path.resolve: a symbolic link loop stays a path that the checks refuse in one line
    if data["circuit"]["spec"] != "default":
        data["circuit"]["spec"] = os.path.realpath(base / data["circuit"]["spec"])
    if data["compare"]["data"]:
        data["compare"]["data"] = os.path.realpath(base / data["compare"]["data"])


def point_config(
    base: Config, params: Mapping[str, Any], where: str = "point", params_base: Path = Path(".")
) -> Config:
    """``base`` with the dotted-path ``params`` set (validated).

    File paths are made absolute: the base config's relative to its file, swept ones
    relative to ``params_base`` (the sweep file's folder).
    """
    data = base.to_dict()
    _absolute_paths(data, base.base)
    for key, value in params.items():
        if key in ("circuit.spec", "compare.data") and isinstance(value, str) and value not in ("default", ""):
            value = os.path.realpath(params_base / value)  # as _absolute_paths
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"{where}: {key!r} does not name a config key")
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    config = Config.from_dict(data, Path("."), where=where)
    check_config(config, where=where)
    check_effector(config, where)
    return config


def _describe(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in row.items())


def value_text(value: Any) -> str:
    """A swept value as table text (lists joined by ``+``, ``[]`` and ``""`` as ``none``)."""
    if isinstance(value, (list, tuple)):
        return "+".join(value_text(v) for v in value) if value else "none"
    if isinstance(value, dict):  # a table, e.g. a stimulation protocol: its name
        return str(value["name"]) if "name" in value else "+".join(f"{k}={value_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else "none"


def config_value(config: Config, key: str) -> Any:
    """The value at a dotted path of ``config`` (e.g. ``"lesion.silence"``)."""
    node: Any = config.to_dict()
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _trains_an_ann(stage: str) -> bool:
    """True for the stage that trains an ANN baseline (``ann:gru``): points that differ only later share it."""
    model = of_activity(stage)
    return model is not None and model.kind == "ann"


def slug(row: Mapping[str, Any], limit: int = 60) -> str:
    """Folder-safe label of a point, e.g. ``seed-1_weight_l2-0.001`` or ``silence-PT5B``."""
    parts = [f"{key.split('.')[-1]}-{value_text(value)}" for key, value in row.items()]
    text = re.sub(r"[^A-Za-z0-9.+_-]", "", "_".join(parts))
    return text[:limit] or "point"


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def point_finished(point: Point) -> bool:
    """True if the point's run folder holds every stage of its config (and its NWB file, with ``[export] nwb``)."""
    return unfinished(point.config, point.folder) is None


def unfinished(config: Config, folder: Path) -> str | None:
    """Why the run in ``folder`` is not a finished run of ``config`` (None if it is), in words.

    A point counts as done only when its run file is readable, was made with ``config`` and
    records every stage, and the NWB file ``[export] nwb`` asks for exists: whatever
    :func:`run_point` returned, a point that ended without them failed.
    """
    from .pipeline import matching_stages, stages

    run_file = folder / "run.h5"
    if not run_file.exists():
        return f"no run file {run_file}"
    try:
        with store.open_run(run_file) as f:
            if store.read_config_text(f) != config.to_toml():
                return f"{run_file} holds another config"
            missing = len(stages(config)) - len(matching_stages(f, config))
    except CortexsimError as exc:
        return str(exc)
    if missing:
        return f"{run_file} lacks {missing} of the config's stages"
    if config.export.nwb and not (folder / "run.nwb").exists():
        return f"no NWB file {folder / 'run.nwb'} ([export] nwb = true)"
    return None


def run_point(
    config_text: str, folder: str, upstream: str | None = None, blas_threads: int | None = None, _after: Any = None
) -> dict[str, Any]:
    """Run one point's pipeline (on a Dask worker); never raises.

    Parameters
    ----------
    config_text : str
        The point's full config (TOML).
    folder : str
        Its run folder; progress goes to ``folder/log.txt``, a failure's traceback to
        ``folder/error.txt``.
    upstream : str, optional
        Folder of the point whose trained network this one reuses.
    blas_threads : int, optional
        BLAS threads in this worker (keeps workers from oversubscribing the cores).
    _after : any
        Ignored; a Dask future passed here makes this point wait for it.

    Returns
    -------
    dict
        ``status`` (``"done"`` or ``"failed"``), ``error`` (one line), ``seconds``.
    """
    from threadpoolctl import threadpool_limits

    from .pipeline import run_experiment

    folder_path = Path(folder)
    folder_path.mkdir(parents=True, exist_ok=True)
    (folder_path / "error.txt").unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(folder_path / "log.txt", "a") as log_file:

        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        log(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} run on {os.uname().nodename} (pid {os.getpid()})")
        try:
            config = experiment_from_text(config_text, base=folder_path, where=f"{folder}/config.toml")
            up = Path(upstream) / "run.h5" if upstream else None
            with threadpool_limits(limits=blas_threads, user_api="blas"):
                run_experiment(config, folder_path, log=log, upstream=up if up and up.exists() else None)
            why = unfinished(config, folder_path)
            if why is not None:  # it returned, yet the run is not whole: a failure all the same
                raise PointError(f"the run ended unfinished: {why}")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - anything (SystemExit too) is reported; the sweep goes on
            (folder_path / "error.txt").write_text(traceback.format_exc())
            log(f"FAILED: {type(exc).__name__}: {exc}")
            return {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                "seconds": time.perf_counter() - t0,
            }
    return {"status": "done", "error": "", "seconds": time.perf_counter() - t0}


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    scheduler: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every unfinished point of ``sweep`` on Dask and gather the results.

    Progress goes to ``log`` (default: the ``cortexsim.sweep`` logger).

    Parameters
    ----------
    sweep : Sweep
    out : str or Path
        Output folder: one run folder per point, ``summary.csv``, ``summary.h5``, ``figures/``.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default: a
        :class:`distributed.LocalCluster` of ``workers`` processes, one thread each.
    workers : int, optional
        Overrides the sweep file's ``workers``.
    log : callable
        Receives progress lines.

    Returns
    -------
    list of dict
        The summary rows (see :func:`gather`).
    """
    log = log or LOG.info
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("the sweep command needs Dask; install it with: pip install 'cortexsim[sweep]'") from None
    out = Path(out)
    points = sweep.points(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.toml").write_text(sweep.text)
    status: dict[str, dict[str, Any]] = {}
    todo = []
    for p in points:
        p.folder.mkdir(parents=True, exist_ok=True)
        (p.folder / "config.toml").write_text(p.config.to_toml())
        if point_finished(p):
            status[p.name] = {"status": "done", "error": "", "seconds": 0.0}
        else:
            todo.append(p)
    log(
        f"sweep {sweep.path}: {len(points)} points ({len(points) - len(todo)} finished earlier, "
        f"{len(todo)} to run) -> {out}"
    )
    if todo:
        n_workers = min(workers or sweep.workers, len(todo))
        cores = os.cpu_count() or 1
        cluster = client = None
        try:
            if scheduler:
                blas = None
                try:
                    client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
                except (OSError, ValueError, TypeError) as exc:
                    raise ConfigError(
                        f"--scheduler {scheduler}: cannot connect to a Dask scheduler there ({exc}); "
                        f"give its address as tcp://HOST:PORT"
                    ) from None
            else:
                with _workers_ignore_ctrl_c():
                    cluster = LocalCluster(
                        n_workers=n_workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.CRITICAL,  # a point's failure is in its error.txt
                    )
                client = Client(cluster)
                blas = max(1, cores // n_workers)
            log(
                f"dask: scheduler {scheduler}"
                if scheduler
                else f"dask: LocalCluster of {n_workers} worker processes x 1 thread, {blas} BLAS thread(s) each"
            )
            _run_points(client, todo, blas, status, log)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: stop the workers; finished points stay finished
            _close(client, cluster, quiet=True)
            raise
        except BaseException:
            _close(client, cluster, quiet=False)
            raise
        _close(client, cluster, quiet=False)
    rows = gather(sweep, points, status, out, log)
    failed = [r for r in rows if r["status"] != "done"]
    if failed:
        log(f"{len(failed)} of {len(rows)} points failed:")
        by_error: dict[str, list[str]] = {}
        for r in failed:
            by_error.setdefault(r["error"], []).append(r["point"])
        for error, where in by_error.items():
            more = f" and {len(where) - 1} more point(s) with the same error" if len(where) > 1 else ""
            log(f"  {where[0]}{more}: {error}\n    traceback: {out / where[0] / 'error.txt'}")
        log(
            f"Rerun the sweep to retry them (finished points are skipped), or one alone with "
            f"`cortexsim run {out}/<point>/config.toml --out {out}/<point>`."
        )
    return rows


def _run_points(
    client: Any, todo: Sequence[Point], blas: int | None, status: dict[str, dict[str, Any]], log: Callable[[str], None]
) -> None:
    """Submit every point in ``todo`` to ``client`` and fill ``status`` (point name -> result) as they finish."""
    from dask.distributed import as_completed

    futures, names = {}, {}
    t0 = time.perf_counter()
    for p in todo:
        future = client.submit(
            run_point,
            p.config.to_toml(),
            str(p.folder),
            str(p.upstream) if p.upstream else None,
            blas,
            futures.get(p.upstream),
            key=f"cortexsim-{p.name}-{time.time_ns()}",
            pure=False,
        )
        futures[p.folder], names[future.key] = future, p.name
    for i, future in enumerate(as_completed(list(futures.values())), start=1):
        name = names[future.key]
        try:
            result = future.result()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a dead worker, a task that could not run, a cancelled one
            result = {
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                "seconds": float("nan"),
            }
        status[name] = result
        word = "done" if result["status"] == "done" else f"FAILED: {result['error']}"
        log(f"[{i}/{len(todo)}] {name}: {word} ({result['seconds']:.0f} s; {time.perf_counter() - t0:.0f} s elapsed)")


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (they inherit it): a Ctrl-C reaches this process only.

    The sweep's process stops the cluster itself (:func:`_close`); workers that took the Ctrl-C
    too would each print a ``KeyboardInterrupt`` traceback.  Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _close(client: Any, cluster: Any, quiet: bool) -> None:
    """Close the Dask client and the LocalCluster whole, even if more stop signals arrive meanwhile.

    ``quiet``: the sweep was stopped -- Dask's own complaints about the workers it is losing
    (tracebacks, "still alive ... killing") are not printed.
    """
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
    try:
        with Shield():  # a second Ctrl-C must not leave the cluster half-closed
            with contextlib.suppress(Exception):
                if client is not None:
                    client.close(timeout=CLOSE_TIMEOUT)
            with contextlib.suppress(Exception):
                if cluster is not None:
                    cluster.close(timeout=CLOSE_TIMEOUT)
    except KeyboardInterrupt:
        if not quiet:
            raise
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ---------------------------------------------------------------------------
# Gathering
# ---------------------------------------------------------------------------

LESION_METRICS = (
    "rate_position_r2",
    "spiking_position_r2",
    "compare_jpca_ratio_rate",
    "compare_jpca_ratio_spiking",
    "compare_cca_rate_ann_mean",
    "compare_cca_rate_data",
    "compare_fixed_points_rate",
    "compare_tangling_q90_rate",
    "rate_endpoint_error_cm",
    "rate_bump_recovery_ms",
    "rate_bump_displacement_cm",
    "rate_curl_deviation_ratio",
    "rate_curl_aftereffect_cm",
)
"""Metrics whose change from the intact circuit a lesion sweep reports (``delta_*``; the fixed-point count
of the rate circuit summed over its probe inputs among them)."""


def gather(
    sweep: Sweep,
    points: Sequence[Point],
    status: Mapping[str, Mapping[str, Any]],
    out: Path,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Collect one row per point into ``out/summary.csv`` and ``out/summary.h5``; draw the figures.

    Columns: ``point`` (folder), the swept parameters, ``status`` (``done``, ``failed``,
    ``missing``), ``error``, ``seconds``, then every ``/metrics`` attribute of the run
    files (NaN where a point lacks it) -- the quality gate per point among them
    (``quality_passed``, ``<model>_quality_passed``).  Lesion sweeps add ``lesion_cca_to_intact_rate``
    (and ``_spiking``): CCA of the lesioned and the intact circuit's activity, and
    ``delta_<metric>`` = lesioned - intact for :data:`LESION_METRICS`, against the
    intact point with the same other parameters.
    """
    log = log or LOG.info
    rows = []
    for p in points:
        st = status.get(p.name) or {"status": "missing", "error": "not run", "seconds": float("nan")}
        swept = {k: value_text(config_value(p.config, k)) for k in sweep.params}
        row: dict[str, Any] = {
            "point": p.name,
            **swept,
            "status": st["status"],
            "error": st.get("error", ""),
            "seconds": float(st.get("seconds", float("nan"))),
        }
        why = unfinished(p.config, p.folder) if row["status"] == "done" else None
        if why is not None:  # reported done, yet its run is not whole (damaged or removed since): failed
            row["status"], row["error"] = "failed", f"the run is not finished: {why}"
        run_file = p.folder / "run.h5"
        if run_file.exists():
            try:
                with store.open_run(run_file) as f:
                    row.update(store.read_metrics(f))
            except store.RunFileError as exc:
                row["error"] = row["error"] or str(exc)
        rows.append(row)
    lesioned = [k for k in sweep.params if k.startswith("lesion.")]
    if lesioned:
        _lesion_columns(sweep, points, rows, lesioned)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    text_keys = {"point", "status", "error", *sweep.params}
    for r in rows:
        for k in keys:
            r.setdefault(k, "" if k in text_keys else float("nan"))
    failed = [r["point"] for r in rows if r.get("quality_passed") == 0]
    log(
        f"quality gate: {sum(r.get('quality_passed') == 1 for r in rows)} of {len(rows)} points passed"
        + (f"; models that failed their task in {', '.join(failed)} (columns *_quality_passed)" if failed else "")
    )
    _write_csv(out / "summary.csv", rows, keys)
    store.write_sweep_summary(
        out / "summary.h5", rows, keys, sweep_text=sweep.text, base_config=sweep.base.to_toml(), parameters=sweep.params
    )
    figures = summary_figures(sweep, rows, out / "figures")
    log(f"wrote {out / 'summary.csv'}, {out / 'summary.h5'} and {len(figures)} figure(s) in {out / 'figures'}/")
    return rows


def _lesion_columns(sweep: Sweep, points: Sequence[Point], rows: list[dict], lesioned: list[str]) -> None:
    """Add ``delta_<metric>``, ``lesion_cca_to_intact_<model>`` and ``lesion_dsa_to_intact_<model>`` (in place).

    Only the rows of lesioned points change.
    """
    from .battery import lesion_dsa, lesion_similarity

    def rates(folder: Path, model: str) -> np.ndarray | None:
        with store.open_run(folder / "run.h5") as f:
            return store.read_rates(f, model)

    intact_rates = functools.cache(rates)  # an intact point is the reference of many lesions

    def others(point: Point) -> tuple:
        return tuple((k, value_text(config_value(point.config, k))) for k in sweep.params if k not in lesioned)

    intact = {others(p): (p, r) for p, r in zip(points, rows) if not p.config.lesion.active and r["status"] == "done"}
    for p, row in zip(points, rows):
        ref = intact.get(others(p))
        if ref is None or row["status"] != "done":
            continue
        ref_point, ref_row = ref
        for key in LESION_METRICS:
            if key in row and key in ref_row:
                row[f"delta_{key}"] = row[key] - ref_row[key]
        for model in ("rate", "spiking"):
            lesioned_rates, reference = rates(p.folder, model), intact_rates(ref_point.folder, model)
            if lesioned_rates is not None and reference is not None:
                row[f"lesion_cca_to_intact_{model}"] = lesion_similarity(
                    reference, lesioned_rates, p.config.compare.n_pcs
                )
                row[f"lesion_dsa_to_intact_{model}"] = lesion_dsa(reference, lesioned_rates, p.config.compare.n_pcs)


def _write_csv(path: Path, rows: list[dict], keys: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)


SUMMARY_METRICS = ("rate_position_r2", "spiking_position_r2", "compare_cca_rate_ann_mean", "compare_jpca_ratio_rate")
"""Metrics plotted against every swept parameter."""


def summary_figures(sweep: Sweep, rows: list[dict], folder: Path) -> list[Path]:
    """Metric vs each swept parameter (mean +- SD over seeds), and the lesion figure; returns the paths."""
    from . import plots

    done = [r for r in rows if r["status"] == "done"]
    if not done:
        return []
    paths = []
    metrics = [m for m in SUMMARY_METRICS if any(np.isfinite(r.get(m, np.nan)) for r in done)]
    if not metrics:
        return []
    for param in sweep.params:
        if param in ("experiment.seed", "stimulation.protocols") or param.startswith("lesion."):
            continue
        if len({r[param] for r in done}) < 2:
            continue
        paths.append(
            plots.save(
                plots.plot_sweep(done, param, metrics, others=list(sweep.params)),
                folder / f"{param.replace('.', '_')}.png",
            )
        )
    if "stimulation.protocols" in sweep.params:  # each point its own protocols: their measures, not a trend
        from .plots import stimulation as stim_plots

        figure = stim_plots.plot_stim_sweep(done, "stimulation.protocols")
        paths.append(plots.save(figure, folder / "stimulation.png"))
    if "lesion.silence" in sweep.params:
        pops = [(p.name, p.layer, p.cell_class) for p in circuit_spec(sweep.base).populations]
        paths.append(plots.save(plots.plot_lesions(done, "lesion.silence", pops), folder / "lesions.png"))
    return paths
