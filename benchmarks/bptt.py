#!/usr/bin/env python
"""Benchmark: one BPTT training iteration of :class:`cortexsim.rate.RateNetwork`.

One iteration = ``net.loss_and_grad(batch, Penalties(), noise)``: forward pass,
loss and the exact gradient of every parameter group, for a batch of 64
center-out trials of 150 steps, float32, at N = 256, 512 and 1024 units of the
default M1 connectome.

Every number is judged against a reference measured in the same run, because the
machine is shared and its speed drifts:

* PyTorch CPU autograd on the identical network and loss, when ``import torch``
  works (torch is optional and never a dependency of cortexsim).  Before timing,
  the torch loss and every gradient group are compared with cortexsim's
  (relative error < 1e-3 in float32): the ratio is only meaningful if they match.
* otherwise a naive per-trial numpy loop (same math, no batching over trials),
  timed on a few trials and scaled to the batch.

It also measures the machine's float32 matmul rate (sgemm, square 1024 and the
(64, N) @ (N, N) shape of the recurrence) and reports the effective GFLOP/s of
cortexsim's iteration (matmul flops only) as a share of it, and which BLAS
library and kernel ran.  Timings are medians of several repeats, cortexsim and
reference interleaved so that both see the same background load.

Run from the repository root::

    python benchmarks/bptt.py                       # N = 256, 512, 1024; about 2 minutes
    python benchmarks/bptt.py --sizes 256 --repeats 3 --json bptt.json

The script never changes ``OPENBLAS_CORETYPE`` or any thread variable; it
reports them.  Exit status 1 if the reference does not match cortexsim.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from cortexsim.anatomy import default_m1_spec
from cortexsim.circuit import build_connectome
from cortexsim.rate import GROUPS, Penalties, RateNetwork
from cortexsim.tasks import CenterOutTask, TrialBatch
from cortexsim.transfer import Softplus, make_transfer

BATCH = 64
N_STEPS = 150
DT = 0.01
NOISE_STD = 1.5
TARGET_RATIO = 0.8
CHECK_RTOL_32 = 1e-3
CHECK_RTOL_64 = 1e-8
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


# -- machine -------------------------------------------------------------------------
def numpy_blas_info() -> dict:
    """numpy's BLAS as threadpoolctl sees it, plus the environment variables that steer it."""
    info: dict = {"env": {k: os.environ.get(k) for k in ENV_VARS}}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        info["error"] = "threadpoolctl is not installed (pip install -e '.[bench]'); BLAS kernel unknown"
        return info
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    mine = [lib for lib in blas if "numpy" in lib.get("filepath", "")] or blas
    if not mine:
        info["error"] = "threadpoolctl found no BLAS library"
        return info
    lib = mine[0]
    info.update({k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                         "threading_layer", "filepath")})
    info["other_blas"] = [f"{b.get('internal_api')} {b.get('version')} ({b.get('filepath')})"
                          for b in blas if b is not lib]
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
    return (f"{info['internal_api']} {info['version']}, kernel {info['architecture']}, "
            f"{info['num_threads']} threads ({info['threading_layer']})")


def _rate_samples(call: Callable[[], object], flops: float, repeats: int, min_time: float = 0.05) -> list[float]:
    """GFLOP/s of ``call`` over ``repeats`` samples, each running long enough to time."""
    call()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time or calls >= 1 << 16:
            break
        calls *= 2
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        out.append(calls * flops / (time.perf_counter() - t0) / 1e9)
    return out


def sgemm_gflops(m: int, k: int, n: int, repeats: int, rng: np.random.Generator) -> dict:
    """numpy float32 matmul (m, k) @ (k, n): median and best GFLOP/s."""
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    samples = _rate_samples(lambda: np.matmul(a, b, out=c), 2.0 * m * k * n, repeats)
    return {"shape": f"({m},{k})@({k},{n})", "median": statistics.median(samples), "best": max(samples)}


def torch_sgemm_gflops(torch, n: int, repeats: int) -> dict:
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    samples = _rate_samples(lambda: torch.matmul(a, b, out=c), 2.0 * n**3, repeats)
    return {"shape": f"({n},{n})@({n},{n})", "median": statistics.median(samples), "best": max(samples)}


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
    noise = net.noise(BATCH, N_STEPS, rng)
    w = net.params["w"].astype(np.float64)
    w_ref = float(np.sqrt(np.sum(w**2) / max(int(net.mask.sum()), 1)))
    return net, batch, noise, w_ref


