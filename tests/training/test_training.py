"""Training: exact losses, shared-prompt packing, LoRA-only gradients, balanced batches, resume,
DDP equivalence, and a real short run of the embedded model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    SMOL_ENTRY,
    build_tries,
    calft_in_process,
    discretize,
    items_and_prompts,
    random_lora_model,
    run_checked,
    train_arguments,
)

from calft import artifacts
from calft.cli import main
from calft.modeling.chat import ChatFormat, prompt_ids, render
from calft.modeling.settings import ModelEntry
from calft.modeling.trees import SoftTargets, example_losses, pack
from calft.training.balance import balanced_order
from calft.training.data import HardTargets, batches, epoch_items
from calft.training.settings import Training

SMOL = SMOL_ENTRY
SMOL_CHAT = ChatFormat.from_entry(ModelEntry.from_dict(SMOL))


def test_gradients_reach_only_lora_parameters(tiny_model_dir, micro_data):
    items, rendered, pad = items_and_prompts(tiny_model_dir, micro_data, "hard", 4)
    model = random_lora_model(tiny_model_dir)
    example_losses(model, pack(items[:2], rendered)).sum().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all("lora_" in n for n in with_grad)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_every_batch_is_family_balanced():
    sizes = {"a": 121, "b": 13, "c": 125, "d": 44, "e": 25, "f": 12}
    families = np.repeat(list(sizes), list(sizes.values()))
    for epoch in range(3):
        order = balanced_order(families, seed=11, epoch=epoch)
        assert sorted(order) == list(range(len(families)))
        ordered = families[order]
        for start in range(0, len(ordered) - 32 + 1, 32):  # every full batch of 32
            window = ordered[start : start + 32]
            for family, size in sizes.items():
                expected = 32 * size / len(families)
                assert abs((window == family).sum() - expected) < 2.5, (epoch, start, family)
    assert not np.array_equal(balanced_order(families, 11, 0), balanced_order(families, 11, 1))


def test_hard_draws_are_fresh_every_epoch_and_fixed_by_seed(tiny_model_dir, micro_data):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    targets = HardTargets(micro_data / "hard.parquet", tokenizer, tokenizer.convert_tokens_to_ids("<|im_end|>"))
    families = ["uniform", "uniform", "binomial", "binomial", "gaussian", "gaussian"]

    def draws(epoch, seed=11):
        return [
            tuple(c.tokens) for item in epoch_items(targets, families, 8, 4, seed, epoch) for c in item.continuations
        ]

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)
    assert len(draws(0)) == 6 * 8 and len(batches(epoch_items(targets, families, 8, 4, 11, 0), 3)) == 4


def test_chat_prompt_has_exactly_one_bos_and_a_pinned_date(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    chat = SMOL_CHAT
    text = render(tokenizer, "Generate a number.", chat)
    assert text.endswith("<|im_start|>assistant\n") and "Generate a number." in text
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = (
            "{{ bos_token }}{{ date_string }}|{% for m in messages %}{{ m['content'] }}{% endfor %}"
        )
        ids = prompt_ids(tokenizer, ["hi"], ChatFormat("<|im_end|>", template_date="2026-01-01"))[0]
        assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
        assert tokenizer.decode(ids[1:]) == "01 Jan 2026|hi"
    finally:
        tokenizer.chat_template = original


def _train_command(tiny_model_dir, micro_data, out, method="hard", **overrides):
    settings = (
        dict(
            global_batch_size=8,
            per_device_batch_size=4,
            hard_epochs=2,
            hard_samples_per_prompt_per_epoch=8,
            hard_group_size=4,
            checkpoint_every=2,
            learning_rate=1e-3,
            lora_r=4,
        )
        | overrides
    )
    targets = micro_data / ("hard.parquet" if method == "hard" else "soft.parquet")
    tries = ["--tries", str(micro_data / "tries.parquet")] if method == "soft" else []
    arguments = train_arguments(
        tiny_model_dir, targets, out, *tries, "--threads", "1", method=method, training=settings
    )
    return [sys.executable, "-m", "calft.cli", *arguments]


def _adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(Path(folder) / "adapter_model.safetensors")


def test_sigterm_then_rerun_gives_the_uninterrupted_adapter(tiny_model_dir, micro_data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    calft_in_process(_train_command(tiny_model_dir, micro_data, straight)[3:])
    process = subprocess.Popen(_train_command(tiny_model_dir, micro_data, resumed), stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # stop it once it has passed its first checkpoint
        if "step 3/" in line:
            process.send_signal(signal.SIGTERM)
            break
    rest = process.communicate()[1]
    assert process.returncode == 3, rest
    assert "rerun to resume" in rest and not (resumed / "adapter").exists()
    rerun = run_checked(_train_command(tiny_model_dir, micro_data, resumed))
    resumed_at = int(rerun.stderr.split("resuming from step ")[1].split()[0])
    assert resumed_at >= 3
    a, b = _adapter_weights(straight / "adapter"), _adapter_weights(resumed / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log_a, log_b = pd.read_parquet(straight / "log.parquet"), pd.read_parquet(resumed / "log.parquet")
    assert list(log_a.step) == list(range(1, 13)) == list(log_b.step)  # 6 prompts x 8 draws / 8 per step x 2 epochs
    assert np.allclose(log_a.loss, log_b.loss)
    assert (log_a.grad_norm > 0).all() and np.allclose(log_a.grad_norm, log_b.grad_norm)  # recorded, and resumed too
    assert "12/12 step (100%)" in rerun.stderr and "ETA" in rerun.stderr  # the progress line closing the run
    optimization = artifacts.read_provenance(resumed / "log.parquet")["config"]["optimization"]
    assert optimization["total_steps"] == 12 and optimization["optimizer"] == "AdamW"
    assert 10 < optimization["longest_prompt_tokens"] < 200  # a rendered chat prompt, not a count of prompts


@pytest.mark.parametrize("distributed", ["ddp", "fsdp"])
def test_two_process_training_matches_one_process(tiny_model_dir, micro_data, tmp_path, distributed):
    """torchrun with 2 CPU ranks (gloo), DDP or FSDP2, and the same global batch trains the same
    adapter as one process, through a checkpoint and its resumption."""
    one, two = tmp_path / "one", tmp_path / "two"
    overrides = dict(hard_epochs=1, lora_dropout=0.0, distributed=distributed, checkpoint_every=3)
    calft_in_process(_train_command(tiny_model_dir, micro_data, one, **overrides)[3:])
    command = _train_command(tiny_model_dir, micro_data, two, **overrides)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    run_checked(torchrun + command[1:], env=env)
    a, b = _adapter_weights(one / "adapter"), _adapter_weights(two / "adapter")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert np.allclose(pd.read_parquet(one / "log.parquet").loss, pd.read_parquet(two / "log.parquet").loss, atol=1e-5)
    # the step-3 checkpoint of the 2-rank run, resumed by 2 ranks, ends with the same adapter
    shutil.rmtree(two / "adapter")
    result = subprocess.run(torchrun + command[1:], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "resuming from step 3" in result.stderr, result.stderr[-3000:]
    c = _adapter_weights(two / "adapter")
    assert all(torch.allclose(b[k], c[k], atol=1e-6) for k in b)


@pytest.mark.model
def test_real_training_run_lowers_the_loss_and_the_adapter_loads(smollm2_dir, tmp_path):
    """The embedded SmolLM2: a few soft steps, then the saved adapter, loaded with peft, fits held
    training targets better than the base model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tmp_path / "data"
    assert main(discretize(data / "soft.parquet", "train", 2, 100, families=["gaussian", "uniform"], per_family=4)) == 0
    assert main(build_tries(data / "soft.parquet", smollm2_dir, data / "tries.parquet")) == 0
    command = _train_command(
        smollm2_dir,
        data,
        tmp_path,
        method="soft",
        soft_epochs=2,
        global_batch_size=4,
        per_device_batch_size=4,
        learning_rate=2e-3,
        lora_r=8,
        warmup_ratio=0.0,
    )
    run_checked(command)
    log = pd.read_parquet(tmp_path / "log.parquet")
    assert len(log) == 4 and (log.tokens > 0).all() and log.lr.iloc[0] > log.lr.iloc[-1]

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    table = pd.read_parquet(data / "soft.parquet").drop_duplicates("prompt_id")
    rendered = prompt_ids(tokenizer, list(table.prompt.astype(str)), SMOL_CHAT)
    items = epoch_items(SoftTargets(data / "tries.parquet"), list(table.family.astype(str)), 4, 4, seed=99, epoch=0)
    batch = pack(items, rendered)
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    with torch.no_grad():
        before = example_losses(base, batch).mean().item()
        tuned = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
        after = example_losses(tuned, batch).mean().item()
    assert after < 0.8 * before, (before, after)
    info = json.loads((tmp_path / "adapter" / "calft_provenance.json").read_text())
    assert info["artifact"] == "adapter" and info["config"]["method"] == "soft"
    assert info["config"]["training"]["learning_rate"] == 2e-3


