"""Schema versions: a new store, an unversioned store of the current schema, a store too new."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from engine.errors import StoreError
from engine.reader_values import ReaderValueKind
from engine.store import migrations, open_store, reader
from engine.store.migrations import LATEST, MIGRATIONS, Migration, is_unversioned, schema_version

NOW = datetime(2025, 6, 1, 12, 0)


#: columns later migrations add to migration 1's tables (migration 4: measurements.inputs_sha256)
ADDED_AFTER_BASELINE = {("measurements", "inputs_sha256")}


def _catalog(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """Every table and view with its columns and types, the version bookkeeping and the columns
    later migrations add left out."""
    rows = con.execute(
        """SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name NOT IN ('schema_version', 'store_revision')
           ORDER BY table_name, ordinal_position""").fetchall()
    catalog: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        if (table, column) not in ADDED_AFTER_BASELINE:
            catalog.setdefault(table, []).append((column, kind))
    return catalog


def _unversioned_store(path: Path) -> None:
    """A store as GlioWatch made it before schema versions: migration 1's statements, some rows."""
    with duckdb.connect(str(path)) as con:
        MIGRATIONS[0].apply(con)
        con.execute("INSERT INTO patients VALUES ('P-0001', ?, DATE '2025-03-01')", [NOW])
        con.execute("""INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status,
                           seen_at, ingested_at) VALUES ('1.1', 'a1', 'P-0001', DATE '2025-03-01', 'ASSESSED', ?, ?)""",
                    [NOW, NOW])
        con.execute("""INSERT INTO segmentations (study_uid, model_name, model_version, weights_sha256,
                           config_sha256, labels_path, et_ml, created_at)
                       VALUES ('1.1', 'gliowatch-unet', '0.3.2', 'abc', 'def', 'P/1.1/l.nii.gz', 1.5, ?)""", [NOW])
        con.execute("""INSERT INTO alerts (idempotency_key, alert_type, severity, patient_key, study_uid, reason,
                           link, criteria, created_at) VALUES ('k1', 'ALERT_PPD', 'WARNING', 'P-0001', '1.1',
                           'SPD +40 %', '/?patient=P-0001', 'RANO 2.0, criteria v1', ?)""", [NOW])
        con.execute("""INSERT INTO board_requests VALUES ('r1', 'PAGE_VIEW', 'dr.test', NULL, ?, ?, 'APPLIED', NULL)""",
                    [NOW, NOW])


def test_migrations_are_numbered_one_to_latest_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert all(m.description for m in MIGRATIONS)


def test_a_new_store_gets_the_latest_version(tmp_path: Path) -> None:
    with open_store(tmp_path / "new.duckdb") as store:
        assert schema_version(store.con) == LATEST
        rows = store.query("SELECT version, description FROM schema_version ORDER BY version")
        assert rows == [(m.version, m.description) for m in MIGRATIONS]
        # revision 1 when migration 2 creates the table, +1 for each migration after it
        assert store.query("SELECT revision FROM store_revision") == [(LATEST - 1,)]
    with open_store(tmp_path / "new.duckdb") as store:  # opening again applies nothing
        assert store.query("SELECT count(*) FROM schema_version")[0][0] == LATEST
        assert store.query("SELECT revision FROM store_revision") == [(LATEST - 1,)]


def test_an_in_memory_store_is_migrated_too() -> None:
    with open_store(None) as store:
        assert schema_version(store.con) == LATEST


