"""Assessment tables: measurements, lesions, assessments, psp_risk, growth, clinical_events, and
the ``timeline`` view.

Keys: ``study_uid`` (DICOM StudyInstanceUID) and ``patient_key`` (our pseudonym), the same column
names as the ingest schema, without foreign keys (DuckDB foreign keys get in the way of upserts).
Every row records what produced it: ``model_name``/``model_version``/``weights_sha256``/
``config_sha256`` for measurements, ``criteria`` (e.g. "RANO 2.0, criteria v1") for every clinical number.

``timeline`` has one row per patient timepoint: the current (not superseded) measurement and
the most recent assessment of the study, with the PsP probability where one was estimated.
Query it directly, e.g. ``SELECT * FROM timeline WHERE patient_key = 'P-0001' ORDER BY scan_date``.
"""

#: the ``timeline`` rows: ``{assessments}``, ``{measurements}`` and ``{psp_risk}`` are the base
#: relations, the tables themselves for the view, or their rows of one patient for
#: :func:`timeline_select` with ``patient_param`` (filtered *before* the window functions).
_TIMELINE = """
    WITH a AS (
        SELECT * FROM {assessments}
        QUALIFY row_number() OVER (PARTITION BY study_uid ORDER BY assessed_at DESC) = 1
    ), m AS (
        SELECT * FROM {measurements}
        QUALIFY row_number() OVER (PARTITION BY study_uid ORDER BY computed_at DESC) = 1
    )
    SELECT
        coalesce(a.patient_key, m.patient_key) AS patient_key,
        coalesce(a.study_uid, m.study_uid) AS study_uid,
        coalesce(a.scan_date, m.scan_date) AS scan_date,
        m.et_ml, m.netc_ml, m.snfh_ml, m.rc_ml, m.tc_ml, m.wt_ml, m.spd_mm2, m.sov_all_ml,
        a.response, a.final_response, a.pd_date,
        r.probability AS psp_probability, r.low AS psp_low, r.high AS psp_high,
        a.reason, a.final_reason, a.profile, a.mode, a.criteria,
        a.change_vs_baseline, a.change_vs_nadir, a.weeks_post_rt,
        m.model_name, m.model_version
    FROM a
    FULL OUTER JOIN m ON a.study_uid = m.study_uid
    LEFT JOIN {psp_risk} r
        ON r.study_uid = a.study_uid AND r.profile = a.profile AND r.mode = a.mode"""


def timeline_select(*, patient_param: str | None = None) -> str:
    """The ``timeline`` view's query: every patient, or with ``patient_param`` (a DuckDB named
    parameter, e.g. ``"key"`` for ``$key``) one patient's rows, oldest first.

    One text for both, so the view and the dashboard's per-patient read cannot drift apart. The
    per-patient form filters the base tables before the view's window functions (the view filters
    after them, so a query on it ranks every row of the store: ~0.3 s at 100,000 timepoints).
    """
    if patient_param is None:
        return _TIMELINE.format(assessments="assessments", measurements="measurements WHERE NOT superseded",
                                psp_risk="psp_risk")
    key = f"${patient_param}"
    return _TIMELINE.format(
        assessments=f"assessments WHERE patient_key = {key}",
        measurements=f"measurements WHERE patient_key = {key} AND NOT superseded",
        psp_risk=f"(SELECT * FROM psp_risk WHERE patient_key = {key})",
    ) + "\n    ORDER BY scan_date, study_uid"


DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS measurements (
        measurement_id VARCHAR PRIMARY KEY,
        study_uid VARCHAR NOT NULL,
        patient_key VARCHAR NOT NULL,
        scan_date DATE,
        et_ml DOUBLE, netc_ml DOUBLE, snfh_ml DOUBLE, rc_ml DOUBLE,
        tc_ml DOUBLE,                         -- ET + NETC
        wt_ml DOUBLE,                         -- ET + NETC + SNFH
        spd_mm2 DOUBLE,                       -- sum of bidimensional products over target lesions
        sov_target_ml DOUBLE,                 -- sum of ET volumes over target lesions
        sov_all_ml DOUBLE,                    -- sum of ET volumes over all kept components
        n_lesions INTEGER, n_measurable INTEGER, n_targets INTEGER,
        slice_thickness_mm DOUBLE, min_diameter_mm DOUBLE, obliquity_deg DOUBLE,
        model_name VARCHAR NOT NULL,          -- segmentation model, or 'ground_truth'
        model_version VARCHAR NOT NULL,
        weights_sha256 VARCHAR,
        criteria_version VARCHAR NOT NULL,    -- measurability rules used, e.g. 'RANO 2.0, criteria v1'
        registration_id VARCHAR,              -- registration into the baseline space, if any
        superseded BOOLEAN NOT NULL DEFAULT false,
        computed_at TIMESTAMP NOT NULL
    )""",
    # the segmentation's config digest (engine.store.schema_pipeline); added after the table
    # existed, so every store has it last. NULL: ground truth, or measured before it was recorded.
    "ALTER TABLE measurements ADD COLUMN IF NOT EXISTS config_sha256 VARCHAR",
    """CREATE TABLE IF NOT EXISTS lesions (
        measurement_id VARCHAR NOT NULL,
        study_uid VARCHAR NOT NULL,
        patient_key VARCHAR NOT NULL,
        lesion_index INTEGER NOT NULL,        -- component label within this measurement
        track_id INTEGER,                     -- identity across timepoints (baseline lesion index)
        volume_ml DOUBLE NOT NULL,
        d1_mm DOUBLE NOT NULL, d2_mm DOUBLE NOT NULL, product_mm2 DOUBLE NOT NULL,
        slice_index INTEGER, n_slices INTEGER,
        measurable BOOLEAN NOT NULL,
        is_target BOOLEAN NOT NULL,
        is_new BOOLEAN NOT NULL DEFAULT false,
        outside_field BOOLEAN,                -- NULL: no RT plan to compare with
        note VARCHAR,
        PRIMARY KEY (measurement_id, lesion_index)
    )""",
    """CREATE TABLE IF NOT EXISTS assessments (
        study_uid VARCHAR NOT NULL,
        patient_key VARCHAR NOT NULL,
        scan_date DATE NOT NULL,
        profile VARCHAR NOT NULL,             -- rano2, mrano, rano2010
        mode VARCHAR NOT NULL,                -- 2d, 3d
        criteria VARCHAR NOT NULL,            -- 'RANO 2.0, criteria v1'
        criteria_version INTEGER NOT NULL,
        response VARCHAR NOT NULL,            -- as called on the scan date (engine.types.Response)
        final_response VARCHAR NOT NULL,      -- once later scans are known
        pd_date DATE,                         -- back-dated progression date where final_response = PD
        reason VARCHAR NOT NULL,
        final_reason VARCHAR,
        burden DOUBLE,                        -- SPD mm² (2d) or ET mL (3d)
        baseline_burden DOUBLE, baseline_date DATE,
        nadir_burden DOUBLE, nadir_date DATE,
        change_vs_baseline DOUBLE, change_vs_nadir DOUBLE,
        weeks_post_rt DOUBLE,
        measurement_id VARCHAR,
        assessed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (study_uid, profile, mode)
    )""",
    """CREATE TABLE IF NOT EXISTS psp_risk (
        study_uid VARCHAR NOT NULL,
        patient_key VARCHAR NOT NULL,
        scan_date DATE NOT NULL,
        profile VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        probability DOUBLE NOT NULL,
        low DOUBLE NOT NULL,
        high DOUBLE NOT NULL,
        base_probability DOUBLE NOT NULL,
        combined_multiplier DOUBLE NOT NULL,
        inputs_json VARCHAR NOT NULL,         -- the evidence used
        multipliers_json VARCHAR NOT NULL,    -- [[name, multiplier], ...]
        model VARCHAR NOT NULL,               -- 'literature-informed prior ..., not a trained classifier'
        criteria VARCHAR NOT NULL,
        computed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (study_uid, profile, mode)
    )""",
    """CREATE TABLE IF NOT EXISTS growth (
        patient_key VARCHAR NOT NULL,
        label VARCHAR NOT NULL,               -- ET, SNFH
        model VARCHAR NOT NULL,               -- exponential, gompertz
        evaluable BOOLEAN NOT NULL,
        reason VARCHAR NOT NULL,
        n_points INTEGER NOT NULL,
        nadir_date DATE, nadir_ml DOUBLE,
        sgr_per_day DOUBLE, vdt_days DOUBLE,
        params_json VARCHAR,
        threshold_ml DOUBLE,
        crossing_date DATE, crossing_low DATE, crossing_high DATE,
        interval_method VARCHAR,
        already_crossed BOOLEAN,
        criteria VARCHAR NOT NULL,
        computed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (patient_key, label, model)
    )""",
    """CREATE TABLE IF NOT EXISTS clinical_events (
        patient_key VARCHAR NOT NULL,
        event_date DATE NOT NULL,
        event VARCHAR NOT NULL,               -- engine.events.EventType
        value VARCHAR,
        source VARCHAR NOT NULL,              -- e.g. the CSV file name, 'board'
        entered_by VARCHAR NOT NULL,
        entered_at TIMESTAMP NOT NULL
    )""",
    "CREATE OR REPLACE VIEW timeline AS" + timeline_select(),
)
