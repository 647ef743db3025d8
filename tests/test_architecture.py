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


#: the pipeline runtime: the stream, its flows and service, and the dashboard.
RUNTIME_ROOTS = (
    "flows.process", "flows.watch", "flows.service", "flows.cmd_watch", "flows.cmd_serve", "flows.cmd_backfill",
    "flows.cmd_rescore", "engine.pipeline", "engine.stream", "engine.ingest", "engine.patient_assessment",
    "engine.segmentation", "dashboard.app",
)


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _project_imports(path: Path) -> set[str]:
    """Project modules ``path`` imports anywhere in it (function-level imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in {"engine", "flows", "dashboard"} and _module_file(n)}


def test_the_runtime_never_imports_model_development_code() -> None:
    """engine.modelling (synthetic cohort, training, calibration, evaluation) is not reachable from
    the pipeline runtime, by any import, however deep."""
    seen: dict[str, str] = {}
    todo = [(root, root) for root in RUNTIME_ROOTS]
    while todo:
        name, via = todo.pop()
        if name in seen:
            continue
        seen[name] = via
        path = _module_file(name)
        assert path is not None, f"runtime root {name} does not exist: update RUNTIME_ROOTS"
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo.extend((n, name) for n in _project_imports(path) | set(parents))
    bad = sorted(f"{n} (imported by {via})" for n, via in seen.items() if n.startswith("engine.modelling"))
    assert not bad, bad
    assert len(seen) > 40  # the walk really followed the imports
