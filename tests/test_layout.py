"""The floor rule of the code layout, read from the imports of every module.

Floors, lowest first (each package's ``__init__.py`` says the same):

==========  =====  ===========================================================
package     floor  may import (besides itself and third-party code)
==========  =====  ===========================================================
utils       0      nothing of the project
dataset     1      utils (``dataset.synthetic`` also ``dataset``)
models      2      dataset, utils
engine      3      models, dataset, utils
render      3      models, dataset, utils
metrics     4      engine, render, models, dataset, utils
options     5      anything below (choice tuples and defaults)
scripts     6      anything; nothing imports a script
==========  =====  ===========================================================

A function-level import is allowed only for a heavy or optional dependency:
a third-party package in :data:`LAZY_THIRD_PARTY`, or a project module that
itself pulls in one of :data:`HEAVY` at import time (the OpenSim-backed
dataset generator, the matplotlib renderer). Never for the standard library
(except the platform-only :data:`OPTIONAL_STDLIB`), never to hide an upward
import.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"utils": 0, "dataset": 1, "models": 2, "engine": 3, "render": 3, "metrics": 4, "options": 5}
SCRIPT_FLOOR = 6
HEAVY = {"opensim", "matplotlib", "deepspeed", "ot", "imageio_ffmpeg"}
"""Third-party packages slow or optional enough that a module importing them may be imported lazily."""
LAZY_THIRD_PARTY = HEAVY | {"torch", "scipy", "PIL", "tqdm"}
"""Third-party packages that may be imported inside a function (heavy, optional, or kept off a light path)."""
OPTIONAL_STDLIB = {"fcntl"}


def _modules() -> dict[str, Path]:
    found = {p.stem: p for p in REPO.glob("*.py")}
    for package in FLOORS:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()
SCRIPTS = {p.stem for p in REPO.glob("*.py")}


def _floor(module: str) -> int | None:
    top = module.split(".")[0]
    if top in FLOORS:
        return FLOORS[top]
    return SCRIPT_FLOOR if top in SCRIPTS else None


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at function level) of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top_level = {id(node) for node in tree.body}
    for node in tree.body:  # `if __name__ == "__main__":` and `try:` blocks count as top level
        if isinstance(node, (ast.If, ast.Try)):
            top_level |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        out += [(name, node.lineno, id(node) not in top_level) for name in names]
    return out


def _heavy(module: str, seen: set[str] | None = None) -> bool:
    """Does importing ``module`` pull in a :data:`HEAVY` package (top-level imports, transitively)?"""
    seen = set() if seen is None else seen
    if module in seen or module not in MODULES:
        return False
    seen.add(module)
    for name, _, lazy in _imports(MODULES[module]):
        if lazy:
            continue
        if name.split(".")[0] in HEAVY or _heavy(name, seen):
            return True
    return False


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_every_package_states_its_floor() -> None:
    for package in FLOORS:
        doc = ast.get_docstring(ast.parse((REPO / package / "__init__.py").read_text())) or ""
        assert "Floor:" in doc, f"{package}/__init__.py: the docstring should say what the package may import"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_a_floor(module: str) -> None:
    own = _floor(module)
    for name, line, _ in _imports(MODULES[module]):
        theirs = _floor(name)
        if theirs is None or name.split(".")[0] == module.split(".")[0]:
            continue
        assert name.split(".")[0] not in SCRIPTS, f"{_where(MODULES[module], line)}: imports the script {name}"
        assert theirs < own, (f"{_where(MODULES[module], line)}: {module} (floor {own}) imports {name} "
                              f"(floor {theirs}); imports run down only")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_function_level_imports_are_for_heavy_or_optional_dependencies(module: str) -> None:
    for name, line, lazy in _imports(MODULES[module]):
        if not lazy:
            continue
        top = name.split(".")[0]
        where = _where(MODULES[module], line)
        if top in sys.stdlib_module_names:
            assert top in OPTIONAL_STDLIB, f"{where}: import {name} at the top of the module"
        elif _floor(name) is None:
            assert top in LAZY_THIRD_PARTY, f"{where}: {name} is light; import it at the top of the module"
        else:
            assert _heavy(name), (f"{where}: {name} imports nothing heavy ({', '.join(sorted(HEAVY))}); "
                                  f"import it at the top of the module")


def test_the_rule_catches_what_it_should(tmp_path: Path) -> None:
    """The checks above see an upward import, a script import and a hidden lazy one."""
    bad = tmp_path / "bad.py"
    bad.write_text("import json\nfrom models.vqvae import VQVAE\n\n\ndef f():\n    import json\n"
                   "    from train_vq import main\n")
    found = _imports(bad)
    assert ("models.vqvae", 2, False) in found and ("json", 6, True) in found and ("train_vq", 7, True) in found
    assert _floor("models.vqvae") > FLOORS["utils"]  # so utils importing it runs up
    assert _floor("train_vq") == SCRIPT_FLOOR
    assert _heavy("dataset.synthetic.opencap_model") and _heavy("render.animation")
    assert not _heavy("utils.constants") and not _heavy("models.vqvae")
