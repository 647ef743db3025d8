"""Build the MONAI network a :class:`ModelConfig` names and load its weights.

Weights are a plain ``state_dict`` (``torch.save``), fp16 allowed on disk (cast to fp32 at load).
``weights_sha256`` identifies exactly which weights produced a result.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.segmentation.model_config import ModelConfig

if TYPE_CHECKING:
    import torch


def build_network(config: ModelConfig) -> torch.nn.Module:
    """A freshly initialised network of the configured architecture."""
    from monai.networks import nets

    cls = getattr(nets, config.architecture)
    kwargs: dict[str, Any] = {"spatial_dims": 3, **dict(config.network)}
    kwargs["out_channels"] = config.num_outputs
    for key in ("channels", "strides", "blocks_down", "blocks_up", "features", "kernel_size"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` in fp32, accepting a bare dict or ``{"model": ...}``."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Model weights {path} do not exist",
            action="Train a model with `gliowatch train` or point segmentation.model_dir at one.",
        ) from exc
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        data = data["model"]
    if not isinstance(data, dict):
        raise ConfigError(f"Model weights {path} are not a state dict")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in data.items()}


def load_network(config: ModelConfig) -> tuple[torch.nn.Module, str]:
    """The configured network with its weights, in eval mode, and the weights' SHA-256."""
    net = build_network(config)
    path = config.weights_path
    state = load_state_dict(path)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"Model weights {path} do not fit the network in config.json",
            detail=str(exc)[:2000],
        ) from exc
    net.eval()
    return net, file_sha256(path)


def save_weights_fp16(net: torch.nn.Module, path: Path) -> str:
    """Write the network's weights as an fp16 state dict; return the file's SHA-256."""
    import torch

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return file_sha256(path)
