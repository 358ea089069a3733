"""Every random draw comes from a named stream of the experiment seed (:mod:`cortexsim.streams`)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from cortexsim import streams
from cortexsim.assembly import seeded_rng
from cortexsim.config import Config

PACKAGE = Path(__file__).resolve().parents[1] / "cortexsim"
_MAKERS = {"default_rng", "SeedSequence", "RandomState", "Generator", "seed"}


def _makers(path: Path) -> list[str]:
    """Calls in ``path`` that make a generator (or seed numpy's global one) outside ``streams``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MAKERS:
            base = ast.unparse(node.func.value)
            if base.endswith("random"):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def test_the_check_finds_a_planted_generator(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import numpy as np\nrng = np.random.default_rng([1, 13])\nnp.random.seed(3)\n")
    assert len(_makers(planted)) == 2


def test_no_module_but_streams_makes_a_generator():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "streams.py" for hit in _makers(path)]
    assert not offenders, "draw from cortexsim.streams (stream, child, generator) instead:\n" + "\n".join(offenders)


def test_a_named_stream_is_the_seed_and_the_names_codes():
    a, b = streams.stream(5, "init"), np.random.default_rng([5, *(ord(c) for c in "init")])
    np.testing.assert_array_equal(a.random(8), b.random(8))
    assert not np.array_equal(streams.stream(5, "init").random(4), streams.stream(5, "inits").random(4))
    assert not np.array_equal(streams.stream(5, "init").random(4), streams.stream(6, "init").random(4))
    config = Config.from_dict({"experiment": {"seed": 11}})
    np.testing.assert_array_equal(seeded_rng(config, "test").random(4), streams.stream(11, "test").random(4))


@pytest.mark.parametrize(("name", "code"), sorted(streams.NUMBERED.items()))
def test_the_numbered_streams_keep_the_draws_they_had_before_they_were_named(name, code):
    """Runs written before the names keep every number: each named stream draws what ``[seed, code]`` drew."""
    np.testing.assert_array_equal(streams.stream(3, name, 4).random(6), np.random.default_rng([3, *code, 4]).random(6))


def test_no_two_streams_share_entropy():
    names = ["init", "batches", "noise", "test", "test-noise", "circuit", *streams.NUMBERED]
    seen = {tuple(streams._entropy(0, n, ())) for n in names}
    assert len(seen) == len(names)


@pytest.mark.parametrize(("seed", "name"), [(-1, "init"), (1.5, "init"), (True, "init"), (1, ""), (1, 3)])
def test_a_bad_seed_or_name_is_refused(seed, name):
    with pytest.raises(ValueError):
        streams.stream(seed, name)


def test_a_child_is_independent_and_reproducible():
    a, b = streams.child(streams.stream(1, "x")), streams.child(streams.stream(1, "x"))
    np.testing.assert_array_equal(a.random(5), b.random(5))
