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
* **(b) NEST** (when ``import nest`` works; never a package dependency, ``--no-nest`` skips it):
  the same network as faithfully as NEST allows -- ``iaf_psc_exp`` neurons whose synaptic time
  constants are their pool's tau, so each neuron's synaptic current *is* the pool current
  (hence K^2 neuron -> neuron synapses per rate synapse), a DC ``I_e`` for drive + offset, an
  independent ``noise_generator`` current (piecewise constant over dt = 0.1 ms, SD matched to
  Brian2's membrane SD) and one spike at t = dt for the initial pool state ``x0``.  Every
  deviation is listed in benchmarks/README.md; a faithfulness check (unconnected neurons,
  Brian2 vs NEST rates at two inputs, and the free membrane SD) is printed first.
  Timed: ``nest.Simulate`` (network rebuilt, same seed, before each of ``--repeats``
  executions; construction reported separately as ``build``).

**What is timed.** Brian2 compiles a standalone project once per network (tens of
seconds) and then runs the binary.  The script wraps ``CPPStandaloneDevice.run`` so that,
after the compile, the *same binary* is executed ``--repeats`` times (same seed, same
results); for each execution it records Brian2's own timers: ``run`` = the simulation
loop (``device._last_run_time``, written by the binary) and ``binary`` = the whole
process (loading arrays, the loop, writing results).  Throughput uses the median ``run``
time; the compile and Python-side build are reported separately (``setup``).  Timings are
medians of the repeats; cortexsim and the reference alternate which goes first per size.

Synaptic events = sum over spikes of the spiking neuron's outgoing synapses (neuron ->
pool synapses, K per rate synapse of its pool); the same count is used for NEST (whose
neuron -> neuron fan-out delivers K times as many, reported as ``delivered``).

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
            record.append(
                {
                    "run": float(self._last_run_time),
                    "binary": float(self.timers.get("run_binary", np.nan)),
                    "outer": time.perf_counter() - t0,
                }
            )

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
            pools = NeuronGroup(
                n_units,
                "dI/dt = (-I + I_ext) / tau : volt\nI_ext : volt (constant)\ntau : second (constant)",
                method="exponential_euler",
            )
            pools.tau = params.tau * second
            pools.I_ext = drive * mV
            pools.I = params.x0 * mV
            ns = {
                "tau_m": lif.tau_m * second,
                "theta": lif.threshold * mV,
                "v_reset": lif.reset * mV,
                "t_ref": lif.refractory * second,
                "sigma": lif.sigma * mV,
                "offset": params.offset_mv * mV,
            }
            neurons = NeuronGroup(
                n,
                "dv/dt = (-v + I_pool + offset) / tau_m + sigma * sqrt(1 / tau_m) * xi : volt (unless refractory)\n"
                "I_pool : volt (linked)",
                threshold="v > theta",
                reset="v = v_reset",
                refractory="t_ref",
                method="euler",
                namespace=ns,
            )
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


# -- reference (b): NEST ----------------------------------------------------------------------------
NEST_C_M = 250.0
"""Membrane capacitance (pF) of the NEST neurons; any value works: currents are scaled by C_m / tau_m (pA per mV)."""


def nest_import():
    """``nest`` (quiet, one thread) or None; the reason it is unavailable goes to :data:`NEST_STATUS`."""
    global NEST_STATUS
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import nest
        try:
            nest.verbosity = nest.VerbosityLevel.ERROR
        except AttributeError:  # older NEST
            nest.set_verbosity("M_ERROR")
        NEST_STATUS = f"NEST {nest.__version__}: reference (b) measured"
        return nest
    except Exception as exc:  # noqa: BLE001 -- any failure means: no NEST
        NEST_STATUS = f"not importable ({type(exc).__name__}: {exc}); reference (b) skipped"
        return None


NEST_STATUS = "not checked"


def nest_noise_std_mv(lif, dt: float) -> float:
    """SD (mV-equivalent, i.e. R * I) of NEST's piecewise-constant noise current that gives Brian2's membrane SD.

    Brian2 (Euler-Maruyama, step ``h``, ``a = h / tau_m``): ``v' = (1 - a) v + sigma sqrt(a) N``, stationary
    variance ``sigma^2 / (2 - a)``.  NEST's ``iaf_psc_exp`` integrates a current held constant over ``h``
    exactly: ``v' = e^-a v + (1 - e^-a) R I``, with ``I`` redrawn every ``h``: variance
    ``(R s)^2 tanh(a / 2)``.  Equal when ``R s = sigma / sqrt((2 - a) tanh(a / 2))`` (~ 10.02 sigma at 0.1 ms).
    """
    a = dt / lif.tau_m
    return lif.sigma / np.sqrt((2.0 - a) * np.tanh(a / 2.0))


