"""
Read a run as NWB, with pynwb and pynapple
==========================================

``cortexsim export RUN.h5 --nwb FILE`` writes a run's spiking twin as an NWB 2 file, the format
neurophysiology shares recordings in: one Units row per LIF neuron, labelled with its layer,
population and cell class, a trials table with the task's events, and the hand in
``processing/behavior``. The tools that read recordings read it as they are (:doc:`/nwb` has the
whole layout). Needs the ``nwb`` extra (``pip install -e ".[nwb]"``).
"""

# %%
# Export the smoke run
# --------------------
import subprocess
import sys

import _gallery
import matplotlib.pyplot as plt
import numpy as np

work = _gallery.scratch("nwb")
run = _gallery.smoke_run() / "run.h5"
nwb_file = work / "twin.nwb"
subprocess.run(
    [sys.executable, "-m", "cortexsim", "export", str(run), "--nwb", str(nwb_file)],
    check=True,
)
print(f"{nwb_file.name}: {nwb_file.stat().st_size / 2**20:.1f} MiB")

# %%
# With pynwb
# ----------
# The Units table as a pandas DataFrame: spike times and the labels of each neuron.
from pynwb import NWBHDF5IO

with NWBHDF5IO(nwb_file, "r") as io:
    nwb = io.read()
    print(nwb.session_description)
    units = nwb.units.to_dataframe()
    trials = nwb.trials.to_dataframe()
    hand = nwb.processing["behavior"]["Position"]["hand_position"]
    hand_xy = hand.data[:]
    hand_t = hand.timestamps[:] if hand.timestamps is not None else None
    hand_rate, hand_start = hand.rate, hand.starting_time
print(units[["layer", "population", "cell_class", "subtype", "rate_unit"]].head())
print(units.groupby("layer").size().rename("neurons").to_frame().T)
columns = ["condition", "target_angle", "go_cue_time", "move_onset_time", "catch"]
print(trials[columns].head())

# %%
# The first reach trial: every neuron's spikes by layer, and the hand's distance from the centre
# as the twin's spikes decode it (one noisy trial of a briefly trained circuit).
trial = trials[~trials["catch"]].iloc[0]
order = units.sort_values(["layer", "population"]).index
fig, (ax, bx) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
for row, unit in enumerate(order):
    spikes = np.asarray(units.loc[unit, "spike_times"])
    spikes = spikes[(spikes >= trial.start_time) & (spikes < trial.stop_time)]
    colour = "C3" if units.loc[unit, "cell_class"] == "I" else "C0"
    ax.plot(
        spikes - trial.start_time, np.full(spikes.size, row), "|", color=colour, ms=3
    )
ax.set_ylabel("neuron (by layer; red: inhibitory)")
ax.set_title(f"Trial {trial.name}: condition {trial.condition}")
if hand_t is None:
    hand_t = hand_start + np.arange(len(hand_xy)) / hand_rate
inside = (hand_t >= trial.start_time) & (hand_t < trial.stop_time)
bx.plot(
    hand_t[inside] - trial.start_time, 100 * np.linalg.norm(hand_xy[inside], axis=1)
)
for event, style in (("go_cue_time", "--"), ("move_onset_time", "-.")):
    for a in (ax, bx):
        a.axvline(trial[event] - trial.start_time, color="0.4", ls=style, lw=0.8)
bx.set(
    xlabel="time in trial (s)   [-- go   -. movement onset]",
    ylabel="hand (cm from centre)",
)
fig.tight_layout()

# %%
# With pynapple
# -------------
# pynapple loads the same file as a ``TsGroup`` of spike trains, with the Units columns as
# metadata, and the trials as an ``IntervalSet``: selecting neurons by label and binning their
# spikes inside the trials is one line each.
import pynapple as nap

data = nap.load_file(str(nwb_file))
spikes, epochs = data["units"], data["trials"]
print(
    f"{len(spikes)} spike trains, metadata {spikes.metadata_columns}; {len(epochs)} trials"
)
onsets = nap.Ts(t=trials.loc[~trials["catch"], "move_onset_time"].to_numpy())
window = nap.IntervalSet(start=-0.5, end=0.5)
fig, ax = plt.subplots(figsize=(7, 3.6))
for layer in ("L2/3", "L5B", "L6"):
    group = spikes[spikes.layer == layer]
    # per neuron, one spike train per movement onset, in time from that onset
    aligned = nap.compute_perievent(group, onsets, window=(-0.5, 0.5))
    counts = np.mean(
        [a.count(0.02, ep=window).to_numpy().mean(axis=1) for a in aligned.values()],
        axis=0,
    )
    ax.plot(
        np.arange(counts.size) * 0.02 - 0.49,
        counts / 0.02,
        label=f"{layer} ({len(group)} neurons)",
    )
ax.axvline(0, color="0.4", ls="-.", lw=0.8)
ax.set(
    xlabel="time from movement onset (s)",
    ylabel="mean rate (spikes/s)",
    title="Peri-movement rates by layer",
)
ax.legend(fontsize=8)
fig.tight_layout()
print(
    "spike counts in 5 ms bins inside the trials (bins, neurons):",
    spikes.count(0.005, ep=epochs).shape,
)
