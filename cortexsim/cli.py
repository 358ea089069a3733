"""cortexsim: a six-layer M1 circuit as a trained rate network, its spiking twin and ANN baselines, compared.

Subcommands (each also takes -q/--quiet and -v/--verbose)::

    cortexsim run [CONFIG.toml] [--out DIR] [--force] [--strict]   the whole pipeline
    cortexsim sweep SWEEP.toml --out DIR [--scheduler ADDRESS]   many runs on Dask
    cortexsim circuit [--config FILE.toml] [--n-units N] [--seed S] --out FILE.h5 [--plot FILE.png]
    cortexsim inspect FILE.h5 [--json]               what a run file holds
    cortexsim spiking RUN.h5 [--k K] [--trials N] [--target T]   the LIF twin of a trained run
    cortexsim compare RUN.h5 [OTHER.h5 ...] [--data FILE]   the comparison battery
    cortexsim export RUN.h5 --nwb FILE.nwb [--heldout-fraction F] [--seed S]   the twin as NWB
    cortexsim export RUN.h5 --sonata FOLDER                                  the circuit as SONATA
    cortexsim score RUN.h5 --data FILE.nwb [--json [FILE]]   score the model on recorded trials
    cortexsim spec [--config FILE.toml] [--out FILE.toml]   the circuit spec as TOML

User errors (bad arguments, bad config, unreadable files) print one line
``cortexsim: error: ...`` and exit with status 2, never a traceback, and never
leave a partly written output.

Exit status: 0 success; 1 a model failed its task under ``run --strict``, or a sweep
point failed; 2 bad input; 130 interrupted (Ctrl-C, SIGINT); 143 stopped by SIGTERM; 129 stopped
by SIGHUP.  Every command treats the three signals alike (:mod:`cortexsim.interrupts`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import interrupts, outputs, paths, preflight, store
from ._version import __version__
from .assembly import build_circuit, circuit_spec, load_experiment
from .config import Config, read_text_file
from .errors import ConfigError, CortexsimError, RunFileError, one_line

DEFAULT_EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "center_out.toml"


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """Plain-text table of dict rows with aligned columns (numbers right-aligned)."""
    if not rows:
        return ""
    keys = list(rows[0])
    cells = [[f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    numeric = [all(isinstance(r[k], (int, float)) for r in rows) for k in keys]

    def fmt(values: Sequence[str]) -> str:
        return "  ".join(x.rjust(w) if num else x.ljust(w) for x, w, num in zip(values, widths, numeric))

    return "\n".join([fmt(keys), fmt(["-" * w for w in widths])] + [fmt(c) for c in cells])


def _config_with(args: argparse.Namespace) -> Config:
    config = load_experiment(args.config)
    if getattr(args, "n_units", None) is not None:
        config = config.with_section("circuit", n_units=args.n_units)
    if getattr(args, "seed", None) is not None:
        config = config.with_section("experiment", seed=args.seed)
    return config


def _out_file(path: str, suffixes: tuple[str, ...], flag: str, args: argparse.Namespace, **checks: object) -> Path:
    """An output file checked before anything is computed (:func:`cortexsim.paths.output_file`)."""
    checks = {"example": "circuit", "protected": outputs.precious, **checks}
    return paths.output_file(path, flag, suffixes=suffixes, force=getattr(args, "force", False), **checks)


def _inputs(args: argparse.Namespace, *names: str) -> tuple[str, ...]:
    """The input paths among ``args``' attributes ``names`` (those given)."""
    return tuple(str(getattr(args, n)) for n in names if getattr(args, n, None))


