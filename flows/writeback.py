"""The write-back step in the flow: every assessed study whose latest assessment is not yet in
the archive gets its SEG and SR stored there (``engine.writeback.step``), one task per study.

Called after assessment and at the start of every cycle (``flows.process``), so a study left
between assessment and write-back (crash, archive down) is picked up by the next cycle.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prefect import task
from prefect.cache_policies import NONE as NO_CACHE

from engine.errors import GlioWatchError
from engine.pipeline import StageOutcome
from engine.store import writeback as writeback_sql
from engine.writeback.step import WriteBackOptions, WriteBackOutcome, record_failure, write_back_study
from flows.runtime import Runtime

log = logging.getLogger("gliowatch.writeback")


@task(name="write-back-study", cache_policy=NO_CACHE)
def write_back_task(rt: Runtime, study_uid: str, assessed_at: datetime) -> WriteBackOutcome:
    settings = rt.settings.writeback
    options = WriteBackOptions(segmentation_type="LABELMAP" if settings.labelmap else "BINARY",
                               delete_superseded=settings.delete_superseded, key_image=settings.key_image)
    return write_back_study(rt.store, rt.archive, study_uid, paths=rt.paths,
                            writeback_dir=rt.settings.writeback_dir, assessed_at=assessed_at, options=options)


def write_back_pending(rt: Runtime) -> list[StageOutcome]:
    """Write back every study due (writer process); nothing when ``[writeback] enabled`` is off."""
    if not rt.settings.writeback.enabled:
        return []
    outcomes = []
    for row in writeback_sql.studies_due(rt.store):
        try:
            outcome = write_back_task(rt, row["study_uid"], row["assessed_at"])
        except GlioWatchError:
            raise  # retryable (archive down): the study stays due, the cycle is retried
        except Exception as exc:  # noqa: BLE001 - one study's failure must not stop the stream
            log.debug("write-back of %s", row["study_uid"], exc_info=True)
            outcome = record_failure(rt.store, row["study_uid"], assessed_at=row["assessed_at"],
                                     reason=f"Write-back failed unexpectedly ({type(exc).__name__})")
        (log.info if outcome.ok else log.warning)("write-back %s: %s", "done" if outcome.ok else "FAILED",
                                                  outcome.message)
        outcomes.append(StageOutcome(stage="write-back", study_uid=outcome.study_uid, ok=outcome.ok,
                                     message=outcome.message))
    return outcomes
