"""Adapters calft did not train (the config's `adapters`): checked against their base model, then
imported as a calft adapter folder that every evaluation loads like a trained one.

A foreign adapter is read only when the config trusts it, and even then only if its files are
safetensors (never pickled weights), its weights are finite, every module it targets is in the
base, the base model its config names is the configured one, and every one of its weights arrives
in the model unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from calft import artifacts
from calft.errors import UserError
from calft.modeling.loader import (
    ADAPTER_WEIGHTS,
    base_fingerprint,
    check_adapter_weights,
    config_fingerprint,
    load_base,
    loading,
    model_record,
    record_adapter,
)
from calft.modeling.prepare import hub_id
from calft.modeling.settings import ImportAdapterSettings
from calft.modeling.source import resolve

log = logging.getLogger(__name__).info

ADAPTER_CONFIG = "adapter_config.json"
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy", ".npz", ".joblib")
CARRIED = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, "README.md")  # what the imported folder keeps of the original


def adapter_config(folder: Path) -> dict:
    """The adapter's PEFT config, after refusing any pickled weights file in its folder."""
    pickled = sorted(path.name for path in folder.rglob("*") if path.suffix.lower() in PICKLED)
    if pickled:
        raise UserError(
            f"adapter {folder} holds {pickled[0]}: calft loads safetensors only, never pickled weights "
            "(convert the adapter with peft's save_pretrained(safe_serialization=True))"
        )
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder / name).is_file():
            raise UserError(f"adapter {folder} has no {name} (a PEFT adapter folder holds both)")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{folder / ADAPTER_CONFIG} is not JSON") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise UserError(f"adapter {folder} is not a LoRA adapter (peft_type {config.get('peft_type')!r})")
    return config


def check_targets(folder: Path, config: dict, base) -> None:
    """Every module the adapter targets is in the base (PEFT's rule: a module name equal to the
    target or ending in '.' + target; a string target is a regular expression over full names)."""
    names = [name for name, _ in base.named_modules()]
    targets = config.get("target_modules")
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, name) for name in names):
            raise UserError(f"adapter {folder} targets modules matching '{targets}'; the base model has none")
        return
    for target in targets or []:
        if not any(name == target or name.endswith(f".{target}") for name in names):
            raise UserError(f"adapter {folder} targets the module '{target}', which the base model does not have")


def check_base(folder: Path, config: dict, base, model_entry) -> None:
    """The base model the adapter's config names is the configured one: the same architecture when it
    names a local model folder, the same hub id when it names a repository."""
    named = config.get("base_model_name_or_path")
    if not named:
        log(f"adapter {folder} names no base model; its weights are checked against {model_entry.name}")
        return
    local = Path(named)
    if (local / "config.json").is_file():
        from transformers import AutoConfig

        with loading("base model the adapter names", local):
            named_config = AutoConfig.from_pretrained(local)
        if config_fingerprint(named_config) != base_fingerprint(base):
            raise UserError(
                f"adapter {folder} was trained on {named}, whose architecture differs from model {model_entry.name}'s"
            )
        return
    expected = hub_id(model_entry.source)
    if named.lower() != str(expected).lower():
        raise UserError(
            f"adapter {folder} names the base model '{named}', not '{expected}' (model {model_entry.name}): "
            "evaluate it on the model it was trained on"
        )


def import_adapter(settings: ImportAdapterSettings, model_dir: str, source: str, output: str) -> None:
    """Check the foreign adapter at `source` (a folder, or the download marker of a hub adapter)
    against the base model in `model_dir` and write it as the calft adapter folder `output`."""
    from peft import PeftModel

    key = f"adapters.{settings.name}"
    if not settings.adapter.trust:
        raise UserError(
            f"{key}.trust: calft did not train adapter '{settings.name}', so it is loaded only when trusted; "
            f"set {key}.trust: true"
        )
    found = resolve(source)
    folder = found.folder
    config = adapter_config(folder)
    base = load_base(model_dir, settings.model)
    check_targets(folder, config, base)
    check_base(folder, config, base, settings.model)
    with loading("adapter", folder):
        model = PeftModel.from_pretrained(base, folder)
    check_adapter_weights(folder, model, None)  # finite, every one loaded unchanged
    log(f"adapter {settings.name}: {len(config.get('target_modules') or [])} target modules, every weight loaded")
    record = {
        "method": settings.name,
        "model": model_record(settings.model, model_dir),
        "imported": {
            "source": settings.adapter.path or settings.adapter.hub,
            "revision": found.commit,
            "base_model_name_or_path": config.get("base_model_name_or_path"),
            "files_sha256": {name: artifacts.sha256(folder / name) for name in CARRIED if (folder / name).is_file()},
        },
    }
    with artifacts.atomic_path(output, "adapter") as temporary:
        temporary.mkdir()
        for name in CARRIED:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, temporary / name)
        record_adapter(temporary, model.get_base_model(), record)
