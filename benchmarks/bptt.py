#!/usr/bin/env python
"""Benchmark: one BPTT training iteration of :class:`cortexsim.rate.RateNetwork`.

One iteration = ``net.loss_and_grad(batch, Penalties(), noise)``: forward pass,
loss and the exact gradient of every parameter group, for a batch of 64
center-out trials of 150 steps, float32, at N = 256, 512 and 1024 units of the
default M1 connectome (about 3.8 % dense), run the way training runs it: BLAS
limited to :func:`cortexsim.rate.training_threads` threads, the kernel path and
gradient threads chosen by the network itself (``net.kernel_info()``).

It is judged against the strongest fair version of each reference, measured in
the same run, on the identical network, loss and fixed noise (neither is ever a
dependency of cortexsim; each is used when it imports):

* **torch**: PyTorch CPU autograd, the time loop over ``drive.unbind(0)`` (no
  per-step indexing of a graph tensor, which would make autograd's backward
  O(T^2)); its cost is shown to be linear in T by timing 75 of the 150 steps too
  (``torch_t150_over_t75``, expected 1.8-2.2).  torch is timed with its default
  thread count and with one thread (``--torch-threads``); ``torch_ms`` is the
  faster of the two medians (a 2-thread torch stalls badly on a busy machine);
* **jax**: ``jax.jit(jax.value_and_grad(loss))`` with the time loop as ``jax.lax.scan``.

Before timing, each reference's loss and every gradient group are compared with
cortexsim's (relative error < 1e-3 in float32, < 1e-8 for torch in a float64
cross-check at the first size); a mismatch is reported and the exit status is 1.

Timing: rounds in which every contender runs once (order rotating from round to
round, a short idle pause and a garbage collection before each call); medians of
``--repeats`` (default 7) rounds after ``--warmup`` (default 2).  With ``--load``,
one single-threaded Python busy loop (``while True: pass`` in a subprocess at
default priority) is started, and every round is run twice, once with the loop
stopped (SIGSTOP) and once with it running (SIGCONT): quiet and loaded numbers
come from interleaved rounds of the same run.

Run from the repository root::

    python benchmarks/bptt.py --json bptt.json              # N = 256, 512, 1024; about 2 minutes (quiet)
    python benchmarks/bptt.py --load --json bptt_load.json  # quiet and loaded; about 3-8 minutes

``--json FILE`` writes a list ``results``, one entry per N, with ``n``,
``cortexsim_ms``, ``torch_ms``, ``jax_ms`` (null when that library is unavailable),
``ratio_torch`` = cortexsim_ms / torch_ms, ``ratio_jax`` = cortexsim_ms / jax_ms
(below 1: cortexsim faster), and under ``--load`` the same keys with ``_load``
appended; plus the per-round samples, the checks, flops and GFLOP/s, the kernel
path, the BLAS library and kernel, and the load average.

The script never changes ``OPENBLAS_CORETYPE`` or any thread variable; it reports them.
It re-runs itself once with the glibc malloc settings of ``MALLOC_ENV`` (see there;
``--no-malloc-tuning`` keeps the environment's).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
from threadpoolctl import threadpool_limits

from cortexsim.anatomy import default_m1_spec
from cortexsim.circuit import build_connectome
from cortexsim.loss import Penalties
from cortexsim.rate import GROUPS, RateNetwork, gradient_threads, kernel_path, training_threads
from cortexsim.tasks import CenterOutTask, TrialBatch
from cortexsim.transfer import Softplus, make_transfer

BATCH = 64
N_STEPS = 150
HALF_STEPS = 75
DT = 0.01
NOISE_STD = 1.5
TARGET_TORCH = 0.7
TARGET_JAX = 0.9
TARGET_LOAD = 2.5
CHECK_RTOL_32 = 1e-3
CHECK_RTOL_64 = 1e-8
ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "XLA_FLAGS",
)
MALLOC_ENV = {
    "MALLOC_TRIM_THRESHOLD_": "4000000000",
    "MALLOC_MMAP_THRESHOLD_": "2000000000",
    "MALLOC_TOP_PAD_": "536870912",
}
"""glibc malloc settings the script re-runs itself with: memory freed by one iteration is kept for the next.

