"""Token trees, shared by training and evaluation: the tries of a prompt set with their next-token
targets, and the calibration loss on tree-packed batches (paper eqs. 1-4; reference spec §5.2, §6).

An item is one prompt with a group of continuations that share one prompt forward. Every
continuation carries its input tokens t_1..t_L (the terminator is a target, never an input) and a
sparse target distribution for each of its L+1 prefixes.

A micro-batch is packed as one token tree: the sequences prompt + continuation of all its items
are inserted into a trie, so every shared prefix is computed once. Items share their chat
template's opening (system prompt, "Generate exactly ONE random number from a"), the continuations
of one item share its whole prompt, and continuations share their own common digits. The tree is
one row whose attention mask lets each token see exactly its ancestors and whose position ids are
token depths, so each sequence is computed exactly as if it were alone. Logits are taken only at
the nodes that carry targets (`logits_to_keep` with indices), never at every prompt position.

Soft and hard targets share one loss: the forward KL(q || softmax(z / tau)) at each of the L+1
prefixes, averaged over the prefixes of a continuation; a hard target is q = one-hot, for which it
is the cross-entropy. Losses are computed in float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from calft import artifacts
from calft.errors import UserError
from calft.modeling.attention import tree_attention_mask


@dataclass
class Continuation:
    tokens: np.ndarray  # int64 (L,): input tokens after the prompt
    target_ids: list[np.ndarray]  # L+1 arrays of candidate next tokens
    target_probs: list[np.ndarray]  # L+1 arrays of their target probabilities


@dataclass
class Item:
    prompt: int  # index into the prompt list
    continuations: list[Continuation]


def prompt_order(table) -> tuple[list[str], np.ndarray]:
    """(prompt ids in first-appearance order, prompt index of every row) of a table's prompt_id."""
    column = table.column("prompt_id").cast("string").to_numpy(zero_copy_only=False)
    labels, first, index = np.unique(column, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return [str(labels[i]) for i in order], rank[index]


class SoftTargets:
    """The token tries of a prompt set (a `tries` artifact): every node's next-token targets q, and
    a sampler of root-to-leaf paths by mass. Training draws its soft targets from it; the logit KL
    evaluates a model against it."""

    def __init__(self, tries_path):
        self.path = tries_path
        table = artifacts.read_table(tries_path, "tries", artifacts.TRIE_COLUMNS)
        self.prompt_ids, prompt = prompt_order(table)
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
        leaf = self.leaves_of[prompt][
            min(np.searchsorted(self.leaf_cdf[prompt], rng.random(), side="right"), len(self.leaves_of[prompt]) - 1)
        ]
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


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # (1, T) the tree's tokens, parents before children
    position_ids: torch.Tensor  # (1, T) depth of each token in its sequence
    parents: torch.Tensor  # (T,) each token's parent in the tree, -1 for the root
    keep: torch.Tensor  # (K,) nodes whose logits are needed
    target_col: torch.Tensor  # (N,) index into `keep` of each target
    target_ids: torch.Tensor  # (N, C) candidate tokens, padded with 0
    target_probs: torch.Tensor  # (N, C) their probabilities, padded with 0
    target_example: torch.Tensor  # (N,) continuation each target belongs to
    num_continuations: int
    tokens: int  # tokens in the tree (computed once each)
    depth: int  # the deepest token's position

    def to(self, device: torch.device) -> PackedBatch:
        """The batch on `device`: every tensor copied before the forward, from pinned memory and without
        waiting on an accelerator (the packing thread may pin it in advance)."""
        if device.type == "cpu":
            return self
        moved = {
            name: value.pin_memory().to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for name, value in vars(self).items()
        }
        return PackedBatch(**moved)


def tree_attention(parents: torch.Tensor, depth: int) -> torch.Tensor:
    """(T, T) bool: node i may attend to node j when j is i or one of its ancestors, built where
    `parents` lives (-1 marks a root). Pointer doubling: after k rounds each row holds the ancestors
    within 2^k steps, so a tree of depth D (the most edges from a node to its root, known where the
    tree was built) takes log2(D) whole-matrix operations and never asks the device when to stop."""
    size = len(parents)
    nodes = torch.arange(size, device=parents.device)
    jump = torch.where(parents < 0, nodes, parents)  # a root is its own parent
    ancestors = torch.zeros((size, size), dtype=torch.bool, device=parents.device)
    ancestors[nodes, nodes] = True
    ancestors[nodes, jump] = True
    reach = 1
    while reach < depth:
        ancestors |= ancestors[jump]
        jump = jump[jump]
        reach *= 2
    return ancestors


def pack(items: list[Item], prompt_ids: Mapping[int, Sequence[int]] | Sequence[Sequence[int]]) -> PackedBatch:
    """Tree-pack the items (each a prompt with its continuations) of one micro-batch; `prompt_ids`
    holds the rendered prompt of every prompt index the items name."""
    children: dict[tuple[int, int], int] = {}  # (parent node, token) -> node
    tokens, parents, depths = [], [], []
    targets = []  # (node, ids, probs, continuation)

    def walk(sequence) -> list[int]:
        node, path = -1, []
        for depth, token in enumerate(sequence):
            key = (node, int(token))
            if key not in children:
                children[key] = len(tokens)
                tokens.append(int(token))
                parents.append(node)
                depths.append(depth)
            node = children[key]
            path.append(node)
        return path

    continuation = 0
    for item in items:
        prompt = prompt_ids[item.prompt]
        for cont in item.continuations:
            path = walk(list(prompt) + [int(t) for t in cont.tokens])
            for k, (ids, probs) in enumerate(zip(cont.target_ids, cont.target_probs)):
                targets.append((path[len(prompt) - 1 + k], ids, probs, continuation))
            continuation += 1
    size = len(tokens)
    keep, target_col = torch.unique(torch.tensor([t[0] for t in targets]), return_inverse=True)
    widest = max(len(t[1]) for t in targets)
    target_ids = torch.zeros((len(targets), widest), dtype=torch.long)
    target_probs = torch.zeros((len(targets), widest), dtype=torch.float32)
    for i, (_, ids, probs, _) in enumerate(targets):
        target_ids[i, : len(ids)] = torch.as_tensor(ids)
        target_probs[i, : len(probs)] = torch.as_tensor(probs, dtype=torch.float32)
    return PackedBatch(
        input_ids=torch.tensor([tokens]),
        position_ids=torch.tensor([depths]),
        parents=torch.tensor(parents),
        keep=keep,
        target_col=target_col,
        target_ids=target_ids,
        target_probs=target_probs,
        target_example=torch.tensor([t[3] for t in targets]),
        num_continuations=continuation,
        tokens=size,
        depth=max(depths),
    )


def prefix_kl(
    logits: torch.Tensor, target_ids: torch.Tensor, target_probs: torch.Tensor, tau: float = 1.0, epsilon: float = 0.0
) -> torch.Tensor:
    """KL(q~ || softmax(logits / tau)) per row, q~ = max(q, epsilon) renormalized over the candidates.

    logits (N, V); target_ids, target_probs (N, C) with zero-probability padding (never smoothed)."""
    log_pi = torch.log_softmax(logits.float() / tau, dim=-1).gather(-1, target_ids)
    present = target_probs > 0
    q = torch.where(present, target_probs.clamp_min(epsilon), torch.zeros_like(target_probs))
    q = q / q.sum(dim=-1, keepdim=True)
    terms = torch.where(present, q * (torch.log(q.clamp_min(1e-45)) - log_pi), torch.zeros_like(q))
    return terms.sum(dim=-1)


def example_losses(model, batch: PackedBatch, tau: float = 1.0, epsilon: float = 0.0) -> torch.Tensor:
    """Per-continuation loss: the mean over its prefixes of the prefix KL (one forward pass)."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=tree_attention_mask(model, tree_attention(batch.parents, batch.depth), batch.position_ids[0]),
        position_ids=batch.position_ids,
        logits_to_keep=batch.keep,
        use_cache=False,
    ).logits
    selected = logits[0, batch.target_col]
    per_prefix = prefix_kl(selected, batch.target_ids, batch.target_probs, tau, epsilon)
    example = batch.target_example
    totals = torch.zeros(batch.num_continuations, device=device).index_add(0, example, per_prefix)
    counts = torch.zeros(batch.num_continuations, device=device).index_add(0, example, torch.ones_like(per_prefix))
    return totals / counts


def naive_example_losses(
    model,
    items: list[Item],
    prompt_ids: Mapping[int, Sequence[int]] | Sequence[Sequence[int]],
    pad_id: int,
    tau: float = 1.0,
    epsilon: float = 0.0,
) -> torch.Tensor:
    """The same losses computed the straightforward way: every continuation is its own sequence
    (the prompt recomputed each time) and full-vocabulary logits are taken at every position.
    The reference for tests and the benchmark baseline."""
    device = next(model.parameters()).device
    sequences, spans = [], []
    for item in items:
        prompt = list(prompt_ids[item.prompt])
        for cont in item.continuations:
            sequences.append(prompt + [int(t) for t in cont.tokens])
            spans.append((len(prompt), cont))
    length = max(map(len, sequences))
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.tensor(sequence)
        attention[row, : len(sequence)] = 1
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False).logits
    losses = []
    for row, (prompt_length, cont) in enumerate(spans):
        prefix_losses = []
        for k, (ids, probs) in enumerate(zip(cont.target_ids, cont.target_probs)):
            prefix_losses.append(
                prefix_kl(
                    logits[row, prompt_length - 1 + k][None],
                    torch.as_tensor(ids, device=device)[None],
                    torch.as_tensor(probs, dtype=torch.float32, device=device)[None],
                    tau,
                    epsilon,
                )
            )
        losses.append(torch.cat(prefix_losses).mean())
    return torch.stack(losses)
