"""A labelled dataset on disk: one folder per case, NIfTI volumes named as BraTS names them.

::

    DATASET/<case>/<case>-t1n.nii.gz   T1       (also ``t1``)
    DATASET/<case>/<case>-t1c.nii.gz   T1c      (also ``t1ce``, ``t1gd``)
    DATASET/<case>/<case>-t2w.nii.gz   T2       (also ``t2``)
    DATASET/<case>/<case>-t2f.nii.gz   FLAIR    (also ``flair``)
    DATASET/<case>/<case>-seg.nii.gz   reference labels, optional (also a name holding ``label``,
                                       ``consensus``, ``truth`` or ``gt`` as a word)

A sequence may be missing. The file name's last word (split on ``-``, ``_`` and ``.``) names the
sequence, so ``BraTS-GLI-00001-000-t1c.nii.gz`` and ``t1c.nii.gz`` both are the T1c.
Reference labels are converted to GlioWatch's labels (BraTS 2024 numbering) from the
convention they are written in (:func:`reference_labels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import GlioWatchError
from engine.segmentation.bundle import CHANNEL_NAMES, LABEL_CONVENTIONS, map_labels
from engine.types import Sequence, Volume

#: words in a file name that mark the reference labels.
REFERENCE_WORDS = frozenset({"seg", "label", "labels", "consensus", "truth", "gt", "reference"})
#: label conventions a reference may be written in; ``auto`` decides per case (:func:`detect_convention`).
REFERENCE_CONVENTIONS = ("auto", "brats2015", "brats2021", "brats2024")
_NIFTI = (".nii.gz", ".nii")


class EvaluationInputError(GlioWatchError):
    """A case of an evaluation dataset cannot be read or scored."""


@dataclass(frozen=True, slots=True)
class EvaluationCase:
    """One case folder: its sequences and, when labelled, its reference file."""

    name: str
    folder: Path
    sequences: dict[Sequence, Path] = field(default_factory=dict)
    reference: Path | None = None
    #: why the folder cannot be used as it is (ambiguous or no image), or ``None``.
    problem: str | None = None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _NIFTI:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _words(path: Path) -> list[str]:
    return [w for w in re.split(r"[-_.]", _stem(path).lower()) if w]


def read_case_folder(folder: Path) -> EvaluationCase:
    """The sequences and reference of one case folder (see the module doc).

    Two files for one sequence, or two reference files, make the case ambiguous: it is returned
    with a ``problem`` rather than guessed.
    """
    sequences: dict[Sequence, Path] = {}
    references: list[Path] = []
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.lower().endswith(_NIFTI):
            continue
        words = _words(path)
        sequence = CHANNEL_NAMES.get(words[-1]) if words else None
        if sequence is not None:
            if sequence in sequences:
                problems.append(f"two {sequence} files ({sequences[sequence].name}, {path.name})")
            sequences[sequence] = path
        elif REFERENCE_WORDS.intersection(words):
            references.append(path)
    if len(references) > 1:
        problems.append("more than one reference file (" + ", ".join(p.name for p in references) + ")")
    if not sequences:
        problems.append("no T1, T1c, T2 or FLAIR volume (names ending in t1n/t1, t1c, t2w/t2, t2f/flair)")
    return EvaluationCase(
        name=folder.name,
        folder=folder,
        sequences=sequences,
        reference=references[0] if len(references) == 1 else None,
        problem="; ".join(problems) or None,
    )


def discover_cases(dataset_dir: Path) -> list[EvaluationCase]:
    """Every case folder under ``dataset_dir`` (a folder holding NIfTI files), sorted by name.

    ``dataset_dir`` itself is one case when it holds NIfTI files directly.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        msg = f"Dataset folder {dataset_dir} does not exist"
        raise EvaluationInputError(msg, action="Give a folder with one sub-folder per case (BraTS layout).")

    def holds_nifti(folder: Path) -> bool:
        return any(p.is_file() and p.name.lower().endswith(_NIFTI) for p in folder.iterdir())

    if holds_nifti(dataset_dir):
        return [read_case_folder(dataset_dir)]
    cases = [read_case_folder(p) for p in sorted(dataset_dir.iterdir()) if p.is_dir() and holds_nifti(p)]
    if not cases:
        msg = f"Dataset folder {dataset_dir} holds no case folder with NIfTI files"
        raise EvaluationInputError(msg, action="Give a folder with one sub-folder per case (BraTS layout).")
    return cases


def detect_convention(values: set[int]) -> str:
    """The BraTS convention of a reference from the label values it holds.

    A reference holding 3 is read as BraTS 2024 (3 = enhancing, 4 = resection cavity); values
    within {0, 1, 2, 4} as BraTS 2021 (4 = enhancing), which has no cavity label, so a cavity the
    model finds there is not scored as a region (it is reported by the cavity check). BraTS 2015
    (3 = non-enhancing) cannot be told from 2024 by its values: name it with ``--labels brats2015``.

    >>> detect_convention({0, 1, 2, 4}), detect_convention({0, 2, 3}), detect_convention({0, 1, 2})
    ('brats2021', 'brats2024', 'brats2021')
    """
    return "brats2024" if 3 in values else "brats2021"


def reference_labels(reference: Volume, *, convention: str, case: str) -> tuple[np.ndarray, str]:
    """The reference in GlioWatch labels and the convention used; a value outside the
    convention is refused (never silently dropped)."""
    array = np.asarray(reference.array)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            msg = f"Reference labels of case {case} are not whole numbers"
            raise EvaluationInputError(msg, exam=case, action="Give a label volume (integer values).")
        array = array.astype(np.int64)
    values = {int(v) for v in np.unique(array)}
    used = detect_convention(values) if convention == "auto" else convention
    if used not in LABEL_CONVENTIONS:
        msg = f"Unknown label convention {used!r}"
        raise EvaluationInputError(msg, action=f"Use one of {', '.join(REFERENCE_CONVENTIONS)}.")
    mapping = LABEL_CONVENTIONS[used]
    unknown = sorted(values - {0} - set(mapping))
    if unknown:
        msg = f"Reference labels of case {case} hold values {unknown} that {used} does not define"
        raise EvaluationInputError(
            msg, exam=case, action=f"Pass --labels with the convention the labels are written in ({used} defines "
            + ", ".join(f"{k}={v.name}" for k, v in sorted(mapping.items())) + ").")
    return map_labels(array, convention=used), used  # every value is now one the convention defines
