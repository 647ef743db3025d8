"""Training: case cache, augmentation, resumable and seedable loop, exported weights, shipped configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_segmentation_phantom import phantom_study, tiny_config

from engine.segmentation.anomaly import is_anomaly_model
from engine.modelling.augment import AugmentationSettings, augment_case
from engine.modelling.dataset import cache_cases, cached_seeds, class_fractions, load_case
from engine.segmentation.model_config import load_model_config, model_config_from_dict
from engine.segmentation.network import build_network, load_network, load_state_dict
from engine.modelling.training import (
    TrainingRecipe, consistency_loss, consistency_window, train, warm_start,
)
from engine.settings import PROJECT_ROOT

TINY = tiny_config("tiny-train", spacing_mm=2.0)
SMALL_AUG = AugmentationSettings(patch_vox=(16, 16, 16), elastic_p=0.0)


def _sample(seed: int) -> SimpleNamespace:
    volumes, labels = phantom_study(shape=(24, 28, 24), seed=seed)
    images = np.stack([v.array for v in volumes.values()])
    return SimpleNamespace(images=images, labels=labels, affine=next(iter(volumes.values())).affine)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cases")
    written = cache_cases([1, 2, 3], cache_dir=folder, config=model_config_from_dict(TINY), sample=_sample)
    assert written == 3
    return folder


def test_cache_holds_cropped_cases_with_labels(cache: Path) -> None:
    assert cached_seeds(cache) == [1, 2, 3]
    case = load_case(cache, 2)
    assert case.image.shape[0] == 4 and case.image.shape[1:] == case.labels.shape == case.head.shape
    assert all(s % 8 == 0 for s in case.labels.shape)
    assert set(np.unique(case.labels)) == {0, 1, 2, 3}
    assert case.soft.shape == (5, *case.labels.shape)
    np.testing.assert_allclose(case.soft.sum(0), 1.0, atol=1e-5)
    assert cache_cases([1, 2, 3], cache_dir=cache, config=model_config_from_dict(TINY), sample=_sample) == 0


def test_augmentation_is_reproducible_from_its_generator(cache: Path) -> None:
    case = load_case(cache, 1)
    settings = dataclasses.replace(SMALL_AUG, affine_p=1.0, modality_dropout_p=1.0)
    a, la = augment_case(case.image, case.labels, case.head, case.soft, rng=np.random.default_rng(7), settings=settings)
    b, lb = augment_case(case.image, case.labels, case.head, case.soft, rng=np.random.default_rng(7), settings=settings)
    assert a.shape == (4, 16, 16, 16) and la.shape == (5, 16, 16, 16)
    assert torch.equal(a, b) and torch.equal(la, lb)
    torch.testing.assert_close(la.sum(0), torch.ones(16, 16, 16))  # soft targets stay a distribution
    assert sum(int(not a[c].any()) for c in range(4)) == 1  # one modality dropped
    c, _ = augment_case(case.image, case.labels, case.head, case.soft, rng=np.random.default_rng(8), settings=settings)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(("changes", "message"), [
    ({"modality_dropout_p": 1.5}, r"chances must lie in \[0, 1\]: modality_dropout_p=1.5"),
    ({"noise_p": -0.1, "elastic_p": 2.0}, r"elastic_p=2.0, noise_p=-0.1"),
    ({"patch_vox": (64, 0, 64)}, "patch_vox must be three positive sizes"),
    ({"patch_vox": (64, 64)}, "patch_vox must be three positive sizes"),
    ({"gamma_range": (2.0, 0.5)}, "gamma_range must be"),
    ({"gamma_range": (0.0, 1.0)}, "gamma_range must be"),
    ({"max_noise_fraction": -0.01}, "max_noise_fraction must not be negative"),
    ({"zoom_range": (0.0, 1.0)}, "zoom_range must be"),
    ({"zoom_range": (1.4, 1.2)}, "zoom_range must be"),
])
def test_augmentation_settings_refuse_what_they_cannot_mean(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AugmentationSettings(**changes)
    assert AugmentationSettings(modality_dropout_p=0.0, tumour_centred_p=1.0, gamma_range=(1.0, 1.0)).modality_dropout_p == 0.0


NO_INTENSITY = AugmentationSettings(gamma_range=(1.0, 1.0), bias_p=0.0, histogram_shift_p=0.0, low_resolution_p=0.0,
                                    smooth_p=0.0, noise_p=0.0)


def test_patches_are_normalised_with_the_whole_heads_statistics(cache: Path) -> None:
    """Without intensity changes a patch comes out exactly as the same voxels of the whole case
    normalised for inference (normalise_channels over the whole head), not z-scored on its own."""
    from engine.modelling.augment import _intensity
    from engine.modelling.dataset import head_sample
    from engine.segmentation.preprocess import normalise_channels

    case = load_case(cache, 2)
    assert case.head_voxels is not None and case.head_voxels.shape[0] == 4
    image = torch.from_numpy(np.asarray(case.image, dtype=np.float32))
    head = torch.from_numpy(np.array(case.head))
    whole = normalise_channels(image, head)
    box = (slice(0, 12), slice(4, 16), slice(2, 14))
    patch, sample = _intensity(image[(slice(None), *box)], s=NO_INTENSITY, rng=np.random.default_rng(0),
                               sample=torch.from_numpy(head_sample(case.image, case.head, stride=1)))
    ours = normalise_channels(patch, head[box], sample=sample)
    torch.testing.assert_close(ours, whole[(slice(None), *box)], atol=1e-4, rtol=1e-4)
    own = normalise_channels(image[(slice(None), *box)], head[box])
    assert float((own - whole[(slice(None), *box)]).abs().max()) > 0.1  # the old way differs


def test_intensity_changes_map_patch_and_head_sample_alike() -> None:
    """Gamma and histogram shift are one mapping for patch and sample: equal inputs, equal outputs."""
    from engine.modelling.augment import _intensity

    rng = np.random.default_rng(3)
    patch = torch.from_numpy(rng.uniform(0.0, 2.0, size=(4, 6, 6, 6)).astype(np.float32))
    sample = torch.cat([patch.flatten(1), torch.from_numpy(rng.uniform(0.0, 2.0, size=(4, 50)).astype(np.float32))], 1)
    settings = dataclasses.replace(NO_INTENSITY, gamma_range=(0.5, 2.0), histogram_shift_p=1.0)
    out, seen = _intensity(patch, s=settings, rng=np.random.default_rng(5), sample=sample)
    torch.testing.assert_close(seen[:, : 6**3], out.flatten(1))
    assert not torch.allclose(out, patch / patch.flatten(1).max(1).values[:, None, None, None], atol=1e-3)
    # then the patch-only changes (bias, blur) still see a 3-D image
    everything = dataclasses.replace(settings, bias_p=1.0, smooth_p=1.0, noise_p=1.0)
    out, seen = _intensity(patch, s=everything, rng=np.random.default_rng(6), sample=sample)
    assert out.shape == patch.shape and seen.shape == sample.shape and bool((seen >= 0).all())
    out, _ = _intensity(patch, s=dataclasses.replace(everything, smooth_p=0.0, low_resolution_p=1.0),
                        rng=np.random.default_rng(6), sample=sample)
    assert out.shape == patch.shape


def test_soft_targets_keep_each_class_volume_at_a_coarser_grid() -> None:
    """Fractions rendered at 1 mm, taught at 1.5 mm: per-class volume is conserved (to ~2 %),
    while the nearest-neighbour labels of a thin shell are off by much more."""
    _, labels = phantom_study(shape=(64, 64, 64), spacing_mm=1.0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    soft = class_fractions(labels, affine, grid_affine=np.diag([1.5, 1.5, 1.5, 1.0]), shape=(43, 43, 43), num_classes=5)
    for k in (1, 2, 3):
        true_ml = float((labels == k).sum()) / 1000.0
        soft_ml = float(soft[k].sum()) * 1.5**3 / 1000.0
        assert soft_ml == pytest.approx(true_ml, rel=0.03), k
    torch.testing.assert_close(soft.sum(0), torch.ones(43, 43, 43))


def test_warm_start_copies_matching_tensors_only() -> None:
    config = model_config_from_dict(TINY)
    source = build_network(config)
    batch_config = dataclasses.replace(config, network={**config.network, "norm": "batch"})
    target = build_network(batch_config)
    copied = warm_start(target, source.state_dict())
    assert copied and set(copied) <= set(source.state_dict())
    assert len(target.state_dict()) > len(copied)  # batch-norm statistics are new
    for key in copied:
        torch.testing.assert_close(target.state_dict()[key], source.state_dict()[key])


def _recipe(steps: int, *, consistency_weight: float = 0.0, consistency_teacher: str = "self",
            window_supervision_weight: float = 0.0, window_statistics: str = "running") -> TrainingRecipe:
    return TrainingRecipe(steps=steps, batch_size=2, warmup_steps=1, seed=5, log_every=1,
                          checkpoint_every_s=3600.0, augmentation=SMALL_AUG, consistency_weight=consistency_weight,
                          consistency_teacher=consistency_teacher, window_supervision_weight=window_supervision_weight,
                          window_statistics=window_statistics)


@pytest.mark.parametrize(("consistency_weight", "teacher", "window_supervision", "statistics"),
                         [(0.0, "self", 0.0, "running"), (2.0, "self", 0.0, "running"),
                          (2.0, "initial", 0.0, "running"), (2.0, "self", 1.0, "running"),
                          (2.0, "self", 1.0, "batch"), (2.0, "initial", 0.0, "batch")],
                         ids=["plain", "window-consistency", "frozen-teacher", "window-supervision",
                              "batch-statistics", "batch-statistics-frozen-teacher"])
def test_resumed_training_equals_an_uninterrupted_run(cache: Path, tmp_path: Path, consistency_weight: float,
                                                      teacher: str, window_supervision: float, statistics: str) -> None:
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    logs: list[str] = []
    recipe = lambda steps: _recipe(steps, consistency_weight=consistency_weight, consistency_teacher=teacher,  # noqa: E731
                                   window_supervision_weight=window_supervision, window_statistics=statistics)
    train(config=config, recipe=recipe(4), cache_dir=cache, case_seeds=[1, 2, 3], out_dir=tmp_path / "a", log=logs.append)
    train(config=config, recipe=recipe(2), cache_dir=cache, case_seeds=[1, 2, 3], out_dir=tmp_path / "b", log=logs.append)
    train(config=config, recipe=recipe(4), cache_dir=cache, case_seeds=[1, 2, 3], out_dir=tmp_path / "b",
          resume=True, log=logs.append)
    assert any("resumed from" in line and "at step 2" in line for line in logs)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][key], msg=key)


def test_consistency_windows_sit_on_the_lattice_inside_the_patch() -> None:
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(200):
        window = consistency_window((64, 48, 32), lattice=16, rng=rng)
        for sl, side in zip(window, (64, 48, 32), strict=True):
            size = sl.stop - sl.start
            assert sl.start % 16 == 0 and size % 16 == 0
            assert 0 <= sl.start and sl.stop <= side and side / 2 <= size < side
        seen.add(tuple((sl.start, sl.stop) for sl in window))
    assert len(seen) > 10  # the windows vary
    with pytest.raises(ValueError, match="shorter than two lattice steps"):
        consistency_window((64, 16, 64), lattice=16, rng=rng)


def test_consistency_loss_measures_context_dependence_and_training_lowers_it() -> None:
    """Zero for a network that sees one voxel at a time; positive for the UNet, whose voxels see
    their neighbours; lowered by descending its gradient; batch norm's running statistics are
    used (not changed) and the network is left in training mode."""
    torch.manual_seed(0)
    images = torch.randn(2, 4, 16, 16, 16)
    window = (slice(0, 8), slice(8, 16), slice(0, 8))
    pointwise = torch.nn.Sequential(torch.nn.Conv3d(4, 5, 1), torch.nn.BatchNorm3d(5))
    assert float(consistency_loss(pointwise, images, window=window).detach()) == pytest.approx(0.0, abs=1e-10)
    other = torch.nn.Sequential(torch.nn.Conv3d(4, 5, 1), torch.nn.BatchNorm3d(5))
    assert float(consistency_loss(pointwise, images, window=window, teacher=other).detach()) > 1e-4
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    net = build_network(config)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    first = consistency_loss(net, images, window=window)
    assert float(first.detach()) > 1e-4
    assert net.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(30):
        loss = consistency_loss(net, images, window=window)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(consistency_loss(net, images, window=window).detach()) < 0.5 * float(first.detach())


def test_training_with_window_consistency_keeps_batch_norm_statistics(cache: Path, tmp_path: Path) -> None:
    """The consistency term freezes batch norm: running statistics stay as they started (a run
    with them learning diverged), the convolutions still learn."""
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    logs: list[str] = []
    train(config=config, recipe=_recipe(3, consistency_weight=2.0), cache_dir=cache, case_seeds=[1, 2, 3],
          out_dir=tmp_path, log=logs.append)
    assert any("batch-norm layers frozen" in line for line in logs)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    torch.manual_seed(5)  # the initial weights, as train() draws them
    start = build_network(config).state_dict()
    stats = [k for k in state if k.endswith(("running_mean", "running_var"))]
    assert stats
    for key in stats:
        torch.testing.assert_close(state[key], start[key], msg=key)
    assert any(not torch.equal(state[k], start[k]) for k in state if k.endswith("conv.weight"))


def test_normalising_with_batch_statistics_leaves_the_running_ones() -> None:
    """'batch': each pass normalised with its own statistics (not the running ones), which stay as
    they are; 'running': as in evaluation mode. Modes and momenta come back either way."""
    from engine.modelling.training import normalising_with

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(4, 3, 1), torch.nn.BatchNorm3d(3, momentum=0.3), torch.nn.Dropout(0.5))
    net.eval()
    images = torch.randn(2, 4, 6, 6, 6) * 3 + 5
    before = {k: v.clone() for k, v in net[1].state_dict().items() if k.startswith("running")}
    with normalising_with(net, "batch"):
        out = net(images)
        assert not net[2].training  # only batch norm switched
    torch.testing.assert_close(out.mean(dim=(0, 2, 3, 4)), torch.zeros(3), atol=1e-5, rtol=0)  # its own statistics
    for key, value in before.items():
        assert torch.equal(net[1].state_dict()[key], value), key
    assert not net.training and net[1].momentum == 0.3
    net.train()
    with normalising_with(net, "running"):
        assert not any(m.training for m in net.modules())
        torch.testing.assert_close(net(images), net[1](net[0](images)))
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="statistics must be one of"), normalising_with(net, "other"):
        pass


def test_window_terms_with_batch_statistics_let_batch_norm_learn(cache: Path, tmp_path: Path) -> None:
    """window_statistics='batch': batch norm is not frozen (its running statistics follow the
    supervised pass), the run differs from the one with running statistics, and an unknown
    choice is refused."""
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    logs: list[str] = []
    for statistics in ("batch", "running"):
        train(config=config, recipe=_recipe(2, consistency_weight=2.0, window_supervision_weight=1.0,
                                            window_statistics=statistics),
              cache_dir=cache, case_seeds=[1, 2, 3], out_dir=tmp_path / statistics, log=logs.append)
    assert sum("batch-norm layers frozen" in line for line in logs) == 1  # the running-statistics run only
    torch.manual_seed(5)
    start = build_network(config).state_dict()
    batch, running = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=False)["model"] for n in ("batch", "running"))
    stats = [k for k in start if k.endswith("running_mean")]
    assert any(not torch.equal(batch[k], start[k]) for k in stats)
    assert all(torch.equal(running[k], start[k]) for k in stats)
    with pytest.raises(ValueError, match="freeze_batch_norm cannot go with"):
        train(config=config, recipe=dataclasses.replace(_recipe(1, consistency_weight=1.0, window_statistics="batch"),
                                                        freeze_batch_norm=True),
              cache_dir=cache, case_seeds=[1], out_dir=tmp_path / "both", log=lambda _: None)
    with pytest.raises(ValueError, match="window_statistics must be one of"):
        train(config=config, recipe=_recipe(1, consistency_weight=1.0, window_statistics="other"), cache_dir=cache,
              case_seeds=[1], out_dir=tmp_path / "bad", log=lambda _: None)


def test_freeze_batch_norm_alone_keeps_the_statistics(cache: Path, tmp_path: Path) -> None:
    """TrainingRecipe.freeze_batch_norm without any window term: running statistics stay as they
    started; without it they move."""
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    for name, frozen in (("frozen", True), ("learning", False)):
        train(config=config, recipe=dataclasses.replace(_recipe(2), freeze_batch_norm=frozen), cache_dir=cache,
              case_seeds=[1, 2, 3], out_dir=tmp_path / name, log=lambda _: None)
    torch.manual_seed(5)  # the initial weights, as train() draws them
    start = build_network(config).state_dict()
    stats = [k for k in start if k.endswith("running_mean")]
    frozen, learning = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=False)["model"]
                        for n in ("frozen", "learning"))
    assert all(torch.equal(frozen[k], start[k]) for k in stats)
    assert any(not torch.equal(learning[k], start[k]) for k in stats)


def test_window_supervision_trains_the_window_seen_alone(cache: Path, tmp_path: Path) -> None:
    """The supervised loss on the sub-window changes what the run learns (against the same run
    without it), freezes batch norm as the consistency term does, and refuses a negative weight."""
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    logs: list[str] = []
    for name, weight in (("with", 1.0), ("without", 0.0)):
        train(config=config, recipe=_recipe(2, consistency_weight=2.0, window_supervision_weight=weight),
              cache_dir=cache, case_seeds=[1, 2, 3], out_dir=tmp_path / name, log=logs.append)
    assert any("window supervision 1, with running statistics" in line for line in logs)
    assert any("batch-norm layers frozen" in line for line in logs)
    with_, without = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=False)["model"] for n in ("with", "without"))
    convs = [k for k in with_ if k.endswith("conv.weight")]
    assert any(not torch.equal(with_[k], without[k]) for k in convs)
    for key in (k for k in with_ if k.endswith(("running_mean", "running_var"))):
        torch.testing.assert_close(with_[key], without[key], msg=key)  # frozen in both
    logs.clear()
    train(config=config, recipe=_recipe(1, window_supervision_weight=1.0), cache_dir=cache, case_seeds=[1],
          out_dir=tmp_path / "alone", log=logs.append)
    assert any("window consistency 0, window supervision 1," in line for line in logs)
    with pytest.raises(ValueError, match="must not be negative"):
        train(config=config, recipe=_recipe(1, window_supervision_weight=-1.0), cache_dir=cache, case_seeds=[1],
              out_dir=tmp_path / "bad", log=lambda _: None)


def test_frozen_teacher_is_the_starting_network_and_survives_a_resume(cache: Path, tmp_path: Path) -> None:
    """With consistency_teacher='initial' the checkpoint keeps the network the run started from
    (warm start) unchanged while the trained one moves; a checkpoint without one is refused."""
    config = model_config_from_dict({**TINY, "network": {**TINY["network"], "norm": "batch"}})
    train(config=config, recipe=_recipe(1), cache_dir=cache, case_seeds=[1], out_dir=tmp_path / "start",
          log=lambda _: None)
    logs: list[str] = []
    run = lambda steps, **kw: train(  # noqa: E731
        config=config, recipe=_recipe(steps, consistency_weight=2.0, consistency_teacher="initial"), cache_dir=cache,
        case_seeds=[1, 2, 3], out_dir=tmp_path / "run", init_weights=tmp_path / "start" / "model.pt",
        log=logs.append, **kw)
    run(2)
    run(3, resume=True)
    assert any("frozen copy of the starting network" in line for line in logs)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    start = load_state_dict(tmp_path / "start" / "model.pt")
    for key, value in state["teacher"].items():
        torch.testing.assert_close(value, start[key].to(value.dtype), msg=key)
    assert any(not torch.equal(state["model"][k], state["teacher"][k]) for k in state["model"] if k.endswith("conv.weight"))
    train(config=config, recipe=_recipe(1, consistency_weight=2.0), cache_dir=cache, case_seeds=[1],
          out_dir=tmp_path / "self", log=lambda _: None)
    with pytest.raises(ValueError, match="holds no frozen teacher"):
        train(config=config, recipe=_recipe(2, consistency_weight=2.0, consistency_teacher="initial"), cache_dir=cache,
              case_seeds=[1], out_dir=tmp_path / "self", resume=True, log=lambda _: None)
    with pytest.raises(ValueError, match="must be 'self' or 'initial'"):
        train(config=config, recipe=_recipe(1, consistency_weight=2.0, consistency_teacher="other"), cache_dir=cache,
              case_seeds=[1], out_dir=tmp_path / "bad", log=lambda _: None)


def test_exported_weights_load_as_a_model(cache: Path, tmp_path: Path) -> None:
    train(config=model_config_from_dict(TINY), recipe=_recipe(1), cache_dir=cache, case_seeds=[1],
          out_dir=tmp_path, log=lambda _: None)
    config = load_model_config(tmp_path)
    net, sha = load_network(config)
    assert config.training["steps"] == 1
    assert len(sha) == 64
    assert next(net.parameters()).dtype == torch.float32


SHIPPED = sorted(p.parent for p in (PROJECT_ROOT / "models").glob("*/config.json") if not is_anomaly_model(p.parent))


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_model_config_loads_with_its_weights(model_dir: Path) -> None:
    config = load_model_config(model_dir)
    net, sha = load_network(config)
    assert config.weights_path.stat().st_size <= 20 * 1024 * 1024
    assert (model_dir / "MODEL_CARD.md").exists()
    assert sum(p.numel() for p in net.parameters()) > 0 and len(sha) == 64


def test_acquired_cases_cache_with_the_inference_geometry_and_keep_class_volumes(tmp_path: Path) -> None:
    """Series on their own scanner grids (head pose, thick 2D slices) -> working grid; the soft
    targets keep every class's volume of the generator's truth."""
    from engine.modelling.synth import sample_acquired_case

    config = model_config_from_dict({**TINY, "spacing_mm": 3.0})
    sample = lambda seed: sample_acquired_case(seed, spacing_mm=2.0, scenario="progression", visit_index=5)  # noqa: E731
    assert cache_cases([21], cache_dir=tmp_path, config=config, sample=sample) == 1
    case, truth = load_case(tmp_path, 21), sample(21)
    assert all(s % 8 == 0 for s in case.labels.shape)
    voxel_ml = 27.0 / 1000.0
    for index, name in ((2, "SNFH"), (3, "ET"), (4, "RC")):
        assert truth.volumes_ml[name] > 1.0
        assert float(case.soft[index].sum()) * voxel_ml == pytest.approx(truth.volumes_ml[name], rel=0.05)


def test_tumour_centred_patches_are_balanced_over_the_labels_present() -> None:
    """A label of well under 1 % of the tumour voxels still centres about half the patches (weight 2 of 4)."""
    from engine.modelling.augment import _patch_slices

    labels = np.zeros((60, 60, 60), np.uint8)
    labels[5:55, 5:55, 5:30] = 2  # big oedema
    labels[30:35, 30:32, 40:43] = 3  # small enhancing focus (30 voxels)
    labels[10:20, 10:20, 40:50] = 4
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        sl = _patch_slices(labels, (8, 8, 8), centred=True, rng=rng)
        hits += bool((labels[sl] == 3).any())
    assert 0.35 < hits / 400 < 0.65  # ET drawn with weight 2 of (SNFH 1 + ET 2 + RC 1)


def _cube_case(side: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A head-filling case with a 4^3 ET cube at its centre: image, labels, head, one-hot fractions."""
    labels = np.zeros((side, side, side), np.uint8)
    labels[18:22, 18:22, 18:22] = 3
    image = np.stack([labels.astype(np.float32) * 100.0 + 10.0 + c for c in range(4)])
    soft = np.stack([(labels == k).astype(np.float32) for k in range(5)])
    return image, labels, np.ones(labels.shape, bool), soft


