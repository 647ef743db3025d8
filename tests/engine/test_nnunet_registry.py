"""The model registry: configuration, the per-study choice, BraTS space and the pipeline's
quarantine of a model that cannot run (real nnU-Net folder, real DuckDB store)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nnunetv2", reason="nnunetv2 is not installed (requirements.lock)")

from engine.dicom.nifti import write_nifti  # noqa: E402
from engine.errors import ConfigError, SegmentationError  # noqa: E402
from engine.ingest import IngestedStudy  # noqa: E402
from engine.pipeline import compute_segmentation  # noqa: E402
from engine.usecases.segment_study import commit_segmentation, study_files  # noqa: E402
from engine.segmentation import load_segmenter  # noqa: E402
from engine.segmentation.input_kind import InputRouter  # noqa: E402
from engine.segmentation.registry import ModelChooser, build_segmenter, find_entry, registry_entries  # noqa: E402
from engine.settings import ModelEntry, SegmentationSettings, load_settings  # noqa: E402
from engine.state_paths import StatePaths  # noqa: E402
from engine.store import open_store  # noqa: E402
from engine.store import ingest as ingest_sql  # noqa: E402
from engine.types import Sequence  # noqa: E402
from tests.engine.test_nnunet import FIXTURE, synthetic_volumes  # noqa: E402

TINY = ModelEntry(name="tiny", kind="nnunet", path=str(FIXTURE), labels="brats2024-post", device="cpu",
                  mirroring=False)
WRONG_LABELS = ModelEntry(name="wrong-labels", kind="nnunet", path=str(FIXTURE), labels="brats2021", device="cpu")
MISSING_FOLD = ModelEntry(name="missing-fold", kind="nnunet", path=str(FIXTURE), labels="brats2024-post",
                          folds=("0", "4"), device="cpu")


def _settings(*models: ModelEntry, **kwargs: object) -> SegmentationSettings:
    return SegmentationSettings(device="cpu", models=models, align_sequences=False, **kwargs)  # type: ignore[arg-type]


def test_model_entries_load_from_the_settings_file(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text(f"""
[[segmentation.models]]
name = "tiny"
kind = "nnunet"
path = "{FIXTURE}"
label_map = {{ 1 = "NETC", 2 = "SNFH", 3 = "ET", 4 = "RC" }}
folds = [0, 1]
mirroring = false

