"""Validation: cortexsim.effector against MotorNet's RigidTendonArm26, plus integrator accuracy and speed.

Three parts, each printed as a table (and written to ``--json``):

1. **Integrator accuracy** (cortexsim alone): hand-path error of each method and sub-step count
   against RK4 at 0.2 ms, on the same movements as part 2.
2. **MotorNet** (when it can be run): the same excitation patterns through MotorNet 0.3's
   ``RigidTendonArm26(muscle=RigidTendonHillMuscle())``, from the same posture (shoulder 45 deg,
   elbow 90 deg, at rest, activation 0.001).  Reported: the hand-path difference over the first
   0.3 s and over the whole movement, (a) as each simulator is normally used (Euler, 5 x 2 ms)
   and (b) with both integrated finely (cortexsim RK4 at 0.2 ms; MotorNet Euler at 0.2 and 0.1 ms
   and their Richardson extrapolation, which cancels the first-order error of MotorNet's Euler),
   which separates the models from the integrators.  (MotorNet's own RK4 is not used as a
   reference: each of its stages evaluates muscle force on the geometry of the stage's start,
   so it converges at first order only.)
3. **Speed**: ``simulate_arm`` for 64 trials x 176 steps x 5 sub-steps.

Movements: ``--trials`` excitation patterns, each a 150 ms burst of random excitations (up to 0.2)
on a random subset of muscles, then a 100 ms burst of others, then a low co-contraction (0.02-0.05)
to the end (``--duration``, default 1 s, dt = 10 ms).  Candidates whose reference path comes
within 0.1 rad of a joint limit are skipped (MotorNet clips at the limits, cortexsim has smooth
passive limit torques: the models differ there by design), and so are those whose hand moves
less than 10 cm.

MotorNet is not a dependency of cortexsim.  It pulls in torch and gymnasium (and numpy >= 2.4,
with which brian2 2.9 does not import), so install it into a separate environment::

    python3 -m venv /tmp/mnvenv && /tmp/mnvenv/bin/pip install motornet

and point this script at that interpreter (it re-runs its MotorNet part there, exchanging .npz
files; that part imports only numpy, torch and motornet)::

    .venv/bin/python validation/arm26_motornet.py --motornet-python /tmp/mnvenv/bin/python

Without MotorNet the script runs parts 1 and 3 and says how to install it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DT = 0.01


def _patterns(n_candidates: int, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Candidate excitation patterns, shape (candidates, time, 6)."""
    u = np.zeros((n_candidates, n_steps, 6))
    for k in range(n_candidates):
        first = rng.uniform(0, 0.2, 6) * (rng.random(6) < 0.5)
        second = rng.uniform(0, 0.2, 6) * (rng.random(6) < 0.5)
        hold = rng.uniform(0.02, 0.05, 6)
        u[k, :15] = first
        u[k, 15:25] = second
        u[k, 25:] = hold
    return u


def _worker(path_in: str, path_out: str) -> None:
    """Run MotorNet on the patterns in ``path_in`` (no cortexsim import), save hands to ``path_out``."""
    import motornet as mn
    import torch

    torch.set_default_dtype(torch.float64)
    data = np.load(path_in)
    u = data["excitation"]
    n, T, _ = u.shape
    q0 = data["q0"]
    out = {"version": np.array(getattr(mn, "__version__", "unknown"))}
    for name, method, ministeps in (("euler5", "euler", 5), ("euler50", "euler", 50), ("euler100", "euler", 100)):
        eff = mn.effector.RigidTendonArm26(
            muscle=mn.muscle.RigidTendonHillMuscle(), timestep=DT, n_ministeps=ministeps, integration_method=method
        ).double()
        joint = torch.tensor(np.concatenate([q0, np.zeros_like(q0)], 1), dtype=torch.float64)
        eff.reset(options={"batch_size": n, "joint_state": joint})
        # reset casts the joint state to float32; rebuild the whole state in float64
        joint = torch.tensor(np.concatenate([q0, np.zeros_like(q0)], 1), dtype=torch.float64)
        geometry = eff.get_geometry(joint)
        muscle = eff.muscle.get_initial_muscle_state(batch_size=n, geometry_state=geometry)
        eff._set_state({"joint": joint, "muscle": muscle, "geometry": geometry})
        hand = np.empty((n, T, 2))
        hand[:, 0] = eff.states["fingertip"].detach().numpy()
        started = time.perf_counter()
        for t in range(T - 1):
            eff.step(torch.tensor(u[:, t], dtype=torch.float64))
            hand[:, t + 1] = eff.states["fingertip"].detach().numpy()
        out[name] = hand
        out[name + "_seconds"] = np.array(time.perf_counter() - started)
        out[name + "_dtype"] = np.array(str(eff.states["joint"].dtype))
    np.savez(path_out, **out)


