"""The modeling stage's commands: prepare a model folder (the embedded model, or a hub download), and
import an adapter calft did not train."""

from __future__ import annotations

from pathlib import Path

from calft.modeling.settings import ImportAdapterSettings, ModelSourceSettings


def prepare_model(settings: ModelSourceSettings, output: str) -> None:
    from calft.modeling import prepare

    if settings.source == "embedded":
        prepare.prepare_embedded(Path(output))
    else:
        prepare.prepare_hub(settings.source, settings.revision, Path(output), settings.files)


def import_adapter(settings: ImportAdapterSettings, model_dir: str, source: str, output: str) -> None:
    from calft.modeling import foreign

    foreign.import_adapter(settings, model_dir, source, output)