[[segmentation.models]]
name = "brats-winner"
kind = "nnunet"
path = "models/brats2024"
labels = "brats2024-post"
space = "brats-sri24"
sequences = ["T1", "T1c", "T2", "FLAIR"]
""")
    models = load_settings(toml, environ={}).segmentation.models
    assert [m.name for m in models] == ["tiny", "brats-winner"]
    assert models[0].label_map == {1: "NETC", 2: "SNFH", 3: "ET", 4: "RC"} and models[0].folds == ("0", "1")
    assert models[1].space == "brats-sri24" and models[1].sequences == ("T1", "T1c", "T2", "FLAIR")
    toml.write_text('[[segmentation.models]]\nname = "x"\nkind = "onnx"\npath = "m"\n')
    with pytest.raises(ConfigError, match="is invalid") as info:
        load_settings(toml, environ={})
    assert "kind' of model 'x' must be one of builtin, monai-bundle, nnunet, anomaly" in str(info.value.detail)


def test_the_old_keys_are_the_implicit_entries_and_their_names_are_reserved() -> None:
    entries = registry_entries(_settings(TINY))
    assert [(e.name, e.kind) for e in entries] == [("tiny", "nnunet"), ("default", "builtin"), ("skull-stripped", "anomaly")]
    with pytest.raises(ConfigError, match="reserved name\\(s\\) default"):
        registry_entries(_settings(ModelEntry(name="default", kind="nnunet", path=str(FIXTURE))))
    with pytest.raises(ConfigError, match="No segmentation model is named 'nope'"):
        find_entry(_settings(TINY), "nope")


def test_load_segmenter_keeps_the_skull_stripped_route_around_the_chooser() -> None:
    segmenter = load_segmenter(_settings(TINY))
    assert isinstance(segmenter, InputRouter) and isinstance(segmenter.whole_head, ModelChooser)
    assert [e.name for e in segmenter.whole_head.entries] == ["tiny", "default"]
    alone = load_segmenter(_settings(TINY, model="tiny"))
    assert isinstance(alone, ModelChooser) and [e.name for e in alone.entries] == ["tiny"]


#: a fallback that needs only a T1c or T1 and runs in seconds (no network): the anomaly model.
FALLBACK = ModelEntry(name="fallback", kind="anomaly", path="models/gliowatch-anomaly")


def test_each_study_runs_the_first_model_its_sequences_allow() -> None:
    chooser = ModelChooser(entries=(TINY, FALLBACK), settings=_settings(TINY, FALLBACK))
    full = chooser.segment(synthetic_volumes(), exam="full")
    assert full.model_name == "nnunet:tiny" and not any(f.startswith("reduced_input") for f in full.flags)
    assert full.labels.metadata["registry_model"] == "tiny"
    no_flair = synthetic_volumes()
    del no_flair[Sequence.FLAIR]
    reduced = chooser.segment(no_flair, exam="no FLAIR")
    assert reduced.flags[0] == "reduced_input:fallback"
    assert reduced.model_name != "nnunet:tiny" and reduced.labels.metadata["registry_model"] == "fallback"
    assert reduced.labels.metadata["passed_over"] == {"tiny": "needs FLAIR"}


def test_a_study_no_model_can_run_on_is_refused_with_the_reasons() -> None:
    chooser = ModelChooser(entries=(TINY,), settings=_settings(TINY))
    volumes = synthetic_volumes()
    del volumes[Sequence.T2]
    with pytest.raises(SegmentationError, match="sequences present \\(FLAIR, T1, T1c\\): tiny needs T2"):
        chooser.segment(volumes, exam="no T2")


def test_a_brats_space_model_without_an_atlas_is_refused_when_loaded() -> None:
    entry = ModelEntry(name="winner", kind="nnunet", path=str(FIXTURE), labels="brats2024-post", space="brats-sri24",
                       device="cpu")
    with pytest.raises(ConfigError, match="Model winner declares space 'brats-sri24', but no SRI24 atlas is configured"):
        build_segmenter(entry, _settings(entry))


def test_a_brats_space_model_returns_labels_on_the_native_t1c_grid() -> None:
    """The tiny nnU-Net run in a (synthetic) atlas space: the labels come back on the study's own
    T1c grid. Atlas and study are test_space's synthetic skull-stripped brain (the study in a known
    pose, every sequence the same image), so no brain extraction runs (HD-BET is tested apart)."""
    from engine.segmentation.brats_space import BratsSpaceSegmenter
    from tests.engine.test_space import _atlas, _native, _pose

    entry = ModelEntry(name="winner", kind="nnunet", path=str(FIXTURE), labels="brats2024-post", device="cpu",
                       mirroring=False)
    native = _native(_pose((8.0, -5.0, 12.0), (6.0, -4.0, 3.0)), spacing=(2.0, 2.0, 2.0), shape=(95, 100, 75))
    volumes = {seq: native for seq in (Sequence.T1, Sequence.T1C, Sequence.T2, Sequence.FLAIR)}
    segmenter = BratsSpaceSegmenter(build_segmenter(entry, _settings(entry)), model="winner", atlas=_atlas())
    result = segmenter.segment(volumes, exam="synthetic")
    t1c = volumes[Sequence.T1C]
    assert result.labels.array.shape == t1c.array.shape
    np.testing.assert_allclose(result.labels.affine, t1c.affine, atol=1e-4)
    assert result.labels.metadata["space"] == "brats-sri24"


def _store_with_one_study(tmp_path: Path):  # noqa: ANN202
    paths = StatePaths(tmp_path / "volumes", tmp_path / "labels", tmp_path / "registered")
    paths.volumes_dir.mkdir()
    store = open_store(tmp_path / "g.duckdb")
    study = IngestedStudy(study_uid="1.1", archive_study_id="o-1", patient_key="P-0001", study_date=date(2025, 1, 1),
                          series=())
    with store.transaction() as con:
        ingest_sql.record_study(con, study, change_seq=None, seen_at=datetime(2025, 1, 1))
        for seq, volume in synthetic_volumes().items():
            write_nifti(volume, paths.volumes_dir / f"{seq}.nii.gz")
            con.execute("INSERT INTO volumes VALUES (?, '1.1', ?, ?, '[]', '[]', '[]')",
                        [f"s-{seq}", str(seq), f"{seq}.nii.gz"])
    return store, paths


@pytest.mark.parametrize(("entry", "reason"), [
    (WRONG_LABELS, "Segmentation model wrong-labels cannot be used: nnU-Net model wrong-labels: output label(s) 3 (ET) "
                   "are not covered by the label mapping 'brats2021'"),
    (MISSING_FOLD, "Segmentation model missing-fold cannot be used: nnU-Net model missing-fold: fold(s) 4 have no "
                   "fold_N/checkpoint_final.pth (folds present: 0, 1)"),
])
def test_a_model_that_cannot_run_quarantines_the_study_with_the_reason(tmp_path: Path, entry: ModelEntry,
                                                                         reason: str) -> None:
    store, paths = _store_with_one_study(tmp_path)
    try:
        files = study_files(store, "1.1")
        out = compute_segmentation(files, segmenter=load_segmenter(_settings(entry, model=entry.name)), paths=paths)
        assert out.error and not out.volumes_ml
        assert not commit_segmentation(store, files, out).ok
        rows = store.query_dicts("SELECT stage, reason FROM quarantine WHERE study_uid = '1.1'")
        assert rows == [{"stage": "segmentation", "reason": f"{reason} [{files.exam}]"}]
        assert store.query("SELECT count(*) FROM segmentations")[0][0] == 0
        assert store.query("SELECT status FROM studies WHERE study_uid = '1.1'")[0][0] == "QUARANTINED"
    finally:
        store.close()


def test_a_good_model_stores_its_identity_and_labels(tmp_path: Path) -> None:
    store, paths = _store_with_one_study(tmp_path)
    try:
        files = study_files(store, "1.1")
        out = compute_segmentation(files, segmenter=load_segmenter(_settings(TINY, model="tiny")), paths=paths)
        assert not out.error, out.error_detail
        assert commit_segmentation(store, files, out).ok
        row = store.query_dicts("SELECT model_name, model_version, weights_sha256, config_sha256 FROM segmentations")[0]
        assert row["model_name"] == "nnunet:tiny" and row["weights_sha256"] == out.weights_sha256
        assert row["config_sha256"] == out.config_sha256 and row["model_version"].endswith("folds-0+1")
    finally:
        store.close()
