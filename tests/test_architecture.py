"""engine/ stays a pure domain library: no Prefect, no Streamlit, no flows/dashboard imports;
every SQL statement lives in engine/store/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_ENGINE = {"prefect", "prefect_dask", "streamlit", "flows", "dashboard"}
#: modules whose numbers a clinician sees: computed by pure functions, no I/O libraries.
PURE_MODULES = ("measurement", "lesions", "response", "risk", "trajectory", "urgency")
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
    "flows.cmd_rescore", "engine.pipeline", "engine.usecases.follow_archive", "engine.ingest", "engine.usecases.ingest_study",
    "engine.usecases.segment_study", "engine.usecases.register_study", "engine.usecases.assess_patient",
    "engine.usecases.apply_board_request",
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
            # ``from pkg import mod`` depends on pkg.mod; ``from pkg import name`` on pkg itself
            submodules = {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(node.module)
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


#: the start of an SQL statement (or of a fragment of one: ``", q AS (SELECT ... FROM"``).
SQL_STATEMENT = re.compile(
    r"\b(?:SELECT\s[\s\S]*?\bFROM\s"
    r"|INSERT\s+INTO\s"
    r"|UPDATE\s+\w+\s+SET\s"
    r"|DELETE\s+FROM\s"
    r"|CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?(?:TABLE|VIEW|INDEX|SEQUENCE|MACRO)\s"
    r"|ALTER\s+TABLE\s"
    r"|WITH\s+\w+\s+AS\s*\()",
    re.IGNORECASE,
)
#: product files outside engine/store/ that still hold SQL, each with why. Empty: the files
#: another change owns (dashboard/board_queue.py, dashboard/actions.py, engine/store/board.py,
#: flows/watch.py, flows/service.py) hold none outside engine/store/.
SQL_PENDING: dict[str, str] = {}


def _sql_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal in ``path`` that holds SQL; an f-string is read with
    its ``{...}`` parts left out, so ``f"SELECT ... FROM {table}"`` is found too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in parts:  # read with its f-string
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if SQL_STATEMENT.search(text):
            found.append((node.lineno, " ".join(text.split())[:80]))
    return found


def _product_files_outside_the_store() -> list[Path]:
    files = [p for top in ("engine", "flows", "dashboard") for p in sorted((ROOT / top).rglob("*.py"))]
    return [p for p in files if not p.relative_to(ROOT).as_posix().startswith("engine/store/")]


@pytest.mark.parametrize(("text", "is_sql"), [
    ("SELECT count(*) FROM alerts", True),
    ("select study_uid\n from studies where patient_key = ?", True),
    ("INSERT INTO audit VALUES (?)", True),
    ("UPDATE studies SET status = ?", True),
    ("DELETE FROM growth WHERE patient_key = ?", True),
    ("CREATE OR REPLACE VIEW timeline AS SELECT 1", True),
    ("create table if not exists t (x INT)", True),
    ("ALTER TABLE measurements ADD COLUMN x INT", True),
    ("WITH base AS (SELECT 1)", True),
    (", latest AS (SELECT patient_key FROM timeline GROUP BY patient_key)", True),
    ("Select the series to use", False),
    ("update the model card, then create the folder", False),
    ("with the numbers as evidence", False),
])
def test_the_sql_detector(text: str, is_sql: bool) -> None:
    assert bool(SQL_STATEMENT.search(text)) is is_sql


def test_the_sql_detector_reads_f_strings(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text('where = "x"\nsql = f"SELECT study_uid FROM studies WHERE {where}"\n')
    assert [line for line, _ in _sql_literals(source)] == [2]


def test_every_sql_statement_lives_in_the_store() -> None:
    """engine/store/ holds every SQL statement of the project, the dashboard's read model
    included (engine/, flows/, dashboard/; tests and benchmarks may query their stores)."""
    files = _product_files_outside_the_store()
    assert len(files) > 50  # the walk really found the product
    bad = [f"{path.relative_to(ROOT).as_posix()}:{line}: {text}"
           for path in files if path.relative_to(ROOT).as_posix() not in SQL_PENDING
           for line, text in sorted(_sql_literals(path))]
    assert not bad, "SQL outside engine/store/ (move it into a store function):\n" + "\n".join(bad)


def test_the_pending_sql_exemptions_are_still_needed() -> None:
    for name in SQL_PENDING:
        assert _sql_literals(ROOT / name), f"{name} holds no SQL any more: remove it from SQL_PENDING"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycles() -> None:
    """No two project modules import each other, directly or through others; every import
    counts (function-level and ``TYPE_CHECKING`` ones too), so reading goes one way."""
    graph = {_module_name(p): _project_imports(p) - {_module_name(p)}
             for top in ("engine", "flows", "dashboard") for p in sorted((ROOT / top).rglob("*.py"))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert not cycles, cycles
    assert len(graph) > 100


# ---------------------------------------------------------------- the use-case layer (issue 30)

#: modules the store may import from outside ``engine.store``, for plain value types only (the
#: rows it reads and writes): dataclasses, enums and exceptions, never a function.
STORE_VALUE_MODULES = {
    "engine.errors": "StoreError and the GlioWatch error types",
    "engine.types": "StudyStatus, SegmentationOutput",
    "engine.ingest": "IngestedStudy, the row of an ingested study",
    "engine.alerts.alert": "Alert and its enums",
    "engine.criteria": "Criteria, Mode: the profile and version a row records",
    "engine.events": "ClinicalEvent, EventType",
    "engine.measurement": "StudyMeasurement",
    "engine.response": "ResponseCall",
    "engine.risk": "PspEstimate",
    "engine.trajectory": "GrowthFit",
    "engine.registration": "RegistrationResult",
    "engine.reader_values": "LesionRow, ReaderEntry, ReaderInputs, ReaderValueKind: the reader's rows",
    "engine.response.inputs": "the response's input value types",
}


def _from_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute ``from ... import`` in ``path``, and (module, []) of every
    ``import module``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def test_the_store_only_stores() -> None:
    """engine/store/ runs no domain code: from outside the store it imports only value types
    (classes) of the modules in STORE_VALUE_MODULES, never a function and never a whole module."""
    import importlib

    checked = 0
    for path in sorted((ROOT / "engine" / "store").glob("*.py")):
        for module, names in _from_imports(path):
            if not module.startswith("engine.") or module.startswith("engine.store"):
                continue
            where = f"{path.relative_to(ROOT)} imports {module}"
            assert module in STORE_VALUE_MODULES, f"{where}: not a value-type module (STORE_VALUE_MODULES)"
            assert names, f"{where} as a module: import its value types by name"
            imported = importlib.import_module(module)
            for name in names:
                assert isinstance(getattr(imported, name), type), f"{where}.{name}: not a class (domain logic?)"
                checked += 1
    assert checked >= 10  # the walk really found the store's value types


def test_use_cases_import_no_flows_and_nothing_below_imports_them() -> None:
    """Reading goes top-down: flows -> engine.usecases -> store and engine. The use cases import
    no flows (nor Prefect, Streamlit, the dashboard); no engine module outside the use cases
    imports them (the store and the pure engine never call back up)."""
    usecases = sorted((ROOT / "engine" / "usecases").glob("*.py"))
    assert len(usecases) >= 6
    for path in usecases:
        bad = _imports(path) & FORBIDDEN_IN_ENGINE
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    for path in ENGINE_FILES:
        if "usecases" in path.relative_to(ROOT).parts:
            continue
        up = sorted(n for n in _project_imports(path) if n.startswith("engine.usecases"))
        assert not up, f"{path.relative_to(ROOT)} imports the use cases {up}: only flows and other use cases may"


def test_the_compute_parts_do_not_touch_the_store() -> None:
    """engine/pipeline.py (segmentation and registration on workers) reads and writes files only:
    the use cases load its jobs from the store and commit its outputs."""
    assert not [n for n in _project_imports(ROOT / "engine" / "pipeline.py") if n.startswith("engine.store")]
    assert "duckdb" not in _imports(ROOT / "engine" / "pipeline.py")


MUTATORS = {"pop", "setdefault", "update", "append", "extend", "add", "clear", "insert", "remove", "__setitem__"}


def _module_level_containers(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        mutable = isinstance(value, (ast.Dict, ast.List, ast.Set)) or (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
            and value.func.id in {"dict", "list", "set", "defaultdict", "OrderedDict", "WeakValueDictionary"})
        if mutable:
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _mutated_globals(tree: ast.Module) -> set[str]:
    """Module-level containers that a function changes, and names a function rebinds (``global``)."""
    containers = _module_level_containers(tree)
    changed: set[str] = set()
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(fn):
            if isinstance(node, ast.Global):
                changed.update(node.names)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                changed.update(t.value.id for t in targets if isinstance(t, ast.Subscript)
                               and isinstance(t.value, ast.Name) and t.value.id in containers)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and isinstance(node.func.value, ast.Name) and node.func.value.id in containers
                  and node.func.attr in MUTATORS):
                changed.add(node.func.value.id)
    return changed


def test_the_registry_detector(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("_ACTIVE: dict = {}\nNAMES = {'a': 1}\n\ndef key(rt):\n    _ACTIVE['k'] = rt\n    return NAMES['a']\n")
    assert _mutated_globals(ast.parse(source.read_text())) == {"_ACTIVE"}


def test_flows_hold_no_module_global_registry_and_no_untyped_runtime() -> None:
    """The composition root (flows/runtime.py) builds the collaborators and passes them on: no
    flows module keeps objects in a module-level container that its functions fill (the old
    ``_ACTIVE`` registry keyed by ``runtime_key``) or rebinds a global, and no function takes
    an untyped runtime (``rt`` without an annotation, or ``rt: Any``)."""
    files = sorted((ROOT / "flows").glob("*.py"))
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        assert not _mutated_globals(tree), f"{path.relative_to(ROOT)}: module-global state {_mutated_globals(tree)}"
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for arg in fn.args.args + fn.args.kwonlyargs:
                if arg.arg in {"rt", "runtime"}:
                    untyped = arg.annotation is None or ast.unparse(arg.annotation) in {"Any", "typing.Any"}
                    assert not untyped, f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}({arg.arg}) is untyped"
