"""
The figures a run draws, and what they mean
===========================================

Every run writes its figures into ``figures/`` next to ``run.h5``. These are the smoke run's, as it
drew them, in the order the stages draw them. The smoke models are trained for seconds, so the
figures show what each one is for rather than the study's answers (those are in :doc:`/results`).
"""

# %%
import _gallery

figures = _gallery.smoke_run() / "figures"
print(sorted(p.name for p in figures.glob("*.png")))


def show(name: str) -> None:
    """One of the run's PNG files, pixel for pixel."""
    _gallery.show_image(figures / name)


# %%
# Training: ``training.png``
# --------------------------
# The loss and the hand-position R² of each training batch, and the R² of the fixed validation
# trials every ``train.eval_every`` iterations. The network kept is the one with the best
# validation R², so a late dip costs nothing.
show("training.png")

# %%
# Reaching: ``trajectories.png``
# ------------------------------
# Left: the desired hand paths (dashed) and the produced ones (solid) for every target, catch
# trials (no go cue: the hand should stay put) in black and noisy held-out trials faintly. Right:
# the distance from the centre over the trial, with target onset, go cue and movement marked.
# ``trajectories_spiking.png`` and ``trajectories_{rnn,gru,lstm}.png`` are the same for the twin
# and the ANNs.
show("trajectories.png")

# %%
# The circuit's layers: ``layer_rates.png``
# -----------------------------------------
# Every population's mean rate over the trial, one panel per layer (solid: excitatory, dashed:
# inhibitory). Which populations carry the target during the delay and which burst at the go cue
# is read here; PT5B (L5B) drives the hand.
show("layer_rates.png")

# %%
# The spiking twin: ``raster.png`` and ``spiking_fidelity.png``
# -------------------------------------------------------------
# The twin replaces every rate unit with K leaky integrate-and-fire neurons in Brian2. The raster
# shows their spikes by layer over the trials; the fidelity figure compares each population with
# the rate model it stands for: correlation of the PSTHs (the red line marks 0.9), the ratio of
# the rates, the twin's rate and the spike trains' irregularity (CV of the inter-spike intervals;
# 1 is Poisson).
show("raster.png")

# %%
show("spiking_fidelity.png")

# %%
# How similar are the models? ``similarity_models.png``
# -----------------------------------------------------
# Mean canonical correlation (CCA) of the top principal components of every pair of models'
# activity on the same conditions, with the condition-shuffle null in brackets: a similarity means
# something only well above its null. ``similarity_parts_vs_ann.png`` does the same for every layer
# and population of the circuit against each ANN: the most ANN-like layer is the study's first
# answer. ``dsa_models.png`` and ``dsa_parts_vs_ann.png`` compare dynamics rather than geometry
# (DSA, lower = more similar).
show("similarity_models.png")

# %%
show("similarity_parts_vs_ann.png")

# %%
# Rotations: ``jpca.png`` and ``pca.png``
# ---------------------------------------
# jPCA (Churchland et al. 2012) finds the plane in which the activity around movement onset rotates
# most; each panel shows every condition's trajectory in it (the dot is the window's start), with
# the share of the dynamics a rotation explains (R² skew / best) and its frequency. ``pca.png``
# shows the same activity in its top principal components, without asking for rotation.
show("jpca.png")

# %%
# Fixed points: ``fixed_points.png`` and ``eigenspectra.png``
# -----------------------------------------------------------
# Where each model's dynamics come to rest under a constant input: the trajectories in PC space
# with the fixed points found under zero input (black) and under the delay input of two opposite
# targets (colours); filled points are stable, open ones saddles or unstable, squares marginal.
# ``eigenspectra.png`` shows the eigenvalues of the Jacobian at the zero-input points with the unit
# circle: how close to it they lie says how slowly each model forgets.
show("fixed_points.png")

# %%
# On the arm
# ----------
# ``cortexsim run experiments/arm_center_out.toml`` (the README's first command, about 14 minutes on
# 2 cores; not run here) makes the circuit drive a six-muscle arm in closed loop and adds
# ``arm.png`` (stick figures over each reach, hand paths and speed profiles), ``arm_spiking.png``
# (the twin on the same arm) and ``muscles.png`` (each muscle's activation per condition, and how
# much each population contributes to each muscle: the RMS change of its excitation when the
# population is silenced). ``arm_curl.toml`` adds ``curl.png``, ``arm_bump.toml`` ``bumps.png``,
# ``arm_maze.toml`` ``maze.png`` and every arm run ``rotation_sources.png``: :doc:`/guide` says
# what each shows, and :doc:`/results` what the study found in them.
