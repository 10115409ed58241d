"""The targets stage's commands: discretize, build-tries, fingerprint, construction-cost."""

from __future__ import annotations

from calft import jobs
from calft.command import command, input_path, output_path, workers_option
from calft.jobs import Job
from calft.targets.settings import ConstructionCostSettings, DiscretizeSettings, TriesSettings

TOKENIZER_HELP = "model or tokenizer folder, or the download marker of a hub model (calft prepare-model)"


def add_commands(sub) -> None:
    _discretize(sub)
    _build_tries(sub)
    _fingerprint(sub)
    _construction_cost(sub)


def _discretize(sub) -> None:
    d = command(
        sub,
        "discretize",
        "calft.targets.commands:discretize",
        DiscretizeSettings,
        "JSON: prompt_set (train: the 1988-prompt training grid; unseen / ood: the paper's 24 / 18 "
        "evaluation prompts; unseen-full / ood-full: the full test grids), decimals (d, the paper's 5), "
        "max_bins (paper: 1001 soft, 16384 hard and evaluation), number_format (clean or reference), "
        "families, per_family",
        job=Job(jobs.discretize_job, ("prompt_set", "method", "variant"), ("prompt_set",)),
        help="discretize the target law of every prompt of a prompt set into canonical strings",
        description="Write a folder of parquet parts (one per family, computed in parallel) with a row "
        "per (prompt, canonical output): prompt_id, family, split, params, prompt, bin, canonical, value, "
        "mass. Read it whole with pyarrow.parquet.read_table(FOLDER).",
    )
    output_path(d, "--output", "targets", required=True, help="folder to write (conventionally named *.parquet)")
    workers_option(d, "discretize families in parallel")


def _build_tries(sub) -> None:
    t = command(
        sub,
        "build-tries",
        "calft.targets.commands:build_tries",
        TriesSettings,
        'JSON: {"terminator": the token that ends an assistant turn, appended to every canonical output '
        "(SmolLM2 and Qwen3: <|im_end|>)}",
        offline=True,
        job=Job(jobs.tries_job, ("model",), ("model",)),
        help="tokenize every canonical output and build the per-prompt token tries",
        description="Write a folder of parquet parts (one per family, built in parallel) with a row per "
        "trie node: prompt_id, node, parent, depth, token, mass, q (target probability of token after "
        "the parent prefix), canonical_index. Read it whole with pyarrow.parquet.read_table(FOLDER).",
    )
    input_path(t, "--targets", required=True, help="folder written by 'calft discretize'")
    input_path(t, "--tokenizer", required=True, help=TOKENIZER_HELP)
    output_path(t, "--output", "tries", required=True, help="folder to write (conventionally named *.parquet)")
    input_path(
        t,
        "--same-tokenizer",
        action="append",
        default=[],
        metavar="SOURCE",
        help="another model or tokenizer (a folder or download marker) that will use these tries; fails "
        "unless its tokenizer fingerprint equals this one's (repeatable)",
    )
    workers_option(t, "tokenize and build tries in parallel, one family at a time")


def _fingerprint(sub) -> None:
    f = command(
        sub,
        "fingerprint",
        "calft.targets.commands:print_fingerprint",
        TriesSettings,
        "JSON with the terminator (see build-tries)",
        offline=True,
        job=Job(jobs.tries_job, ("model",), ("model",)),
        help="print the tokenizer fingerprint that keys shared tries",
    )
    input_path(f, "--tokenizer", required=True, help=TOKENIZER_HELP)


def _construction_cost(sub) -> None:
    c = command(
        sub,
        "construction-cost",
        "calft.targets.commands:construction_cost",
        ConstructionCostSettings,
        "JSON: construction_cost (decimals and max_bins lists, prompt_set, max_prompts, tokenizer), "
        "number_format, terminator, reference (the evaluation grid point, marked in Table 24)",
        offline=True,
        job=Job("construction_cost"),
        help="time and trace the memory of building each prompt's output space and trie over a precision grid",
        description="For every (decimals, max_bins) of the grid and every prompt, one at a time: the wall "
        "seconds and tracemalloc peak of discretizing its law and of tokenizing and building its trie "
        "(paper Table 24), both with the reference's algorithm (the whole decimal grid materialized, then "
        "thinned; a trie of Python dicts) and with calft's. Writes one parquet row per (algorithm, grid "
        "point, prompt).",
    )
    input_path(c, "--tokenizer", help=TOKENIZER_HELP + " (needed when construction_cost.tokenizer is 'model')")
    output_path(c, "--output", "construction_cost", required=True, help="parquet file to write")
