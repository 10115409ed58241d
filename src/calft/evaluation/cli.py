"""The evaluation stage's commands: sample, score, logit-kl."""

from __future__ import annotations

from calft.command import command, input_path, model_paths, output_path, tracking_option
from calft.evaluation.settings import LogitKlSettings, SampleSettings
from calft.jobs import Job


def add_commands(sub) -> None:
    sa = command(
        sub,
        "sample",
        "calft.evaluation.commands:sample",
        SampleSettings,
        "JSON: model (the model's config entry), sampling (the config's section: num_samples, "
        "max_new_tokens, temperature, top_p, seed, chunk_size) and prompting (direct, or ssot: String "
        "Seed of Thought, judged from <answer>)",
        offline=True,
        job=Job("sample", ("model", "method"), ("model", "method")),
        help="sample N answers per evaluation prompt, parse and judge them",
        description="Write one parquet row per sample: prompt_id, family, split, sample_idx, seed, text, "
        "num_tokens, stopped, value, valid.",
    )
    model_paths(sa)
    input_path(sa, "--targets", required=True, help="evaluation targets from 'calft discretize' (the prompts)")
    input_path(
        sa,
        "--ssot-instruction",
        help="text file of the String Seed of Thought instruction (ssot prompting only; transfer.ssot.instructions)",
    )
    output_path(sa, "--output", "samples", required=True, help="parquet file to write")

    sc = command(
        sub,
        "score",
        "calft.evaluation.commands:score",
        help="per-prompt valid rate, W1 and normalized W1 from samples",
        description="Write one parquet row per prompt: valid rate, W1 against the target law's quantiles, "
        "its Q95-Q05 spread and the normalized W1.",
    )
    input_path(sc, "--samples", required=True, help="samples from 'calft sample'")
    input_path(sc, "--targets", required=True, help="the evaluation targets the samples answer")
    output_path(sc, "--output", "scores", required=True, help="parquet file to write")
    tracking_option(sc)

    lk = command(
        sub,
        "logit-kl",
        "calft.evaluation.commands:logit_kl",
        LogitKlSettings,
        "JSON: model (the model's config entry), sampling (the config's section: logit_kl_paths, "
        "logit_kl_exact, seed) and tracking (the tracker run of calft.tracking, or null)",
        offline=True,
        job=Job("logit_kl", ("model", "method", "variant"), ("model", "method")),
        help="trie logit KL per prompt: Monte-Carlo over a few paths, optionally exact",
        description="Write one parquet row per prompt: logit_kl (mean training loss over "
        "sampling.logit_kl_paths sampled trie paths) and logit_kl_exact (its expectation over all paths, "
        "with sampling.logit_kl_exact; NaN otherwise).",
    )
    model_paths(lk)
    input_path(lk, "--tries", required=True, help="evaluation tries from 'calft build-tries'")
    input_path(lk, "--targets", required=True, help="the evaluation targets of those tries (prompt texts)")
    output_path(lk, "--output", "logit_kl", required=True, help="parquet file to write")
