#!/usr/bin/env python
"""Benchmark: throughput of the spiking twin (:func:`cortexsim.spiking.network.simulate`).

The twin of an *untrained* rate network (``init_params`` on the default M1 circuit;
training does not change the work per step) with K = 5 LIF neurons per rate unit, at
1k and 10k neurons by default (200 and 2,000 rate units; ``--neurons 1000 10000 50000``
adds the optional 50k twin, 10,000 units).  Each twin runs ``--duration`` s (default 1 s)
of biological time with a constant task drive ``B u + b`` (``u`` = the time-mean input of
the first evaluation condition), on the ``cpp_standalone`` target with one thread.

Measured per size, in the same run:

* **cortexsim**: ``simulate(params, drive, task_dt, target="cpp_standalone")``;
* **(a) hand-written Brian2**: the identical network (same neurons, equations, noise,
  pools, synapses, weights, initial state and seed) in the plainest Brian2
  ``cpp_standalone`` code: one pool ``NeuronGroup`` with a constant drive, one LIF
  ``NeuronGroup`` with scalar parameters reading its pool through a linked variable,
  one ``Synapses`` with ``on_pre``;
* **(b) NEST**, only detected: when ``import nest`` works the script says so, but this
  version has no NEST implementation of the network (never a dependency).

**What is timed.** Brian2 compiles a standalone project once per network (tens of
seconds) and then runs the binary.  The script wraps ``CPPStandaloneDevice.run`` so that,
after the compile, the *same binary* is executed ``--repeats`` times (same seed, same
results); for each execution it records Brian2's own timers: ``run`` = the simulation
loop (``device._last_run_time``, written by the binary) and ``binary`` = the whole
process (loading arrays, the loop, writing results).  Throughput uses the median ``run``
time; the compile and Python-side build are reported separately (``setup``).  Timings are
medians of the repeats; cortexsim and the reference alternate which goes first per size.

Synaptic events = sum over spikes of the spiking neuron's outgoing synapses (neuron ->
pool synapses, K per rate synapse of its pool).

Run from the repository root::

    python benchmarks/spiking.py                           # 1k and 10k neurons; about 1 minute
    python benchmarks/spiking.py --neurons 1000 --repeats 3 --json spiking.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

K = 5
TARGET_RATIO = 0.8
OFFSET_MV = 0.4
"""Fixed input offset (mV): about what ``calibrate_offset`` finds at dt = 0.1 ms; throughput does not depend on it."""


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


# -- timing hook ------------------------------------------------------------------------------------
@contextlib.contextmanager
def repeated_binary(repeats: int, record: list[dict]):
    """Run each built standalone binary ``repeats`` times; append Brian2's timers of every execution."""
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    original = CPPStandaloneDevice.run

    def run(self, *args, **kwargs):
        for _ in range(repeats):
            t0 = time.perf_counter()
            original(self, *args, **kwargs)
            record.append({"run": float(self._last_run_time), "binary": float(self.timers.get("run_binary", np.nan)),
                           "outer": time.perf_counter() - t0})

    CPPStandaloneDevice.run = run
    try:
        yield record
    finally:
        CPPStandaloneDevice.run = original


# -- the network ------------------------------------------------------------------------------------
def make_twin(n_units: int, seed: int):
    """SpikingParams of an untrained rate network on the default circuit, and a constant drive (mV)."""
    from cortexsim.circuit import build_connectome
    from cortexsim.config import load_config
    from cortexsim.pipeline import make_rate_network
    from cortexsim.spiking.mapping import map_rate_to_spiking

    config = load_config(None)
    rng = np.random.default_rng(seed)
    connectome = build_connectome(config.circuit_spec(), n_units, rng)
    net = make_rate_network(config, connectome)
    net.init_params(rng)
    params = map_rate_to_spiking(net, config.lif, k=K, dt=config.spiking.dt, offset_mv=OFFSET_MV)
    batch = config.task.evaluation_set()
    u = batch.inputs[0].mean(axis=0)
    drive = params.w_in @ u + params.b
    del net
    return params, drive, config.task.dt


def run_cortexsim(params, drive, task_dt: float, duration: float, seed: int, repeats: int) -> dict:
    from cortexsim.spiking.network import simulate

    n_steps = int(round(duration / task_dt))
    drive_mv = np.broadcast_to(drive, (1, n_steps, drive.size)).copy()
    record: list[dict] = []
    with repeated_binary(repeats, record):
        spikes = simulate(params, drive_mv, task_dt, seed=seed, target="cpp_standalone")
    counts = np.bincount(spikes.ids, minlength=spikes.n_neurons)
    return {"record": record, "total_wall": spikes.wall_seconds, "counts": counts}


