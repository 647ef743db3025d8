"""Which of a study's sequences a registration aligns (and so whose grid is "baseline space")."""

from __future__ import annotations

from collections.abc import Iterable

from engine.types import Sequence


def reference_sequence(available: Iterable[str], preferred: str = "T1c") -> Sequence | None:
    """The ``preferred`` sequence when the study has it, else T1c, else T1; None without either.

    >>> reference_sequence(["FLAIR", "T1", "T1c"]), reference_sequence(["T1", "T2"]), reference_sequence(["T2"])
    (<Sequence.T1C: 'T1c'>, <Sequence.T1: 'T1'>, None)
    """
    have = {Sequence(s) for s in available}
    order = [Sequence(preferred)] + [s for s in (Sequence.T1C, Sequence.T1) if s.value != preferred]
    return next((s for s in order if s in have), None)