def twin(net: RateNetwork, dtype) -> RateNetwork:
    """The same network (connectome, parameters) in another dtype."""
    other = RateNetwork(net.connectome, net.transfer, dt=net.dt, input_groups=net.input_groups,
                        n_outputs=net.n_outputs, noise_std=net.noise_std, dtype=dtype,
                        output_scale=net.output_scale)
    other.set_params(net.params)
    return other


def sub_batch(batch: TrialBatch, k: int) -> TrialBatch:
    return TrialBatch(batch.inputs[:k], batch.targets[:k], batch.mask[:k], batch.dt)


def iteration_flops(net: RateNetwork, n_trials: int, n_steps: int) -> dict[str, float]:
    """Matmul flops of one loss_and_grad (elementwise work not counted)."""
    n, n_in, n_read, n_out = net.n_units, net.n_inputs, net.out_idx.size, net.n_outputs
    tb, tb1 = n_steps * n_trials, (n_steps - 1) * n_trials
    parts = {
        "forward_recurrent": 2.0 * tb1 * n * n,   # r[t] @ W^T, t < T-1
        "backward_recurrent": 2.0 * tb1 * n * n,  # dL/dx[t+1] @ W
        "weight_gradient": 2.0 * tb1 * n * n,     # sum_t dL/dx[t+1]^T r[t]
        "small": 2.0 * tb * n * n_in + 2.0 * tb1 * n * n_in + 3 * 2.0 * tb * n_read * n_out,
    }
    parts["total"] = sum(parts.values())
    return parts


# -- references ---------------------------------------------------------------------------
class TorchReference:
    """The same network, loss and parameters in PyTorch; gradients by autograd."""

    def __init__(self, torch, net: RateNetwork, batch: TrialBatch, noise: np.ndarray, w_ref: float,
                 penalties: Penalties):
        if not isinstance(net.transfer, Softplus):
            raise TypeError(f"torch reference implements the softplus transfer only, not {net.transfer.name}")
        self.torch = torch
        self.F = torch.nn.functional
        dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[net.dtype]

        def tensor(a):
            return torch.tensor(np.asarray(a, dtype=net.dtype), dtype=dtype)

        self.params = {k: tensor(net.params[k]).requires_grad_(True) for k in GROUPS}
        self.mask = tensor(net.mask)
        self.sign = tensor(net.sign)
        self.alpha = tensor(net.alpha)
        self.leak = tensor((1.0 - net.alpha).astype(net.dtype))
        self.in_mask = tensor(net.in_mask)
        self.out_idx = torch.as_tensor(net.out_idx, dtype=torch.long)
        self.u = tensor(batch.inputs.transpose(1, 0, 2))       # (time, trials, inputs)
        self.target = tensor(batch.targets.transpose(1, 0, 2))  # (time, trials, outputs)
        self.tmask = tensor(batch.mask.transpose(1, 0, 2))
        self.noise = tensor(noise)                               # (time, trials, units)
        phi = net.transfer
        self.gain, self.threshold, self.softness = phi.gain, phi.threshold, phi.softness
        self.scale = net.output_scale**2
        self.n_syn = max(int(net.mask.sum()), 1)
        self.w_ref = w_ref
        self.pen = penalties

    def loss(self):
        torch, F, p, pen = self.torch, self.F, self.params, self.pen
        alpha = self.alpha
        w_signed = p["w"] * self.mask * self.sign[None, :]          # W[post, pre]
        wt_alpha = (w_signed * alpha[:, None]).t()
        drive = self.u @ (p["w_in"] * self.in_mask * alpha[:, None]).t() + alpha * p["b"] + self.noise
        n_steps, n_trials, n = self.noise.shape
        x = p["x0"].expand(n_trials, n)
        rates = []
        for t in range(n_steps):
            r = (self.gain * self.softness) * F.softplus((x - self.threshold) / self.softness)
            rates.append(r)
            if t + 1 < n_steps:
                x = self.leak * x + drive[t] + r @ wt_alpha
        rates = torch.stack(rates)
        y = rates[:, :, self.out_idx] @ p["w_out"].t() + p["b_out"]
        err = (y - self.target) * self.tmask
        count = torch.clamp(self.tmask.sum(), min=1.0)
        task = (err**2).sum() / (count * self.scale)
        rate = pen.rate_l2 * (rates**2).mean() + pen.rate_cap_l2 * (F.relu(rates - pen.rate_cap) ** 2).mean()
        weight = pen.weight_l2 * (p["w"] ** 2).sum() / (self.n_syn * self.w_ref**2)
        return task + rate + weight

    def loss_and_grad(self) -> tuple[float, dict[str, np.ndarray]]:
        for v in self.params.values():
            v.grad = None
        loss = self.loss()
        loss.backward()
        return float(loss.item()), {k: v.grad.numpy().copy() for k, v in self.params.items()}


