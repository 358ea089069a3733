"""Sphinx configuration of the cortexsim site: the Markdown in docs/, a gallery of executed examples, the API.

Build it (the README's "Where to go next" says the same)::

    .venv/bin/pip install -e ".[docs]"
    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

The pages are the Markdown files of ``docs/`` as they are (myst-parser); the gallery runs every
``examples/plot_*.py`` (sphinx-gallery) and the API reference is generated from the numpydoc
docstrings (autosummary + numpydoc).  Nothing here is fetched from the network.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import cortexsim

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# The examples share one smoke run (examples/_gallery.py), trained into this folder on first use.
# Emptied at every build, so a site never shows a run made by an older version of the code.
EXAMPLES_CACHE = DOCS / "_build" / "examples-cache"
shutil.rmtree(EXAMPLES_CACHE, ignore_errors=True)
os.environ["CORTEXSIM_EXAMPLES_CACHE"] = str(EXAMPLES_CACHE)
sys.path.insert(0, str(ROOT / "examples"))  # the examples' shared helper

project = "cortexsim"
author = "the cortexsim authors"
copyright = "the cortexsim authors"  # noqa: A001 (Sphinx's name)
release = cortexsim.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# --- the Markdown pages -------------------------------------------------------------------------
# GitHub-style anchors for headings, so that the pages' links (guide.md#figures) work on the site too
myst_heading_anchors = 6
myst_enable_extensions = ["colon_fence"]

# --- the API reference --------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
# _templates/autosummary/module.rst: a module's page documents its members; a package's page only its
# docstring and its modules (its re-exports are documented once, where they are defined)
autodoc_typehints = "none"  # the numpydoc Parameters sections say the types, in words
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # autosummary lists them; numpydoc would list them a second time
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- the gallery --------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",  # generated, git-ignored
    "filename_pattern": r"/plot_",  # every plot_*.py is run; _gallery.py is the shared helper
    "ignore_pattern": r"^(__init__|_.*)\.py$",  # matched against the file name: _gallery.py is no example
    "within_subsection_order": "FileNameSortKey",  # 01, 02, ...: the smoke run is trained by the first that needs it
    "abort_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "capture_repr": (),  # print() what a page should show
    "min_reported_time": 0,
    "show_signature": False,
}

# --- HTML ---------------------------------------------------------------------------------------
# furo: a clean, readable theme with a searchable sidebar of every page, light and dark modes, and
# sphinx-gallery support; pydata-sphinx-theme suits large multi-section sites and needs more setup.
html_theme = "furo"
html_title = f"cortexsim {release}"
html_static_path = []


# Links in the Markdown that leave docs/ -- to the README and to the READMEs of benchmarks/ and
# validation/ -- go to the site pages that show those files (index.md includes the README).
OUTSIDE = {"README": "index", "benchmarks/README": "benchmarks", "validation/README": "validation"}


def _outside_links(app, doctree) -> None:
    """Point the Markdown links to files outside docs/ at the pages that show them."""
    from sphinx.addnodes import pending_xref

    for node in doctree.findall(pending_xref):
        if node.get("reftype") != "myst":
            continue
        target, _, anchor = str(node.get("reftarget", "")).partition("#")
        target = target.removesuffix(".md").removeprefix(str(ROOT) + "/")
        if target in OUTSIDE:
            node["refdomain"], node["reftarget"] = "doc", OUTSIDE[target]
            node["reftargetid"] = node.get("reftargetid") or anchor or None


def _skip_aliases(app, what, name, obj, skip, options):
    """Leave out module-level type aliases (``Row = dict[str, str | float]``): autodoc cannot sign them."""
    import types

    return True if isinstance(obj, types.GenericAlias) else None


def setup(app):
    """Connect the two hooks above."""
    app.connect("doctree-read", _outside_links)
    app.connect("autodoc-skip-member", _skip_aliases)