Without them glibc returns the autograd graph's freed memory (tens of MB per iteration) to the
system and the next iteration page-faults it back in, which makes torch's time grow faster than
T (t(150)/t(75) about 2.5, t(600)/t(300) about 2.9 measured at N = 256); with them torch is linear
in T (2.0-2.1) and faster.  cortexsim reuses its work buffers and is not affected."""


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- machine -------------------------------------------------------------------------
def numpy_blas_info() -> dict:
    """numpy's BLAS as threadpoolctl sees it, plus the environment variables that steer it."""
    from threadpoolctl import threadpool_info

    info: dict = {"env": {k: os.environ.get(k) for k in ENV_VARS}}
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    mine = [lib for lib in blas if "numpy" in lib.get("filepath", "")] or blas
    if not mine:
        info["error"] = "threadpoolctl found no BLAS library"
        return info
    lib = mine[0]
    info.update(
        {
            k: lib.get(k)
            for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
        }
    )
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_line(info: dict) -> str:
    if "internal_api" not in info:
        return info.get("error", "unknown")
    return (
        f"{info['internal_api']} {info['version']}, kernel {info['architecture']}, "
        f"{info['num_threads']} threads by default ({info['threading_layer']})"
    )


def _rate(call: Callable[[], object], flops: float, repeats: int = 7, min_time: float = 0.03) -> float:
    """Median GFLOP/s of ``call`` over ``repeats`` samples, each long enough to time."""
    call()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        if time.perf_counter() - t0 >= min_time or calls >= 1 << 14:
            break
        calls *= 2
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        out.append(calls * flops / (time.perf_counter() - t0) / 1e9)
    return statistics.median(out)


def machine_rates(net: RateNetwork, rng: np.random.Generator) -> dict[str, float]:
    """One-thread GFLOP/s of the kernels the path choice weighs, at this network's N and density."""
    from cortexsim._kernels import Recurrence

    n = net.n_units
    r = rng.random((n, BATCH), dtype=np.float32)
    y = np.zeros((n, BATCH), np.float32)
    tmp = np.empty_like(y)
    coef = net.alpha[:, None] * net.sign[None, :]
    out = {}
    with threadpool_limits(1, user_api="blas"):
        for path in ("sparse", "dense"):
            rec = Recurrence(net.mask, coef, path, np.float32)
            rec.set_weights(net.params["w"])
            flops = 2.0 * BATCH * (rec.n_synapses if path == "sparse" else n * n)
            out[f"{path}_step_gflops"] = _rate(lambda rec=rec: rec.forward(r, y, tmp), flops)
        a, b = rng.random((2, n, 2048), dtype=np.float32)  # two operands: a @ a.T would run as SYRK
        c = np.empty((n, n), np.float32)
        out["gemm_gflops"] = _rate(lambda: np.matmul(a, b.T, out=c), 2.0 * n * n * 2048, repeats=5)
    return out


# -- the problem -------------------------------------------------------------------------
def make_problem(n_units: int, seed: int):
    """Network (float32, initial parameters), 64-trial batch of 150 steps and fixed noise."""
    rng = np.random.default_rng(seed)
    connectome = build_connectome(default_m1_spec(), n_units, rng)
    net = RateNetwork(connectome, make_transfer("lif_softplus"), dt=DT, noise_std=NOISE_STD, dtype=np.float32)
    net.init_params(rng)
    task = CenterOutTask(dt=DT, delay_max=0.54, eval_delay=0.5)
    assert task.n_steps == N_STEPS, f"task has {task.n_steps} steps, benchmark needs {N_STEPS}"
    batch = task.sample(BATCH, rng)
    assert batch.inputs.shape[:2] == (BATCH, N_STEPS)
    noise = net.noise(BATCH, N_STEPS, rng)  # as training makes it
    w = net.params["w"].astype(np.float64)
    w_ref = float(np.sqrt(np.sum(w**2) / max(int(net.mask.sum()), 1)))
    return net, batch, noise, w_ref


def twin(net: RateNetwork, dtype) -> RateNetwork:
    """The same network (connectome, parameters) in another dtype."""
    other = RateNetwork(
        net.connectome,
        net.transfer,
        dt=net.dt,
        input_groups=net.input_groups,
        n_outputs=net.n_outputs,
        noise_std=net.noise_std,
        dtype=dtype,
        output_scale=net.output_scale,
    )
    other.set_params(net.params)
    return other


def first_steps(batch: TrialBatch, noise: np.ndarray, k: int) -> tuple[TrialBatch, np.ndarray]:
    """The first ``k`` steps of every trial, and of the noise."""
    return TrialBatch(batch.inputs[:, :k], batch.targets[:, :k], batch.mask[:, :k], batch.dt), noise[:k]


