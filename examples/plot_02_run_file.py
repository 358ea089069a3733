"""
Train a run and read its run file
=================================

``cortexsim run experiments/smoke.toml`` runs every stage of a study on a 60-unit circuit: it
trains the rate network by backpropagation through time, evaluates it, runs its spiking twin in
Brian2, trains three ANN baselines and compares them all. Everything it computes lands in one HDF5
run file that explains itself. Here the same run is made from Python, then read twice: with plain
h5py, as any tool can, and through cortexsim's own readers.
"""

# %%
# Run the smoke experiment
# ------------------------
# :func:`cortexsim.run_experiment` is what ``cortexsim run`` calls: the stages ``train``, ``rate``,
# ``spiking``, ``ann:*`` and ``compare``, each recorded in the run file when it finishes (so an
# interrupted run continues where it stopped). About 45 s on 2 cores; the twin takes most of it.
# The helper runs it once for the whole gallery (``examples/_gallery.py``).
import _gallery
import h5py
import matplotlib.pyplot as plt
import numpy as np

folder = _gallery.smoke_run(show=True)
print(sorted(p.name for p in folder.iterdir()))

# %%
# With h5py
# ---------
# Every dataset carries ``units``, ``dims`` and ``description`` attributes; the root carries the
# config, the seed and the code's version (:doc:`/schema` lists every path).
run = folder / "run.h5"
with h5py.File(run, "r") as f:
    print("groups:", list(f))
    print("written by cortexsim", f.attrs["cortexsim_version"], "seed", f.attrs["seed"])
    rates = f["rate/rates"]
    print("rate/rates", rates.shape, dict(rates.attrs))
    rates = rates[()]  # (conditions, time, units), Hz
    hand = f["rate/outputs"][()]  # (conditions, time, 2), m
    target = f["task/targets"][()]
    dt = f["rate"].attrs["dt"]
    move_on = f["task/params/move_on"][()]
    table = f["circuit/populations"][
        ()
    ]  # name, layer, cell_class, subtype, start, stop
    pops = [
        (row["name"].decode(), int(row["start"]), int(row["stop"])) for row in table
    ]
    metrics = dict(f["metrics"].attrs)
for key in (
    "rate_position_r2",
    "rate_endpoint_error_cm",
    "spiking_position_r2",
    "ann_gru_position_r2",
):
    print(f"/metrics@{key} = {metrics[key]:.3f}")

# %%
# The circuit's activity on the evaluation set — one trial per target — and the hand it moves.
# The smoke circuit is trained for 40 iterations only, far too few to reach well (the run says so
# in ``summary.md``: it misses the quality bars on purpose; the default study passes them).
t = np.arange(rates.shape[1]) * dt
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5))
for name, start, stop in pops:
    if name in ("IT2/3", "IT5B", "PT5B", "PV5B", "CT6"):
        ax.plot(t, rates[0, :, start:stop].mean(axis=1), label=name)
ax.axvline(move_on[0], color="0.5", ls="-.", lw=0.8)
ax.set(
    xlabel="time (s)   [-. movement onset]",
    ylabel="mean rate (Hz)",
    title="Population rates, target 1",
)
ax.legend()
colours = plt.cm.hsv(np.linspace(0, 1, target.shape[0], endpoint=False))
for k in range(target.shape[0]):
    bx.plot(*(100 * target[k].T), "--", color=colours[k], lw=1)
    bx.plot(*(100 * hand[k].T), color=colours[k], lw=2)
bx.set(
    xlabel="x (cm)",
    ylabel="y (cm)",
    title="Hand paths: desired (dashed), produced (solid)",
    aspect="equal",
)
fig.tight_layout()

# %%
# With cortexsim's readers
# ------------------------
# :mod:`cortexsim.store` is the one module that reads and writes run files: it checks the file is a
# run file of a schema it knows and turns groups back into objects. ``cortexsim inspect run.h5``
# prints the tree; the same from Python:
from cortexsim import store

tree = store.format_tree(store.describe(run)).splitlines()
start = next(i for i, line in enumerate(tree) if line.strip() == "rate/")
print("\n".join(tree[:3] + ["  ..."] + tree[start : start + 16] + ["  ..."]))

# %%
# The config the run was made with, its metrics, its stages and the comparison's answers:
with store.open_run(run) as f:
    config = store.read_config(f)
    summary = store.read_run_summary(f)
    analysis = store.read_analysis(f)
    history = (
        f["training/r2"][()],
        f["training/val_r2"][()],
        f["training/val_iteration"][()],
    )
print(
    f"experiment {config.experiment.name!r}: {config.circuit.n_units} units, seed {summary.seed}"
)
print(
    "stages:",
    ", ".join(
        f"{name} {info['seconds']:.1f} s" for name, info in summary.stages.items()
    ),
)
print("answers:", {k: v for k, v in analysis.answers.items() if isinstance(v, str)})
rows = [
    r
    for r in analysis.similarity
    if r["a"] == "rate" and not str(r["b"]).startswith("rate:")
]
for r in rows:
    print(
        f"rate vs {r['b']:<8} CCA {r['cca']:.2f} (shuffled {r['cca_null']:.2f})  CKA {r['cka']:.2f}"
    )

# %%
# Training, iteration by iteration (``/training``): the R² of each batch and, every
# ``train.eval_every`` iterations, of the fixed validation trials.
r2, val_r2, val_it = history
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(r2) + 1), r2, label="training batch")
ax.plot(val_it, val_r2, "o-", label="validation")
ax.set(
    xlabel="iteration", ylabel="hand position R²", title="Training the smoke circuit"
)
ax.legend()
fig.tight_layout()
