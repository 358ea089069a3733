"""
Build a circuit and look at it
==============================

The six-layer M1 circuit is specified once from anatomy (17 populations; sizes and connection
tables from Dura-Bernal et al. 2023) and sampled as a sparse connectome that obeys Dale's law.
An experiment file says how many units it has and which seed samples it; building it takes about
a second and computes nothing else.
"""

# %%
# The circuit of an experiment
# ----------------------------
# :func:`cortexsim.load_experiment` reads an experiment file and checks every key and every name
# in it; :func:`cortexsim.build_circuit` samples its connectome (the seed's ``"circuit"`` stream,
# so the same file always gives the same synapses). This is the default study's circuit, 500 units
# (``experiments/smoke.toml`` samples the same anatomy at 60).
import _gallery
import matplotlib.pyplot as plt

import cortexsim as cs
from cortexsim import plots

config = cs.load_experiment(_gallery.ROOT / "experiments" / "center_out.toml")
circuit = cs.build_circuit(config)
print(circuit)
print(f"{'population':<8} {'layer':<5} class subtype  units  tau (ms)")
for p in circuit.populations:
    s = p.spec
    print(
        f"{p.name:<8} {s.layer:<5} {s.cell_class:^5} {s.subtype:<8} {p.size:>5} {1000 * s.tau:>9.0f}"
    )

# %%
# Which units get the task's inputs, and which drive the hand: the target and go inputs reach
# their own subsets of units, and the readout reads PT5B only (the corticospinal cells).
for name, mask in circuit.input_masks.items():
    print(f"input {name!r}: {mask.sum()} units")
readout = {p.name for p in circuit.populations if circuit.output_mask[p.slice].any()}
print(f"readout: {circuit.output_mask.sum()} units, all in {sorted(readout)}")

# %%
# Population by population
# ------------------------
# The figure a run draws first (``figures/connectivity.png``): on the left the sampled connection
# probability between every pair of populations (row: postsynaptic, column: presynaptic), on the
# right the summed signed weight a postsynaptic unit receives from each population — red
# excitation, blue inhibition. The inhibitory populations (PV, SST, VIP, NGF) are the blue columns.
_gallery.show_figure(plots.plot_connectivity(circuit))

# %%
# Unit by unit
# ------------
# The same connectome synapse by synapse: every dot is one, red when its presynaptic unit is
# excitatory and blue when inhibitory; the grey lines separate the populations. Each column has
# one colour: a unit excites or inhibits through all its synapses (Dale's law).
excitatory = circuit.sign[circuit.pre] > 0
fig, ax = plt.subplots(figsize=(7, 7))
for mask, colour in ((excitatory, "tab:red"), (~excitatory, "tab:blue")):
    ax.scatter(circuit.pre[mask], circuit.post[mask], s=1.5, color=colour, lw=0)
ax.set_xlim(-0.5, circuit.n_units - 0.5)
ax.set_ylim(circuit.n_units - 0.5, -0.5)
edges = [p.start - 0.5 for p in circuit.populations[1:]]
for e in edges:
    ax.axhline(e, color="0.85", lw=0.5)
    ax.axvline(e, color="0.85", lw=0.5)
centres = [(p.start + p.stop - 1) / 2 for p in circuit.populations]
ax.set_xticks(centres, [p.name for p in circuit.populations], rotation=90, fontsize=7)
ax.set_yticks(centres, [p.name for p in circuit.populations], fontsize=7)
ax.set_xlabel("presynaptic unit")
ax.set_ylabel("postsynaptic unit")
ax.set_title(
    f"{circuit.n_synapses:,} synapses, {circuit.n_synapses / circuit.n_units**2:.1%} of all pairs"
)
fig.tight_layout()

# %%
# Change the circuit without code: ``[circuit.overrides]`` in an experiment file changes a connection
# probability or weight, resizes a population, cuts a projection or silences a population before
# training; ``cortexsim spec --out my_spec.toml`` writes the whole spec to edit
# (:doc:`/guide`, "Your own experiment and circuit"). Here, ``IT2/3 -> PT5B`` is cut:
cut = config.with_section("circuit", overrides={"cut": ["IT2/3 -> PT5B"]})
pre = circuit.populations[1]
post = next(p for p in circuit.populations if p.name == "PT5B")
for label, c in (("as specified", circuit), ("cut", cs.build_circuit(cut))):
    mask = (
        (c.pre >= pre.start)
        & (c.pre < pre.stop)
        & (c.post >= post.start)
        & (c.post < post.stop)
    )
    print(f"{label}: {mask.sum()} synapses {pre.name} -> {post.name}")