def iteration_flops(net: RateNetwork, n_trials: int, n_steps: int) -> dict[str, float]:
    """Flops of one iteration: dense-equivalent (what a dense implementation does) and done by cortexsim.

    Matrix products only (element-wise work is not counted).  Dense-equivalent:
    forward ``W r[t]`` and backward ``W^T g[t+1]`` with the dense (N, N) matrix
    for every step but the last, the weight gradient ``sum_t g[t+1] r[t]^T``, and
    the input and readout products.  Done: the same with the recurrent products
    on the synapses only where the kernel path is sparse (the weight gradient is a
    dense GEMM on either path).
    """
    n, n_in, n_read, n_out = net.n_units, net.n_inputs, net.out_idx.size, net.n_outputs
    tb, tb1 = n_steps * n_trials, (n_steps - 1) * n_trials
    syn = int(net.mask.sum())
    small = 2.0 * tb * n * n_in + 2.0 * tb1 * n * n_in + 3 * 2.0 * tb * n_read * n_out
    dense = {
        "forward": 2.0 * tb1 * n * n,
        "backward": 2.0 * tb1 * n * n,
        "weight_gradient": 2.0 * tb1 * n * n,
        "small": small,
    }
    rec = dense["forward"] if net.kernel_path == "dense" else 2.0 * tb1 * syn
    done = {"forward": rec, "backward": rec, "weight_gradient": dense["weight_gradient"], "small": small}
    return {
        "dense_equivalent": sum(dense.values()),
        "done": sum(done.values()),
        "parts_dense": dense,
        "parts_done": done,
    }


# -- references ---------------------------------------------------------------------------
class _Problem:
    """The network, batch, noise and penalties as plain float arrays, shared by the references."""

    def __init__(self, net: RateNetwork, batch: TrialBatch, noise: np.ndarray, w_ref: float, penalties: Penalties):
        if not isinstance(net.transfer, Softplus):
            raise TypeError(f"the references implement the softplus transfer only, not {net.transfer.name}")
        dt = net.dtype
        self.dtype = dt
        self.params = {k: np.asarray(net.params[k], dt) for k in GROUPS}
        self.mask = net.mask.astype(dt)
        self.sign = net.sign.astype(dt)
        self.alpha = net.alpha.astype(dt)
        self.leak = (1.0 - net.alpha).astype(dt)
        self.in_mask = net.in_mask.astype(dt)
        self.out_idx = net.out_idx
        self.u = np.ascontiguousarray(batch.inputs.transpose(1, 0, 2), dt)  # (time, trials, inputs)
        self.target = np.ascontiguousarray(batch.targets.transpose(1, 0, 2), dt)  # (time, trials, outputs)
        self.tmask = np.ascontiguousarray(batch.mask.transpose(1, 0, 2), dt)
        self.noise = np.ascontiguousarray(noise, dt)  # (time, trials, units)
        phi = net.transfer
        self.gain, self.threshold, self.softness = phi.gain, phi.threshold, phi.softness
        self.scale = net.output_scale**2
        self.n_syn = max(int(net.mask.sum()), 1)
        self.w_ref = w_ref
        self.pen = penalties


class TorchReference:
    """The same network, loss and parameters in PyTorch; gradients by autograd.

    The time loop runs over ``drive.unbind(0)``: indexing ``drive[t]`` inside the
    loop would make autograd allocate and add a zero (T, B, N) gradient per step
    (an O(T^2) backward).
    """

    def __init__(self, torch, prob: _Problem):
        self.torch, self.F = torch, torch.nn.functional
        dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[prob.dtype]

        def tensor(a):
            return torch.tensor(np.asarray(a), dtype=dtype)

        self.params = {k: tensor(v).requires_grad_(True) for k, v in prob.params.items()}
        for name in ("mask", "sign", "alpha", "leak", "in_mask", "u", "target", "tmask", "noise"):
            setattr(self, name, tensor(getattr(prob, name)))
        self.out_idx = torch.as_tensor(prob.out_idx, dtype=torch.long)
        self.prob = prob

    def loss(self):
        torch, F, p, q = self.torch, self.F, self.params, self.prob
        pen, alpha = q.pen, self.alpha
        wt_alpha = (p["w"] * self.mask * self.sign[None, :] * alpha[:, None]).t()  # W[post, pre] -> (pre, post)
        drive = self.u @ (p["w_in"] * self.in_mask * alpha[:, None]).t() + alpha * p["b"] + self.noise
        steps = drive.unbind(0)
        n_trials, n = self.noise.shape[1:]
        x = p["x0"].expand(n_trials, n)
        gs = q.gain * q.softness
        rates = []
        for t, d in enumerate(steps):
            r = gs * F.softplus((x - q.threshold) / q.softness)
            rates.append(r)
            if t + 1 < len(steps):
                x = self.leak * x + d + r @ wt_alpha
        rates = torch.stack(rates)
        y = rates[:, :, self.out_idx] @ p["w_out"].t() + p["b_out"]
        err = (y - self.target) * self.tmask
        count = torch.clamp(self.tmask.sum(), min=1.0)
        task = (err**2).sum() / (count * q.scale)
        rate = pen.rate_l2 * (rates**2).mean() + pen.rate_cap_l2 * (F.relu(rates - pen.rate_cap) ** 2).mean()
        weight = pen.weight_l2 * (p["w"] ** 2).sum() / (q.n_syn * q.w_ref**2)
        return task + rate + weight

    def loss_and_grad(self) -> tuple[float, dict[str, np.ndarray]]:
        for v in self.params.values():
            v.grad = None
        loss = self.loss()
        loss.backward()
        return float(loss.detach()), {k: v.grad.numpy().copy() for k, v in self.params.items()}