def _motornet(u: np.ndarray, q0: np.ndarray, python: str | None) -> dict[str, np.ndarray] | str:
    """MotorNet's hand paths, or the reason they could not be computed."""
    try:
        import motornet  # noqa: F401

        here = True
    except ImportError:
        here = False
    with tempfile.TemporaryDirectory() as tmp:
        path_in, path_out = str(Path(tmp) / "in.npz"), str(Path(tmp) / "out.npz")
        np.savez(path_in, excitation=u, q0=q0)
        if here:
            _worker(path_in, path_out)
        elif python:
            cmd = [python, str(Path(__file__).resolve()), "--worker", path_in, path_out]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                return f"MotorNet worker failed ({python}): {done.stderr.strip().splitlines()[-1:]}"
        else:
            return (
                "motornet is not importable here; install it in a separate venv "
                "(python3 -m venv /tmp/mnvenv && /tmp/mnvenv/bin/pip install motornet) and pass "
                "--motornet-python /tmp/mnvenv/bin/python"
            )
        with np.load(path_out) as f:
            return {k: f[k] for k in f.files}


def _diff(a: np.ndarray, b: np.ndarray, n03: int) -> dict[str, float]:
    """Hand-path difference (mm): max and median over trials of the per-trial max."""
    d = np.linalg.norm(a - b, axis=-1) * 1e3
    return {
        "max_0.3s_mm": float(d[:, :n03].max()),
        "median_0.3s_mm": float(np.median(d[:, :n03].max(1))),
        "max_all_mm": float(d.max()),
        "median_all_mm": float(np.median(d.max(1))),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the validation; return 0 (MotorNet compared or unavailable) or 1 (agreement worse than 1 mm)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--motornet-python", default=None, help="an interpreter with motornet installed")
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0

    from cortexsim import effector as E

    params = E.Arm26Params()
    n_steps = int(round(args.duration / DT)) + 1
    n03 = int(round(0.3 / DT)) + 1
    rng = np.random.default_rng(args.seed)
    cand = _patterns(32 * args.trials, n_steps, rng)
    margin = 0.1

    def usable(out: E.ArmTrajectory) -> np.ndarray:
        inside = np.all((out.q > params.joint_min + margin) & (out.q < params.joint_max - margin), axis=(1, 2))
        return inside & (np.linalg.norm(out.hand - out.hand[:, :1], axis=-1).max(1) > 0.10)

    first = np.flatnonzero(usable(E.simulate_arm(cand, DT)))[: 2 * args.trials]  # cheap pre-selection
    fine = E.simulate_arm(cand[first], DT, substeps=50, method="rk4")
    keep = np.flatnonzero(usable(fine))[: args.trials]
    travel = np.linalg.norm(fine.hand - fine.hand[:, :1], axis=-1).max(1)
    u, ref = cand[first][keep], fine.hand[keep]
    speed = np.linalg.norm(fine.hand_velocity[keep], axis=-1).max(1)
    report: dict = {
        "movements": {
            "trials": int(len(keep)),
            "candidates": int(len(cand)),
            "hand_travel_cm_median_max": [float(np.median(travel[keep]) * 100), float(travel[keep].max() * 100)],
            "peak_speed_m_s_median_max": [float(np.median(speed)), float(speed.max())],
        }
    }
    print(f"movements: {len(keep)} of {len(cand)} candidates (inside the joint ranges by 0.1 rad, hand travel > 10 cm)")
    print(f"  hand travel median {np.median(travel[keep]) * 100:.1f} cm (max {travel[keep].max() * 100:.1f});")
    print(f"  peak hand speed median {np.median(speed):.2f} m/s (max {speed.max():.2f})")

    print("\n1. integrator accuracy, hand path vs cortexsim RK4 at 0.2 ms (mm): max / median trial")
    acc = {}
    for method, sub in (("euler", 5), ("euler", 10), ("rk4", 1), ("rk4", 2)):
        hand = E.simulate_arm(u, DT, substeps=sub, method=method).hand
        acc[f"{method}x{sub}"] = d = _diff(hand, ref, n03)
        print(
            f"  {method:5s} x {sub:2d} ({DT / sub * 1e3:4.1f} ms): 0-0.3 s {d['max_0.3s_mm']:7.3f} / "
            f"{d['median_0.3s_mm']:7.3f}   0-{args.duration:g} s {d['max_all_mm']:7.3f} / {d['median_all_mm']:7.3f}"
        )
    report["accuracy"] = acc

    print("\n2. MotorNet RigidTendonArm26")
    q0 = np.tile(params.start_posture, (len(keep), 1))
    mn = _motornet(u, q0, args.motornet_python)
    status = 0
    if isinstance(mn, str):
        print("  " + mn)
        report["motornet"] = mn
    else:
        ours = E.simulate_arm(u, DT).hand
        # MotorNet's Euler is first order: 2 x (0.1 ms) - (0.2 ms) cancels its leading error (Richardson)
        extrapolated = 2 * mn["euler100"] - mn["euler50"]
        rows = {
            "as used: cortexsim euler 5x2 ms vs MotorNet euler 5x2 ms": _diff(ours, mn["euler5"], n03),
            "fine: cortexsim rk4 0.2 ms vs MotorNet euler 0.2 ms": _diff(ref, mn["euler50"], n03),
            "fine: cortexsim rk4 0.2 ms vs MotorNet euler 0.1 ms": _diff(ref, mn["euler100"], n03),
            "fine: cortexsim rk4 0.2 ms vs MotorNet Richardson 0.2/0.1": _diff(ref, extrapolated, n03),
            "MotorNet's own: euler 5x2 ms vs its Richardson 0.2/0.1": _diff(mn["euler5"], extrapolated, n03),
        }
        print(f"  motornet {mn['version']}, state dtype {mn['euler5_dtype']}; hand-path difference (mm): max / median")
        for name, d in rows.items():
            print(
                f"  {name:58s} 0-0.3 s {d['max_0.3s_mm']:8.4f} / {d['median_0.3s_mm']:8.4f}   "
                f"0-{args.duration:g} s {d['max_all_mm']:8.4f} / {d['median_all_mm']:8.4f}"
            )
        report["motornet"] = {"version": str(mn["version"]), "differences": rows}
        if rows["fine: cortexsim rk4 0.2 ms vs MotorNet Richardson 0.2/0.1"]["max_all_mm"] > 1.0:
            status = 1

    print("\n3. speed: simulate_arm, 64 trials x 176 steps x 5 sub-steps (euler)")
    u64 = np.random.default_rng(0).uniform(0, 0.2, (64, 176, 6))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        E.simulate_arm(u64, DT)
        times.append(time.perf_counter() - started)
    print(f"  best of 3: {min(times):.3f} s ({min(times) / (175 * 5) * 1e6:.0f} us per sub-step)")
    report["speed_s"] = min(times)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