@pytest.mark.parametrize(("zoom", "factor"), [(1.0, 1.0), (2.0, 8.0), (0.5, 1 / 8)])
def test_zoom_resizes_a_crop_to_the_patch_and_scales_class_volumes_with_it(zoom: float, factor: float) -> None:
    """Zoom z: the patch is a crop of patch/z voxels resized to the patch, so the whole cube's
    class volume in voxels grows by z^3 (trilinear up, area down, both conserve it to a few %)."""
    image, labels, head, soft = _cube_case()
    settings = dataclasses.replace(NO_INTENSITY, patch_vox=(32, 32, 32), tumour_centred_p=1.0, affine_p=0.0,
                                   elastic_p=0.0, modality_dropout_p=0.0, zoom_range=(zoom, zoom))
    for seed in range(3):
        x, y = augment_case(image, labels, head, soft, rng=np.random.default_rng(seed), settings=settings)
        assert tuple(x.shape) == (4, 32, 32, 32) and tuple(y.shape) == (5, 32, 32, 32)
        torch.testing.assert_close(y.sum(0), torch.ones(32, 32, 32))
        assert float(y[3].sum()) == pytest.approx(64 * factor, rel=0.05)


def test_a_zoom_range_draws_its_zoom_and_no_zoom_draws_nothing() -> None:
    from engine.modelling.augment import draw_zoom

    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert draw_zoom(AugmentationSettings(), rng) == 1.0
    assert draw_zoom(AugmentationSettings(zoom_range=(1.25, 1.25)), rng) == 1.25
    assert rng.bit_generator.state == state  # earlier recipes keep their random stream
    zooms = [draw_zoom(AugmentationSettings(zoom_range=(1.15, 1.35)), rng) for _ in range(200)]
    assert rng.bit_generator.state != state
    assert 1.15 <= min(zooms) < 1.2 and 1.3 < max(zooms) <= 1.35


