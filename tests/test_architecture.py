"""The package's seams: one-way layers, one door to run files, no private names across modules.

Every ``import`` of every module is read with :mod:`ast` -- those inside functions too,
where an import cycle hides most easily -- and checked against the layer order of
``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cortexsim"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        ("errors", "_validate", "_version", "paths", "streams", "config", "stim_config", "fit_config", "model_id")
        + ("interrupts", "workers"),
    ),
    ("anatomy", ("anatomy",)),
    ("circuit", ("circuit",)),
    ("tasks / transfer / effector", ("tasks", "recorded_task", "transfer", "effector", "_plant", "pointmass")),
    ("loss", ("loss", "metrics", "neural_loss")),
    (
        "models",
        (
            "model",
            "_model",
            "_kernels",
            "rate",
            "closed_loop_map",
            "body",
            "closed_loop",
            "ann_cells",
            "ann",
            "spiking",
        ),
    ),
    ("lesion", ("lesion", "stimulation")),
    ("training", ("train", "perturb", "evaluation")),
    ("store", ("store", "integrity")),
    ("data", ("data",)),
    ("analysis", ("analysis",)),
    (
        "comparison / report / score / export",
        ("battery", "battery_cache", "report", "quality", "score", "export", "export_body", "export_stim", "sonata")
        + ("rotations", "stim_measure", "fit", "score_fit"),
    ),
    ("plots", ("plots",)),
    (
        "pipeline and assembly",
        ("pipeline", "assembly", "preflight", "outputs", "stage_metrics", "spiking_stage", "perturb_stage")
        + ("stim_stage", "fit_stage", "compare_stage", "ann_stage"),
    ),
    ("sweep", ("sweep",)),
    ("cli", ("cli", "__main__")),
    ("public API", ("__init__",)),
)
"""Layers in import order: a module may import its own layer and the layers above it in this list.
A package (``spiking``, ``data``, ``analysis``, ``store``) is one unit: every module in it shares its layer."""

H5PY_ALLOWED = ("store", "integrity", "data", "sonata")
"""The only units that may import h5py: the run file's door (with its schema and checksums), the
recorded-data loaders, and the SONATA writer (its own nodes and edges files; it reads run files
through the store)."""

STORE_FROM = "comparison / report / score / export"
"""The first layer allowed to import :mod:`cortexsim.store`: below it, models, training, the twin, the
lesion, data and analysis receive objects and never touch a run file."""


def _modules() -> dict[str, Path]:
    """Dotted module name relative to the package (``spiking.twin``, ``__init__``) -> file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _unit(module: str) -> str:
    """The layer unit of a module: its first component (``spiking.twin`` -> ``spiking``)."""
    return module.split(".")[0]


def _layer(module: str) -> int:
    unit = _unit(module)
    for i, (_, units) in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(
        f"cortexsim/{module.replace('.', '/')}.py is in no layer; add it to LAYERS (and to docs/architecture.md)"
    )


def _package_of(module: str) -> list[str]:
    """The package a module lives in, as parts (``spiking.twin`` -> ``["spiking"]``; ``spiking`` -> ``["spiking"]``)."""
    parts = module.split(".")
    if parts[-1] == "__init__":
        return parts[:-1]
    if (PACKAGE.joinpath(*parts) / "__init__.py").exists():
        return parts
    return parts[:-1]


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The cortexsim modules an ``ImportFrom`` reaches (each imported name that is a module, else the module)."""
    if node.level == 0:
        if not (node.module or "").startswith("cortexsim"):
            return []
        base = (node.module or "").split(".")[1:]
    else:
        base = _package_of(module)[: len(_package_of(module)) - (node.level - 1)] + (
            node.module.split(".") if node.module else []
        )
    found = []
    for alias in node.names:
        candidate = ".".join([*base, alias.name])
        if candidate in MODULES or f"{candidate}.__init__" in MODULES:
            found.append(candidate)
        else:
            found.append(".".join(base) if base else "__init__")
    return found


def _imports(module: str) -> list[tuple[str, int, ast.AST]]:
    """(imported cortexsim module, line, node) for every import in ``module``, at any depth."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "cortexsim" or alias.name.startswith("cortexsim."):
                    out.append((".".join(alias.name.split(".")[1:]) or "__init__", node.lineno, node))
        elif isinstance(node, ast.ImportFrom):
            out += [(target, node.lineno, node) for target in _resolve(module, node)]
    return out


