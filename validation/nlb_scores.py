"""Validation: cortexsim.score's measures against nlb_tools' own functions (Neural Latents Benchmark).

``cortexsim.score`` re-implements ``nlb_tools.evaluation``'s (release 0.0.4, the one on PyPI)
``bits_per_spike``, ``eval_psth`` and ``fit_and_eval_decoder`` with numpy only (nlb_tools pulls
in scikit-learn and pandas and is not a cortexsim dependency).  This script draws random Poisson
data of NLB's shapes (trials x 5 ms bins x neurons, with partly informative predicted rates),
computes every measure both ways and prints the differences.  Exit status 0 when each agrees to
``--tolerance``, 1 otherwise, 2 when nlb_tools cannot be imported.

Install nlb_tools into a separate environment with cortexsim (``pip install nlb-tools`` then
``pip install -e /path/to/cortexsim``), or into this one, and run::

    python validation/nlb_scores.py [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from cortexsim import score


def _data(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    trials, bins, neurons = 60, 140, 30
    latent = np.cumsum(rng.standard_normal((trials, bins, 4)), axis=1) / 10
    true = np.exp(latent @ rng.standard_normal((4, neurons)) * 0.5 - 2.5)  # spikes per 5 ms bin
    spikes = rng.poisson(true).astype(float)
    rates = np.clip(true * rng.lognormal(0, 0.3, true.shape), 0, None)  # a noisy prediction
    rates[0, 0, 0] = 0.0  # one zero rate: both replace it by 1e-9
    behavior = latent[..., :2] @ rng.standard_normal((2, 2)) + 0.05 * rng.standard_normal((trials, bins, 2))
    cond = np.arange(trials) % 4
    psth = np.stack([true[cond == c].mean(axis=0) for c in range(4)])  # 4 conditions
    idx = [np.flatnonzero(cond == c) for c in range(4)]
    return {"spikes": spikes, "rates": rates, "behavior": behavior, "psth": psth, "idx": idx}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.add_argument("--json", help="write the numbers to this file")
    args = p.parse_args(argv)
    try:
        from nlb_tools import evaluation as nlb
    except ImportError as exc:
        print(f"nlb_tools cannot be imported ({exc}); pip install nlb-tools (see the docstring)", file=sys.stderr)
        return 2
    d = _data(args.seed)
    train, test = slice(0, 45), slice(45, 60)
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    rows = [
        (
            "bits_per_spike",
            score.bits_per_spike(d["rates"], d["spikes"]),
            nlb.bits_per_spike(d["rates"].copy(), d["spikes"]),
        ),
        ("eval_psth", score.eval_psth(d["psth"], d["rates"], d["idx"]), nlb.eval_psth(d["psth"], d["rates"], d["idx"])),
        (
            "fit_and_eval_decoder",
            score.fit_and_eval_decoder(
                flat(d["rates"][train]), flat(d["behavior"][train]), flat(d["rates"][test]), flat(d["behavior"][test])
            ),
            nlb.fit_and_eval_decoder(
                flat(d["rates"][train]), flat(d["behavior"][train]), flat(d["rates"][test]), flat(d["behavior"][test])
            ),
        ),
    ]
    ok = True
    print(f"{'measure':22s} {'cortexsim':>14s} {'nlb_tools':>14s} {'difference':>12s}")
    for name, ours, theirs in rows:
        diff = abs(float(ours) - float(theirs))
        ok &= diff <= args.tolerance
        print(f"{name:22s} {float(ours):14.8f} {float(theirs):14.8f} {diff:12.2e}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({n: {"cortexsim": float(a), "nlb_tools": float(b)} for n, a, b in rows}, fh, indent=1)
    print("agree" if ok else f"DISAGREE beyond {args.tolerance:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
