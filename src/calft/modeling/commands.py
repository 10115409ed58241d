"""The modeling stage's command: prepare a model folder (the embedded model, or a hub download)."""

from __future__ import annotations

from pathlib import Path

from calft.modeling.settings import ModelSourceSettings


def prepare_model(settings: ModelSourceSettings, output: str) -> None:
    from calft.modeling import prepare

    if settings.source == "embedded":
        prepare.prepare_embedded(Path(output))
    else:
        prepare.prepare_hub(settings.source, settings.revision, Path(output))