def test_augment_doctests() -> None:
    import doctest

    from engine.modelling import augment

    failures, tried = doctest.testmod(augment, raise_on_error=False, verbose=False)[:2]
    assert tried >= 1 and failures == 0


def test_training_doctests() -> None:
    import doctest

    from engine.modelling import training

    failures, tried = doctest.testmod(training, raise_on_error=False, verbose=False)[:2]
    assert tried >= 2 and failures == 0


def test_train_command_checks_the_tumour_centred_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import build_parser, main

    assert main(["train", "--out", str(tmp_path / "run"), "--tumour-centred-p", "1.5"]) == 2
    assert "--tumour-centred-p must lie in [0, 1]" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
    args = build_parser().parse_args(["train", "--out", str(tmp_path), "--tumour-centred-p", "0.4"])
    assert args.tumour_centred_p == 0.4
    assert build_parser().parse_args(["train", "--out", str(tmp_path)]).tumour_centred_p is None


def test_train_command_checks_the_modality_dropout_chance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import build_parser, main

    assert main(["train", "--out", str(tmp_path / "run"), "--modality-dropout-p", "-0.1"]) == 2
    assert "--modality-dropout-p must lie in [0, 1]" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
    assert build_parser().parse_args(["train", "--out", str(tmp_path), "--modality-dropout-p", "0.6"]).modality_dropout_p == 0.6
    assert build_parser().parse_args(["train", "--out", str(tmp_path)]).modality_dropout_p is None


