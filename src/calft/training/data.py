"""Training examples for soft- and hard-target Calibration Fine-Tuning (reference spec §5.2, §6).

An epoch is a list of items (calft.modeling.trees): prompts with groups of continuations y ~ P_Y,
whose targets are
- soft: q(. | prefix) from the soft-bin trie (the children of each node on the sampled path);
- hard: the next token of the sampled completion with probability 1 (cross-entropy).
Draws depend only on (seed, epoch, item), never on batch size, world size or resumption.
"""

from __future__ import annotations

import numpy as np

from calft import artifacts
from calft.modeling.trees import Continuation, Item, prompt_order
from calft.training.balance import balanced_order


class HardTargets:
    """The canonical outputs of the training prompts (hard-target bins), with a completion sampler."""

    def __init__(self, targets_path, tokenizer, terminator: int):
        table = artifacts.read_table(targets_path, "targets", ["prompt_id", "canonical", "mass"])
        self.prompt_ids, prompt = prompt_order(table)
        order = np.argsort(prompt, kind="stable")
        offsets, data = artifacts.string_buffers(table.column("canonical").take(order))
        self.offsets, self.data = offsets, data
        starts = np.searchsorted(prompt[order], np.arange(len(self.prompt_ids) + 1))
        mass = table.column("mass").to_numpy()[order]
        self.rows = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:])]
        self.cdf = [np.cumsum(mass[r]) / mass[r].sum() for r in self.rows]
        self.tokenizer, self.terminator = tokenizer, terminator

    def text(self, row: int) -> str:
        return self.data[self.offsets[row] : self.offsets[row + 1]].tobytes().decode()

    def continuation(self, prompt: int, rng: np.random.Generator) -> Continuation:
        rows = self.rows[prompt]
        row = rows[min(np.searchsorted(self.cdf[prompt], rng.random(), side="right"), len(rows) - 1)]
        completion = self.tokenizer(self.text(row), add_special_tokens=False).input_ids + [self.terminator]
        return Continuation(
            tokens=np.asarray(completion[:-1], dtype=np.int64),
            target_ids=[np.array([t]) for t in completion],
            target_probs=[np.ones(1) for _ in completion],
        )


def epoch_items(
    targets, families: list[str], samples_per_prompt: int, group_size: int, seed: int, epoch: int, order=balanced_order
) -> list[Item]:
    """One epoch: every prompt `samples_per_prompt` times, in groups of `group_size` continuations
    sharing a prompt, in a family-balanced `order` (calft.training.balance), each group drawn from
    its own seeded generator."""
    if samples_per_prompt % group_size:
        raise ValueError(
            f"samples per prompt ({samples_per_prompt}) must be a multiple of the group size ({group_size})"
        )
    groups = np.repeat(np.arange(len(families)), samples_per_prompt // group_size)
    permutation = order(np.asarray(families)[groups], seed, epoch)
    items = []
    for position, prompt in enumerate(groups[permutation]):
        rng = np.random.default_rng([seed, epoch, position])
        items.append(Item(int(prompt), [targets.continuation(int(prompt), rng) for _ in range(group_size)]))
    return items


def batches(items: list[Item], items_per_batch: int) -> list[list[Item]]:
    return [items[i : i + items_per_batch] for i in range(0, len(items), items_per_batch)]
