"""The training loop: seedable, resumable from a checkpoint, exporting shippable fp16 weights.

Reproducibility: sample ``i`` of step ``n`` draws all its randomness from
``numpy.random.default_rng([seed, n, i])`` and torch's generator is reseeded per step, so a run
resumed from a checkpoint continues exactly as an uninterrupted one would (on the same device
and thread count).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.modelling.augment import AugmentationSettings, augment_case
from engine.modelling.dataset import has_label, load_case
from engine.segmentation.model_config import ModelConfig
from engine.segmentation.network import build_network, save_weights_fp16
from engine.types import Label

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True, slots=True)
class TrainingRecipe:
    steps: int = 2000
    batch_size: int = 2
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 50
    final_lr_fraction: float = 0.05
    seed: int = 0
    checkpoint_every_s: float = 180.0
    log_every: int = 10
    #: normalise patches with the whole head's statistics, as inference does (False: the patch's
    #: own, the recipe of 0.2.0 and the 1 mm candidate).
    whole_head_statistics: bool = True
    #: weight of the window-consistency term (0: off; see :func:`consistency_window`). The term is
    #: the mean squared difference between the class probabilities of a sub-window of the patch
    #: and those of the whole patch on the same voxels, both normalised as ``window_statistics``
    #: says; the whole patch is the teacher (no gradient). It asks the network to give a voxel the
    #: same answer whether it sees the whole head or a window of it, which is what makes one pass
    #: over the head crop agree with a sliding window. With running statistics, batch norm is
    #: frozen (:func:`freeze_batch_norm`): with it learning, a fine-tune of 0.3.1 at weight 5
    #: diverged (running variances grew to inf within 800 steps; the consistency gradient was taken
    #: with running statistics, which the supervised term's batch statistics do not see).
    consistency_weight: float = 0.0
    #: whose whole-patch probabilities the sub-window must match: ``"self"`` (the network being
    #: trained) or ``"initial"`` (a frozen copy of the network the run started from, kept in the
    #: checkpoint). With ``"self"`` the network can also agree by using less context on the whole
    #: patch; a frozen teacher keeps the whole-context answer fixed. Measured (model card): fine-tunes
    #: of 0.3.1 with either teacher labelled part of the ventricles resection cavity (median 0.46 mL
    #: with ``"self"``, 0.40 mL with ``"initial"`` on pre-operative calibration studies; both with
    #: running statistics, batch norm frozen), so neither was shipped.
    consistency_teacher: str = "self"
    #: weight of the supervised loss (the same Dice + cross-entropy) on the sub-window's own output
    #: against the patch's targets on its voxels (0: off). It asks the network to be right, not only
    #: consistent, when it sees a window of the head, as a sliding window's border voxels do. It uses
    #: the window of the consistency term (drawn the same way when that term is off) and is
    #: normalised as ``window_statistics`` says, as that term is.
    window_supervision_weight: float = 0.0
    #: keep batch norm's running statistics as they start (its scale and shift still learn); always
    #: so when a window term runs with running statistics (see ``consistency_weight``), refused with
    #: ``window_statistics="batch"`` (the two sides of the terms would be normalised differently).
    freeze_batch_norm: bool = False
    #: the statistics batch norm normalises with in the window terms: ``"running"`` (as inference
    #: does; batch norm is then frozen) or ``"batch"`` (each pass's own, as in the supervised pass;
    #: batch norm keeps learning, its running statistics from the supervised pass only, and with
    #: teacher ``"self"`` the supervised pass's own output is the whole patch's answer). Measured
    #: (model card): a fine-tune of 0.3.1 with batch norm frozen and no window term already labelled
    #: part of the ventricles resection cavity, one with batch norm learning much less.
    window_statistics: str = "running"
    #: sampling weight of a cached case whose labels hold no resection cavity (the pre-operative
    #: ones: 24 of the 200 acquired cases of 0.3.0) against 1 for a case with one. Pre-operative
    #: scans are where a model that labels CSF or necrosis as cavity is plainly wrong (measured:
    #: 0.3.1 and the 0.3.2 candidates put up to 0.9 mL of cavity on pre-operative held-out
    #: studies); a weight above 1 shows it more of them. 1 keeps the uniform draw of earlier recipes
    #: (the same random stream).
    no_cavity_weight: float = 1.0
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)

    def __post_init__(self) -> None:
        if self.consistency_teacher not in ("self", "initial"):
            msg = f"consistency_teacher must be 'self' or 'initial', not {self.consistency_teacher!r}"
            raise ValueError(msg)
        if self.consistency_weight < 0 or self.window_supervision_weight < 0:
            msg = "consistency_weight and window_supervision_weight must not be negative"
            raise ValueError(msg)
        if self.window_statistics not in WINDOW_STATISTICS:
            msg = f"window_statistics must be one of {WINDOW_STATISTICS}, not {self.window_statistics!r}"
            raise ValueError(msg)
        if self.windowed and self.freeze_batch_norm and self.window_statistics == "batch":
            msg = "freeze_batch_norm cannot go with window_statistics='batch' (use 'running', which freezes it)"
            raise ValueError(msg)
        if not self.no_cavity_weight > 0:
            msg = f"no_cavity_weight must be positive, not {self.no_cavity_weight!r}"
            raise ValueError(msg)

    @property
    def windowed(self) -> bool:
        """Whether a window term (consistency or window supervision) is on."""
        return self.consistency_weight > 0 or self.window_supervision_weight > 0

    def learning_rate_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to ``final_lr_fraction``.

        >>> TrainingRecipe(steps=100, warmup_steps=10, learning_rate=1.0).learning_rate_at(0)
        0.1
        """
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        span = max(self.steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        low = self.final_lr_fraction
        return self.learning_rate * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def consistency_window(
    patch: Sequence[int], *, lattice: int, rng: np.random.Generator
) -> tuple[slice, ...]:
    """A random sub-window of a patch, on the network's stride lattice: each side a multiple of
    ``lattice``, at least half the patch's and at least one lattice step shorter, each start a multiple of
    ``lattice`` (a sliding window's start on the working grid is one, so its voxels meet the
    network's strides as they do in the whole-volume pass).

    >>> consistency_window((64, 64, 48), lattice=16, rng=np.random.default_rng(0))
    (slice(16, 64, None), slice(0, 48, None), slice(0, 32, None))
    """
    out = []
    for side in patch:
        steps = side // lattice
        if steps < 2:
            msg = f"patch side {side} is shorter than two lattice steps of {lattice}"
            raise ValueError(msg)
        size = int(rng.integers((steps + 1) // 2, steps)) * lattice  # half the side or more, never all
        start = int(rng.integers(0, (side - size) // lattice + 1)) * lattice
        out.append(slice(start, start + size))
    return tuple(out)


WINDOW_STATISTICS = ("running", "batch")


@contextmanager
def normalising_with(net: Any, statistics: str) -> Iterator[None]:
    """Run ``net`` with batch norm's ``"running"`` statistics (every module in evaluation mode, as
    inference runs) or each batch's own (``"batch"``: batch-norm layers in training mode with
    momentum 0, so their running statistics stay as they are). Every module's mode and momentum
    are restored afterwards."""
    import torch

    if statistics not in WINDOW_STATISTICS:
        msg = f"statistics must be one of {WINDOW_STATISTICS}, not {statistics!r}"
        raise ValueError(msg)
    modes = [(module, module.training) for module in net.modules()]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    if statistics == "running":
        net.eval()
    else:
        for layer in norms:
            layer.train()
            layer.momentum = 0.0
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def window_logits(net: Any, images: Any, *, window: tuple[slice, ...], statistics: str = "running") -> Any:
    """``net``'s logits for ``window`` of each patch seen alone, normalised with batch norm's
    running statistics (as inference runs) or the window's own (:func:`normalising_with`). Leaves
    every module of ``net`` as it was."""
    with normalising_with(net, statistics):
        return net(images[(slice(None), slice(None), *window)].contiguous())


def consistency_loss(net: Any, images: Any, *, window: tuple[slice, ...], teacher: Any = None,
                     student_logits: Any = None, teacher_logits: Any = None, statistics: str = "running") -> Any:
    """Mean squared difference of the class probabilities of ``window`` seen alone by ``net`` and
    seen within the whole batch of patches by ``teacher`` (default ``net`` itself), both normalised
    with ``statistics`` (:func:`normalising_with`); the whole patch's side carries no gradient.
    ``student_logits`` / ``teacher_logits``: either side already computed (the window's from
    :func:`window_logits`, so it runs once when it is also supervised; the whole patch's from the
    supervised pass). Leaves every module of ``net`` as it was."""
    import torch

    if teacher_logits is None:
        teacher = net if teacher is None else teacher
        with torch.no_grad(), normalising_with(teacher, statistics):
            teacher_logits = teacher(images)
    reference = teacher_logits.detach()[(slice(None), slice(None), *window)].softmax(1)
    if student_logits is None:
        student_logits = window_logits(net, images, window=window, statistics=statistics)
    return (student_logits.softmax(1) - reference).square().sum(1).mean()


def freeze_batch_norm(net: Any) -> int:
    """Put every batch-norm layer of ``net`` in evaluation mode (running statistics used, not
    updated; its scale and shift still learn); returns how many there are."""
    import torch

    layers = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.eval()
    return len(layers)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_model(net: Any, *, config: ModelConfig, out_dir: Path, extra: dict[str, Any]) -> str:
    """Write ``config.json`` + fp16 ``model.pt`` into ``out_dir``; return the weights' SHA-256."""
    sha = save_weights_fp16(net, out_dir / config.weights_file)
    data = config.to_json()
    data["training"] = {**dict(config.training), **extra}
    (out_dir / "config.json").write_text(json.dumps(data, indent=2) + "\n")
    return sha


def case_weights(cache_dir: Path, case_seeds: Sequence[int], *, no_cavity_weight: float) -> list[float] | None:
    """Sampling weight per case (``TrainingRecipe.no_cavity_weight``); None: the uniform draw."""
    if no_cavity_weight == 1.0:
        return None
    return [1.0 if has_label(cache_dir, seed, Label.RC) else no_cavity_weight for seed in case_seeds]


def make_batch(
    *, cache_dir: Path, case_seeds: Sequence[int], recipe: TrainingRecipe, step: int,
    weights: Sequence[float] | None = None,
) -> tuple[int, Any, Any]:
    """(step, images (B, C, *patch), soft targets (B, K, *patch)) for one step, from its own seeds.

    ``weights`` (one per case, see :func:`case_weights`) draw cases in proportion; None: uniformly."""
    import torch

    p = None if weights is None else np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    images, labels = [], []
    for i in range(recipe.batch_size):
        rng = np.random.default_rng([recipe.seed, step, i])
        pick = int(rng.integers(len(case_seeds))) if p is None else int(rng.choice(len(case_seeds), p=p))
        case = load_case(cache_dir, int(case_seeds[pick]))
        x, y = augment_case(case.image, case.labels, case.head, case.soft_u8, rng=rng, settings=recipe.augmentation,
                            head_voxels=case.head_voxels if recipe.whole_head_statistics else None)
        images.append(x)
        labels.append(y)
    return step, torch.stack(images), torch.stack(labels)


def _batch_loader(*, cache_dir: Path, case_seeds: Sequence[int], recipe: TrainingRecipe, first_step: int,
                  weights: Sequence[float] | None = None) -> Any:
    """Batches prepared in one worker process while the network trains (the order is fixed)."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    class Batches(IterableDataset):
        def __iter__(self):  # noqa: ANN204
            torch.set_num_threads(1)
            for step in range(first_step, recipe.steps):
                yield make_batch(cache_dir=cache_dir, case_seeds=case_seeds, recipe=recipe, step=step,
                                 weights=weights)

    return DataLoader(Batches(), batch_size=None, num_workers=1, prefetch_factor=4, persistent_workers=False)


def warm_start(net: Any, state: dict[str, Any]) -> list[str]:
    """Copy every tensor of ``state`` whose name and shape match ``net``'s; return the names copied.

    Lets a network with another normalisation (instance -> batch norm adds parameters) or
    another working spacing start from earlier weights instead of from scratch.
    """
    own = net.state_dict()
    copied = [k for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)]
    own.update({k: state[k].to(own[k].dtype) for k in copied})
    net.load_state_dict(own)
    return copied


def train(
    *,
    config: ModelConfig,
    recipe: TrainingRecipe,
    cache_dir: Path,
    case_seeds: Sequence[int],
    out_dir: Path,
    resume: bool = False,
    init_weights: Path | None = None,
    log: Callable[[str], None] = print,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    """Train ``config``'s network on the cached cases; returns the checkpoint path.

    ``init_weights`` (a ``model.pt``) warm-starts a fresh run (see :func:`warm_start`); a resumed
    run ignores it. The loss is Dice (tumour classes) + cross-entropy against the soft class
    fractions of the cache.
    """
    import torch
    from monai.losses import DiceCELoss

    if not case_seeds:
        msg = "Argument 'case_seeds' must name at least one cached case"
        raise ValueError(msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT_NAME
    torch.manual_seed(recipe.seed)
    net = build_network(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    frozen_teacher = recipe.consistency_weight > 0 and recipe.consistency_teacher == "initial"
    step, history, state = 0, [], None
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), list(state.get("history", []))
        log(f"resumed from {checkpoint} at step {step}")
    elif init_weights is not None:
        from engine.segmentation.network import load_state_dict

        copied = warm_start(net, load_state_dict(init_weights))
        log(f"warm start from {init_weights}: {len(copied)} of {len(net.state_dict())} tensors copied")
    teacher = None
    if frozen_teacher:
        teacher = copy.deepcopy(net)  # the network the run started from (warm start or initial draw)
        if state is not None:
            if "teacher" not in state:
                msg = (f"{checkpoint} holds no frozen teacher; it was not written by a run with "
                       "consistency_teacher='initial'")
                raise ValueError(msg)
            teacher.load_state_dict(state["teacher"])
        teacher.eval().requires_grad_(False)
        log("window consistency: the teacher is a frozen copy of the starting network")
    loss_fn = DiceCELoss(to_onehot_y=False, softmax=True, include_background=False, batch=True)
    net.train()
    windowed = recipe.windowed
    if windowed:
        log(f"window consistency {recipe.consistency_weight:g}, window supervision "
            f"{recipe.window_supervision_weight:g}, with {recipe.window_statistics} statistics")
    if recipe.freeze_batch_norm or (windowed and recipe.window_statistics == "running"):
        log(f"{freeze_batch_norm(net)} batch-norm layers frozen")
    last_save, window, started = time.monotonic(), [], time.monotonic()

    def save() -> None:
        _atomic_torch_save(
            {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "history": history,
             "recipe": asdict(recipe), "config": config.to_json(),
             **({"teacher": teacher.state_dict()} if teacher is not None else {})},
            checkpoint,
        )
        export_model(net, config=config, out_dir=out_dir, extra={"steps": step, "recipe": asdict(recipe),
                                                                   "cases": len(case_seeds)})

    weights = case_weights(cache_dir, case_seeds, no_cavity_weight=recipe.no_cavity_weight)
    if weights is not None:
        n = sum(1 for w in weights if w != 1.0)
        share = n * recipe.no_cavity_weight / sum(weights)
        log(f"{n} of {len(case_seeds)} cases have no resection cavity; drawn with weight "
            f"{recipe.no_cavity_weight:g} ({share:.0%} of draws)")
    batches = iter(_batch_loader(cache_dir=cache_dir, case_seeds=case_seeds, recipe=recipe, first_step=step,
                                 weights=weights))
    while step < recipe.steps and not should_stop():
        torch.manual_seed(recipe.seed * 1_000_003 + step)
        batch_step, images, labels = next(batches)
        if int(batch_step) != step:
            msg = f"batch for step {int(batch_step)} arrived at step {step}"
            raise RuntimeError(msg)
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        logits = net(images)
        loss = loss_fn(logits, labels)
        if windowed:
            sub = consistency_window(images.shape[2:], lattice=config.divisible_by,
                                     rng=np.random.default_rng([recipe.seed, step, 1_000_003]))
            statistics = recipe.window_statistics
            student = window_logits(net, images, window=sub, statistics=statistics)
            if recipe.consistency_weight > 0:
                # with each pass's own statistics, the supervised pass is the whole patch's answer
                own = logits if teacher is None and statistics == "batch" else None
                term = consistency_loss(net, images, window=sub, teacher=teacher, student_logits=student,
                                        teacher_logits=own, statistics=statistics)
                loss = loss + recipe.consistency_weight * term
            if recipe.window_supervision_weight > 0:
                target = labels[(slice(None), slice(None), *sub)]
                loss = loss + recipe.window_supervision_weight * loss_fn(student, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window.append(float(loss.detach()))
        if step % recipe.log_every == 0 or step == recipe.steps:
            mean = float(np.mean(window))
            history.append((step, mean))
            rate = (time.monotonic() - started) / max(len(window), 1)
            log(f"step {step}/{recipe.steps} loss {mean:.4f} lr {recipe.learning_rate_at(step - 1):.2e} {rate:.2f} s/step")
            window, started = [], time.monotonic()
        if time.monotonic() - last_save > recipe.checkpoint_every_s:
            save()
            last_save = time.monotonic()
            log(f"checkpoint at step {step}")
    save()
    log(f"saved checkpoint and weights at step {step} in {out_dir}")
    return checkpoint
