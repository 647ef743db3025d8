"""Image review on a store the real pipeline produced (``pipeline_state``): every stored path is
found by the one rule the writers used, both timepoints are drawn in baseline space with their
labels over every sequence, the difference view works; a path leading out of the state dir is
refused with an error box, never read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data, images
from dashboard.image_volumes import ImageSource, load_volume, on_grid, same_grid, stored_file, study_sources
from dashboard.slices import Plane, apply_window, default_window, extract_slice, overlay
from engine.errors import StoreError
from engine.state_paths import StoredFile
from engine.store import open_store
from engine.types import Label
from tests.dashboard.conftest import APP_PATH, log_in, open_page
from tests.dashboard.pipeline_state import N_VISITS, PipelineState
from tests.dashboard.store_factory import Built

SEQUENCES = ("T1c", "FLAIR", "T2", "T1")


def _image_review(patient_key: str) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    return open_page(log_in(at), "Image review", patient_key)


def _assert_drawn(at: AppTest, n_images: int) -> list[str]:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    captions = [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert len(captions) == n_images, captions
    return captions


def test_every_stored_path_lies_where_the_rule_says(pipeline_state: PipelineState) -> None:
    paths = pipeline_state.settings.state_paths
    with open_store(pipeline_state.settings.snapshot_path, read_only=True) as store:
        volumes = [p for (p,) in store.query("SELECT path FROM volumes")]
        labels = [p for (p,) in store.query("SELECT labels_path FROM segmentations")]
        resampled = [p for (r,) in store.query("SELECT resampled FROM registrations") for p in json.loads(r).values()]
    assert len(volumes) == 4 * N_VISITS and len(labels) == N_VISITS
    assert len(resampled) == N_VISITS - 1, "the labels of each follow-up (its images are moved when shown)"
    for kind, stored in ((StoredFile.VOLUME, volumes), (StoredFile.LABELS, labels),
                         (StoredFile.REGISTERED, resampled)):
        for path in stored:
            assert not path.startswith("/"), f"{kind} path stored absolute: {path}"
            assert paths.resolve(kind, path).is_file(), f"{kind} {path} not under {paths.folder(kind)}"


def test_image_review_draws_every_pair_and_sequence(pipeline_state: PipelineState) -> None:
    at = _image_review(pipeline_state.patient_key)
    assert any("Registered volumes (baseline space)" in s.value for s in at.success)
    _assert_drawn(at, 2)
    names = at.selectbox(key="img_a").options
    assert len(names) == N_VISITS
    for earlier in names:  # the baseline against the last scan, a follow-up against it, the last against itself
        at.selectbox(key="img_a").set_value(earlier).run()
        assert set(at.radio(key="img_seq").options) == set(SEQUENCES)
        for sequence in SEQUENCES:
            at.radio(key="img_seq").set_value(sequence).run()
            captions = _assert_drawn(at, 2)
            assert captions[0].startswith(f"{earlier} · {sequence} · axial slice")
    at.radio(key="img_plane").set_value("coronal").run()
    _assert_drawn(at, 2)
    at.checkbox(key="img_diff").check().run()
    captions = _assert_drawn(at, 3)
    assert captions[2].startswith("Difference (later − earlier)")


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_baseline_and_follow_up_share_a_grid_with_their_labels(pipeline_state: PipelineState,
                                                               sequence: str) -> None:
    ref = data.snapshot_ref(pipeline_state.settings.snapshot_path)
    studies = data.patient_bundle(ref, pipeline_state.patient_key)["images"]
    labels = data.labels_paths(ref, pipeline_state.patient_key)
    baseline, last = studies.iloc[0], studies.iloc[-1]
    assert baseline["is_reference"] and last["registered"]
    src_a, src_b = (study_sources(row, baseline_space=True, labels_path=labels.get(row["study_uid"]))
                    for row in (baseline, last))
    assert src_a["labels"].kind == StoredFile.LABELS and src_b["labels"].kind == StoredFile.REGISTERED
    vol_a, vol_b, lab_a, lab_b = images._pair(pipeline_state.settings, src_a, src_b, sequence, True)
    assert same_grid(vol_a, vol_b) and same_grid(lab_a, vol_b) and same_grid(lab_b, vol_b)
    for vol, lab in ((vol_a, lab_a), (vol_b, lab_b)):
        et_per_slice = (lab.array == int(Label.ET)).sum(axis=(0, 1))
        assert et_per_slice.max() > 0, "the segmentation found enhancing tumour"
        index = int(np.argmax(et_per_slice))
        level, width = default_window(vol.array)
        grey = apply_window(extract_slice(vol.array, Plane.AXIAL, index), level=level, width=width)
        rgb = overlay(grey, extract_slice(lab.array, Plane.AXIAL, index), show={Label.ET})
        coloured = np.any(rgb != np.repeat(grey[..., None], 3, axis=2), axis=2)
        assert coloured.sum() == (extract_slice(lab.array, Plane.AXIAL, index) == int(Label.ET)).sum() > 0


def test_a_follow_up_is_shown_moved_into_the_baseline_by_its_registration(pipeline_state: PipelineState) -> None:
    """The follow-up's native T1c, moved by its stored matrix, lies on the baseline's T1c grid and
    matches the baseline's anatomy far better than the same volume left where the scanner put it."""
    settings = pipeline_state.settings
    ref = data.snapshot_ref(settings.snapshot_path)
    studies = data.patient_bundle(ref, pipeline_state.patient_key)["images"]
    baseline, last = studies.iloc[0], studies.iloc[-1]
    src = study_sources(last, baseline_space=True, labels_path=None)
    with open_store(settings.snapshot_path, read_only=True) as store:
        matrix = json.loads(store.query("""SELECT matrix FROM registrations WHERE study_uid = ? AND kind = 'baseline'
                                           AND NOT superseded""", [last["study_uid"]])[0][0])
    assert src["T1c"].kind == StoredFile.VOLUME and src["T1c"].path == last["native"]["T1c"]
    assert np.allclose(src["T1c"].matrix, matrix) and src["T1c"].to_grid.path == baseline["native"]["T1c"]
    base = load_volume(settings, ImageSource(StoredFile.VOLUME, baseline["native"]["T1c"]))
    moved = load_volume(settings, src["T1c"])
    unmoved = on_grid(load_volume(settings, ImageSource(StoredFile.VOLUME, last["native"]["T1c"])), base,
                      interpolation="linear")
    assert same_grid(moved, base)
    head = base.array > np.percentile(base.array, 60)
    aligned = np.corrcoef(moved.array[head], base.array[head])[0, 1]
    left = np.corrcoef(unmoved.array[head], base.array[head])[0, 1]
    assert aligned > left + 0.1, (aligned, left)
    assert aligned > 0.6, aligned


def test_a_stored_path_out_of_the_state_dir_is_refused(built_state: Built) -> None:
    settings = built_state.settings
    (settings.state_dir / "registered").mkdir(exist_ok=True)
    with pytest.raises(StoreError, match="outside .*registered; it is not read"):
        stored_file(settings, ImageSource(StoredFile.REGISTERED, "../users.toml"))  # exists, still refused
    with open_store(settings.snapshot_path) as snapshot:
        snapshot.con.execute("""UPDATE registrations SET resampled = '{"T1c": "../users.toml"}'
                                WHERE study_uid = '1.2'""")
    at = _image_review("P-ALERT")
    assert not at.exception, at.exception
    assert [e.value for e in at.error if "cannot be read" in e.value], "an error box, not an image"
    assert "is outside" in at.error[0].value and not at.get("image")
