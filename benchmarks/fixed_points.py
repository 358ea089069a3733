"""Benchmark: fixed points of the default N = 500 rate circuit under 9 constant inputs.

What it times: :func:`cortexsim.analysis.find_fixed_points` (matrix-free
Newton-GMRES with Levenberg-Marquardt fallback, see
:mod:`cortexsim.analysis.fixed_points`) on the maps of :func:`rate_map`, 1,000
starts per condition (``--starts``), 9 conditions: 8 reach targets shown
during the delay (``target = (cos, sin)``, ``go = 0``) and the go cue alone.

The network: the default M1 connectome (``default_m1_spec``, 500 units, about
4 % dense), ``lif_softplus`` transfer, dt = 10 ms, parameters from
``init_params`` (random input weights, every unit at a 5 Hz fixed point without
input), then the recurrent magnitudes scaled by 0.9 and the biases jittered by
N(0, 1 mV): random, and stable (the largest |eigenvalue| at every point found
is printed). Starts: 20 noisy trajectories of 100 steps per condition
(process noise 1.5 mV, as the network trains with), sampled with 1 mV jitter
(:func:`sample_starts`). Every point is checked against the state the map
reaches by plain iteration (2,000 steps from the rest state).

Timing: numpy's BLAS limited to one thread (the project's rule: a
multi-threaded OpenBLAS busy-waits on a shared machine), the conditions one
after another (``--workers 2`` runs them on two threads: slower than one on
the shared development machine, 24 s against 20 s at load 4, measured);
``--repeats`` runs (3), median reported, with ``/proc/loadavg`` before and
after. Building the network and simulating the trajectories are not timed.

Run from the repository root::

    .venv/bin/python benchmarks/fixed_points.py
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

from cortexsim.analysis import find_fixed_points, rate_map, sample_starts
from cortexsim.anatomy import default_m1_spec
from cortexsim.circuit import build_connectome
from cortexsim.rate import RateNetwork
from cortexsim.transfer import make_transfer


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


def conditions() -> list[np.ndarray]:
    angles = np.arange(8) * np.pi / 4
    return [np.array([np.cos(a), np.sin(a), 0.0]) for a in angles] + [np.array([0.0, 0.0, 1.0])]


def trajectories(step, net: RateNetwork, rng: np.random.Generator, trials: int = 20, steps: int = 100) -> np.ndarray:
    """Noisy runs of the map from jittered rest states, shape (trials, steps, units) in mV."""
    x = net.params["x0"][None] + rng.normal(0.0, 2.0, (trials, net.n_units))
    sd = 1.5 * np.sqrt(2.0 * net.alpha)
    out = np.empty((trials, steps, net.n_units))
    for t in range(steps):
        out[:, t] = x
        x = step(x) + rng.normal(0.0, 1.0, x.shape) * sd
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=500)
    ap.add_argument("--starts", type=int, default=1000, help="starts per condition")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="threads over conditions")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    net = build(args.seed, args.units)
    rng = np.random.default_rng(args.seed + 1)
    maps = [rate_map(net, u) for u in conditions()]
    with threadpool_limits(1, user_api="blas"):
        starts = [sample_starts(trajectories(step, net, rng), args.starts, rng, noise_std=1.0) for step, _ in maps]
    print(f"{net}\n{len(maps)} conditions x {args.starts} starts, {args.workers} worker thread(s), BLAS 1 thread")

    def solve(i: int):
        step, jac = maps[i]
        return find_fixed_points(step, jac, starts[i])

    times, results = [], None
    for rep in range(args.repeats):
        before = loadavg()
        with threadpool_limits(1, user_api="blas"):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                results = list(pool.map(solve, range(len(maps))))
            times.append(time.perf_counter() - t0)
        print(f"run {rep + 1}: {times[-1]:.2f} s   loadavg before [{before}] after [{loadavg()}]")

    failures = 0
    for i, (fp, (step, _)) in enumerate(zip(results, maps)):
        x = net.params["x0"][None].astype(float)
        for _ in range(2000):
            x = step(x)
        gap = np.min(np.linalg.norm(fp.points - x, axis=1)) if fp.n_points else np.inf
        top = np.abs(fp.eigenvalues[:, 0]).max() if fp.n_points else np.nan
        ok = fp.n_points >= 1 and gap < 1e-6 and fp.n_converged == fp.n_starts
        failures += not ok
        print(
            f"  condition {i}: {fp.n_points} point(s) {sorted(set(fp.kinds))}, max q {fp.q.max():.1e}, "
            f"max |lambda| {top:.4f}, {fp.n_converged}/{fp.n_starts} converged, "
            f"distance to the iterated state {gap:.1e} mV{'' if ok else '  FAIL'}"
        )
    print(
        f"median of {len(times)}: {statistics.median(times):.2f} s for {len(maps) * args.starts} starts "
        f"(target <= 30 s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
