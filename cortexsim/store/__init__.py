"""The HDF5 run file, schema v2: the only door to it (and to a sweep's ``summary.h5``).

A run file explains itself to anyone with h5py: every dataset carries ``units``,
``dims`` (comma-separated axis names) and ``description`` attributes, and the root
records where the numbers came from (config, seed, versions, code commit).

Layout (see ``docs/schema.md`` for every path)::

    /                       attrs: schema_version, cortexsim_version, created_utc, seed,
                                   config (TOML text), git_commit, *_version
    /circuit                attrs: spec (TOML text), n_units, n_synapses
    /circuit/populations    table: name, layer, cell_class, subtype, start, stop
    /circuit/connectome/    pre, post, sign, weight_init (per synapse) [, weight_trained after training]
    /circuit/inputs/<group> bool per unit: receives that task input group
    /circuit/output_mask    bool per unit: read by the motor readout

Writes are atomic: everything goes to a temporary file in the same folder that is
renamed over the target only when complete (:func:`open_for_update`), so a crash
leaves either the old file or the new one.

One module per concept; this package re-exports their public names, so ``store.open_run``,
``store.read_activities``, ... are what the rest of cortexsim calls:

================  ===========================================================================
module            what it holds
================  ===========================================================================
``schema``        the schema version, a file's kind, the layout and checksum checks on open
``origin``        provenance: the root's attributes (config, seed, versions, code commit)
``datasets``      datasets, tables and typed attributes; the readers' one-line errors
``files``         opening a run file, atomic updates, the disk-space check, atomic text files
``locks``         the lock file a command holds in a folder while it writes there
``tree``          a file's tree described (``cortexsim inspect``)
``circuit``       ``/circuit`` and the trained circuit
``task``          ``/task``
``models``        ``/rate``, ``/<model>/effector``, ``/ann/<arch>``, ``/control``, hand paths
``training``      ``/training`` and its checkpoint
``stages``        ``/metrics``, the config, ``/stages``, the run's summary
``perturbation``  ``/perturbation``
``stimulation``   ``/stimulation``
``fit``           ``/fit``: a fit to recorded neurons (``read_fit`` / ``write_fit``)
``spiking``       ``/spikes`` and ``/spiking``
``analysis``      the activities a comparison reads, ``/analysis`` and its units
``sweep``         a sweep's ``summary.h5``
================  ===========================================================================
"""

from __future__ import annotations

from ..errors import RunFileError
from .analysis import (
    ANALYSIS_TEXT,
    UNITS_TEXT,
    Activity,
    AnalysisRecord,
    AnalysisUnit,
    read_activities,
    read_analysis,
    read_analysis_units,
    write_analysis,
    write_analysis_units,
)
from .circuit import TrainedRate, read_circuit, read_trained_rate, write_circuit, write_trained_weight
from .datasets import Row, attr_text, read_table, write_array, write_table
from .files import (
    COPY_MARGIN,
    check_space_for_copy,
    open_for_update,
    open_run,
    remove_stale_temporaries,
    write_text_atomic,
)
from .fit import FIT_TEXT, FitModelRecord, FitRecord, read_fit, write_fit
from .locks import LOCK_NAME, hold_folder, lock_holder, read_lock
from .models import (
    ARM_READOUT_UNITS,
    EFFECTOR_ARRAYS,
    PARAM_TEXT,
    PARAM_UNITS,
    AnnRecord,
    read_ann,
    read_control,
    read_effector,
    read_hand_paths,
    read_rates,
    write_ann,
    write_control,
    write_effector,
    write_rate,
)
from .origin import RUN_FILE_TEXT, git_commit, provenance
from .perturbation import PERTURBATION_TABLES, PERTURBATION_TEXT, read_perturbation, write_perturbation
from .schema import (
    FILE_KIND,
    FILE_KIND_TEXT,
    NWB_EXPORT_MARK,
    SCHEMA_VERSION,
    SWEEP_FILE_KIND,
    VERIFIED,
    VERIFY_BLOCK,
    check_layout,
    check_run_file,
    file_kind,
    verify_checksums,
)
from .spiking import TwinTrials, read_spikes, read_spiking_trials, read_twin_trials, write_spiking
from .stages import (
    STAGES_TEXT,
    RunSummary,
    copy_stages,
    forget_stages,
    read_config,
    read_config_text,
    read_metrics,
    read_run_summary,
    read_stages,
    write_metrics,
    write_stage,
)
from .stimulation import PROTOCOL_UNITS, STIMULATION_TABLES, STIMULATION_TEXT, read_stimulation, write_stimulation
from .sweep import SWEEP_COLUMNS, SWEEP_SUMMARY_TEXT, SweepSummary, read_sweep_summary, write_sweep_summary
from .task import read_task, read_task_targets, write_task
from .training import read_training_state, write_training
from .tree import describe, format_tree

_VERIFIED = VERIFIED
"""The file versions whose checksums this process has checked (the name the tests clear)."""

__all__ = [
    "ANALYSIS_TEXT",
    "ARM_READOUT_UNITS",
    "Activity",
    "AnalysisRecord",
    "AnalysisUnit",
    "AnnRecord",
    "COPY_MARGIN",
    "EFFECTOR_ARRAYS",
    "FILE_KIND",
    "FILE_KIND_TEXT",
    "FIT_TEXT",
    "FitModelRecord",
    "FitRecord",
    "LOCK_NAME",
    "NWB_EXPORT_MARK",
    "PARAM_TEXT",
    "PARAM_UNITS",
    "PERTURBATION_TABLES",
    "PERTURBATION_TEXT",
    "PROTOCOL_UNITS",
    "RUN_FILE_TEXT",
    "Row",
    "RunFileError",
    "RunSummary",
    "SCHEMA_VERSION",
    "STAGES_TEXT",
    "STIMULATION_TABLES",
    "STIMULATION_TEXT",
    "SWEEP_COLUMNS",
    "SWEEP_FILE_KIND",
    "SWEEP_SUMMARY_TEXT",
    "SweepSummary",
    "TrainedRate",
    "TwinTrials",
    "UNITS_TEXT",
    "VERIFIED",
    "VERIFY_BLOCK",
    "attr_text",
    "check_layout",
    "check_run_file",
    "check_space_for_copy",
    "copy_stages",
    "describe",
    "file_kind",
    "forget_stages",
    "format_tree",
    "git_commit",
    "hold_folder",
    "lock_holder",
    "open_for_update",
    "open_run",
    "provenance",
    "read_activities",
    "read_analysis",
    "read_analysis_units",
    "read_ann",
    "read_circuit",
    "read_config",
    "read_config_text",
    "read_control",
    "read_effector",
    "read_fit",
    "read_hand_paths",
    "read_lock",
    "read_metrics",
    "read_perturbation",
    "read_rates",
    "read_run_summary",
    "read_spikes",
    "read_spiking_trials",
    "read_stages",
    "read_stimulation",
    "read_sweep_summary",
    "read_table",
    "read_task",
    "read_task_targets",
    "read_trained_rate",
    "read_training_state",
    "read_twin_trials",
    "remove_stale_temporaries",
    "verify_checksums",
    "write_analysis",
    "write_analysis_units",
    "write_ann",
    "write_array",
    "write_circuit",
    "write_control",
    "write_effector",
    "write_fit",
    "write_metrics",
    "write_perturbation",
    "write_rate",
    "write_spiking",
    "write_stage",
    "write_stimulation",
    "write_sweep_summary",
    "write_table",
    "write_task",
    "write_text_atomic",
    "write_trained_weight",
    "write_training",
]
