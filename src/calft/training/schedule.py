"""How many optimizer steps a training run takes and how many of them warm up (reference spec §7.1:
the paper's 189 soft and 1988 hard steps, 5 and 59 of them warm-up). Pure Python."""

from __future__ import annotations

import math

from calft.training.settings import MethodSchedule


def steps_per_epoch(prompts: int, schedule: MethodSchedule, global_batch_size: int) -> int:
    """Optimizer steps of one epoch: its items (groups of continuations of one prompt) in global
    batches, the last one possibly short."""
    items_per_epoch = prompts * schedule.draws_per_prompt // schedule.group_size
    return math.ceil(items_per_epoch / (global_batch_size // schedule.group_size))


def warmup_steps(warmup_ratio: float, total_steps: int) -> int:
    """The linear warm-up's steps: floor(ratio x total steps), as the reference's trainer rounds."""
    return math.floor(warmup_ratio * total_steps)
