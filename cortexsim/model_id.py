"""One identity per model, from which every name it goes by is derived.

A model of a run is known by several names, each in its own place: the pipeline's stage and the
comparison's activity (``ann:gru``), its ``/metrics`` prefix (``ann_gru``), its run-file group
(``ann/gru``), its words in ``summary.md`` and the log (``the GRU``) and its label in figures
(``GRU``).  :class:`ModelId` holds what the model *is* (its kind, and an ANN's architecture) and
derives all of them here, so no other module builds or takes apart a model's name by string
surgery; :meth:`ModelId.parse` reads any of the spellings back.

>>> gru = ModelId.ann("gru")
>>> gru.stage, gru.prefix, gru.group, gru.label, gru.words
('ann:gru', 'ann_gru', 'ann/gru', 'GRU', 'the GRU')
>>> ModelId.parse("ann_gru") == ModelId.parse("ann/gru") == ModelId.parse("ann:gru") == gru
True
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ANN_ARCHITECTURES

KINDS = ("rate", "spiking", "control", "ann")
"""The kinds of trained model: the rate circuit, its spiking twin, the control circuit, an ANN baseline."""

_LABELS = {
    "rate": ("rate circuit", "the rate circuit"),
    "spiking": ("spiking twin", "the spiking twin"),
    "control": (
        "control circuit (no inter-population recurrence)",
        "the control circuit (trained without inter-population recurrence)",
    ),
}


@dataclass(frozen=True, order=True)
class ModelId:
    """What a model of a run is: its kind and, for an ANN baseline, its architecture.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    arch : str
        The ANN's architecture (one of ``config.ANN_ARCHITECTURES``); empty for the other kinds.
    """

    kind: str
    arch: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind {self.kind!r}: expected one of {KINDS}")
        if (self.kind == "ann") != bool(self.arch):
            raise ValueError(f"model {self.kind!r}: an architecture is given for, and only for, an ANN")
        if self.arch and self.arch not in ANN_ARCHITECTURES:
            raise ValueError(f"ANN architecture {self.arch!r}: expected one of {ANN_ARCHITECTURES}")

    @classmethod
    def ann(cls, arch: str) -> ModelId:
        """The ANN baseline of architecture ``arch``."""
        return cls("ann", arch)

    @classmethod
    def parse(cls, text: str) -> ModelId:
        """The model any of its names denotes.

        ``rate``, ``spiking``, ``control``, ``ann:gru``, ``ann_gru``, ``ann/gru`` or ``gru``; a leading
        ``/`` (an absolute run-file path) is ignored.  Raises ``ValueError`` for anything else.
        """
        name = str(text).strip("/")
        if name in _LABELS:
            return cls(name)
        if name in ANN_ARCHITECTURES:
            return cls.ann(name)
        for sep in (":", "_", "/"):
            head, found, arch = name.partition(sep)
            if found and head == "ann":
                return cls.ann(arch)
        raise ValueError(f"not a model name: {text!r}")

    @classmethod
    def of_prefix(cls, prefix: str) -> ModelId | None:
        """The model whose ``/metrics`` prefix ``prefix`` is, or None when it names none."""
        try:
            model = cls.parse(prefix)
        except ValueError:
            return None
        return model if model.prefix == prefix else None

    @property
    def stage(self) -> str:
        """The pipeline's stage name, which is also the comparison's activity name: ``rate``, ``ann:gru``."""
        return f"ann:{self.arch}" if self.arch else self.kind

    @property
    def prefix(self) -> str:
        """The ``/metrics`` prefix: ``rate``, ``spiking``, ``control``, ``ann_gru``."""
        return f"ann_{self.arch}" if self.arch else self.kind

    @property
    def group(self) -> str:
        """The run-file group, from the file's root: ``rate``, ``spiking``, ``control``, ``ann/gru``."""
        return f"ann/{self.arch}" if self.arch else self.kind

    @property
    def short(self) -> str:
        """The shortest name, in ``compare_*`` metric names: ``rate``, ``spiking``, ``gru``."""
        return self.arch or self.kind

    @property
    def label(self) -> str:
        """The name in figures and tables: ``rate circuit``, ``GRU``."""
        return self.arch.upper() if self.arch else _LABELS[self.kind][0]

    @property
    def words(self) -> str:
        """The name in sentences: ``the rate circuit``, ``the GRU``."""
        return f"the {self.arch.upper()}" if self.arch else _LABELS[self.kind][1]

    def __str__(self) -> str:
        return self.stage


def of_activity(name: str) -> ModelId | None:
    """The model an activity of the comparison belongs to, or None (recorded data, surrogates).

    Activity names are a model's :attr:`ModelId.stage`, optionally followed by ``:<layer or
    population>`` and preceded by ``<source>/``: ``rate``, ``rate:L5B``, ``ann:gru``,
    ``run2/ann:gru``, ``spiking:PT5B``.
    """
    head, _, rest = _without_source(name).partition(":")
    if head == "ann":
        arch = rest.partition(":")[0]
        return ModelId.ann(arch) if arch in ANN_ARCHITECTURES else None
    return ModelId(head) if head in _LABELS else None


def is_whole_model(name: str) -> bool:
    """True when activity ``name`` is a whole model (``rate``, ``ann:gru``), not one of its layers or populations."""
    model = of_activity(name)
    return model is not None and _without_source(name) == model.stage


def _without_source(name: str) -> str:
    """Activity ``name`` without its ``<source>/`` (``run2/rate:L2/3`` -> ``rate:L2/3``).

    The source ends at the last ``/`` before the first ``:``; a population may itself hold a ``/`` (``L2/3``).
    """
    head, sep, rest = str(name).partition(":")
    return head.rsplit("/", 1)[-1] + sep + rest


def anns(archs: tuple[str, ...] | list[str] = ANN_ARCHITECTURES) -> tuple[ModelId, ...]:
    """The ANN baselines of ``archs`` (default: every architecture), in that order."""
    return tuple(ModelId.ann(a) for a in archs)


__all__ = ["KINDS", "ModelId", "anns", "is_whole_model", "of_activity"]
