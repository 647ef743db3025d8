"""engine/ stays a pure domain library: no Prefect, no Streamlit, no flows/dashboard imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_ENGINE = {"prefect", "prefect_dask", "streamlit", "flows", "dashboard"}
#: modules whose numbers a clinician sees: computed by pure functions, no I/O libraries.
PURE_MODULES = ("measurement", "lesions", "response", "risk", "trajectory")
IO_LIBRARIES = {"duckdb", "requests", "httpx", "orthanc_api_client", "pydicom", "socket", "smtplib"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


ENGINE_FILES = sorted((ROOT / "engine").rglob("*.py"))


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_does_not_import_orchestration_or_ui(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN_IN_ENGINE
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_pure_modules_do_no_io() -> None:
    checked = 0
    for name in PURE_MODULES:
        for path in [ROOT / "engine" / f"{name}.py", *sorted((ROOT / "engine" / name).glob("*.py"))]:
            if path.exists():
                checked += 1
                bad = _imports(path) & IO_LIBRARIES
                assert not bad, f"{path.relative_to(ROOT)} imports I/O libraries {sorted(bad)}"
    assert checked >= len(PURE_MODULES), "a pure module was moved: update PURE_MODULES"


def test_dashboard_reads_only_the_snapshot() -> None:
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        assert "prefect" not in _imports(path), f"{path} imports prefect"
