"""Benchmark: fixed points of the default N = 500 rate circuit under 9 constant inputs.

What it times: :func:`cortexsim.analysis.find_fixed_points` (matrix-free
Newton-GMRES with Levenberg-Marquardt fallback, see
:mod:`cortexsim.analysis.fixed_points`) on the maps of :func:`rate_map`, 1,000
starts per condition (``--starts``), 9 conditions -- the issue-15 protocol:
zero input and the delay-period input of each of the 8 targets of the default
task (``battery.probe_inputs(evaluation, every=1)``: the input one step before
the go cue), with the battery's settings (``battery.FIXED_POINT_MAX_ITER``
iterations at most, default ``tol``, ``dedup_tol``).

Two networks:

* ``--run RUN.h5``: the *trained* circuit of a run file (``cortexsim run``),
  starts drawn from its noise-free evaluation-set states (8 conditions, mV) with
  a jitter of 5 % of their SD, as :func:`cortexsim.battery.fixed_point_rows`
  draws them.
* without ``--run``: a random circuit -- the default M1 connectome
  (``default_m1_spec``, 500 units, about 4 % dense), ``lif_softplus``, dt = 10
  ms, parameters from ``init_params`` (random input weights, every unit at a 5
  Hz fixed point without input), the recurrent magnitudes scaled by 0.9 and the
  biases jittered by N(0, 1 mV): random, and stable. Starts: 20 noisy
  trajectories of 100 steps per condition (process noise 1.5 mV), sampled with
  1 mV jitter (:func:`sample_starts`).

Every point set is checked against the state the map reaches by plain
iteration (2,000 steps from the rest state, or from the end of the delay
period on the trained circuit): a stable point must be among those found.

Timing: numpy's BLAS limited to one thread (the project's rule: a
multi-threaded OpenBLAS busy-waits on a shared machine), the conditions one
after another (``--workers 2`` runs them on two threads: slower than one on
the shared development machine, 24 s against 20 s at load 4, measured);
``--repeats`` runs (3), median reported, with ``/proc/loadavg`` before and
after. Building the network and simulating the trajectories are not timed.

Run from the repository root::

    .venv/bin/python benchmarks/fixed_points.py [--run results/center_out/<run>/run.h5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from cortexsim import battery, store
from cortexsim.analysis import find_fixed_points, rate_map, sample_starts
from cortexsim.anatomy import default_m1_spec
from cortexsim.assembly import load_experiment, make_task, trained_rate_network
from cortexsim.circuit import build_connectome
from cortexsim.rate import RateNetwork
from cortexsim.transfer import make_transfer

DEFAULT_EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "center_out.toml"


def loadavg() -> str:
    path = Path("/proc/loadavg")
    return path.read_text().strip() if path.exists() else "n/a"


def build(seed: int, n_units: int) -> RateNetwork:
    rng = np.random.default_rng(seed)
    net = RateNetwork(build_connectome(default_m1_spec(), n_units, rng), make_transfer("lif_softplus"), 0.01)
    params = net.init_params(rng)
    params = {k: v.copy() for k, v in params.items()}
    params["w"] *= 0.9
    params["b"] += rng.normal(0.0, 1.0, net.n_units)
    net.set_params(params)
    return net


def trajectories(step, net: RateNetwork, rng: np.random.Generator, trials: int = 20, steps: int = 100) -> np.ndarray:
    """Noisy runs of the map from jittered rest states, shape (trials, steps, units) in mV."""
    x = net.params["x0"][None] + rng.normal(0.0, 2.0, (trials, net.n_units))
    sd = 1.5 * np.sqrt(2.0 * net.alpha)
    out = np.empty((trials, steps, net.n_units))
    for t in range(steps):
        out[:, t] = x
        x = step(x) + rng.normal(0.0, 1.0, x.shape) * sd
    return out


def setup(args: argparse.Namespace):
    """The network, its 9 constant inputs, the starts per input and a state to iterate from per input."""
    rng = np.random.default_rng(args.seed + 1)
    if args.run:
        with store.open_run(args.run) as f:
            config = store.read_config(f)
            net = trained_rate_network(config, store.read_trained_rate(f))
    else:
        config = load_experiment(DEFAULT_EXPERIMENT)
        net = build(args.seed, args.units)
    evaluation = make_task(config).evaluation_set()
    inputs = battery.probe_inputs(evaluation, every=1)
    maps = [rate_map(net, u) for _, u in inputs]
    with threadpool_limits(1, user_api="blas"):
        if args.run:
            states = net.simulate(evaluation).state
            jitter = 0.05 * float(np.std(states))
            starts = [sample_starts(states, args.starts, rng, noise_std=jitter) for _ in maps]
            go = int(round(float(evaluation.params["go"][0]) / evaluation.dt)) - 1
            origins = [states[:, go].mean(axis=0)] + [states[i, go] for i in range(len(inputs) - 1)]
        else:
            starts = [sample_starts(trajectories(step, net, rng), args.starts, rng, noise_std=1.0) for step, _ in maps]
            origins = [net.params["x0"]] * len(maps)
    return net, inputs, maps, starts, origins


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a run file: benchmark its trained circuit (default: a random one)")
    ap.add_argument("--units", type=int, default=500, help="random circuit only")
    ap.add_argument("--starts", type=int, default=1000, help="starts per condition")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="threads over conditions")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    net, inputs, maps, starts, origins = setup(args)
    which = f"trained ({args.run})" if args.run else "random"
    print(
        f"{which}: {net}\n{len(maps)} conditions x {args.starts} starts, {args.workers} worker thread(s), BLAS 1 thread"
    )

    def solve(i: int):
        step, jac = maps[i]
        return find_fixed_points(step, starts[i], max_iter=battery.FIXED_POINT_MAX_ITER, jacobian=jac)

    times, results = [], None
    for rep in range(args.repeats):
        before = loadavg()
        with threadpool_limits(1, user_api="blas"):
            t0, c0 = time.perf_counter(), time.process_time()
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                results = list(pool.map(solve, range(len(maps))))
            times.append(time.perf_counter() - t0)
            cpu = time.process_time() - c0
        print(f"run {rep + 1}: {times[-1]:.2f} s ({cpu:.2f} s CPU)   loadavg before [{before}] after [{loadavg()}]")

    failures = 0
    for (label, _), fp, (step, _), origin in zip(inputs, results, maps, origins):
        x = np.asarray(origin, float)[None]
        for _ in range(2000):
            x = step(x)
        settled = np.linalg.norm(step(x) - x) < 1e-8
        gap = np.min(np.linalg.norm(fp.points - x, axis=1)) if fp.n_points else np.inf
        top = np.abs(fp.eigenvalues[:, 0]).max() if fp.n_points else np.nan
        ok = fp.n_points >= 1 and (gap < 1e-6 or not settled)
        failures += not ok
        tally = ", ".join(f"{fp.kinds.count(k)} {k}" for k in sorted(set(fp.kinds))) or "none"
        print(
            f"  {label:>8}: {fp.n_points} point(s) ({tally}), max q {fp.q.max(initial=0):.1e}, "
            f"max |lambda| {top:.4f}, {fp.n_converged}/{fp.n_starts} converged, "
            f"iterated state {'settled' if settled else 'did not settle'}, distance {gap:.1e} mV"
            f"{'' if ok else '  FAIL'}"
        )
    with threadpool_limits(1, user_api="blas"):
        t0 = time.perf_counter()
        for fp, (_, jac) in zip(results, maps):
            np.linalg.eig(jac.full(fp.points))
        classify = time.perf_counter() - t0
    total = statistics.median(times)
    print(
        f"median of {len(times)}: {total:.2f} s for {len(maps) * args.starts} starts, of which about "
        f"{classify:.2f} s classify the {sum(fp.n_points for fp in results)} points (np.linalg.eig, timed again "
        f"after): search and deduplication {total - classify:.2f} s (target <= 30 s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
