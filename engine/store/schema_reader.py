"""Reader tables (migration 3): where each lesion's diameters were measured, and what a reader
confirmed or corrected.

``lesions`` gains the ends of both diameters as JSON ``[x, y, z]`` world-mm triples
(``d1_p0, d1_p1, d2_p0, d2_p1``) in the space the lesion was measured in (the baseline space for a
follow-up), on the axial slice ``lesions.slice_index`` of that grid; NULL for rows measured before.

``reader_values`` keeps every reader entry of a scan, never updated: a revision is a new row, and
the latest row of a (study, value kind, lesion) is the one in force (``engine.reader_values``).
``value_json`` holds the entry (e.g. ``{"d1_mm": 21.0, "d2_mm": 14.5}``); ``before_json`` what was
in force before it (automatic or an earlier reader value), for the audit.

Migration 6 (:func:`add_reader_ends`) gives ``reader_values`` the same four ends, for a new lesion
a reader drew by clicking on the T1c slice (a lesion the model missed): JSON ``[x, y, z]`` world
mm, in the world of the volume image review showed for that scan (the baseline space for a
registered follow-up, as for ``lesions``); NULL for every other entry and for rows made before.
"""

DDL: tuple[str, ...] = (
    "ALTER TABLE lesions ADD COLUMN IF NOT EXISTS d1_p0 VARCHAR",
    "ALTER TABLE lesions ADD COLUMN IF NOT EXISTS d1_p1 VARCHAR",
    "ALTER TABLE lesions ADD COLUMN IF NOT EXISTS d2_p0 VARCHAR",
    "ALTER TABLE lesions ADD COLUMN IF NOT EXISTS d2_p1 VARCHAR",
    "CREATE SEQUENCE IF NOT EXISTS reader_value_seq START 1",
    """CREATE TABLE IF NOT EXISTS reader_values (
        reader_value_id BIGINT PRIMARY KEY DEFAULT nextval('reader_value_seq'),
        patient_key VARCHAR NOT NULL,
        study_uid VARCHAR NOT NULL,
        value_kind VARCHAR NOT NULL,          -- engine.reader_values.ReaderValueKind
        lesion_index INTEGER,                 -- lesion of the study's current measurement, where one applies
        value_json VARCHAR NOT NULL,
        before_json VARCHAR,
        note VARCHAR NOT NULL,
        entered_by VARCHAR NOT NULL,
        entered_at TIMESTAMP NOT NULL,
        request_id VARCHAR NOT NULL
    )""",
)


def create(con) -> None:  # noqa: ANN001 - a DuckDB connection, as every migration step
    for statement in DDL:
        con.execute(statement)


#: the diameter ends, in the order the pipeline stores them (d1's two ends, then d2's)
END_COLUMNS: tuple[str, ...] = ("d1_p0", "d1_p1", "d2_p0", "d2_p1")


def add_reader_ends(con) -> None:  # noqa: ANN001 - migration 6
    for column in END_COLUMNS:
        con.execute(f"ALTER TABLE reader_values ADD COLUMN IF NOT EXISTS {column} VARCHAR")
