"""The documentation site's sources hang together (without building it: CI runs Sphinx as its own step).

``docs/conf.py`` builds the Markdown of ``docs/``, the API reference (``docs/api.rst``) and the
gallery of ``examples/``; ``sphinx-build -W`` refuses a page left out of every toctree, a link it
cannot follow and an example that fails.  These checks catch the same mistakes in the default
suite, in a second, with a message that says what to change.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import cortexsim

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
GENERATED = {"sg_execution_times"}  # written into docs/ by sphinx-gallery at each build (git-ignored)


def _toctree_entries() -> list[str]:
    text = (DOCS / "index.md").read_text()
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, flags=re.S):
        entries += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")]
    return entries


def test_every_page_is_in_the_sites_table_of_contents():
    pages = {p.stem for p in [*DOCS.glob("*.md"), *DOCS.glob("*.rst")]} - {"index"} - GENERATED
    entries = _toctree_entries()
    missing = sorted(pages - set(entries))
    assert not missing, f"docs/index.md: add {missing} to a toctree (sphinx-build -W fails on a page in none)"
    unknown = sorted(e for e in entries if "/" not in e and e not in pages)
    assert not unknown, f"docs/index.md's toctrees name pages that do not exist: {unknown}"
    assert "auto_examples/index" in entries and "api" in entries


def test_the_site_home_is_the_readme():
    text = (DOCS / "index.md").read_text()
    assert "```{include} ../README.md" in text


def _links_leaving_docs(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    links = re.findall(r"(?<!!)\[[^\]]*\]\((\.\./[^)\s#]+)", text)
    return [str((page.parent / link).resolve().relative_to(ROOT)) for link in links]


def test_links_out_of_docs_have_a_page_on_the_site():
    """``docs/conf.py`` maps the Markdown's links to files outside docs/ onto site pages; a new one needs a page."""
    conf = (DOCS / "conf.py").read_text()
    outside = dict(re.findall(r'"([\w/]+)": "(\w+)"', conf.split("OUTSIDE = ")[1].split("\n")[0]))
    for page in sorted(DOCS.glob("*.md")):
        for target in _links_leaving_docs(page):
            assert target.endswith(".md") and target[: -len(".md")] in outside, (
                f"docs/{page.name} links {target}, which the site cannot show: add it to OUTSIDE in docs/conf.py "
                "(with a page that includes it, like docs/benchmarks.rst) or link it another way"
            )
    for target, site_page in outside.items():
        assert (ROOT / f"{target}.md").is_file(), target
        assert (DOCS / f"{site_page}.md").is_file() or (DOCS / f"{site_page}.rst").is_file(), site_page


def test_the_api_reference_lists_every_public_name():
    text = (DOCS / "api.rst").read_text()
    for name in cortexsim.__all__:
        if name == "__version__":
            continue
        obj = getattr(cortexsim, name)
        assert f"   {obj.__module__}.{obj.__qualname__}\n" in text, f"docs/api.rst: list cs.{name}"


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.py"))


def test_examples_are_gallery_examples_or_the_helper():
    names = [p.name for p in EXAMPLE_FILES]
    assert "_gallery.py" in names
    for name in names:
        assert re.fullmatch(r"plot_\d\d_\w+\.py|_gallery\.py", name), (
            f"examples/{name}: the gallery runs plot_NN_*.py (in that order) and ignores _*.py helpers"
        )
    assert (EXAMPLES / "GALLERY_HEADER.rst").is_file()


@pytest.mark.parametrize("path", [p for p in EXAMPLE_FILES if p.name.startswith("plot_")], ids=lambda p: p.name)
def test_example_has_a_titled_docstring_and_no_file_magic(path):
    """sphinx-gallery needs a docstring with a reST title first, and runs examples without ``__file__``."""
    source = path.read_text()
    docstring = ast.get_docstring(ast.parse(source))
    assert docstring, f"{path.name}: starts with a docstring that has a title"
    title, underline = docstring.splitlines()[:2]
    assert underline == "=" * len(title), f"{path.name}: the title's underline must be as long as the title"
    assert "__file__" not in source, f"{path.name}: sphinx-gallery runs examples without __file__ (use _gallery.ROOT)"
    assert "import _gallery" in source


def test_ci_builds_the_site_with_warnings_as_errors():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    build = ".venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html"
    assert build in ci and build in readme
    assert '.venv/bin/pip install -e ".[docs]"' in ci
