"""The modeling stage's command: prepare a model folder (the embedded model, or a hub download)."""

from __future__ import annotations

from pathlib import Path


def prepare_model(source: str, revision: str | None, output: str) -> None:
    from calft.modeling import prepare

    if source == "embedded":
        prepare.prepare_embedded(Path(output))
    else:
        prepare.prepare_hub(source, revision, Path(output))
