from collections import defaultdict

import numpy as np
import pytest

from calft.errors import UserError
from calft.modeling.tokenizer import fingerprint, load_backend, load_fast_tokenizer, single_token_id
from calft.targets.canonical import CanonicalTokenizer
from calft.targets.discretize import discretize_laws, format_canonical
from calft.targets.prompts import prompt_set
from calft.targets.tries import PAD, build_trie_forest

TOKENIZERS = {"smollm2": ("smollm2_dir", "<|im_end|>"), "merging": ("merging_tokenizer_dir", "<|end|>")}


def _random_prompts(count, seed):
    prompts = prompt_set("train") + prompt_set("ood-full")
    picks = np.random.default_rng(seed).choice(len(prompts), count, replace=False)
    return sorted((prompts[i] for i in picks), key=lambda p: p.family)


def _tokenized(tokenizer, term, prompts, decimals, max_bins):
    """Per chunk: (chunk, strings, padded token matrix, token lists) through the fast path."""
    canonical = CanonicalTokenizer(tokenizer.backend_tokenizer)
    for chunk in discretize_laws(prompts, decimals, max_bins):
        offsets, data = format_canonical(chunk.grid_index, chunk.decimals)
        text = data.tobytes().decode()
        strings = [text[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        sequences = canonical.encode(offsets, data, term)
        yield chunk, strings, sequences, _rows(sequences)


def _rows(sequences):
    return [[int(t) for t in row if t != PAD] for row in sequences]


@pytest.fixture(params=list(TOKENIZERS))
def tokenizer_and_terminator(request):
    """The transformers tokenizer (what training uses) and the terminator id."""
    folder_fixture, terminator = TOKENIZERS[request.param]
    tokenizer = load_fast_tokenizer(str(request.getfixturevalue(folder_fixture)))
    return tokenizer, single_token_id(tokenizer.backend_tokenizer, terminator)


def test_smollm2_splits_digits_and_merging_tokenizer_does_not(smollm2_tokenizer, merging_tokenizer_dir):
    assert len(smollm2_tokenizer("3.14159", add_special_tokens=False).input_ids) == 7
    merging = load_fast_tokenizer(str(merging_tokenizer_dir))
    assert len(merging("3.14159", add_special_tokens=False).input_ids) < 7
    # digit runs skip the BPE model only where no vocabulary entry joins digits
    assert CanonicalTokenizer(smollm2_tokenizer.backend_tokenizer).digit_tokens is not None
    assert CanonicalTokenizer(merging.backend_tokenizer).digit_tokens is None


def test_batch_tokenization_equals_per_string_encode(tokenizer_and_terminator):
    tokenizer, term = tokenizer_and_terminator
    for _, strings, _, rows in _tokenized(tokenizer, term, _random_prompts(12, 0), 5, 1001):
        assert rows == [tokenizer(s, add_special_tokens=False).input_ids + [term] for s in strings]


def test_real_tokenizers_take_the_piecewise_path(tokenizer_and_terminator):
    tokenizer, term = tokenizer_and_terminator
    canonical = CanonicalTokenizer(tokenizer.backend_tokenizer)
    for chunk in discretize_laws(_random_prompts(6, 3), 5, 1001):
        canonical.encode(*format_canonical(chunk.grid_index, chunk.decimals), term)
    assert canonical.piecewise and canonical.fallback_rows == 0


def test_fallback_when_the_normalizer_rewrites_text(smollm2_dir):
    from tokenizers import normalizers

    tokenizer = load_fast_tokenizer(str(smollm2_dir))
    tokenizer.backend_tokenizer.normalizer = normalizers.Replace(".", ",")
    term = single_token_id(tokenizer.backend_tokenizer, "<|im_end|>")
    prompts = [p for p in prompt_set("unseen") if p.family in ("gaussian", "binomial")]
    canonical = CanonicalTokenizer(tokenizer.backend_tokenizer)
    for chunk in discretize_laws(prompts, 2, 200):
        offsets, data = format_canonical(chunk.grid_index, chunk.decimals)
        text = data.tobytes().decode()
        strings = [text[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        expected = [tokenizer(s, add_special_tokens=False).input_ids + [term] for s in strings]
        assert _rows(canonical.encode(offsets, data, term)) == expected
    assert canonical.fallback_rows > 0


def test_added_number_token_takes_the_exact_path(smollm2_dir):
    from tokenizers import AddedToken

    tokenizer = load_fast_tokenizer(str(smollm2_dir))
    # "987" is in ~0.4% of the strings: too rare for the per-shape representatives to catch
    tokenizer.backend_tokenizer.add_tokens([AddedToken("987", normalized=False)])
    term = single_token_id(tokenizer.backend_tokenizer, "<|im_end|>")
    ((chunk, strings, _, rows),) = _tokenized(tokenizer, term, prompt_set("unseen")[1:2], 5, 16384)
    expected = [tokenizer(s, add_special_tokens=False).input_ids + [term] for s in strings]
    assert rows == expected
    assert any(tokenizer.convert_tokens_to_ids("987") in e for e in expected)


def _brute_force_targets(sequences, masses):
    """q(v | prefix) by enumerating every prefix of every sequence."""
    prefix_mass, next_mass = defaultdict(float), defaultdict(float)
    for sequence, mass in zip(sequences, masses):
        for k in range(len(sequence)):
            prefix_mass[tuple(sequence[:k])] += mass
            next_mass[tuple(sequence[: k + 1])] += mass
    return {prefix: next_mass[prefix] / prefix_mass[prefix[:-1]] for prefix in next_mass}


def _node_prefixes(trie, rows):
    prefix = {}
    for i in rows[np.argsort(trie.depth[rows], kind="stable")]:
        parent = trie.parent[i]
        prefix[trie.node[i]] = () if parent < 0 else prefix[parent] + (int(trie.token[i]),)
    return prefix


@pytest.mark.parametrize("seed", [1, 2])
def test_trie_targets_match_brute_force(tokenizer_and_terminator, seed):
    tokenizer, term = tokenizer_and_terminator
    for chunk, strings, matrix, sequences in _tokenized(tokenizer, term, _random_prompts(4, seed), 3, 300):
        trie = build_trie_forest(chunk.prompt_index, chunk.bin, matrix, chunk.mass)
        for index in np.unique(chunk.prompt_index):
            rows = np.flatnonzero(chunk.prompt_index == index)
            nodes = np.flatnonzero(trie.prompt_index == index)
            expected = _brute_force_targets([sequences[r] for r in rows], chunk.mass[rows])
            prefix = _node_prefixes(trie, nodes)
            got = {prefix[trie.node[i]]: trie.q[i] for i in nodes if trie.parent[i] >= 0}
            assert got.keys() == expected.keys()
            assert all(abs(got[k] - expected[k]) < 1e-12 for k in got)
            # q normalizes at every internal node
            children = defaultdict(float)
            for i in nodes:
                if trie.parent[i] >= 0:
                    children[trie.parent[i]] += trie.q[i]
            assert all(abs(total - 1) < 1e-9 for total in children.values())
            # the product of q along each path reproduces P_Y, and leaves name their canonical row
            leaves = nodes[trie.canonical_index[nodes] >= 0]
            assert len(leaves) == len(rows)
            for leaf in leaves:
                canonical = trie.canonical_index[leaf]
                path = prefix[trie.node[leaf]]
                assert list(path) == list(sequences[rows[canonical]])
                product = np.prod([expected[path[: k + 1]] for k in range(len(path))])
                assert product == pytest.approx(chunk.mass[rows[canonical]], rel=1e-9)


def test_integer_family_lets_the_terminator_compete_with_digits(smollm2_tokenizer):
    term = single_token_id(smollm2_tokenizer.backend_tokenizer, "<|im_end|>")
    prompt = next(p for p in prompt_set("unseen") if p.family == "binomial")
    ((chunk, strings, matrix, _),) = _tokenized(smollm2_tokenizer, term, [prompt], 5, 16384)
    trie = build_trie_forest(chunk.prompt_index, chunk.bin, matrix, chunk.mass)
    one = smollm2_tokenizer.convert_tokens_to_ids("1")
    node_one = trie.node[(trie.depth == 1) & (trie.token == one)][0]
    after_one = trie.token[trie.parent == node_one]
    assert term in after_one and len(after_one) == 11  # "1" ends, or continues with "0".."9" ("10".."19")


def test_sequences_must_be_prefix_free():
    sequences = np.array([[5, PAD], [5, 6]])
    with pytest.raises(UserError, match="prefix-free"):
        build_trie_forest(np.array([0, 0]), np.array([0, 1]), sequences, np.array([0.5, 0.5]))


@pytest.mark.parametrize("folder_fixture, terminator", TOKENIZERS.values())
def test_direct_backend_load_equals_the_transformers_tokenizer(request, folder_fixture, terminator):
    folder = str(request.getfixturevalue(folder_fixture))
    assert fingerprint(load_backend(folder), terminator) == fingerprint(
        load_fast_tokenizer(folder).backend_tokenizer, terminator
    )


def test_fingerprint_is_stable_and_discriminating(smollm2_dir, merging_tokenizer_dir, tmp_path):
    first = fingerprint(load_backend(str(smollm2_dir)), "<|im_end|>")
    assert first == fingerprint(load_backend(str(smollm2_dir)), "<|im_end|>")
    load_fast_tokenizer(str(smollm2_dir)).save_pretrained(tmp_path)  # the same tokenizer in another folder
    assert first == fingerprint(load_backend(str(tmp_path)), "<|im_end|>")
    assert first != fingerprint(load_backend(str(smollm2_dir)), "<|endoftext|>")
    assert first != fingerprint(load_backend(str(merging_tokenizer_dir)), "<|end|>")


def test_terminator_must_be_one_token(smollm2_dir):
    with pytest.raises(UserError, match="not a single token"):
        single_token_id(load_backend(str(smollm2_dir)), "<|not a token|>")