def nest_neurons(nest, n: int, lif, dt: float, mu_mv: np.ndarray, tau_syn_s: np.ndarray, v0: np.ndarray):
    """``n`` ``iaf_psc_exp`` neurons (mV above rest) with constant input ``mu_mv`` and independent diffusive noise."""
    tau_m_ms = lif.tau_m * 1e3
    pa_per_mv = NEST_C_M / tau_m_ms
    neurons = nest.Create(
        "iaf_psc_exp",
        n,
        params={
            "C_m": NEST_C_M,
            "tau_m": tau_m_ms,
            "E_L": 0.0,
            "V_th": lif.threshold,
            "V_reset": lif.reset,
            "t_ref": lif.refractory * 1e3,
        },
    )
    tau_ms = np.broadcast_to(np.asarray(tau_syn_s, float) * 1e3, (n,))
    neurons.set(
        tau_syn_ex=tau_ms.tolist(),
        tau_syn_in=tau_ms.tolist(),
        I_e=(np.broadcast_to(mu_mv, (n,)) * pa_per_mv).tolist(),
        V_m=np.asarray(v0, float).tolist(),
    )
    # one generator, independent noise for each target; piecewise constant over dt = the resolution
    noise = nest.Create(
        "noise_generator", params={"mean": 0.0, "std": nest_noise_std_mv(lif, dt) * pa_per_mv, "dt": dt * 1e3}
    )
    nest.Connect(noise, neurons, syn_spec={"delay": dt * 1e3})
    return neurons, pa_per_mv


def nest_reset(nest, dt: float, seed: int) -> None:
    nest.ResetKernel()
    nest.SetKernelStatus(
        {"local_num_threads": 1, "resolution": dt * 1e3, "rng_seed": int(seed) + 1, "print_time": False}
    )


def run_nest(params, drive, duration: float, seed: int, repeats: int) -> dict:
    """The identical network in NEST (see benchmarks/README.md for every deviation).

    Each pool ``i`` is ``K`` ``iaf_psc_exp`` neurons whose synaptic time constants (ex and in) are the pool's
    ``tau_i``: the pool current ``I_i`` becomes each neuron's own synaptic current, so every neuron of pool
    ``j`` connects to every neuron of pool ``i`` with weight ``W_ij / (K tau_i)`` mV (x C_m / tau_m pA):
    K^2 synapses per rate synapse.  Network construction is rebuilt (same seed) before every ``Simulate``.
    """
    nest = nest_import()
    lif, n_units, k, dt = params.lif, params.n_units, params.k, params.dt
    n = n_units * k
    pool = np.repeat(np.arange(n_units), k)
    s = params.syn_pre.size
    src = np.repeat(params.syn_pre * k, k * k) + np.tile(np.repeat(np.arange(k), k), s)
    tgt = np.repeat(params.syn_post * k, k * k) + np.tile(np.tile(np.arange(k), k), s)
    v0 = np.random.default_rng([seed, 1]).uniform(lif.reset, lif.threshold, n)
    record: list[dict] = []
    counts = None
    t_all = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        nest_reset(nest, dt, seed)
        neurons, pa_per_mv = nest_neurons(nest, n, lif, dt, drive[pool] + params.offset_mv, params.tau[pool], v0)
        first = neurons[0].global_id
        nest.Connect(
            src + first,
            tgt + first,
            "one_to_one",
            syn_spec={
                "weight": np.repeat(params.syn_increment_mv * pa_per_mv, k * k),
                "delay": np.full(src.size, dt * 1e3),
            },
        )
        # initial pool current x0: NEST cannot set I_syn, so one spike sent at t = dt puts x0 - drive into every
        # neuron's synaptic current from t = 2 dt on, at the value the decay from x0 at t = 0 would have reached
        kick = nest.Create("spike_generator", params={"spike_times": [dt * 1e3]})
        nest.Connect(
            np.full(n, kick[0].global_id),
            np.arange(n) + first,
            "one_to_one",
            syn_spec={
                "weight": (params.x0 - drive)[pool] * pa_per_mv * np.exp(-2 * dt / params.tau[pool]),
                "delay": np.full(n, dt * 1e3),
            },
        )
        rec = nest.Create("spike_recorder")
        nest.Connect(neurons, rec)
        build = time.perf_counter() - t0
        t1 = time.perf_counter()
        nest.Simulate(duration * 1e3)
        sim = time.perf_counter() - t1
        ks = nest.GetKernelStatus()
        record.append(
            {
                "run": sim,
                "binary": float(ks.get("time_simulate", np.nan)),
                "outer": sim,
                "build": build,
                "synapses": int(ks.get("num_connections", -1)),
            }
        )
        counts = np.bincount(np.asarray(rec.get("events", "senders"), np.int64) - first, minlength=n)
    nest.ResetKernel()
    return {"record": record, "total_wall": time.perf_counter() - t_all, "counts": counts}


