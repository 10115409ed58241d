"""A token trie computed the slow, obvious way, to check calft.targets.tries against."""

from __future__ import annotations

import numpy as np
import pytest


def pure_python_tries(prompt_index, sequences, mass) -> dict:
    """prompt -> {token prefix: (prefix mass, mass / parent mass)}, by summing over the outputs."""
    masses = {}
    for prompt, sequence, m in zip(prompt_index, sequences, mass):
        tokens = tuple(int(t) for t in sequence if t >= 0)
        for length in range(len(tokens) + 1):
            key = (int(prompt), tokens[:length])
            masses[key] = masses.get(key, 0.0) + m
    tries = {}
    for (prompt, prefix), m in masses.items():
        parent = masses[prompt, prefix[:-1]] if prefix else m
        tries.setdefault(prompt, {})[prefix] = (m, m / parent)
    return tries


def prefix_tables(trie) -> dict:
    tables = {}
    for prompt in np.unique(trie.prompt_index):
        rows = np.flatnonzero(trie.prompt_index == prompt)
        by_node = {int(trie.node[r]): r for r in rows}
        prefixes = {}
        for node in sorted(by_node, key=lambda n: trie.depth[by_node[n]]):
            row = by_node[node]
            prefixes[node] = () if trie.parent[row] < 0 else prefixes[int(trie.parent[row])] + (int(trie.token[row]),)
        tables[int(prompt)] = {
            prefixes[int(trie.node[r])]: (trie.mass[r], trie.q[r], int(trie.canonical_index[r])) for r in rows
        }
    return tables


def padded(outputs: list[tuple[int, ...]]) -> np.ndarray:
    """Token sequences as the right-padded matrix the trie builder takes (PAD = -1)."""
    sequences = np.full((len(outputs), max(map(len, outputs))), -1)
    for i, output in enumerate(outputs):
        sequences[i, : len(output)] = output
    return sequences


def assert_equals_pure_python(trie, prompt_index, sequences, mass) -> None:
    """Every prompt's prefixes, masses and q as summing over its outputs gives them, and each leaf
    naming the row (canonical index = row number) that spells it."""
    expected = pure_python_tries(prompt_index, sequences, mass)
    found = prefix_tables(trie)
    assert found.keys() == expected.keys()
    leaf_of = {(int(p), tuple(int(t) for t in s if t >= 0)): i for i, (p, s) in enumerate(zip(prompt_index, sequences))}
    for prompt, prefixes in expected.items():
        assert found[prompt].keys() == prefixes.keys()
        for prefix, (m, q) in prefixes.items():
            assert found[prompt][prefix][:2] == pytest.approx((m, q), rel=1e-12), (prompt, prefix)
            assert found[prompt][prefix][2] == leaf_of.get((prompt, prefix), -1)
