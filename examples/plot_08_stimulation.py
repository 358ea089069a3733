"""
Stimulate a cell type in one epoch
==================================

Optogenetic-style stimulation of the *trained* circuit: a protocol names the cells that express the
opsin (populations, layers or cell types such as ``PV``), what the light does (``excite`` /
``inhibit`` by a drive in mV, or ``silence``), when it is on (a window around a task event, with a
ramp-down) and on which share of the trials. In an experiment file it is a table::

    [[stimulation.protocols]]
    name = "pv_delay"
    target = ["PV"]
    effect = "excite"
    amplitude = 10.0      # mV
    event = "target_on"
    start = 0.1           # s after the event
    stop = 0.3
    ramp = 0.1

and ``cortexsim run`` adds a ``stimulate`` stage (the circuit, its spiking twin and every ANN;
``experiments/arm_stim.toml`` is the study on the arm). Here the smoke run's trained circuit is
stimulated directly with the library's functions, in a few seconds.
"""

# %%
# The trained circuit, and two protocols
# --------------------------------------
import _gallery
import matplotlib.pyplot as plt
import numpy as np

from cortexsim import assembly, store
from cortexsim import stimulation as st
from cortexsim.stim_config import StimProtocol
from cortexsim.stim_measure import measure, stimulate_model

run = _gallery.smoke_run() / "run.h5"
with store.open_run(run) as f:
    config = store.read_config(f)
    trained = store.read_trained_rate(f)
net = assembly.trained_rate_network(config, trained)
batch = assembly.make_task(
    config
).evaluation_set()  # the held-out conditions, one trial each

protocols = [
    StimProtocol(
        name="pv_delay",
        target=("PV",),
        effect="excite",
        amplitude=10.0,
        event="target_on",
        start=0.1,
        stop=0.3,
        ramp=0.1,
        trials=1.0,
    ),
    StimProtocol(
        name="pt_move",
        target=("PT5B",),
        effect="inhibit",
        amplitude=10.0,
        event="go",
        start=0.0,
        stop=0.2,
        trials=1.0,
    ),
]
for p in protocols:
    print(p.label())

# %%
# Run each with and without the light, and measure
# ------------------------------------------------
# :func:`cortexsim.stimulation.expression` draws which units express (all of them at fraction 1);
# :func:`cortexsim.stim_measure.stimulate_model` runs the noise-free conditions lit and unlit (and noisy
# interleaved trials); :func:`cortexsim.stim_measure.measure` reads the hand's deviation, the success
# rate and the share of the activity's change the readout can see (output-potent).
results = []
for p in protocols:
    units = st.expression(net, p, seed=config.experiment.seed)
    response = stimulate_model(
        net, p, batch, seed=config.experiment.seed, trials_per_condition=2, units=units
    )
    results.append(
        measure(
            p,
            "rate",
            response,
            batch,
            net.readout_matrix(),
            net.populations(),
            config.quality.endpoint_error_cm,
        )
    )
for r in results:
    print(
        f"{r.protocol:<9} peak hand deviation {r.metric('peak_deviation_cm'):5.2f} cm   "
        f"potent share {r.metric('potent_share'):.2f} (chance {r.metric('potent_chance'):.2f})   "
        f"success {r.metric('success_rate'):.0%}"
    )

# %%
# Hand paths lit (solid) and unlit (dotted), and the activity's change over time, split into the
# part the readout sees (output-potent) and the rest (output-null). Exciting PV in the delay
# changes the circuit mostly where the muscles cannot see it; inhibiting PT5B, the only population
# the readout reads, moves the hand. (The smoke circuit is trained for seconds and reaches badly even
# unlit; the study on the arm study's circuit, and what it found, is ``experiments/arm_stim.toml``.)
fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 7.2))
colours = plt.cm.hsv(np.linspace(0, 1, batch.n_trials, endpoint=False))
for j, r in enumerate(results):
    hand, base = r.response.hand, r.response.hand_base
    for k in range(batch.n_trials):
        axes[0, j].plot(*(100 * base[k].T), ":", color=colours[k], lw=1)
        axes[0, j].plot(*(100 * hand[k].T), color=colours[k], lw=1.6)
    axes[0, j].set_aspect("equal")
    axes[0, j].set_title(r.protocol)
    axes[0, j].set_xlabel("x (cm)")
    lit = np.flatnonzero(r.response.light[:, 0] > 0)
    axes[1, j].axvspan(
        batch.time[lit[0]], batch.time[lit[-1]], color="#4fc3f7", alpha=0.3, lw=0
    )
    null = np.sqrt(np.maximum(r.neural_deviation**2 - r.neural_potent**2, 0))
    axes[1, j].plot(batch.time, r.neural_deviation, "k", label="all")
    axes[1, j].plot(batch.time, null, "--", label="output-null")
    axes[1, j].plot(batch.time, r.neural_potent, ":", label="output-potent")
    axes[1, j].set_xlabel("time in trial (s; blue: light)")
    axes[1, j].legend(fontsize=8)
axes[0, 0].set_ylabel("y (cm)")
axes[1, 0].set_ylabel("|change of rates| (Hz)")
fig.tight_layout()

# %%
# Which populations respond while the light is on: the targets directly, the rest through the
# circuit (exciting PV should lower the pyramidal populations' rates, as photoinhibition does).
rows = results[0].populations
fig, ax = plt.subplots(figsize=(8, 3.4))
ax.bar(
    [r["population"] for r in rows],
    [r["change_light"] for r in rows],
    color=["C3" if r["direct"] else "C0" for r in rows],
)
ax.axhline(0, color="k", lw=0.6)
ax.set_ylabel("mean change of rate while lit (Hz)")
ax.set_title(
    "pv_delay: red = expressing (driven directly), blue = driven through the circuit"
)
ax.tick_params(axis="x", rotation=60, labelsize=8)
fig.tight_layout()
