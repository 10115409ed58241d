"""Known answers for the training schedule (reference spec §7.1): the paper's step counts and warm-up,
and the learning rate at every step against the formula written out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from calft.training.loop import _optimizer
from calft.training.schedule import steps_per_epoch, warmup_steps
from calft.training.settings import Training

PAPER = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.paper.yaml").read_text())


@pytest.mark.parametrize("method, epoch_steps, total, warmup", [("soft", 63, 189, 5), ("hard", 994, 1988, 59)])
def test_the_paper_settings_give_the_papers_step_counts_and_floor_rounded_warmup(method, epoch_steps, total, warmup):
    # soft: ceil(1988 / 32) = 63 steps x 3 epochs; hard: 1988 x 16 draws / 32 = 994 x 2 epochs;
    # warm-up floor(0.03 x 189) = 5 (ceil: 6) and floor(0.03 x 1988) = 59 (ceil: 60)
    training = Training.from_dict(PAPER["training"])
    schedule = training.schedule(method)
    assert steps_per_epoch(1988, schedule, training.global_batch_size) == epoch_steps
    assert epoch_steps * schedule.epochs == total
    assert warmup_steps(training.warmup_ratio, total) == warmup


def test_a_short_last_batch_is_a_step_of_its_own():
    schedule = Training.from_dict({"hard_group_size": 2, "hard_samples_per_prompt_per_epoch": 4}).schedule("hard")
    # 9 prompts x 4 draws / 2 per item = 18 items; 32 / 2 = 16 items a step -> 2 steps (the second holds 2)
    assert steps_per_epoch(9, schedule, 32) == 2
    assert steps_per_epoch(8, schedule, 32) == 1


def test_the_learning_rate_rises_linearly_then_follows_a_half_cosine_to_zero():
    # 20 steps, warm-up floor(0.19 x 20) = 3: lr_t = peak t / 3 for t < 3, then
    # peak (1 + cos(pi (t - 3) / 17)) / 2
    settings = Training.from_dict({"learning_rate": 1e-3, "warmup_ratio": 0.19})
    _, optimizer, scheduler = _optimizer(torch.nn.Linear(2, 2), settings, total_steps=20)
    rates = []
    for _ in range(20):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    expected = [1e-3 * t / 3 if t < 3 else 1e-3 * (1 + math.cos(math.pi * (t - 3) / 17)) / 2 for t in range(20)]
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert optimizer.param_groups[0]["weight_decay"] == settings.weight_decay