def nest_faithfulness_check(
    lif,
    offset_mv: float,
    dt: float,
    seed: int,
    mus=(14.0, 20.0),
    per_mu: int = 200,
    duration: float = 2.0,
    settle: float = 0.1,
) -> list[dict]:
    """Firing rate of unconnected neurons (constant input ``mu + offset``) in Brian2 (cortexsim's
    ``lif_rates``, the twin's neuron) and in NEST, plus NEST's free-membrane SD against Brian2's theory."""
    from cortexsim.spiking.network import lif_rates

    nest = nest_import()
    mus = np.asarray(mus, float)
    b2_rates = lif_rates(
        mus,
        lif,
        dt=dt,
        offset_mv=offset_mv,
        neurons_per_input=per_mu,
        duration=duration,
        settle=settle,
        seed=seed,
        target="numpy",
    )
    nest_reset(nest, dt, seed)
    n = mus.size * per_mu
    mu = np.repeat(mus, per_mu) + offset_mv
    v0 = np.random.default_rng([seed, 2]).uniform(lif.reset, lif.threshold, n)
    neurons, _ = nest_neurons(nest, n, lif, dt, mu, np.full(n, 0.02), v0)
    rec = nest.Create("spike_recorder", params={"start": settle * 1e3})
    nest.Connect(neurons, rec)
    # free membrane (threshold out of reach): SD of v
    free, _ = nest_neurons(nest, 100, lif, dt, np.full(100, 10.0), np.full(100, 0.02), np.full(100, 10.0))
    free.set(V_th=1e9)
    mm = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": 1.0, "start": 100.0})
    nest.Connect(mm, free)
    nest.Simulate((settle + duration) * 1e3)
    senders = np.asarray(rec.get("events", "senders"), np.int64) - neurons[0].global_id
    per = np.bincount(senders, minlength=n).reshape(mus.size, per_mu).mean(axis=1) / duration
    sd_nest = float(np.std(np.asarray(mm.get("events", "V_m"))))
    nest.ResetKernel()
    a = dt / lif.tau_m
    sd_b2 = lif.sigma / np.sqrt(2.0 - a)
    return [{"mu_mv": float(m), "brian2_hz": float(b), "nest_hz": float(r)} for m, b, r in zip(mus, b2_rates, per)] + [
        {
            "free_membrane_sd_mv": {
                "brian2_theory": float(sd_b2),
                "nest_measured": sd_nest,
                "brunel_continuous": float(lif.sigma / np.sqrt(2)),
            }
        }
    ]


# -- measurements -----------------------------------------------------------------------------------
def summarise(result: dict, out_degree: np.ndarray, duration: float) -> dict:
    runs = [r["run"] for r in result["record"]]
    binaries = [r["binary"] for r in result["record"]]
    counts = result["counts"]
    events = float(counts @ out_degree)
    med = statistics.median(runs)
    return {
        "run_s": runs,
        "binary_s": binaries,
        "run_median_s": med,
        "run_min_s": min(runs),
        "run_max_s": max(runs),
        "binary_median_s": statistics.median(binaries),
        "setup_s": result["total_wall"] - sum(r["outer"] for r in result["record"]),
        "total_wall_s": result["total_wall"],
        "wall_per_bio_s": med / duration,
        "spikes": int(counts.sum()),
        "rate_hz": float(counts.mean() / duration),
        "synaptic_events": events,
        "events_per_s": events / med,
    } | (
        {
            "build_s": [r["build"] for r in result["record"]],
            "setup_s": statistics.median(r["build"] for r in result["record"]),
            "kernel_time_simulate_s": [r["binary"] for r in result["record"]],
            "nest_synapses": result["record"][0]["synapses"],
            "delivered_events": events * K,
            "delivered_events_per_s": events * K / med,
        }
        if "build" in result["record"][0]
        else {}
    )


