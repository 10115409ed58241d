"""Table 24 measured two ways: the reference's construction restated (`paper_construction`) and
calft's, on the reference's 24-prompt probe with one token per character. The known answers are the
reference spec's figures from the reference's own probe script (§5.1): its mean and largest trie
prefix counts at d=5."""

from __future__ import annotations

import numpy as np
import pytest

from calft.targets import paper_construction
from calft.targets.canonical import CharacterTokenizer
from calft.targets.cost import construction_cost, memory_mb
from calft.targets.discretize import discretize_laws, format_canonical
from calft.targets.prompts import PROBE, prompt_set
from calft.targets.tries import build_trie_forest

MIB = 2**20


def test_the_probe_is_three_laws_of_each_of_the_reference_s_eight_families():
    probe = prompt_set("probe")
    assert len(probe) == 24 and list(PROBE) == [
        "uniform",
        "gaussian",
        "beta",
        "gamma",
        "lognormal",
        "cauchy",
        "weibull",
        "poisson",
    ]
    assert [p.params for p in probe if p.family == "uniform"] == [
        {"a": -5, "b": -4},
        {"a": -1, "b": 3},
        {"a": 2.5, "b": 10.5},
    ]  # the reference's (a, width) grid names, as the prompts print them


def _calft_prefixes(prompt, decimals, max_bins):
    """calft's trie of one prompt with character tokens: {prefix: (children, probabilities)}."""
    (chunk,) = discretize_laws([prompt], decimals, max_bins)
    tokens = CharacterTokenizer()
    sequences = tokens.encode(*format_canonical(chunk.grid_index, chunk.decimals), tokens.TERMINATOR)
    trie = build_trie_forest(np.zeros(len(chunk.mass), np.int32), chunk.bin, sequences, chunk.mass)
    prefix = {}
    for row in np.argsort(trie.depth, kind="stable"):
        parent = trie.parent[row]
        prefix[trie.node[row]] = () if parent < 0 else prefix[parent] + (int(trie.token[row]),)
    children = {}
    for row in range(len(trie.node)):
        if trie.parent[row] >= 0:
            children.setdefault(prefix[trie.parent[row]], {})[int(trie.token[row])] = trie.q[row]
    return children


@pytest.mark.parametrize(("max_bins", "mean", "largest"), [(1001, 3688.17, 7226), (16384, 41273.29, 88290)])
def test_calft_s_tries_on_the_probe_have_the_prefix_counts_the_reference_s_probe_reports(max_bins, mean, largest):
    counts = [len(_calft_prefixes(prompt, 5, max_bins)) for prompt in prompt_set("probe")]
    assert np.mean(counts) == pytest.approx(mean, abs=0.01) and max(counts) == largest


@pytest.mark.parametrize(("decimals", "max_bins"), [(0, 50), (2, 1001), (3, 40)])
def test_the_reference_s_construction_builds_calft_s_output_spaces_and_tries(decimals, max_bins):
    tokens = CharacterTokenizer()
    for prompt in prompt_set("probe"):
        strings, masses = paper_construction.output_space(prompt, decimals, max_bins)
        (chunk,) = discretize_laws([prompt], decimals, max_bins)
        offsets, data = format_canonical(chunk.grid_index, chunk.decimals)
        expected = [data[a:b].tobytes().decode() for a, b in zip(offsets[:-1], offsets[1:])]
        assert strings == expected, prompt.prompt_id
        assert masses == pytest.approx(chunk.mass, rel=1e-9, abs=1e-15), prompt.prompt_id
        theirs = paper_construction.trie(strings, masses, tokens.encode_text, tokens.TERMINATOR)
        ours = _calft_prefixes(prompt, decimals, max_bins)
        assert theirs.keys() == ours.keys(), prompt.prompt_id
        for prefix, (children, probabilities) in theirs.items():
            assert dict(zip(children, probabilities)) == pytest.approx(ours[prefix], rel=1e-9), (prompt, prefix)


def test_the_reference_s_output_space_memory_grows_tenfold_per_decimal_and_calft_s_stays_flat():
    """The widest probe law, cauchy(2, 5), spans about 3183: the reference holds its whole grid of
    3183 * 10**d float64 points before thinning it to the bin cap; calft never builds the grid."""
    (cauchy,) = [p for p in prompt_set("probe") if p.prompt_id == "cauchy_x0_2_gamma_5"]
    assert paper_construction.grid_points(cauchy, 3) == 3183089
    cost = construction_cost([cauchy], [(2, 1001), (3, 1001), (4, 1001)], CharacterTokenizer(), 0)
    peak = cost.pivot(index="decimals", columns="algorithm", values="space_peak_bytes") / MIB
    grid = [paper_construction.grid_points(cauchy, d) * 8 / MIB for d in (2, 3, 4)]
    assert list(peak.reference) == pytest.approx(grid, rel=0.05)  # 2.4, 24.3, 242.9 MiB
    assert (peak.calft < 0.5).all()
    assert (cost.outputs == 1001).all()
    assert memory_mb(prompt_set("probe"), [2, 6]) > 48_000  # the d=6 sweep asks for its 24 GiB twice over
