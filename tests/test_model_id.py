"""One identity per model (`cortexsim.model_id.ModelId`): every name derived in one place, parsed nowhere else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cortexsim.config import ANN_ARCHITECTURES
from cortexsim.model_id import KINDS, ModelId, anns, is_whole_model, of_activity

PACKAGE = Path(__file__).resolve().parents[1] / "cortexsim"

EVERY = (ModelId("rate"), ModelId("spiking"), ModelId("control"), *anns())


@pytest.mark.parametrize("model", EVERY, ids=str)
def test_every_spelling_of_a_model_parses_back_to_it(model):
    for name in {model.stage, model.prefix, model.group, "/" + model.group, model.short}:
        assert ModelId.parse(name) == model
    assert ModelId.of_prefix(model.prefix) == model
    assert of_activity(model.stage) == model and is_whole_model(model.stage)
    assert str(model) == model.stage


def test_the_names_of_an_ann():
    gru = ModelId.ann("gru")
    assert (gru.stage, gru.prefix, gru.group, gru.label, gru.words, gru.short) == (
        "ann:gru",
        "ann_gru",
        "ann/gru",
        "GRU",
        "the GRU",
        "gru",
    )
    assert ModelId("rate").label == "rate circuit" and ModelId("rate").words == "the rate circuit"


@pytest.mark.parametrize(
    ("name", "model", "whole"),
    [
        ("rate", ModelId("rate"), True),
        ("rate:L5B", ModelId("rate"), False),
        ("rate:PT5B", ModelId("rate"), False),
        ("ann:lstm", ModelId.ann("lstm"), True),
        ("lesioned/ann:rnn", ModelId.ann("rnn"), True),
        ("spiking", ModelId("spiking"), True),
        ("data", None, False),
        ("data:monkey", None, False),
        ("ann:transformer", None, False),
    ],
)
def test_activity_names_belong_to_their_model(name, model, whole):
    assert of_activity(name) == model
    assert is_whole_model(name) is whole


@pytest.mark.parametrize("bad", ["", "ann", "ann:", "ann_xyz", "gpt", "rates", "ann:gru:L5B"])
def test_a_name_that_is_no_model_is_refused(bad):
    with pytest.raises(ValueError):
        ModelId.parse(bad)
    assert ModelId.of_prefix(bad) is None


def test_an_identity_is_checked():
    with pytest.raises(ValueError):
        ModelId("ann")  # an ANN needs its architecture
    with pytest.raises(ValueError):
        ModelId("rate", "gru")
    with pytest.raises(ValueError):
        ModelId("tree")
    assert set(KINDS) == {"rate", "spiking", "control", "ann"}
    assert [m.arch for m in anns()] == list(ANN_ARCHITECTURES)


# -- no string surgery on model names outside model_id ----------------------------------------------------------------
_SURGERY = re.compile(r"(^|[^a-z])ann[:_/](\{|$)")
"""A string literal that builds or parses a model name (``f"ann_{arch}"``, ``"ann:"``, ``f"ann/{arch}"``)."""
_CALLS = ("startswith", "removeprefix", "partition", "split", "replace")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _surgery(path: Path) -> list[str]:
    """One line per source line of ``path`` that builds or takes apart a model name."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    docs |= {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{" for v in node.values)
            if _SURGERY.search(text):
                found.append(f"{path.name}:{node.lineno}: f-string {text!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CALLS:
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("ann"):
                    found.append(f"{path.name}:{node.lineno}: .{node.func.attr}({arg.value!r})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in ("ann:", "ann_", "ann/"):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    lines = {}
    for hit in found:
        lines.setdefault(hit.split(": ", 1)[0], hit)
    return sorted(lines.values())


def test_the_surgery_check_finds_a_planted_name(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        'def f(arch, name):\n    a = f"ann_{arch}"\n    b = name.startswith("ann:")\n    return a, b, "ann/"\n'
    )
    assert len(_surgery(planted)) == 3


def test_no_module_builds_or_takes_apart_a_model_name_but_model_id():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "model_id.py" for hit in _surgery(path)]
    assert not offenders, "use cortexsim.model_id.ModelId instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("name", "model", "whole"),
    [
        ("rate:L2/3", "rate", False),  # a layer or population may hold a "/": it is not a source
        ("spiking:PV2/3", "spiking", False),
        ("run2/rate:IT2/3", "rate", False),
        ("run2/rate", "rate", True),
        ("run2/ann:gru", "ann:gru", True),
        ("ann:gru", "ann:gru", True),
    ],
)
def test_an_activity_names_its_model_whatever_its_population_is_called(name, model, whole):
    from cortexsim.model_id import is_whole_model, of_activity

    assert of_activity(name) == ModelId.parse(model)
    assert is_whole_model(name) is whole
