"""The dashboard calls the same command functions as the API, never the API's routes
(issue 19): no module of service/web imports another package's ``views`` module.

An API route carries FastAPI's wiring (dependencies, status codes, query limits); what it
does lives in a command (for check-ins, ``service.checkins.commands``) that both call."""

from __future__ import annotations

import ast
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "service" / "web"


def api_views_imported(source: str, module: str) -> list[str]:
    """The ``*.views`` modules outside service.web that ``source`` (module ``module``)
    imports, in any spelling: ``import a.views``, ``from a import views``,
    ``from a.views import x``, and relative imports."""
    package = module.rsplit(".", 1)[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[-1] == "views" and not name.startswith("service.web."):
                found.append(name)
    return found


def test_the_scan_finds_every_spelling() -> None:
    assert api_views_imported("from service.checkins import views as api\n", "service.web.x") == [
        "service.checkins.views"
    ]
    assert api_views_imported("import service.registry.views\n", "service.web.x") == [
        "service.registry.views"
    ]
    assert api_views_imported("from service.auth.views import login\n", "service.web.x") == [
        "service.auth.views"
    ]
    assert api_views_imported("from ..jma import views\n", "service.web.x") == ["service.jma.views"]
    assert api_views_imported("def f():\n    from service.audit import views\n", "service.web.x")
    # The dashboard's own views, and commands, are fine.
    assert api_views_imported("from service.web import views\n", "service.web.x") == []
    assert api_views_imported("from . import views\n", "service.web.x") == []
    assert api_views_imported("from service.checkins import commands\n", "service.web.x") == []


def test_the_dashboard_imports_no_api_views() -> None:
    files = sorted(WEB.rglob("*.py"))
    assert files, WEB
    offenders = {
        str(path.relative_to(WEB)): found
        for path in files
        if (
            found := api_views_imported(
                path.read_text(encoding="utf-8"),
                "service.web." + ".".join(path.relative_to(WEB).with_suffix("").parts),
            )
        )
    }
    assert offenders == {}, f"call the command functions instead of API routes: {offenders}"
