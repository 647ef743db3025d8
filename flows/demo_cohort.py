"""The demo's synthetic cohort, written while the stream already runs.

Writing the cohort's images is the longest step before anything can be sent (about 2 CPU-minutes
for 5 x 6 studies on the 2-core machine), so a fresh demo writes it in a child process
(:class:`CohortWriter`) and the paced uploader sends each study as soon as its files exist; the
pipeline works on the first patient while the next ones are being drawn. The clinical events do
not wait for the images: they come from the visit plans (:func:`cohort_plans`, the first draw of
each patient's generator), imported before the first study is sent, so every study is assessed
against its patient's treatment dates. A cohort written by an earlier demo (same seed, size and
generator code) is reused as it is.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import GlioWatchError

#: seconds between checks, while waiting for the next study, that the writer is still alive
_POLL_S = 1.0


def _write_in_child(out_dir: str, patients: int, visits: int, seed: int, size: str, channel: Any) -> None:
    """The child process: write the cohort, telling the parent each study's files as they land."""
    try:
        from engine.modelling.synth import generate_cohort

        generate_cohort(n_patients=patients, seed=seed, out_dir=out_dir, size=size, n_visits=visits, force=True,
                        on_visit=lambda files: channel.put(("study", [str(f) for f in files])))
        channel.put(("done", None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the demo
        channel.put(("error", f"{type(exc).__name__}: {exc}"))


class CohortWriter:
    """Writes the demo cohort into ``out_dir`` in a child process; :meth:`studies` yields each
    study's DICOM files (patient by patient, each in visit order) as soon as it is written."""

    def __init__(self, out_dir: Path, *, patients: int, visits: int, seed: int, size: str = "demo") -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
        self._channel = context.Queue()
        self._process = context.Process(target=_write_in_child, name="demo-cohort-writer", daemon=True,
                                        args=(str(out_dir), patients, visits, seed, size, self._channel))
        self._stopped = False

    def start(self) -> CohortWriter:
        self._process.start()
        return self

    def studies(self) -> Iterator[list[Path]]:
        while not self._stopped:
            try:
                kind, payload = self._channel.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._process.is_alive() and not self._stopped:
                    raise GlioWatchError("The demo's cohort writer stopped before the cohort was written",
                                         detail=f"exit code {self._process.exitcode}") from None
                continue
            if kind == "done":
                return
            if kind == "error":
                raise GlioWatchError("The demo could not write its synthetic cohort", detail=str(payload))
            yield [Path(p) for p in payload]

    def stop(self) -> None:
        self._stopped = True
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)