def machine_info() -> dict:
    import brian2

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "brian2": brian2.__version__,
        "threads": 1,
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    nest_import()
    info["nest"] = NEST_STATUS
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--neurons",
        type=int,
        nargs="+",
        default=[1000, 10000],
        help="twin sizes in LIF neurons (K = 5 per rate unit); 50000 is optional (GBs of RAM, ~2 min)",
    )
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds per simulation (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="executions of each compiled binary (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE", help="write every number to FILE")
    ap.add_argument("--no-nest", action="store_true", help="skip reference (b) even when NEST imports")
    args = ap.parse_args(argv)

    info = machine_info()
    print(
        f"spiking twin throughput: cpp_standalone, one thread, {args.duration:g} s biological time, "
        f"K = {K}, median of {args.repeats} executions of each compiled binary"
    )
    print(
        f"machine: {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, Brian2 {info['brian2']}, "
        f"load average {info['loadavg']}"
    )
    use_nest = not args.no_nest and nest_import() is not None
    if args.no_nest:
        info["nest"] += " (skipped: --no-nest)"
    print(f"NEST: {info['nest']}")
    check = None
    if use_nest:
        from cortexsim.config import load_config

        config = load_config(None)
        progress("NEST faithfulness check: unconnected neurons in Brian2 and NEST")
        check = nest_faithfulness_check(config.lif, OFFSET_MV, config.spiking.dt, args.seed)
        info["nest_check"] = check
        print("NEST faithfulness check (unconnected neurons, 200 per input, 2 s; input mu + offset):")
        for c in check[:-1]:
            print(
                f"  mu = {c['mu_mv']:5.1f} mV: Brian2 {c['brian2_hz']:6.2f} Hz, NEST {c['nest_hz']:6.2f} Hz "
                f"({100 * (c['nest_hz'] / c['brian2_hz'] - 1):+.1f} %)"
            )
        sd = check[-1]["free_membrane_sd_mv"]
        print(
            f"  free membrane SD: NEST {sd['nest_measured']:.2f} mV, Brian2 (Euler-Maruyama theory) "
            f"{sd['brian2_theory']:.2f} mV, Brunel continuous {sd['brunel_continuous']:.2f} mV"
        )
    rows = []
    for idx, n_neurons in enumerate(args.neurons):
        if n_neurons % K:
            raise SystemExit(f"--neurons {n_neurons}: not a multiple of K = {K}")
        progress(f"{n_neurons:,} neurons: building the rate network and its twin")
        params, drive, task_dt = make_twin(n_neurons // K, args.seed)
        out_degree = np.repeat(np.bincount(params.syn_pre, minlength=params.n_units), params.k)
        names = ["cortexsim", "handwritten"] + (["nest"] if use_nest else [])
        order = names[idx % len(names) :] + names[: idx % len(names)]
        res = {}
        for name in order:
            if name == "nest":
                progress(f"{n_neurons:,} neurons: NEST (build + Simulate, {args.repeats}x)")
                raw = run_nest(params, drive, args.duration, args.seed, args.repeats)
            else:
                progress(f"{n_neurons:,} neurons: {name} (compile once, run {args.repeats}x)")
            if name == "cortexsim":
                raw = run_cortexsim(params, drive, task_dt, args.duration, args.seed, args.repeats)
            elif name == "handwritten":
                raw = run_handwritten(params, drive, args.duration, args.seed, args.repeats)
            res[name] = summarise(raw, out_degree, args.duration)
        c, h, nn = res["cortexsim"], res["handwritten"], res.get("nest")
        ratio = c["events_per_s"] / h["events_per_s"]
        ratio_min = c["synaptic_events"] / c["run_min_s"] / (h["synaptic_events"] / h["run_min_s"])
        rows.append(
            {
                "neurons": n_neurons,
                "units": params.n_units,
                "synapses": int(params.syn_pre.size * params.k),
                "cortexsim": c,
                "handwritten": h,
                "ratio": ratio,
                "ratio_min": ratio_min,
                "spike_count_equal": c["spikes"] == h["spikes"],
                "nest": nn,
                "ratio_nest": c["events_per_s"] / nn["events_per_s"] if nn else None,
                "ratio_nest_wall": nn["wall_per_bio_s"] / c["wall_per_bio_s"] if nn else None,
            }
        )
        del params

    print()
    head = (
        f"{'neurons':>8} {'synapses':>11} {'rate Hz':>8} | {'cortexsim s/bio-s':>18} {'Mev/s':>7} {'setup s':>8} | "
        f"{'hand-written s/bio-s':>21} {'Mev/s':>7} {'setup s':>8} | {'ratio':>6} {'(min)':>6}  target"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        c, h = r["cortexsim"], r["handwritten"]
        verdict = "met" if r["ratio"] >= TARGET_RATIO else "MISS"
        print(
            f"{r['neurons']:>8,} {r['synapses']:>11,} {c['rate_hz']:>8.2f} | "
            f"{c['wall_per_bio_s']:>8.3f} "
            f"[{c['run_min_s'] / args.duration:.3f}-{c['run_max_s'] / args.duration:.3f}]"
            f" {c['events_per_s'] / 1e6:>7.2f} {c['setup_s']:>8.1f} | "
            f"{h['wall_per_bio_s']:>11.3f} "
            f"[{h['run_min_s'] / args.duration:.3f}-{h['run_max_s'] / args.duration:.3f}]"
            f" {h['events_per_s'] / 1e6:>7.2f} {h['setup_s']:>8.1f} | {r['ratio']:>6.2f} {r['ratio_min']:>6.2f}  "
            f"{verdict} (>= {TARGET_RATIO})"
        )
    print()
    print("s/bio-s: median [min-max] wall time of the simulation loop per biological second (compile excluded);")
    print("Mev/s: million synaptic events per second of that loop; setup: compile + build + Python, once;")
    print("ratio: cortexsim / hand-written throughput (median; (min) from the fastest executions).")
    if use_nest:
        print()
        head = (
            f"{'neurons':>8} {'NEST synapses':>14} {'rate Hz':>8} | {'NEST s/bio-s':>21} {'Mev/s':>7} "
            f"{'delivered Mev/s':>15} {'build s':>8} | {'cortexsim/NEST':>14}"
        )
        print(head)
        print("-" * len(head))
        for r in rows:
            nn = r["nest"]
            print(
                f"{r['neurons']:>8,} {nn['nest_synapses']:>14,} {nn['rate_hz']:>8.2f} | "
                f"{nn['wall_per_bio_s']:>8.3f} "
                f"[{nn['run_min_s'] / args.duration:.3f}-{nn['run_max_s'] / args.duration:.3f}]"
                f" {nn['events_per_s'] / 1e6:>7.2f} {nn['delivered_events_per_s'] / 1e6:>15.2f}"
                f" {nn['setup_s']:>8.1f} | {r['ratio_nest']:>14.2f}"
            )
        print()
        print("NEST: iaf_psc_exp, K^2 neuron -> neuron synapses per rate synapse (NEST synapses: the kernel's")
        print("num_connections, + 3 per neuron for noise, initial state and recorder); s/bio-s: wall time of")
        print("nest.Simulate; Mev/s counted as for cortexsim")
        print("(spikes x outgoing pool synapses); delivered: the K-times larger neuron -> neuron events NEST")
        print("delivers; build: median network construction (rebuilt before each Simulate); cortexsim/NEST:")
        print("throughput ratio in the cortexsim event count (> 1: cortexsim faster).")
    for r in rows:
        c, h = r["cortexsim"], r["handwritten"]
        print(
            f"  {r['neurons']:,} neurons: whole binary (load + loop + write) {c['binary_median_s']:.2f} s vs "
            f"{h['binary_median_s']:.2f} s; spikes {c['spikes']:,} vs {h['spikes']:,}"
            f"{'' if r['spike_count_equal'] else ' (not bit-identical: see benchmarks/README.md)'}"
        )
        if r["nest"]:
            print(
                f"  {r['neurons']:,} neurons: NEST spikes {r['nest']['spikes']:,} (own random numbers: not "
                f"spike-identical); kernel time_simulate {r['nest']['kernel_time_simulate_s']}"
            )
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average at the end: {info['loadavg_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "args": vars(args),
                    "k": K,
                    "offset_mv": OFFSET_MV,
                    "target_ratio": TARGET_RATIO,
                    "rows": rows,
                },
                f,
                indent=2,
                default=float,
            )
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
