"""Every module has a place in the import layers (``[tool.importlinter]``, issue 17).

Packages whose API views sit in the edge layer are listed module by module, and import-linter
checks only the modules a layer names: a new module left out would go unchecked. This test
names it instead. (``lint-imports`` itself runs in CI, right after ruff.)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _layer_modules(*, optional: bool = True) -> set[str]:
    """The modules the layers name; ``optional=False`` leaves out those in parentheses
    (import-linter's optional layers: work in progress that may not exist yet)."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    [layers] = [c for c in config["contracts"] if c["id"] == "layers"]
    names: set[str] = set()
    for layer in layers["layers"]:
        for part in layer.replace("|", ":").split(":"):
            name = part.strip()
            if optional or not name.startswith("("):
                names.add(name.strip("()"))
    return names


def test_every_module_is_in_a_layer() -> None:
    layered = _layer_modules()
    graph = grimp.build_graph("service", "scheduler", "i18n", cache_dir=None)
    # A package's __init__ only gathers its modules; its modules are what import.
    packages = {m for m in graph.modules if graph.find_children(m)}
    unplaced = sorted(
        module
        for module in graph.modules - packages
        if not any(module == name or module.startswith(name + ".") for name in layered)
    )
    assert unplaced == [], (
        f"add these modules to a layer of [tool.importlinter] in pyproject.toml: {unplaced}"
    )


def test_every_layered_module_exists() -> None:
    """A layer naming a module that was renamed or removed checks nothing."""
    graph = grimp.build_graph("service", "scheduler", "i18n", cache_dir=None)
    assert sorted(_layer_modules(optional=False) - graph.modules) == []
