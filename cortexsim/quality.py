"""The quality gate: whether each trained model actually did its task.

A similarity or a rotation measured on a network that never learned to reach says
nothing about motor cortex.  Every run therefore checks each trained model's held-out
reach metrics (the ``/metrics`` attributes ``rate_*``, ``spiking_*``, ``ann_<arch>_*``)
against bars that the experiment sets for its own task and effector in ``[quality]``.
A model that misses a bar is named at the top of the console output and of
``summary.md``, ``/metrics@quality_passed`` is 0, and every answer drawn from it is
marked; ``cortexsim run --strict`` then exits with status 1.

The default bars are those of the kinematic center-out task (issue 10): noise-free
position R^2 >= 0.98, endpoint error < 1 cm and catch drift < 1 cm for the rate circuit
and every ANN, and a single-trial decoded position R^2 >= 0.9 for the spiking twin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .config import ANN_ARCHITECTURES, QualityConfig
from .model_id import ModelId, anns

MODELS: tuple[ModelId, ...] = (
    ModelId("rate"),
    ModelId("spiking"),
    ModelId("control"),
    *anns(sorted(ANN_ARCHITECTURES)),
)
"""Every model the gate can judge, in the order it lists them (the ANNs by name)."""


def model_label(model: str) -> str:
    """Plain-word name of a metric prefix (``"rate"`` -> ``"the rate circuit"``; :attr:`ModelId.words`)."""
    identity = ModelId.of_prefix(model)
    return identity.words if identity is not None else model


@dataclass(frozen=True)
class Shortfall:
    """One bar a model missed.

    Attributes
    ----------
    model : str
        Metric prefix (``rate``, ``spiking``, ``ann_<arch>``).
    metric : str
        The ``/metrics`` attribute.
    value : float
        Its value (NaN when it was not computed).
    bar : float
        The bar it had to meet.
    kind : str
        ``"min"`` (value must be >= bar) or ``"max"`` (value must be < bar).
    """

    model: str
    metric: str
    value: float
    bar: float
    kind: str

    def text(self) -> str:
        """E.g. ``rate_position_r2 = 0.65 (needs >= 0.98)``."""
        need = f">= {self.bar:g}" if self.kind == "min" else f"< {self.bar:g}"
        return f"{self.metric} = {self.value:.4g} (needs {need})"


@dataclass(frozen=True)
class QualityVerdict:
    """The gate's verdict on every model a run trained.

    Attributes
    ----------
    models : tuple of str
        Metric prefixes checked, in order.
    shortfalls : tuple of Shortfall
        Every missed bar.
    budget_hits : tuple of str
        Models whose training the wall-clock safety net stopped (``<model>_budget_hit = 1``):
        not a failure, but their numbers depend on the machine's speed and load.
    """

    models: tuple[str, ...]
    shortfalls: tuple[Shortfall, ...]
    budget_hits: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every checked model met every bar."""
        return not self.shortfalls

    @property
    def failed_models(self) -> tuple[str, ...]:
        """Prefixes of the models that missed at least one bar, in order."""
        failed = {s.model for s in self.shortfalls}
        return tuple(m for m in self.models if m in failed)

    def failed(self, model: str) -> bool:
        """True if ``model`` (a metric prefix) missed a bar."""
        return model in self.failed_models

    def describe(self, model: str) -> str:
        """One line: which model failed and by how much."""
        misses = "; ".join(s.text() for s in self.shortfalls if s.model == model)
        return f"{model_label(model)} FAILED its task: {misses}"

    def lines(self) -> list[str]:
        """Plain-word lines for the console and ``summary.md`` (one per failed model, or one that all passed)."""
        if self.passed:
            return [f"quality gate passed: {', '.join(model_label(m) for m in self.models)} met the [quality] bars"]
        return [self.describe(m) for m in self.failed_models] + [
            "results drawn from a model that failed its task do not show how a working circuit solves it"
        ]

    def warnings(self) -> list[str]:
        """``WARNING:`` lines: one per failed model (and the caveat), one per training stopped by its budget."""
        lines = [] if self.passed else [f"WARNING: {line}" for line in self.lines()]
        return lines + [
            f"WARNING: training of {model_label(m)} was stopped by its wall-clock safety net "
            f"(max_seconds); its numbers depend on the machine's speed and load"
            for m in self.budget_hits
        ]

    def to_metrics(self) -> dict[str, float]:
        """``quality_passed`` and ``<model>_quality_passed`` (1 or 0) for ``/metrics``."""
        out = {"quality_passed": float(self.passed)}
        out.update({f"{m}_quality_passed": float(not self.failed(m)) for m in self.models})
        return out


def model_prefixes(metrics: Mapping[str, float]) -> tuple[str, ...]:
    """The trained models whose reach metrics ``metrics`` holds (rate, spiking, control, ann_<arch>, in that order)."""
    return tuple(m.prefix for m in MODELS if f"{m.prefix}_position_r2" in metrics)


def check_written(metrics: Mapping[str, float], quality: QualityConfig) -> QualityVerdict:
    """The bars among ``quality``'s whose metric ``metrics`` holds, e.g. those one stage just wrote.

    Unlike :func:`check_quality`, a bar whose metric is absent is skipped, not missed: a stage that
    writes a model's perturbation metrics, or its reach metrics before the perturbation stage has
    run, is judged on what it wrote.
    """
    candidates = [m.prefix for m in MODELS]
    models, shortfalls = [], []
    for model in candidates:
        bars = [b for b in quality.bars(model) if b[0] in metrics]
        if not bars:
            continue
        models.append(model)
        for metric, kind, bar in bars:
            value = float(metrics[metric])
            if not (math.isfinite(value) and (value >= bar if kind == "min" else value < bar)):
                shortfalls.append(Shortfall(model, metric, value, bar, kind))
    return QualityVerdict(tuple(models), tuple(shortfalls), ())


def check_quality(metrics: Mapping[str, float], quality: QualityConfig) -> QualityVerdict:
    """Check every model found in ``metrics`` against the bars of ``quality``.

    A missing or non-finite metric counts as a miss; ``<model>_budget_hit = 1`` attributes are
    collected in :attr:`QualityVerdict.budget_hits`.

    Parameters
    ----------
    metrics : mapping of str to float
        The run's ``/metrics`` attributes.
    quality : QualityConfig

    Returns
    -------
    QualityVerdict
    """
    models = model_prefixes(metrics)
    hits = tuple(k.removesuffix("_budget_hit") for k, val in metrics.items() if k.endswith("_budget_hit") and val == 1)
    shortfalls = []
    for model in models:
        for metric, kind, bar in quality.bars(model):
            value = float(metrics.get(metric, math.nan))
            ok = math.isfinite(value) and (value >= bar if kind == "min" else value < bar)
            if not ok:
                shortfalls.append(Shortfall(model, metric, value, bar, kind))
    return QualityVerdict(models, tuple(shortfalls), hits)
