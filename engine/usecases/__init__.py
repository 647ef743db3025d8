"""The use cases: one module each, the only code that reads the store, runs the engine and writes
the result back. Flows and commands call them with ids and collaborators built once by the
composition root (``flows.runtime``); they import no flows, no Prefect and no Streamlit.

- :mod:`~engine.usecases.follow_archive` — ``run_cycle`` / ``run_backfill``: the archive's change
  feed (or its whole content) through ``ingest_study``, each study recorded with the cursor.
- :mod:`~engine.usecases.ingest_study` — ``ingest_study(archive_study_id)``: one stable study
  from the archive into classified series and NIfTI volumes (the stream commits it with its cursor).
- :mod:`~engine.usecases.segment_study` — ``segment_study(study_uid)`` / ``segment_studies``.
- :mod:`~engine.usecases.register_study` — ``register_study(study_uid)`` / ``register_studies``,
  re-registration when the baseline changes.
- :mod:`~engine.usecases.assess_patient` — ``assess_patient(patient_key)``: measure what changed
  (:mod:`~engine.usecases.course_measurements`), response, PsP, growth and alerts in one transaction.
- :mod:`~engine.usecases.apply_board_request` — tumour-board requests queued by the dashboard.

The heavy middle of segmentation and registration runs wherever the caller says: the use case
takes a ``compute`` callable over picklable jobs (``engine.pipeline``) and commits what it returns.
"""