def naive_loss_and_grad(net: RateNetwork, batch: TrialBatch, noise: np.ndarray, w_ref: float,
                        pen: Penalties) -> tuple[float, dict[str, np.ndarray]]:
    """cortexsim's loss and gradients, one trial at a time (vector-matrix steps, no batching)."""
    p, alpha, phi, dt_ = net.params, net.alpha, net.transfer, net.dtype
    leak = (1.0 - alpha).astype(dt_)
    w_signed = net.signed_weight()
    n_trials, n_steps, _ = batch.inputs.shape
    n, out_idx = net.n_units, net.out_idx
    u_all = batch.inputs.astype(dt_)
    count = max(float(batch.mask.sum()), 1.0)
    scale = net.output_scale**2
    size = n_steps * n_trials * n
    acc_w = np.zeros((n, n), dt_)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    loss = 0.0
    for k in range(n_trials):
        u = u_all[k]
        x = np.empty((n_steps, n), dt_)
        r = np.empty((n_steps, n), dt_)
        x[0] = p["x0"]
        for t in range(n_steps):
            r[t] = phi(x[t])
            if t + 1 < n_steps:
                x[t + 1] = leak * x[t] + alpha * (w_signed @ r[t] + p["w_in"] @ u[t] + p["b"]) + noise[t, k]
        y = r[:, out_idx] @ p["w_out"].T + p["b_out"]
        err = (y - batch.targets[k]) * batch.mask[k]
        over = np.maximum(r - pen.rate_cap, 0.0)
        loss += (float(np.sum(err**2)) / (count * scale) + pen.rate_l2 * float(np.sum(r * r)) / size
                 + pen.rate_cap_l2 * float(np.sum(over**2)) / size)
        dy = (2.0 / (count * scale)) * err
        gr = (2.0 * pen.rate_l2 / size) * r + (2.0 * pen.rate_cap_l2 / size) * over
        gr[:, out_idx] += dy @ p["w_out"]
        dphi = phi.derivative(x)
        gx = np.empty((n_steps, n), dt_)
        gx[-1] = gr[-1] * dphi[-1]
        for t in range(n_steps - 2, -1, -1):
            gx[t] = (gr[t] + (alpha * gx[t + 1]) @ w_signed) * dphi[t] + leak * gx[t + 1]
        acc_w += gx[1:].T @ r[:-1]
        grads["w_in"] += (gx[1:].T @ u[:-1]) * alpha[:, None]
        grads["b"] += gx[1:].sum(0) * alpha
        grads["w_out"] += dy.T @ r[:, out_idx]
        grads["b_out"] += dy.sum(0)
        grads["x0"] += gx[0]
    n_syn = max(int(net.mask.sum()), 1)
    grads["w"] = (acc_w * alpha[:, None]) * net.sign[None, :] * net.mask + (
        2.0 * pen.weight_l2 / (n_syn * w_ref**2)) * p["w"]
    grads["w_in"] *= net.in_mask
    loss += pen.weight_l2 * float(np.sum(p["w"].astype(np.float64) ** 2)) / (n_syn * w_ref**2)
    return loss, grads


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
    parts = [f"{k} {v:.1e}{'' if v < rtol else ' FAIL'}" for k, v in errs.items()]
    return ", ".join(parts)


# -- timing ------------------------------------------------------------------------------
def time_interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int, pause: float,
                     label: str, scales: dict[str, float]) -> dict[str, list[float]]:
    """Wall time (s) of each call times its scale, ``warmup`` untimed then ``repeats`` timed rounds.

    The order of the calls alternates from round to round.
    """
    names = list(calls)
    times: dict[str, list[float]] = {k: [] for k in names}
    for i in range(warmup + repeats):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            time.sleep(pause)  # let BLAS/OpenMP worker threads of the other library go idle
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                calls[name]()
                elapsed = time.perf_counter() - t0
            finally:
                gc.enable()
            if i >= warmup:
                times[name].append(elapsed * scales.get(name, 1.0))
        if i < warmup:
            progress(f"{label}: warm-up round {i + 1}/{warmup}")
        else:
            last = ", ".join(f"{k} {times[k][-1] * 1e3:.0f} ms" for k in names)
            progress(f"{label}: timed round {i + 1 - warmup}/{repeats} ({last})")
    return times