def test_train_command_checks_the_zoom_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import build_parser, main

    assert main(["train", "--out", str(tmp_path / "run"), "--zoom-range", "1.3", "1.1"]) == 2
    assert "--zoom-range must be LOW HIGH with 0 < LOW <= HIGH" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
    assert build_parser().parse_args(["train", "--out", str(tmp_path), "--zoom-range", "1.15", "1.35"]).zoom_range == [1.15, 1.35]
    assert build_parser().parse_args(["train", "--out", str(tmp_path)]).zoom_range is None


def test_train_command_keeps_cases_inside_the_training_seed_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    assert main(["train", "--out", str(tmp_path / "run"), "--cases", "100001"]) == 2
    assert "--cases must not exceed 100000" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_train_command_refuses_negative_term_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import build_parser, main

    assert main(["train", "--out", str(tmp_path / "run"), "--window-supervision-weight", "-1"]) == 2
    assert "must not be negative" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
    assert main(["train", "--out", str(tmp_path / "run"), "--consistency-weight", "1", "--window-statistics", "batch",
                 "--freeze-batch-norm"]) == 2
    assert "cannot go with --window-statistics batch" in capsys.readouterr().out
    args = build_parser().parse_args(["train", "--out", str(tmp_path), "--window-supervision-weight", "0.5"])
    assert args.window_supervision_weight == 0.5


