"""Evaluation: the sampler, parsing and judging answers, W1 scores and the trie logit KL."""
