"""Vendor-like MR protocols: series descriptions, sequence tags and resolution per cohort size.

The descriptions and tags imitate what Siemens, GE and Philips brain-tumour protocols write
(e.g. Siemens ``t2_tse_tra``, GE ``AX T1 POST GD``, Philips ``3D_FLAIR_SAG``), because the
ingestion's series classifier reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from engine.modelling.synth.acquisition import Plane
from engine.types import Sequence


class CohortSize(StrEnum):
    TEST = "test"
    DEMO = "demo"


@dataclass(frozen=True, slots=True)
class Resolution:
    """Voxel sizes of the series of one cohort size."""

    working_mm: float  # isotropic grid of the generator (labels volumes are measured on it)
    pixel_2d_mm: float
    slice_thickness_2d_mm: tuple[float, ...]
    slice_gap_2d_mm: tuple[float, ...]
    voxel_3d_mm: float
    fov_mm: float = 240.0
    axial_coverage_mm: float = 156.0
    sagittal_coverage_mm: float = 168.0


RESOLUTIONS: dict[CohortSize, Resolution] = {
    CohortSize.TEST: Resolution(working_mm=2.0, pixel_2d_mm=4.0, slice_thickness_2d_mm=(5.0,),
                                slice_gap_2d_mm=(0.0, 1.0), voxel_3d_mm=4.0),
    CohortSize.DEMO: Resolution(working_mm=1.0, pixel_2d_mm=0.9375,
                                slice_thickness_2d_mm=(3.0, 4.0, 5.0),
                                slice_gap_2d_mm=(0.0, 0.5, 1.0), voxel_3d_mm=1.0),
}


@dataclass(frozen=True, slots=True)
class Vendor:
    manufacturer: str
    model: str
    field_strength_t: float
    rescale_slope: float  # stored value * slope = signal (Philips-style scaling when != 1)


VENDORS: tuple[Vendor, ...] = (
    Vendor("SIEMENS", "Skyra", 3.0, 1.0),
    Vendor("GE MEDICAL SYSTEMS", "SIGNA Premier", 3.0, 1.0),
    Vendor("Philips", "Ingenia", 1.5, 1.5),
)


@dataclass(frozen=True, slots=True)
class SeriesProtocol:
    """What a scanner writes for one series (DICOM vocabulary)."""

    sequence: Sequence
    plane: Plane
    description: str
    mr_acquisition_type: str  # 2D | 3D
    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    sequence_name: str
    repetition_time_ms: float
    echo_time_ms: float
    inversion_time_ms: float | None
    flip_angle_deg: float
    echo_train_length: int
    contrast_agent: str | None = None


_DESCRIPTIONS: dict[str, dict[tuple[Sequence, str], str]] = {
    "SIEMENS": {
        (Sequence.T1, "2D"): "t1_se_tra", (Sequence.T1C, "2D"): "t1_se_tra_KM",
        (Sequence.T1C, "3D"): "t1_mprage_sag_p2_iso_KM", (Sequence.T2, "2D"): "t2_tse_tra",
        (Sequence.FLAIR, "2D"): "t2_tirm_tra_dark-fluid",
        (Sequence.FLAIR, "3D"): "t2_space_dark-fluid_sag_p2_iso",
    },
    "GE MEDICAL SYSTEMS": {
        (Sequence.T1, "2D"): "AX T1", (Sequence.T1C, "2D"): "AX T1 POST GD",
        (Sequence.T1C, "3D"): "SAG 3D T1 BRAVO +C", (Sequence.T2, "2D"): "AX T2 FSE",
        (Sequence.FLAIR, "2D"): "AX T2 FLAIR", (Sequence.FLAIR, "3D"): "3D FLAIR SAG",
    },
    "Philips": {
        (Sequence.T1, "2D"): "T1W_SE_TRA", (Sequence.T1C, "2D"): "T1W_SE_TRA_GD",
        (Sequence.T1C, "3D"): "T1W_3D_TFE_SAG +C", (Sequence.T2, "2D"): "T2W_TSE_TRA",
        (Sequence.FLAIR, "2D"): "FLAIR_TRA", (Sequence.FLAIR, "3D"): "3D_FLAIR_SAG",
    },
}


def choose_protocols(vendor: Vendor, rng: np.random.Generator) -> tuple[SeriesProtocol, ...]:
    """Protocols of one study: T1 and T2 axial 2D; T1c and FLAIR axial 2D or sagittal 3D."""
    t1c_3d = rng.random() < 0.5
    flair_3d = rng.random() < 0.4
    return (
        _protocol(vendor, Sequence.T1, three_d=False, rng=rng),
        _protocol(vendor, Sequence.T1C, three_d=t1c_3d, rng=rng),
        _protocol(vendor, Sequence.T2, three_d=False, rng=rng),
        _protocol(vendor, Sequence.FLAIR, three_d=flair_3d, rng=rng),
    )


def _protocol(vendor: Vendor, sequence: Sequence, *, three_d: bool,
              rng: np.random.Generator) -> SeriesProtocol:
    kind = "3D" if three_d else "2D"
    description = _DESCRIPTIONS[vendor.manufacturer][(sequence, kind)]
    plane = Plane.SAG if three_d else Plane.AX
    jitter = float(rng.uniform(0.95, 1.05))
    siemens = vendor.manufacturer == "SIEMENS"
    agent = "Gadobutrol" if sequence is Sequence.T1C else None
    if sequence in (Sequence.T1, Sequence.T1C) and not three_d:
        return SeriesProtocol(sequence, plane, description, kind, "SE", "SK\\SP", "SAT1",
                              "*se2d1" if siemens else "SE", round(550 * jitter), 9.8, None,
                              90.0, 1, agent)
    if sequence is Sequence.T1C:
        return SeriesProtocol(sequence, plane, description, kind, "GR\\IR", "SK\\SP\\MP",
                              "IR", "*tfl3d1_16ns" if siemens else "MPRAGE",
                              round(2300 * jitter), 2.3, 900.0, 8.0, 1, agent)
    if sequence is Sequence.T2:
        return SeriesProtocol(sequence, plane, description, kind, "SE", "SK\\SP", "SAT1",
                              "*tse2d1_15" if siemens else "TSE", round(5000 * jitter), 95.0,
                              None, 150.0, 15)
    if three_d:
        return SeriesProtocol(sequence, plane, description, kind, "SE\\IR", "SK\\SP\\MP",
                              "IR", "*spcir3d1_146ns" if siemens else "FLAIR_3D",
                              round(5000 * jitter), 390.0, 1800.0, 120.0, 146)
    return SeriesProtocol(sequence, plane, description, kind, "SE\\IR", "SK\\SP\\MP", "IR",
                          "*tir2d1_16" if siemens else "FLAIR", round(9000 * jitter), 95.0,
                          2500.0, 150.0, 16)