class JaxReference:
    """The same network and loss in JAX: ``jit(value_and_grad(loss))``, the time loop a ``lax.scan``."""

    def __init__(self, jax, prob: _Problem):
        jnp = jax.numpy
        self.jax = jax
        q = prob
        c = {
            name: jnp.asarray(getattr(q, name))
            for name in ("mask", "sign", "alpha", "leak", "in_mask", "u", "target", "tmask", "noise")
        }
        out_idx = jnp.asarray(q.out_idx)
        gs, thr, soft, pen = q.gain * q.softness, q.threshold, q.softness, q.pen

        def loss(p):
            alpha = c["alpha"]
            wt_alpha = (p["w"] * c["mask"] * c["sign"][None, :] * alpha[:, None]).T
            drive = c["u"] @ (p["w_in"] * c["in_mask"] * alpha[:, None]).T + alpha * p["b"] + c["noise"]
            x0 = jnp.broadcast_to(p["x0"], c["noise"].shape[1:])

            def step(x, d):
                r = gs * jax.nn.softplus((x - thr) / soft)
                return c["leak"] * x + d + r @ wt_alpha, r

            x_last, rates = jax.lax.scan(step, x0, drive[:-1])
            r_last = gs * jax.nn.softplus((x_last - thr) / soft)
            rates = jnp.concatenate([rates, r_last[None]], axis=0)
            y = rates[:, :, out_idx] @ p["w_out"].T + p["b_out"]
            err = (y - c["target"]) * c["tmask"]
            count = jnp.maximum(c["tmask"].sum(), 1.0)
            task = (err**2).sum() / (count * q.scale)
            rate = pen.rate_l2 * (rates**2).mean() + pen.rate_cap_l2 * (jax.nn.relu(rates - pen.rate_cap) ** 2).mean()
            weight = pen.weight_l2 * (p["w"] ** 2).sum() / (q.n_syn * q.w_ref**2)
            return task + rate + weight

        self.fn = jax.jit(jax.value_and_grad(loss))
        self.params = {k: jnp.asarray(v) for k, v in q.params.items()}

    def run(self) -> None:
        loss, grads = self.fn(self.params)
        self.jax.block_until_ready((loss, grads))

    def loss_and_grad(self) -> tuple[float, dict[str, np.ndarray]]:
        loss, grads = self.fn(self.params)
        return float(loss), {k: np.asarray(v) for k, v in grads.items()}


def compare(loss_a: float, grads_a: dict, loss_b: float, grads_b: dict) -> dict[str, float]:
    """Relative error of ``a`` against ``b``: |la - lb| / |lb| and ||ga - gb|| / ||gb|| per group."""
    out = {"loss": abs(loss_a - loss_b) / max(abs(loss_b), 1e-300)}
    for k in GROUPS:
        a, b = grads_a[k].astype(np.float64), grads_b[k].astype(np.float64)
        nb = float(np.linalg.norm(b))
        diff = float(np.linalg.norm(a - b))
        out[k] = diff / nb if nb > 0 else diff
    return out


def check_line(errs: dict[str, float], rtol: float) -> str:
    return ", ".join(f"{k} {v:.1e}{'' if v < rtol else ' FAIL'}" for k, v in errs.items())


