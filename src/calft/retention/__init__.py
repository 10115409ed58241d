"""Retention: the TinyBenchmarks suite and PALOMA perplexity through lm-eval, gp-IRT, and their data."""
