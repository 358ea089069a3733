"""Loading condition-averaged rates from ``.npz``, ``.mat`` and NWB files."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, CortexsimError
from .neural import AXIS_NAMES, SUPPORTED_SUFFIXES, DataError, NeuralData, RecordedTrials, plain_scalar

# --------------------------------------------------------------------------- loading


def load_neural_data(
    path: str | Path,
    *,
    variable: str | None = None,
    layout: str | Sequence[str] = "neurons,time,conditions",
    align_event: str | None = None,
    bin_size: float = 0.01,
    window: tuple[float, float] = (-0.5, 0.5),
    smooth_sd: float = 0.02,
    condition_column: str | None = "condition",
) -> NeuralData:
    """Load condition-averaged neural data from a ``.npz``, ``.mat`` or ``.nwb`` file.

    Parameters
    ----------
    path : str or Path
        The file; its suffix picks the reader.
    variable : str, optional
        ``.npz``/``.mat``: name of the rates array (default ``rates``).
    layout : str or sequence of str
        ``.npz``/``.mat``: the axes of the rates array in order, comma-separated, from
        ``neurons`` (or ``units``), ``time``, ``conditions``.  MATLAB v7.3 arrays are
        read back in MATLAB's own axis order, so give the layout MATLAB shows.
    align_event : str, optional
        ``.nwb``: the trials column to align spikes to (required, e.g. ``move_on``).
        ``.npz``/``.mat``: the event name to record (else a stored ``align_event``
        string, else ``"unspecified"``).
    bin_size : float
        ``.nwb``: PSTH bin width (s).
    window : (float, float)
        ``.nwb``: start and end of the PSTH (s) relative to the event; a whole number of bins.
    smooth_sd : float
        ``.nwb``: standard deviation (s) of the Gaussian that smooths the PSTHs along
        time (edges padded with the nearest value); 0 turns smoothing off.
    condition_column : str or None
        ``.nwb``: the trials column whose values define conditions; ``None`` averages
        all trials into one condition ``"all"``.

    Returns
    -------
    NeuralData
        Rates (conditions, time, units) in Hz.  Condition labels are sorted (numerically
        when they are all numbers); NWB trials whose event time is NaN are skipped.

    Raises
    ------
    DataError
        Unsupported suffix, missing or unreadable file, missing arrays or columns,
        inconsistent shapes or time bases.
    ConfigError
        A bad ``layout``, ``bin_size``, ``window`` or ``smooth_sd``.
    CortexsimError
        An NWB file but pynwb is not installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; supported: .npz (numpy), "
            ".mat (MATLAB v5/v7/v7.3), .nwb (Neurodata Without Borders)"
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if suffix == ".nwb":
        return _load_nwb(path, align_event, bin_size, window, smooth_sd, condition_column)
    axes = _parse_layout(layout)
    arrays = _read_npz(path) if suffix == ".npz" else _read_mat(path)
    return _from_arrays(arrays, path, variable or "rates", axes, align_event, matlab=suffix == ".mat")


def _parse_layout(layout: str | Sequence[str]) -> list[str]:
    """The axes named by ``layout`` as ``units``/``time``/``conditions``."""
    parts = layout.split(",") if isinstance(layout, str) else list(layout)
    axes = [AXIS_NAMES.get(str(p).strip().lower(), "?") for p in parts]
    if sorted(axes) != ["conditions", "time", "units"]:
        raise ConfigError(
            f"layout={layout!r}: name the three axes of the rates array in order, each once, from neurons "
            "(or units), time, conditions; e.g. 'neurons,time,conditions' or 'conditions,time,neurons'"
        )
    return axes


