"""Time the compare stage's hot analyses against the straightforward code they replaced.

Each contender pair (``ref`` = the plain code, kept here; ``new`` = cortexsim's) is first checked
to give the same numbers (printed: the largest relative difference, and whether the chosen ridge
penalties and p-values are equal), then timed in interleaved rounds (the order alternating from
round to round) and reported as medians with the ratio ref / new. The load average is printed
before and after: the development machine is shared, so read the ratios.

Sizes are the arm study's (``experiments/arm_center_out.toml``): 8 conditions x 176 steps, decoding
from 500, 128 and 40 units, similarity of 10-PC reductions with 20 shuffles, 3 x 10 surrogates.

    .venv/bin/python benchmarks/compare_battery.py [--repeats 5] [--blas-threads 1]
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cortexsim import analysis
from cortexsim.analysis.decoding import DEFAULT_ALPHAS
from cortexsim.battery.measures import SCORE_DIRECTIONS, score_functions, surrogate_columns

CONDITIONS, STEPS, DT = 8, 176, 0.01
dsa_module = importlib.import_module("cortexsim.analysis.dsa")  # the module (analysis.dsa is the function)


# ----------------------------------------------------------------------------- the reference code
def ref_ridge_predict(train_x, train_y, test_x, alphas):
    mu, sd = train_x.mean(axis=0), train_x.std(axis=0)
    sd[sd == 0] = 1.0
    U, s, vt = np.linalg.svd((train_x - mu) / sd, full_matrices=False)
    y_mean = train_y.mean(axis=0)
    uty = U.T @ (train_y - y_mean)
    test_v = ((test_x - mu) / sd) @ vt.T
    shrink = s / (s**2 + alphas[:, None] * train_x.shape[0])
    return y_mean + np.einsum("mr,ar,rd->amd", test_v, shrink, uty)


def _flat(a):
    return a.reshape(-1, a.shape[-1])


def ref_cross_validated(x, y, folds, alphas):
    pred, chosen = np.empty_like(y), np.empty(folds.max() + 1)
    for k in range(chosen.size):
        xt, yt = x[folds != k], y[folds != k]
        n_inner = min(max(2, xt.shape[0] // 2), 5, xt.shape[0])
        inner = np.arange(xt.shape[0]) % n_inner
        sse = np.zeros(alphas.size)
        for j in range(n_inner):
            fit, held = inner != j, inner == j
            p = ref_ridge_predict(_flat(xt[fit]), _flat(yt[fit]), _flat(xt[held]), alphas)
            sse += np.sum((p - _flat(yt[held])) ** 2, axis=(1, 2))
        chosen[k] = alphas[np.flatnonzero(sse <= sse.min() * (1 + 1e-12))].max()
        fit = ref_ridge_predict(_flat(xt), _flat(yt), _flat(x[folds == k]), np.array([chosen[k]]))
        pred[folds == k] = fit[0].reshape(y[folds == k].shape)
    return pred, chosen


def ref_decode(X, pos, rng):
    folds = np.empty(X.shape[0], dtype=int)
    folds[rng.permutation(X.shape[0])] = np.arange(X.shape[0]) % 5
    alphas = np.asarray(DEFAULT_ALPHAS)
    vel = np.gradient(pos, DT, axis=1)
    return ref_cross_validated(X, pos, folds, alphas), ref_cross_validated(X, vel, folds, alphas)


def ref_shuffle_null(metric, X, Y, kind, n, rng):
    def shuffled():
        if kind == "condition":
            return Y[rng.permutation(Y.shape[0])]
        shifts = rng.integers(1, Y.shape[1], size=Y.shape[0])
        return np.stack([np.roll(y, s, axis=0) for y, s in zip(Y, shifts)])

    return float(metric(X, Y)), np.array([float(metric(X, shuffled())) for _ in range(n)])


def ref_surrogate_columns(a, observed, surrogates):
    fns, out = score_functions(min(a.shape[2], 10)), {}
    for method, surr in surrogates.items():
        for key, value in observed.items():
            null = np.array([fns[key](a, s) for s in surr])
            null = null[np.isfinite(null)]
            hits = null >= value if SCORE_DIRECTIONS[key] else null <= value
            out[f"{key}_p_{method}"] = float((1 + np.count_nonzero(hits)) / (1 + null.size))
    return out


def ref_ascend(A, B, C, max_iter, gtol):
    """dsa._ascend as first written (np.eye and np.sum's dispatch at every step)."""

    def cayley(C, W, tau):
        eye = np.eye(C.shape[0])
        return np.linalg.solve(eye - 0.5 * tau * W, (eye + 0.5 * tau * W) @ C)

    def value_and_direction(C):
        G = B @ C @ A.T + B.T @ C @ A
        W = G @ C.T - C @ G.T
        return float(np.sum((C @ A @ C.T) * B)), W

    f, W = value_and_direction(C)
    tau = 1.0 / max(np.linalg.norm(A) * np.linalg.norm(B), 1e-300)
    prev_C = prev_grad = None
    for it in range(max_iter):
        slope = 0.5 * np.sum(W * W)
        if np.sqrt(2 * slope) <= gtol:
            break
        grad = W @ C
        if prev_C is not None:
            S, Y = C - prev_C, grad - prev_grad
            sy = abs(np.sum(S * Y))
            if sy > 0:
                tau = np.sum(S * S) / sy if it % 2 else sy / max(np.sum(Y * Y), 1e-300)
        for _back in range(40):
            C_new = cayley(C, W, tau)
            f_new, W_new = value_and_direction(C_new)
            if f_new >= f + 1e-4 * tau * slope:
                break
            tau *= 0.5
        else:
            break
        prev_C, prev_grad = C, grad
        if f_new - f <= 1e-15 * max(abs(f), 1e-300):
            C, f, W = C_new, f_new, W_new
            break
        C, f, W = C_new, f_new, W_new
    return f, C


def ref_dsa(x, y):
    fast = dsa_module._ascend
    dsa_module._ascend = ref_ascend
    try:
        return analysis.dsa(x, y, n_random=2)
    finally:
        dsa_module._ascend = fast


def ref_decode_seeded(X, pos):
    return ref_decode(X, pos, np.random.default_rng(1))


def new_decode_seeded(X, pos):
    return analysis.decode_kinematics(X, pos, dt=DT, rng=np.random.default_rng(1))


# ----------------------------------------------------------------------------- inputs
def activity(rng, units, latent=6):
    """Smooth condition-dependent trajectories (a rotating latent) embedded in ``units`` plus noise."""
    t = np.arange(STEPS) * DT
    phase = rng.uniform(0, 2 * np.pi, size=(CONDITIONS, 1, latent))
    z = np.sin(2 * np.pi * np.linspace(0.5, 3, latent) * t[:, None] + phase)
    return 10 + z @ rng.normal(size=(latent, units)) + 0.3 * rng.normal(size=(CONDITIONS, STEPS, units)), z


def cases(rng):
    """(name, ref, new, check): check(ref result, new result) -> description of their agreement."""
    out = []
    for units in (500, 128, 40):
        X, z = activity(rng, units)
        pos = np.cumsum(z[..., :2], axis=1) * DT

        def check(r, n):
            (pp, ap), (pv, av) = r
            rel = max(np.max(np.abs(pp - n.predicted_position)) / np.max(np.abs(pp)),
                      np.max(np.abs(pv - n.predicted_velocity)) / np.max(np.abs(pv)))  # fmt: skip
            same = np.array_equal(ap, n.alpha_position) and np.array_equal(av, n.alpha_velocity)
            return f"max rel diff {rel:.1e}, penalties {'equal' if same else 'DIFFER'}", same and rel < 1e-9

        out.append((
            f"decode_kinematics {CONDITIONS}x{STEPS}x{units}",
            functools.partial(ref_decode_seeded, X, pos),
            functools.partial(new_decode_seeded, X, pos),
            check,
        ))  # fmt: skip
    a, _ = activity(rng, 10)
    b = a @ rng.normal(size=(10, 10)) + 3 * rng.normal(size=a.shape)
    a, b = analysis.pca(a, 10).project(a), analysis.pca(b, 10).project(b)
    metrics = {"cca": functools.partial(analysis.cca_similarity, k=10), "shape_distance": analysis.shape_distance,
               "cka": analysis.linear_cka, "rsa": analysis.rsa}  # fmt: skip

    def null_check(r, n):
        rel = max(np.max(np.abs(x.null - y[1]) / np.abs(y[1])) for x, y in zip(n, r))
        same = all(x.observed == y[0] for x, y in zip(n, r))
        return f"max rel diff {rel:.1e}, observed {'equal' if same else 'DIFFER'}", same and rel < 1e-9

    jobs = [(m, k) for m in metrics for k in (("condition", "time") if m == "cca" else ("condition",))]
    out.append((
        "shuffle_null x5 (cca cond+time, shape, cka, rsa; 20 shuffles)",
        lambda: [ref_shuffle_null(metrics[m], a, b, k, 20, np.random.default_rng(2)) for m, k in jobs],
        lambda: [analysis.shuffle_null(metrics[m], a, b, kind=k, n=20, rng=np.random.default_rng(2),
                                       higher_is_more_similar=SCORE_DIRECTIONS[m]) for m, k in jobs],
        null_check,
    ))  # fmt: skip
    surrogates = {m: b + s * rng.normal(size=(10, *b.shape)) for m, s in (("tme", 1.0), ("cfr", 2.0), ("cmpt", 4.0))}
    fns = score_functions(10)
    observed = {key: fns[key](a, b) for key in ("cca", "shape_distance", "cka", "rsa")}
    out.append((
        "surrogate_columns (4 scores x 3 x 10 surrogates)",
        lambda: ref_surrogate_columns(a, observed, surrogates),
        lambda: surrogate_columns(a, b, observed, surrogates),
        lambda r, n: ("p-values equal" if r == n else "p-values DIFFER", r == n),
    ))  # fmt: skip
    c = a + 0.5 * rng.normal(size=a.shape)
    out.append((
        "dsa (10 PCs, 2 random starts)",
        lambda: ref_dsa(a, c),
        lambda: analysis.dsa(a, c, n_random=2),
        lambda r, n: (f"distance {'equal' if r.distance == n.distance else 'DIFFERS'}", r.distance == n.distance),
    ))  # fmt: skip
    return out


def timed(fn) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (medians)")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads (the battery runs beside the fixed-point searches under 1)",
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; BLAS threads {args.blas_threads}")
    ok = True
    with threadpool_limits(args.blas_threads):
        for name, ref, new, check in cases(np.random.default_rng(0)):
            verdict, good = check(ref(), new())
            ok &= good
            times = {"ref": [], "new": []}
            for i in range(args.repeats):
                for label, fn in (("ref", ref), ("new", new)) if i % 2 == 0 else (("new", new), ("ref", ref)):
                    times[label].append(timed(fn))
            r, n = statistics.median(times["ref"]), statistics.median(times["new"])
            print(f"{name:62s} ref {r * 1e3:9.1f} ms  new {n * 1e3:8.1f} ms  x{r / n:6.1f}  [{verdict}]", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
