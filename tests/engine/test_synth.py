"""Anatomy, tumour, scenarios and the on-the-fly training cases of the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest

from engine.modelling.synth import Scenario, sample_acquired_case, sample_training_case
from engine.modelling.synth.anatomy import Tissue, build_head
from engine.modelling.synth.contrast import render_sequence
from engine.modelling.synth.scenarios import Phase, plan_patient
from engine.modelling.synth.tumour import TumourState, build_field, render, sample_geometry
from engine.types import STUDY_SEQUENCES, Label, Sequence

SPACING_MM = 2.0


@pytest.fixture(scope="module")
def head():  # noqa: ANN201
    return build_head(spacing_mm=SPACING_MM)


def test_head_has_skull_and_scalp_around_the_brain(head) -> None:  # noqa: ANN001
    fractions = head.fractions
    total = sum(fractions.values())
    assert float(total.max()) <= 1.0 + 1e-4
    voxel_ml = SPACING_MM**3 / 1000.0
    brain_ml = float(head.brain.sum()) * voxel_ml
    assert 1000.0 < brain_ml < 1900.0  # adult brain (MNI152 is large)
    assert float(fractions[Tissue.BONE].sum()) * voxel_ml > 150.0
    assert float(fractions[Tissue.FAT].sum()) * voxel_ml > 100.0
    # along a line from the centre outward: brain, then bone, then fat, then air
    center = np.rint(np.linalg.inv(head.affine) @ np.append(head.center_mm(), 1.0))[:3]
    i, j, k = (int(v) for v in center)
    line = {t: fractions[t][i, j, k:] for t in (Tissue.WM, Tissue.BONE, Tissue.FAT)}
    first = {t: int(np.argmax(v > 0.5)) for t, v in line.items()}
    assert first[Tissue.WM] < first[Tissue.BONE] < first[Tissue.FAT]


def test_tumour_labels_nest_and_follow_the_state(head) -> None:  # noqa: ANN001
    geometry = sample_geometry(head, np.random.default_rng(3), cavity_offset_mm=2.0)
    field = build_field(head, geometry)
    voxel_ml = SPACING_MM**3 / 1000.0
    small = render(field, TumourState(enhancing_radius_mm=12.0, rim_mm=3.0, oedema_margin_mm=10.0))
    large = render(field, TumourState(enhancing_radius_mm=18.0, rim_mm=3.0, oedema_margin_mm=10.0))
    v_small, v_large = small.volumes_ml(voxel_ml=voxel_ml), large.volumes_ml(voxel_ml=voxel_ml)
    assert v_small["RC"] == 0.0 and v_small["NETC"] > 0.0
    assert v_large["ET"] + v_large["NETC"] > 1.5 * (v_small["ET"] + v_small["NETC"])
    assert v_large["SNFH"] > v_large["ET"]
    # necrosis is enclosed by enhancing tissue: no NETC voxel touches the background
    netc = large.labels == Label.NETC
    neighbours = np.zeros_like(netc)
    for axis in range(3):
        for shift in (-1, 1):
            neighbours |= np.roll(netc, shift, axis=axis)
    touching = large.labels[neighbours & ~netc]
    assert np.isin(touching, [Label.ET, Label.NETC]).mean() > 0.9
    # not a sphere: the radius of the enhancing boundary varies
    points = np.argwhere((large.labels == Label.ET) | (large.labels == Label.NETC))
    radii = np.linalg.norm(points - points.mean(axis=0), axis=1) * SPACING_MM
    assert np.percentile(radii, 95) > 1.3 * np.percentile(radii, 50)
    # resection cavity replaces the core
    post = render(field, TumourState(enhancing_radius_mm=18.0, rim_mm=3.0,
                                     oedema_margin_mm=6.0, cavity_radius_mm=17.0))
    assert post.volumes_ml(voxel_ml=voxel_ml)["RC"] > 5.0
    assert post.volumes_ml(voxel_ml=voxel_ml)["ET"] < 0.5 * v_large["ET"]


def test_contrast_per_sequence(head) -> None:  # noqa: ANN001
    geometry = sample_geometry(head, np.random.default_rng(4), cavity_offset_mm=2.0)
    maps = render(build_field(head, geometry),
                  TumourState(enhancing_radius_mm=16.0, oedema_margin_mm=12.0))
    wm = head.fractions[Tissue.WM] > 0.95
    gm = head.fractions[Tissue.GM] > 0.8
    csf = head.fractions[Tissue.CSF] > 0.95
    img = {s: render_sequence(head=head, tumour=maps, sequence=s) for s in Sequence
           if s is not Sequence.OTHER}
    mean = lambda s, m: float(img[s][m & (maps.labels == 0)].mean())  # noqa: E731
    assert mean(Sequence.T1, wm) > mean(Sequence.T1, gm) > mean(Sequence.T1, csf)
    assert mean(Sequence.T2, csf) > mean(Sequence.T2, gm) > mean(Sequence.T2, wm)
    assert mean(Sequence.FLAIR, csf) < 0.5 * mean(Sequence.FLAIR, wm)
    et, snfh, netc = (maps.labels == lab for lab in (Label.ET, Label.SNFH, Label.NETC))
    assert img[Sequence.T1C][et].mean() > 1.2 * mean(Sequence.T1C, wm)
    assert img[Sequence.FLAIR][snfh].mean() > 1.5 * mean(Sequence.FLAIR, wm)
    assert img[Sequence.T1C][netc].mean() < mean(Sequence.T1C, wm)


def _et_course(head, scenario: Scenario, seed: int, n_visits: int = 8):  # noqa: ANN001, ANN202
    rng = np.random.default_rng([seed, 99])
    plan = plan_patient(patient_id="T", scenario=scenario, rng=rng, n_visits=n_visits)
    field = build_field(head, sample_geometry(head, rng, cavity_offset_mm=plan.cavity_offset_mm))
    voxel_ml = SPACING_MM**3 / 1000.0
    volumes = [render(field, v.state).volumes_ml(voxel_ml=voxel_ml) for v in plan.visits]
    return plan, [v["ET"] for v in volumes], volumes


@pytest.mark.parametrize("seed", [0, 1])
def test_progression_grows_over_the_nadir(head, seed: int) -> None:  # noqa: ANN001
    plan, et, _ = _et_course(head, Scenario.PROGRESSION, seed)
    nadir = min(et[2:])
    assert et[-1] >= 1.4 * nadir and et[-1] - nadir > 1.0
    assert plan.visits[-1].clinical_status == "worse"


@pytest.mark.parametrize("seed", [0, 1])
def test_pseudoprogression_peaks_within_12_weeks_then_recedes(head, seed: int) -> None:  # noqa: ANN001
    plan, et, _ = _et_course(head, Scenario.PSEUDOPROGRESSION, seed)
    peak = int(np.argmax(et[2:])) + 2
    assert (plan.visits[peak].study_date - plan.rt_end_date).days <= 84
    assert et[peak] >= 1.4 * et[2]  # looks like progression against the post-RT baseline
    assert et[-1] < 0.5 * et[peak]
    assert all(v.steroid_mg_day <= plan.visits[peak].steroid_mg_day for v in plan.visits[peak + 1:])


@pytest.mark.parametrize("seed", [0, 1])
def test_partial_response_halves_enhancement(head, seed: int) -> None:  # noqa: ANN001
    _, et, _ = _et_course(head, Scenario.PARTIAL_RESPONSE, seed)
    assert et[2] > 2.0
    assert min(et[3:]) <= 0.5 * et[2]


@pytest.mark.parametrize("seed", [0, 1])
def test_stable_then_late_recurrence(head, seed: int) -> None:  # noqa: ANN001
    _, stable, _ = _et_course(head, Scenario.STABLE, seed)
    assert max(stable[2:]) <= 1.25 * min(stable[2:]) + 0.5
    _, late, _ = _et_course(head, Scenario.LATE_RECURRENCE, seed)
    quiet = late[2:-2]
    assert len(quiet) >= 3 and max(quiet) <= 1.25 * min(quiet) + 0.5
    assert late[-1] >= 1.4 * min(late[2:]) and late[-1] - min(late[2:]) > 2.0


def test_late_recurrence_with_six_visits_is_quiet_until_the_last(head) -> None:  # noqa: ANN001
    plan, late, _ = _et_course(head, Scenario.LATE_RECURRENCE, 2, n_visits=6)
    quiet = late[2:-1]
    assert max(quiet) <= 1.25 * min(quiet) + 0.5
    assert late[-1] >= 1.4 * min(quiet) and late[-1] - min(quiet) > 2.0
    assert plan.visits[-1].clinical_status == "worse"


def test_plan_dates_and_phases() -> None:
    plan = plan_patient(patient_id="GW-SYN-0009", scenario=Scenario.STABLE,
                        rng=np.random.default_rng(5), n_visits=6)
    phases = [v.phase for v in plan.visits]
    assert phases[:3] == [Phase.PRE_OP, Phase.POST_OP, Phase.POST_RT]
    assert set(phases[3:]) == {Phase.FOLLOW_UP}
    dates = [v.study_date for v in plan.visits]
    assert dates[0] < plan.surgery_date < dates[1] < plan.rt_start_date < plan.rt_end_date
    assert dates[2] > plan.rt_end_date
    gaps = [(b - a).days for a, b in zip(dates[2:], dates[3:], strict=False)]
    assert all(42 <= g <= 84 for g in gaps)
    with pytest.raises(ValueError, match="n_visits"):
        plan_patient(patient_id="X", scenario=Scenario.STABLE, rng=np.random.default_rng(0),
                     n_visits=2)


def test_training_case_shapes_and_determinism() -> None:
    case = sample_training_case(7, spacing_mm=SPACING_MM)
    assert case.images.dtype == np.float32 and case.labels.dtype == np.uint8
    assert case.images.shape == (4, *case.labels.shape)
    assert np.all(np.isfinite(case.images))
    np.testing.assert_allclose(np.linalg.norm(case.affine[:3, :3], axis=0), SPACING_MM)
    assert set(np.unique(case.labels)) <= {0, 1, 2, 3, 4}
    again = sample_training_case(7, spacing_mm=SPACING_MM)
    np.testing.assert_array_equal(case.images, again.images)
    np.testing.assert_array_equal(case.labels, again.labels)
    other = sample_training_case(8, spacing_mm=SPACING_MM)
    assert not np.array_equal(case.labels, other.labels)


def test_training_case_knobs() -> None:
    case = sample_training_case(3, scenario="pseudoprogression", visit_index=3,
                                contrast_jitter=0.0, noise_range=(0.0, 0.0), bias_strength=0.0,
                                thick_slice_probability=0.0, normalize=False)
    assert case.scenario == "pseudoprogression" and case.phase == "FOLLOW_UP"
    assert case.volumes_ml["RC"] > 0 and case.volumes_ml["ET"] > 0
    t1c, flair = case.images[1], case.images[3]
    et, snfh, rc = (case.labels == lab for lab in (Label.ET, Label.SNFH, Label.RC))
    head = build_head(spacing_mm=SPACING_MM)
    wm = (head.fractions[Tissue.WM] > 0.95) & (case.labels == 0)
    assert t1c[et].mean() > 1.2 * t1c[wm].mean()
    assert flair[snfh].mean() > 1.5 * flair[wm].mean()
    assert flair[rc].mean() < flair[wm].mean()
    with pytest.raises(ValueError, match="visit_index"):
        sample_training_case(3, visit_index=99)


def test_acquired_case_is_a_set_of_series_on_their_own_scanner_grids() -> None:
    case = sample_acquired_case(11, spacing_mm=SPACING_MM)
    assert tuple(case.volumes) == STUDY_SEQUENCES
    affines = [v.affine for v in case.volumes.values()]
    assert any(not np.allclose(affines[0], a) for a in affines[1:])  # each series has its own grid
    for volume in case.volumes.values():
        assert volume.array.dtype == np.float32 and np.all(np.isfinite(volume.array))
    assert case.labels.dtype == np.uint8 and case.labels_affine.shape == (4, 4)
    again = sample_acquired_case(11, spacing_mm=SPACING_MM)
    for seq in STUDY_SEQUENCES:
        np.testing.assert_array_equal(case.volumes[seq].array, again.volumes[seq].array)
    assert case.protocol == again.protocol
    other = sample_acquired_case(12, spacing_mm=SPACING_MM)
    assert other.protocol != case.protocol or not np.array_equal(other.labels, case.labels)


def test_acquired_case_labels_sit_where_the_images_show_the_tumour() -> None:
    """The label grid's affine (head pose included) points at the series' enhancing and cavity voxels."""
    case = sample_acquired_case(5, spacing_mm=SPACING_MM, scenario="progression", visit_index=4,
                                noise_range=(0.0, 0.0), bias_range=(0.0, 0.0), contrast_jitter=0.0)
    t1c = case.volumes[Sequence.T1C]
    world_to_t1c = np.linalg.inv(t1c.affine) @ case.labels_affine

    def mean_t1c(label: int) -> float:
        idx = np.argwhere(case.labels == label)[::7]
        vox = np.round((world_to_t1c @ np.c_[idx, np.ones(len(idx))].T).T[:, :3]).astype(int)
        ok = np.all((vox >= 0) & (vox < t1c.array.shape), axis=1)
        return float(t1c.array[tuple(vox[ok].T)].mean())

    assert mean_t1c(int(Label.ET)) > 1.2 * mean_t1c(int(Label.SNFH))
    assert mean_t1c(int(Label.RC)) < 0.6 * mean_t1c(int(Label.SNFH))