# -- load and timing -------------------------------------------------------------------------
class BusyLoop:
    """One single-threaded Python busy loop in a subprocess at default priority, switched on and off."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        self.running = True
        self.off()

    def on(self) -> None:
        if not self.running:
            self.proc.send_signal(signal.SIGCONT)
            self.running = True
            time.sleep(0.2)  # let the scheduler see it as CPU-bound

    def off(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGSTOP)
            self.running = False

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait()


def time_rounds(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    pause: float,
    label: str,
    load: BusyLoop | None,
    quiet_only: tuple[str, ...] = (),
    prepare: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Wall times (s): ``warmup`` untimed then ``repeats`` timed rounds of every call.

    The order of the calls rotates from round to round.  With ``load``, each round
    is run quiet (loop stopped) and then loaded (loop running); loaded samples are
    stored under ``name + "_load"`` (calls in ``quiet_only`` are not run loaded).
    ``prepare[name]``, when given, runs untimed before each call of ``name``.
    """
    prepare = prepare or {}
    names = list(calls)
    times: dict[str, list[float]] = {k: [] for k in names}
    if load is not None:
        times.update({k + "_load": [] for k in names if k not in quiet_only})
    phases = ["quiet"] + (["load"] if load is not None else [])
    for i in range(warmup + repeats):
        order = names[i % len(names) :] + names[: i % len(names)]
        for phase in phases:
            if load is not None:
                load.on() if phase == "load" else load.off()
            for name in order:
                if phase == "load" and name in quiet_only:
                    continue
                if name in prepare:
                    prepare[name]()
                time.sleep(pause)
                gc.collect()
                gc.disable()
                try:
                    t0 = time.perf_counter()
                    calls[name]()
                    elapsed = time.perf_counter() - t0
                finally:
                    gc.enable()
                if i >= warmup:
                    times[name + ("_load" if phase == "load" else "")].append(elapsed)
        if load is not None:
            load.off()
        if i < warmup:
            progress(f"{label}: warm-up round {i + 1}/{warmup}")
        else:
            last = ", ".join(f"{k} {v[-1] * 1e3:.0f}" for k, v in times.items() if v)
            progress(f"{label}: round {i + 1 - warmup}/{repeats} (ms: {last})")
    return times


def summary(samples: list[float]) -> dict:
    ms = [s * 1e3 for s in samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "samples_ms": ms}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


