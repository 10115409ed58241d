"""The one model loader: tokenizer, chat format, stop tokens and weights, for every stage that runs
a model (training, sampling, logit KL, transfer, retention, perplexity).

An adapter is applied only if calft trained it on this base model (its provenance records the base
model's architecture fingerprint and the checksum of its weights) and every one of its LoRA weights
arrived in the model unchanged and finite.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

from calft import artifacts
from calft.errors import UserError
from calft.modeling.attention import implementation_for
from calft.modeling.chat import ChatFormat, terminator_id
from calft.modeling.settings import ModelEntry
from calft.modeling.source import COMMIT, ModelSource, resolve

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def loading(what: str, source):
    """transformers and peft report a missing or unreadable folder or hub id as OSError or ValueError."""
    try:
        yield
    except (OSError, ValueError, RuntimeError) as error:  # RuntimeError: weights of the wrong shape
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load the {what} from '{source}' ({first_line})") from None
    except SafetensorError as error:
        raise UserError(
            f"cannot load the {what} from '{source}': a weights file is damaged or incomplete ({error}); copy it "
            "again, or rerun the rule that prepared the folder"
        ) from None


def model_source(model_dir, entry: ModelEntry | None = None) -> ModelSource:
    """The folder a model folder or download marker names; a hub snapshot must be of the commit
    that `entry` pins, when it pins one."""
    found = resolve(model_dir)
    pinned = entry.revision if entry is not None else None
    if found.commit and pinned and COMMIT.fullmatch(pinned) and pinned != found.commit:
        raise UserError(
            f"{model_dir} holds {found.model_id} at commit {found.commit}, but the config pins {pinned}; "
            f"rerun the rule download_hub_model: snakemake --forcerun {model_dir}"
        )
    return found


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer

    folder = resolve(model_dir).folder
    with loading("tokenizer", folder):
        return AutoTokenizer.from_pretrained(folder)


def load_base(model_dir, entry: ModelEntry):
    """The base model's weights in the configured dtype, on the CPU, with an attention
    implementation that honours tree masks (calft.modeling.attention)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = model_source(model_dir, entry).folder
    with loading("model", folder):
        implementation = implementation_for(AutoConfig.from_pretrained(folder))
        return AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, entry.dtype), attn_implementation=implementation
        )


def base_fingerprint(model) -> str:
    """A digest of the model's architecture: what an adapter trained on it fits."""
    return config_fingerprint(model.config)