def run_handwritten(params, drive, duration: float, seed: int, repeats: int) -> dict:
    """The identical network in plain Brian2 ``cpp_standalone`` code."""
    import brian2 as b2
    from brian2 import NeuronGroup, SpikeMonitor, Synapses, mV, second

    lif = params.lif
    if any(params.lif_of_unit(u) != lif for u in range(params.n_units)):
        raise SystemExit("the hand-written reference assumes one LIF neuron for every pool (CELL_CLASS_LIF overrides)")
    n_units, k, dt = params.n_units, params.k, params.dt
    n = n_units * k
    record: list[dict] = []
    t0 = time.perf_counter()
    b2.start_scope()
    with tempfile.TemporaryDirectory(prefix="handwritten_b2_") as build:
        b2.set_device("cpp_standalone", directory=build, build_on_run=True)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
        try:
            b2.seed(seed)
            b2.defaultclock.dt = dt * second
            pools = NeuronGroup(n_units, "dI/dt = (-I + I_ext) / tau : volt\nI_ext : volt (constant)\n"
                                         "tau : second (constant)", method="exponential_euler")
            pools.tau = params.tau * second
            pools.I_ext = drive * mV
            pools.I = params.x0 * mV
            ns = {"tau_m": lif.tau_m * second, "theta": lif.threshold * mV, "v_reset": lif.reset * mV,
                  "t_ref": lif.refractory * second, "sigma": lif.sigma * mV, "offset": params.offset_mv * mV}
            neurons = NeuronGroup(
                n, "dv/dt = (-v + I_pool + offset) / tau_m + sigma * sqrt(1 / tau_m) * xi : volt (unless refractory)\n"
                   "I_pool : volt (linked)",
                threshold="v > theta", reset="v = v_reset", refractory="t_ref", method="euler", namespace=ns)
            neurons.I_pool = b2.linked_var(pools, "I", index=np.repeat(np.arange(n_units), k))
            neurons.v = np.random.default_rng([seed, 1]).uniform(lif.reset, lif.threshold, n) * mV
            syn = Synapses(neurons, pools, "w : volt (constant)", on_pre="I_post += w")
            pre_neuron = (params.syn_pre[:, None] * k + np.arange(k)[None, :]).ravel()
            syn.connect(i=pre_neuron, j=np.repeat(params.syn_post, k))
            syn.w = np.repeat(params.syn_increment_mv, k) * mV
            monitor = SpikeMonitor(neurons)
            with repeated_binary(repeats, record):
                b2.run(duration * second, namespace=ns)
            counts = np.asarray(monitor.count[:], np.int64)
        finally:
            b2.device.reinit()
            b2.device.activate()
            b2.set_device("runtime")
    return {"record": record, "total_wall": time.perf_counter() - t0, "counts": counts}


# -- measurements -----------------------------------------------------------------------------------
def summarise(result: dict, out_degree: np.ndarray, duration: float) -> dict:
    runs = [r["run"] for r in result["record"]]
    binaries = [r["binary"] for r in result["record"]]
    counts = result["counts"]
    events = float(counts @ out_degree)
    med = statistics.median(runs)
    return {
        "run_s": runs, "binary_s": binaries, "run_median_s": med, "run_min_s": min(runs), "run_max_s": max(runs),
        "binary_median_s": statistics.median(binaries),
        "setup_s": result["total_wall"] - sum(r["outer"] for r in result["record"]),
        "total_wall_s": result["total_wall"],
        "wall_per_bio_s": med / duration, "spikes": int(counts.sum()), "rate_hz": float(counts.mean() / duration),
        "synaptic_events": events, "events_per_s": events / med,
    }