# -- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="network sizes N")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per size (medians quoted; >= 7 advised)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds before timing")
    ap.add_argument(
        "--load", action="store_true", help="also time every round with one competing single-threaded busy loop"
    )
    ap.add_argument("--no-torch", action="store_true", help="skip the torch reference")
    ap.add_argument(
        "--torch-threads",
        type=int,
        nargs="+",
        help="torch thread counts to time (default: torch's default and 1); torch_ms is the fastest",
    )
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX reference")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds of idle before each timed call")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    ap.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="run with the environment's glibc malloc settings (see MALLOC_ENV)",
    )
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        ap.error("need --repeats >= 1 and --warmup >= 0")
    if argv is None and not args.no_malloc_tuning and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})

    t_start = time.perf_counter()
    load_start = loadavg()
    blas = numpy_blas_info()  # before torch and jax are imported, so that only numpy's libraries show
    penalties = Penalties()

    torch = jax = None
    errors: dict[str, str] = {}
    if not args.no_torch:
        try:
            import torch  # optional; never a dependency of cortexsim
        except Exception as exc:  # ImportError, or a broken install failing to load its libraries
            torch, errors["torch"] = None, f"{type(exc).__name__}: {exc}"
    if not args.no_jax:
        try:
            import jax  # optional; never a dependency of cortexsim

            jax.config.update("jax_platforms", "cpu")
        except Exception as exc:
            jax, errors["jax"] = None, f"{type(exc).__name__}: {exc}"
    info: dict = {}
    torch_threads: list[int] = []
    if torch is not None:
        info["torch"] = {
            "version": torch.__version__,
            "num_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        }
        torch_threads = sorted(set(args.torch_threads or (torch.get_num_threads(), 1)), reverse=True)
        info["torch"]["timed_threads"] = torch_threads
    if jax is not None:
        info["jax"] = {"version": jax.__version__, "devices": [str(d) for d in jax.devices()]}

    print("BPTT benchmark: RateNetwork.loss_and_grad, one training iteration (forward + backward)")
    print(
        f"  batch {BATCH} trials x {N_STEPS} steps (dt {DT * 1e3:g} ms), float32, default M1 connectome, "
        f"lif_softplus, noise_std {NOISE_STD} mV, Penalties() defaults"
    )
    print(
        f"  machine   {cpu_model()} ({platform.machine()}) | {os.cpu_count()} CPUs | load average "
        f"{' '.join(map(str, load_start))} | python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"  numpy BLAS {blas_line(blas)}")
    print("  env       " + "  ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in blas["env"].items()))
    print(
        "  malloc    "
        + (
            "  ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in MALLOC_ENV)
            + ("" if args.no_malloc_tuning else " (set by the script: see MALLOC_ENV)")
        )
    )
    for name in ("torch", "jax"):
        if name in info:
            print(f"  {name:9s} {info[name]}")
        else:
            print(f"  {name:9s} not used ({errors.get(name, 'skipped by option')})")
    print(
        f"  timing    medians of {args.repeats} rounds after {args.warmup} warm-ups, contenders interleaved "
        f"(order rotating), {args.pause:g} s idle before each call"
        + ("; every round also with one competing busy loop (--load)" if args.load else ""),
        flush=True,
    )

    load = BusyLoop() if args.load else None
    results, all_ok, check64 = [], True, None
    try:
        for idx, n in enumerate(args.sizes):
            label = f"N={n}"
            progress(f"{label}: building network and batch")
            net, batch, noise, w_ref = make_problem(n, args.seed + n)
            kinfo = net.kernel_info()
            threads = training_threads(n, net.density, net.dtype)
            flops = iteration_flops(net, BATCH, N_STEPS)
            rates = machine_rates(net, np.random.default_rng(n))

            def cortexsim_iteration(net=net, batch=batch, noise=noise, w_ref=w_ref, threads=threads):
                with threadpool_limits(threads, user_api="blas"):
                    return net.loss_and_grad(batch, penalties, noise, w_ref=w_ref)

            loss_cs, grads_cs, stats = cortexsim_iteration()
            grads_cs = {k: v.copy() for k, v in grads_cs.items()}
            print(f"\n[N={n}] {net}")
            print(
                f"  kernel    {kinfo['kernel_path']} recurrent product (density {kinfo['density']:.4f}), "
                f"{kinfo['gradient_threads']} weight-gradient thread(s), BLAS {threads} thread(s); one-thread "
                f"GFLOP/s: CSR step {rates['sparse_step_gflops']:.1f}, dense step {rates['dense_step_gflops']:.1f}, "
                f"GEMM {rates['gemm_gflops']:.1f}"
            )
            print(f"  rates     mean {stats['mean_rate']:.2f} Hz, max {stats['max_rate']:.1f} Hz; loss {loss_cs:.6g}")

            calls: dict[str, Callable[[], object]] = {"cortexsim": cortexsim_iteration}
            prepare: dict[str, Callable[[], object]] = {}
            checks = {}
            prob = _Problem(net, batch, noise, w_ref, penalties)
            if torch is not None:
                ref = TorchReference(torch, prob)
                checks["torch"] = compare(loss_cs, grads_cs, *ref.loss_and_grad())
                half = TorchReference(torch, _Problem(net, *first_steps(batch, noise, HALF_STEPS), w_ref, penalties))
                for k in torch_threads:
                    calls[f"torch{k}"], calls[f"torch{k}_t75"] = ref.loss_and_grad, half.loss_and_grad
                    prepare[f"torch{k}"] = prepare[f"torch{k}_t75"] = lambda k=k: torch.set_num_threads(k)
            if jax is not None:
                progress(f"{label}: compiling the JAX reference")
                jref = JaxReference(jax, prob)
                checks["jax"] = compare(loss_cs, grads_cs, *jref.loss_and_grad())
                calls["jax"] = jref.run
            for name, errs in checks.items():
                ok = all(v < CHECK_RTOL_32 for v in errs.values())
                all_ok &= ok
                print(
                    f"  check     float32 vs {name} (rel. error, tol {CHECK_RTOL_32:g}): "
                    f"{'match' if ok else 'MISMATCH'}: {check_line(errs, CHECK_RTOL_32)}"
                )
            if idx == 0 and torch is not None:  # float64: separates a real discrepancy from float32 rounding
                net64, noise64 = twin(net, np.float64), noise.astype(np.float64)
                l64, g64, _ = net64.loss_and_grad(batch, penalties, noise64, w_ref=w_ref)
                lr64, gr64 = TorchReference(torch, _Problem(net64, batch, noise64, w_ref, penalties)).loss_and_grad()
                errs64 = compare(l64, g64, lr64, gr64)
                ok64 = all(v < CHECK_RTOL_64 for v in errs64.values())
                all_ok &= ok64
                check64 = {"n": n, "rel_errors": errs64, "ok": ok64, "tol": CHECK_RTOL_64}
                print(
                    f"  check     float64 vs torch (tol {CHECK_RTOL_64:g}): {'match' if ok64 else 'MISMATCH'}: "
                    f"{check_line(errs64, CHECK_RTOL_64)}"
                )
                del net64
            sys.stdout.flush()

            load_before = loadavg()
            times = time_rounds(
                calls,
                args.repeats,
                args.warmup,
                args.pause,
                label,
                load,
                quiet_only=tuple(k for k in calls if k.endswith("_t75")),
                prepare=prepare,
            )
            med = {k: summary(v) for k, v in times.items()}
            if torch is not None:  # the strongest torch: the faster thread count, quiet and loaded separately
                for suffix in ("", "_load") if load is not None else ("",):
                    best = min(torch_threads, key=lambda k, s=suffix: med[f"torch{k}{s}"]["median_ms"])
                    med["torch" + suffix] = {**med[f"torch{best}{suffix}"], "threads": best}
                    if not suffix:
                        med["torch_t75"] = med[f"torch{best}_t75"]

            def ms(key, med=med):
                return med[key]["median_ms"] if key in med else None

            entry = {
                "n": n,
                "n_synapses": kinfo["n_synapses"],
                "density": kinfo["density"],
                "kernel_path": kinfo["kernel_path"],
                "gradient_threads": kinfo["gradient_threads"],
                "blas_threads": threads,
                "cortexsim_ms": ms("cortexsim"),
                "torch_ms": ms("torch"),
                "jax_ms": ms("jax"),
            }
            entry["ratio_torch"] = _ratio(entry["cortexsim_ms"], entry["torch_ms"])
            entry["ratio_jax"] = _ratio(entry["cortexsim_ms"], entry["jax_ms"])
            minima = {
                "jax": med["jax"]["min_ms"] if "jax" in med else None,
                "torch": min((med[f"torch{k}"]["min_ms"] for k in torch_threads), default=None),
            }
            for k, v in minima.items():  # secondary: fastest rounds, less sensitive to bursts of other load
                entry[f"ratio_{k}_of_minima"] = _ratio(med["cortexsim"]["min_ms"], v)
            entry["torch_threads"] = med["torch"]["threads"] if "torch" in med else None
            entry["torch_t75_ms"] = ms("torch_t75")
            entry["torch_t150_over_t75"] = _ratio(entry["torch_ms"], entry["torch_t75_ms"])
            if load is not None:
                for k in ("cortexsim", "torch", "jax"):
                    entry[f"{k}_ms_load"] = ms(k + "_load")
                entry["torch_threads_load"] = med["torch_load"]["threads"] if "torch_load" in med else None
                entry["ratio_torch_load"] = _ratio(entry["cortexsim_ms_load"], entry["torch_ms_load"])
                entry["ratio_jax_load"] = _ratio(entry["cortexsim_ms_load"], entry["jax_ms_load"])
                entry["cortexsim_load_over_quiet"] = _ratio(entry["cortexsim_ms_load"], entry["cortexsim_ms"])
            t = entry["cortexsim_ms"] * 1e-3
            entry["gflop_dense_equivalent"] = flops["dense_equivalent"] / 1e9
            entry["gflop_done"] = flops["done"] / 1e9
            entry["gflops_dense_equivalent"] = flops["dense_equivalent"] / t / 1e9
            entry["gflops_done"] = flops["done"] / t / 1e9
            for k in ("torch", "jax"):
                if entry[f"{k}_ms"]:
                    entry[f"{k}_gflops"] = flops["dense_equivalent"] / (entry[f"{k}_ms"] * 1e-3) / 1e9
            entry.update(
                {
                    "flops": flops,
                    "machine_rates": rates,
                    "timing": med,
                    "checks": checks,
                    "mean_rate": stats["mean_rate"],
                    "max_rate": stats["max_rate"],
                    "load_average_before": load_before,
                    "load_average_after": loadavg(),
                }
            )
            results.append(entry)
            line = f"  cortexsim {entry['cortexsim_ms']:.1f} ms"
            for k in ("torch", "jax"):
                if entry[f"{k}_ms"] is not None:
                    line += f", {k} {entry[k + '_ms']:.1f} ms (ratio {entry['ratio_' + k]:.2f})"
            if entry.get("torch_threads"):
                line += (
                    f"; torch fastest with {entry['torch_threads']} thread(s) "
                    + ", ".join(f"{k}: {ms(f'torch{k}'):.1f} ms" for k in torch_threads)
                    + f"; torch t150/t75 {entry['torch_t150_over_t75']:.2f}"
                )
            print(line, flush=True)
            del net, batch, noise, calls
    finally:
        if load is not None:
            load.close()

    def f(v, spec=".1f"):
        return "n/a" if v is None else format(v, spec)

    print(
        f"\nResults (ms per iteration, medians of {args.repeats}; ratio = cortexsim / reference, below 1: "
        f"cortexsim faster; targets: <= {TARGET_TORCH} x torch, <= {TARGET_JAX} x JAX"
        + (f", loaded <= {TARGET_LOAD} x quiet" if args.load else "")
        + ")"
    )
    head = (
        f"{'N':>5} {'synapses':>9} {'path':>6} {'cortexsim':>9} {'torch':>8} {'jax':>8} {'/torch':>7} "
        f"{'/jax':>6} {'t150/t75':>8} {'GF/s eq':>8} {'GF/s done':>9}"
    )
    if args.load:
        head += f" {'cs load':>8} {'torch ld':>8} {'jax load':>8} {'/torch':>7} {'/jax':>6} {'ld/qt':>6}"
    print(head)
    print("-" * len(head))
    for r in results:
        row = (
            f"{r['n']:>5} {r['n_synapses']:>9,} {r['kernel_path']:>6} {f(r['cortexsim_ms']):>9} "
            f"{f(r['torch_ms']):>8} {f(r['jax_ms']):>8} {f(r['ratio_torch'], '.2f'):>7} "
            f"{f(r['ratio_jax'], '.2f'):>6} {f(r['torch_t150_over_t75'], '.2f'):>8} "
            f"{r['gflops_dense_equivalent']:>8.1f} {r['gflops_done']:>9.1f}"
        )
        if args.load:
            row += (
                f" {f(r['cortexsim_ms_load']):>8} {f(r['torch_ms_load']):>8} {f(r['jax_ms_load']):>8} "
                f"{f(r['ratio_torch_load'], '.2f'):>7} {f(r['ratio_jax_load'], '.2f'):>6} "
                f"{f(r['cortexsim_load_over_quiet'], '.2f'):>6}"
            )
        print(row)
    met = {
        "torch": all(r["ratio_torch"] is None or r["ratio_torch"] <= TARGET_TORCH for r in results),
        "jax": all(r["ratio_jax"] is None or r["ratio_jax"] <= TARGET_JAX for r in results),
    }
    if args.load:
        met["load"] = all(r["cortexsim_load_over_quiet"] <= TARGET_LOAD for r in results)
    print("targets   " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    print("GF/s eq = dense-equivalent GFLOP / cortexsim time; GF/s done = GFLOP cortexsim actually does / its time")
    densities = (0.02, 0.04, 0.1, 0.15, 0.2, 0.3)
    grid = "; ".join(
        f"{np.dtype(dt).name} " + " ".join(kernel_path(n, d, dt)[0] for d in densities)
        for dt in (np.float32, np.float64)
        for n in (1024,)
    )
    print(
        f"kernel path rule (any N; s = sparse, d = dense at density {'/'.join(map(str, densities))}): {grid}; "
        f"weight-gradient threads: "
        + ", ".join(f"N={n}: {gradient_threads(n, 0.04, np.float32)}" for n in (128, 256, 1024))
    )
    elapsed = time.perf_counter() - t_start
    load_end = loadavg()
    print(
        f"load average at start {' '.join(map(str, load_start))}, at end {' '.join(map(str, load_end))}; "
        f"total {elapsed:.0f} s; read the ratios, not the absolute times"
    )
    if not all_ok:
        print(
            "REFERENCE MISMATCH: a reference does not compute the same loss/gradients; ratios are not comparable",
            file=sys.stderr,
        )

    if args.json:
        out = {
            "benchmark": "bptt",
            "batch": BATCH,
            "n_steps": N_STEPS,
            "dt": DT,
            "dtype": "float32",
            "noise_std": NOISE_STD,
            "penalties": asdict(penalties),
            "targets": {"ratio_torch": TARGET_TORCH, "ratio_jax": TARGET_JAX, "load_over_quiet": TARGET_LOAD},
            "targets_met": met,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "pause_s": args.pause,
            "seed": args.seed,
            "load": args.load,
            "machine": {
                "machine": platform.machine(),
                "cpu": cpu_model(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "numpy": np.__version__,
            },
            "numpy_blas": blas,
            "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
            "references": info,
            "reference_errors": errors,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "float64_check": check64,
            "all_checks_ok": all_ok,
            "results": results,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"wrote {args.json}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
