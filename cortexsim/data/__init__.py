"""Recorded neural data as a first-class input: condition-averaged rates from files.

Axis order, as everywhere in cortexsim: **(conditions, time, units)**.  Rates are in Hz,
times in seconds relative to an alignment event (movement onset, go cue, ...); each time
value is the centre of its bin.

=========  ===================================================================
``.npz``   arrays ``rates`` (default layout neurons × time × conditions), ``time`` (s),
           optional ``conditions`` (labels), ``unit_ids``, ``align_event``
``.mat``   the same variable names; MATLAB v4/v5/v7 through :func:`scipy.io.loadmat`,
           v7.3 (HDF5) through h5py
``.nwb``   Units table (spike times) and trials table → trial-averaged PSTHs aligned to
           a trials column; needs the optional extra ``pip install "cortexsim[nwb]"``
=========  ===================================================================

Before a model-versus-data comparison, :func:`match_time_base` puts the data on the
model's time grid (slicing when the steps agree, linear resampling when they do not,
refusing when the windows do not overlap) and :func:`align_conditions` pairs conditions
or says that only condition-free measures (dimensionality, jPCA) can be compared.
"""

from .loaders import load_neural_data, load_nwb_trials
from .matching import ConditionMatch, TimeMatch, align_conditions, match_time_base, resample
from .neural import CONDITION_FREE_MEASURES, SUPPORTED_SUFFIXES, DataError, NeuralData, RecordedTrials

__all__ = [
    "CONDITION_FREE_MEASURES",
    "SUPPORTED_SUFFIXES",
    "ConditionMatch",
    "DataError",
    "NeuralData",
    "RecordedTrials",
    "TimeMatch",
    "align_conditions",
    "load_neural_data",
    "load_nwb_trials",
    "match_time_base",
    "resample",
]
