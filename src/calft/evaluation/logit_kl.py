"""Logit-level KL against the evaluation tries (paper §4.2; reference spec §8.2).

The per-path score is the training loss of a trie path (mean over its L+1 prefixes of
KL(q || softmax(z)), tau 1, q smoothed at 1e-8). Two estimates per prompt:
- `mc`: the paper's mean over a few sampled paths (4), one tree-packed forward;
- `exact`: its expectation over all paths, E_y[loss(y)] = sum over inner nodes n of KL(n) * W(n),
  with W(n) the sum of P(y) / (L_y + 1) over the outputs y below n. The whole trie is forwarded as
  token trees (chunks of nodes in depth-first order, each with its ancestors and the prompt), so
  every prefix is computed once instead of one forward per path.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from calft.modeling.attention import tree_attention_mask
from calft.modeling.generation import sample_seed
from calft.modeling.trees import Item, SoftTargets, example_losses, pack, prefix_kl, tree_attention
from calft.progress import progress

TAU, EPSILON = 1.0, 1e-8
log = logging.getLogger(__name__).info


def monte_carlo(
    model, targets: SoftTargets, prompt: int, prompt_ids: list[int], prompt_id: str, paths: int, seed: int
) -> float:
    """Mean loss over `paths` trie paths drawn with per-prompt seeds."""
    continuations = [
        targets.continuation(prompt, np.random.default_rng(sample_seed(seed, prompt_id, j))) for j in range(paths)
    ]
    rendered = {prompt: prompt_ids}
    with torch.no_grad():
        return float(example_losses(model, pack([Item(prompt, continuations)], rendered), TAU, EPSILON).mean())


def _preorder(targets: SoftTargets, root: int) -> list[int]:
    order, stack = [], [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(targets.children(node).tolist()))
    return order


def exact(model, targets: SoftTargets, prompt: int, prompt_ids: list[int], chunk_nodes: int = 2048) -> float:
    """The expected per-path loss over every path of the prompt's trie."""
    start, end = targets.node_start[prompt], targets.node_start[prompt + 1]
    # W(n): sum of P(y) / (L_y + 1) over the leaves below n (a leaf's depth is L_y + 1)
    weight = np.where(
        targets.is_leaf[start:end], targets.mass[start:end] / np.maximum(targets.depth[start:end], 1), 0.0
    )
    local_parent = targets.parent[start:end] - start
    local_depth = targets.depth[start:end]
    for depth in range(int(local_depth.max()), 0, -1):
        at = np.flatnonzero(local_depth == depth)
        np.add.at(weight, local_parent[at], weight[at])
    inner = [n for n in _preorder(targets, start) if targets.child_count[n] > 0]
    total = 0.0
    for chunk_start in range(0, len(inner), chunk_nodes):
        chunk = inner[chunk_start : chunk_start + chunk_nodes]
        total += float(np.sum(_node_kl(model, targets, start, chunk, prompt_ids) * weight[np.array(chunk) - start]))
    return total


def _node_kl(model, targets: SoftTargets, root: int, chunk: list[int], prompt_ids: list[int]) -> np.ndarray:
    """KL(q || model) at each node of `chunk`, from one forward over the prompt and the chunk's nodes
    with their ancestors, packed as a token tree."""
    device = next(model.parameters()).device
    members = set(chunk)
    for node in chunk:  # add the ancestors the chunk lacks
        parent = targets.parent[node]
        while parent >= 0 and parent not in members:
            members.add(parent)
            parent = targets.parent[parent]
    members.discard(root)  # the root is the prompt's last token
    ordered = sorted(members, key=lambda n: (targets.depth[n], n))  # parents before children
    index = {node: len(prompt_ids) + i for i, node in enumerate(ordered)}
    index[root] = len(prompt_ids) - 1
    parents = list(range(-1, len(prompt_ids) - 1)) + [index[targets.parent[n]] for n in ordered]
    tokens = list(prompt_ids) + [int(targets.token[n]) for n in ordered]
    positions = list(range(len(prompt_ids))) + [len(prompt_ids) - 1 + int(targets.depth[n]) for n in ordered]
    position_ids = torch.tensor(positions, device=device)
    children = [targets.children(n) for n in chunk]
    widest = max(len(c) for c in children)
    ids = torch.zeros((len(chunk), widest), dtype=torch.long)
    probs = torch.zeros((len(chunk), widest))
    for row, c in enumerate(children):
        ids[row, : len(c)] = torch.as_tensor(targets.token[c])
        probs[row, : len(c)] = torch.as_tensor(targets.q[c], dtype=torch.float32)
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor([tokens], device=device),
            position_ids=position_ids[None],
            attention_mask=tree_attention_mask(
                model, tree_attention(torch.tensor(parents, device=device), max(positions)), position_ids
            ),
            logits_to_keep=torch.tensor([index[n] for n in chunk], device=device),
            use_cache=False,
        ).logits[0]
        return prefix_kl(logits, ids.to(device), probs.to(device), TAU, EPSILON).double().cpu().numpy()


def logit_kl_table(
    model,
    targets: SoftTargets,
    prompts: pd.DataFrame,
    rendered: list[list[int]],
    paths: int,
    seed: int,
    with_exact: bool,
) -> pd.DataFrame:
    """One row per prompt: prompt_id, family, split, logit_kl (the paper's Monte-Carlo estimate) and,
    when asked, logit_kl_exact."""
    rows = []
    index = {prompt_id: i for i, prompt_id in enumerate(targets.prompt_ids)}
    for prompt, ids in progress(
        zip(prompts.itertuples(), rendered), total=len(rendered), label="logit KL", unit="prompt"
    ):
        i = index[prompt.prompt_id]
        row = {
            "prompt_id": prompt.prompt_id,
            "family": prompt.family,
            "split": prompt.split,
            "logit_kl": monte_carlo(model, targets, i, ids, prompt.prompt_id, paths, seed),
            "logit_kl_exact": exact(model, targets, i, ids) if with_exact else float("nan"),
        }
        rows.append(row)
        log(f"  {prompt.prompt_id}: logit KL {row['logit_kl']:.4f} (exact {row['logit_kl_exact']:.4f})")
    return pd.DataFrame(rows)