def _sample_with_cavity(seed: int) -> SimpleNamespace:
    """The phantom, with its necrotic core relabelled resection cavity on odd seeds."""
    case = _sample(seed)
    if seed % 2:
        case.labels = np.where(case.labels == 1, 4, case.labels).astype(case.labels.dtype)
    return case


def test_cases_without_a_cavity_are_drawn_by_their_weight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.modelling import training

    folder = tmp_path / "cases"
    cache_cases([1, 2, 4], cache_dir=folder, config=model_config_from_dict(TINY), sample=_sample_with_cavity)
    seeds = [1, 2, 4]  # 1 has a cavity, 2 and 4 have none
    assert training.case_weights(folder, seeds, no_cavity_weight=1.0) is None  # the uniform draw of old recipes
    assert training.case_weights(folder, seeds, no_cavity_weight=5.0) == [1.0, 5.0, 5.0]
    drawn: list[int] = []
    real_load = training.load_case
    monkeypatch.setattr(training, "load_case", lambda cache_dir, seed: drawn.append(seed) or real_load(cache_dir, seed))
    recipe = TrainingRecipe(batch_size=2, augmentation=SMALL_AUG)
    for step in range(40):
        training.make_batch(cache_dir=folder, case_seeds=seeds, recipe=recipe, step=step, weights=[1.0, 50.0, 50.0])
    with_cavity = drawn.count(1)
    assert len(drawn) == 80 and with_cavity <= 8  # expected 80/101 ~ 0.8 draws of seed 1
    drawn.clear()
    for step in range(40):
        training.make_batch(cache_dir=folder, case_seeds=seeds, recipe=recipe, step=step)
    assert drawn.count(1) > 15  # uniform: expected ~27
    with pytest.raises(ValueError, match="no_cavity_weight must be positive"):
        TrainingRecipe(no_cavity_weight=0.0)


def test_train_command_refuses_a_non_positive_no_cavity_weight(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import build_parser, main

    assert main(["train", "--out", str(tmp_path / "run"), "--no-cavity-weight", "0"]) == 2
    assert "--no-cavity-weight must be positive" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
    assert build_parser().parse_args(["train", "--out", str(tmp_path)]).no_cavity_weight == 1.0
