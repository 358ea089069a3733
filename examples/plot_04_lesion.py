"""
Lesion the trained circuit
==========================

A lesion acts on the *trained* circuit: ``[lesion] silence = ["PT5B"]`` silences a population (no
output, no input, no readout) and ``cut = ["IT2/3 -> PT5B"]`` removes a projection, in the rate
model and in its spiking twin alike. Training does not depend on ``[lesion]``, so a lesion costs an
evaluation, not a training: here the smoke run's trained circuit is read back from its run file and
lesioned three ways in a few seconds.
"""

# %%
# The trained circuit, from the run file
# --------------------------------------
# :func:`cortexsim.store.read_trained_rate` reads the trained weights and parameters;
# :func:`cortexsim.assembly.trained_rate_network` rebuilds the network the run evaluated.
import _gallery
import matplotlib.pyplot as plt
import numpy as np

import cortexsim as cs
from cortexsim import assembly, store
from cortexsim.config import LesionConfig

run = _gallery.smoke_run() / "run.h5"
with store.open_run(run) as f:
    config = store.read_config(f)
    trained = store.read_trained_rate(f)
intact = assembly.trained_rate_network(config, trained, lesion=False)
print(intact.connectome)

# %%
# Three lesions, each evaluated as the run's ``rate`` stage evaluates
# -------------------------------------------------------------------
# :func:`cortexsim.apply_lesion` returns a lesioned copy (the trained network is unchanged) and
# :func:`cortexsim.evaluate` scores it on the run's 400 held-out trials and simulates the
# evaluation set — what ``cortexsim run`` does with a ``[lesion]`` table in the experiment file.
lesions = {
    "intact": LesionConfig(),
    "silence PT5B": LesionConfig(silence=("PT5B",)),
    "silence IT2/3": LesionConfig(silence=("IT2/3",)),
    "cut IT2/3 -> PT5B": LesionConfig(cut=("IT2/3 -> PT5B",)),
}
results = {
    name: cs.evaluate(cs.apply_lesion(intact, lesion), config, "rate")
    for name, lesion in lesions.items()
}
for name, result in results.items():
    m = result.metrics
    print(
        f"{name:<18} position R² {m['rate_position_r2']:6.3f}   endpoint error {m['rate_endpoint_error_cm']:5.2f} cm"
        f"   catch drift {m['rate_catch_drift_cm']:5.2f} cm"
    )

# %%
# The hand paths: the readout reads PT5B only, so silencing PT5B leaves the hand at the centre;
# the other lesions change the paths through the circuit. (The smoke circuit reaches badly even
# intact: it is trained for seconds. The shipped lesion study runs on the default circuit.)
evaluation = results["intact"].evaluation
colours = plt.cm.hsv(np.linspace(0, 1, evaluation.n_trials, endpoint=False))
fig, axes = plt.subplots(
    1, len(results), figsize=(3.2 * len(results), 3.4), sharex=True, sharey=True
)
for ax, (name, result) in zip(axes, results.items()):
    for k in range(evaluation.n_trials):
        ax.plot(*(100 * evaluation.targets[k].T), "--", color=colours[k], lw=0.8)
        ax.plot(*(100 * result.outputs[k].T), color=colours[k], lw=1.8)
    ax.set_title(f"{name}\nR² {result.metrics['rate_position_r2']:.2f}", fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlabel("x (cm)")
axes[0].set_ylabel("y (cm)")
fig.tight_layout()

# %%
# Where the lesion acts: each population's mean absolute rate change from the intact circuit
# (over the evaluation conditions and the whole trial). A silenced population drops to zero; what
# it projects to changes too.
pops = intact.connectome.populations
fig, ax = plt.subplots(figsize=(8, 3.6))
width = 0.8 / (len(results) - 1)
for i, name in enumerate(list(results)[1:]):
    change = np.abs(results[name].activity - results["intact"].activity)
    per_pop = [change[:, :, p.slice].mean() for p in pops]
    ax.bar(np.arange(len(pops)) + (i - 1) * width, per_pop, width, label=name)
ax.set_xticks(np.arange(len(pops)), [p.name for p in pops], rotation=60, fontsize=8)
ax.set_ylabel("mean |rate change| (Hz)")
ax.set_title("Rate change from the intact circuit, per population")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# In an experiment file
# ---------------------
# The same lesion for a whole run — rate model, spiking twin and comparison — is a table of the
# experiment file (``cortexsim run lesioned.toml``)::
#
#     [lesion]
#     silence = ["PT5B"]
#     cut = ["IT2/3 -> PT5B"]
#
# ``experiments/sweeps/lesions.toml`` silences each of the 17 populations in turn on two seeds
# (``cortexsim sweep experiments/sweeps/lesions.toml --out results/lesions``); the lesioned points
# reuse the network their intact point trained. :doc:`/guide` ("Lesions") and :doc:`/results`
# ("Lesion study") say what it found.
