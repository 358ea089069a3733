"""What the trainable recurrent models (rate network, ANN baselines) share.

Both keep time-major work buffers ``(time, trials, units)`` internally and take
trial batches in the package's ``(trials, time, channels)`` order.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .tasks import TrialBatch


class TimeMajorModel:
    """Mixin: reusable work buffers and checked, time-major task inputs.

    Subclasses set ``dt``, ``dtype``, ``n_inputs`` and ``_buffers`` (a dict).
    """

    dt: float
    dtype: np.dtype
    n_inputs: int
    _buffers: dict[str, np.ndarray]

    def _buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A work array of ``shape`` (reused between calls of the same shape)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, self.dtype)
        return buf

    def _inputs(self, batch: TrialBatch, width: int | None = None) -> np.ndarray:
        """The batch's inputs as a contiguous (time, trials, inputs) array, after checking dt and width.

        ``width``: the input channels a batch must have (default :attr:`n_inputs`; a closed loop's
        model has more inputs than the task gives, its feedback).
        """
        width = self.n_inputs if width is None else width
        if abs(batch.dt - self.dt) > 1e-12:
            raise ConfigError(f"trial batch dt {batch.dt} s differs from the network's dt {self.dt} s")
        if batch.inputs.shape[2] != width:
            raise ConfigError(f"batch has {batch.inputs.shape[2]} input channels, network {width}")
        return np.ascontiguousarray(batch.inputs.transpose(1, 0, 2), dtype=self.dtype)
