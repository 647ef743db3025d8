"""Synthetic longitudinal glioma cohort: MNI152 anatomy, BraTS 2024 tumour labels, DICOM.

Public API:
- :func:`sample_training_case` — one (images, labels) case on the fly for training;
- :func:`generate_cohort` — a whole cohort written as DICOM with ground truth;
- :func:`cohort_visits` — the studies of a written cohort (DICOM files, truth) for evaluation.
"""

from engine.modelling.synth.cohort import CohortVisit, cohort_visits, generate_cohort
from engine.modelling.synth.scenarios import Phase, Scenario
from engine.modelling.synth.training import AcquiredCase, TrainingCase, sample_acquired_case, sample_training_case

__all__ = ["AcquiredCase", "CohortVisit", "Phase", "Scenario", "TrainingCase", "cohort_visits", "generate_cohort", "sample_acquired_case", "sample_training_case"]
