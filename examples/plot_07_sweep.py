"""
Run a sweep
===========

``cortexsim sweep SWEEP.toml --out DIR`` runs many variants of an experiment — seeds, sizes,
penalties, lesions — each as its own run folder, on a Dask cluster (a ``LocalCluster`` by default,
or any scheduler: ``--scheduler``, e.g. SLURM through dask-jobqueue), and gathers every point's
metrics into ``summary.csv`` and ``summary.h5`` with a figure per swept parameter. Needs the
``sweep`` extra (``pip install -e ".[sweep]"``).
"""

# %%
# A sweep file
# ------------
# A sweep names a base experiment and what to vary: ``[grid]`` crosses lists of values,
# ``[[points]]`` lists points, ``[base.<section>]`` changes every point. The shipped smoke sweep
# (4 points, under 3 minutes on 2 cores):
import csv
import subprocess
import sys

import _gallery

print((_gallery.ROOT / "experiments" / "sweeps" / "smoke.toml").read_text())

# %%
# Two points, in seconds
# ----------------------
# To fit the gallery's minute, this sweep varies the circuit's size on the smoke experiment with the
# spiking twin and the ANNs switched off (``[base.*]``), on a LocalCluster of two workers.
work = _gallery.scratch("sweep")
sweep_file = work / "sizes.toml"
sweep_file.write_text(
    f"""[sweep]
experiment = "{_gallery.SMOKE.as_posix()}"
workers = 2

[grid]
"circuit.n_units" = [60, 90]

[base.spiking]
enabled = false

[base.ann]
archs = []

[base.compare]
n_null = 0
n_surrogates = 0
fixed_point_starts = 0
"""
)
out = work / "out"


def cortexsim(*args: str) -> None:
    """Run a cortexsim command and print what it prints."""
    print("$ cortexsim " + " ".join(args).replace(str(work) + "/", ""))
    done = subprocess.run(
        [sys.executable, "-m", "cortexsim", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    print(done.stdout)


cortexsim("sweep", str(sweep_file), "--out", str(out), "--dry-run")

# %%
# ``--dry-run`` listed the points; now run them. Each point is an ordinary run folder (its own
# ``run.h5``, ``summary.md`` and ``figures/``); rerunning the sweep skips finished points.
cortexsim("sweep", str(sweep_file), "--out", str(out))
print(sorted(p.name for p in out.iterdir()))

# %%
# What it gathered
# ----------------
# ``summary.csv`` has one row per point: the swept parameters, its status and every metric of its
# ``/metrics``.
with open(out / "summary.csv", newline="") as f:
    rows = list(csv.DictReader(f))
for row in rows:
    print(
        f"n_units {row['circuit.n_units']:>4}: {row['status']}, position R² {float(row['rate_position_r2']):.3f}, "
        f"mean rate {float(row['rate_mean_rate_hz']):.2f} Hz, trained in {float(row['rate_train_seconds']):.1f} s"
    )

# %%
# The figure the sweep drew for its parameter (every headline metric against the circuit's size;
# with several seeds, their mean and SD):
(figure,) = sorted((out / "figures").glob("*.png"))
_gallery.show_image(figure)

# %%
# The lesion study is a sweep too: ``experiments/sweeps/lesions.toml`` silences each population on
# two seeds, and the lesioned points reuse the network their intact point trained
# (:doc:`/guide`, "Sweeps" and "Lesions").
