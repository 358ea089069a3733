"""
Compare the models with recorded data
=====================================

Recorded condition-averaged rates join the comparison battery next to the models:
``cortexsim compare RUN.h5 --data FILE`` (or ``[compare] data = "FILE"`` in the experiment file).
A ``.npz`` or ``.mat`` file holds ``rates`` (neurons × time × conditions) and ``time`` (s,
relative to movement onset); an ``.nwb`` file with Units and trials is binned into PSTHs
(:doc:`/nwb`). No recording ships with cortexsim, so this example makes one up with a known
answer: 40 "neurons" whose rates are noisy positive mixtures of the rate circuit's layer-5B
units, on their own 5 ms time base and over part of the trial only.
"""

# %%
# A made-up recording
# -------------------
import shutil
import subprocess
import sys

import _gallery
import matplotlib.pyplot as plt
import numpy as np

from cortexsim import store
from cortexsim.data import load_neural_data

smoke = _gallery.smoke_run()
with store.open_run(smoke / "run.h5") as f:
    # the rate circuit's activity, (conditions, time, units), and its layer-5B units
    circuit = next(a for a in store.read_activities(f) if a.name == "rate")
    l5b = [p for p in store.read_circuit(f).populations if p.spec.layer == "L5B"]
steps = np.arange(circuit.rates.shape[1])
model_time = (steps - circuit.move_on) * circuit.dt  # s from movement onset

rng = np.random.default_rng(0)
units = np.concatenate([np.arange(p.start, p.stop) for p in l5b])
mixing = rng.gamma(1.0, 1.0, size=(len(units), 40)) / len(units)
time = np.arange(-0.3, 0.5, 0.005)  # the recording's own bins: 5 ms, -300 to +500 ms
source = np.stack(
    [[np.interp(time, model_time, c[:, u]) for u in units] for c in circuit.rates]
)
noise = rng.normal(0, 1.0, (40, time.size, source.shape[0]))
rates = np.einsum("cut,un->ntc", source, mixing) * 20 + noise
rates = np.clip(rates, 0, None)  # neurons x time x conditions, Hz

work = _gallery.scratch("recorded")
np.savez(work / "recording.npz", rates=rates, time=time, align_event="movement onset")
print(load_neural_data(work / "recording.npz"))

# %%
# ``cortexsim compare``
# ---------------------
# ``compare`` reruns the battery on a run file with the data added, and writes ``/analysis``,
# ``summary.md`` and the figures again: so it runs on a copy of the run here. It puts the data on
# the model's 10 ms grid and compares on the steps both cover, and says so. (The surrogate
# p-values and the fixed-point search are switched off to keep the example short.)
shutil.copy(smoke / "run.h5", work / "run.h5")
shutil.copy(smoke / "summary.md", work / "summary.md")
options = [
    "--data",
    str(work / "recording.npz"),
    "--n-surrogates",
    "0",
    "--fixed-point-starts",
    "0",
]
command = ["cortexsim", "compare", str(work / "run.h5"), *options]
done = subprocess.run(
    [sys.executable, "-m", *command], capture_output=True, text=True, check=True
)
print("$ " + " ".join(command).replace(str(work) + "/", ""))
print(
    "\n".join(
        line for line in done.stdout.splitlines() if line.startswith(("note:", "wrote"))
    )
)

# %%
# What the battery found
# ----------------------
# ``/analysis/similarity`` now has a row for every model against the data. The recording was
# made from the rate circuit's layer-5B units, so the rate circuit should come out closest to it,
# well above its condition-shuffle null; the ANNs, trained on the same task, share some of its
# geometry; the spiking twin, a noisy copy of a briefly trained circuit, less.
with store.open_run(work / "run.h5") as f:
    analysis = store.read_analysis(f)
rows = [r for r in analysis.similarity if "data" in (r["a"], r["b"])]
models = [
    (r["a"] if r["b"] == "data" else r["b"], r["cca"], r["cca_null"]) for r in rows
]
models.sort(key=lambda row: -row[1])
for name, cca, null in models:
    print(f"{name:<9} CCA with the data {cca:.2f} (condition-shuffled {null:.2f})")

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.bar(
    range(len(models)),
    [row[1] for row in models],
    color="C0",
    label="CCA with the data",
)
ax.plot(
    range(len(models)),
    [row[2] for row in models],
    "k_",
    ms=18,
    mew=2,
    label="condition-shuffle null",
)
ax.set_xticks(range(len(models)), [row[0] for row in models], rotation=45, ha="right")
ax.set_ylabel("mean canonical correlation")
ax.set_ylim(0, 1)
ax.set_title("Which model looks most like the recording?")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# For real recordings: ``--variable`` and ``--layout`` name the array and its axes, and an NWB
# file needs ``--align-event`` (e.g. ``move_onset_time``); a recording with a different number of
# conditions is compared by the condition-free measures only (dimensionality, jPCA).
# ``cortexsim score`` goes further on single trials, with the Neural Latents Benchmark's measures
# (:doc:`/nwb`).
