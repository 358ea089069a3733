"""The comparison battery: brain-like circuit versus ANNs (and recorded data), as pure functions.

Takes activities -- the rate circuit as a whole, each layer and each population of it,
each ANN baseline, the spiking twin when present, recorded data -- and compares every
pair with the population-dynamics measures of :mod:`cortexsim.analysis`:

==================  ==============================================  ===================
column              measure                                         more similar when
==================  ==============================================  ===================
``cca``             mean canonical correlation of the top PCs       higher (max 1)
``shape_distance``  Procrustes angular shape distance               lower (min 0)
``cka``             linear CKA                                      higher (max 1)
``rsa``             Spearman r of condition RDMs                    higher (max 1)
``*_null``          mean of the condition-shuffle null              --
``cca_null_time``   mean cca with time courses circularly shifted   --
``cca_p``           share of shuffles with cca >= observed          lower = significant
==================  ==============================================  ===================

Every activity is first reduced to its top ``n_pcs`` principal components
(computed over conditions x time), so that large and small populations are
compared on equal footing and the battery stays fast; the measures above are
invariant to the rotation this implies.  jPCA (Churchland et al. 2012) runs on a
window around movement onset (their -50 to +150 ms by default, ``[compare] jpca_window``; on a
body each model's own measured onset, :mod:`.onsets`) and reports how rotational each activity is.

Arrays and records in, records out: no file is read or written here (activities come
from :func:`cortexsim.store.read_activities` and :func:`activity_from_data`; the
result goes to :func:`cortexsim.store.write_analysis`, :mod:`cortexsim.report` and
:func:`cortexsim.plots.battery_figures`).  The meanings of the tables' columns live here
(:data:`SIMILARITY_COLUMNS`, :data:`JPCA_COLUMNS`, :data:`ANALYSIS_TABLES`).

A package of one concept per module, whose names this ``__init__`` re-exports (``battery.run_battery``,
``battery.run_dynamics``, ...):

============  =================================================================================
module        what it holds
============  =================================================================================
``columns``   the tables' columns and what they mean
``measures``  the measures of one pair or one activity: PCs, similarity with its nulls, jPCA,
              DSA, surrogate p-values, tangling; how far a lesion moves the dynamics
``rows``      the battery: every pair and activity of a run and its data, in parts that are
              computed apart and merged (:class:`BatteryPart`), the headline answers and metrics
``dynamics``  what the models' dynamics add: ceilings, communication subspaces, fixed points
``onsets``    movement onset for jPCA: scheduled, recorded, or each model's own measured from its
              hand on a body (:func:`movement_aligned`), and the window cut around it
============  =================================================================================
"""

from __future__ import annotations

from ..store import Row
from .columns import ANALYSIS_TABLES, JPCA_COLUMNS, SIMILARITY_COLUMNS, TABLE_COLUMNS
from .dynamics import (
    COMMUNICATION_PAIRS,
    FIXED_POINT_MAX_ITER,
    PROBE_TARGETS,
    DynamicsResult,
    FixedPointJob,
    ModelProbe,
    Replicate,
    Search,
    SingleTrials,
    calibration_row,
    communication_rows,
    dynamics_metrics,
    fixed_point_rows,
    model_dynamics,
    probe_inputs,
    probe_model,
    run_dynamics,
    start_fixed_points,
    with_battery,
)
from .measures import (
    CFR_MAX_ITER,
    DSA_KINDS,
    DSA_RANDOM_STARTS,
    NULL_METHODS,
    SCORE_DIRECTIONS,
    TANGLING_PCS,
    compare_pair,
    dsa_distance,
    jpca_null_columns,
    jpca_row,
    lesion_dsa,
    lesion_similarity,
    plain_row,
    reduce_to_pcs,
    score_functions,
    surrogate_columns,
    surrogates_of,
    tangling_row,
    tangling_rows,
)
from .onsets import (
    JPCA_WINDOW,
    MEASURED,
    ONSET_FRACTION,
    RECORDED,
    SCHEDULED,
    AlignedActivity,
    aligned_window,
    alignment_of,
    measured_onsets,
    movement_aligned,
    onset_shift_ms,
    onsets_of,
)
from .rows import (
    BatteryPart,
    BatteryResult,
    BatterySettings,
    activity_from_data,
    data_part,
    headline,
    headline_metrics,
    merge,
    own_part,
    run_battery,
    short_name,
)

__all__ = [
    "ANALYSIS_TABLES",
    "AlignedActivity",
    "JPCA_WINDOW",
    "MEASURED",
    "ONSET_FRACTION",
    "RECORDED",
    "SCHEDULED",
    "aligned_window",
    "alignment_of",
    "measured_onsets",
    "movement_aligned",
    "onset_shift_ms",
    "onsets_of",
    "BatteryPart",
    "BatteryResult",
    "BatterySettings",
    "CFR_MAX_ITER",
    "COMMUNICATION_PAIRS",
    "DSA_KINDS",
    "DSA_RANDOM_STARTS",
    "DynamicsResult",
    "FIXED_POINT_MAX_ITER",
    "FixedPointJob",
    "JPCA_COLUMNS",
    "ModelProbe",
    "NULL_METHODS",
    "PROBE_TARGETS",
    "Replicate",
    "Row",
    "SCORE_DIRECTIONS",
    "SIMILARITY_COLUMNS",
    "SingleTrials",
    "TABLE_COLUMNS",
    "TANGLING_PCS",
    "activity_from_data",
    "calibration_row",
    "communication_rows",
    "compare_pair",
    "data_part",
    "dsa_distance",
    "dynamics_metrics",
    "fixed_point_rows",
    "headline",
    "headline_metrics",
    "jpca_null_columns",
    "jpca_row",
    "lesion_dsa",
    "lesion_similarity",
    "merge",
    "model_dynamics",
    "own_part",
    "plain_row",
    "probe_inputs",
    "probe_model",
    "reduce_to_pcs",
    "run_battery",
    "run_dynamics",
    "score_functions",
    "short_name",
    "Search",
    "start_fixed_points",
    "surrogate_columns",
    "surrogates_of",
    "tangling_row",
    "tangling_rows",
    "with_battery",
]
