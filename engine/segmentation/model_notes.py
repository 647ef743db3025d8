"""What each shipped model is known to do on real MRI, for the people who read its numbers.

``models/<name>/evaluation.json`` holds one sentence per model (``real_data``), written from the
model's ``gliowatch evaluate`` report and its model card; the dashboard's banner shows it for every
built-in model whose numbers are on screen.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from engine.settings import PROJECT_ROOT

MODELS_DIR = PROJECT_ROOT / "models"


@lru_cache(maxsize=8)
def real_data_statements(models_dir: Path = MODELS_DIR) -> dict[str, str]:
    """model name -> its real-data sentence, from every ``models/*/evaluation.json``."""
    out: dict[str, str] = {}
    for path in sorted(Path(models_dir).glob("*/evaluation.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("model") and data.get("real_data"):
            out[str(data["model"])] = str(data["real_data"])
    return out


def real_data_statement(model_name: str) -> str:
    """The sentence for ``model_name``, or a plain one when none was written."""
    return real_data_statements().get(model_name, "no measurement on real MRI is recorded for this model")
