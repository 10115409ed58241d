"""Training examples for soft- and hard-target Calibration Fine-Tuning (reference spec §5.2, §6).

No torch. An item is one prompt with a group of continuations y ~ P_Y that will share one prompt
forward. Every continuation carries its input tokens t_1..t_L (the terminator is a target, never
an input) and a sparse target distribution for each of its L+1 prefixes:
- soft: q(. | prefix) from the 1001-bin trie (the children of each node on the sampled path);
- hard: the next token of the sampled completion with probability 1 (cross-entropy).
Draws depend only on (seed, epoch, item), never on batch size, world size or resumption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calft import artifacts
from calft.errors import UserError
from calft.training.balance import balanced_order


@dataclass
class Continuation:
    tokens: np.ndarray  # int64 (L,): input tokens after the prompt
    target_ids: list[np.ndarray]  # L+1 arrays of candidate next tokens
    target_probs: list[np.ndarray]  # L+1 arrays of their target probabilities


@dataclass
class Item:
    prompt: int  # index into the prompt list
    continuations: list[Continuation]


def _prompt_order(table) -> tuple[list[str], np.ndarray]:
    """(prompt ids in first-appearance order, prompt index of every row) of a table's prompt_id."""
    column = table.column("prompt_id").cast("string").to_numpy(zero_copy_only=False)
    labels, first, index = np.unique(column, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return [str(labels[i]) for i in order], rank[index]


class SoftTargets:
    """The tries of the training prompts, with a path sampler."""

    def __init__(self, tries_path):
        self.path = tries_path
        table = artifacts.read_table(tries_path, "tries", artifacts.TRIE_COLUMNS)
        self.prompt_ids, prompt = _prompt_order(table)
        order = np.lexsort((table.column("node").to_numpy(), prompt))
        self.prompt = prompt[order]
        self.node_start = np.searchsorted(self.prompt, np.arange(len(self.prompt_ids) + 1))
        node_start = self.node_start[:-1]
        parent = table.column("parent").to_numpy()[order].astype(np.int64)
        self.parent = np.where(parent >= 0, parent + node_start[self.prompt], -1)
        self.token = table.column("token").to_numpy()[order].astype(np.int64)
        self.q = table.column("q").to_numpy()[order]
        self.depth = table.column("depth").to_numpy()[order].astype(np.int64)
        self.mass = table.column("mass").to_numpy()[order]
        self.is_leaf = table.column("canonical_index").to_numpy()[order] >= 0
        # children of a node are contiguous rows, ordered by parent
        has_parent = np.flatnonzero(self.parent >= 0)
        self.child_count = np.bincount(self.parent[has_parent], minlength=len(self.parent))
        self.first_child = np.zeros(len(self.parent), dtype=np.int64)
        starts = np.cumsum(self.child_count) - self.child_count
        inner = self.child_count > 0
        self.first_child[inner] = has_parent[starts[inner]]
        leaves = np.flatnonzero(self.is_leaf)
        self.leaves_of = np.split(leaves, np.searchsorted(self.prompt[leaves], np.arange(1, len(self.prompt_ids))))
        self.leaf_cdf = [np.cumsum(self.mass[rows]) / self.mass[rows].sum() for rows in self.leaves_of]

    def check_tokens(self, vocabulary_size: int) -> None:
        """Every token of the tries is a token of the model."""
        if self.token.max() >= vocabulary_size:
            raise UserError(f"{self.path} holds token {self.token.max()}, beyond the model's {vocabulary_size} tokens")

    def children(self, node: int) -> np.ndarray:
        return np.arange(self.first_child[node], self.first_child[node] + self.child_count[node])

    def continuation(self, prompt: int, rng: np.random.Generator) -> Continuation:
        leaf = self.leaves_of[prompt][min(np.searchsorted(self.leaf_cdf[prompt], rng.random(), side="right"),
                                          len(self.leaves_of[prompt]) - 1)]
        path = [leaf]
        while self.parent[path[-1]] >= 0:
            path.append(self.parent[path[-1]])
        path = path[::-1]  # root, ..., leaf (the leaf is reached by the terminator)
        inner = path[:-1]
        children = [self.children(n) for n in inner]
        return Continuation(
            tokens=self.token[path[1:-1]],
            target_ids=[self.token[c] for c in children],
            target_probs=[self.q[c] for c in children],
        )


class HardTargets:
    """The canonical outputs of the training prompts (hard-target bins), with a completion sampler."""

    def __init__(self, targets_path, tokenizer, terminator: int):
        table = artifacts.read_table(targets_path, "targets", ["prompt_id", "canonical", "mass"])
        self.prompt_ids, prompt = _prompt_order(table)
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


def epoch_items(targets, families: list[str], samples_per_prompt: int, group_size: int, seed: int, epoch: int,
                order=balanced_order) -> list[Item]:
    """One epoch: every prompt `samples_per_prompt` times, in groups of `group_size` continuations
    sharing a prompt, in a family-balanced `order` (calft.training.balance), each group drawn from
    its own seeded generator."""
    if samples_per_prompt % group_size:
        raise ValueError(f"samples per prompt ({samples_per_prompt}) must be a multiple of the group size ({group_size})")
    groups = np.repeat(np.arange(len(families)), samples_per_prompt // group_size)
    permutation = order(np.asarray(families)[groups], seed, epoch)
    items = []
    for position, prompt in enumerate(groups[permutation]):
        rng = np.random.default_rng([seed, epoch, position])
        items.append(Item(int(prompt), [targets.continuation(int(prompt), rng) for _ in range(group_size)]))
    return items


def batches(items: list[Item], items_per_batch: int) -> list[list[Item]]:
    return [items[i : i + items_per_batch] for i in range(0, len(items), items_per_batch)]
