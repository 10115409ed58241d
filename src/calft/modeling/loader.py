"""The one model loader: tokenizer, chat format, stop tokens and weights, for every stage that runs
a model (training, sampling, logit KL, transfer, retention, perplexity)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from calft.errors import UserError
from calft.modeling.attention import implementation_for
from calft.modeling.chat import ChatFormat, terminator_id
from calft.settings import ModelEntry


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _loading(what: str, source):
    """transformers and peft report a missing or unreadable folder or hub id as OSError or ValueError."""
    try:
        yield
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the {what} from '{source}' ({error})") from None


def load_tokenizer(model_dir):
    from transformers import AutoTokenizer

    with _loading("tokenizer", model_dir):
        return AutoTokenizer.from_pretrained(model_dir)


def load_base(model_dir, entry: ModelEntry):
    """The base model's weights in the configured dtype, on the CPU, with an attention
    implementation that honours tree masks (calft.modeling.attention)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with _loading("model", model_dir):
        implementation = implementation_for(AutoConfig.from_pretrained(model_dir))
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, entry.dtype),
                                                    attn_implementation=implementation)


def stop_token_ids(model_dir, tokenizer, chat: ChatFormat) -> set[int]:
    """The configured terminator and the checkpoint's end-of-sequence tokens."""
    from transformers import GenerationConfig

    stop_ids = {terminator_id(tokenizer, chat)}
    try:
        eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
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


def load(model_dir, entry: ModelEntry, adapter: Path | None = None, device: torch.device | None = None) -> LoadedModel:
    tokenizer = load_tokenizer(model_dir)
    chat = ChatFormat.from_entry(entry)
    model = load_base(model_dir, entry)
    if adapter is not None:
        from peft import PeftModel

        with _loading("adapter", adapter):
            model = PeftModel.from_pretrained(model, adapter)
        if not any("lora_" in name for name, _ in model.named_parameters()):
            raise UserError(f"adapter {adapter} put no LoRA weights into the model")
    model = model.to(device or default_device()).eval()
    return LoadedModel(model, tokenizer, chat, stop_token_ids(model_dir, tokenizer, chat))
