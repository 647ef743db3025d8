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

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from engine.errors import GlioWatchError

#: seconds between checks, while waiting for the next study, that the writer is still alive
_POLL_S = 1.0
#: the folder that holds the ``engine`` and ``flows`` packages, put on the child's import path
_CODE_ROOT = Path(__file__).resolve().parents[1]


def _write(out_dir: str, patients: int, visits: int, seed: int, size: str, channel: IO[str]) -> int:
    """The child's work: write the cohort, telling the parent each study's files as they land
    (one JSON line per message on ``channel``)."""

    def tell(kind: str, payload: object) -> None:
        channel.write(json.dumps([kind, payload]) + "\n")
        channel.flush()

    try:
        from engine.modelling.synth import generate_cohort

        generate_cohort(n_patients=patients, seed=seed, out_dir=out_dir, size=size, n_visits=visits, force=True,
                        on_visit=lambda files: tell("study", [str(f) for f in files]))
        tell("done", None)
        return 0
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which stops the demo
        tell("error", f"{type(exc).__name__}: {exc}")
        return 1


def _child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.demo_cohort")
    parser.add_argument("out_dir")
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--visits", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--size", default="demo")
    args = parser.parse_args(argv)
    # the messages keep the real stdout to themselves; anything else the child prints goes to stderr
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return _write(args.out_dir, args.patients, args.visits, args.seed, args.size, channel)


class CohortWriter:
    """Writes the demo cohort into ``out_dir`` in a child process; :meth:`studies` yields each
    study's DICOM files (patient by patient, each in visit order) as soon as it is written.

    The child is a fresh interpreter (``python -m flows.demo_cohort``), not a multiprocessing
    child: no fork of a process that holds torch threads, and nothing of the parent's
    ``__main__`` is re-imported (multiprocessing's spawn re-runs the parent's main script, which
    under a test run can be whatever script Streamlit's AppTest last installed as ``__main__``).
    """

    def __init__(self, out_dir: Path, *, patients: int, visits: int, seed: int, size: str = "demo") -> None:
        self._argv = [sys.executable, "-m", "flows.demo_cohort", str(out_dir), "--patients", str(patients),
                      "--visits", str(visits), "--seed", str(seed), "--size", size]
        self._process: subprocess.Popen[str] | None = None
        self._messages: queue.Queue[tuple[str, object]] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._stopped = False

    def start(self) -> CohortWriter:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_CODE_ROOT), env.get("PYTHONPATH", "")) if p)
        self._process = subprocess.Popen(self._argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                         text=True, env=env)
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,),
                                        name="demo-cohort-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            try:
                kind, payload = json.loads(line)
            except ValueError:
                continue  # not one of the child's messages
            self._messages.put((str(kind), payload))

    def studies(self) -> Iterator[list[Path]]:
        if self._process is None or self._reader is None:
            raise RuntimeError("CohortWriter.studies() before start()")
        while not self._stopped:
            try:
                kind, payload = self._messages.get(timeout=_POLL_S)
            except queue.Empty:
                # every message the child wrote is queued once the reader has met the end of its output
                if not self._reader.is_alive() and self._messages.empty() and not self._stopped:
                    raise GlioWatchError("The demo's cohort writer stopped before the cohort was written",
                                         detail=f"exit code {self._process.wait()}") from None
                continue
            if kind == "done":
                return
            if kind == "error":
                raise GlioWatchError("The demo could not write its synthetic cohort", detail=str(payload))
            assert isinstance(payload, list)
            yield [Path(p) for p in payload]

    def stop(self) -> None:
        self._stopped = True
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


if __name__ == "__main__":
    raise SystemExit(_child_main())