def test_an_unversioned_store_of_the_current_schema_upgrades_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "unversioned.duckdb"
    _unversioned_store(path)
    with duckdb.connect(str(path)) as con:
        assert schema_version(con) == 0 and is_unversioned(con)
        before = _catalog(con)
    with open_store(path) as store:
        assert schema_version(store.con) == LATEST
        assert store.query("SELECT patient_key, last_study_date FROM patients")[0][0] == "P-0001"
        assert store.query("SELECT study_uid, status FROM studies") == [("1.1", "ASSESSED")]
        assert store.query("SELECT config_sha256, et_ml FROM segmentations") == [("def", 1.5)]
        assert store.query("SELECT idempotency_key, acknowledged_at FROM alerts") == [("k1", None)]
        assert store.query("SELECT request_id FROM board_requests") == [("r1",)]
        after = _catalog(store.con)  # nothing of the existing schema changed; later migrations only add
        assert all(after[table][: len(columns)] == columns for table, columns in before.items())
        assert store.query("""SELECT count(*) FROM information_schema.columns WHERE table_name = 'measurements'
                              AND column_name = 'inputs_sha256'""") == [(1,)]  # migration 4 added
        with store.transaction() as con:  # and it takes new rows as before (sequences kept)
            con.execute("""INSERT INTO alerts (idempotency_key, alert_type, severity, patient_key, study_uid,
                               reason, link, criteria, created_at) VALUES ('k2', 'ALERT_PD_CONFIRMED', 'CRITICAL',
                               'P-0001', '1.1', 'PD', '/', 'RANO 2.0, criteria v1', ?)""", [NOW])
        assert [r[0] for r in store.query("SELECT alert_id FROM alerts ORDER BY alert_id")] == [1, 2]
    with open_store(tmp_path / "fresh.duckdb") as fresh:
        assert _catalog(fresh.con) == after  # the upgraded store has the schema a new one has


def test_a_store_newer_than_the_code_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    with open_store(path):
        pass
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version VALUES (?, 'from a later GlioWatch', ?)", [LATEST + 1, NOW])
        con.execute("CREATE TABLE from_the_future (x INTEGER)")
    with pytest.raises(StoreError, match=rf"schema version {LATEST + 1}, newer than this GlioWatch knows "
                                         rf"\(version {LATEST}\)") as caught:
        open_store(path)
    assert "was not changed" in caught.value.action
    with duckdb.connect(str(path)) as con:  # the refused store was closed and is as it was
        assert schema_version(con) == LATEST + 1
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == LATEST + 1


def test_a_failing_migration_leaves_the_store_at_the_version_before(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.duckdb"
    with open_store(path):
        pass

    def broken(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE half_done (x INTEGER)")
        con.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, Migration(LATEST + 1, "broken", broken)))
    monkeypatch.setattr(migrations, "LATEST", LATEST + 1)
    with pytest.raises(duckdb.CatalogException):
        open_store(path)
    monkeypatch.undo()
    with open_store(path) as store:
        assert schema_version(store.con) == LATEST
        assert "half_done" not in {r[0] for r in store.query("SELECT table_name FROM duckdb_tables()")}


def test_migration_6_gives_reader_values_diameter_ends_and_keeps_old_rows_with_none(tmp_path: Path) -> None:
    """A store at version 5 with a reader value reaches version 6: its row keeps NULL ends, and a new
    lesion drawn on the image stores its four ends."""
    path = tmp_path / "v5.duckdb"
    with duckdb.connect(str(path)) as con:
        for migration in MIGRATIONS[:5]:
            con.execute(migrations.VERSION_TABLE)
            migration.apply(con)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [migration.version, migration.description, NOW])
        con.execute("""INSERT INTO reader_values (patient_key, study_uid, value_kind, value_json, note, entered_by,
                           entered_at, request_id) VALUES ('P-0001', '1.1', 'NEW_LESION',
                           '{"present": true}', '', 'dr.test', ?, 'r1')""", [NOW])
        assert schema_version(con) == 5
    with open_store(path) as store:
        assert schema_version(store.con) == LATEST >= 6
        assert store.query("SELECT value_json, d1_p0, d1_p1, d2_p0, d2_p1 FROM reader_values") == [
            ('{"present": true}', None, None, None, None)]
        with store.transaction() as con:
            reader.insert_entry(con, patient_key="P-0001", study_uid="1.1", kind=ReaderValueKind.NEW_LESION,
                                lesion_index=None, value={"present": True, "d1_mm": 3.0, "d2_mm": 0.0}, before=None,
                                note="", user="dr.test", at=NOW, request_id="r2",
                                ends={"d1_p0": "[0, 0, 0]", "d1_p1": "[3, 0, 0]", "d2_p0": "[1, 0, 0]",
                                      "d2_p1": "[1, 0, 0]"})
        assert store.query("SELECT d1_p1, d2_p0 FROM reader_values WHERE request_id = 'r2'") == [("[3, 0, 0]", "[1, 0, 0]")]
