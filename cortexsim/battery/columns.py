"""The comparison battery's tables: their columns and what each means (written with ``/analysis``)."""

from __future__ import annotations

SIMILARITY_COLUMNS = {
    "a": "first activity",
    "b": "second activity",
    "cca": "mean canonical correlation of the top PCs (higher = more similar, max 1)",
    "shape_distance": "Procrustes angular shape distance, rad (lower = more similar, min 0)",
    "cka": "linear CKA (higher = more similar, max 1)",
    "rsa": "Spearman r of condition dissimilarity matrices (higher = more similar)",
    "cca_null": "mean cca over condition shuffles (the null model)",
    "shape_distance_null": "mean shape distance over condition shuffles",
    "cka_null": "mean CKA over condition shuffles",
    "rsa_null": "mean RSA over condition shuffles",
    "cca_p": "share of condition shuffles with cca >= observed (small = significant)",
    "cca_null_time": "mean cca when each condition's time course is circularly shifted (time-shuffle null)",
    "dsa": "DSA: angular Procrustes distance of the fitted DMD operators, rad (lower = more similar dynamics)",
    **{
        f"{score}_p_{method}": f"share of {method.upper()} surrogates of b at least as similar in {score}"
        for score in ("cca", "shape_distance", "cka", "rsa")
        for method in ("tme", "cfr", "cmpt")
    },
}
"""Columns of ``/analysis/similarity`` and their meaning (attributes ``col_<name>``)."""

JPCA_COLUMNS = {
    "activity": "activity",
    "r2_best": "R^2 of dx = M x, M unconstrained",
    "r2_skew": "R^2 with M skew-symmetric (pure rotation)",
    "ratio": "r2_skew / r2_best (higher = more rotational, max 1)",
    "frequency_hz": "rotation frequency of the strongest jPCA plane (Hz)",
    "participation_ratio": "dimensionality (participation ratio of the covariance eigenvalues)",
    "window_start_s": "start of the jPCA window, s from movement onset ([compare] jpca_window, unless the trial ends)",
    "window_stop_s": "end of the jPCA window (last step analysed), s from movement onset",
    "alignment": "what movement onset is: 'measured movement onset' (the model's own hand speed crossing "
    "[compare] jpca_onset_fraction of its peak after go, per condition; models on a body), 'scheduled movement "
    "onset' (the task's; models without a body) or 'recorded movement onset' (the data's alignment event)",
    "onset_shift_ms": "mean over conditions of the onset used minus the scheduled one (ms; 0 when scheduled)",
    "decode_position_r2": "held-out R^2 of hand position by ridge regression, folds over conditions",
    "decode_velocity_r2": "the same for hand velocity",
    "variance_plane1": "share of the analysed variance in the strongest jPCA plane",
    "variance_plane2": "the same, second plane",
    "variance_plane3": "the same, third plane",
    "ratio_p_tme": "share of TME surrogates with a jPCA ratio >= observed (small = significant)",
    "ratio_p_cfr": "the same against CFR surrogates (Elsayed & Cunningham 2017)",
    "ratio_p_cmpt": "the same against CMPT surrogates (Michaels et al. 2016)",
}
"""Columns of ``/analysis/jpca`` and their meaning, in table order."""


ANALYSIS_TABLES = {
    "calibration": "Ceilings: every score of a model with itself (two noise seeds, or trial halves), and decoding.",
    "tangling": "Trajectory tangling (Russo et al. 2018) of every activity in its top 8 PCs, 1/s^2.",
    "communication": "Communication subspaces (Semedo et al. 2019): reduced-rank regression dimensions.",
    "fixed_points": "Fixed and slow points per model and constant input, classified by Jacobian eigenvalues.",
    "rotation_sources": "Arm runs: jPCA ratio, rotation frequency (Hz), DSA to the intact circuit (rad) and endpoint "
    "error (cm) of the trained circuit intact, without feedback, without inter-population recurrence and with each "
    "layer silenced (cortexsim.rotations).",
}
"""The dynamics tables of ``/analysis`` (besides ``similarity`` and ``jpca``): their ``description``."""

TABLE_COLUMNS = {"similarity": SIMILARITY_COLUMNS, "jpca": JPCA_COLUMNS}
"""Table name -> its columns' meanings (:func:`cortexsim.store.write_analysis` writes them as ``col_<name>``)."""
