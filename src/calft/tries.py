"""Token tries over canonical outputs and their next-token targets q(v | prefix) (reference spec §5.1).

Pure numpy: no tokenizer, no torch, no I/O. Input is already-tokenized sequences (terminator
appended) with their masses P_Y; many prompts are processed together.

A trie is a table of nodes. Node 0 of each prompt is the root (the empty prefix); every other node
is one distinct non-empty prefix and stores its parent, the token that leads to it, its prefix mass
and q = mass / parent mass, which is the target probability of that token after the parent's prefix.
Nodes are numbered breadth-first (by depth, then by token sequence), so a node's children are
contiguous. Leaves (complete sequences) record the canonical row they spell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD = -1


@dataclass
class Trie:
    """Flat node table for a run of prompts; `prompt_index` orders the rows by prompt."""

    prompt_index: np.ndarray  # int64
    node: np.ndarray  # int32, id within the prompt's trie, root = 0
    parent: np.ndarray  # int32, -1 for the root
    depth: np.ndarray  # int16, prefix length in tokens
    token: np.ndarray  # int32, token leading from the parent, -1 for the root
    mass: np.ndarray  # float64, prefix mass
    q: np.ndarray  # float64, mass / parent mass (1 for the root)
    canonical_index: np.ndarray  # int32, row within the prompt's output space for leaves, else -1


def pad_sequences(tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Ragged sequences (flat tokens, lengths) as a right-padded matrix."""
    width = int(lengths.max()) if len(lengths) else 0
    matrix = np.full((len(lengths), width), PAD, dtype=np.int64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    matrix[mask] = tokens
    return matrix


def _packed_columns(matrix: np.ndarray) -> list[np.ndarray]:
    """The matrix's columns packed several tokens per uint64, preserving lexicographic order."""
    bits = int(matrix.max(initial=0) + 2).bit_length()
    per_key = max(1, 63 // bits)
    shifted = (matrix + 1).astype(np.uint64)  # PAD (-1) sorts first
    keys = []
    for start in range(0, matrix.shape[1], per_key):
        key = np.zeros(len(matrix), dtype=np.uint64)
        for column in range(start, start + per_key):
            key <<= np.uint64(bits)
            if column < matrix.shape[1]:
                key |= shifted[:, column]
        keys.append(key)
    return keys


def build_tries(
    prompt_index: np.ndarray,
    canonical_index: np.ndarray,
    tokens: np.ndarray,
    lengths: np.ndarray,
    mass: np.ndarray,
) -> Trie:
    """Build the tries of all prompts at once.

    Each row is one canonical output: its prompt, its position in the prompt's output space, its
    token sequence (flat `tokens`, `lengths` per row, terminator included) and its mass. Sequences
    of one prompt must be distinct and prefix-free, which a terminator appended to every sequence
    guarantees.
    """
    matrix = pad_sequences(tokens, lengths)
    order = np.lexsort(tuple(reversed(_packed_columns(matrix))) + (prompt_index,))
    matrix, prompt_index = matrix[order], prompt_index[order]
    lengths, mass, canonical_index = lengths[order], mass[order], canonical_index[order]
    rows, width = matrix.shape

    # first_diff[i]: first column where row i differs from row i-1; -1 where row i starts a prompt.
    differs = matrix[1:] != matrix[:-1]
    first_diff = np.full(rows, -1, dtype=np.int64)
    first_diff[1:] = np.where(differs.any(axis=1), differs.argmax(axis=1), width)
    first_diff[1:][prompt_index[1:] != prompt_index[:-1]] = -1
    if rows and (first_diff[1:] == width).any():
        raise ValueError("two canonical outputs of one prompt tokenize to the same sequence")
    if (first_diff[1:] >= np.minimum(lengths[1:], lengths[:-1]))[first_diff[1:] >= 0].any():
        raise ValueError("token sequences are not prefix-free; is the terminator appended?")

    parts = {key: [] for key in ("prompt", "depth", "token", "mass", "parent", "leaf")}
    group_prev = None
    offset = 0
    for depth in range(width + 1):
        alive = lengths >= depth
        new = alive & (first_diff < depth)
        group = np.cumsum(new) - 1  # node index at this depth for every alive row
        creators = np.flatnonzero(new)
        count = len(creators)
        parts["prompt"].append(prompt_index[creators])
        parts["depth"].append(np.full(count, depth, dtype=np.int16))
        parts["token"].append(matrix[creators, depth - 1] if depth else np.full(count, PAD))
        parts["mass"].append(np.bincount(group[alive], weights=mass[alive], minlength=count))
        parts["parent"].append(group_prev[creators] + previous_offset if depth else np.full(count, -1))
        is_leaf = lengths[creators] == depth
        parts["leaf"].append(np.where(is_leaf, canonical_index[creators], -1))
        group_prev, previous_offset = group, offset
        offset += count

    node_prompt = np.concatenate(parts["prompt"])
    parent = np.concatenate(parts["parent"])
    node_mass = np.concatenate(parts["mass"])
    q = np.ones(len(node_mass))
    has_parent = parent >= 0
    q[has_parent] = node_mass[has_parent] / node_mass[parent[has_parent]]

    # Renumber from global depth-major ids to per-prompt ids (prompt, depth, lexicographic).
    by_prompt = np.argsort(node_prompt, kind="stable")
    starts = np.searchsorted(node_prompt[by_prompt], node_prompt[by_prompt], side="left")
    local = np.empty(len(by_prompt), dtype=np.int64)
    local[by_prompt] = np.arange(len(by_prompt)) - starts
    parent_local = np.where(has_parent, local[np.maximum(parent, 0)], -1)
    return Trie(
        prompt_index=node_prompt[by_prompt],
        node=local[by_prompt].astype(np.int32),
        parent=parent_local[by_prompt].astype(np.int32),
        depth=np.concatenate(parts["depth"])[by_prompt],
        token=np.concatenate(parts["token"])[by_prompt].astype(np.int32),
        mass=node_mass[by_prompt],
        q=q[by_prompt],
        canonical_index=np.concatenate(parts["leaf"])[by_prompt].astype(np.int32),
    )