def config_fingerprint(config) -> str:
    """A digest of a transformers config without paths, dtypes and private keys."""

    def architecture(node):
        if isinstance(node, dict):
            return {
                key: architecture(value)
                for key, value in node.items()
                if not str(key).startswith("_")
                and key not in ("transformers_version", "dtype", "torch_dtype", "use_cache")
            }
        return node

    text = json.dumps(architecture(config.to_dict()), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_adapter(folder: Path, base_model, config: dict) -> None:
    """Write the provenance of the peft adapter saved in `folder`, trained on `base_model`: `config`
    plus the base model's fingerprint, the checksum of the weights file and the weights training
    left identically zero (any other weight found all zero did not load)."""
    from safetensors.torch import load_file

    weights = Path(folder) / ADAPTER_WEIGHTS
    zero = sorted(name for name, tensor in load_file(weights).items() if not tensor.any())
    artifacts.write_record(
        folder,
        artifacts.provenance(
            "adapter",
            config
            | {
                "base_model": base_fingerprint(base_model),
                "weights_sha256": artifacts.sha256(weights),
                "zero_weights": zero,
            },
        ),
    )


def _check_adapter_record(adapter: Path, model) -> dict:
    """The adapter was trained by calft on this base model, and its weights file is the one it wrote."""
    config = artifacts.read_record(adapter, "adapter")["config"]
    if config.get("base_model") != base_fingerprint(model):
        trained_on = config.get("model", {}).get("source") if isinstance(config.get("model"), dict) else None
        raise UserError(
            f"adapter {adapter} was trained on another base model ({trained_on or 'unknown'}) than the "
            "one loaded: their architectures differ"
        )
    weights = adapter / ADAPTER_WEIGHTS
    artifacts.require(weights)
    if artifacts.sha256(weights) != config.get("weights_sha256"):
        raise UserError(f"{weights} is not the file calft wrote when it trained the adapter (its checksum differs)")
    return config


def check_adapter_weights(adapter: Path, model, zero_weights: list[str] | None) -> None:
    """Every LoRA weight of the file, and no other, is in the model, unchanged, finite, and not all
    zero unless training left it so (`zero_weights`; None: an adapter whose training calft did not
    record, any weight may be zero)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    saved = load_file(adapter / ADAPTER_WEIGHTS)
    loaded = get_peft_model_state_dict(model)
    if set(saved) != set(loaded):
        different = sorted(set(saved) ^ set(loaded))
        raise UserError(
            f"adapter {adapter} does not fit the model: {len(different)} weights differ by name, e.g. {different[0]}"
        )
    for name, tensor in saved.items():
        if not torch.isfinite(tensor).all():
            raise UserError(f"adapter {adapter} has non-finite values in {name}")
        if not torch.equal(loaded[name].to(tensor), tensor) or (
            zero_weights is not None and name not in zero_weights and not tensor.any()
        ):
            raise UserError(f"adapter {adapter}: {name} did not load into the model")


def stop_token_ids(model_dir, tokenizer, chat: ChatFormat) -> set[int]:
    """The configured terminator and the checkpoint's end-of-sequence tokens."""
    from transformers import GenerationConfig

    stop_ids = {terminator_id(tokenizer, chat)}
    try:
        eos = GenerationConfig.from_pretrained(resolve(model_dir).folder).eos_token_id
        stop_ids |= set(eos if isinstance(eos, list) else [eos]) - {None}
    except OSError:
        pass
    return stop_ids


@dataclass
class LoadedModel:
    """A model ready to evaluate: base weights with the adapter applied unmerged, in eval mode."""

    model: torch.nn.Module
    tokenizer: object
    chat: ChatFormat
    stop_ids: set[int]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load(
    model_dir, entry: ModelEntry, adapter: str | Path | None = None, device: torch.device | None = None
) -> LoadedModel:
    """The model of `model_dir` configured by `entry`, with `adapter` (a calft adapter folder, checked
    against this base model) applied when given."""
    artifacts.require(adapter)
    model_dir = model_source(model_dir, entry).folder
    tokenizer = load_tokenizer(model_dir)
    chat = ChatFormat.from_entry(entry)
    model = load_base(model_dir, entry)
    if adapter is not None:
        from peft import PeftModel

        adapter = Path(adapter)
        record = _check_adapter_record(adapter, model)
        with loading("adapter", adapter):
            model = PeftModel.from_pretrained(model, adapter)
        check_adapter_weights(adapter, model, record.get("zero_weights", []))
    model = model.to(device or default_device()).eval()
    return LoadedModel(model, tokenizer, chat, stop_token_ids(model_dir, tokenizer, chat))


def adapter_record(adapter) -> dict | None:
    """What results record about the adapter they ran (None: the base model): its folder, the method
    and settings it was trained with, its training targets' grid and its weights' checksum."""
    if adapter is None:
        return None
    config = artifacts.read_record(adapter, "adapter")["config"]
    targets = config.get("targets") if isinstance(config.get("targets"), dict) else {}
    return {
        "path": str(adapter),
        "method": config.get("method"),
        "imported": config.get("imported"),
        "training": config.get("training"),
        "targets": {key: targets.get(key) for key in ("prompt_set", "decimals", "max_bins")},
        "weights_sha256": config.get("weights_sha256"),
    }


def model_record(entry: ModelEntry, model_dir) -> dict:
    """What results record about their model: its config entry and the snapshot it was loaded from."""
    return entry.to_dict() | {"loaded": model_source(model_dir, entry).record()}
