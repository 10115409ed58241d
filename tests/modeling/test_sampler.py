"""The sampler: reproducible draws whatever the batching, exact against token-by-token sampling, faithful
to the model's distribution, and early ends for hopeless rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calft.modeling.chat import ChatFormat, prompt_ids
from calft.modeling.generation import COMPACT_EVERY, SharedPrefix, _draw, sample, sample_seed


@pytest.mark.parametrize("strategy", ["shared", "batched"])
def test_samples_do_not_depend_on_the_batch_size(tiny_model_dir, strategy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = prompt_ids(tokenizer, ["Generate exactly ONE random number."], ChatFormat("<|im_end|>"))[0]
    seeds = [sample_seed(11, "p", i) for i in range(64)]
    stop = {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    one = [r for s in seeds for r in sample(model, ids, [s], 6, stop, chunk_size=1, strategy=strategy)]
    batched = sample(model, ids, seeds, 6, stop, chunk_size=64, strategy=strategy)
    halves = sample(model, ids, seeds, 6, stop, chunk_size=24, strategy=strategy)
    fitted = sample(model, ids, seeds, 6, stop, strategy=strategy)  # as many rows as fit in free memory
    assert one == batched == halves == fitted
    assert len({tuple(t) for t, _ in batched}) > 50  # different seeds, different samples
    assert sample(model, ids, seeds[:3], 6, stop) != sample(
        model, ids, [sample_seed(12, "p", i) for i in range(3)], 6, stop
    )


def test_the_automatic_chunk_holds_as_many_rows_as_half_the_free_memory_allows(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from calft.modeling.generation import rows_that_fit

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = model.config  # 2 layers, 2 key/value heads of 8 dimensions, float32
    per_row = 2 * 2 * 2 * 8 * 4 * 100 + 24 * config.vocab_size  # the cache of 100 positions, the probabilities
    assert rows_that_fit(model, 100, 1000, 2 * 10 * per_row) == 10
    assert rows_that_fit(model, 100, 1000, 2 * 10 * per_row - 1) == 9
    assert rows_that_fit(model, 100, 7, 2 * 10 * per_row) == 7 and rows_that_fit(model, 100, 1000, 0) == 1


@pytest.mark.parametrize(
    "strategy, prefix_of",
    [("shared", "the prompt set"), ("batched", "the prompt set"), ("shared", "another prompt set")],
)
def test_sampler_equals_token_by_token_sampling_without_a_cache(tiny_model_dir, strategy, prefix_of):
    """Shared prefill, a prompt set's shared prefix, merged histories, skipped cache copies and
    compacted batches change nothing: each row is what a full forward over prompt + tokens so far,
    drawn with the row's own uniforms, gives. A prefix the prompt does not begin with is not used
    (the path of a prompt sampled without one)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model.lm_head.weight.data *= 30  # a peaked model: rows merge, split and stop at the same steps
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = {
        "the prompt set": ["Generate exactly ONE random number.", "Generate exactly TWO random numbers."],
        "another prompt set": ["Name a colour.", "Name a fruit."],
    }
    ids = prompt_ids(tokenizer, texts["the prompt set"][:1], ChatFormat("<|im_end|>"))[0]
    prefix = SharedPrefix(model, prompt_ids(tokenizer, texts[prefix_of], ChatFormat("<|im_end|>")))
    assert prefix.ids and (ids[: len(prefix.ids)] == prefix.ids) == (prefix_of == "the prompt set")
    with torch.no_grad():
        likely = model(input_ids=torch.tensor([ids])).logits[0, -1].topk(3).indices.tolist()
    stop = {likely[0]}  # the likeliest token ends rows early
    seeds = [sample_seed(3, "r", i) for i in range(40)]
    steps = 3 * COMPACT_EVERY  # the batched sampler drops stopped rows twice on the way
    results = sample(model, ids, seeds, steps, stop, chunk_size=40, strategy=strategy, prefix=prefix)
    assert 0 < sum(stopped for _, stopped in results) < len(seeds)
    for seed, (tokens, stopped) in zip(seeds, results):
        uniforms = torch.tensor(np.random.default_rng(seed).random(steps))
        expected = []
        for step in range(steps):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids + expected])).logits[:, -1]
            token = int(_draw(logits, uniforms[step : step + 1], 1.0, 1.0)[0])
            if token in stop:
                break
            expected.append(token)
        assert tokens == expected and stopped == (len(expected) < steps)


def test_draws_that_share_a_distribution_equal_draws_from_its_copies():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((5, 300), generator=generator) * 4
    rows = torch.tensor([3, 0, 3, 3, 1, 0, 4, 3])  # distribution 2 unused, 3 used four times
    uniforms = torch.rand(len(rows), generator=generator, dtype=torch.float64)
    for top_p in (1.0, 0.9):
        shared, finite = _draw(logits, uniforms, 1.3, top_p, rows=rows)
        copied, _ = _draw(logits[rows], uniforms, 1.3, top_p)
        assert torch.equal(shared, copied) and bool(finite)
    assert not bool(_draw(torch.tensor([[0.0, float("nan")]]), uniforms[:1], 1.0, 1.0)[1])


@pytest.mark.parametrize("strategy", ["shared", "batched"])
def test_hopeless_rows_end_at_their_first_hopeless_prefix(tiny_model_dir, strategy):
    """A cut row is the row's uncut tokens up to the first token that makes it hopeless, unstopped;
    every other row is unchanged; the cut depends on neither the chunk nor the strategy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = prompt_ids(tokenizer, ["Generate exactly ONE random number."], ChatFormat("<|im_end|>"))[0]
    stop = set(range(0, len(tokenizer), 50))  # the near-uniform model stops a row at 2% per token
    seeds = [sample_seed(4, "h", i) for i in range(40)]
    steps = 2 * COMPACT_EVERY + 3  # cuts at a look, between looks, and after the last step

    def fatal(token):
        return token % 29 == 0

    def hopeless(tokens):
        return any(map(fatal, tokens))

    uncut = sample(model, ids, seeds, steps, stop, chunk_size=40, strategy=strategy)
    first_fatal = [next((n for n, token in enumerate(tokens) if fatal(token)), None) for tokens, _ in uncut]
    expected = [
        (tokens, stopped) if n is None else (tokens[: n + 1], False) for (tokens, stopped), n in zip(uncut, first_fatal)
    ]
    for chunk_size in (40, 7):
        assert (
            sample(model, ids, seeds, steps, stop, chunk_size=chunk_size, strategy=strategy, hopeless=hopeless)
            == expected
        )
    cut_after = {n + 1 for n in first_fatal if n is not None}
    assert {COMPACT_EVERY, steps} & cut_after and len(cut_after) > 4  # at a look, at the end, between
    assert any(stopped for _, stopped in expected) and not all(n is not None for n in first_fatal)


def test_sampler_follows_the_model_distribution(tiny_model_dir):
    """One step: the empirical first-token frequencies match softmax(logits / T) after top-p."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = [1, 2, 3, 4]
    # sharpen the random model so that a few tokens carry the mass
    model.lm_head.weight.data *= 40
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    probs = torch.softmax(logits / 0.7, -1)
    top = probs.topk(3)
    n = 3000
    draws = sample(model, ids, [sample_seed(5, "q", i) for i in range(n)], 1, {-1}, temperature=0.7, chunk_size=1000)
    counts = np.bincount([t[0] for t, _ in draws], minlength=len(probs))
    for p, token in zip(top.values.tolist(), top.indices.tolist()):
        assert abs(counts[token] / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-3