def test_bf16_base_keeps_float32_lora_parameters_and_float32_loss(tiny_model_dir, micro_data, tmp_path):
    from calft.training.loop import Run, lora_model

    run = Run(
        method="hard",
        model_dir=tiny_model_dir,
        model=ModelEntry.from_dict(SMOL | {"dtype": "bfloat16"}),
        settings=Training.from_dict({}),
        targets=micro_data / "hard.parquet",
        tries=None,
        adapter=tmp_path / "a",
        train_log=tmp_path / "l.parquet",
        checkpoints=tmp_path / "c",
    )
    model = lora_model(run, torch.device("cpu"))
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora)
    assert all(p.dtype == torch.bfloat16 for p in frozen)
    items, rendered, _ = items_and_prompts(tiny_model_dir, micro_data, "hard", 4)
    losses = example_losses(model, pack(items[:1], rendered))
    assert losses.dtype == torch.float32 and torch.isfinite(losses).all()


def test_soft_training_refuses_tries_of_another_tokenizer_or_other_prompts(
    tiny_model_dir, merging_tokenizer_dir, micro_data, tmp_path, capsys
):
    other = tmp_path / "other.parquet"
    assert main(build_tries(micro_data / "soft.parquet", merging_tokenizer_dir, other, "<|end|>")) == 0
    command = _train_command(tiny_model_dir, micro_data, tmp_path / "out", method="soft")[3:]
    tries = command.index("--tries") + 1
    assert main([*command[:tries], str(other), *command[tries + 1 :]]) == 2
    assert "was built for another tokenizer or terminator" in capsys.readouterr().err
    targets = command.index("--targets") + 1
    assert main([*command[:targets], str(micro_data / "hard.parquet"), *command[targets + 1 :]]) == 2
    assert "do not belong together" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_reference_order_is_balanced_only_at_the_start_of_an_epoch():
    from calft.training.balance import reference_order

    sizes = {"a": 121, "b": 13, "c": 125, "d": 44, "e": 25, "f": 12}
    families = np.repeat(list(sizes), list(sizes.values()))
    order = reference_order(families, seed=11, epoch=0)
    assert sorted(order) == list(range(len(families)))
    ordered = families[order]
    assert set(ordered[:6]) == set(sizes)  # the first round has one item of every family
    assert set(ordered[-4:]) == {"c"}  # the tail: the largest family alone
    assert not np.array_equal(order, reference_order(families, 11, 1))