def cmd_circuit(args: argparse.Namespace) -> int:
    """`cortexsim circuit`: build a circuit, write it and print its populations (exit status)."""
    from . import pipeline, plots  # heavy imports only when needed

    config = _config_with(args)  # the config's own errors first; nothing is computed yet
    inputs = _inputs(args, "config")
    out = _out_file(args.out, (".h5", ".hdf5"), "--out", args, recognise=outputs.circuit_kind, inputs=inputs)
    plot = (
        _out_file(args.plot, (".png", ".pdf", ".svg"), "--plot", args, recognise=outputs.figure_kind, inputs=inputs)
        if args.plot
        else None
    )
    if plot is not None and os.path.realpath(out) == os.path.realpath(plot):
        raise CortexsimError(f"--plot {plot}: is the --out file; give the figure another name")
    preflight.check_circuit(config, out)
    if out.exists() and not args.force:
        store.open_run(out).close()  # never replace a damaged file
    with outputs.hold_outputs([out.parent, plot.parent if plot else None], _command_line("circuit", args)):
        connectome = build_circuit(config)
        pipeline.write_circuit_file(config, connectome, out, replace=args.force)
    print(f"{connectome!r}  seed {config.experiment.seed}")
    print(format_table(connectome.population_table()))
    print("in_degree_*: mean synapses per unit from E / I units; signed_input: mean summed signed weight (mV/Hz)")
    if plot:
        plots.save(plots.plot_connectivity(connectome), plot)
        print(f"wrote {plot}")
    print(f"wrote {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """`cortexsim inspect`: print what a run file holds, as a tree or as JSON (exit status)."""
    info = store.describe(paths.input_file(args.file, what="run file"), damaged=True)  # a FIFO would hang
    print(json.dumps(info, indent=1) if args.json else store.format_tree(info))
    if info.get("damage"):  # the tree above marks every problem; the status says the file must not be used
        first, n = info["damage"][0]["text"], len(info["damage"])
        raise RunFileError(f"{first} [DAMAGED: {n} problem(s), marked '!! DAMAGED' in the tree]")
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    """`cortexsim spec`: print or write the circuit spec with the config's overrides (exit status)."""
    config = _config_with(args)
    inputs = (*_inputs(args, "config"), *([str(config.spec_path())] if config.spec_path() else []))
    out = (
        _out_file(args.out, (".toml",), "--out", args, recognise=outputs.spec_kind, inputs=inputs) if args.out else None
    )
    text = circuit_spec(config).to_toml()
    if out:
        with outputs.hold_outputs([out.parent], _command_line("spec", args)):
            try:
                store.write_text_atomic(out, text)
            except OSError as exc:
                raise CortexsimError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {out}")
    else:
        print(text)
    return 0


def default_jobs(config) -> int:
    """``cortexsim run``'s default ``--jobs``: the cores available, at most one per worker stage plus the circuit.

    Worker stages are those that read nothing earlier stages write: each ANN, and the rotation
    control of an arm run (``[compare] rotation_control``).
    """
    from .workers import available_cores

    control = bool(config.compare.rotation_control and config.effector.has_body)
    return min(available_cores(), 1 + len(config.ann.archs) + control)


def cmd_run(args: argparse.Namespace) -> int:
    """`cortexsim run`: the whole pipeline, after every preflight check (exit status)."""
    from . import pipeline

    if args.config:
        config = load_experiment(args.config)
    else:  # the main experiment; its defaults also live in the code, for non-editable installs
        config = load_experiment(DEFAULT_EXPERIMENT if DEFAULT_EXPERIMENT.exists() else None)
    if args.out:
        out = paths.check_path(args.out, "--out")
    else:  # results/<experiment>/<timestamp>-<hash>/; a rerun continues the newest folder of this config
        out = pipeline.run_folder(config, new=args.force)
    if out.exists() and not out.is_dir():
        raise CortexsimError(f"--out {out}: exists and is not a folder")
    if args.jobs is not None and not 1 <= args.jobs <= MAX_WORKERS:
        raise CortexsimError(f"--jobs {args.jobs}: use a whole number from 1 to {MAX_WORKERS}")
    jobs = args.jobs if args.jobs is not None else default_jobs(config)
    preflight.check(config, out, force=args.force, jobs=jobs)  # before any folder or file is created
    if not args.out:
        print(f"output folder: {out}")
    try:
        with store.hold_folder(out, _command_line("run", args)):
            run_file = pipeline.run_experiment(config, out, force=args.force, jobs=jobs)
    except KeyboardInterrupt:
        again = " ".join(["cortexsim run", *([args.config] if args.config else []), "--out", str(out)])
        return _stopped(f"cortexsim: {interrupts.stopped_by()}; rerun `{again}` to continue where it stopped")
    verdict = pipeline.gate(run_file, config)
    if args.strict and not verdict.passed:
        failed = "; ".join(verdict.describe(m) for m in verdict.failed_models)
        print(f"cortexsim: quality gate failed (--strict): {failed}", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`cortexsim sweep`: every point of a sweep file on Dask, then the summary tables and figures (exit status)."""
    from . import sweep

    read_text_file(args.sweep, "sweep file")  # a clear error for a binary or non-UTF-8 file
    spec = sweep.load_sweep(args.sweep)
    out = paths.check_path(args.out, "--out")
    if out.exists() and not out.is_dir():
        raise CortexsimError(f"--out {out}: exists and is not a folder")
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise CortexsimError(f"--workers {args.workers}: use a whole number from 1 to {MAX_WORKERS}")
    if args.scheduler:
        _check_scheduler(args.scheduler)
    points = spec.points(out)
    if args.dry_run:
        print(
            format_table(
                [
                    {
                        "point": p.name,
                        **{k: sweep.value_text(sweep.config_value(p.config, k)) for k in spec.params},
                        "trains": "yes" if p.upstream is None else f"no: reuses {p.upstream.name}",
                    }
                    for p in points
                ]
            )
        )
        print(f"{len(points)} points; nothing was run (--dry-run)")
        return 0
    outputs.check_sweep_folder(out, spec.text, force=args.force)  # never over another sweep's summary
    preflight.check_sweep(points, out)  # every point, before any point runs or any folder is made
    for point in points:
        holder = store.lock_holder(point.folder)
        if holder is not None:
            raise CortexsimError(
                f"{point.folder}: in use by `{holder.get('command', '?')}` (pid {holder.get('pid')} "
                f"on {holder.get('host', '?')}); wait for it to finish"
            )
    try:
        with store.hold_folder(out, _command_line("sweep", args)):
            rows = sweep.run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers)
    except KeyboardInterrupt:  # the workers are stopped; finished points stay finished
        again = f"cortexsim sweep {args.sweep} --out {out}"
        return _stopped(
            f"cortexsim: {interrupts.stopped_by()}; finished points are kept: rerun `{again}` to run the rest"
        )
    return 1 if any(r["status"] != "done" for r in rows) else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """`cortexsim compare`: the battery on a run file, more runs and recorded data (exit status)."""
    from . import pipeline
    from .config import CompareConfig

    run_file = Path(args.run)
    config = _run_config(run_file, needs=("task", "rate"))
    others = tuple(Path(o) for o in args.others)
    for other in others:
        _run_config(other, needs=("task", "rate"), parse=False)
    if args.data:
        paths.input_file(args.data, "--data", "data file")  # before resolving: a link loop, a FIFO
    loader = {
        "variable": args.variable,
        "layout": args.layout,
        "align_event": args.align_event,
        "bin_size": args.bin_size,
        "window": tuple(args.window) if args.window else None,
        "smooth_sd": args.smooth_sd,
        "condition_column": args.condition_column,
    }
    if not args.data and any(value is not None for value in loader.values()):
        given = next(k for k, value in loader.items() if value is not None)
        raise CortexsimError(f"--{given.replace('_', '-')}: describes the --data file; give --data FILE too")
    run_cc = config.compare  # the run's own [compare] sets what the command line does not
    cc = _section(
        "compare",
        CompareConfig,
        n_pcs=run_cc.n_pcs if args.n_pcs is None else args.n_pcs,
        n_null=run_cc.n_null if args.n_null is None else args.n_null,
        n_surrogates=run_cc.n_surrogates if args.n_surrogates is None else args.n_surrogates,
        fixed_point_starts=run_cc.fixed_point_starts if args.fixed_point_starts is None else args.fixed_point_starts,
        jpca_window=run_cc.jpca_window,
        jpca_onset_fraction=run_cc.jpca_onset_fraction,
        data=str(Path(args.data).resolve()) if args.data else "",
        **loader,
    )
    data_bytes = (
        preflight.check_data_file(cc.data, config, key="--data", options=cc.loader_options()) if cc.data else 0.0
    )
    figures = Path(args.figures) if args.figures else run_file.parent / "figures"
    preflight.check_memory(config, ("compare",), data_bytes, what="the comparison")
    _check_update(run_file, figures, 4 * preflight.MiB)
    summary = run_file.parent / "summary.md"  # compare rewrites it: never someone's own notes
    paths.output_file(
        summary, "run file folder's", recognise=preflight.run_summary_kind, fix="move it away, or copy the run file"
    )
    with outputs.hold_outputs([run_file.parent, figures], _command_line("compare", args)):
        # its settings are not the run's: `cortexsim run` redoes it (reusing every unit whose inputs are the same)
        pipeline.compare_stage(run_file, figures, cc, others=others, force=args.force, forget=True)
    print(f"wrote /analysis into {run_file}, {run_file.parent / 'summary.md'} and {figures}/")
    return 0


def cmd_spiking(args: argparse.Namespace) -> int:
    """`cortexsim spiking`: the LIF twin of a trained run, with the run's or the given settings (exit status)."""
    from . import pipeline

    run_file = Path(args.run)
    config = _run_config(run_file, needs=("circuit", "task", "rate"))
    changes = {
        key: value
        for key, value in (("k", args.k), ("trials_per_condition", args.trials), ("target", args.target))
        if value is not None
    }
    flags = {"k": "--k", "trials_per_condition": "--trials", "target": "--target"}
    try:
        config = config.with_section("spiking", **changes, enabled=True)
    except ConfigError as exc:
        text = str(exc)
        for key, flag in flags.items():
            text = text.replace(f"spiking.{key}:", f"{flag} (spiking.{key}):")
        raise ConfigError(text) from None
    figures = Path(args.figures) if args.figures else run_file.parent / "figures"
    preflight.check_spiking(config)
    preflight.check_memory(config, ("spiking",), what="the spiking twin")
    s = preflight.sizes(config)  # /spiking (rates of every trial, spikes) grows the run file by about this
    _check_update(
        run_file,
        figures,
        24 * (s.targets + 1) * s.trials * s.n_steps * s.n_units
        + 16 * preflight.SPIKE_RATE_HZ * s.k * s.n_units * s.sim_seconds,
    )
    with outputs.hold_outputs([run_file.parent, figures], _command_line("spiking", args)):
        pipeline.run_spiking(config, run_file, figures)
        with store.open_for_update(run_file) as f:  # its settings may not be the run's: `cortexsim run` redoes them
            store.forget_stages(f, ["spiking", "compare"])
    print(f"wrote /spikes and /spiking into {run_file} and figures into {figures}/")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`cortexsim export`: the run's spiking twin as an NWB file, its circuit as SONATA (exit status)."""
    from . import export, sonata

    if args.nwb is None and args.sonata is None:
        raise CortexsimError("give --nwb FILE.nwb (the spiking twin), --sonata FOLDER (the circuit), or both")
    run_file = Path(args.run)
    out = None
    if args.nwb is not None:  # every check before anything is read or computed
        export.check_fraction(args.heldout_fraction)
        out = export.check_output(args.nwb, inputs=(run_file,), force=args.force)  # never the run file itself
        if args.seed is not None and not 0 <= args.seed <= 2**32 - 1:
            raise CortexsimError(f"--seed {args.seed}: use a whole number from 0 to {2**32 - 1}")
    elif args.heldout_fraction is not None or args.seed is not None:
        raise CortexsimError("--heldout-fraction and --seed choose the NWB file's held-out units; give --nwb too")
    folder = sonata.check_folder(args.sonata, inputs=(run_file,), force=args.force) if args.sonata else None
    if out is not None and folder is not None and os.path.abspath(out).startswith(os.path.abspath(folder) + os.sep):
        raise CortexsimError(f"--nwb {out}: lies in the --sonata folder {folder}; write it elsewhere")
    needs = ("task", "rate", "spikes", "spiking") if out is not None else ("circuit",)
    _run_config(run_file, needs=needs, parse=False)
    held = [p for p in (out.parent if out else None, Path(os.path.abspath(folder)).parent if folder else None) if p]
    with outputs.hold_outputs(held, _command_line("export", args)):  # e.g. a run folder being written
        if out is not None:
            done = export.export_nwb(run_file, out, heldout_fraction=args.heldout_fraction, seed=args.seed, force=True)
            held_text = (
                f", {done.n_heldout_units} rate units held out (seed {done.seed})" if done.n_heldout_units else ""
            )
            print(
                f"wrote {done.path}: {done.n_neurons} units, {done.n_spikes} spikes, {done.n_trials} trials"
                f"{held_text}{done.body_text} ({done.size_bytes / 2**20:.1f} MiB in {done.seconds:.1f} s)"
            )
        if folder is not None:
            son = sonata.export_sonata(run_file, folder, force=args.force)
            print(
                f"wrote {son.folder}/: SONATA circuit, {son.n_nodes} nodes ({son.n_node_types} node types), "
                f"{son.n_edges} edges ({son.n_edge_types} edge types), {son.weights} weights (mV/Hz), delay "
                f"{son.delay_ms:g} ms ({son.seconds:.1f} s)"
            )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """`cortexsim score`: the run's circuit against recorded single trials, NLB's measures (exit status)."""
    from . import score, score_fit

    spec = score.ScoreSpec(
        align_event=args.align_event,
        window=tuple(args.window),
        bin_size=args.bin_size,
        test_fraction=args.test_fraction,
        seed=args.seed,
        angle_column=args.angle_column,
        condition_column=args.condition_column,
        mapping=args.mapping or "",
        model=args.model,
        velocity=args.velocity,
    )  # every check before anything is read
    data = paths.check_path(args.data, "--data")
    if data.suffix.lower() != ".nwb":
        raise CortexsimError(f"--data {data}: give an NWB file (.nwb)")
    paths.input_file(data, "--data")  # a FIFO, device, folder or link loop is refused here
    if args.mapping:
        paths.input_file(args.mapping, "--mapping", "mapping file")
    json_out = None
    if args.json not in (None, "-"):
        inputs = _inputs(args, "run", "data", "mapping")
        json_out = _out_file(args.json, (".json",), "--json", args, recognise=outputs.score_kind, inputs=inputs)
    run_file = Path(args.run)
    fit_run = bool(score_fit.fit_models(run_file))  # a fit run (task.kind = "recorded") has /fit and no /rate
    if not fit_run:
        _run_config(run_file, needs=("task", "rate", *(("spiking",) if args.model == "spiking" else ())), parse=False)
    held = [json_out.parent] if json_out is not None else []
    with outputs.hold_outputs(held, _command_line("score", args)):
        result = (score_fit.score_fit if fit_run else score.score_run)(run_file, data, spec)
        if json_out is not None:
            store.write_text_atomic(json_out, json.dumps(result.to_dict(), indent=1) + "\n")
    if args.json == "-":
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(format_table([{"score": k, "value": getattr(result, k)} for k in ("co_bps", "psth_r2", "vel_r2")]))
    for note in result.notes:
        print(f"note: {note}")
    print(f"co_bps: bits per spike over each neuron's mean rate ({result.n_scored} of {result.n_neurons} neurons)")
    if json_out is not None:
        print(f"wrote {json_out}")
    return 0


MAX_WORKERS = 1024
"""Most LocalCluster worker processes ``--workers`` accepts."""


def _command_line(name: str, args: argparse.Namespace) -> str:
    """The command as typed (for the lock file and messages)."""
    return " ".join(["cortexsim", *(sys.argv[1:] if sys.argv[1:2] == [name] else [name])])


def _run_config(run_file: Path, needs: Sequence[str], parse: bool = True) -> Config | None:
    """The config stored in a run file (None unless ``parse``).

    First checks that the file is intact and holds the groups ``needs``.
    """
    with store.open_run(run_file) as f:
        missing = [g for g in needs if g not in f]
        if missing:
            what = "a trained rate network" if "rate" in missing else f"/{missing[0]}"
            if "rate" not in missing and {"spikes", "spiking"} & set(missing):
                fix = f"run `cortexsim spiking {run_file}` first"
                raise CortexsimError(f"{run_file}: has no spiking twin (/{', /'.join(missing)}); {fix}")
            raise CortexsimError(f"{run_file}: has no {what} (/{', /'.join(missing)}); run `cortexsim run` first")
        return store.read_config(f) if parse else None


def _section(name: str, kind: type, **values: object) -> object:
    """A config section built from command-line values; errors name the option (``--n-pcs``) as well as the key."""
    try:
        return kind(**values)
    except ConfigError as exc:
        text = str(exc)
        for key in values:
            text = text.replace(f"{name}.{key}:", f"--{key.replace('_', '-')} ({name}.{key}):")
        raise ConfigError(text) from None


def _check_update(run_file: Path, figures: Path, added: float) -> None:
    """Before a command updates ``run_file`` and writes ``figures``: both writable, room for the copy and figures."""
    preflight.check_writable(run_file.parent, "run file folder")
    if not os.access(run_file, os.W_OK):  # an immutable or read-only run file: refused before computing
        raise CortexsimError(
            f"{run_file}: the run file is read-only (or immutable) and cannot be updated; make it writable or copy it"
        )
    preflight.check_writable(figures, "--figures")
    size = run_file.stat().st_size
    preflight.check_free_space(
        run_file.parent,
        2 * size + added + preflight.FIGURE_BYTES + preflight.DISK_MARGIN,
        f"the updated {run_file.name} (written as a copy) and its figures",
    )


def _check_scheduler(address: str) -> None:
    """Refuse a ``--scheduler`` address that is malformed or where nothing listens (before anything is written)."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if parts.scheme not in ("tcp", "tls") or not host or port is None:
        raise CortexsimError(f"--scheduler {address}: not a Dask scheduler address; give it as tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise CortexsimError(
            f"--scheduler {address}: cannot connect to a Dask scheduler there "
            f"({exc.strerror or exc}); start the scheduler or check the address"
        ) from None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line ``cortexsim: error: ...`` (exit status 2)."""

    def error(self, message: str) -> None:
        """Print one line naming the bad argument and exit with status 2."""
        self.exit(2, one_line(f"cortexsim: error: {self.prog}: {message} (see `{self.prog} --help`)") + "\n")


def _verbosity() -> argparse.ArgumentParser:
    """The options every command takes: how much progress it prints."""
    common = argparse.ArgumentParser(add_help=False)
    talk = common.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    talk.add_argument("-v", "--verbose", action="store_true", help="print debugging detail too")
    return common


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cortexsim`` command."""
    p = _Parser(prog="cortexsim", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"cortexsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = [_verbosity()]  # every command takes --quiet / --verbose

    r = sub.add_parser("run", parents=common, help="run the experiment pipeline")
    r.add_argument("config", nargs="?", help="experiment TOML (default experiments/center_out.toml)")
    r.add_argument(
        "--out",
        help="output folder (default results/<experiment>/<UTC time>-<config hash>/, "
        "continuing the newest folder of the same config)",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="recompute every stage (with --out: even over a run of another config; without: into a new folder)",
    )
    r.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a trained model misses the [quality] bars of its task",
    )
    r.add_argument(
        "--jobs",
        type=int,
        help="stages computed at the same time: the ANN baselines (and an arm run's rotation control) train "
        "in JOBS - 1 worker processes next to the circuit (default: the cores available, at most 1 + the "
        "number of such stages; the numbers do not depend on it)",
    )
    r.set_defaults(func=cmd_run)

    w = sub.add_parser(
        "sweep",
        parents=common,
        help="run many variants of an experiment on Dask and tabulate them",
        description="Run every point of a sweep file as its own run folder under --out, on a "
        "Dask LocalCluster (or the scheduler at --scheduler), then gather "
        "summary.csv, summary.h5 and figures. Finished points are skipped; exit "
        "status 1 if any point failed. Needs the optional Dask extra: "
        "pip install 'cortexsim[sweep]'.",
    )
    w.add_argument("sweep", help="sweep TOML (see experiments/sweeps/)")
    w.add_argument("--out", required=True, help="output folder (one run folder per point)")
    w.add_argument(
        "--scheduler",
        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster on this machine)",
    )
    w.add_argument("--workers", type=int, help="LocalCluster worker processes (default: the file's, or one per core)")
    w.add_argument("--dry-run", action="store_true", help="list the points and what they share, run nothing")
    w.add_argument(
        "--force",
        action="store_true",
        help="run into an --out folder holding another sweep (its summary.csv, summary.h5 and sweep.toml are "
        "replaced; its run folders are kept)",
    )
    w.set_defaults(func=cmd_sweep)

    c = sub.add_parser("circuit", parents=common, help="build a circuit, save it and print its populations")
    c.add_argument("--config", help="experiment TOML whose [circuit] and [experiment] tables are used")
    c.add_argument("--n-units", type=int, help="total number of units")
    c.add_argument("--seed", type=int, help="random seed")
    c.add_argument("--out", required=True, help="run file to write (.h5)")
    c.add_argument("--plot", help="connectivity figure to write (.png, .pdf, .svg)")
    c.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out or --plot file that is not a circuit file or a figure (a run file, ...)",
    )
    c.set_defaults(func=cmd_circuit)

    k = sub.add_parser(
        "compare", parents=common, help="compare a run's circuit, layers and populations with its ANNs (and data)"
    )
    k.add_argument("run", help="run file (.h5) from `cortexsim run`")
    k.add_argument("others", nargs="*", help="more run files whose models join the comparison")
    k.add_argument("--data", help="recorded condition-averaged data (.npz, .mat, .nwb)")
    k.add_argument("--variable", help=".npz/.mat: name of the rates array (default rates)")
    k.add_argument(
        "--layout",
        help=".npz/.mat: axes of the rates array in order, e.g. conditions,time,neurons "
        "(default neurons,time,conditions)",
    )
    k.add_argument(
        "--align-event", help=".nwb: trials column the spikes are aligned to (required), e.g. move_onset_time"
    )
    k.add_argument("--bin-size", type=float, help=".nwb: PSTH bin width in s (default 0.01)")
    k.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("START", "STOP"),
        help=".nwb: PSTH window in s relative to the event (default -0.5 0.5)",
    )
    k.add_argument("--smooth-sd", type=float, help=".nwb: s.d. in s of the Gaussian smoothing the PSTHs (default 0.02)")
    k.add_argument("--condition-column", help=".nwb: trials column that defines conditions (default condition)")
    k.add_argument("--n-pcs", type=int, help="PCs each activity is reduced to (default: the run's [compare] n_pcs)")
    k.add_argument("--n-null", type=int, help="condition shuffles per pair (default: the run's [compare] n_null)")
    k.add_argument(
        "--n-surrogates",
        type=int,
        help="TME, CFR and CMPT surrogates per activity for the p-values (default: the run's [compare] n_surrogates)",
    )
    k.add_argument(
        "--fixed-point-starts",
        type=int,
        help="starts per input of the fixed-point search (default: the run's [compare] fixed_point_starts)",
    )
    k.add_argument("--figures", help="figure folder (default: figures/ next to the run file)")
    k.add_argument(
        "--force",
        action="store_true",
        help="compute every part of the comparison again; by default the parts whose inputs did not change "
        "since they were computed (kept in the run file's /analysis/units) are reused",
    )
    k.set_defaults(func=cmd_compare)

    sp = sub.add_parser("spiking", parents=common, help="simulate a trained run's circuit as LIF neurons (Brian2)")
    sp.add_argument("run", help="run file (.h5) with a trained rate network")
    sp.add_argument("--k", type=int, help="LIF neurons per rate unit (default: the run's [spiking] k)")
    sp.add_argument(
        "--trials", type=int, help="trials per condition (default: the run's [spiking] trials_per_condition)"
    )
    sp.add_argument("--target", choices=("auto", "numpy", "cython", "cpp_standalone"), help="Brian2 code target")
    sp.add_argument("--figures", help="figure folder (default: figures/ next to the run file)")
    sp.set_defaults(func=cmd_spiking)

    e = sub.add_parser(
        "export",
        parents=common,
        help="write a run's spiking twin as NWB (trials, units, behaviour, body) and its circuit as SONATA",
        description="Write the spiking twin of a run file as NWB 2 (readable by pynwb, pynapple, NWB Widgets, "
        "nlb_tools): trials, one Units row per LIF neuron with layer, population, cell_class, subtype and "
        "rate_unit, the hand (and on a body run its joints, muscles, feedback and perturbations) in "
        "processing/behavior and the rate circuit in processing/misc; needs the optional extra: pip install "
        "'cortexsim[nwb]'. With --sonata, write the circuit of a run file or of a circuit file from `cortexsim "
        "circuit` as SONATA nodes and edges (BMTK, NEST, libsonata). See docs/nwb.md and docs/sonata.md.",
    )
    e.add_argument("run", help="run file (.h5): with a spiking twin for --nwb; any run or circuit file for --sonata")
    e.add_argument(
        "--nwb",
        help="NWB file to write (.nwb; an existing NWB file written by cortexsim export is replaced, any other "
        "file only with --force, the run file never)",
    )
    e.add_argument(
        "--sonata",
        metavar="FOLDER",
        help="folder to write the circuit into as SONATA (nodes.h5, edges.h5, node and edge types, "
        "circuit_config.json; an earlier export there is replaced, a folder holding other files only with --force)",
    )
    e.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --nwb file that export did not write; write --sonata into a folder holding other "
        "files",
    )
    e.add_argument(
        "--heldout-fraction",
        type=float,
        help="share of rate units (with all K neurons of each) labelled held out in the Units column 'heldout'",
    )
    e.add_argument("--seed", type=int, help="seed of the held-out draw (default: the run's seed)")
    e.set_defaults(func=cmd_export)

    sc = sub.add_parser(
        "score",
        parents=common,
        help="score a run's circuit on recorded single trials (NWB): co-bps, PSTH R2, velocity R2",
        description="Map the run's conditions to recorded trials (nearest target angle, or --mapping), split the "
        "trials (seeded), fit a ridge map from the model's rates to each recorded neuron on the training trials "
        "and report on the test trials the Neural Latents Benchmark's co-smoothing bits per spike (held-out "
        "neurons), PSTH R2 and velocity-decoding R2, as nlb_tools defines them. Reads only; see docs/nwb.md.",
    )
    sc.add_argument("run", help="run file (.h5) with a trained rate network")
    sc.add_argument("--data", required=True, help="NWB file: Units (spike times, optional heldout), trials, velocity")
    sc.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="print the scores and protocol as JSON instead of a table; with FILE (.json), also write them there",
    )
    sc.add_argument(
        "--align-event", default="move_onset_time", help="trials column bins align to (default move_onset_time)"
    )
    sc.add_argument(
        "--window",
        type=float,
        nargs=2,
        default=(-0.25, 0.45),
        metavar=("START", "STOP"),
        help="scored window in s around the event (default -0.25 0.45, NLB's MC_Maze window)",
    )
    sc.add_argument("--bin-size", type=float, default=0.005, help="bin width in s (default 0.005, as NLB)")
    sc.add_argument("--test-fraction", type=float, default=0.25, help="share of trials scored (default 0.25)")
    sc.add_argument("--seed", type=int, help="seed of the train/test split (default: the run's seed)")
    sc.add_argument("--angle-column", default="target_angle", help="trials column with the target angle in rad")
    sc.add_argument("--condition-column", default="condition", help="trials column of recorded condition labels")
    sc.add_argument("--mapping", help="CSV with columns recorded,model: recorded condition -> model condition index")
    sc.add_argument(
        "--model",
        default="rate",
        help="model rates to map: rate or spiking (default rate); of a fit run, rate, rate_taskonly or ann_<arch>",
    )
    sc.add_argument("--velocity", default="hand_velocity", help="name of the hand-velocity TimeSeries")
    sc.add_argument(
        "--force", action="store_true", help="replace an existing --json FILE that cortexsim score did not write"
    )
    sc.set_defaults(func=cmd_score)

    i = sub.add_parser("inspect", parents=common, help="show what a run file holds")
    i.add_argument("file", help="run file (.h5)")
    i.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    i.set_defaults(func=cmd_inspect)

    s = sub.add_parser("spec", parents=common, help="print the circuit spec (with the config's overrides) as TOML")
    s.add_argument("--config", help="experiment TOML")
    s.add_argument(
        "--out", help="write to this file instead of printing (an existing file only if it is a circuit spec)"
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file that is not a circuit spec (never the config)",
    )
    s.set_defaults(func=cmd_spec)
    return p


@contextlib.contextmanager
def _progress_to_stdout(level: int) -> Iterator[None]:
    """Print the ``cortexsim`` loggers' lines at ``level`` and above on stdout while a command runs."""
    logger = logging.getLogger("cortexsim")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # an application's own root handlers would print every line twice
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input, 130/143/129 stopped by SIGINT/TERM/HUP).

    Every command runs under :func:`cortexsim.interrupts.handled_signals`: the three signals stop
    it as Ctrl-C does, however the process was started, with one line and no traceback.
    """
    with interrupts.handled_signals():
        try:
            return _main(argv)
        except KeyboardInterrupt:
            return _stopped(f"cortexsim: {interrupts.stopped_by()}")


def _stopped(line: str) -> int:
    """Print ``line`` (the one line of a stopped command) and return the exit status of the signal that stopped it.

    Later signals are ignored from here on: the command is already leaving.
    """
    interrupts.ignore_stop_signals()  # until handled_signals restores the handlers
    with contextlib.suppress(OSError, ValueError):  # a closed terminal (SIGHUP) has nowhere to print
        print(line, file=sys.stderr)
    return interrupts.exit_status()


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (one line, status 2)
        return exc.code if isinstance(exc.code, int) else 0
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    try:
        with _progress_to_stdout(level):
            return args.func(args)
    except CortexsimError as exc:
        print(one_line(f"cortexsim: error: {exc}"), file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
