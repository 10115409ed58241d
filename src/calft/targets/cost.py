"""What the output space and the token trie cost to build, per prompt, over a precision grid (the
paper's Table 24): wall time and tracemalloc peak of each construction, one prompt at a time, as a
researcher choosing the decimals and bin cap would want to know them.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd

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


def _output_space(prompt, decimals: int, max_bins: int):
    (chunk,) = discretize_laws([prompt], decimals, max_bins)
    return chunk, format_canonical(chunk.grid_index, chunk.decimals)


def _trie(chunk, canonical, tokenizer, terminator_id: int):
    offsets, data = canonical
    sequences = tokenizer.encode(offsets, data, terminator_id)
    return build_trie_forest(np.zeros(len(chunk.mass), np.int32), chunk.bin, sequences, chunk.mass)


def construction_cost(prompts: list, grid: list[tuple[int, int]], tokenizer, terminator_id: int) -> pd.DataFrame:
    """One row per (decimals, max_bins, prompt): the output space's size, the trie's node count, and
    each construction's seconds and peak traced bytes. `tokenizer` is a CanonicalTokenizer."""
    rows = []
    chunk, canonical = _output_space(prompts[0], *grid[0])  # warm-up: lazy imports and caches are not a prompt's cost
    _trie(chunk, canonical, tokenizer, terminator_id)
    tracemalloc.start()
    try:
        for decimals, max_bins in grid:
            for prompt in prompts:
                (chunk, canonical), space_seconds, space_peak = _measured(
                    lambda: _output_space(prompt, decimals, max_bins)
                )
                trie, trie_seconds, trie_peak = _measured(lambda: _trie(chunk, canonical, tokenizer, terminator_id))
                rows.append(
                    {
                        "decimals": decimals,
                        "max_bins": max_bins,
                        "prompt_id": prompt.prompt_id,
                        "family": prompt.family,
                        "outputs": len(chunk.mass),
                        "trie_nodes": len(trie.node),
                        "space_seconds": space_seconds,
                        "space_peak_bytes": space_peak,
                        "trie_seconds": trie_seconds,
                        "trie_peak_bytes": trie_peak,
                    }
                )
    finally:
        tracemalloc.stop()
    return pd.DataFrame(rows)