def _from_arrays(
    arrays: Mapping[str, Any], path: Path, name: str, axes: list[str], align_event: str | None, *, matlab: bool
) -> NeuralData:
    """Build :class:`NeuralData` from the arrays of a ``.npz`` or ``.mat`` file."""
    missing = [key for key in (name, "time") if key not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "none"
        hint = " (pass variable= to name the rates array)" if name in missing else ""
        raise DataError(
            f"{path}: missing {' and '.join(repr(k) for k in missing)}{hint}; arrays found: {found}. "
            f"Store the rates (Hz) as {name!r} and the bin times (s) as 'time'"
        )
    rates = np.asarray(arrays[name])
    time = np.asarray(arrays["time"])
    for key, value in ((name, rates), ("time", time)):
        if value.dtype.kind not in "biuf":
            raise DataError(f"{path}: {key!r} must be numeric, got dtype {value.dtype}")
    if matlab and rates.ndim == 2:
        rates = rates[:, :, np.newaxis]  # MATLAB drops a trailing singleton axis
    layout = ",".join(axes)
    if rates.ndim != 3:
        raise DataError(f"{path}: {name!r} has shape {rates.shape}; expected 3 axes ({layout})")
    rates = np.transpose(rates, [axes.index(a) for a in ("conditions", "time", "units")])
    n_cond, n_time, n_units = rates.shape
    time = time.ravel()
    if time.size != n_time:
        raise DataError(
            f"{path}: 'time' has {time.size} values but {name!r} {np.shape(arrays[name])} has {n_time} along its "
            f"time axis (axis {axes.index('time')} of layout '{layout}'); check layout="
        )
    conditions = _labels(arrays.get("conditions"), n_cond, path, "conditions")
    unit_ids = _labels(arrays.get("unit_ids"), n_units, path, "unit_ids")
    stored_event = _labels(arrays.get("align_event"), 1, path, "align_event")[0] if "align_event" in arrays else None
    event = align_event or stored_event or "unspecified"
    return NeuralData(rates, time, tuple(map(str, conditions)), unit_ids, str(event), str(path))


def _labels(value: Any, n: int, path: Path, key: str) -> tuple[Any, ...]:
    """Labels as a tuple of str/int/float; ``0 .. n-1`` when ``value`` is None."""
    if value is None:
        return tuple(range(n))
    array = np.asarray(value)
    if array.dtype.kind in "US" and array.ndim == 0:
        items = [array.item()]
    else:
        items = [plain_scalar(x) for x in array.ravel(order="F" if array.dtype == object else "C")]
    items = [x.rstrip() if isinstance(x, str) else x for x in items]
    if len(items) != n:
        raise DataError(f"{path}: {key!r} has {len(items)} entries for {n} along that axis of the rates")
    return tuple(items)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a ``.npz`` file (no pickled objects)."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz archive; save one with np.savez(path, rates=..., time=...)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except ValueError as exc:
        raise DataError(
            f"{path}: holds an array that is not plain numbers or text ({exc}); save labels as string arrays, "
            "e.g. np.array(labels, dtype=str), not Python objects"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def _read_mat(path: Path) -> dict[str, Any]:
    """All variables of a MATLAB file: v4/v5/v7 via scipy, v7.3 (HDF5) via h5py."""
    import h5py

    if h5py.is_hdf5(path):
        return _read_mat73(path)
    from scipy.io import loadmat

    try:
        raw = loadmat(path, chars_as_strings=True)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for foreign or broken files (IndexError, ...)
        raise DataError(
            f"{path}: not a MATLAB file cortexsim can read ({exc}); save it with MATLAB's save(..., '-v7') "
            "or '-v7.3', or as .npz"
        ) from None
    return {key: value for key, value in raw.items() if not key.startswith("__")}


def _read_mat73(path: Path) -> dict[str, Any]:
    """Top-level numeric, char and cell variables of a MATLAB v7.3 (HDF5) file, in MATLAB's axis order."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {
                name: _mat73_value(f, obj)
                for name, obj in f.items()
                if isinstance(obj, h5py.Dataset) and not name.startswith("#")
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:  # a damaged or foreign HDF5 file
        raise DataError(
            f"{path}: not a MATLAB v7.3 file cortexsim can read ({type(exc).__name__}: {exc}); save it with "
            "MATLAB's save(..., '-v7.3') or as .npz"
        ) from None


def _mat73_value(f: Any, dataset: Any) -> Any:
    """One MATLAB v7.3 variable; HDF5 stores MATLAB arrays transposed, so transpose back."""
    kind = dataset.attrs.get("MATLAB_class", b"")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if dataset.attrs.get("MATLAB_empty", 0):
        return np.zeros(0)
    value = np.asarray(dataset[()]).T
    if kind == "char":  # uint16 codes, one string per MATLAB row
        return np.array(["".join(map(chr, row)).rstrip() for row in np.atleast_2d(value)])
    if kind == "cell":  # object references to the cell contents
        cells = [plain_scalar(_mat73_value(f, f[ref])) for ref in value.ravel(order="F")]
        out = np.empty(len(cells), dtype=object)
        out[:] = cells
        return out
    return value


# --------------------------------------------------------------------------- NWB


def _load_nwb(
    path: Path,
    align_event: str | None,
    bin_size: float,
    window: tuple[float, float],
    smooth_sd: float,
    condition_column: str | None,
) -> NeuralData:
    """Trial-averaged PSTHs (Hz) from the Units and trials tables of an NWB file."""
    edges = _bin_edges(bin_size, window)
    if not (isinstance(smooth_sd, (int, float)) and math.isfinite(smooth_sd) and smooth_sd >= 0):
        raise ConfigError(f"smooth_sd={smooth_sd!r}: expected a Gaussian s.d. in seconds >= 0 (0 turns smoothing off)")
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise CortexsimError(
            f'{path}: reading NWB files needs the optional package pynwb; install it with pip install "cortexsim[nwb]"'
        ) from None
    try:
        with NWBHDF5IO(str(path), mode="r") as io:
            nwb = io.read()
            events, labels, columns = _nwb_trials(nwb, path, align_event, condition_column)
            spikes, unit_ids = _nwb_spikes(nwb, path)
    except CortexsimError:
        raise
    except Exception as exc:  # pynwb/hdmf raise many types for foreign or broken files
        raise DataError(f"{path}: not a readable NWB file ({type(exc).__name__}: {exc})") from None
    valid = np.isfinite(events)
    if not valid.any():
        raise DataError(f"{path}: every trial has a NaN {align_event!r} time; pick another align_event from: {columns}")
    conditions, index = _condition_index([labels[i] for i in np.flatnonzero(valid)])
    onehot = np.zeros((len(conditions), index.size))
    onehot[index, np.arange(index.size)] = 1.0
    n_trials = onehot.sum(axis=1)
    weights = onehot / (n_trials[:, None] * bin_size)  # mean over trials, counts → Hz
    grid = events[valid][:, None] + edges[None, :]  # (trials, bins + 1) absolute bin edges
    rates = np.empty((len(conditions), edges.size - 1, len(spikes)))
    for u, times in enumerate(spikes):
        counts = np.diff(np.searchsorted(times, grid, side="left"), axis=1)  # spikes in [edge, next edge)
        rates[:, :, u] = weights @ counts
    if smooth_sd > 0:
        from scipy.ndimage import gaussian_filter1d

        rates = gaussian_filter1d(rates, smooth_sd / bin_size, axis=1, mode="nearest")
    time = edges[:-1] + bin_size / 2
    return NeuralData(rates, time, conditions, unit_ids, str(align_event), str(path), tuple(n_trials.astype(int)))


def _bin_edges(bin_size: float, window: tuple[float, float]) -> np.ndarray:
    """PSTH bin edges (s) relative to the event, shape (bins + 1,)."""
    if not (isinstance(bin_size, (int, float)) and math.isfinite(bin_size) and bin_size > 0):
        raise ConfigError(f"bin_size={bin_size!r}: expected a bin width in seconds > 0, e.g. 0.01")
    try:
        start, stop = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ConfigError(f"window={window!r}: expected (start, stop) in seconds, e.g. (-0.5, 0.5)") from None
    if not (math.isfinite(start) and math.isfinite(stop) and start < stop):
        raise ConfigError(f"window={window!r}: expected finite (start, stop) in seconds with start < stop")
    n_bins = round((stop - start) / bin_size)
    if n_bins < 2 or abs(n_bins * bin_size - (stop - start)) > 1e-6 * bin_size:
        raise ConfigError(
            f"window={window!r} with bin_size={bin_size!r}: the window must span a whole number (at least 2) of bins"
        )
    return start + bin_size * np.arange(n_bins + 1)


def _nwb_trials(
    nwb: Any, path: Path, align_event: str | None, condition_column: str | None
) -> tuple[np.ndarray, list[Any], str]:
    """Event time (s) and condition label of each trial, and the trials columns as text."""
    trials = nwb.trials
    if trials is None or len(trials) == 0:
        raise DataError(f"{path}: has no trials table; PSTHs need one row per trial with its event times")
    columns = ", ".join(trials.colnames)
    if align_event is None:
        raise ConfigError(f"{path}: pass align_event=, the trials column to align spikes to; available: {columns}")
    for role, name in (("align_event", align_event), ("condition_column", condition_column)):
        if name is not None and name not in trials.colnames:
            hint = "; or condition_column=None to average all trials together" if role == "condition_column" else ""
            raise DataError(f"{path}: the trials table has no column {name!r} ({role}); available: {columns}{hint}")
    try:
        events = np.asarray(trials[align_event].data[:], dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{path}: trials column {align_event!r} does not hold event times in seconds") from None
    if condition_column is None:
        return events, ["all"] * len(events), columns
    return events, [plain_scalar(x) for x in trials[condition_column].data[:]], columns


def _nwb_spikes(nwb: Any, path: Path) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Sorted spike times (s) of each unit, and the unit ids."""
    units = nwb.units
    if units is None or len(units) == 0 or "spike_times" not in units.colnames:
        raise DataError(f"{path}: has no Units table with spike_times; PSTHs need sorted spike times")
    index = units["spike_times"]  # ragged column: a VectorIndex over the flat spike times
    flat = np.asarray(index.target.data[:], dtype=float)
    ends = np.asarray(index.data[:], dtype=int)
    starts = np.concatenate([[0], ends[:-1]])
    spikes = [np.sort(flat[a:b]) for a, b in zip(starts, ends)]
    return spikes, tuple(int(i) for i in units.id[:])


def _condition_index(labels: list[Any]) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted unique labels (numerically when all numbers) as str, and each trial's index into them."""
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in labels)
    unique = sorted(set(labels)) if numeric else sorted({str(x) for x in labels})
    position = {str(x): i for i, x in enumerate(unique)}
    return tuple(str(x) for x in unique), np.array([position[str(x)] for x in labels], dtype=int)


# --------------------------------------------------------------------------- NWB, single trials


def load_nwb_trials(path: str | Path, velocity: str = "hand_velocity") -> RecordedTrials:
    """Single-trial spikes, the trials table and hand velocity of an NWB file, for scoring (:mod:`cortexsim.score`).

    Parameters
    ----------
    path : str or Path
        An NWB file with a Units table (``spike_times``; optional boolean ``heldout`` column) and a trials table.
    velocity : str
        Name of the hand-velocity TimeSeries, looked up in every processing module (cortexsim exports
        ``hand_velocity``; NLB's MC_Maze calls it ``hand_vel``); a file without it scores no velocity.

    Returns
    -------
    RecordedTrials

    Raises
    ------
    DataError
        Not an NWB file, or no Units or trials table.
    CortexsimError
        pynwb is not installed.
    """
    path = Path(path)
    if path.suffix.lower() != ".nwb":
        raise DataError(f"{path}: scoring needs an NWB file (.nwb) with single-trial spikes and a trials table")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise CortexsimError(
            f'{path}: reading NWB files needs the optional package pynwb; install it with pip install "cortexsim[nwb]"'
        ) from None
    try:
        with NWBHDF5IO(str(path), mode="r") as io:
            nwb = io.read()
            spikes, unit_ids = _nwb_spikes(nwb, path)
            trials = nwb.trials
            if trials is None or len(trials) == 0:
                raise DataError(f"{path}: has no trials table; scoring needs one row per trial with its event times")
            columns = {}
            for name in trials.colnames:
                values = np.asarray(trials[name].data[:])
                if values.ndim == 1 and values.dtype.kind in "biufUSO":
                    columns[name] = values
            columns["start_time"] = np.asarray(trials["start_time"].data[:], dtype=float)
            held = None
            if "heldout" in nwb.units.colnames:
                held = np.asarray(nwb.units["heldout"].data[:], dtype=bool)
            series = _find_series(nwb, velocity, path)
    except CortexsimError:
        raise
    except Exception as exc:  # pynwb/hdmf raise many types for foreign or broken files
        raise DataError(f"{path}: not a readable NWB file ({type(exc).__name__}: {exc})") from None
    return RecordedTrials(tuple(spikes), unit_ids, columns, held, series, str(path))


def _find_series(nwb: Any, name: str, path: Path | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(times in s, values (samples, dims)) of the TimeSeries ``name`` in any processing module, or None.

    Raises
    ------
    DataError
        The series is not numbers, has more than two axes, or its timestamps do not match its
        samples (count, finite, increasing).
    """
    for module in nwb.processing.values():
        for interface in module.data_interfaces.values():
            candidates = [interface]
            if hasattr(interface, "spatial_series"):  # Position and friends hold their series inside
                candidates += list(interface.spatial_series.values())
            for series in candidates:
                if getattr(series, "name", None) != name or not hasattr(series, "data"):
                    continue
                return _series_values(series, f"{path or 'the NWB file'}: the TimeSeries {name!r}")
    return None


def _series_values(series: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked (times, values (samples, dims)) of one TimeSeries."""
    raw = np.asarray(series.data[:])
    if raw.dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {raw.dtype} values; expected numbers (velocity, e.g. m/s)")
    values = raw.astype(float)
    if values.ndim not in (1, 2) or values.shape[0] < 2:
        raise DataError(f"{where}: has shape {values.shape}; expected (samples,) or (samples, dims), 2 samples or more")
    values = values[:, None] if values.ndim == 1 else values
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=float)
        if times.shape != (values.shape[0],):
            raise DataError(
                f"{where}: has {values.shape[0]} samples but timestamps of shape {times.shape}; expected one "
                f"timestamp per sample"
            )
    else:
        rate, start = series.rate, series.starting_time
        if rate is None or not (np.isfinite(rate) and rate > 0) or start is None or not np.isfinite(start):
            raise DataError(f"{where}: has no timestamps and no valid rate ({rate!r}) and starting_time ({start!r})")
        times = start + np.arange(values.shape[0]) / rate
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise DataError(f"{where}: timestamps must be finite and strictly increasing (s)")
    return times, values