def _external(module: str, name: str) -> list[int]:
    """Lines where ``module`` imports the third-party package ``name`` (at any depth)."""
    tree = ast.parse(MODULES[module].read_text())
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == name for a in node.names):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == name:
            lines.append(node.lineno)
    return lines


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_layers_import_one_way_including_imports_inside_functions():
    wrong = []
    for module in MODULES:
        for target, line, _ in _imports(module):
            if target in MODULES or f"{target}.__init__" in MODULES:
                if _layer(target) > _layer(module):
                    wrong.append(
                        f"cortexsim/{module.replace('.', '/')}.py:{line} ({LAYERS[_layer(module)][0]}) "
                        f"imports {target} ({LAYERS[_layer(target)][0]})"
                    )
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    graph = {
        m: {t for t, _, _ in _imports(m) if t in MODULES and t != m and _unit(t) != "__init__"}
        for m in MODULES
        if m != "__init__" and not m.endswith("__init__")
    }
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*path, node]):
                return True
        state[node] = 2
        return False

    for module in sorted(graph):
        if state.get(module) is None and visit(module, []):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def test_the_layer_check_catches_an_import_inside_a_function(tmp_path, monkeypatch):
    """The check can fail: a base module importing the pipeline inside a function is caught."""
    fake = tmp_path / "errors.py"
    fake.write_text("def f():\n    from .pipeline import run_experiment\n    return run_experiment\n")
    monkeypatch.setitem(MODULES, "errors", fake)
    with pytest.raises(AssertionError, match="errors.py:2"):
        test_layers_import_one_way_including_imports_inside_functions()


def test_only_store_and_data_import_h5py():
    offenders = [
        f"cortexsim/{m.replace('.', '/')}.py:{line}"
        for m in MODULES
        for line in _external(m, "h5py")
        if _unit(m) not in H5PY_ALLOWED
    ]
    assert not offenders, "h5py imported outside store and data: " + ", ".join(offenders)
    store = [m for m in MODULES if _unit(m) == "store"]  # the package: one unit
    assert any(_external(m, "h5py") for m in store), "store reads and writes run files with h5py"


@pytest.mark.parametrize(
    "package, allowed",
    [
        ("brian2", ("spiking.network",)),
        (  # the figures package
            "matplotlib",
            tuple(f"plots.{m}" for m in ("__init__", "figure", "files", "task", "circuit", "body", "perturbation"))
            + tuple(f"plots.{m}" for m in ("comparison", "dynamics", "sweep", "stimulation", "fit")),
        ),
        ("dask", ("sweep",)),
        ("pynwb", ("data.loaders", "export")),  # the recorded-data reader and the NWB writer
        ("hdmf", ()),  # pynwb's storage layer: reached only through pynwb
    ],
)
def test_heavy_dependencies_stay_in_their_module(package, allowed):
    """Brian2, matplotlib, Dask and pynwb are each imported by one module, so the rest never loads them."""
    offenders = [
        f"cortexsim/{m.replace('.', '/')}.py:{line}"
        for m in MODULES
        for line in _external(m, package)
        if m not in allowed
    ]
    assert not offenders, f"{package} imported outside {', '.join(allowed)}: " + ", ".join(offenders)


def test_nothing_below_the_comparison_layer_touches_the_store():
    first = next(i for i, (name, _) in enumerate(LAYERS) if name == STORE_FROM)
    offenders = [
        f"cortexsim/{m.replace('.', '/')}.py:{line}"
        for m in MODULES
        for target, line, _ in _imports(m)
        if target == "store" and _layer(m) < first and _unit(m) != "store"  # the package itself (store.fit too)
    ]
    assert not offenders, "store imported below the comparison layer: " + ", ".join(offenders)


def test_the_store_checks_catch_a_module_below_the_comparison_layer(tmp_path, monkeypatch):
    """Both checks can fail: a training module importing h5py, or the store inside a function, is caught."""
    fake = tmp_path / "train.py"
    fake.write_text("import h5py\n\n\ndef f():\n    from .store import open_run\n    return open_run\n")
    monkeypatch.setitem(MODULES, "train", fake)
    with pytest.raises(AssertionError, match="train.py:1"):
        test_only_store_and_data_import_h5py()
    with pytest.raises(AssertionError, match="train.py:5"):
        test_nothing_below_the_comparison_layer_touches_the_store()


def test_no_private_name_is_imported_across_modules():
    """``from .x import _y`` (or ``x._y``) across modules is refused; private modules serve their own package."""
    wrong = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text())
        aliases = {}  # local name -> cortexsim module, for attribute access
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(module, node)
                for alias, target in zip(node.names, targets):
                    name = alias.name
                    if target.split(".")[-1] == name:  # a module was imported
                        aliases[alias.asname or name] = target
                        private_module = name.startswith("_") and not name.startswith("__")
                        if private_module and _package_of(target) != _package_of(module)[: len(_package_of(target))]:
                            wrong.append(
                                f"{module}:{node.lineno} imports the private module {target} of another package"
                            )
                    elif name.startswith("_") and not name.startswith("__") and target != module:
                        wrong.append(f"{module}:{node.lineno} imports the private name {name} from {target}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                wrong.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "private names across modules:\n" + "\n".join(wrong)
