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

from calft.errors import UserError

PAD = -1


@dataclass
class Trie:
    """Flat node table for a run of prompts, one row per node, ordered by depth, then prompt."""

    prompt_index: np.ndarray  # int32
    node: np.ndarray  # int32, id within the prompt's trie, root = 0
    parent: np.ndarray  # int32, -1 for the root
    depth: np.ndarray  # int16, prefix length in tokens
    token: np.ndarray  # int32, token leading from the parent, -1 for the root
    mass: np.ndarray  # float64, prefix mass
    q: np.ndarray  # float64, mass / parent mass (1 for the root)
    canonical_index: np.ndarray  # int32, row within the prompt's output space for leaves, else -1


def _ranked(sequences: np.ndarray) -> tuple[np.ndarray, int]:
    """Tokens replaced by their rank among the distinct tokens present (PAD ranks 0), which keeps
    their order; canonical strings use a few dozen distinct tokens, so ranks fit in a byte."""
    present = np.zeros(int(sequences.max(initial=0)) + 2, dtype=bool)  # PAD (-1) lands on the last slot
    present[sequences] = True
    rank = np.cumsum(present[:-1])  # token t -> 1 + number of smaller tokens present
    distinct = int(rank[-1]) + 1
    table = np.append(rank, 0).astype(np.uint8 if distinct <= 256 else np.int32)
    return table[sequences], distinct


def _sort_order(prompt_index: np.ndarray, ranked: np.ndarray, distinct: int) -> np.ndarray:
    """Row order by (prompt, token sequence): the fields are packed into as few uint64 keys as fit."""
    fields = [(prompt_index, max(1, int(prompt_index.max(initial=0)).bit_length()))]
    fields += [(ranked[:, column], max(1, (distinct - 1).bit_length())) for column in range(ranked.shape[1])]
    keys, used = [], 64
    for values, bits in fields:
        if used + bits > 64:
            keys.append(np.zeros(len(prompt_index), dtype=np.uint64))
            used = 0
        keys[-1] <<= np.uint64(bits)
        keys[-1] |= values.astype(np.uint64)
        used += bits
    if len(keys) == 1:
        return np.argsort(keys[0], kind="stable")  # rows arrive in long sorted runs
    return np.lexsort(keys[::-1])


def build_trie_forest(
    prompt_index: np.ndarray,
    canonical_index: np.ndarray,
    sequences: np.ndarray,
    mass: np.ndarray,
) -> Trie:
    """Build the tries of all prompts at once.

    Each row is one canonical output: its prompt, its position in the prompt's output space, its
    token sequence (a row of the right-padded matrix `sequences`, PAD = -1, terminator included)
    and its mass. Sequences of one prompt must be distinct and prefix-free, which a terminator
    appended to every sequence guarantees. Vectorized: one pass of array operations per depth, no
    loop over rows or nodes, hence longer than a function that loops.
    """
    ranked, distinct = _ranked(sequences)
    order = _sort_order(prompt_index, ranked, distinct)
    sequences, ranked, prompt_index = sequences[order], ranked[order], prompt_index[order]
    mass, canonical_index = mass[order], canonical_index[order]
    lengths = (ranked != 0).sum(axis=1)
    rows, width = sequences.shape

    # first_diff[i]: first column where row i differs from row i-1; -1 where row i starts a prompt.
    differs = ranked[1:] != ranked[:-1]
    first_diff = np.full(rows, -1, dtype=np.int64)
    first_diff[1:] = np.where(differs.any(axis=1), differs.argmax(axis=1), width)
    first_diff[1:][prompt_index[1:] != prompt_index[:-1]] = -1
    if rows and (first_diff[1:] == width).any():
        raise UserError("two canonical outputs of one prompt tokenize to the same sequence")
    if (first_diff[1:] >= np.minimum(lengths[1:], lengths[:-1]))[first_diff[1:] >= 0].any():
        raise UserError("token sequences are not prefix-free; is the terminator appended?")

    # Depth by depth: a row opens a node at depth t when it is alive there and differs from the
    # previous row before column t. Nodes of one depth come out ordered by (prompt, sequence).
    prompts = int(prompt_index.max(initial=-1)) + 1
    levels = []
    live_mass = np.empty_like(mass)
    for depth in range(width + 1):
        alive = lengths >= depth
        new = alive & (first_diff < depth)
        group = np.cumsum(new, dtype=np.int32) - 1  # node at this depth of every alive row
        creators = np.flatnonzero(new)
        # a node's rows run from its creator to the next creator; rows already ended weigh nothing
        np.multiply(mass, alive, out=live_mass)
        level_mass = np.add.reduceat(live_mass, creators)
        levels.append((depth, creators, group, level_mass))

    # Rows come out depth-major, each depth a contiguous block ordered by (prompt, sequence); local
    # ids number each prompt's nodes by (depth, sequence), from counts alone: no sort over nodes.
    counts = np.stack([np.bincount(prompt_index[creators], minlength=prompts) for _, creators, _, _ in levels], axis=1)
    depth_offset = np.cumsum(counts, axis=1) - counts  # first local id of each (prompt, depth)
    total = int(counts.sum())
    out = Trie(
        prompt_index=np.empty(total, dtype=np.int32),
        node=np.empty(total, dtype=np.int32),
        parent=np.empty(total, dtype=np.int32),
        depth=np.empty(total, dtype=np.int16),
        token=np.empty(total, dtype=np.int32),
        mass=np.empty(total),
        q=np.empty(total),
        canonical_index=np.empty(total, dtype=np.int32),
    )
    start = 0
    previous_local = previous_mass = previous_group = None  # the nodes one depth up
    for depth, creators, group, level_mass in levels:
        block = slice(start, start + len(creators))
        start += len(creators)
        prompt = prompt_index[creators]
        level_first = np.cumsum(counts[:, depth]) - counts[:, depth]  # first row of each prompt in the block
        local = (depth_offset[:, depth] - level_first)[prompt] + np.arange(len(creators))
        out.prompt_index[block] = prompt
        out.node[block] = local
        out.depth[block] = depth
        out.mass[block] = level_mass
        out.canonical_index[block] = np.where(lengths[creators] == depth, canonical_index[creators], -1)
        if depth:
            parent = previous_group[creators]
            out.parent[block] = previous_local[parent]
            out.token[block] = sequences[creators, depth - 1]
            out.q[block] = level_mass / previous_mass[parent]
        else:
            out.parent[block], out.token[block], out.q[block] = -1, PAD, 1.0
        previous_local, previous_mass, previous_group = local, level_mass, group
    return out
