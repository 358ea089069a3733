"""Cross-check :func:`cortexsim.analysis.dsa` against the reference DSA package (Ostrow et al. 2023).

The package is ``dsa-metric`` on PyPI (import name ``DSA``; it needs torch). It
is never a dependency of cortexsim. This script

* runs the reference in this interpreter when ``import DSA`` works;
* else, with ``--dsa-python PATH``, runs the reference part of this script in
  that interpreter (a throwaway virtualenv with ``pip install dsa-metric``;
  cortexsim is not needed there), exchanging the data as ``.npz`` files;
* else prints why it skips and exits 0.

Cases: noisy linear systems (a rotation plus decays) at different rotation
frequencies, a copy under an orthogonal transform and rescaling, and the
line / point / bistable systems of ``tests/test_dsa.py`` (single-trial
fluctuations). Both sides get the same delays and rank and no centring (the
package does not centre). Compared per case:

* the DMD operators: the package's ``A_v`` and ours should be the same up to
  the signs of the SVD coordinates and a scale (the package normalises ``A_v``
  in place while scoring), so their eigenvalues at unit norm must agree;
* the angular distance: ours is a minimum over the orthogonal group found by
  multi-start Riemannian ascent, the package's comes from gradient descent in
  torch (float32, 1,500 steps), so ours should be at most the package's
  (+ 1e-3 rad for float32 rounding), and close to it.

Run from the repository root::

    .venv/bin/python benchmarks/validate_dsa.py --dsa-python /tmp/dsavenv/bin/python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EIGEN_TOL = 1e-4  # float32 in the package
DISTANCE_SLACK = 1e-3  # rad: float32 rounding of the package's score


def spectrum_gap(A: np.ndarray, B: np.ndarray) -> float:
    """Largest difference between the eigenvalues of A and B, each scaled to unit Frobenius norm.

    The package divides its stored ``A_v`` by its norm (in place) while it scores,
    and the angular distance ignores scale, so operators are compared up to scale.
    Eigenvalues are matched greedily by distance.
    """
    a = list(np.linalg.eigvals(A / np.linalg.norm(A)))
    b = np.linalg.eigvals(B / np.linalg.norm(B))
    gap = 0.0
    for value in b:
        i = int(np.argmin([abs(value - x) for x in a]))
        gap = max(gap, abs(value - a.pop(i)))
    return gap


def reference(cases: list[tuple[np.ndarray, np.ndarray, int, int]]) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """The package's angular distance and A_v operators for each case (runs where ``DSA`` imports)."""
    import DSA  # noqa: N811 - the package's own name

    out = []
    for X, Y, n_delays, rank in cases:
        model = DSA.DSA(X, Y, n_delays=n_delays, rank=rank, score_method="angular", iters=1500, lr=5e-3)
        score = float(model.fit_score())
        a_x = model.dmds[0][0].A_v.detach().cpu().numpy().astype(float)
        a_y = model.dmds[1][0].A_v.detach().cpu().numpy().astype(float)
        out.append((score, a_x, a_y))
    return out


def worker(path_in: str, path_out: str) -> None:
    data = np.load(path_in)
    n = int(data["n"])
    cases = [(data[f"x{i}"], data[f"y{i}"], int(data[f"d{i}"]), int(data[f"r{i}"])) for i in range(n)]
    results = reference(cases)
    arrays = {}
    for i, (score, a_x, a_y) in enumerate(results):
        arrays[f"s{i}"], arrays[f"ax{i}"], arrays[f"ay{i}"] = np.array(score), a_x, a_y
    np.savez(path_out, **arrays)


def build_cases(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, int, int]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_dsa import DYNAMICS, haar, linear_system, residuals, rotation_plus_decay, simulate

    P = rng.normal(size=(4, 10))
    base = linear_system(rotation_plus_decay(0.2), 20, 60, 0.05, rng, P)
    cases = [("rotated and rescaled copy", base, 3.7 * base @ haar(10, rng), 1, 4)]
    for theta in (0.2, 0.3, 0.5):
        cases.append(
            (
                f"rotation 0.2 vs {theta} rad/step",
                base,
                linear_system(rotation_plus_decay(theta), 20, 60, 0.05, rng, P),
                2,
                6,
            )
        )
    plane = np.linalg.qr(rng.normal(size=(20, 2)))[0].T
    systems = {kind: residuals(simulate(kind, rng, plane)) for kind in DYNAMICS}
    for a, b in (("line", "point"), ("line", "bistable"), ("point", "bistable")):
        cases.append((f"{a} vs {b} (trial fluctuations)", systems[a], systems[b], 1, 2))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsa-python", help="an interpreter where `import DSA` works (e.g. a throwaway virtualenv)")
    ap.add_argument("--worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0

    from threadpoolctl import threadpool_limits

    from cortexsim.analysis import dsa

    rng = np.random.default_rng(0)
    cases = build_cases(rng)
    payload = [(x, y, d, r) for _, x, y, d, r in cases]
    try:
        import DSA  # noqa: F401, N811

        theirs = reference(payload)
        where = "this interpreter"
    except ImportError:
        if not args.dsa_python:
            print(
                "SKIP: the DSA package (pip name dsa-metric) is not importable here; install it into a throwaway "
                "virtualenv and pass --dsa-python PATH to cross-check"
            )
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            path_in, path_out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            arrays = {"n": np.array(len(payload))}
            for i, (x, y, d, r) in enumerate(payload):
                arrays[f"x{i}"], arrays[f"y{i}"], arrays[f"d{i}"], arrays[f"r{i}"] = x, y, np.array(d), np.array(r)
            np.savez(path_in, **arrays)
            done = subprocess.run(
                [args.dsa_python, __file__, "--worker", str(path_in), str(path_out)], capture_output=True, text=True
            )
            if done.returncode != 0:
                print(f"SKIP: the reference run in {args.dsa_python} failed:\n{done.stderr[-2000:]}")
                return 0
            out = np.load(path_out)
            theirs = [(float(out[f"s{i}"]), out[f"ax{i}"], out[f"ay{i}"]) for i in range(len(payload))]
        where = args.dsa_python

    print(f"reference: the DSA package in {where}")
    failures = 0
    with threadpool_limits(1, user_api="blas"):
        for (name, x, y, n_delays, rank), (score, a_x, a_y) in zip(cases, theirs):
            mine = dsa(x, y, n_delays=n_delays, rank=rank, center=False)
            eig_gap = max(spectrum_gap(mine.operator_x, a_x), spectrum_gap(mine.operator_y, a_y))
            ok = eig_gap < EIGEN_TOL and mine.distance <= score + DISTANCE_SLACK
            failures += not ok
            print(
                f"  {name:40s} delays {n_delays} rank {rank}: cortexsim {mine.distance:.5f} rad, "
                f"DSA {score:.5f} rad, operator eigenvalue gap {eig_gap:.1e}{'' if ok else '  MISMATCH'}"
            )
    print("all cases agree" if not failures else f"{failures} case(s) disagree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