def machine_info() -> dict:
    import brian2

    info = {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "brian2": brian2.__version__, "threads": 1,
            "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    try:
        import nest  # noqa: F401

        info["nest"] = f"importable ({getattr(nest, '__version__', '?')}), but no NEST reference is implemented here"
    except Exception as exc:  # noqa: BLE001 -- any failure means: no NEST
        info["nest"] = f"not importable ({type(exc).__name__}); reference (b) skipped"
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, nargs="+", default=[1000, 10000],
                    help="twin sizes in LIF neurons (K = 5 per rate unit); 50000 is optional (GBs of RAM, ~2 min)")
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds per simulation (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="executions of each compiled binary (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE", help="write every number to FILE")
    args = ap.parse_args(argv)

    info = machine_info()
    print(f"spiking twin throughput: cpp_standalone, one thread, {args.duration:g} s biological time, "
          f"K = {K}, median of {args.repeats} executions of each compiled binary")
    print(f"machine: {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, Brian2 {info['brian2']}, "
          f"load average {info['loadavg']}")
    print(f"NEST: {info['nest']}")
    rows = []
    for idx, n_neurons in enumerate(args.neurons):
        if n_neurons % K:
            raise SystemExit(f"--neurons {n_neurons}: not a multiple of K = {K}")
        progress(f"{n_neurons:,} neurons: building the rate network and its twin")
        params, drive, task_dt = make_twin(n_neurons // K, args.seed)
        out_degree = np.repeat(np.bincount(params.syn_pre, minlength=params.n_units), params.k)
        order = ("cortexsim", "handwritten") if idx % 2 == 0 else ("handwritten", "cortexsim")
        res = {}
        for name in order:
            progress(f"{n_neurons:,} neurons: {name} (compile once, run {args.repeats}x)")
            if name == "cortexsim":
                raw = run_cortexsim(params, drive, task_dt, args.duration, args.seed, args.repeats)
            else:
                raw = run_handwritten(params, drive, args.duration, args.seed, args.repeats)
            res[name] = summarise(raw, out_degree, args.duration)
        c, h = res["cortexsim"], res["handwritten"]
        ratio = c["events_per_s"] / h["events_per_s"]
        ratio_min = c["synaptic_events"] / c["run_min_s"] / (h["synaptic_events"] / h["run_min_s"])
        rows.append({"neurons": n_neurons, "units": params.n_units, "synapses": int(params.syn_pre.size * params.k),
                     "cortexsim": c, "handwritten": h, "ratio": ratio, "ratio_min": ratio_min,
                     "spike_count_equal": c["spikes"] == h["spikes"]})
        del params

    print()
    head = (f"{'neurons':>8} {'synapses':>11} {'rate Hz':>8} | {'cortexsim s/bio-s':>18} {'Mev/s':>7} {'setup s':>8} | "
            f"{'hand-written s/bio-s':>21} {'Mev/s':>7} {'setup s':>8} | {'ratio':>6} {'(min)':>6}  target")
    print(head)
    print("-" * len(head))
    for r in rows:
        c, h = r["cortexsim"], r["handwritten"]
        verdict = "met" if r["ratio"] >= TARGET_RATIO else "MISS"
        print(f"{r['neurons']:>8,} {r['synapses']:>11,} {c['rate_hz']:>8.2f} | "
              f"{c['wall_per_bio_s']:>8.3f} "
              f"[{c['run_min_s'] / args.duration:.3f}-{c['run_max_s'] / args.duration:.3f}]"
              f" {c['events_per_s'] / 1e6:>7.2f} {c['setup_s']:>8.1f} | "
              f"{h['wall_per_bio_s']:>11.3f} "
              f"[{h['run_min_s'] / args.duration:.3f}-{h['run_max_s'] / args.duration:.3f}]"
              f" {h['events_per_s'] / 1e6:>7.2f} {h['setup_s']:>8.1f} | {r['ratio']:>6.2f} {r['ratio_min']:>6.2f}  "
              f"{verdict} (>= {TARGET_RATIO})")
    print()
    print("s/bio-s: median [min-max] wall time of the simulation loop per biological second (compile excluded);")
    print("Mev/s: million synaptic events per second of that loop; setup: compile + build + Python, once;")
    print("ratio: cortexsim / hand-written throughput (median; (min) from the fastest executions).")
    for r in rows:
        c, h = r["cortexsim"], r["handwritten"]
        print(f"  {r['neurons']:,} neurons: whole binary (load + loop + write) {c['binary_median_s']:.2f} s vs "
              f"{h['binary_median_s']:.2f} s; spikes {c['spikes']:,} vs {h['spikes']:,}"
              f"{'' if r['spike_count_equal'] else ' (not bit-identical: see benchmarks/README.md)'}")
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average at the end: {info['loadavg_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": vars(args), "k": K, "offset_mv": OFFSET_MV,
                       "target_ratio": TARGET_RATIO, "rows": rows}, f, indent=2, default=float)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
