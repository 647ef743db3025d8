"""The warning over every dashboard page: which built-in models made the numbers shown, and what
each is known to do on real MRI (``models/*/evaluation.json``)."""

from __future__ import annotations

BANNER_HEAD = "Built-in segmentation — not for clinical use."
DEFAULT_MODEL = "gliowatch-unet"


def model_banner(models: list[tuple[str, str]]) -> str:
    """The warning over every page: each built-in model whose numbers are shown, with what it is
    known to do on real MRI (``models/*/evaluation.json``); the default model when none is known."""
    from engine.segmentation.model_notes import real_data_statement

    shown = models or [(DEFAULT_MODEL, "")]
    lines = [f"**{name} {version}".rstrip() + f"**: {real_data_statement(name)}." for name, version in shown]
    return "  \n".join([BANNER_HEAD, *lines])