def summary(samples: list[float]) -> dict[str, float | list[float]]:
    ms = [s * 1e3 for s in samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "samples_ms": ms}


# -- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="network sizes N")
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per size (median quoted)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    ap.add_argument("--reference", choices=("auto", "torch", "numpy"), default="auto",
                    help="torch autograd (auto: if importable) or the naive per-trial numpy loop")
    ap.add_argument("--naive-trials", type=int, default=2,
                    help="trials the naive numpy reference runs per timing (scaled to the batch)")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds of idle before each timed call")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or not 1 <= args.naive_trials <= BATCH:
        ap.error("need --repeats >= 1, --warmup >= 0 and 1 <= --naive-trials <= 64")

    t_start = time.perf_counter()
    blas = numpy_blas_info()  # before torch is imported, so that only numpy's and scipy's libraries show
    penalties = Penalties()

    torch, torch_error = None, None
    if args.reference in ("auto", "torch"):
        try:
            import torch  # optional; never a dependency of cortexsim
        except Exception as exc:  # ImportError, or a broken install failing to load its libraries
            torch, torch_error = None, f"{type(exc).__name__}: {exc}"
            if args.reference == "torch":
                print(f"--reference torch: cannot import torch ({torch_error})", file=sys.stderr)
                return 2
    use_torch = torch is not None
    torch_info: dict = {}
    if use_torch:
        default_threads = torch.get_num_threads()
        if blas.get("num_threads"):
            torch.set_num_threads(int(blas["num_threads"]))
        cfg = torch.__config__.show()
        blas_tag = next((s.split("=", 1)[1] for s in cfg.replace(",", "\n").split() if s.startswith("BLAS_INFO=")),
                        "unknown")
        cap = next((ln.split(":", 1)[1].strip() for ln in cfg.splitlines() if "CPU capability" in ln), "unknown")
        torch_info = {"version": torch.__version__, "blas": blas_tag, "cpu_capability": cap,
                      "num_threads": torch.get_num_threads(), "default_num_threads": default_threads}

    rng = np.random.default_rng(args.seed)
    progress("measuring float32 matmul rate (numpy sgemm)")
    peak = sgemm_gflops(1024, 1024, 1024, 7, rng)
    shape_rate = {n: sgemm_gflops(BATCH, n, n, 7, rng) for n in args.sizes}
    if blas.get("num_threads", 1) > 1:  # diagnostic only: threading overhead on the small per-step matmul
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1, user_api="blas"):
            for n in args.sizes:
                shape_rate[n]["one_thread"] = sgemm_gflops(BATCH, n, n, 7, rng)["median"]
    torch_peak = torch_sgemm_gflops(torch, 1024, 7) if use_torch else None

    print("BPTT benchmark: RateNetwork.loss_and_grad, one training iteration (forward + backward)")
    print(f"  batch {BATCH} trials x {N_STEPS} steps (dt {DT * 1e3:g} ms), float32, default M1 connectome, "
          f"lif_softplus, noise_std {NOISE_STD} mV, Penalties() defaults")
    print(f"  machine   {cpu_model()} ({platform.machine()}) | {os.cpu_count()} CPUs | "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} | python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"  numpy BLAS {blas_line(blas)}")
    if blas.get("filepath"):
        print(f"             {blas['filepath']}")
    print("  env       " + "  ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in blas["env"].items()))
    print(f"  sgemm     numpy {peak['shape']}: {peak['median']:.1f} GFLOP/s median (best {peak['best']:.1f})"
          " <- 'peak' below")
    for s in shape_rate.values():
        one = f", {s['one_thread']:.1f} with 1 BLAS thread" if s.get("one_thread") else ""
        print(f"            numpy {s['shape']}: {s['median']:.1f} GFLOP/s median{one} (the recurrence's shape)")
    if use_torch:
        print(f"  reference PyTorch {torch_info['version']} CPU autograd, BLAS {torch_info['blas']}, "
              f"{torch_info['cpu_capability']}, {torch_info['num_threads']} threads "
              f"(set equal to numpy's BLAS threads; torch default {torch_info['default_num_threads']})")
        print(f"            torch {torch_peak['shape']}: {torch_peak['median']:.1f} GFLOP/s median")
    else:
        why = f" (torch unavailable: {torch_error})" if torch_error else ""
        print(f"  reference naive per-trial numpy loop, timed on {args.naive_trials} trials and scaled "
              f"to {BATCH}{why}")
    print(f"  timing    median of {args.repeats} after {args.warmup} warm-ups, cortexsim and reference "
          f"interleaved, {args.pause:g} s idle before each call", flush=True)

    results, all_ok, check64 = [], True, None
    for idx, n in enumerate(args.sizes):
        label = f"N={n}"
        progress(f"{label}: building network and batch")
        net, batch, noise, w_ref = make_problem(n, args.seed + n)
        flops = iteration_flops(net, BATCH, N_STEPS)

        def cortexsim_iteration(net=net, batch=batch, noise=noise, w_ref=w_ref):
            return net.loss_and_grad(batch, penalties, noise, w_ref=w_ref)

        # -- correctness: the reference must be the identical network
        progress(f"{label}: checking reference loss and gradients against cortexsim")
        if use_torch:
            ref = TorchReference(torch, net, batch, noise, w_ref, penalties)
            loss_cs, grads_cs, stats = cortexsim_iteration()
            grads_cs = {k: v.copy() for k, v in grads_cs.items()}
            loss_ref, grads_ref = ref.loss_and_grad()
            reference_iteration, ref_scale = ref.loss_and_grad, 1.0
        else:
            k = args.naive_trials
            small, small_noise = sub_batch(batch, k), np.ascontiguousarray(noise[:, :k])
            loss_cs, grads_cs, stats = net.loss_and_grad(small, penalties, small_noise, w_ref=w_ref)
            grads_cs = {g: v.copy() for g, v in grads_cs.items()}
            loss_ref, grads_ref = naive_loss_and_grad(net, small, small_noise, w_ref, penalties)

            def reference_iteration(net=net, small=small, small_noise=small_noise, w_ref=w_ref):
                return naive_loss_and_grad(net, small, small_noise, w_ref, penalties)
            ref_scale = BATCH / k
        errs = compare(loss_cs, grads_cs, loss_ref, grads_ref)
        ok = all(v < CHECK_RTOL_32 for v in errs.values())
        all_ok &= ok
        rates = net._buffers["r"]
        over_cap = float(np.mean(rates > penalties.rate_cap))
        print(f"\n[N={n}] {net}")
        print(f"  float32 check vs {'torch' if use_torch else 'naive numpy'} (rel. error, tol {CHECK_RTOL_32:g}): "
              f"{'match' if ok else 'MISMATCH'}\n    {check_line(errs, CHECK_RTOL_32)}")
        print(f"  rates: mean {stats['mean_rate']:.2f} Hz, max {stats['max_rate']:.1f} Hz, "
              f"{100 * over_cap:.2f}% above the {penalties.rate_cap:g} Hz cap; loss {loss_cs:.6g}", flush=True)

        if idx == 0:  # float64 cross-check: separates a real discrepancy from float32 rounding
            progress(f"{label}: float64 cross-check")
            net64 = twin(net, np.float64)
            noise64 = noise.astype(np.float64)
            if use_torch:
                l64, g64, _ = net64.loss_and_grad(batch, penalties, noise64, w_ref=w_ref)
                lr64, gr64 = TorchReference(torch, net64, batch, noise64, w_ref, penalties).loss_and_grad()
            else:
                small, k = sub_batch(batch, args.naive_trials), args.naive_trials
                l64, g64, _ = net64.loss_and_grad(small, penalties, noise64[:, :k], w_ref=w_ref)
                lr64, gr64 = naive_loss_and_grad(net64, small, noise64[:, :k], w_ref, penalties)
            errs64 = compare(l64, g64, lr64, gr64)
            ok64 = all(v < CHECK_RTOL_64 for v in errs64.values())
            all_ok &= ok64
            check64 = {"n_units": n, "rel_errors": errs64, "ok": ok64, "tol": CHECK_RTOL_64}
            print(f"  float64 check (tol {CHECK_RTOL_64:g}): {'match' if ok64 else 'MISMATCH'}\n"
                  f"    {check_line(errs64, CHECK_RTOL_64)}", flush=True)
            del net64

        # -- timing
        # with torch, the check above ran both full-batch iterations once: it counts as the first warm-up
        warmup = max(args.warmup - 1, 0) if use_torch else args.warmup
        times = time_interleaved({"cortexsim": cortexsim_iteration, "reference": reference_iteration},
                                 args.repeats, warmup, args.pause, label, {"reference": ref_scale})
        cs, rf = summary(times["cortexsim"]), summary(times["reference"])
        ratio = cs["median_ms"] / rf["median_ms"]
        ratio_min = cs["min_ms"] / rf["min_ms"]  # secondary: best case of each, less sensitive to bursts of load
        eff = flops["total"] / (cs["median_ms"] * 1e-3) / 1e9
        ref_eff = flops["total"] / (rf["median_ms"] * 1e-3) / 1e9
        results.append({
            "n_units": n, "n_synapses": int(net.mask.sum()), "gflop_per_iter": flops["total"] / 1e9,
            "flops": flops, "cortexsim": cs, "reference": rf, "ratio": ratio, "ratio_of_minima": ratio_min,
            "meets_target": bool(ratio <= TARGET_RATIO) if use_torch else None,
            "effective_gflops": eff, "reference_gflops": ref_eff,
            "percent_of_peak": 100 * eff / peak["median"],
            "percent_of_shape_rate": 100 * eff / shape_rate[n]["median"],
            "check": {"rel_errors": errs, "ok": ok, "tol": CHECK_RTOL_32},
            "mean_rate": stats["mean_rate"], "max_rate": stats["max_rate"], "fraction_over_cap": over_cap,
            "load_average_after": list(os.getloadavg()),
        })
        print(f"  cortexsim {cs['median_ms']:.1f} ms, reference {rf['median_ms']:.1f} ms -> ratio {ratio:.2f}",
              flush=True)
        del net, batch, noise

    ref_name = "torch" if use_torch else "naive"
    print(f"\nResults (ms per iteration: median [min-max] of {args.repeats}; ratio = cortexsim / {ref_name}, "
          f"target <= {TARGET_RATIO};\n (min) = ratio of the fastest runs; GFLOP/s counts matmul flops only; "
          f"peak = numpy sgemm 1024^3 {peak['median']:.1f} GFLOP/s)")
    head = (f"{'N':>5} {'synapses':>9} {'cortexsim ms':>22} {ref_name + ' ms':>22} {'ratio':>6} {'target':>6} "
            f"{'(min)':>6} {'GFLOP':>6} {'GFLOP/s':>8} {'%peak':>6} {'grad check':>11}")
    print(head)
    print("-" * len(head))
    verdict = {True: "met", False: "MISS", None: "n/a"}  # the target is defined against torch only
    for r in results:
        cs, rf = r["cortexsim"], r["reference"]
        cs_txt = f"{cs['median_ms']:.1f} [{cs['min_ms']:.0f}-{cs['max_ms']:.0f}]"
        rf_txt = f"{rf['median_ms']:.1f} [{rf['min_ms']:.0f}-{rf['max_ms']:.0f}]"
        worst = max(r["check"]["rel_errors"].values())
        print(f"{r['n_units']:>5} {r['n_synapses']:>9,} {cs_txt:>22} {rf_txt:>22} {r['ratio']:>6.2f} "
              f"{verdict[r['meets_target']]:>6} {r['ratio_of_minima']:>6.2f} {r['gflop_per_iter']:>6.1f} "
              f"{r['effective_gflops']:>8.1f} {r['percent_of_peak']:>5.0f}% "
              f"{('ok ' if r['check']['ok'] else 'BAD ') + f'{worst:.0e}':>11}")
    elapsed = time.perf_counter() - t_start
    print(f"\nload average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total {elapsed:.0f} s; "
          f"{os.cpu_count()} CPUs shared, so read the ratios, not the absolute times")
    if not all_ok:
        print("REFERENCE MISMATCH: the reference does not compute the same loss/gradients; ratios are not "
              "comparable", file=sys.stderr)

    if args.json:
        out = {
            "benchmark": "bptt", "batch": BATCH, "n_steps": N_STEPS, "dt": DT, "dtype": "float32",
            "noise_std": NOISE_STD, "penalties": asdict(penalties), "target_ratio": TARGET_RATIO,
            "repeats": args.repeats, "warmup": args.warmup, "pause_s": args.pause, "seed": args.seed,
            "reference": "torch" if use_torch else "naive_numpy",
            "naive_trials": None if use_torch else args.naive_trials,
            "machine": {"machine": platform.machine(), "cpu": cpu_model(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "numpy": np.__version__},
            "numpy_blas": blas, "torch": torch_info or None, "torch_error": torch_error,
            "sgemm_gflops": {"square_1024": peak, "recurrence_shape": {str(n): s for n, s in shape_rate.items()},
                             "torch_square_1024": torch_peak},
            "float64_check": check64, "all_checks_ok": all_ok, "results": results, "elapsed_s": elapsed,
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"wrote {args.json}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
