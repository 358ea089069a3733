"""What the gallery's examples share: the smoke experiment, run once, and a scratch folder.

The examples are plain scripts (``python examples/plot_02_run_file.py`` runs one); this helper is
imported by them and is not an example itself.  :func:`smoke_run` runs ``experiments/smoke.toml``
through every stage the first time an example asks for it (about 45 s on 2 cores) and hands the
same folder to every later example.  The site's build (``docs/conf.py``) points
``CORTEXSIM_EXAMPLES_CACHE`` at ``docs/_build/examples-cache`` and empties it at each build; run
alone, the examples keep their run in the system's temporary folder (delete it to rerun).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cortexsim as cs

ROOT = Path(__file__).resolve().parents[1]
"""The repository: the examples read its ``experiments/`` files."""

SMOKE = ROOT / "experiments" / "smoke.toml"
"""The smoke experiment: a 60-unit circuit, trained for seconds, every stage of a real run."""


def cache() -> Path:
    """The folder the examples write into (``$CORTEXSIM_EXAMPLES_CACHE``, else a temporary folder)."""
    folder = Path(
        os.environ.get("CORTEXSIM_EXAMPLES_CACHE")
        or Path(tempfile.gettempdir()) / "cortexsim-examples"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scratch(name: str) -> Path:
    """An empty folder ``name`` inside :func:`cache` for one example's files."""
    import shutil

    folder = cache() / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def smoke_run(show: bool = False) -> Path:
    """The run folder of ``experiments/smoke.toml`` (``run.h5``, ``summary.md``, ``figures/``).

    Runs every stage with :func:`cortexsim.run_experiment` the first time; later calls return the
    finished folder.  With ``show`` the stages' progress lines are printed (the first line of each:
    the comparison's long report is in ``summary.md``).
    """
    folder = cache() / "smoke"
    if not (folder / "summary.md").exists():
        config = cs.load_experiment(SMOKE)
        cs.run_experiment(config, folder, log=_first_line if show else _silent)
    return folder


def show_image(path: str | Path) -> None:
    """Put a PNG file on the example's page, pixel for pixel (as a pyplot figure: the gallery shows those)."""
    import matplotlib.pyplot as plt

    image = plt.imread(path)
    fig = plt.figure(figsize=(image.shape[1] / 100, image.shape[0] / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()


def show_figure(fig) -> None:
    """Put a figure of :mod:`cortexsim.plots` on the page.

    Those are ``matplotlib.figure.Figure`` objects outside pyplot (the pipeline draws them from
    worker threads), which the gallery does not see; this draws one into a PNG and shows that.
    """
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    buffer.seek(0)
    show_image(buffer)


def _first_line(line: str) -> None:
    print(line.splitlines()[0] if line.strip() else line)


def _silent(line: str) -> None:
    pass
