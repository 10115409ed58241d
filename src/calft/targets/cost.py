"""What the output space and the token trie cost to build, per prompt, over a precision grid (the
paper's Table 24), measured two ways on the same prompts and tokenizer: the reference's algorithm
(`paper_construction`, what the paper measured) and calft's. Wall time and tracemalloc peak of each
construction, one prompt at a time, as a researcher choosing the decimals and bin cap would want.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd

from calft.targets import paper_construction
from calft.targets.discretize import discretize_laws, format_canonical
from calft.targets.tries import build_trie_forest


def _measured(build):
    """build()'s result, its wall seconds and its tracemalloc peak in bytes (tracing on)."""
    tracemalloc.reset_peak()
    start_bytes = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    result = build()
    seconds = time.perf_counter() - start
    return result, seconds, tracemalloc.get_traced_memory()[1] - start_bytes


def _calft(prompt, decimals: int, max_bins: int, tokenizer, terminator_id: int):
    def space():
        (chunk,) = discretize_laws([prompt], decimals, max_bins)
        return chunk, format_canonical(chunk.grid_index, chunk.decimals)

    def trie():
        sequences = tokenizer.encode(*canonical, terminator_id)
        return build_trie_forest(np.zeros(len(chunk.mass), np.int32), chunk.bin, sequences, chunk.mass)

    (chunk, canonical), *space_cost = _measured(space)
    built, *trie_cost = _measured(trie)
    return len(chunk.mass), len(built.node), space_cost, trie_cost


def _reference(prompt, decimals: int, max_bins: int, tokenizer, terminator_id: int):
    (strings, masses), *space_cost = _measured(lambda: paper_construction.output_space(prompt, decimals, max_bins))
    built, *trie_cost = _measured(
        lambda: paper_construction.trie(strings, masses, tokenizer.encode_text, terminator_id)
    )
    return len(strings), len(built), space_cost, trie_cost


def memory_mb(prompts: list, decimals: list[int]) -> int:
    """Memory for measuring `prompts` at these decimals: the reference's construction holds the
    largest prompt's whole decimal grid as float64, twice for headroom, plus 2 GB."""
    largest = max(paper_construction.grid_points(prompt, max(decimals)) for prompt in prompts)
    return 2000 + -(-16 * largest // 10**6)


def construction_cost(prompts: list, grid: list[tuple[int, int]], tokenizer, terminator_id: int) -> pd.DataFrame:
    """One row per (algorithm, decimals, max_bins, prompt): the output space's size, the trie's node
    count (calft: every node; reference: every prefix with children) and each construction's seconds
    and peak traced bytes. `tokenizer` is a CanonicalTokenizer or a CharacterTokenizer."""
    builders = {"reference": _reference, "calft": _calft}
    for build in builders.values():  # warm-up: lazy imports and caches are not a prompt's cost
        build(prompts[0], 1, 2, tokenizer, terminator_id)
    rows = []
    tracemalloc.start()
    try:
        for decimals, max_bins in grid:
            for prompt in prompts:
                for algorithm, build in builders.items():
                    outputs, nodes, (space_seconds, space_peak), (trie_seconds, trie_peak) = build(
                        prompt, decimals, max_bins, tokenizer, terminator_id
                    )
                    rows.append(
                        {
                            "algorithm": algorithm,
                            "decimals": decimals,
                            "max_bins": max_bins,
                            "prompt_id": prompt.prompt_id,
                            "family": prompt.family,
                            "outputs": outputs,
                            "trie_nodes": nodes,
                            "space_seconds": space_seconds,
                            "space_peak_bytes": space_peak,
                            "trie_seconds": trie_seconds,
                            "trie_peak_bytes": trie_peak,
                        }
                    )
    finally:
        tracemalloc.stop()
    return pd.DataFrame(rows)
