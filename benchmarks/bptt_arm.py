#!/usr/bin/env python
"""Benchmark: a BPTT iteration of the circuit driving the six-muscle arm, against the kinematic one.

One iteration = ``net.loss_and_grad(batch, Penalties(), noise)`` for a batch of 64 trials of the
default center-out task (176 steps of 10 ms), float32, the default N = 500 circuit, run the way
training runs it (BLAS limited to ``net.kernel_info()["blas_threads"]``):

* ``kinematic``: :class:`cortexsim.rate.RateNetwork`, the hand read out linearly from PT5B;
* ``arm``: :class:`cortexsim.closed_loop.ArmRateNetwork`, PT5B driving the arm through six muscles,
  with delayed proprioceptive and visual feedback (5 Euler sub-steps of 2 ms per step), the
  fused numba kernels of :mod:`cortexsim._plant` forward and backward.

Also timed, to show what fusing buys: the fused plant alone for one iteration (176 forward and
176 backward steps of 64 trials) and the numpy plant of :func:`cortexsim.effector.arm_step`
(forward only, the same steps; its backward would cost more again).

Timing: rounds in which every contender runs once (order rotating, a garbage collection before
each call), medians of ``--repeats`` (default 7) rounds after one warm-up round.  The machine's
load average is printed before and after; quote the ratio, not the absolute times.

Run from the repository root::

    python benchmarks/bptt_arm.py                  # about 1-2 minutes on 2 quiet cores
    python benchmarks/bptt_arm.py --json arm.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cortexsim import assembly, effector
from cortexsim.config import load_config
from cortexsim.loss import Penalties


def _networks() -> dict:
    """The kinematic and the arm network of the default study, each with a batch and its noise."""
    base = load_config("experiments/center_out.toml")
    out = {}
    for name, config in (("kinematic", base), ("arm", base.with_section("effector", kind="arm26"))):
        net = assembly.initial_rate_network(config, assembly.build_circuit(config))
        rng = np.random.default_rng(0)
        batch = assembly.make_task(config).sample(64, rng)
        out[name] = (net, batch, net.noise(batch.n_trials, batch.n_steps, rng))
    return out


def _plant_calls(n_steps: int = 176, n_trials: int = 64) -> dict:
    """One iteration's worth of plant steps: fused forward + backward, and numpy forward."""
    rng = np.random.default_rng(1)
    kernel = effector.ArmKernel(0.01)
    s = kernel.initial(n_trials)
    s[:, 4:] = 0.05
    u = rng.uniform(0.0, 0.3, (n_trials, 6))
    load = np.zeros((n_trials, 2))
    out, tape = np.empty_like(s), kernel.tape(n_trials)
    g_s, g_u = np.empty_like(s), np.empty((n_trials, 6))
    state = effector.initial_state(n_trials, activation0=np.full(6, 0.05))

    def fused() -> None:
        for _ in range(n_steps):
            kernel.step(s, u, load, out, tape)
        for _ in range(n_steps):
            kernel.backward(tape, load, out, g_s, g_u)

    def numpy_forward() -> None:
        st = state
        for _ in range(n_steps):
            st = effector.arm_step(st, u, 0.01)

    return {"plant_fused_fwd_bwd": fused, "plant_numpy_fwd": numpy_forward}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    load_before = os.getloadavg()
    nets = _networks()
    calls = {}
    for name, (net, batch, noise) in nets.items():
        calls[name] = lambda net=net, batch=batch, noise=noise: net.loss_and_grad(batch, Penalties(), noise)
    calls.update(_plant_calls())
    blas = nets["kinematic"][0].kernel_info()["blas_threads"]
    samples: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    with threadpool_limits(limits=blas, user_api="blas"):
        for f in calls.values():  # warm-up: compilation, buffers
            f()
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                gc.collect()
                t0 = time.perf_counter()
                calls[name]()
                samples[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        **{f"{k}_ms": 1e3 * v for k, v in med.items()},
        "ratio_arm_over_kinematic": med["arm"] / med["kinematic"],
        "fusing_speedup_forward": med["plant_numpy_fwd"] / med["plant_fused_fwd_bwd"],
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "samples_ms": {k: [round(1e3 * x, 2) for x in v] for k, v in samples.items()},
        "repeats": args.repeats,
    }
    for k, v in med.items():
        print(f"{k:22s} median {1e3 * v:8.1f} ms   ({', '.join(f'{1e3 * x:.0f}' for x in samples[k])})")
    print(f"arm / kinematic iteration: {result['ratio_arm_over_kinematic']:.3f} (bar: <= 1.3)")
    print(f"numpy plant forward / fused plant forward+backward: {result['fusing_speedup_forward']:.1f}x")
    print(f"load average before {load_before[0]:.2f}, after {result['load_after'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
