"""The documentation cannot drift: generated pages are current, links resolve, the README stays short.

``docs/generate.py`` writes ``docs/cli.md`` from ``cortexsim.cli.parser()`` and the metrics tables of
``docs/results.md`` from a run file; these tests run its ``--check`` mode.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cortexsim import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def _load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


# ---------------------------------------------------------------------------
# docs/cli.md
# ---------------------------------------------------------------------------


def test_cli_page_is_current(capsys):
    status = generate.main(["cli", "--check"])
    assert status == 0, capsys.readouterr().err + "\nrun `python docs/generate.py cli` and commit docs/cli.md"


def test_cli_page_holds_every_commands_help():
    text = (DOCS / "cli.md").read_text()
    (commands,) = [a for a in cli.parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name in commands.choices:
        assert f"## cortexsim {name}\n" in text
        assert f"usage: cortexsim {name}" in text


def test_cli_check_fails_on_a_stale_page_and_names_it(tmp_path, capsys):
    page = tmp_path / "cli.md"
    text = (DOCS / "cli.md").read_text()
    page.write_text(text.replace("(default 0.01)", "(default 3)"))
    assert generate.main(["cli", "--check", "--page", str(page)]) == 1
    assert str(page) in capsys.readouterr().err
    assert generate.main(["cli", "--page", str(page)]) == 0  # regenerating mends it
    assert page.read_text() == text
    assert generate.main(["cli", "--check", "--page", str(page)]) == 0


def test_generate_runs_as_a_script():
    run = subprocess.run(
        [sys.executable, str(DOCS / "generate.py"), "cli", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


def test_help_defaults_are_the_configs():
    """What the help says about a default is what the code uses (``--trials`` once said 3; the config said 7)."""
    args = cli.parser().parse_args(["compare", "run.h5"])
    assert (args.n_pcs, args.n_null) == (None, None)  # the run's own [compare], so a compare reuses its battery
    text = (DOCS / "cli.md").read_text()
    assert "(default: the run's [compare] n_pcs)" in text and "(default: the run's [compare] n_null)" in text
    spiking = text.split("## cortexsim spiking")[1].split("\n## ")[0]
    for option in ("--k K", "--trials TRIALS"):
        line = next(x for x in spiking.splitlines() if x.strip().startswith(option))
        assert not re.search(r"default:? \d", line), f"{option} states a number the run's config decides: {line}"


# ---------------------------------------------------------------------------
# docs/results.md
# ---------------------------------------------------------------------------


def _block(text: str) -> str:
    start = text.index(generate.BEGIN)
    return text[start : text.index(generate.END, start) + len(generate.END)]


def test_results_page_has_one_generated_block():
    text = (DOCS / "results.md").read_text()
    assert text.count(generate.BEGIN) == 1 and text.count(generate.END) == 1
    assert text.index(generate.BEGIN) < text.index(generate.END)


def test_results_generator_round_trips_on_a_run_file(smoke_run, tmp_path, capsys):
    run = smoke_run / "run.h5"
    page = tmp_path / "results.md"
    shutil.copyfile(DOCS / "results.md", page)
    before = page.read_text()
    assert generate.main(["results", str(run), "--page", str(page)]) == 0
    text = page.read_text()
    assert text[: before.index(generate.BEGIN)] == before[: before.index(generate.BEGIN)]  # only the block changes
    assert text.endswith(before[before.index(generate.END) + len(generate.END) :])
    block = _block(text)
    from cortexsim import pipeline, store

    with store.open_run(run) as f:
        metrics = store.read_metrics(f)
        summary = store.read_run_summary(f)
        config_hash = pipeline.config_hash(store.read_config(f))
    for needed in (config_hash, summary.git_commit, summary.cortexsim_version, f"| seed | {summary.seed} |"):
        assert needed in block
    for key, value in metrics.items():  # every /metrics attribute, once, as the page rounds it
        assert f"`{key}` | {generate.number(value)} |" in block or key.endswith(
            tuple(f"_{suffix}" for suffix, _ in generate.REACH_COLUMNS)
        )
    assert generate.main(["results", str(run), "--page", str(page), "--check"]) == 0

    r2 = generate.number(metrics["rate_position_r2"])
    edited = text.replace(f"| rate circuit | {r2} |", "| rate circuit | 0.9999 |", 1)
    assert edited != text
    page.write_text(edited)
    capsys.readouterr()
    assert generate.main(["results", str(run), "--page", str(page), "--check"]) == 1
    assert str(page) in capsys.readouterr().err
    assert generate.main(["results", str(run), "--page", str(page)]) == 0
    assert page.read_text() == text


def test_results_generator_refuses_bad_input(smoke_run, tmp_path, capsys):
    page = tmp_path / "results.md"
    page.write_text("# no markers here\n")
    assert generate.main(["results", str(smoke_run / "run.h5"), "--page", str(page)]) == 2
    assert "no generated block" in capsys.readouterr().err
    assert page.read_text() == "# no markers here\n"
    assert generate.main(["results", str(tmp_path / "missing.h5"), "--page", str(DOCS / "results.md")]) == 2
    assert generate.main(["results"]) == 2


# ---------------------------------------------------------------------------
# README.md and the pages
# ---------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    text = FENCE.sub("", page.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: " + "; ".join(broken)


def test_readme_is_short_and_starts_with_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 150, "README.md is over 150 lines: move detail to docs/"
    first = re.search(r"```\w*\n(.*?)```", text, flags=re.S).group(1)
    commands = [line for line in first.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(commands) == 2, f"the README's first code block should hold two commands, not {len(commands)}"
    assert "cortexsim run" in commands[0] and "pytest" in commands[1]


def test_readme_links_every_docs_page():
    text = README.read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name}" in text, f"README.md does not link docs/{page.name}"


def test_slow_tests_command_is_documented():
    assert any("python -m pytest -m slow" in page.read_text() for page in PAGES)


def test_architecture_page_names_every_layer_unit():
    """``tests/test_architecture.py`` checks imports against the layers of ``docs/architecture.md``."""
    from test_architecture import LAYERS, MODULES

    text = (DOCS / "architecture.md").read_text()
    units = {m.split(".")[0] for m in MODULES}
    for _, layer in LAYERS:
        for unit in layer:
            if unit in units:
                assert f"`{unit}" in text, f"docs/architecture.md does not describe cortexsim.{unit}"
