"""Build and run the spiking twin in Brian2; spikes come back as plain numpy arrays.

Everything Brian2-specific (units, devices, code generation) stays in this module;
callers pass and receive SI floats / mV as documented.  One simulation per call:
all trials are concatenated into one run (the task drive is one ``TimedArray``
and every trial starts by putting the pool currents at the rate model's ``x0``),
so ``cpp_standalone`` compiles once and the numpy/cython targets build once.
Simulations use one thread (two OpenMP threads once gave wrong dynamics in this
setup; parallelise over processes instead).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..interrupts import InterruptGuard
from ..model import Stimulus
from ..streams import generator, stream
from ..transfer import LIFParams
from . import equations as eq

TARGETS = ("numpy", "cython", "cpp_standalone")
"""Code generation targets accepted by :func:`simulate`."""


@dataclass(frozen=True, eq=False)
class Spikes:
    """Spikes of one simulation.

    Attributes
    ----------
    times : ndarray of float64, shape (spikes,)
        Spike times (s), sorted.
    ids : ndarray of int64, shape (spikes,)
        Neuron index; neuron ``n`` belongs to pool (rate unit) ``n // k``.
    n_neurons : int
    duration : float
        Simulated time (s).
    wall_seconds : float
        Wall time of the build and run (s), compilation included.
    """

    times: np.ndarray
    ids: np.ndarray
    n_neurons: int
    duration: float
    wall_seconds: float

    def __repr__(self) -> str:
        return (
            f"<Spikes: {self.times.size:,} spikes of {self.n_neurons:,} neurons in {self.duration:g} s, "
            f"{self.times.size / max(self.n_neurons * self.duration, 1e-30):.2f} Hz mean>"
        )


def best_target() -> str:
    """``"cpp_standalone"`` when a C++ compiler works, else ``"numpy"``."""
    import shutil

    return "cpp_standalone" if (shutil.which("g++") or shutil.which("c++")) else "numpy"


def import_brian2():
    """``import brian2``, from any thread.

    Brian2 installs a Ctrl-C handler when first imported, which Python allows only in
    the main thread; in a worker thread (a Dask worker, a GUI, a notebook's thread) the
    import would fail.  There the handler is skipped (Ctrl-C still reaches the main thread).
    """
    if "brian2" in sys.modules or threading.current_thread() is threading.main_thread():
        import brian2
    else:
        install = signal.signal
        signal.signal = lambda signum, handler: signal.getsignal(signum)
        try:
            import brian2
        finally:
            signal.signal = install
    # Brian2's handler turns the first Ctrl-C during a run into a silent early stop; cortexsim's
    # own guard (run_network) stops cleanly instead and raises KeyboardInterrupt.
    brian2.prefs.core.stop_on_keyboard_interrupt = False
    return brian2


def _killed_by_ctrl_c(exc: BaseException) -> bool:
    """True if a Brian2 standalone build or run failed because its child process got SIGINT.

    ``os.system`` (Brian2's ``make``) ignores SIGINT in the parent and returns the raw wait
    status, which is the signal number (2) when the child was killed by it.
    """
    text = str(exc)
    return "error code: 2)" in text or "error code: -2)" in text


def run_network(b2, net, duration: float, dt: float, standalone: bool = False) -> None:
    """``net.run(duration)`` that Ctrl-C stops cleanly: it raises ``KeyboardInterrupt``, never truncates.

    Under a runtime target the first Ctrl-C asks Brian2 to stop after the current step, then
    ``KeyboardInterrupt`` is raised; under ``cpp_standalone`` it is raised at once (the
    simulation binary is ended with it).  A run that ends early for any other reason is an error,
    so a truncated simulation is never scored as if complete.

    Parameters
    ----------
    b2 : module
        brian2.
    net : brian2.Network
    duration : float
        Simulated time (s).
    dt : float
        Simulation step (s).
    standalone : bool
        The ``cpp_standalone`` device is active.
    """

    def first_ctrl_c() -> None:
        if standalone:
            raise KeyboardInterrupt
        net.stop()

    start = float(net.t / b2.second) if not standalone else 0.0
    with InterruptGuard(on_first=first_ctrl_c) as guard:
        try:
            net.run(duration * b2.second, namespace={})
        except RuntimeError as exc:
            if guard.requested or _killed_by_ctrl_c(exc):
                raise KeyboardInterrupt from None
            raise
        guard.check()
    if not standalone:
        reached = float(net.t / b2.second) - start
        if reached < duration - 0.5 * dt:
            raise RuntimeError(f"the Brian2 simulation stopped at {reached:.4f} s of {duration:.4f} s")


@contextlib.contextmanager
def _device(target: str, seed: int) -> Iterator[object]:
    """Select the code generation target and seed Brian2; restore the previous state after."""
    b2 = import_brian2()

    if target not in TARGETS:
        raise ValueError(f"target {target!r} is not one of {TARGETS}")
    previous = b2.prefs.codegen.target
    b2.start_scope()
    with tempfile.TemporaryDirectory(prefix="cortexsim_b2_") as build:
        if target == "cpp_standalone":
            b2.set_device("cpp_standalone", directory=build, build_on_run=True)
            b2.prefs.devices.cpp_standalone.openmp_threads = 0
        else:
            b2.prefs.codegen.target = target
        try:
            b2.seed(seed)
            yield b2
        finally:
            b2.prefs.codegen.target = previous
            if target == "cpp_standalone":
                b2.device.reinit()
                b2.device.activate()
                b2.set_device("runtime")


def _neurons(b2, n: int, lif: list[LIFParams] | LIFParams, offset_mv: float, dt: float, lit: bool = False, **kwargs):
    """NeuronGroup of ``n`` LIF neurons (one LIFParams, or one per neuron); ``lit``: with an opsin (stimulation)."""
    group = b2.NeuronGroup(
        n,
        eq.NEURON_EQUATIONS_LIT if lit else eq.NEURON_EQUATIONS,
        threshold=eq.NEURON_THRESHOLD,
        reset=eq.NEURON_RESET,
        refractory=eq.NEURON_REFRACTORY,
        method="euler",
        namespace={},
        dt=dt * b2.second,
        **kwargs,
    )
    per = [lif] * n if isinstance(lif, LIFParams) else lif
    group.tau_m = np.array([p.tau_m for p in per]) * b2.second
    group.theta = np.array([p.threshold for p in per]) * b2.mV
    group.v_reset = np.array([p.reset for p in per]) * b2.mV
    group.t_ref = np.array([p.refractory for p in per]) * b2.second
    group.sigma = np.array([p.sigma for p in per]) * b2.mV
    group.offset = offset_mv * b2.mV
    if lit:
        group.offset_rest = offset_mv * b2.mV
    return group


def _opsin(stimulus: Stimulus, copies: int) -> np.ndarray:
    """Each neuron's opsin current at full light (mV), for ``copies`` copies of the twin side by side."""
    drive = eq.SILENCE_MV if stimulus.silence else stimulus.drive
    return np.tile(drive * np.asarray(stimulus.expression, float), copies)


def _light_up(b2, neurons, stimulus: Stimulus, profile: np.ndarray, trial: np.ndarray, copies: int, task_dt: float):
    """Give ``neurons`` their opsin and the light ``profile`` (task steps, columns), read at every task step."""
    neurons.opsin = _opsin(stimulus, copies) * b2.mV
    neurons.trial = trial
    light = b2.TimedArray(np.asarray(profile, float), dt=task_dt * b2.second)
    neurons.namespace["light"] = light
    neurons.run_regularly(eq.NEURON_LIGHT, dt=task_dt * b2.second, when="start", name="light")


def lif_rates(
    mu_mv: np.ndarray,
    lif: LIFParams,
    *,
    dt: float = 1e-4,
    offset_mv: float = 0.0,
    neurons_per_input: int = 100,
    duration: float = 2.0,
    settle: float = 0.1,
    target: str = "numpy",
    seed: int = 0,
) -> np.ndarray:
    """Measured stationary rate (Hz) of the Brian2 LIF neuron for constant mean inputs.

    Parameters
    ----------
    mu_mv : ndarray, shape (inputs,)
        Mean input ``I_pool`` (mV above rest).
    lif : LIFParams
    dt : float
        Simulation step (s).
    offset_mv : float
        The neuron's ``offset`` (mV).
    neurons_per_input : int
        Independent neurons per input value; the rate is their mean.
    duration, settle : float
        Counting window and the initial transient excluded from it (s).

    Returns
    -------
    ndarray, shape (inputs,)
    """
    mu_mv = np.atleast_1d(np.asarray(mu_mv, float))
    n = mu_mv.size * neurons_per_input
    with _device(target, seed) as b2:
        pool = b2.NeuronGroup(mu_mv.size, "I : volt", namespace={}, dt=dt * b2.second)
        pool.I = mu_mv * b2.mV
        group = _neurons(b2, n, lif, offset_mv, dt)
        group.I_pool = b2.linked_var(pool, "I", index=np.repeat(np.arange(mu_mv.size), neurons_per_input))
        rng = generator(seed)
        group.v = rng.uniform(lif.reset, lif.threshold, n) * b2.mV
        net = b2.Network(pool, group)
        standalone = target == "cpp_standalone"
        run_network(b2, net, settle, dt, standalone)
        monitor = b2.SpikeMonitor(group)
        net.add(monitor)
        run_network(b2, net, duration, dt, standalone)
        counts = np.asarray(monitor.count[:], float)
    return counts.reshape(mu_mv.size, neurons_per_input).mean(axis=1) / duration


def simulate(
    params,
    drive_mv: np.ndarray,
    task_dt: float,
    *,
    seed: int = 0,
    target: str = "numpy",
    stimulus: Stimulus | None = None,
) -> Spikes:
    """Run the twin on concatenated trials.

    Parameters
    ----------
    params : SpikingParams
        From :func:`cortexsim.spiking.mapping.map_rate_to_spiking`.
    drive_mv : ndarray, shape (trials, time, units)
        Task drive ``B u + b`` of each rate unit (mV) on the task grid; trial ``n``
        occupies ``[n T, (n + 1) T)`` with ``T = time * task_dt``.
    task_dt : float
        Step of the task grid (s); a multiple of ``params.dt``.
    seed : int
        Seeds Brian2 (noise) and the initial membrane potentials.
    target : str
        One of :data:`TARGETS`.
    stimulus : Stimulus, optional
        A stimulation protocol over the twin's *neurons*: ``expression`` (units x k,), ``profile``
        (time, trials) (:func:`cortexsim.stimulation.neuron_expression`).  With one, every neuron
        carries the opsin variables (:data:`~cortexsim.spiking.equations.NEURON_EQUATIONS_LIT`), so a
        run with an all-dark stimulus is the unstimulated reference with the same random numbers.

    Returns
    -------
    Spikes
    """
    n_trials, n_steps, n_units = drive_mv.shape
    if n_units != params.n_units:
        raise ValueError(f"drive has {n_units} units, the twin {params.n_units}")
    if abs(task_dt / params.dt - round(task_dt / params.dt)) > 1e-6:
        raise ValueError(f"task dt {task_dt} s is not a multiple of the simulation dt {params.dt} s")
    duration = n_trials * n_steps * task_dt
    t0 = time.perf_counter()
    with _device(target, seed) as b2:
        net, monitor = _build(b2, params, drive_mv, task_dt, seed, stimulus)
        run_network(b2, net, duration, params.dt, standalone=target == "cpp_standalone")
        times, ids = np.asarray(monitor.t[:] / b2.second, float), np.asarray(monitor.i[:], np.int64)
    order = np.argsort(times, kind="stable")
    return Spikes(times[order], ids[order], params.n_units * params.k, duration, time.perf_counter() - t0)


def simulate_loop(
    params,
    drive_mv: np.ndarray,
    task_dt: float,
    controller: Callable[[int, np.ndarray], np.ndarray | None],
    r0: np.ndarray,
    *,
    readout_tau: float,
    seed: int = 0,
    target: str = "cython",
    stimulus: Stimulus | None = None,
) -> Spikes:
    """Run the twin's trials side by side in closed loop with ``controller``, called every task step.

    Every trial is its own copy of the pools (pool ``n N + u`` is unit ``u`` of trial ``n``), so
    one simulation of one trial's length runs all of them, and the controller (the arm, in
    :mod:`cortexsim.spiking.arm`) is stepped once per task step for every trial at once, by a
    Brian2 ``NetworkOperation``.  At ``t dt`` (``t = 0 .. T``), before the neurons update, it
    receives the readout pools' rates -- each neuron's spikes through the causal exponential
    filter ``exp(-s / readout_tau) / readout_tau``, averaged over the pool -- and returns the
    extra drive (mV) every pool receives during task step ``t`` (the call at ``T`` is the last
    readout; its return is ignored).  A ``NetworkOperation`` runs Python, so the target must be a
    runtime one (``"numpy"`` or ``"cython"``); ``cpp_standalone`` cannot host it.

    Parameters
    ----------
    params : SpikingParams
    drive_mv : ndarray, shape (trials, time, units)
        Task drive ``B u + b`` of each rate unit (mV).
    task_dt : float
        Step of the task grid (s); a multiple of ``params.dt``.
    controller : callable
        ``controller(t, rates)`` with ``rates`` (trials, readout units) in Hz; returns the extra
        drive (trials, units) in mV, or None for none.
    r0 : ndarray, shape (readout units,) or (trials, readout units)
        Initial value of the readout filters (Hz): the rate model's initial rates, so that the
        first readouts are not a silent filter's zeros.
    readout_tau : float
        Time constant of the readout filter (s).
    seed : int
    target : str
        ``"numpy"`` or ``"cython"``.
    stimulus : Stimulus, optional
        As for :func:`simulate`; ``profile`` (time, trials) lights each trial's copy.

    Returns
    -------
    Spikes
        In the layout of :func:`simulate`: neuron ``u K + j`` of every trial, trial ``n`` shifted
        to ``[n T, (n + 1) T)``, so :mod:`cortexsim.spiking.decode` reads both alike.
    """
    n_trials, n_steps, n_units = drive_mv.shape
    if n_units != params.n_units:
        raise ValueError(f"drive has {n_units} units, the twin {params.n_units}")
    if target not in ("numpy", "cython"):
        raise ValueError(f"target {target!r}: a closed loop needs a runtime target, 'numpy' or 'cython'")
    if abs(task_dt / params.dt - round(task_dt / params.dt)) > 1e-6:
        raise ValueError(f"task dt {task_dt} s is not a multiple of the simulation dt {params.dt} s")
    if not readout_tau > 0:
        raise ValueError(f"readout_tau {readout_tau} s must be > 0")
    t0 = time.perf_counter()
    with _device(target, seed) as b2:
        net, monitor, pools, readout = _build_parallel(b2, params, drive_mv, task_dt, seed, r0, readout_tau, stimulus)
        n_out = params.out_idx.size
        step = iter(range(n_steps + 1))

        def close_the_loop() -> None:
            t = next(step)
            extra = controller(t, np.asarray(readout.r_[:]).reshape(n_trials, n_out))
            if extra is not None and t < n_steps:
                pools.I_fb_[:] = 1e-3 * np.asarray(extra, float).reshape(-1)

        net.add(b2.NetworkOperation(close_the_loop, dt=task_dt * b2.second, when="start", name="loop"))
        run_network(b2, net, n_steps * task_dt, params.dt)
        controller(n_steps, np.asarray(readout.r_[:]).reshape(n_trials, n_out))
        times, ids = np.asarray(monitor.t[:] / b2.second, float), np.asarray(monitor.i[:], np.int64)
    per_trial = n_units * params.k
    trial = ids // per_trial
    times = times + trial * (n_steps * task_dt)
    ids = ids - trial * per_trial
    order = np.argsort(times, kind="stable")
    duration = n_trials * n_steps * task_dt
    return Spikes(times[order], ids[order], per_trial, duration, time.perf_counter() - t0)


def _pool_group(b2, n: int, equations: str, namespace: dict, dt: float, tau: np.ndarray, x0: np.ndarray):
    """The pools: one current ``I`` (mV) per rate unit, starting at ``x0``."""
    pools = b2.NeuronGroup(
        n, equations, method="exponential_euler", namespace=namespace, dt=dt * b2.second, name="pools"
    )
    pools.tau = tau * b2.second
    pools.x0 = x0 * b2.mV
    pools.I = x0 * b2.mV
    return pools


def _pool_neurons(b2, params, pools, copies: int, seed: int, lit: bool = False):
    """K LIF neurons per pool, reading its current; membrane potentials drawn uniformly below threshold."""
    k, n_units = params.k, params.n_units
    lifs = [params.lif_of_unit(u) for u in range(n_units) for _ in range(k)] * copies
    neurons = _neurons(b2, n_units * k * copies, lifs, params.offset_mv, params.dt, lit=lit, name="neurons")
    neurons.I_pool = b2.linked_var(pools, "I", index=np.repeat(np.arange(n_units * copies), k))
    rng = stream(seed, "spiking-network")
    neurons.v = rng.uniform(params.lif.reset, params.lif.threshold, n_units * k * copies) * b2.mV
    return neurons


def _pool_coupling(b2, params, neurons, pools, copies: int):
    """Neuron -> pool synapses: a spike of pool j's neuron adds ``W_ij / (K tau_i)`` to pool i (in each copy)."""
    k, n_units = params.k, params.n_units
    syn = b2.Synapses(
        neurons,
        pools,
        model=eq.SYNAPSE_MODEL,
        on_pre=eq.SYNAPSE_ON_PRE,
        namespace={},
        dt=params.dt * b2.second,
        name="pool_coupling",
    )
    pre_neuron = (params.syn_pre[:, None] * k + np.arange(k)[None, :]).ravel()
    post_pool = np.repeat(params.syn_post, k)
    if pre_neuron.size:
        shift = np.arange(copies)[:, None]
        syn.connect(i=(pre_neuron + shift * n_units * k).ravel(), j=(post_pool + shift * n_units).ravel())
        syn.w = np.tile(np.repeat(params.syn_increment_mv, k), copies) * b2.mV
    return syn


def _build(b2, params, drive_mv: np.ndarray, task_dt: float, seed: int, stimulus: Stimulus | None = None):
    """The twin's Network and its SpikeMonitor (trials back to back)."""
    n_trials, n_steps, n_units = drive_mv.shape
    drive = b2.TimedArray(drive_mv.reshape(-1, n_units) * b2.mV, dt=task_dt * b2.second)
    starts = np.zeros(n_trials * n_steps)
    starts[::n_steps] = 1.0
    start = b2.TimedArray(starts, dt=task_dt * b2.second)
    namespace = {"I_ext": drive, "start": start}
    pools = _pool_group(b2, n_units, eq.POOL_EQUATIONS, namespace, params.dt, params.tau, params.x0)
    pools.run_regularly(eq.POOL_TRIAL_START, dt=task_dt * b2.second, when="start")
    neurons = _pool_neurons(b2, params, pools, 1, seed, lit=stimulus is not None)
    if stimulus is not None:  # trials back to back: one column of light over the concatenated steps
        profile = np.asarray(stimulus.profile, float).T.reshape(-1, 1)
        _light_up(b2, neurons, stimulus, profile, np.zeros(neurons.N, int), 1, task_dt)
    syn = _pool_coupling(b2, params, neurons, pools, 1)
    monitor = b2.SpikeMonitor(neurons, name="spikes")
    return b2.Network(pools, neurons, syn, monitor), monitor


def _build_parallel(
    b2,
    params,
    drive_mv: np.ndarray,
    task_dt: float,
    seed: int,
    r0: np.ndarray,
    readout_tau: float,
    stimulus: Stimulus | None = None,
):
    """The twin with every trial its own copy of the pools, a feedback current and readout filters."""
    n_trials, n_steps, n_units = drive_mv.shape
    k, n_out = params.k, params.out_idx.size
    drive = b2.TimedArray(drive_mv.transpose(1, 0, 2).reshape(n_steps, -1) * b2.mV, dt=task_dt * b2.second)
    tau, x0 = np.tile(params.tau, n_trials), np.tile(params.x0, n_trials)
    pools = _pool_group(b2, n_units * n_trials, eq.LOOP_POOL_EQUATIONS, {"I_ext": drive}, params.dt, tau, x0)
    neurons = _pool_neurons(b2, params, pools, n_trials, seed, lit=stimulus is not None)
    if stimulus is not None:  # trial n is copy n: its neurons read column n of the light
        trial = np.repeat(np.arange(n_trials), n_units * k)
        _light_up(b2, neurons, stimulus, stimulus.profile, trial, n_trials, task_dt)
    syn = _pool_coupling(b2, params, neurons, pools, n_trials)
    readout = b2.NeuronGroup(
        n_trials * n_out, eq.READOUT_EQUATIONS, method="exact", namespace={}, dt=params.dt * b2.second, name="readout"
    )
    readout.tau_r = readout_tau * b2.second
    r0 = np.asarray(r0, float)
    readout.r = (np.tile(r0, n_trials) if r0.ndim == 1 else r0.reshape(-1)) * b2.Hz
    inc = 1.0 / (k * readout_tau) * b2.Hz
    tap = b2.Synapses(
        neurons, readout, on_pre=eq.READOUT_ON_PRE, namespace={"inc": inc}, dt=params.dt * b2.second, name="readout_tap"
    )
    member = (params.out_idx[:, None] * k + np.arange(k)[None, :]).ravel()  # (n_out k,)
    target_row = np.repeat(np.arange(n_out), k)
    shift = np.arange(n_trials)[:, None]
    tap.connect(i=(member + shift * n_units * k).ravel(), j=(target_row + shift * n_out).ravel())
    monitor = b2.SpikeMonitor(neurons, name="spikes")
    return b2.Network(pools, neurons, syn, readout, tap, monitor), monitor, pools, readout
