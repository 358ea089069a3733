#!/usr/bin/env python
"""Benchmark: a sweep on a Dask LocalCluster versus the same points run one after another.

Both sides run the same ``--points`` small experiments (``experiments/smoke.toml`` with rate
training for ``--iterations`` iterations, no spiking twin and only its 16-unit GRU; distinct
seeds so nothing is shared or reused) from scratch into fresh folders:

* **reference**: ``pipeline.run_experiment`` for each point in turn, in this process, with
  the default BLAS threads;
* **sweep**: ``sweep.run_sweep`` on a fresh ``LocalCluster`` of ``--workers`` processes (one
  thread, ``cores // workers`` BLAS threads each), cluster start-up and gathering the table
  and figures included -- what a user waits for.

Printed: the median wall time of ``--repeats`` rounds of each (sides alternate which goes
first), their ratio (sweep / sequential: below 1 means the sweep is faster), and the Dask
overhead per point (cluster start-up plus scheduling, estimated as sweep time minus the
sequential time divided by the workers).

Run from the repository root (needs ``pip install -e ".[sweep]"``)::

    python benchmarks/sweep.py                  # 4 points x 3 repeats; about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

SMOKE = Path(__file__).resolve().parent.parent / "experiments" / "smoke.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from cortexsim import pipeline, sweep
    from cortexsim.config import load_config

    root = Path(tempfile.mkdtemp(prefix="cortexsim_bench_sweep_"))
    config = (
        load_config(SMOKE)
        .with_section("train", max_iterations=args.iterations, log_every=1000, checkpoint_every=1000)
        .with_section("ann", archs=["gru"])
        .with_section("spiking", enabled=False)
    )
    base = root / "base.toml"
    base.write_text(config.to_toml())
    spec = root / "sweep.toml"
    seeds = ", ".join(str(s) for s in range(1, args.points + 1))
    spec.write_text(
        f'[sweep]\nexperiment = "base.toml"\nworkers = {args.workers}\n[grid]\n"experiment.seed" = [{seeds}]\n'
    )
    parsed = sweep.load_sweep(spec)

    def sequential(folder: Path) -> float:
        t0 = time.perf_counter()
        for seed in range(1, args.points + 1):
            pipeline.run_experiment(
                config.with_section("experiment", seed=seed), folder / f"seed{seed}", log=lambda line: None
            )
        return time.perf_counter() - t0

    def on_dask(folder: Path) -> float:
        t0 = time.perf_counter()
        rows = sweep.run_sweep(parsed, folder, log=lambda line: None)
        assert all(r["status"] == "done" for r in rows), [r["error"] for r in rows]
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"sequential": [], "sweep": []}
    print(
        f"{args.points} points (60 units, {args.iterations} iterations, one 16-unit GRU), "
        f"{args.workers} Dask workers, {os.cpu_count()} cores, {args.repeats} repeats"
    )
    for r in range(args.repeats):
        order = [("sequential", sequential), ("sweep", on_dask)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            folder = root / f"{name}{r}"
            times[name].append(fn(folder))
            shutil.rmtree(folder)
            print(f"  round {r + 1}: {name:10s} {times[name][-1]:6.1f} s")
    seq, dask = statistics.median(times["sequential"]), statistics.median(times["sweep"])
    print(f"sequential (reference): {seq:6.1f} s  (median)")
    print(f"dask sweep:             {dask:6.1f} s  (median)")
    print(f"ratio sweep / sequential: {dask / seq:.2f}")
    print(
        f"dask overhead per point: {(dask - seq / args.workers) / args.points:.2f} s "
        f"(sweep time minus sequential / workers, per point)"
    )
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
